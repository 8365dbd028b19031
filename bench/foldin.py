"""Fold-in on the strong-generalisation protocol: users the model never saw, recommended from their items.

1. ``--make-split DATASET OUT``: hold out 10% of the users (seeded) entirely from training — their
   train and valid rows emptied, ids kept — and write the LightGCN split folder OUT (test unchanged).
2. Train on OUT as usual (``python -m gnaq.train --dataset OUT ...``) and, for the reference, on the
   whole dataset with the same command.
3. ``--evaluate DATASET HELD_OUT_FILE TRAINED_IN_FILE --label L``: for every held-out user with
   train and test items, fold in from their train items with each rule, rank every item (train ∪
   valid masked), and compare test Recall@20 / NDCG@20 with the same users' rows of the model
   trained with them (same masking). Both files are .gnaq exports; the rules see only the file's
   dequantized item vectors Z and the user's items H:

   - mean:           z_u = mean_{i∈H} z_i
   - ridge:          z_u = argmin Σ_{i∈H} (z_u·z_i − 1)² + λ‖z_u‖² = (Z_Hᵀ Z_H + λI)⁻¹ Z_Hᵀ 1
   - ALS fold-in:    z_u = (w·Ḡ + Z_Hᵀ Z_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1, Ḡ = ZᵀZ / n_items — every item a
                     weak negative (total weight w), implicit's ALS recalculate_user; Ḡ travels in the
                     file (d(d+1)/2 floats). λ is relative to the mean squared item norm tr(Ḡ).
4. ``--table RESULT.json ...``: bench/results/foldin.md.

    python bench/foldin.py --make-split ml-1m ~/.cache/gnaq-runs/sg-ml-1m
    python bench/foldin.py --evaluate ml-1m SG_RUN/model.gnaq FULL_RUN/model.gnaq --label 2-bit
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


def load(name):
    folder = Path(data_dir() or ".").parent / "selfrec" if name == "amazon-sports" else data_dir()
    return load_dataset(name, data_dir=folder, download_missing=False, progress=False)


def make_split(name: str, out: Path) -> None:
    data = load(name)
    held = held_out_users(data.n_users)
    out.mkdir(parents=True, exist_ok=True)
    write_split(data.train, held, out / "train.txt")
    write_split(data.valid, held, out / "valid.txt")
    write_split(data.test, np.empty(0, dtype=np.int64), out / "test.txt")
    # n_items must match the whole dataset's: an item only the held-out users had stays an id
    print(f"{out}: {len(held)} of {data.n_users} users held out")


def metrics_at_20(scores: np.ndarray, masked: np.ndarray, test: np.ndarray):
    scores = scores.copy()
    scores[masked] = -np.inf
    top = np.argsort(-scores, kind="stable")[:20]
    hits = np.isin(top, test)
    dcg = (hits / np.log2(np.arange(2, 22))).sum()
    idcg = (1 / np.log2(np.arange(2, 2 + min(20, len(test))))).sum()
    return hits.sum() / len(test), dcg / idcg


RULES = {  # label → (w, λ) of z = (w·Ḡ + Z_HᵀZ_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1; None: the mean of Z_H
    "mean of the items": None,
    "ridge, λ = 0.1·tr(Ḡ)": (0.0, 0.1),
    "ridge, λ = 1·tr(Ḡ)": (0.0, 1.0),
    "ALS fold-in w=30 λ=1": (30.0, 1.0),
    "ALS fold-in w=100 λ=1": (100.0, 1.0),
    "ALS fold-in w=100 λ=3 (gnaq's)": (100.0, 3.0),
    "ALS fold-in w=300 λ=10": (300.0, 10.0),
}


def evaluate(name: str, held_file: str, trained_file: str) -> dict:
    """Every held-out user with train and test items: fold-in from their train items (train ∪ valid
    masked at test, as for the trained-in users), against the same users' rows trained in."""
    import gnaq
    data = load(name)
    seen = (data.train + data.valid).tocsr()
    held = [u for u in held_out_users(data.n_users) if data.test[u].nnz and data.train[u].nnz]
    cold, warm = gnaq.load(held_file), gnaq.load(trained_file)
    z_items = cold.item_factors
    results = {"trained in": [], **{label: [] for label in RULES}}
    for u in held:
        liked, test = data.train[u].indices, data.test[u].indices
        results["trained in"].append(metrics_at_20(warm.item_factors @ warm.user_factors[u], seen[u].indices, test))
        row = data.train[[u]]
        for label, rule in RULES.items():
            if rule is None:
                z = z_items[liked].mean(0)
            else:
                z = cold.fold_in(row, negatives=rule[0], regularization=rule[1])[0]
            results[label].append(metrics_at_20(z_items @ z, seen[u].indices, test))
    out = {"dataset": name, "users": len(held), "held_file": held_file, "trained_file": trained_file}
    for label, values in results.items():
        recall, ndcg = np.mean(values, axis=0)
        out[label] = {"recall@20": float(recall), "ndcg@20": float(ndcg)}
    return out


def table(paths) -> str:
    from _common import markdown_table
    rows = []
    for path in paths:
        r = json.loads(Path(path).read_text())
        ref = r["trained in"]
        for label in ["trained in", *RULES]:
            m = r[label]
            rows.append([r["dataset"], r.get("model", ""), r["users"], label,
                         f"{m['recall@20']:.4f} / {m['ndcg@20']:.4f}",
                         f"{100 * m['recall@20'] / ref['recall@20']:.1f}% / {100 * m['ndcg@20'] / ref['ndcg@20']:.1f}%"])
    return markdown_table(["dataset", "model", "held-out users", "user from", "test R@20 / N@20",
                           "vs trained in"], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--make-split", nargs=2, metavar=("DATASET", "OUT"))
    p.add_argument("--evaluate", nargs=3, metavar=("DATASET", "HELD_OUT_FILE", "TRAINED_IN_FILE"))
    p.add_argument("--label", default="", help="the model's name in the table, e.g. fp32 or 2-bit")
    p.add_argument("--table", nargs="+", metavar="RESULT.json", help="merge results into bench/results/foldin.md")
    args = p.parse_args()
    if args.make_split:
        make_split(args.make_split[0], Path(args.make_split[1]).expanduser())
    if args.evaluate:
        result = {**evaluate(*args.evaluate), "model": args.label}
        name = f"{result['dataset']}-{args.label or 'model'}.json"
        (ROOT / "bench" / "results" / "foldin").mkdir(parents=True, exist_ok=True)
        (ROOT / "bench" / "results" / "foldin" / name).write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
    if args.table:
        text = table(args.table)
        (ROOT / "bench" / "results" / "foldin.md").write_text(
            __doc__.split("\n\n")[0] + " (see bench/foldin.py)\n\n" + text + "\n")
        print(text)


if __name__ == "__main__":
    main()
