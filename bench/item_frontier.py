"""The accuracy–size frontier of item-only files: what a device that holds one person's history needs.

An item-only .gnaq file (``--export-users no``) carries the items' rows alone; the device folds its
own user in from that user's items (gnaq.edge's ``fold_in``, implicit ALS's rule):

    z_u = (w·Ḡ + Z_Hᵀ Z_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1,    Ḡ = ZᵀZ / n_items,

so no user row is quantized and none is stored. For each run (a fp32 run and the quantized runs
fine-tuned from it with ``--init-from``) this writes the files a device would get — the whole file
(users and items, no history: the trained-in users) and the item-only file (packed rows with Ḡ;
Huffman-coded rows with and without Ḡ, ``--export-gram no``) — and measures, on the test split of the
standard protocol (train ∪ valid masked, every test user):

- bytes, and the ratio to the float32 file of the same layout (same sections, float32 z);
- test Recall@20 / NDCG@20, with each test user folded in from their *training* items alone (the
  trained-in users for whole files), as % of the fp32 run's own test metrics (trained-in: the
  converged full-precision model) and as % of the fp32 item-only file (the same deployment, fp32);
- load + first fold-in seconds (it computes Ḡ when the file has none) and the median top-10 latency
  of ``recommend_for_items`` over ``--users`` users per backend (pure Python: ``--python-users``).

    python bench/item_frontier.py --dataset ml-1m --fp32 RUN --runs RUN ... [--suffix S]

Writes bench/results/item-frontier-DATASET{S}.md (and .png where matplotlib imports).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table, pyplot  # noqa: E402
from frontier import bold_front, trained_model  # noqa: E402

VARIANTS = (  # (label, users, entropy, gram)
    ("whole file", True, False, True),
    ("items, packed", False, False, True),
    ("items, huffman", False, True, True),
    ("items, huffman, no gram", False, True, False),
)


def file_metrics(path, data) -> dict:
    """Test Recall@20 / NDCG@20 of a .gnaq file: its own user rows, or (item-only) each user folded in
    from their training items — through gnaq.Query, the class that serves loaded files."""
    from gnaq.metrics import evaluate
    from gnaq.query import Query
    query = Query.from_file(str(path), backend="numpy")
    users = query.user_factors if query.user_factors is not None else query.fold_in(data.train.tocsr())
    mask = data.train if data.valid is None else (data.train + data.valid).tocsr()
    m = evaluate(users.astype(np.float32), query.item_factors.astype(np.float32), mask, data.test, ks=(20,))
    return {"recall@20": m["recall@20"], "ndcg@20": m["ndcg@20"]}


def latency(path, data, users, python_users) -> dict:
    """{backend: (load + first fold-in s, median top-10 ms)} of recommend_for_items on each user's
    training items (item-only files) or recommend by user id (whole files)."""
    from gnaq import edge
    out = {}
    for backend in ("numba", "numpy", "python"):
        t0 = time.perf_counter()
        model = edge.load(str(path), backend=backend)
        some = users[: python_users if backend == "python" else len(users)]
        liked = {u: [int(model.item_ids[i]) for i in data.train[u].indices] for u in some}

        def top10(u):
            return model.recommend_for_items(liked[u], k=10) if model.n_users == 0 else model.recommend(u, k=10, exclude_seen=False)
        top10(some[0])  # numba compiles; an item-only file without Ḡ computes it here
        load = time.perf_counter() - t0
        times = []
        for u in some:
            t1 = time.perf_counter()
            top10(u)
            times.append(time.perf_counter() - t1)
        out[backend] = (load, float(np.median(times)) * 1e3)
    return out


def main():
    from gnaq.data import load_dataset
    from gnaq.export import export_model
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--fp32", required=True, metavar="RUN", help="the converged full-precision run folder")
    parser.add_argument("--runs", nargs="*", default=[], metavar="RUN", help="quantized runs (--init-from the fp32 run)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--python-users", type=int, default=5)
    parser.add_argument("--suffix", default="")
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    users = [int(u) for u in np.random.default_rng(0).choice(np.flatnonzero(np.diff(data.train.indptr)), args.users,
                                                              replace=False)]
    fp32_folder = Path(args.fp32).expanduser()
    reference = json.loads((fp32_folder / "result.json").read_text())
    trained_in = (reference["test_recall@20"], reference["test_ndcg@20"])
    rows, points, labels, fp32_items = [], [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        for folder in [fp32_folder] + [Path(r).expanduser() for r in args.runs]:
            if folder != fp32_folder:
                start = Path(json.loads((folder / "config.json").read_text())["init_from"]).expanduser()
                if (start if start.is_dir() else start.parent).resolve() != fp32_folder.resolve():
                    raise SystemExit(f"{folder} was fine-tuned from {start}, not from --fp32 {fp32_folder}")
            model = trained_model(folder, data)
            bits = getattr(model.quantizer, "mean_bits", 32) if folder != fp32_folder else 32
            for label, with_users, entropy, gram in VARIANTS:
                if entropy and getattr(model.quantizer, "axes", None) is None:
                    continue  # Huffman codes transform-coded rows only
                path = Path(tmp) / f"{folder.name}-{label}.gnaq".replace(" ", "_").replace(",", "")
                info = export_model(model, data, path, history=False, users=with_users, entropy=entropy, gram=gram)
                m = file_metrics(path, data)
                if folder == fp32_folder and label == "items, packed":
                    fp32_items = (m["recall@20"], m["ndcg@20"])
                kept = (m["recall@20"] / trained_in[0], m["ndcg@20"] / trained_in[1])
                same = (m["recall@20"] / fp32_items[0], m["ndcg@20"] / fp32_items[1]) \
                    if fp32_items and not with_users else None
                timing = latency(path, data, users, args.python_users)
                ratio = info["float32_file_bytes"] / info["file_bytes"]
                rows.append([folder.name, f"{bits:.3g}", label, f"{info['file_bytes']:,}", f"{ratio:.1f}x",
                             f"{m['recall@20']:.4f} / {m['ndcg@20']:.4f}", f"{kept[0]:.1%} / {kept[1]:.1%}",
                             f"{same[0]:.1%} / {same[1]:.1%}" if same else "-",
                             *(f"{timing[b][0]:.2f} / {timing[b][1]:.2f}" for b in ("numba", "numpy", "python"))])
                if not with_users:
                    points.append((info["file_bytes"], 100 * (kept[0] + kept[1]) / 2, ratio,
                                   100 * (same[0] + same[1]) / 2 if same else 100.0))
                    labels.append(folder.name + {"items, packed": "", "items, huffman": " +h"}.get(label, " +h −G"))
                print(" | ".join(rows[-1]), flush=True)
    front = bold_front([r for r in rows if r[2] != "whole file"], [(b, a) for b, a, _, _ in points])
    header = ["run", "bits", "file", "bytes", "vs float32 file", "test R@20 / N@20", "kept of fp32 (trained-in)",
              "kept of fp32 item-only", "numba load+fold s / top-10 ms", "numpy", "python"]
    command = " ".join(["python bench/item_frontier.py"] + sys.argv[1:])
    text = (f"# Item-only files with on-device fold-in: {args.dataset}\n\n`{command}`\n\n"
            f"Reference: the fp32 run `{fp32_folder.name}`, test Recall@20 / NDCG@20 {trained_in[0]:.4f} / "
            f"{trained_in[1]:.4f} with its trained-in users. Item-only rows: every test user folded in from their "
            "training items alone (train ∪ valid masked, as in training's test). 'vs float32 file': the same "
            "layout holding float32 z. Bold: Pareto points of the item-only files (mean kept of fp32 against "
            f"bytes). Latency: load + first fold-in (which computes Ḡ when the file has none), then the median "
            f"top-10 of recommend_for_items over {args.users} users ({args.python_users} in pure Python).\n\n"
            + markdown_table(header, rows) + "\n")
    out = ROOT / "bench" / "results" / f"item-frontier-{args.dataset}{args.suffix}.md"
    out.write_text(text)
    print(text)
    plt = pyplot()
    if plt is None or not points:
        return
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.scatter([p[2] for p in points], [p[1] for p in points], color="0.7", s=12, label="item-only file")
    fx = sorted(front, key=lambda i: points[i][0])
    ax.plot([points[i][2] for i in fx], [points[i][1] for i in fx], "o-", color="C3",
            label="Pareto front, % of the fp32 model (trained-in users)")
    ax.plot([points[i][2] for i in fx], [points[i][3] for i in fx], "s--", color="C0",
            label="the same files, % of the fp32 item-only file")
    for k, i in enumerate(fx):
        ax.annotate(labels[i], (points[i][2], points[i][1]), textcoords="offset points",
                    xytext=(4, 6 if k % 2 else -10), fontsize=7)
    for level in (95, 98):
        ax.axhline(level, color="0.5", ls=":", lw=1)
    for ratio in (16, 32):
        ax.axvline(ratio, color="0.5", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("times smaller than the float32 item-only file of the same layout (log)")
    ax.set_ylabel("mean of test Recall@20 and NDCG@20, %")
    ax.set_title(f"{args.dataset}: item-only files, users folded in on the device")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(ROOT / "bench" / "results" / f"item-frontier-{args.dataset}{args.suffix}.png", dpi=120)


if __name__ == "__main__":
    main()
