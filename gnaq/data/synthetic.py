"""A seeded synthetic implicit-feedback dataset with power-law degrees and real structure.

Users and items get latent clusters; user degrees follow a Zipf-like law, and each user's items
are drawn mostly (``affinity``) from its own cluster with item popularity ∝ rank^(−exponent),
so a recommender can learn something a random ranking cannot. The offline default for demos
and tests.
"""

from __future__ import annotations

import numpy as np

from .interactions import Interactions, binary_csr
from .split import split_per_user


def make_synthetic(n_users: int = 500, n_items: int = 300, mean_degree: float = 20.0,
                   n_clusters: int = 8, affinity: float = 0.8, exponent: float = 0.8,
                   valid_ratio: float = 0.1, test_ratio: float = 0.2, seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_cluster = rng.integers(n_clusters, size=n_items)
    raw_degree = (np.arange(1, n_users + 1) ** -0.5)[rng.permutation(n_users)]
    degree = np.maximum(3, np.round(raw_degree / raw_degree.mean() * mean_degree)).astype(np.int64)
    degree = np.minimum(degree, n_items // 2)
    popularity = (np.arange(1, n_items + 1) ** -exponent)[rng.permutation(n_items)]

    users = np.repeat(np.arange(n_users), degree)
    own = rng.random(len(users)) < affinity
    items = np.empty(len(users), dtype=np.int64)
    global_p = popularity / popularity.sum()
    items[~own] = rng.choice(n_items, size=int((~own).sum()), p=global_p)
    for c in range(n_clusters):  # loop over clusters (few), not over interactions
        members = np.flatnonzero(item_cluster == c)
        pick = own & (user_cluster[users] == c)
        if len(members) == 0:
            members = np.arange(n_items)
        p = popularity[members] / popularity[members].sum()
        items[pick] = members[rng.choice(len(members), size=int(pick.sum()), p=p)]
    pairs = np.unique(users * n_items + items)  # merge duplicate draws
    users, items = pairs // n_items, pairs % n_items
    train, valid, test = split_per_user(users, items, test_ratio, valid_ratio, seed)
    csr = lambda mask: binary_csr(users[mask], items[mask], n_users, n_items)  # noqa: E731
    return Interactions("synthetic", csr(train), csr(test), csr(valid) if valid_ratio else None,
                        source=f"synthetic(seed={seed})")
