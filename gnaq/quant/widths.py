"""Node-aware mixed precision, shared by the gnaq, ste and lsq quantizers.

The ``mix_share`` of users and, separately, of items with the largest degree get ``mix_bits``
(default 4), the others ``bits``: on average bits + share·(mix_bits − bits) per value. Degree is
the graph's, so the widths are fixed for a run (exact on resume); ``mix_by="random"`` ranks by a
seeded random key instead (the control). Each node's step Δ_{bₙ} follows its width.
"""

from __future__ import annotations

import numpy as np

from .uniform import optimal_step

MIX_BITS = (2, 3, 4, 8)


def check_mix(name: str, bits: int, mix_share: float, mix_bits: int, mix_by: str) -> tuple:
    """Validated (share, high bits, ranking) of a quantizer's mix_* options."""
    if not 0 <= mix_share < 1 or mix_bits not in MIX_BITS or (mix_share and mix_bits <= bits):
        raise ValueError(f"{name}: mix_share must be in [0, 1) and mix_bits in {MIX_BITS} above bits ({bits}); "
                         f"got {mix_share}, {mix_bits}")
    if mix_by not in ("degree", "random"):
        raise ValueError(f"{name}: mix_by must be 'degree' or 'random', got {mix_by!r}")
    return float(mix_share), int(mix_bits), mix_by


def node_widths_and_steps(model, bits: int, mix: tuple):
    """(width, step) for a model: the plain ``bits`` and Δ_b, or, when mix's share > 0, (N, 1)
    arrays of each node's width and Δ_{bₙ} in the embedding's dtype, on its device."""
    share, high, by = mix
    if not share:
        return bits, optimal_step(bits)
    dtype = model.embedding.data.dtype
    widths = mixed_widths(model, bits, high, share, by)
    steps = np.array([optimal_step(int(b)) for b in widths], dtype=dtype)[:, None]
    return model.xp.asarray(widths[:, None].astype(dtype)), model.xp.asarray(steps)


def mixed_widths(model, low: int, high: int, share: float, by: str = "degree") -> np.ndarray:
    """(N,) widths — `high` for the `share` of users and of items with the largest degree
    (ties → smaller index), `low` for the rest."""
    from ..backend import to_numpy
    degree = np.diff(to_numpy(model.norm_adj).indptr)
    if by == "random":
        degree = np.random.default_rng(0).random(len(degree))
    return widths_by_score(degree, model.n_users, low, high, share)


def node_groups(model, busy_share: float, idle_share: float = 0.0, item_score=None) -> np.ndarray:
    """(N,) transform-coding groups, numbered in this order as they exist: 0 the rest, then the
    busy_share of users and of items with the largest degree, then the idle_share of items (items only:
    an uncoded user could be recommended nothing) with the smallest ``item_score`` ((n_items,); by
    default their degree), the busy ones left out (ties → smaller index)."""
    from ..backend import to_numpy
    busy = mixed_widths(model, 0, 1, busy_share)
    if not idle_share:
        return busy
    score = np.diff(to_numpy(model.norm_adj).indptr).astype(np.float64)
    if item_score is not None:
        score[model.n_users:] = item_score
    score = np.where(busy == 1, np.inf, score)  # (the busy are never idle)
    idle = widths_by_score(-score, model.n_users, 0, 1, idle_share).astype(bool)
    idle[:model.n_users] = False
    return np.where(idle, 1 + (busy_share > 0), busy)


IDLE_RULES = ("degree", "recommended")  # gnaq idle_by: how the idle items are ranked
IDLE_TOP_K = 20             # the list whose appearances rank items for idle_by="recommended"
IDLE_SAMPLE_USERS = 32_768  # users (seeded sample, all of them below it) whose lists are counted
SCORE_BLOCK = 1 << 25       # user·item scores computed at a time (128 MiB of float32)


