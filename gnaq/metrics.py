"""Full-ranking top-K evaluation (the LightGCN protocol), memory-bounded and device-agnostic.

For each user u with a non-empty test set T_u: score every item, mask u's training items,
take the top K (ties broken by smaller item index), and with hits h_r ∈ {0,1} at ranks r = 1..K:

    Recall@K    = Σ h_r / |T_u|
    Precision@K = Σ h_r / K
    HitRate@K   = 1[Σ h_r > 0]
    NDCG@K      = (Σ h_r / log2(r + 1)) / (Σ_{r ≤ min(K, |T_u|)} 1 / log2(r + 1))

averaged over users with test items. Users are scored in chunks of ``chunk_size`` rows, so the
dense score block is (chunk_size, n_items); by default the chunk is sized to ``memory_mb``.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, to_device

METRIC_NAMES = ("recall", "ndcg", "precision", "hitrate")


try:  # the per-row heap selection below is the fast twin of top_k_numpy
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the no-numba CI leg
    HAVE_NUMBA = False


def top_k_items(scores, k: int, impl: str | None = None):
    """Indices (rows, min(k, n)) of the k highest scores per row, best first, ties → smaller index first.

    ``impl``: ``numba`` (the default for numpy arrays where it imports: one pass a row keeping a
    k-heap, O(n + k log k · log(n/k)), NaN ranked as −inf) or ``numpy`` (the oracle, and cupy).
    """
    xp = get_array_module(scores)
    if (impl or ("numba" if HAVE_NUMBA and xp is np and scores.ndim == 2 else "numpy")) == "numba":
        scores = np.ascontiguousarray(scores)
        if scores.dtype not in (np.float32, np.float64):
            scores = scores.astype(np.float64)
        out = np.empty((scores.shape[0], min(k, scores.shape[1])), dtype=np.int64)
        if out.size:
            _top_k_numba(scores, out)
        return out
    return top_k_numpy(scores, k)


def top_k_numpy(scores, k: int):
    """top_k_items on numpy or cupy: argpartition finds the k best in O(n); only rows whose k-th
    value is tied with items left outside are redone with a stable full sort, so ties resolve
    exactly as a stable sort would."""
    xp = get_array_module(scores)
    n = scores.shape[1]
    k = min(k, n)
    part = xp.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = xp.take_along_axis(scores, part, axis=1)
    kth = part_scores.min(axis=1, keepdims=True)
    n_tied_total = (scores == kth).sum(axis=1)
    n_tied_inside = (part_scores == kth).sum(axis=1)
    ambiguous = xp.flatnonzero(n_tied_total > n_tied_inside)
    if ambiguous.size:
        part[ambiguous] = xp.argsort(-scores[ambiguous], axis=1, kind="stable")[:, :k]
    part = xp.sort(part, axis=1)  # by index, so the stable sort below breaks ties by index
    order = xp.argsort(-xp.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return xp.take_along_axis(part, order, axis=1)


if HAVE_NUMBA:
    @njit(cache=True, nogil=True, inline="always")
    def _worse(a_score, a_index, b_score, b_index):  # pragma: no cover - jitted
        """(score, index) a ranks below b: a lower score, or the same score and a larger index."""
        return a_score < b_score or (a_score == b_score and a_index > b_index)

    @njit(cache=True, nogil=True)
    def _sift_down(heap_s, heap_i, size, score, index):  # pragma: no cover - jitted
        """Place (score, index) at the root of the min-heap (worst at the root) of ``size``."""
        c = 0
        while True:
            child = 2 * c + 1
            if child >= size:
                break
            if child + 1 < size and _worse(heap_s[child + 1], heap_i[child + 1], heap_s[child], heap_i[child]):
                child += 1
            if not _worse(heap_s[child], heap_i[child], score, index):
                break
            heap_s[c], heap_i[c] = heap_s[child], heap_i[child]
            c = child
        heap_s[c], heap_i[c] = score, index

    @njit(parallel=True, cache=True, nogil=True)
    def _top_k_numba(scores, out):  # pragma: no cover - jitted
        """out[r] = the k = out.shape[1] best (score, −index) of row r, best first: the first k items
        fill a heap whose root is the worst kept; a later item (larger index) enters only with a
        strictly higher score than the root; the heap is emptied worst-first into out[r, k−1 … 0]."""
        k, n = out.shape[1], scores.shape[1]
        for r in prange(scores.shape[0]):
            heap_s = np.empty(k, dtype=scores.dtype)
            heap_i = np.empty(k, dtype=np.int64)
            for j in range(k):  # sift up
                s = scores[r, j]
                if s != s:
                    s = -np.inf
                c = j
                while c > 0 and _worse(s, j, heap_s[(c - 1) // 2], heap_i[(c - 1) // 2]):
                    heap_s[c], heap_i[c] = heap_s[(c - 1) // 2], heap_i[(c - 1) // 2]
                    c = (c - 1) // 2
                heap_s[c], heap_i[c] = s, j
            for j in range(k, n):
                s = scores[r, j]
                if s > heap_s[0]:  # NaN compares False: never enters
                    _sift_down(heap_s, heap_i, k, s, j)
            for size in range(k, 0, -1):
                out[r, size - 1] = heap_i[0]
                _sift_down(heap_s, heap_i, size - 1, heap_s[size - 1], heap_i[size - 1])


def _discounts(xp, k):
    return 1.0 / xp.log2(xp.arange(2, k + 2, dtype=xp.float64))


def evaluate(user_emb, item_emb, train, test, ks=(10, 20), chunk_size: int | None = None,
             memory_mb: float = 512, users=None, score_fn=None, progress: bool = False,
             top_k_impl: str | None = None) -> dict:
    """Mean Recall/NDCG/Precision/HitRate@K for every K in ks, one pass over users.

    user_emb: (n_users, d), item_emb: (n_items, d) arrays on numpy or cupy; train, test: scipy
    CSR (n_users, n_items). ``score_fn(user_rows) -> (len, n_items)`` replaces the dot product
    (e.g. packed-domain scoring). ``users``: evaluate these rows only (e.g. a fixed sample).
    A K above n_items ranks every item (a list of n_items, counted as K long for Precision@K).
    Returns {"recall@10": ..., ..., "ndcg@10_se": ..., "users": n_evaluated}: NDCG@K's standard
    error over users, √((mean(x²) − mean(x)²) / n), says how far a sample's mean may be from all users'.
    ``progress``: a progress bar over the user chunks. ``top_k_impl``: top_k_items' ``impl``.
    """
    xp = get_array_module(user_emb, item_emb)
    n_items = item_emb.shape[0]
    max_k = max(ks)
    if chunk_size is None:
        chunk_size = max(1, int(memory_mb * 2**20 // (n_items * 4 * 4)))
    test_counts = np.diff(test.indptr)
    eval_users = np.flatnonzero(test_counts > 0) if users is None else np.asarray(users)
    totals = {f"{m}@{k}": 0.0 for k in ks for m in METRIC_NAMES}
    squares = {k: 0.0 for k in ks}
    discounts = _discounts(xp, max_k)
    idcg_cum = xp.cumsum(discounts)
    from tqdm.auto import tqdm
    for start in tqdm(range(0, len(eval_users), chunk_size), desc="evaluating", unit="chunk", leave=False,
                      disable=not progress):
        rows = eval_users[start:start + chunk_size]
        if score_fn is not None:
            scores = score_fn(rows)
        else:
            scores = user_emb[to_device(rows, _dev(xp))] @ item_emb.T
        scores = scores.astype(xp.float32, copy=False)
        seen = train[rows]
        seen_rows = np.repeat(np.arange(len(rows)), np.diff(seen.indptr))
        scores[to_device(seen_rows, _dev(xp)), to_device(seen.indices, _dev(xp))] = -xp.inf
        top = top_k_items(scores, min(max_k, n_items), top_k_impl)
        hits = _hits(test[rows], top, n_items, xp)
        if hits.shape[1] < max_k:  # a catalogue smaller than K: the list holds every item, the rest misses
            hits = xp.concatenate([hits, xp.zeros((hits.shape[0], max_k - hits.shape[1]), dtype=hits.dtype)], axis=1)
        n_test = to_device(test_counts[rows].astype(np.float64), _dev(xp))
        for k in ks:
            h = hits[:, :k]
            n_hit = h.sum(axis=1)
            dcg = (h * discounts[:k]).sum(axis=1)
            idcg = idcg_cum[xp.minimum(n_test, k).astype(xp.int64) - 1]
            totals[f"recall@{k}"] += float((n_hit / n_test).sum())
            totals[f"precision@{k}"] += float((n_hit / k).sum())
            totals[f"hitrate@{k}"] += float((n_hit > 0).sum())
            totals[f"ndcg@{k}"] += float((dcg / idcg).sum())
            squares[k] += float(((dcg / idcg) ** 2).sum())
    n = max(1, len(eval_users))
    out = {name: value / n for name, value in totals.items()}
    for k in ks:
        out[f"ndcg@{k}_se"] = max(0.0, squares[k] / n - out[f"ndcg@{k}"] ** 2) ** 0.5 / n ** 0.5
    out["users"] = int(len(eval_users))
    return out


def _hits(test_rows, top, n_items: int, xp):
    """hits (len(rows), k) float64: 1 where top[r, j] is among test row r's items — each (r, item)
    as the key r·n_items + item, looked up in the sorted keys of the test rows (no dense rows)."""
    test_rows = test_rows.tocsr()
    test_rows.sort_indices()
    counts = np.diff(test_rows.indptr)
    keys = np.repeat(np.arange(len(counts), dtype=np.int64), counts) * n_items + test_rows.indices
    if not keys.size:
        return xp.zeros(top.shape, dtype=xp.float64)
    keys = to_device(keys, _dev(xp))
    queries = xp.arange(top.shape[0], dtype=xp.int64)[:, None] * n_items + top
    found = keys[xp.minimum(xp.searchsorted(keys, queries), keys.size - 1)] == queries
    return found.astype(xp.float64)


def _dev(xp) -> str:
    return "cpu" if xp is np else "cuda"
