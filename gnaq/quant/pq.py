"""Product quantization of z with learned codebooks: no float per node, b bits per M subspaces.

z is rotated by an orthogonal R (free on the device, (zᵤR)·(zᵢR) = zᵤ·zᵢ) and its columns split
into M subspaces of p_m columns (Σ p_m = d' ≤ d; columns past d' are not coded: 0). Node n of side
c(n) (codebook 0: users, 1: items; ``codebooks="shared"``: 0 for both) stores one b-bit index a_nm
per subspace, K = 2^b codewords each:

    ẑₙ = [Ĉ^c_1[a_n1] | … | Ĉ^c_M[a_nM]],   a_nm = argmin_k ‖(zR)_nm − Ĉ^c_m[k]‖²
    Ĉ^c_m = t^c_m · round(C^c_m / t^c_m),   t^c_m = max|C^c_m| / 127   (int8 codewords in the file)
    ŷᵤᵢ = Σₘ t⁰_m t¹_m ⟨q⁰_m[a_um], q¹_m[a_im]⟩   (q: the int8 codewords; an exact integer per subspace)

so a row costs M·b bits — b·M/d a value — and the file adds C·K·d' int8 codewords and C·M floats.
``rotation``: "identity" (z's own columns, p = d/M: what measured best at equal subspaces), "random",
"klt" (principal axes, variance descending), "balanced" (the same axes spread so each subspace's
variance product is even), or "adaptive": principal axes with p_m set by reverse water-filling
(``subspace_dims``) — the high-variance axes in small subspaces (more bits a value), the tail in
large ones, the axes below the water level dropped.
On the device a user's M tables T_m[k] = ⟨q⁰_m[a_um], q¹_m[k]⟩ make an item's score M look-ups.

Training (quantization-aware, from a converged model: ``--init-from`` or the "auto" warm-up):
codebooks start as k-means of each subspace's rows (Lloyd, ``kmeans``), then learn from the task:
    ∂L/∂C^c_m[k] = Σ_{n: c(n) = c, a_nm = k} ∂L/∂ẑ_nm     (straight through the int8 rounding)
    ∂L/∂(zR)     = ∂L/∂ẑ   only with ``straight_through=True`` (the embeddings then move too)
By default only the codebooks learn, the embeddings and assignments stay (JPQ's recipe): on
MovieLens-1M at 12 subspaces × 8 bits, straight-through to the embeddings lost 0.8% of fp32's NDCG@20
in its first epoch and kept falling, codebooks alone gained 0.7% (bench/results/product_quantization-ml-1m.md).
Assignments are fixed between re-assignments (``reassign``: "epoch", at each epoch start from the
current z and codebooks; "step", every forward; "never", k-means' only).
"""

from __future__ import annotations

import numpy as np

from .. import autograd as ag
from ..backend import to_numpy
from ..spmm import scatter_add_rows
from .axes import principal_axes
from .base import Quantizer, parse_warmup, propagate_table, weighted_sum

CODEWORD_LEVELS = 127  # int8 codewords in [−127, 127]
REASSIGN = ("epoch", "step", "never")
ROTATIONS = ("adaptive", "balanced", "identity", "klt", "random")
ASSIGN_CHUNK = 16384   # rows per distance block (chunk · K float64 values at a time)


def nearest(x, centroids):
    """(a (n,), d² (n,)): each row's nearest centroid a = argmin_k ‖xₙ − c_k‖² (ties → smaller k)
    and that squared distance, from ‖x‖² − 2 x·cᵀ + ‖c‖² in blocks of ASSIGN_CHUNK rows."""
    xp = ag.Tensor(x).xp
    norms = (centroids * centroids).sum(1)
    index, dist = xp.empty(len(x), dtype=np.int64), xp.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), ASSIGN_CHUNK):
        block = x[start:start + ASSIGN_CHUNK]
        d2 = norms[None, :] - 2.0 * (block @ centroids.T)
        best = d2.argmin(1)
        index[start:start + len(block)] = best
        dist[start:start + len(block)] = xp.maximum(d2[xp.arange(len(block)), best] + (block * block).sum(1), 0.0)
    return index, dist


