"""The accuracy–size frontier on whole files: every trained run of a comparison, exported as the
.gnaq file a device receives (with and without the training history), with its bytes (every
section counted), its test Recall@20 / NDCG@20 as % of full precision, its load time and its
top-10 latency per backend. Writes bench/results/frontier-DATASET.md and, where matplotlib
imports (a bench extra, never a gnaq dependency), frontier-DATASET.png: accuracy against bytes,
log x, the Pareto points of the history-free files marked and labelled.

The runs are those of ``compare_quantizers.py --init-from`` (records under
bench/results/compare/DATASET-converged/, run folders under --runs-dir); the fp32 row is the
run they were fine-tuned from.

    python bench/frontier.py --dataset ml-1m [--users 50] [--python-users 5] [--skip-python-propagation]
        [--extra RUN ...]

``--entropy``: transform-coded runs also as Huffman-coded files (``--export-entropy yes``).
``--extra``: more run folders fine-tuned with ``--init-from`` (e.g. ``--size 16x``, ``--quantizer pq``),
each measured against the fp32 run it started from (its result.json's test metrics).
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


def trained_model(folder: Path, data):
    """The run's model at its best checkpoint (config.json and best.npz of the run folder)."""
    from gnaq.training import TrainConfig, Trainer
    saved = json.loads((folder / "config.json").read_text())
    saved.update(topk=tuple(saved["topk"]), progress=False, out=tempfile.mkdtemp(prefix="gnaq-frontier-"),
                 init_from=None, distill=0.0, device="cpu")
    trainer = Trainer(TrainConfig(**saved), data)
    trainer.load_weights(folder / "best.npz")
    quantizer = trainer.model.quantizer
    if getattr(quantizer, "warmup", 0) is None:  # an "auto" warm-up (the default without --init-from): it ended
        quantizer.warmup = 0
    if not quantizer.active:  # past any warm-up: the deployed representation (an active pq
        quantizer.on_epoch_start(10**9)  # would re-assign its codes at an epoch start)
    return trainer.model


def measure_file(path, users, python_users, skip_python_propagation):
    """{backend: (load s, median top-10 ms)} for the backends this machine has."""
    from gnaq import edge
    out = {}
    for backend in ("numba", "numpy", "python"):
        if backend == "python" and skip_python_propagation and edge._read(path)[0]["kind"] == "propagate":
            continue
        t0 = time.perf_counter()
        model = edge.load(path, backend=backend)
        load = time.perf_counter() - t0
        some = users[: python_users if backend == "python" else len(users)]
        model.recommend(some[0], k=10, exclude_seen=model.has_history)  # warm (numba compiles, numpy caches)
        times = []
        for u in some:
            t0 = time.perf_counter()
            model.recommend(u, k=10, exclude_seen=model.has_history)
            times.append(time.perf_counter() - t0)
        out[backend] = (load, float(np.median(times)) * 1e3)
    return out


def extra_record(folder: Path) -> dict:
    """{"recall@20", "ndcg@20"} of a run folder as fractions of the fp32 run its --init-from names."""
    result = json.loads((folder / "result.json").read_text())
    start = Path(json.loads((folder / "config.json").read_text())["init_from"]).expanduser()
    reference = json.loads(((start if start.is_dir() else start.parent) / "result.json").read_text())
    return {k: result[f"test_{k}"] / reference[f"test_{k}"] for k in ("recall@20", "ndcg@20")}


def pareto(points):
    """Indices of points (bytes, accuracy) not dominated by a smaller-or-equal, more-accurate one."""
    keep = []
    for i, (b, a) in enumerate(points):
        if not any((b2 <= b and a2 > a) or (b2 < b and a2 >= a) for j, (b2, a2) in enumerate(points) if j != i):
            keep.append(i)
    return keep


def bold_front(rows, points) -> set:
    """Bold the first cell of rows[i] for each i on the Pareto front of points (bytes, accuracy), one
    point a row; returns the front's indices."""
    front = set(pareto(points))
    for i, row in enumerate(rows):
        row[0] = f"**{row[0]}**" if i in front else row[0]
    return front


