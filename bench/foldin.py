"""Fold-in on the strong-generalisation protocol: users the model never saw, recommended from their items.

1. ``--make-split DATASET OUT``: hold out 10% of the users (seeded) entirely from training — their
   train and valid rows emptied, ids kept — and write the LightGCN split folder OUT (test unchanged).
2. Train on OUT as usual (``python -m gnaq.train --dataset OUT ...``) and, for the reference, on the
   whole dataset with the same command.
3. ``--evaluate DATASET HELD_OUT_FILE TRAINED_IN_FILE``: for every held-out user with test items,
   fold in from their train ∪ valid items with each rule, rank every other item, and compare test
   Recall@20 / NDCG@20 with the same users' rows of the model trained with them (train ∪ valid
   masked in both). Both files are .gnaq exports; the rules see only the file's item vectors z_i
   (dequantized) and the user's items H:

   - ``mean``:   z_u = mean_{i∈H} z_i
   - ``ridge``:  z_u = argmin Σ_{i∈H} (z_u·z_i − 1)² + λ‖z_u‖² = (Z_Hᵀ Z_H + λI)⁻¹ Z_Hᵀ 1
   - ``als``:    z_u = (c₀ ZᵀZ + Z_Hᵀ Z_H + λI)⁻¹ Z_Hᵀ 1  (every item a weak negative, weight c₀;
                 implicit's ALS recalculate_user; needs the d × d Gram ZᵀZ, stored once in the file)

    python bench/foldin.py --make-split ml-1m ~/.cache/gnaq-runs/sg-ml-1m
    python bench/foldin.py --evaluate ml-1m ~/.cache/gnaq-runs/sg-ml1m-b2/model.gnaq runs/ml1m-b2/model.gnaq
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
from _common import data_dir  # noqa: E402

from gnaq import edge  # noqa: E402
from gnaq.data import load_dataset  # noqa: E402

HELD_OUT_SHARE, SEED = 0.1, 0


def held_out_users(n_users: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(n_users, size=int(round(HELD_OUT_SHARE * n_users)), replace=False))


def write_split(csr, held, path: Path) -> None:
    held = set(held.tolist())
    with open(path, "w") as f:
        for u in range(csr.shape[0]):
            items = [] if u in held else csr.indices[csr.indptr[u]:csr.indptr[u + 1]].tolist()
            f.write(" ".join(map(str, [u] + items)) + "\n")


def make_split(name: str, out: Path) -> None:
    data = load_dataset(name, data_dir=data_dir(), download_missing=False, progress=False)
    held = held_out_users(data.n_users)
    out.mkdir(parents=True, exist_ok=True)
    write_split(data.train, held, out / "train.txt")
    write_split(data.valid, held, out / "valid.txt")
    write_split(data.test, np.empty(0, dtype=np.int64), out / "test.txt")
    # n_items must match the whole dataset's: an item only the held-out users had stays an id
    print(f"{out}: {len(held)} of {data.n_users} users held out")


def fold_in(rule: str, items_z: np.ndarray, liked: np.ndarray, gram: np.ndarray, lam: float, c0: float):
    zh = items_z[liked]
    if rule == "mean":
        return zh.mean(0)
    a = zh.T @ zh + lam * np.eye(zh.shape[1])
    if rule == "als":
        a += c0 * gram
    return np.linalg.solve(a, zh.sum(0))


def metrics_at_20(scores: np.ndarray, masked: np.ndarray, test: np.ndarray):
    scores = scores.copy()
    scores[masked] = -np.inf
    top = np.argsort(-scores, kind="stable")[:20]
    hits = np.isin(top, test)
    dcg = (hits / np.log2(np.arange(2, 22))).sum()
    idcg = (1 / np.log2(np.arange(2, 2 + min(20, len(test))))).sum()
    return hits.sum() / len(test), dcg / idcg


def evaluate(name: str, held_file: str, trained_file: str) -> dict:
    data = load_dataset(name, data_dir=data_dir(), download_missing=False, progress=False)
    history = (data.train + data.valid).tocsr()
    held = [u for u in held_out_users(data.n_users) if data.test[u].nnz and history[u].nnz]
    cold, warm = edge.load(held_file, "numpy"), edge.load(trained_file, "numpy")
    z_items = cold.item_vectors()
    gram = z_items.T @ z_items
    ref = {"recall": [], "ndcg": []}
    warm_items = warm.item_vectors()
    rules = {"mean": ("mean", 0, 0)}
    for lam in (0.1, 1.0, 10.0):
        rules[f"ridge λ={lam:g}"] = ("ridge", lam, 0)
    for c0 in (0.01, 0.1, 1.0):
        rules[f"als c0={c0:g} λ=1"] = ("als", 1.0, c0)
    out = {r: {"recall": [], "ndcg": []} for r in rules}
    for u in held:
        liked, test = history[u].indices, data.test[u].indices
        r, n = metrics_at_20(warm_items @ np.asarray(warm.user_vector(warm.user_index(int(u)))), liked, test)
        ref["recall"].append(r), ref["ndcg"].append(n)
        for label, (rule, lam, c0) in rules.items():
            z_u = fold_in(rule, z_items, liked, gram, lam, c0)
            r, n = metrics_at_20(z_items @ z_u, liked, test)
            out[label]["recall"].append(r), out[label]["ndcg"].append(n)
    result = {"dataset": name, "users": len(held), "held_file": held_file, "trained_file": trained_file,
              "trained in": {k: float(np.mean(v)) for k, v in ref.items()}}
    for label, v in out.items():
        result[label] = {k: float(np.mean(x)) for k, x in v.items()}
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-split", nargs=2, metavar=("DATASET", "OUT"))
    p.add_argument("--evaluate", nargs=3, metavar=("DATASET", "HELD_OUT_FILE", "TRAINED_IN_FILE"))
    args = p.parse_args()
    if args.make_split:
        make_split(args.make_split[0], Path(args.make_split[1]).expanduser())
    if args.evaluate:
        print(json.dumps(evaluate(*args.evaluate), indent=1))


if __name__ == "__main__":
    main()
