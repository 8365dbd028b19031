"""Linear-cost training: the rows of z a BPR batch needs, from random walks and a history.

Full-graph training propagates the whole graph at every step: an epoch is nnz/B steps of
O(nnz·d) each, O(nnz²·d/B) in all. Here a step touches only the batch's rows and S·L random-walk
nodes per row. N nodes, d dims, L layers, z = P E⁽⁰⁾ with P = Σₗ αₗ Âˡ (N, N).

For the target rows T of a batch (its users, positives and negatives, repeats kept):

    z_T ≈ Z̄_T + W_T (E⁽⁰⁾ − H)

H (N, d) is E⁽⁰⁾ at the last refresh — at every epoch start and every ⌈steps/refreshes⌉ steps
(the trainer's --refreshes) —
and Z̄ = P H (one full propagation: L sparse products). W_T (|T|, N) estimates P's rows T without
bias from S uniform random walks of length L out of each target t, v_l^s the l-th node of walk s
(stratified at the first step: walk s draws its first neighbour uniformly from the s-th of S equal
slices of t's neighbour list — the S walks' average is still unbiased, and they cover the list
evenly, so a target with at most S neighbours visits each about equally often):

    W[t, t] += α₀,    W[t, v_l^s] += αₗ / S · √(d_t / d_{v_l^s})

A uniform step u → v has probability 1/d_u and Â_uv · d_u = √(d_u / d_v); along a walk the
product telescopes, so E[W_T] = P_T (an isolated target's walks weigh 0, as its row of P does).

z_T is therefore exact at a refresh and unbiased between refreshes — a control variate: only the
drift E⁽⁰⁾ − H since the refresh is estimated. The gradient is exact for the sampled operator,
∂E⁽⁰⁾ = W_Tᵀ g (gradcheck: ``ag.sampled_rows``), an unbiased estimate of P g_T, row-sparse over the
≤ |T|·(1 + S·L) rows it touches, which lazy Adam (optim.py) updates alone. What is approximate:
the walk estimate of z_T between refreshes (its variance grows with the drift), and rows outside
the batch, whose Adam moments do not decay on steps that skip them. The walks' gradient noise
stays in the table as step-to-step jitter; the trainer evaluates a moving average of it
(averaging.py, ``--average``).

H itself is never read: the table kept is the drift D = E⁽⁰⁾ − H (N, d) — 0 at a refresh, then
moved by every optimizer step E⁽⁰⁾ takes (it is the embedding's ``follower``, optim.py) — so
z_T = Z̄_T + W_T D reads one row a walk node, not two (bench/results/scale.md).

Cost per step O(|T|·S·L·d); per epoch O(nnz·S·L·d) plus refreshes × O(L·nnz·d): linear in the
number of interactions, where the full graph costs O(nnz²·d/B).

**No walks (S = 0, ``--walks 0``): the history estimator.** W_T is then the targets' own rows with
weight 1,

    z_T ≈ Z̄_T + D_T        ∂E⁽⁰⁾_T = g_T   (summed over a target's repeats)

— every neighbour's drift since the refresh is taken equal to the target's own, (P D)_T ≈ D_T
(exact where D lies in P's eigenvalue-1 directions: each column ∝ √d_v on a connected component).
The gradient is exact for this forward (gradcheck), and between refreshes a step is matrix
factorisation on z; the graph enters at each refresh, Z̄ = P E⁽⁰⁾, and through the history. For the
true z = P E⁽⁰⁾ this step is still a descent direction — with αₗ = 1/(L+1), P's eigenvalues
(1 − λ^(L+1)) / ((L+1)(1 − λ)) ≥ 0 for Â's λ ∈ [−1, 1], so ⟨P g, g⟩ ≥ 0 — with the same stationary
points where P is invertible: P g preconditioned by P⁻¹. A step reads and writes 3 rows an interaction, as BPR on matrix
factorisation does: O(nnz·d) an epoch plus the refreshes (bench/results/scale.md). Each
layer's rows likewise: E⁽ˡ⁾_T ≈ Ē⁽ˡ⁾_T + D_T (their αₗ-weighted sum is z_T above).
What it leaves out of LightGCN's step, the neighbours' share (P − α₀ I) g, ``--reach`` adds back at
every refresh, summed over the interval and scaled by Adam's 1/√v̂ (reach.py): one more propagation
a refresh.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from . import autograd as ag
from .backend import to_device
from .graph import bipartite_adjacency
from .spmm import layer_sum

try:
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the no-numba CI leg
    HAVE_NUMBA = False

PROPAGATIONS = ("auto", "full", "sampled")
WALK_ALLOCATIONS = ("target", "occurrence", "sqrt")  # walks a distinct target: S, S·count, S·⌈√count⌉


def resolve_propagation(name: str, samples: bool) -> str:
    """``auto``: sampled wherever the run samples by default (``samples``: full precision, or gnaq's or
    pq's row-local deployment; the trainer decides), the full graph otherwise. Sampled trains models as accurate
    as the full graph's, or more, at a fraction of the cost at every size measured, from lastfm's
    64 k interactions up (bench/results/main_command.md, bench/results/scale.md)."""
    if name not in PROPAGATIONS:
        raise ValueError(f"--propagation {name!r} unknown; choose from {PROPAGATIONS}")
    if name == "auto":
        return "sampled" if samples else "full"
    return name


def walk_operator(indptr, indices, degree, targets, weights, walks: int, rng: np.random.Generator,
                  impl: str | None = None, comm=None, repeats=None):
    """W_T as CSR (len(targets), N) float32, 1 + walks·L entries a row (repeats summed by products).

    indptr, indices: the binary bipartite adjacency A (N, N) CSR; degree: A's row sums (N,);
    weights: α₀ … α_L; ``walks`` 0: each row is its target alone with weight 1 (the history
    estimator, module docstring). One draw of (L, len(targets)·walks) uniforms; ``impl`` ``numba`` (default
    where it imports) or ``numpy`` (the vectorised twin): the same walks from the same draw.
    ``comm`` (gnaq.comm, W ranks): every rank draws the same uniforms, walks from its own contiguous
    block of targets and the blocks are gathered — the operator of one process, at 1/W of the walks.
    ``repeats`` (len(targets),) ≥ 1: target t's row is the mean of r_t independent such rows — their
    entries side by side, values ÷ r_t (duplicate columns sum in every product), r_t·walks walks.
    """
    distinct = len(targets)
    targets = np.asarray(targets, dtype=indices.dtype)
    if repeats is not None:
        repeats = np.asarray(repeats, dtype=np.int64)
        targets = np.repeat(targets, repeats)
    k, n_layers = len(targets), len(weights) - 1
    uniforms = rng.random((n_layers, k * walks))
    width = 1 + walks * n_layers
    if comm is not None and comm.size > 1:
        block = -(-k // comm.size)
        lo, hi = min(k, comm.rank * block), min(k, (comm.rank + 1) * block)
        columns = np.zeros((block, width), dtype=indices.dtype)
        values = np.zeros((block, width), dtype=np.float32)
        columns[:hi - lo], values[:hi - lo] = walk_rows(indptr, indices, degree, targets[lo:hi], weights, walks,
                                                        uniforms[:, lo * walks:hi * walks], impl)
        columns, values = comm.allgather_rows(columns)[:k], comm.allgather_rows(values)[:k]
    else:
        columns, values = walk_rows(indptr, indices, degree, targets, weights, walks, uniforms, impl)
    if repeats is None:
        indptr_w = np.arange(k + 1, dtype=np.int64) * width
    else:
        values = values / np.repeat(repeats, repeats).astype(np.float32)[:, None]
        indptr_w = np.concatenate([[0], np.cumsum(repeats * width)])
    return scipy.sparse.csr_matrix((values.ravel(), columns.ravel(), indptr_w), shape=(distinct, len(degree)))


def walk_rows(indptr, indices, degree, targets, weights, walks: int, uniforms, impl: str | None = None):
    """(columns, values), each (len(targets), 1 + walks·L): walk_operator's rows from given uniforms."""
    k, n_layers = len(targets), len(weights) - 1
    width = 1 + walks * n_layers
    weights = np.asarray(weights, dtype=np.float64)
    if walks == 0:  # the history estimator: each row is its target alone, weight 1 (module docstring)
        return targets.reshape(k, 1).copy(), np.ones((k, 1), dtype=np.float32)
    if (impl or ("numba" if HAVE_NUMBA else "numpy")) == "numba":
        columns = np.empty((k, width), dtype=indices.dtype)
        values = np.empty((k, width), dtype=np.float32)
        _walks_numba(indptr, indices, targets, weights, walks, uniforms, columns, values)
    else:
        start = np.repeat(targets, walks)
        alive = degree[start] > 0
        root = np.sqrt(np.maximum(degree[start], 1).astype(np.float64))
        current = start
        columns, values = [targets[:, None]], [np.full((k, 1), weights[0])]
        stratum = np.tile(np.arange(walks), k)
        for layer in range(1, n_layers + 1):
            u = (stratum + uniforms[0]) / walks if layer == 1 else uniforms[layer - 1]
            offset = np.minimum((u * degree[current]).astype(np.int64), np.maximum(degree[current] - 1, 0))
            current = np.where(alive, indices[np.where(alive, indptr[current] + offset, 0)], current)
            w = weights[layer] / walks * root / np.sqrt(np.maximum(degree[current], 1)) * alive
            columns.append(current.reshape(k, walks))
            values.append(w.reshape(k, walks))
        columns, values = np.hstack(columns), np.hstack(values).astype(np.float32)
    return columns, values


WALK_BLOCK = 64  # targets whose walks advance together, one hop at a time (numba kernel)

if HAVE_NUMBA:
    @njit(parallel=True, cache=True, nogil=True)
    def _walks_numba(indptr, indices, targets, weights, walks, uniforms, columns, values):  # pragma: no cover
        # A walk is a chain of dependent random reads (a neighbour, then its row's offset), so one walk
        # at a time leaves the memory system idle between them. Here a block of WALK_BLOCK targets'
        # walks take each hop together: WALK_BLOCK·S independent reads in flight (1.6-1.9x at 1 M
        # interactions). A node's degree is read from indptr, on the line its offset is on.
        n_layers = uniforms.shape[0]
        n_targets = targets.shape[0]
        for block in prange((n_targets + WALK_BLOCK - 1) // WALK_BLOCK):
            lo = block * WALK_BLOCK
            n_walks = (min(n_targets, lo + WALK_BLOCK) - lo) * walks
            current = np.empty(n_walks, dtype=indices.dtype)
            first = np.empty(n_walks, dtype=np.int64)
            degree = np.empty(n_walks, dtype=np.int64)
            root = np.empty(n_walks, dtype=np.float64)  # √d_t of the walk's target, 0 when isolated
            for i in range(n_walks):
                t = lo + i // walks
                start = targets[t]
                current[i], first[i] = start, indptr[start]
                degree[i] = indptr[start + 1] - first[i]
                root[i] = np.sqrt(degree[i]) if degree[i] > 0 else 0.0
                if i % walks == 0:
                    columns[t, 0], values[t, 0] = start, weights[0]
            for layer in range(1, n_layers + 1):
                for i in range(n_walks):  # the hop: independent reads of indices
                    if root[i] > 0:
                        s = i % walks
                        u = uniforms[layer - 1, lo * walks + i]
                        if layer == 1:  # stratified: walk s starts in the s-th of S equal slices of t's neighbours
                            u = (s + u) / walks
                        current[i] = indices[first[i] + min(np.int64(u * degree[i]), degree[i] - 1)]
                for i in range(n_walks):  # the new nodes' rows: independent reads of indptr
                    first[i] = indptr[current[i]]
                    degree[i] = indptr[current[i] + 1] - first[i]
                for i in range(n_walks):
                    t, s = lo + i // walks, i % walks
                    j = layer * walks - walks + 1 + s  # the numpy twin's layout: layer-major blocks
                    columns[t, j] = current[i]
                    values[t, j] = weights[layer] / walks * root[i] / np.sqrt(max(degree[i], 1)) if root[i] > 0 else 0.0


class SampledPropagation:
    """z's rows for a batch at O(|T|·S·L·d) a step (module docstring); ``refresh`` takes the
    history H = E⁽⁰⁾ now: Z̄ = P H, and the drift D = E⁽⁰⁾ − H (the embedding's follower) to 0."""

    def __init__(self, model, train, walks: int = 6, allocation: str = "occurrence", gradient_walks=None):
        if walks < 0:
            raise ValueError(f"--walks must be ≥ 0, got {walks}")
        if gradient_walks is not None and not 1 <= gradient_walks <= walks:
            raise ValueError(f"--gradient-walks must be in [1, --walks = {walks}], got {gradient_walks}")
        self.gradient_walks = gradient_walks
        if allocation not in WALK_ALLOCATIONS:
            raise ValueError(f"walk allocation {allocation!r} unknown; choose from {WALK_ALLOCATIONS}")
        self.allocation = allocation
        A = bipartite_adjacency(train)
        self.indptr, self.indices = A.indptr.astype(np.int64), A.indices  # int32 indices: 4 bytes an edge
        self.degree = np.diff(self.indptr)
        self.model, self.walks = model, int(walks)
        self.mean = None
        self.workspace = {}  # Z̄ and layer_sum's scratch, reused by every refresh (and the reach's move)
        embedding = model.embedding
        self.drift = embedding.xp.zeros_like(embedding.data)
        embedding.follower = self.drift  # every optimizer step on E⁽⁰⁾ moves D the same

    def refresh(self) -> None:
        """H ← E⁽⁰⁾: Z̄ ← P E⁽⁰⁾ (full propagation, no graph recorded), D ← 0. For a quantizer that
        quantizes each layer (``needs_layers``) the layers Ē⁽ˡ⁾ = Âˡ H are kept too (L more (N, d)
        tables). The quantizer sees the history (``Quantizer.refreshed``): its whole-table statistics."""
        model = self.model
        quantizer = getattr(model, "quantizer", None)
        with ag.no_grad():
            layers = None
            if getattr(quantizer, "needs_layers", False):
                from .spmm import spmm
                layers = [model.embedding.data]
                for _ in model.layer_weights[1:]:
                    layers.append(spmm(model.norm_adj, layers[-1]))
                self.mean = sum(w * layer for w, layer in zip(model.layer_weights, layers))
                self.layer_means = [None] + layers[1:]  # E⁽⁰⁾'s rows are read from the embedding itself
            else:  # into the buffers of the last refresh (spmm.layer_sum)
                self.mean = layer_sum(model.norm_adj, model.embedding.data, model.layer_weights, self.workspace,
                                      result="history")
        self.drift[...] = 0
        if quantizer is not None:
            quantizer.refreshed(self.mean, layers)

    def _walks(self, targets, rng: np.random.Generator, counts):
        """(W_T on the host, the targets on the model's device, the embedding): the batch's walk operator,
        ``counts`` allocating walks as ``rows`` says; refuses a drift table another sampler took over."""
        from .backend import to_numpy
        targets_np = to_numpy(targets)
        repeats = None
        if counts is not None and self.allocation != "target" and self.walks > 0:
            counts = np.asarray(to_numpy(counts))
            repeats = counts if self.allocation == "occurrence" else np.ceil(np.sqrt(counts)).astype(np.int64)
        comm = getattr(self.model, "comm", None)
        W = walk_operator(self.indptr, self.indices, self.degree, targets_np, self.model.layer_weights,
                          self.walks, rng, comm=comm, repeats=repeats)
        embedding = self.model.embedding
        if embedding.follower is not self.drift:
            raise RuntimeError("sampled propagation: the embedding's follower is not this drift table "
                               "(another SampledPropagation took it over); its z rows would be wrong")
        return W, to_device(np.asarray(targets_np), self.model.device), embedding

    def rows(self, targets, rng: np.random.Generator, counts=None):
        """z_T (len(targets), d) Tensor ≈ (P E⁽⁰⁾)_T, differentiable in the embedding. ``counts``
        (len(targets),): how often each target occurs in the batch; with ``allocation`` "occurrence"
        (or "sqrt") target t gets walks·r_t walks, r_t = counts_t (or ⌈√counts_t⌉), and W_t is the
        mean of its r_t rows — still unbiased, with 1/r_t of the variance where g_t is largest."""
        from .spmm import spmm
        W, index, embedding = self._walks(targets, rng, counts)
        W_grad = W  # the gradient's operator: every walk, or --gradient-walks of them (built on the host)
        if self.gradient_walks is not None and self.gradient_walks < self.walks:
            W_grad = gradient_operator(W, self.walks, self.gradient_walks, len(self.model.layer_weights) - 1, rng)
        W = to_device(W, self.model.device)
        if HAVE_NUMBA and isinstance(embedding.data, np.ndarray) and embedding.data.ndim == 2:
            z = np.empty((len(index), embedding.shape[1]), dtype=embedding.dtype)
            _drift_rows_numba(W.indptr, W.indices, W.data, index, self.mean, self.drift, z)
        else:  # the numpy twin (and cupy): Z̄_T + W D
            z = self.mean[index] + spmm(W, self.drift)
        return ag.sampled_rows(embedding, W if W_grad is W else to_device(W_grad, self.model.device), z, output=True)

    def layer_rows(self, targets, rng: np.random.Generator, counts=None) -> list:
        """[E⁽⁰⁾_T, E⁽¹⁾_T, …, E⁽ᴸ⁾_T]: each layer's rows (len(targets), d) as Tensors differentiable in
        the embedding, for quantizers that quantize every layer (``needs_layers``; ``rows`` is their
        αₗ-weighted sum). E⁽⁰⁾_T is the embedding's rows; for l ≥ 1, from the same walks as ``rows``,

            E⁽ˡ⁾_T ≈ Ē⁽ˡ⁾_T + Wˡ_T D,    Wˡ_T = W_T's hop-l entries ÷ αₗ   (E[Wˡ_T] = (Âˡ)_T)

        exact at a refresh and unbiased after it; ∂E⁽⁰⁾ = Σₗ (Wˡ_T)ᵀ gₗ, row-sparse. With no walks
        Wˡ_T = W_T (the targets' own rows, weight 1): E⁽ˡ⁾_T ≈ Ē⁽ˡ⁾_T + D_T."""
        from .spmm import spmm
        if getattr(self, "layer_means", None) is None:
            raise RuntimeError("sampled layer rows: refresh() first, with a quantizer that needs_layers")
        W, index, embedding = self._walks(targets, rng, counts)
        out = [ag.gather(embedding, index)]
        for layer, W_l in enumerate(hop_operators(W, self.walks, self.model.layer_weights), start=1):
            W_l = to_device(W_l, self.model.device)
            out.append(ag.sampled_rows(embedding, W_l, self.layer_means[layer][index] + spmm(W_l, self.drift),
                                       output=True))
        return out


def gradient_operator(W, walks: int, kept: int, n_layers: int, rng: np.random.Generator):
    """W_T's gradient from ``kept`` of each block's ``walks`` walks (``--gradient-walks``): in every
    (1 + walks·L)-wide block of W (a target's occurrence), the hop-0 entry and the entries of ``kept``
    walks drawn without replacement, those scaled by walks / kept — so E[W'] = W over the draw and
    E[W'ᵀ g] = E[Wᵀ g], unbiased for P_Tᵀ g, while the step's optimizer touches ~kept/walks of the walk
    rows. The forward still uses every walk; ∂E⁽⁰⁾ = W'ᵀ g is not the exact gradient of that forward
    (it is of the same expectation). CSR (T, N), 1 + kept·L entries a block. For ``rows`` (z); the
    per-layer rows (``layer_rows``, BiGeaR) keep every walk in their gradient."""
    width = 1 + walks * n_layers
    blocks = W.nnz // width
    choice = np.argsort(rng.random((blocks, walks)), axis=1)[:, :kept]
    chosen = np.zeros((blocks, walks), dtype=bool)
    np.put_along_axis(chosen, choice, True, axis=1)
    keep = np.concatenate([np.ones((blocks, 1), dtype=bool), np.tile(chosen, (1, n_layers))], axis=1).ravel()
    scale = np.concatenate([np.ones((blocks, 1), dtype=np.float32),
                            np.full((blocks, walks * n_layers), walks / kept, dtype=np.float32)], axis=1).ravel()
    indptr = W.indptr // width * (1 + kept * n_layers)
    return scipy.sparse.csr_matrix(((W.data * scale)[keep], W.indices[keep], indptr), shape=W.shape)


def hop_operators(W, walks: int, weights) -> list:
    """[W¹, …, Wᴸ]: walk_operator's W (T, N) split by hop — entry j of each (1 + walks·L)-wide block
    of a row is hop 0 for j = 0, else hop 1 + ⌊(j − 1) / walks⌋ — each hop's entries ÷ αₗ, so that
    E[Wˡ] = (Âˡ)_T. CSR (T, N) each, in W's order. With no walks (the history estimator) every
    Wˡ is W itself, the targets' own rows at weight 1: E⁽ˡ⁾_T ≈ Ē⁽ˡ⁾_T + D_T."""
    n_layers = len(weights) - 1
    if walks == 0:
        return [W] * n_layers
    width = 1 + walks * n_layers
    lengths = np.diff(W.indptr)
    position = (np.arange(W.nnz) - np.repeat(W.indptr[:-1], lengths)) % width
    hop = np.where(position == 0, 0, 1 + (position - 1) // walks)
    row_blocks = lengths // width  # a row's repeats
    out = []
    for layer in range(1, n_layers + 1):
        keep = hop == layer
        indptr = np.concatenate([[0], np.cumsum(row_blocks * walks)])
        out.append(scipy.sparse.csr_matrix(((W.data[keep] / np.float32(weights[layer])).astype(W.dtype),
                                            W.indices[keep], indptr), shape=W.shape))
    return out


if HAVE_NUMBA:
    @njit(parallel=True, cache=True, nogil=True)
    def _drift_rows_numba(indptr, indices, data, targets, mean, drift, out):  # pragma: no cover
        """out[t] = Z̄[T_t] + Σ_p W_tp D[col p]: one pass over W's rows."""
        for t in prange(targets.shape[0]):
            for c in range(out.shape[1]):
                out[t, c] = mean[targets[t], c]
            for p in range(indptr[t], indptr[t + 1]):
                j, w = indices[p], data[p]
                for c in range(out.shape[1]):
                    out[t, c] += w * drift[j, c]


def default_refresh_every(steps_per_epoch: int, refreshes: int = 2) -> int:
    """Steps between refreshes so that an epoch refreshes ``refreshes`` times (at least every step)."""
    return max(1, math.ceil(steps_per_epoch / refreshes))
