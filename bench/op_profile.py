"""Per-op profile of gnaq's fp32 training step on MovieLens-1M (cProfile, own time per function).

    python bench/op_profile.py [--root CHECKOUT] [--steps 30] [--batch-size 2048]

``--root`` profiles another checkout of gnaq (e.g. a ``git worktree`` of an older commit), so the
same script gives the before/after table of bench/results/train_speed.md.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(BENCH.parent))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH))
    sys.path.insert(0, args.root)
    from _common import data_dir
    from gnaq.data import load_dataset
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.training import TrainConfig, Trainer
    data = load_dataset("ml-1m", data_dir(), download_missing=False)
    trainer = Trainer(TrainConfig(dataset="ml-1m", bits=32, batch_size=args.batch_size, lr=1e-3, progress=False,
                                  out="/tmp/gnaq-op-profile"), data)
    users, pos, neg = sample_bpr_epoch(data.train, np.random.default_rng(0))
    b = args.batch_size

    def steps(k):
        for i in range(k):
            sl = slice(i * b, (i + 1) * b)
            loss, _, _ = trainer.model.bpr_loss(users[sl], pos[sl], neg[sl], 1e-4)
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
    steps(3)  # numba compilation, caches
    profile = cProfile.Profile()
    profile.enable()
    steps(args.steps)
    profile.disable()
    stats = pstats.Stats(profile)
    rows = sorted(((v[2], f"{k[0].split('/')[-1]}:{k[2]}") for k, v in stats.stats.items()), reverse=True)
    print(f"{args.root}: {stats.total_tt / args.steps * 1e3:.1f} ms/step (profiled)")
    for seconds, name in rows[: args.top]:
        print(f"  {seconds / args.steps * 1e3:6.2f} ms  {name}")


if __name__ == "__main__":
    main()
