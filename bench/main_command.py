"""The main command per dataset: what ``python -m gnaq.train --dataset D --bits B`` costs and keeps.

    python bench/main_command.py [--datasets ml-1m lastfm gowalla amazon-sports]
                                 [--settings fp32 2-bit] [--runs-dir ~/.cache/gnaq-runs/main]
                                 [--threads 1] [--out bench/results/main_command]

Each (dataset, setting) is one run folder RUNS_DIR/DATASET-SETTING of ``python -m gnaq.train`` with
the setting's flags (SETTINGS; ``--target off`` always); a folder that holds a finished run is read, not
run again (delete it to rerun). For each: wall-clock seconds in training + evaluation per phase (from
metrics.jsonl), epochs, the exported file's bytes and its ratio to the float32 file of the same data,
test Recall@20 / NDCG@20 with NDCG@20's standard error, and what each keeps of the best fp32 run of
the same dataset (the fp32 setting with the higher test NDCG@20). Writes OUT.md, OUT.json and, with
matplotlib, OUT.png (validation NDCG@20 against seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, markdown_table, pyplot  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # name → the main command's flags beyond --dataset
    "fp32": ["--bits", "32"],
    "2-bit": ["--bits", "2"],
    "fp32-full": ["--bits", "32", "--propagation", "full"],
    "2-bit-full": ["--bits", "2", "--propagation", "full"],
}
FOLDERS = {"amazon-sports": SHARED_DATA.parent / "selfrec"}  # the rest: the LightGCN splits


def data_dir(dataset: str) -> str:
    return str(FOLDERS.get(dataset, SHARED_DATA))


def run(dataset, setting, folder: Path, threads: int) -> None:
    """Train (or finish, with --resume) one run folder; its stderr to folder/../NAME.log."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    if (folder / "last.npz").exists():
        command = [sys.executable, "-m", "gnaq.train", "--resume", str(folder), "--quiet"]
    else:
        command = [sys.executable, "-m", "gnaq.train", "--dataset", dataset, "--data-dir", data_dir(dataset),
                   *SETTINGS[setting], "--target", "off", "--quiet", "--out", str(folder)]
    print(" ".join(command), file=sys.stderr)
    started = time.perf_counter()
    with open(f"{folder}.log", "w") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    (folder / "wall_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")


