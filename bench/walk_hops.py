"""Which hop of the sampled walks carries their variance: should deeper hops keep fewer walks?

    python bench/walk_hops.py [--datasets ml-1m gowalla lastfm synthetic:4] [--walks 6] [--batch-size 8192]

A walk's entry at hop l weighs αₗ/S · √(d_t / d_v) (gnaq/sampled.py), so its contribution to the
estimate of z_T (and of the gradient W_Tᵀ g) has a per-walk second moment ∝ αₗ² · E[d_t / d_{v_l}]
(times the drift's or gradient's row norm). With S_l walks at hop l the total variance is
Σₗ Vₗ / S_l; for a fixed number of entries Σₗ S_l (the step's cost) it is least at S_l ∝ √Vₗ
(Neyman allocation). The table gives E[d_t / d_{v_l}] over one BPR batch's occurrences (users,
positives, negatives: the rows the default "occurrence" allocation walks from) and the optimal
S_l / S_1. Synthetic graphs: "synthetic:M", bench/scale.py's graph of M million interactions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import markdown_table  # noqa: E402


def hop_moments(data, walks: int, batch_size: int, n_layers: int = 3, seed: int = 0) -> dict:
    """{side: [E[d_t / d_v] at hop 1 … L]} over one batch's occurrences, side users / positives / negatives / all."""
    from gnaq.graph import bipartite_adjacency
    from gnaq.sampled import walk_operator
    from gnaq.sampling import sample_bpr_epoch
    A = bipartite_adjacency(data.train)
    indptr = A.indptr.astype(np.int64)
    rng = np.random.default_rng(seed)
    users, pos, neg = sample_bpr_epoch(data.train, rng)
    n_users, b = data.train.shape[0], batch_size
    targets = np.concatenate([users[:b], pos[:b] + n_users, neg[:b] + n_users])
    weight = 1.0 / (n_layers + 1)
    W = walk_operator(indptr, A.indices, np.diff(indptr), targets, [weight] * (n_layers + 1), walks, rng)
    ratio = (W.data.reshape(len(targets), 1 + n_layers * walks)[:, 1:] * walks / weight) ** 2  # d_t / d_v a walk
    sides = {"users": slice(0, b), "positives": slice(b, 2 * b), "negatives": slice(2 * b, 3 * b), "all": slice(None)}
    return {side: [float(ratio[rows, hop * walks:(hop + 1) * walks].mean()) for hop in range(n_layers)]
            for side, rows in sides.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["ml-1m", "gowalla", "lastfm", "synthetic:4"])
    parser.add_argument("--walks", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8192)
    args = parser.parse_args()
    from scale import load  # the synthetic graphs, cached
    rows = []
    for spec in args.datasets:
        moments = hop_moments(load(spec), args.walks, args.batch_size)
        for side, values in moments.items():
            optimal = [np.sqrt(v / values[0]) for v in values]
            rows.append([spec, side] + [f"{v:.2f}" for v in values] + [" : ".join(f"{s:.2f}" for s in optimal)])
    print(markdown_table(["graph", "rows", "E[d_t/d_v] hop 1", "hop 2", "hop 3", "optimal S₁ : S₂ : S₃"], rows))


if __name__ == "__main__":
    main()
