"""Finite-difference check of the whole LightGCN loss on a tiny graph (float64).

gather → L × spmm(Â) → layer mean → BPR + L2 (+ score distillation), differentiated w.r.t. E⁽⁰⁾ (and any quantizer
parameters through ``quantizer_factory``). Used by tests and bench/gradcheck.py.
"""

from __future__ import annotations

import numpy as np

from ..autograd.gradcheck import max_relative_error
from ..data import make_synthetic
from ..graph import normalized_adjacency


def tiny_problem(seed: int = 0):
    data = make_synthetic(n_users=12, n_items=10, mean_degree=4, n_clusters=2, seed=seed)
    adj = normalized_adjacency(data.train, dtype=np.float64)
    rng = np.random.default_rng(seed)
    users = rng.integers(0, data.n_users, 8)
    pos = rng.integers(0, data.n_items, 8)
    neg = rng.integers(0, data.n_items, 8)
    users[1] = users[0]  # repeated rows in the batch
    return data, adj, users, pos, neg


def lightgcn_loss_error(n_layers: int = 3, reg: float = 1e-2, seed: int = 0, distill: float = 0.0) -> float:
    from .lightgcn import LightGCN
    data, adj, users, pos, neg = tiny_problem(seed)
    model = LightGCN(data.n_users, data.n_items, adj, dim=4, n_layers=n_layers, seed=seed,
                     init_std=0.5, dtype=np.float64)
    teacher = np.random.default_rng(seed + 7).standard_normal(model.embedding.data.shape) * 0.5

    def loss(embedding):
        model.embedding = embedding
        return model.bpr_loss(users, pos, neg, reg, teacher=teacher, distill=distill)[0]
    return max_relative_error(loss, [model.embedding.data.copy()])


def model_checks():
    yield "lightgcn loss (L=3, BPR + L2) wrt E0", lightgcn_loss_error(3)
    yield "lightgcn loss (L=1, no L2) wrt E0", lightgcn_loss_error(1, reg=0.0, seed=1)
    yield "lightgcn loss + score distillation (λ=0.5) wrt E0", lightgcn_loss_error(2, distill=0.5, seed=2)
