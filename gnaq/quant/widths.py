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


def node_groups(model, busy_share: float, idle_share: float = 0.0) -> np.ndarray:
    """(N,) transform-coding groups by degree, numbered in this order as they exist: 0 the rest, then the
    busy_share of users and of items with the largest degree, then the idle_share of items (items only:
    an uncoded user could be recommended nothing) with the smallest (ties → smaller index)."""
    from ..backend import to_numpy
    busy = mixed_widths(model, 0, 1, busy_share)
    if not idle_share:
        return busy
    degree = np.diff(to_numpy(model.norm_adj).indptr)
    idle = widths_by_score(-degree, model.n_users, 0, 1, idle_share).astype(bool) & (busy == 0)
    idle[:model.n_users] = False
    return np.where(idle, 1 + (busy_share > 0), busy)


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