def main():
    from gnaq.data import load_dataset
    from gnaq.export import export_model
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--runs-dir", default="~/.cache/gnaq-runs/compare")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--python-users", type=int, default=5)
    parser.add_argument("--skip-python-propagation", action="store_true",
                        help="skip the pure-Python load of layer-0 files (tens of seconds each)")
    parser.add_argument("--entropy", action="store_true",
                        help="also export every transform-coded run with Huffman-coded rows (history-free)")
    parser.add_argument("--suffix", default="", help="written to bench/results/frontier-DATASET{SUFFIX}.md / .png")
    parser.add_argument("--extra", nargs="*", default=[], metavar="RUN",
                        help="more run folders (--init-from runs), each against the fp32 run it started from")
    args = parser.parse_args()
    name = f"{args.dataset}-converged"
    records = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "bench/results/compare" / name).glob("*.json"))}
    fp = records["fp32"]
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    rng = np.random.default_rng(0)
    users = [int(u) for u in rng.choice(data.user_ids, size=args.users, replace=False)]
    runs_dir = Path(args.runs_dir).expanduser() / name
    folders = {"fp32": Path(fp["options"]["source"]).expanduser()}
    folders.update({run: runs_dir / run for run in records if run != "fp32"})
    relative = {run: (rec["recall@20"] / fp["recall@20"], rec["ndcg@20"] / fp["ndcg@20"]) for run, rec in records.items()}
    for extra in args.extra:
        folder = Path(extra).expanduser()
        rec = extra_record(folder)
        run = f"{folder.name} (own fp32)"
        folders[run], relative[run], records[run] = folder, (rec["recall@20"], rec["ndcg@20"]), {"bits": None}
    rows, points, labels = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run, rec in records.items():
            folder = folders[run]
            if not (folder / "best.npz").exists():
                print(f"skip {run}: no {folder}/best.npz", file=sys.stderr)
                continue
            model = trained_model(folder, data)
            if not model.quantizer.exportable:
                print(f"skip {run}: not exportable", file=sys.stderr)
                continue
            deploy = "fp32" if run == "fp32" else "z, codebook" if model.quantizer.name == "pq" else model.quantizer.deploys
            axes = getattr(model.quantizer, "axes", None)
            if axes is not None:  # transform coded: on the principal axes, or on z's own (R = I)
                own = np.count_nonzero(axes.rotation) == axes.rotation.shape[1]  # columns of I
                deploy += ", own axes" if own else ", klt"
            rel = relative[run]
            variants = [(False, False), (True, False)] + ([(False, True)] if axes is not None and args.entropy else [])
            for history, entropy in variants:
                path = Path(tmp) / f"{run}-{history}-{entropy}.gnaq"
                info = export_model(model, data, path, history=history, entropy=entropy)
                timing = measure_file(path, users, args.python_users, args.skip_python_propagation)
                cells = [f"{timing[b][0]:.2f} / {timing[b][1]:.2f}" if b in timing else "-"
                         for b in ("numba", "numpy", "python")]
                bits = getattr(model.quantizer, "mean_bits", rec["bits"])  # mixed widths: the average
                rows.append([run + (" + huffman" if entropy else ""), deploy, f"{bits:.3g}", "yes" if history else "no", f"{info['file_bytes']:,}",
                             f"{info['float32_file_bytes'] / info['file_bytes']:.1f}x", f"{rel[0]:.1%}", f"{rel[1]:.1%}",
                             *cells])
                if not history:
                    points.append((info["file_bytes"], 100 * (rel[0] + rel[1]) / 2))
                    labels.append(run + (" + huffman" if entropy else ""))
                print(" | ".join(map(str, rows[-1])), flush=True)
    front = bold_front([r for r in rows if r[3] == "no"], points)
    header = ["run", "deploys", "bits", "history", "file bytes", "vs float32 file", "Recall@20 vs fp32",
              "NDCG@20 vs fp32", "numba load s / top-10 ms", "numpy load s / top-10 ms", "python load s / top-10 ms"]
    command = " ".join(["python bench/frontier.py"] + sys.argv[1:])
    text = (f"# Frontier on whole files: {args.dataset}\n\n`{command}`: every run of "
            f"`compare-{name}.md` (fine-tuned from the converged fp32 model) exported as a .gnaq file, with and "
            "without the training history, and the --extra runs marked '(own fp32)', each against the fp32 run it was "
            "fine-tuned from. 'vs float32 file': the same file holding float32 z (same history setting). "
            "Accuracy: test metrics as % of fp32. Bold: Pareto points of the history-free files (mean of the two "
            f"percentages against bytes). Latency: median over {args.users} users ({args.python_users} in pure "
            "Python) after one warm call.\n\n" + markdown_table(header, rows) + "\n")
    out = ROOT / "bench" / "results" / f"frontier-{args.dataset}{args.suffix}.md"
    out.write_text(text)
    print(text)
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    xs, ys = zip(*points)
    ax.scatter(xs, ys, color="0.6", label="history-free file")
    fx = sorted(front, key=lambda i: points[i][0])
    ax.plot([points[i][0] for i in fx], [points[i][1] for i in fx], "o-", color="C3", label="Pareto front")
    for i in fx:
        ax.annotate(labels[i], points[i], textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("file bytes (log)")
    ax.set_ylabel("mean of test Recall@20 and NDCG@20, % of fp32")
    ax.set_title(f"{args.dataset}: accuracy against whole-file size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "bench" / "results" / f"frontier-{args.dataset}{args.suffix}.png", dpi=120)


if __name__ == "__main__":
    main()
