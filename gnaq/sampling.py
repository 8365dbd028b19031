"""Vectorised BPR triplet sampling.

One epoch = one (u, p, n) triplet per training interaction (u, p), in random order; the
negative n is drawn uniformly from all items and re-drawn, for the offending triplets only,
while it is one of u's training items. Membership is a binary search over the sorted keys
u·n_items + i of the CSR (row-major with sorted indices, hence already globally sorted).
"""

from __future__ import annotations

import numpy as np


def sample_bpr_epoch(train, rng: np.random.Generator, max_rounds: int = 100):
    """Return (users, pos_items, neg_items) int64 arrays of length train.nnz, shuffled."""
    n_users, n_items = train.shape
    users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(train.indptr))
    pos = train.indices.astype(np.int64)
    keys = users * n_items + pos                     # sorted: CSR with sorted indices
    order = rng.permutation(len(users))
    users, pos = users[order], pos[order]
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
