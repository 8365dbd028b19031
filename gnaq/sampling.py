"""Vectorised BPR triplet sampling.

One epoch = nnz (u, p, n) triplets, in one of two ways (``by``):
- "interactions": one triplet per training interaction (u, p), in random order — users weigh
  by their degree;
- "users": LightGCN's sampler — u uniform over users with at least one item, p uniform over u's
  items — every user weighs the same, whatever their degree (what LightGCN's published figures use).
The negative n is drawn uniformly from all items and re-drawn, for the offending triplets only,
while it is one of u's training items. Membership is a binary search over the sorted keys
u·n_items + i of the CSR (row-major with sorted indices, hence already globally sorted).
"""

from __future__ import annotations

import numpy as np


SAMPLERS = ("interactions", "users")


def sample_bpr_epoch(train, rng: np.random.Generator, by: str = "interactions", max_rounds: int = 100):
    """Return (users, pos_items, neg_items) int64 arrays of length train.nnz, in random order."""
    if by not in SAMPLERS:
        raise ValueError(f"sampler {by!r} unknown; choose from {SAMPLERS}")
    n_users, n_items = train.shape
    degree = np.diff(train.indptr)
    keys = np.repeat(np.arange(n_users, dtype=np.int64), degree) * n_items + train.indices  # sorted (CSR)
    if by == "interactions":
        order = rng.permutation(train.nnz)
        users, pos = keys[order] // n_items, train.indices[order].astype(np.int64)
    else:
        active = np.flatnonzero(degree)
        users = active[rng.integers(0, len(active), size=train.nnz)]
        offset = (rng.random(train.nnz) * degree[users]).astype(np.int64)   # uniform in [0, deg)
        pos = train.indices[train.indptr[users] + offset].astype(np.int64)
    neg = rng.integers(0, n_items, size=len(users), dtype=np.int64)
    todo = np.flatnonzero(_is_member(keys, users * n_items + neg))
    for _ in range(max_rounds):
        if todo.size == 0:
            break
        neg[todo] = rng.integers(0, n_items, size=todo.size, dtype=np.int64)
        todo = todo[_is_member(keys, users[todo] * n_items + neg[todo])]
    return users, pos, neg


def _is_member(sorted_keys, queries):
    where = np.searchsorted(sorted_keys, queries)
    where = np.minimum(where, len(sorted_keys) - 1)
    return sorted_keys[where] == queries
