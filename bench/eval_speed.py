"""Full-ranking evaluation speed and peak memory: gnaq.metrics.evaluate (chunked users, the
numba heap top-K; and its numpy argpartition twin, what ran before) vs a naive one-shot dense score matrix with a full argsort, in the same run,
on MovieLens-1M-sized and gowalla-sized random embeddings (d = 64) and the real train/test
splits when ../shared/datasets is present. Both score the same users (gowalla: a random
10,000 of its 29,858, since the naive dense argsort of all of them needs ~15 GB).

    python bench/eval_speed.py [--memory-mb 256]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402


def naive_evaluate(U, V, train, test, users, k=20):
    """All scores at once, train masked, full argsort: the simple way (recall@k only)."""
    scores = U[users] @ V.T
    seen = train[users]
    scores[seen.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :k]
    relevant = test[users].toarray().astype(bool)
    hits = np.take_along_axis(relevant, top, axis=1)
    return float((hits.sum(1) / np.diff(test.indptr)[users]).mean())


def measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, seconds, peak


def main():
    from gnaq.data import load_dataset
    from gnaq.metrics import evaluate
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=float, default=256)
    parser.add_argument("--max-users", type=int, default=10000, help="users evaluated (random subset above this)")
    args = parser.parse_args()
    rows = []
    root = data_dir()
    for name in ("ml-1m", "gowalla"):
        if root is None:
            print("no ../shared/datasets: skipped (set GNAQ_DATA_DIR)")
            return
        data = load_dataset(name, root, download_missing=False)
        rng = np.random.default_rng(0)
        U = rng.standard_normal((data.n_users, 64)).astype(np.float32)
        V = rng.standard_normal((data.n_items, 64)).astype(np.float32)
        users = np.flatnonzero(np.diff(data.test.indptr) > 0)
        if len(users) > args.max_users:  # the naive dense argsort needs ~12 bytes per score
            users = np.sort(rng.choice(users, args.max_users, replace=False))
        n_users = len(users)
        naive, t_naive, m_naive = measure(lambda: naive_evaluate(U, V, data.train, data.test, users))
        label = f"{n_users:,} of {data.n_users:,} users x {data.n_items:,}"
        evaluate(U[:1], V, data.train[:1], data.test[:1])  # compile the kernels outside the timing
        for impl, method in (("numpy", "gnaq, numpy argpartition top-K (before)"), (None, "gnaq (chunked, heap top-K)")):
            ours, t_ours, m_ours = measure(lambda: evaluate(U, V, data.train, data.test, ks=(10, 20), users=users,
                                                            memory_mb=args.memory_mb, top_k_impl=impl)["recall@20"])
            assert abs(ours - naive) < 1e-6, (ours, naive)
            rows.append([name, label, method + ", K=10,20, 4 metrics", f"{t_ours:.2f}", f"{n_users / t_ours:,.0f}",
                         f"{m_ours / 2**20:,.0f}", f"{t_ours / t_naive:.2f}"])
            label = ""
        rows.append([name, "", "naive (dense scores, argsort, recall@20 only)", f"{t_naive:.2f}",
                     f"{n_users / t_naive:,.0f}", f"{m_naive / 2**20:,.0f}", "1.00"])
    print(f"memory budget for gnaq's score chunk: {args.memory_mb:g} MB; peak = tracemalloc peak of numpy allocations")
    print(markdown_table(["dataset", "users x items", "method", "seconds", "users/s", "peak MB",
                                "time ÷ naive"], rows))


if __name__ == "__main__":
    main()