def recommendation_counts(z, model, k: int = IDLE_TOP_K, sample: int = IDLE_SAMPLE_USERS, seed: int = 0) -> np.ndarray:
    """(n_items,) float64: how many of a sample of users have each item in their top-k, scored as the
    device does, sᵤᵢ = zᵤ · zᵢ (z (N, d) float, users first), each user's training items (its neighbours in
    the graph) excluded. The sample is every user up to ``sample``, else ``sample`` drawn without
    replacement with ``seed``. Cost O(sample · n_items · d), in blocks of SCORE_BLOCK scores."""
    from ..backend import to_numpy
    z, adj = np.asarray(to_numpy(z), dtype=np.float32), to_numpy(model.norm_adj)
    n_users = model.n_users
    users = np.arange(n_users) if n_users <= sample else \
        np.sort(np.random.default_rng(seed).choice(n_users, sample, replace=False))
    items = z[n_users:]
    n_items = len(items)
    k = min(k, n_items)
    counts = np.zeros(n_items)
    block = max(1, SCORE_BLOCK // max(n_items, 1))
    for start in range(0, len(users), block):
        rows = users[start:start + block]
        scores = z[rows] @ items.T  # (block, n_items)
        for r, u in enumerate(rows):
            seen = adj.indices[adj.indptr[u]:adj.indptr[u + 1]]
            scores[r, seen[seen >= n_users] - n_users] = -np.inf
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_items else \
            np.broadcast_to(np.arange(n_items), (len(rows), n_items))
        kept = np.isfinite(np.take_along_axis(scores, top, axis=1))  # (a user who has seen almost all)
        counts += np.bincount(top[kept], minlength=n_items)
    return counts


def recommended_score(z, model) -> np.ndarray:
    """(n_items,) the idle ranking of idle_by="recommended": recommendation_counts, ties broken by
    degree (count + degree / (max degree + 1): a never-listed item of degree 1 is the first idle)."""
    from ..backend import to_numpy
    degree = np.diff(to_numpy(model.norm_adj).indptr)[model.n_users:].astype(np.float64)
    return recommendation_counts(z, model) + degree / (degree.max(initial=0) + 1)


def widths_by_score(score, n_users: int, low: int, high: int, share: float) -> np.ndarray:
    """(N,) widths: `high` for the `share` of users (rows < n_users) and, separately, of items with
    the largest score (ties → smaller index), `low` for the rest."""
    widths = np.full(len(score), low, dtype=np.int64)
    for lo, hi in ((0, n_users), (n_users, len(score))):
        top = lo + np.argsort(-score[lo:hi], kind="stable")[: int(round(share * (hi - lo)))]
        widths[top] = high
    return widths


HEADER_ALLOWANCE = 2048  # bytes of a transform-coded file's header (its column widths and steps) and CRC


def average_bits_for_ratio(n_nodes: int, dim: int, ratio: float, scale_bytes: int = 1, table_levels: int = 256,
                           gram: bool = True) -> float:
    """Bits a value that make a history-free graph-free file of N rows (every node, or the items of an
    item-only file) ``ratio`` times smaller than the float32 file of the same rows: with
    O = 4·d(d+1)/2 (the items' Gram matrix, unless ``gram`` is False) + HEADER_ALLOWANCE in both,
        N·(B + s) + 4·L + O ≤ (4·d·N + O) / ratio
    for B row bytes, s bytes of scale a node and L scale levels; a byte a row left for rounding up:
    average = 8·(B − 1) / d."""
    overhead = (4 * dim * (dim + 1) // 2 if gram else 0) + HEADER_ALLOWANCE
    row_bytes = ((4 * dim * n_nodes + overhead) / ratio - overhead - 4 * table_levels) / n_nodes - scale_bytes
    return 8 * (row_bytes - 1) / dim


def mean_bits(width) -> float:
    """Average bits per value of a width (int) or per-node widths ((N, 1) array)."""
    return float(width.mean()) if np.ndim(width) else float(width)
