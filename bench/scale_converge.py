"""Time to a converged model on a large synthetic graph, with the CLI's defaults (sampled propagation from 2 M
training interactions, validation on a fixed 10,000-user sample), trained until validation stops improving.

    python bench/scale_converge.py [--millions 14] [--out DIR] [--resume] [--epochs N] [--mode auto]

The graph is bench/scale.py's: gnaq.data.synthetic.make_synthetic(n_users, 0.4·n_users, mean_degree=25, seed=0)
with n_users chosen for the stated millions of training interactions (cached under GNAQ_SCALE_CACHE). Each epoch's
line (wall seconds, validation NDCG@20 ± its standard error) prints as it comes and lands in DIR/metrics.jsonl; the
run checkpoints DIR/last.npz every epoch, so ``--resume`` continues an interrupted run exactly. At the end: the
minutes to the best validation epoch and to the end of the run, and test Recall@20 / NDCG@20 over every user
(chunked within the evaluation's memory budget, with a progress bar). ``--mode``: auto (the CLI's defaults), full
(the full graph every step) or one of bench/scale.py's sampled modes ("sampled-w6": 6 walks, an earlier
default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import load, sampler_options  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--millions", type=float, default=14.0, help="training interactions, millions")
    parser.add_argument("--out", default=None, help="run folder (default ~/.cache/gnaq-runs/converge-<M>M)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.npz")
    parser.add_argument("--epochs", type=int, default=None, help="epoch budget (default: the CLI's)")
    parser.add_argument("--mode", default="auto", help="auto, full, or a bench/scale.py sampled mode (e.g. sampled-w6)")
    args = parser.parse_args()
    from gnaq.training import TrainConfig, Trainer
    out = Path(args.out or Path.home() / ".cache" / "gnaq-runs" / f"converge-{args.millions:g}M")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = load(f"synthetic:{args.millions:g}")
    print(f"graph: {data.n_users:,} users x {data.n_items:,} items, {data.train.nnz:,} training interactions "
          f"({time.perf_counter() - t0:.0f} s to load)", flush=True)
    extra = {"epochs": args.epochs} if args.epochs else {}
    if args.mode == "full":
        extra["propagation"] = "full"
    elif args.mode != "auto":
        extra.update(propagation="sampled", **sampler_options(args.mode))
    trainer = Trainer(TrainConfig(bits=32, valid_users=10000, out=str(out), **extra), data=data)
    if args.resume and (out / "last.npz").exists():
        trainer.restore(out / "last.npz")
        print(f"resumed after epoch {trainer.epoch}", flush=True)
    print(f"propagation: {trainer.propagation}", flush=True)
    result = trainer.fit(on_eval=lambda r: print(json.dumps(
        {k: r[k] for k in ("epoch", "loss", "ndcg@20", "ndcg@20_se", "recall@20", "train_seconds", "eval_seconds")
         if k in r}), flush=True))
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    to_best = sum(x["train_seconds"] + x.get("eval_seconds", 0) for x in lines if x["epoch"] <= result["best_epoch"])
    print(json.dumps({"millions": args.millions, "mode": args.mode, "interactions": data.train.nnz, "best_epoch": result["best_epoch"],
                      "epochs_run": result["epochs_run"], "minutes_to_best": round(to_best / 60, 1),
                      "minutes_run": round(result["seconds"] / 60, 1), "test_recall@20": result.get("test_recall@20"),
                      "test_ndcg@20": result.get("test_ndcg@20"), "phases": result.get("phases")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