def read(folder: Path) -> dict:
    """One finished run folder's figures."""
    result = json.loads((folder / "result.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]
    phases = {"full precision": 0.0, "quantized": 0.0}
    curve, clock = [], 0.0
    for line in lines:
        seconds = line.get("train_seconds", 0.0) + line.get("eval_seconds", 0.0)
        phases["quantized" if line.get("quantized") else "full precision"] += seconds
        clock += seconds
        curve.append((clock, line.get("ndcg@20")))
    model = folder / "model.gnaq"
    record = {"run": str(folder), "bits": config["bits"], "propagation": result.get("propagation"),
              "epochs": result["epochs_run"], "best_epoch": result["best_epoch"],
              "phase_seconds": {k: round(v, 1) for k, v in phases.items() if v},
              "train_seconds": round(sum(phases.values()), 1),
              "recall": result["test_recall@20"], "ndcg": result["test_ndcg@20"],
              "ndcg_se": result.get("test_ndcg@20_se"), "curve": curve}
    wall = folder / "wall_seconds.txt"
    if wall.exists():
        record["wall_seconds"] = float(wall.read_text())
    if model.exists():
        record["file_bytes"] = model.stat().st_size
        log = Path(f"{folder}.log").read_text() if Path(f"{folder}.log").exists() else ""
        found = re.search(r"float32 file of the same data \(([\d,]+) bytes", log)
        if found:  # the CLI's export line: the float32 file of the same data
            float32 = int(found.group(1).replace(",", ""))
            record["ratio"] = float32 / record["file_bytes"]
            embeddings = re.search(r"embeddings ([\d,]+)", log)
            if embeddings:  # the embedding sections alone (the file less ids and history) against float32's
                emb = int(embeddings.group(1).replace(",", ""))
                record["embedding_ratio"] = (float32 - record["file_bytes"] + emb) / emb
    return record


def table(records: dict) -> str:
    rows = []
    for dataset, by_setting in records.items():
        fp32 = [r for name, r in by_setting.items() if r["bits"] == 32]
        best = max(fp32, key=lambda r: r["ndcg"]) if fp32 else None
        for name, r in by_setting.items():
            kept = f"{100 * r['recall'] / best['recall']:.1f}% / {100 * r['ndcg'] / best['ndcg']:.1f}%" if best else "-"
            phases = " + ".join(f"{v:.0f}" for v in r["phase_seconds"].values())
            rows.append([dataset, name, r.get("propagation", "-"), r.get("wall_seconds", "-"), phases,
                         f"{r['best_epoch']} / {r['epochs']}", f"{r.get('file_bytes', 0):,}",
                         f"{r['ratio']:.1f}x" if "ratio" in r else "-",
                         f"{r['embedding_ratio']:.1f}x" if "embedding_ratio" in r else "-",
                         f"{r['recall']:.4f} / {r['ndcg']:.4f} ± {r['ndcg_se'] or 0:.4f}", kept])
    return markdown_table(["dataset", "setting", "propagation", "wall s", "train + eval s by phase (fp32 + quantized)",
                           "best / epochs", "file bytes", "vs float32", "embeddings vs float32",
                           "test Recall@20 / NDCG@20 ± se",
                           "of the best fp32"], rows)


def plot(records: dict, path: str) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(records), figsize=(4.5 * len(records), 3.6), squeeze=False)
    for ax, (dataset, by_setting) in zip(axes[0], records.items()):
        for name, r in by_setting.items():
            xs, ys = zip(*r["curve"])
            ax.plot(xs, ys, label=name)
        ax.set(title=dataset, xlabel="seconds of training + evaluation", ylabel="validation NDCG@20")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["ml-1m", "lastfm", "gowalla", "amazon-sports"])
    p.add_argument("--settings", nargs="+", default=["fp32", "2-bit"], choices=tuple(SETTINGS))
    p.add_argument("--runs-dir", default=os.path.expanduser("~/.cache/gnaq-runs/main"))
    p.add_argument("--threads", type=int, default=2, help="NUMBA_NUM_THREADS of each run")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "main_command"))
    p.add_argument("--no-run", action="store_true", help="only read finished run folders; skip the others")
    p.add_argument("--note", default="", help="how the run folders were made, when they were not made here")
    args = p.parse_args()
    records = {}
    for dataset in args.datasets:
        for setting in args.settings:
            folder = Path(args.runs_dir) / f"{dataset}-{setting}"
            if not (folder / "result.json").exists() or not (folder / "model.gnaq").exists():
                if args.no_run:
                    print(f"{folder}: not finished, left out (--no-run)", file=sys.stderr)
                    continue
                folder.mkdir(parents=True, exist_ok=True)
                run(dataset, setting, folder, args.threads)
            records.setdefault(dataset, {})[setting] = read(folder)
    text = table(records)
    header = (f"`python bench/main_command.py --datasets {' '.join(args.datasets)} --settings "
              f"{' '.join(args.settings)} --threads {args.threads}` — {os.cpu_count()}-core CPU, each run alone "
              "unless said. Settings: " + "; ".join(f"{s}: `{' '.join(SETTINGS[s])} --target off`" for s in args.settings)
              + (f". {args.note}" if args.note else ""))
    print(text)
    Path(args.out + ".md").write_text(f"# The main command\n\n{header}\n\n{text}\n")
    Path(args.out + ".json").write_text(json.dumps({d: {s: {k: v for k, v in r.items() if k != "curve"}
                                                        for s, r in by.items()} for d, by in records.items()},
                                                   indent=1) + "\n")
    plot(records, args.out + ".png")


if __name__ == "__main__":
    main()
