"""Seeded per-user random split of implicit interactions (for datasets without an official one).

For a user with n interactions, ⌊test_ratio·n⌋ go to test and ⌊valid_ratio·n⌋ of the rest to
validation, but at least one always stays in train. Vectorised: one random key per interaction,
a sort by (user, key), and each interaction's rank within its user decides its split.
"""

from __future__ import annotations

import numpy as np


def split_per_user(users, items, test_ratio: float = 0.2, valid_ratio: float = 0.0, seed: int = 0,
                   min_valid: int = 0):
    """Return boolean masks (train, valid, test) over the interactions (users, items are indices).

    A user with n interactions gets ⌊test_ratio·n⌋ test and max(⌊valid_ratio·n⌋, min_valid) valid
    ones, drawn at random (seeded), always leaving at least one for train. ``min_valid=1`` gives
    every user with two or more interactions a validation item — on sparse data (≈ 7 a user)
    ⌊0.1·n⌋ alone holds out only the users with ten or more."""
    if not 0 <= test_ratio < 1 or not 0 <= valid_ratio < 1 or test_ratio + valid_ratio >= 1:
        raise ValueError(f"need 0 ≤ test_ratio, valid_ratio and their sum < 1; got {test_ratio}, {valid_ratio}")
    users = np.asarray(users)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(users)), users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_test = np.floor(test_ratio * counts).astype(np.int64)
    n_valid = np.maximum(np.floor(valid_ratio * counts).astype(np.int64), min_valid if valid_ratio > 0 else 0)
    too_many = n_test + n_valid >= counts  # keep ≥ 1 train item per user
    n_valid = np.where(too_many, np.maximum(counts - 1 - n_test, 0), n_valid)
    n_test = np.where(n_test >= counts, counts - 1, n_test)
    rank_test = np.repeat(n_test, counts)
    rank_valid = rank_test + np.repeat(n_valid, counts)
    test = np.zeros(len(users), dtype=bool)
    valid = np.zeros(len(users), dtype=bool)
    test[order] = rank < rank_test
    valid[order] = (rank >= rank_test) & (rank < rank_valid)
    return ~(test | valid), valid, test
