"""Where two models differ: their top-K hit rate by the target item's popularity.

    python bench/popularity_hits.py --dataset gowalla RUN [RUN ...] [-k 20] [--out FILE.md]

RUN: a run folder of ``python -m gnaq.train`` (its config.json and best.npz, full precision or
quantized). Each model's final embeddings are rebuilt as the trainer evaluates them, each split's
users ranked over every item as the trainer does (valid: train masked; test: train ∪ valid masked), and for each
held-out pair (u, i) a hit when i is in u's top K. Items are bucketed by their training degree at
the quantiles 50 / 80 / 95 / 99% of the items with any; a bucket's figure is hits / pairs in it.
Recall@K (the mean over users of the user's hit fraction) is printed beside the run's own
result.json test figure as a check that this is the trainer's protocol. The last line gives each
split's share of pairs per bucket: a split with more pairs on popular items rewards a model that
ranks those well.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, emit, markdown_table  # noqa: E402
from frontier import trained_model  # noqa: E402

QUANTILES = (0.5, 0.8, 0.95, 0.99)
BUCKETS = ("bottom 50%", "50-80%", "80-95%", "95-99%", "top 1%")


def item_buckets(train) -> np.ndarray:
    """(n_items,) bucket index 0..4 of each item's training degree (QUANTILES over items with any)."""
    degree = np.asarray(train.sum(axis=0)).ravel()
    edges = np.quantile(degree[degree > 0], QUANTILES)
    return np.searchsorted(edges, degree, side="right")


def hits_by_bucket(users_z, items_z, mask, target, buckets, k: int, chunk: int = 2048):
    """(recall@k over target's users, hits (5,), pairs (5,)) of the top-k ranking of users_z · items_zᵀ."""
    from gnaq.metrics import top_k_items
    hits, pairs, recalls = np.zeros(len(BUCKETS)), np.zeros(len(BUCKETS)), []
    users = np.flatnonzero(np.diff(target.indptr))
    for start in range(0, len(users), chunk):
        block = users[start:start + chunk]
        scores = users_z[block] @ items_z.T
        seen = mask[block].tocoo()
        scores[seen.row, seen.col] = -np.inf
        top = top_k_items(scores, k)
        for row, user in enumerate(block):
            held_out = target.indices[target.indptr[user]:target.indptr[user + 1]]
            hit = np.isin(held_out, top[row])
            np.add.at(hits, buckets[held_out], hit)
            np.add.at(pairs, buckets[held_out], 1)
            recalls.append(hit.mean())
    return float(np.mean(recalls)), hits, pairs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("-k", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    from gnaq.data.registry import load_dataset
    data = load_dataset(args.dataset, data_dir())
    if data.valid is None:
        parser.error(f"{args.dataset} has no validation split")
    buckets = item_buckets(data.train)
    splits = {"valid": (data.train, data.valid.tocsr()), "test": ((data.train + data.valid).tocsr(), data.test.tocsr())}
    header = ["run", "split", f"Recall@{args.k}", "result.json"] + [f"{b} hit rate" for b in BUCKETS]
    rows = []
    for run in args.runs:
        users_z, items_z = trained_model(run, data).final_embeddings()  # as the trainer evaluates it
        result = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
        for split, (mask, target) in splits.items():
            recall, hits, pairs = hits_by_bucket(users_z, items_z, mask, target, buckets, args.k)
            reported = result.get(f"test_recall@{args.k}") if split == "test" else None
            rows.append([run.name, split, f"{recall:.4f}", f"{reported:.4f}" if reported is not None else "",
                         *(f"{h / max(p, 1):.3f}" for h, p in zip(hits, pairs))])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    for split, (_, target) in splits.items():
        share = np.bincount(buckets[target.tocoo().col], minlength=len(BUCKETS)) / target.nnz
        rows.append(["(pairs' share)", split, "", "", *(f"{s:.3f}" for s in share)])
    emit(markdown_table(header, rows), args.out)


if __name__ == "__main__":
    main()
