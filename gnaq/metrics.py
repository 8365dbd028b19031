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


def top_k_items(scores, k: int):
    """Indices of the k highest scores per row, best first, ties → smaller index first.

    argpartition finds the k best in O(n); only rows whose k-th value is tied with items left
    outside are redone with a stable full sort, so ties resolve exactly as a stable sort would.
    """
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


def _discounts(xp, k):
    return 1.0 / xp.log2(xp.arange(2, k + 2, dtype=xp.float64))


def evaluate(user_emb, item_emb, train, test, ks=(10, 20), chunk_size: int | None = None,
             memory_mb: float = 512, users=None, score_fn=None, progress: bool = False) -> dict:
    """Mean Recall/NDCG/Precision/HitRate@K for every K in ks, one pass over users.

    user_emb: (n_users, d), item_emb: (n_items, d) arrays on numpy or cupy; train, test: scipy
    CSR (n_users, n_items). ``score_fn(user_rows) -> (len, n_items)`` replaces the dot product
    (e.g. packed-domain scoring). ``users``: evaluate these rows only (e.g. a fixed sample).
    Returns {"recall@10": ..., ..., "ndcg@10_se": ..., "users": n_evaluated}: NDCG@K's standard
    error over users, √((mean(x²) − mean(x)²) / n), says how far a sample's mean may be from all users'.
    ``progress``: a progress bar over the user chunks.
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
        top = top_k_items(scores, max_k)
        relevant = to_device(test[rows].toarray().astype(bool), _dev(xp))
        hits = xp.take_along_axis(relevant, top, axis=1).astype(xp.float64)
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


def _dev(xp) -> str:
    return "cpu" if xp is np else "cuda"