def kmeans(x, k: int, iterations: int = 25, seed: int = 0):
    """Lloyd's k-means of the rows of x (n, p), numpy: (centroids (k, p), assignment (n,)),
    locally minimising Σₙ ‖xₙ − c_{a(n)}‖². Starts from k distinct rows drawn with ``seed`` (all
    rows, repeated, when n < k); a cluster left empty takes the row farthest from its centroid."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(len(x), size=k, replace=len(x) < k)].copy()
    for _ in range(iterations):
        assignment, dist = nearest(x, centroids)
        counts = np.bincount(assignment, minlength=k)
        for j in range(x.shape[1]):
            sums = np.bincount(assignment, weights=x[:, j], minlength=k)
            centroids[:, j] = np.where(counts > 0, sums / np.maximum(counts, 1), centroids[:, j])
        empty = np.flatnonzero(counts == 0)
        if len(empty) and len(x) >= k:
            far = np.argsort(-dist, kind="stable")[: len(empty)]
            centroids[empty] = x[far]
    return centroids, nearest(x, centroids)[0]


def balanced_axes(variance, subspaces: int) -> np.ndarray:
    """(d,) column order that spreads principal axes over M subspaces of p so their variance products
    are even (OPQ's eigenvalue allocation, Ge et al. 2013): axes by variance descending, each to the
    subspace with room whose Σ log λ is smallest; returns the axes subspace by subspace."""
    variance = np.maximum(np.asarray(variance, dtype=np.float64), 1e-30)
    p = len(variance) // subspaces
    members, log_product = [[] for _ in range(subspaces)], np.zeros(subspaces)
    for axis in np.argsort(-variance, kind="stable"):
        open_ = [m for m in range(subspaces) if len(members[m]) < p]
        m = min(open_, key=lambda j: (log_product[j], j))
        members[m].append(int(axis))
        log_product[m] += np.log(variance[axis])
    return np.array([a for group in members for a in group])


def pq_rotation(z, subspaces: int, name: str) -> np.ndarray:
    """(d, d) orthogonal R for z (N, d): "klt" principal axes (variance descending), "balanced" the
    same axes spread over the subspaces (balanced_axes), "random" a seeded random rotation, "identity" I."""
    d = z.shape[1]
    if name == "identity":
        return np.eye(d)
    if name == "random":
        q, r = np.linalg.qr(np.random.default_rng(0).normal(size=(d, d)))
        return q * np.sign(np.diag(r))
    variance, axes = principal_axes(z)
    return axes if name == "klt" else axes[:, balanced_axes(variance, subspaces)]


def subspace_dims(variance, subspaces: int, code_bits: int) -> list:
    """[p_1 … p_M] over axes sorted by variance λ descending: reverse water-filling gives axis k the
    rate R_k = max(0, ½ log₂(λ_k/θ)) with Σ_k R_k = M·b, and consecutive axes form a subspace until
    its rates reach about b (it closes when R so far + ½ R_next ≥ b; each takes one axis at least).
    Axes past the M-th subspace are not coded. Falls back to equal subspaces where the axes run out."""
    lam = np.maximum(np.sort(np.asarray(variance, dtype=np.float64))[::-1], 1e-30)
    d, budget = len(lam), subspaces * code_bits
    lo, hi = np.log2(lam.min()) - 2 * budget - 1, np.log2(lam.max())
    for _ in range(200):  # bisection on log₂ θ: Σ R_k decreases in θ
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(0.0, 0.5 * (np.log2(lam) - mid)).sum() > budget else (lo, mid)
    rates = np.maximum(0.0, 0.5 * (np.log2(lam) - hi))
    dims, size, acc = [], 0, 0.0
    for k in range(d):
        size, acc = size + 1, acc + rates[k]
        last = len(dims) == subspaces - 1
        following = rates[k + 1] if k + 1 < d else 0.0
        if (not last and acc + following / 2 >= code_bits) or (last and following <= 0) or k == d - 1:
            dims.append(size)
            size, acc = 0, 0.0
            if len(dims) == subspaces:
                break
    if len(dims) < subspaces:
        return [d // subspaces] * subspaces if d % subspaces == 0 else [1] * min(subspaces, d)
    return dims


def round_codewords(codebook):
    """(Ĉ, t, q): int8-rounded codewords of a (C, M, K, P) codebook (subspace m in its first p_m
    columns, zeros after), t (C, M) = max|C^c_m| / 127, q = round(C / t) ∈ [−127, 127], Ĉ = t·q."""
    xp = ag.Tensor(codebook).xp
    scale = xp.maximum(xp.abs(codebook).max(axis=(2, 3)), 1e-30) / CODEWORD_LEVELS
    ints = xp.clip(xp.rint(codebook / scale[:, :, None, None]), -CODEWORD_LEVELS, CODEWORD_LEVELS)
    return ints * scale[:, :, None, None], scale, ints


def pq_lookup(zr, codebook, flat_index, columns, straight_through: bool = False):
    """ẑ (N, d') = the rounded codewords at ``flat_index`` (N, M) into the codebook's (C·M·K, P) rows,
    their subspace columns ``columns`` (d' indices into M·P), as an autograd op: ∂codebook = the
    scatter-add of ∂ẑ's subvectors, ∂zr = ∂ẑ (straight-through)."""
    zr, codebook = ag.as_tensor(zr), ag.as_tensor(codebook)
    C, M, K, P = codebook.shape
    rounded = round_codewords(codebook.data)[0].reshape(C * M * K, P)
    n = flat_index.shape[0]
    out = rounded[flat_index.ravel()].reshape(n, M * P)[:, columns]

    def vjp(g):
        xp = ag.Tensor(g).xp
        full = xp.zeros((n, M * P), dtype=g.dtype)
        full[:, columns] = g
        grad = scatter_add_rows(flat_index.ravel(), full.reshape(n * M, P), C * M * K)
        return (g if straight_through else None), grad.reshape(C, M, K, P)
    return ag.custom_op([zr, codebook], out, vjp)


class PQQuantizer(Quantizer):
    name = "pq"
    row_local = True

    def __init__(self, bits: int, subspaces: int = 0, code_bits: int = 8, codebooks: str = "sides",
                 reassign: str = "epoch", rotation: str = "identity", kmeans_iterations: int = 25,
                 straight_through: bool = False, warmup=0):
        if not isinstance(code_bits, int) or not 1 <= code_bits <= 8:
            raise ValueError(f"pq: code_bits must be an integer from 1 to 8, got {code_bits!r}")
        if codebooks not in ("sides", "shared"):
            raise ValueError(f"pq: codebooks must be 'sides' (users' and items' own) or 'shared', got {codebooks!r}")
        if reassign not in REASSIGN:
            raise ValueError(f"pq: reassign must be one of {REASSIGN}, got {reassign!r}")
        if rotation not in ROTATIONS:
            raise ValueError(f"pq: rotation must be one of {ROTATIONS}, got {rotation!r}")
        self.bits, self.code_bits, self.requested_subspaces = bits, code_bits, int(subspaces)
        self.codebook_sides, self.reassign, self.rotation_name = codebooks, reassign, rotation
        self.kmeans_iterations, self.straight_through = int(kmeans_iterations), bool(straight_through)
        self.warmup = parse_warmup("pq", warmup)
        self.active = self.warmup == 0

    # ---- shapes ----------------------------------------------------------------------------
    def setup(self, model) -> None:
        super().setup(model)
        d = model.dim
        M = self.requested_subspaces or (self.bits * d) // self.code_bits  # default: ``bits`` a value
        if M < 1 or M > d or (d % M and self.rotation_name != "adaptive"):
            raise ValueError(f"pq: subspaces ({M}) must divide dim ({d}) (any M ≤ dim with rotation='adaptive'); "
                             "give subspaces=M explicitly")
        self.M, self.K = M, 2 ** self.code_bits
        self.C = 2 if self.codebook_sides == "sides" else 1
        self.P = d if self.rotation_name == "adaptive" else d // M  # codeword room (p_m ≤ P)
        xp, dtype = model.xp, model.embedding.data.dtype
        self.codebook = ag.Tensor(xp.zeros((self.C, M, self.K, self.P), dtype=dtype), requires_grad=True,
                                  name="codebook")
        dims = [d // M] * M if d % M == 0 else subspace_dims(np.ones(d), M, self.code_bits)
        self._set_layout(xp.eye(d, dtype=dtype), dims)
        self.side = np.zeros(model.n_users + model.n_items, dtype=np.int64)
        if self.C == 2:
            self.side[model.n_users:] = 1
        self.assignment = xp.zeros((len(self.side), M), dtype=np.int64)
        if self.active:
            self.initialise()

    def _set_layout(self, rotation, dims) -> None:
        """R (d, d') and the subspace widths [p_m] (Σ = d'): subspace m is columns offsets[m] … of z R."""
        xp = self.model.xp
        self.dims = [int(p) for p in dims]
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)]).astype(np.int64)
        self.rotation = ag.Tensor(rotation[:, :int(self.offsets[-1])])
        self.columns = xp.asarray(np.concatenate([m * self.P + np.arange(p) for m, p in enumerate(self.dims)]))

    @property
    def mean_bits(self) -> float:
        return self.M * self.code_bits / self.model.dim

    def on_epoch_start(self, epoch: int) -> None:
        if not self.active:
            if self.warmup is None or epoch < self.warmup:
                return
            if epoch == self.warmup:  # (a run resumed past the warm-up keeps its checkpoint's codebooks)
                self.initialise()
            self.active = True
        if self.reassign == "epoch" and epoch != self.warmup:
            self.assign()

    def initialise(self) -> None:
        """R and the subspaces from the current z, then k-means of each codebook's subspace rows."""
        z = to_numpy(self.combination()).astype(np.float64)
        d = z.shape[1]
        if self.rotation_name == "adaptive":
            variance, rotation = principal_axes(z)
            dims = subspace_dims(variance, self.M, self.code_bits)
        else:
            rotation, dims = pq_rotation(z, self.M, self.rotation_name), [d // self.M] * self.M
        xp, dtype = self.model.xp, self.model.embedding.data.dtype
        self._set_layout(xp.asarray(rotation, dtype=dtype), dims)
        zr = z @ rotation[:, :int(self.offsets[-1])]
        codebook = np.zeros((self.C, self.M, self.K, self.P))
        for c in range(self.C):
            rows = zr[self.side == c]
            for m, (start, p) in enumerate(zip(self.offsets[:-1], self.dims)):
                codebook[c, m, :, :p] = kmeans(rows[:, start:start + p], self.K, self.kmeans_iterations,
                                               seed=1000 * c + m)[0]
        self.codebook.data[...] = xp.asarray(codebook, dtype=dtype)
        self.assign()

    def assign(self) -> None:
        """a_nm = argmin_k ‖(zR)_nm − Ĉ^{c(n)}_m[k]‖² for every node, from the current z."""
        self.assignment = self._nearest(self.combination() @ self.rotation.data, np.arange(len(self.side)))

    def _nearest(self, zr, rows):
        """(len(rows), M) indices of the nearest rounded codewords for the rows zr (d') of nodes ``rows``."""
        xp = self.model.xp
        rounded = round_codewords(self.codebook.data)[0]
        out = xp.zeros((len(rows), self.M), dtype=np.int64)
        side = xp.asarray(self.side[to_numpy(rows)])
        for c in range(self.C):
            mine = xp.flatnonzero(side == c) if self.C > 1 else xp.arange(len(rows))
            for m, (start, p) in enumerate(zip(self.offsets[:-1].tolist(), self.dims)):
                out[mine, m] = nearest(zr[mine, start:start + p], rounded[c, m, :, :p])[0]
        return out

    def _flat_index(self, rows, assignment):
        """Rows of the (C·M·K, P) codebook for nodes ``rows`` with their (len, M) assignment."""
        xp = self.model.xp
        side = xp.asarray(self.side[to_numpy(rows)])
        return (side[:, None] * self.M + xp.arange(self.M)[None, :]) * self.K + assignment

    # ---- forward ---------------------------------------------------------------------------
    def _lookup(self, zr, rows, assignment):
        if self.reassign == "step":
            assignment = self._nearest(zr.data, rows)
        return pq_lookup(zr, self.codebook, self._flat_index(rows, assignment), self.columns, self.straight_through)

    def represent(self):
        z = propagate_table(self.model, self.model.embedding)
        if not self.active:
            return z
        return self._lookup(ag.matmul(z, self.rotation), np.arange(len(self.side)), self.assignment)

    def represent_rows(self, z_rows, rows):
        if not self.active:
            return z_rows
        return self._lookup(ag.matmul(z_rows, self.rotation), rows, self.assignment[rows])

    def combine(self, layers):
        return weighted_sum(layers, self.model.layer_weights)

    def parameters(self) -> list:  # (no gradient reaches the codebook in the warm-up)
        return [self.codebook]

    def state_dict(self) -> dict:
        d = self.model.dim
        full = self.model.xp.zeros((d, d), dtype=self.rotation.data.dtype)
        full[:, :self.rotation.shape[1]] = self.rotation.data
        return {"codebook": self.codebook.data, "pq_rotation": full, "pq_assignment": self.assignment,
                "pq_dims": np.asarray(self.dims, dtype=np.int64)}

    def load_state_dict(self, state: dict) -> None:
        xp = self.model.xp
        self.codebook.data[...] = xp.asarray(state["codebook"])
        self._set_layout(xp.asarray(state["pq_rotation"], dtype=self.codebook.data.dtype),
                         to_numpy(state["pq_dims"]).tolist())
        self.assignment = xp.asarray(state["pq_assignment"]).astype(np.int64)

    def export(self) -> dict:
        """{"pq_codes": (N, M) uint8 indices, "codewords": [(C, K, p_m) int8 per subspace], "codeword_scales":
        (C, M), "code_bits": b}: node n's subspace m is codeword_scales[c, m] · codewords[m][c, pq_codes[n, m]]."""
        _, scale, ints = round_codewords(to_numpy(self.codebook.data))
        return {"pq_codes": to_numpy(self.assignment).astype(np.uint8), "codeword_scales": scale,
                "codewords": [ints[:, m, :, :p].astype(np.int8) for m, p in enumerate(self.dims)],
                "code_bits": self.code_bits}
