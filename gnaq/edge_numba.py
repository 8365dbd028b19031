"""The numba kernels of gnaq.edge (picked at load when numba imports): integer dot products over
the item codes unpacked once, a one-pass top-k and the CSR propagation step; their oracles are the
pure-Python paths in gnaq/edge.py and the numpy twins in gnaq/edge_numpy.py.
"""

import numpy as np

try:
    from . import edge_numpy
except ImportError:  # copied beside edge.py on a device
    import edge_numpy

_KERNEL = {}


def scores(model, a_user, user_quarter):
    a_items = edge_numpy.item_ints(model)
    out = np.empty(model.n_items, dtype=np.float64)
    kernels()["score"](a_items, np.asarray(a_user, dtype=np.int32 if model.int32_sums else np.int64),
                              edge_numpy.cached(model)["scales"], np.asarray(user_quarter, dtype=np.float64), out)
    return out


def top_k(model, scores, u, k, exclude_seen):
    """Top-k (score, index) pairs by the one-pass kernel (ties → smaller index), seen items skipped."""
    seen = edge_numpy.seen_array(model, u) if exclude_seen else np.empty(0, dtype=np.uint32)
    index, values = np.empty(k, dtype=np.int64), np.empty(k, dtype=np.float64)
    filled = kernels()["top_k"](scores, seen, k, index, values)
    return list(zip(values[:filled].tolist(), index[:filled].tolist()))


def kernels():
    """Integer dot products aᵤ·aᵢ per group, then the shared float formula; compiled on first
    use. Serial: one user's scan of a device-sized catalogue is tens of microseconds. The sum
    accumulates in a_user's integer type: int32 where |Σ| ≤ D·(m·(2^b − 1))² < 2^31 (D < 33,000
    at 8 bits without column steps), which lets LLVM vectorise it, else int64."""
    if "score" not in _KERNEL:
        from numba import njit

        @njit(cache=False)
        def score(a_items, a_user, scales, user_quarter, out):  # pragma: no cover - jitted
            n, dim = a_items.shape
            G = scales.shape[1]
            per_group = dim // G
            for i in range(n):
                acc = 0.0
                for g in range(G):
                    total = a_user[0] - a_user[0]  # 0 of a_user's type
                    lo = g * per_group
                    for k in range(per_group):  # (this loop form vectorises; range(lo, hi) did not)
                        total += a_user.dtype.type(a_items[i, lo + k]) * a_user[lo + k]
                    acc += total * user_quarter[g] * scales[i, g]
                out[i] = acc
        @njit(cache=False)
        def top_k(scores, seen, k, out_index, out_score):  # pragma: no cover - jitted
            """One pass, items in index order, seen (sorted) skipped; a sorted list of the k best
            by (score desc, index asc): an equal score never displaces an earlier item."""
            filled = 0
            s = 0
            for i in range(scores.shape[0]):
                while s < seen.shape[0] and seen[s] < i:
                    s += 1
                if s < seen.shape[0] and seen[s] == i:
                    continue
                value = scores[i]
                if filled == k and not value > out_score[k - 1]:
                    continue
                pos = filled if filled < k else k - 1
                while pos > 0 and value > out_score[pos - 1]:
                    if pos < k:
                        out_score[pos] = out_score[pos - 1]
                        out_index[pos] = out_index[pos - 1]
                    pos -= 1
                out_score[pos] = value
                out_index[pos] = i
                if filled < k:
                    filled += 1
            return filled

        @njit(cache=False)
        def spread(ptr, neighbours, w, src, out):  # pragma: no cover - jitted
            """out[r] = Σ_{e ∈ [ptr[r], ptr[r+1])} w[e]·src[neighbours[e]] (a CSR product, serial)."""
            for r in range(out.shape[0]):
                for k in range(out.shape[1]):
                    out[r, k] = 0.0
                for e in range(ptr[r], ptr[r + 1]):
                    c, we = neighbours[e], w[e]
                    for k in range(out.shape[1]):
                        out[r, k] += we * src[c, k]

        _KERNEL["score"] = score
        _KERNEL["top_k"] = top_k
        _KERNEL["spread"] = spread
    return _KERNEL
