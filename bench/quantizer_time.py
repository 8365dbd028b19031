"""The paper's training-time claim, side by side: wall-clock seconds to the best validation epoch of
each quantizer at 2 bits, fine-tuned from the same converged full-precision run on the same machine,
each at the best of a few learning rates (chosen on validation, never on test).

    python bench/quantizer_time.py --dataset lastfm --init-from FP32_RUN [--quantizers gnaq ste lsq n2uq bigear]
                                   [--lrs 0.001 0.003 0.01] [--runs-dir ~/.cache/gnaq-runs/qtime]
                                   [--out bench/results/quantizer_time-lastfm]

Each (quantizer, lr) is ``python -m gnaq.train --bits 2 --quantizer Q --init-from FP32_RUN --quant-lr LR
--target off --no-export`` with the default propagation (sampled for gnaq's graph-free deployment, the
full graph for the baselines) and patience; a finished run folder is read, not rerun. Seconds to best:
the training + evaluation seconds of metrics.jsonl up to the best validation epoch. Ratio: each
quantizer's seconds to best over gnaq's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"amazon-sports": SHARED_DATA.parent / "selfrec"}


def run(dataset, quantizer, lr, init_from, folder: Path, threads: int) -> None:
    command = [sys.executable, "-m", "gnaq.train", "--dataset", dataset,
               "--data-dir", str(FOLDERS.get(dataset, SHARED_DATA)), "--bits", "2", "--quantizer", quantizer,
               "--init-from", init_from, "--quant-lr", str(lr), "--target", "off", "--no-export", "--quiet",
               "--out", str(folder)]
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    with open(f"{folder}.log", "w") as log:
        subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def read(folder: Path) -> dict:
    result = json.loads((folder / "result.json").read_text())
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines() if x.strip()]
    best = result["best_epoch"]
    seconds = sum(x.get("train_seconds", 0) + x.get("eval_seconds", 0) for x in lines if x["epoch"] <= best)
    valid = max((x["ndcg@20"] for x in lines if x["epoch"] == best), default=None)
    return {"best_epoch": best, "epochs": result["epochs_run"], "seconds_to_best": seconds, "valid_ndcg": valid,
            "propagation": result.get("propagation"), "recall": result["test_recall@20"],
            "ndcg": result["test_ndcg@20"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--init-from", required=True, help="a converged full-precision run folder")
    p.add_argument("--quantizers", nargs="+", default=["gnaq", "ste", "lsq", "n2uq", "bigear"])
    p.add_argument("--lrs", nargs="+", type=float, default=[0.001, 0.003, 0.01])
    p.add_argument("--runs-dir", default=os.path.expanduser("~/.cache/gnaq-runs/qtime"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = args.out or str(ROOT / "bench" / "results" / f"quantizer_time-{args.dataset}")
    chosen = {}
    for quantizer in args.quantizers:
        for lr in args.lrs:
            folder = Path(args.runs_dir) / f"{args.dataset}-{quantizer}-lr{lr:g}"
            if not (folder / "result.json").exists():
                folder.mkdir(parents=True, exist_ok=True)
                run(args.dataset, quantizer, lr, args.init_from, folder, args.threads)
            record = {**read(folder), "lr": lr}
            print(quantizer, record, flush=True)
            if quantizer not in chosen or record["valid_ndcg"] > chosen[quantizer]["valid_ndcg"]:
                chosen[quantizer] = record  # the learning rate is chosen on validation
    base = chosen.get("gnaq", {}).get("seconds_to_best")
    rows = [[q, f"{r['lr']:g}", r["propagation"], f"{r['best_epoch']} / {r['epochs']}", f"{r['seconds_to_best']:.1f}",
             f"{r['seconds_to_best'] / base:.2f}x" if base else "-", f"{r['valid_ndcg']:.4f}",
             f"{r['recall']:.4f} / {r['ndcg']:.4f}"] for q, r in chosen.items()]
    table = markdown_table(["quantizer", "lr (best on validation)", "propagation", "best / last epoch",
                            "seconds to best", "over gnaq's", "valid NDCG@20", "test Recall@20 / NDCG@20"], rows)
    header = (f"`python bench/quantizer_time.py --dataset {args.dataset} --init-from FP32_RUN --quantizers "
              f"{' '.join(args.quantizers)} --lrs {' '.join(f'{x:g}' for x in args.lrs)} --threads {args.threads}` "
              f"— {os.cpu_count()}-core CPU, one run at a time, {args.threads} thread(s) each; FP32_RUN: the main "
              f"command's converged full-precision run (sampled propagation).")
    print(table)
    Path(out + ".md").write_text(f"# Training time to the best epoch, every quantizer at 2 bits: {args.dataset}\n\n"
                                 f"{header}\n\n{table}\n")
    Path(out + ".json").write_text(json.dumps(chosen, indent=1) + "\n")


if __name__ == "__main__":
    main()
