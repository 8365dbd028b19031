"""Full precision vs every quantizer, same engine, data, hyper-parameters and epoch budget.

Each run trains LightGCN with one quantizer, selects the epoch by validation NDCG@20 and
reports test Recall/NDCG@10/20, the stored model size (codes + scales, what `.gnaq` holds for
the embeddings) and its compression vs float32, seconds per training epoch and epochs to best.
Each run's record goes to bench/results/compare/DATASET/RUN.json as it finishes, so runs can
be split over processes; ``--table`` merges them into bench/results/compare-DATASET.{md,json}.

    python bench/compare_quantizers.py --dataset ml-1m --epochs 40 [--runs fp32 gnaq-b2 ...]
    python bench/compare_quantizers.py --dataset ml-1m --table

Converged comparison (``--init-from RUN``): the full-precision row is RUN itself (a converged fp32
run folder, e.g. from ``python -m gnaq.train --bits 32``); every quantizer is fine-tuned from its
embeddings (no warm-up) until validation NDCG@20 stops improving (``--patience``). Records go to
compare/DATASET-converged/ and the table to compare-DATASET-converged.{md,json}.

    python bench/compare_quantizers.py --dataset gowalla --init-from ~/.cache/gnaq-runs/gowalla-fp32 \
        --epochs 30 --eval-every 1 --patience 3 --runs gnaq-l0-b2 gnaq-b2 ste-l0-b2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402

# name -> (quantizer, bits, options). Two deployments (see README):
#   layer0 — the stored table is Ê⁽⁰⁾, z = Σ αₗ Âˡ Ê⁽⁰⁾ in full precision (the paper's; gnaq's default);
#   z      — the representation z itself is quantized: graph-free packed scoring on the device.
# GNAQ: full-precision warm-up of a third of the budget ("third": --epochs // 3), refine=False.
L0 = {"warmup": "third", "quantize": "layer0"}
GNAQ = {"warmup": "third", "quantize": "z"}
RUNS = {
    "fp32": ("gnaq", 32, {}),
    # layer-0 deployment
    "gnaq-l0-b2": ("gnaq", 2, L0),
    "ste-l0-b2": ("ste", 2, {"quantize": "layer0"}),
    "lsq-l0-b2": ("lsq", 2, {"quantize": "layer0"}),
    "gnaq-l0-b1": ("gnaq", 1, L0),
    "gnaq-l0-b3": ("gnaq", 3, L0),
    "gnaq-l0-b4": ("gnaq", 4, L0),
    "gnaq-l0-b2-global-init": ("gnaq", 2, {**L0, "node_aware": False}),
    "gnaq-l0-b2-mix25": ("gnaq", 2, {**L0, "mix_share": 0.25}),
    "gnaq-official-b2": ("gnaq-official", 2, L0 | {"quantize": None}),  # the authors' released code
    "gnaq-official-b1": ("gnaq-official", 1, L0 | {"quantize": None}),
    "gnaq-official-b2-quant-lr": ("gnaq-official", 2, {"warmup": "third", "quant_lr": 1e-3}),
    "gnaq-official-b2-no-tanh": ("gnaq-official", 2, {"warmup": "third", "tanh": False}),
    # z deployment
    "gnaq-b2": ("gnaq", 2, GNAQ),
    "ste-b2": ("ste", 2, {}),
    "lsq-b2": ("lsq", 2, {}),
    "n2uq-b2": ("n2uq", 2, {}),
    "bigear-b2": ("bigear", 2, {}),  # (stores every layer's codes)
    "bigear-b1": ("bigear", 1, {}),
    "gnaq-b1": ("gnaq", 1, GNAQ),
    "gnaq-b3": ("gnaq", 3, GNAQ),
    "gnaq-b4": ("gnaq", 4, GNAQ),
    "gnaq-b8": ("gnaq", 8, GNAQ),
    # ablations at 2 bits (z deployment): one idea switched off (or on) at a time
    "gnaq-b2-global-init": ("gnaq", 2, {**GNAQ, "node_aware": False}),
    "gnaq-b2-refine": ("gnaq", 2, {**GNAQ, "refine": True}),  # learned refinement through Â on
    "gnaq-b2-quant-lr": ("gnaq", 2, {**GNAQ, "quant_lr": 1e-3}),  # 10x lower rate after the warm-up
    "gnaq-b2-graph-grad": ("gnaq", 2, {**GNAQ, "delta": 0.5}),
    "gnaq-b2-per-layer": ("gnaq", 2, {**GNAQ, "per_layer": True}),
    "gnaq-b2-messages": ("gnaq", 2, {**GNAQ, "messages": True}),
    "gnaq-b2-warmup-half": ("gnaq", 2, {**GNAQ, "warmup": "half"}),
    "gnaq-b2-no-warmup": ("gnaq", 2, {**GNAQ, "warmup": 0}),
    "gnaq-b2-per-layer-no-warmup": ("gnaq", 2, {**GNAQ, "warmup": 0, "per_layer": True}),
    # graph-free (z) models distilled from the full-precision teacher (needs --init-from)
    "gnaq-b2-distill1": ("gnaq", 2, {**GNAQ, "distill": 1.0}),
    "gnaq-b2-distill0.1": ("gnaq", 2, {**GNAQ, "distill": 0.1}),
    "gnaq-b3-distill1": ("gnaq", 3, {**GNAQ, "distill": 1.0}),
    # node-aware mixed precision: 25% of users and of items (largest degree) at 4 bits, the rest at 2 (2.5 on average)
    "gnaq-b2-mix25": ("gnaq", 2, {**GNAQ, "mix_share": 0.25}),
    "gnaq-b2-mix25-distill1": ("gnaq", 2, {**GNAQ, "mix_share": 0.25, "distill": 1.0}),
    "ste-b2-mix25": ("ste", 2, {"mix_share": 0.25}),
    "lsq-b2-mix25": ("lsq", 2, {"mix_share": 0.25}),
    "ste-l0-b2-mix25": ("ste", 2, {"quantize": "layer0", "mix_share": 0.25}),
    "lsq-l0-b2-mix25": ("lsq", 2, {"quantize": "layer0", "mix_share": 0.25}),
    "gnaq-b2-mix25-random": ("gnaq", 2, {**GNAQ, "mix_share": 0.25, "mix_by": "random"}),
    # transform coding: z on its principal axes, a width per axis (same bits per node as uniform)
    "gnaq-b2-klt": ("gnaq", 2, {**GNAQ, "transform": "klt"}),
    "gnaq-b2-klt-distill1": ("gnaq", 2, {**GNAQ, "transform": "klt", "distill": 1.0}),
    # … and the 25% busiest users and items at 3 bits a value, the others fewer: still 2 bits on average
    "gnaq-b2-klt-busy25": ("gnaq", 2, {**GNAQ, "transform": "klt", "busy_share": 0.25, "busy_bits": 3}),
    "gnaq-b2-auto-busy25": ("gnaq", 2, {**GNAQ, "transform": "auto", "busy_share": 0.25, "busy_bits": 3}),  # the default
    "gnaq-b2-klt-busy25-distill1": ("gnaq", 2, {**GNAQ, "transform": "klt", "busy_share": 0.25, "busy_bits": 3,
                                                "distill": 1.0}),
    "gnaq-b1-klt": ("gnaq", 1, {**GNAQ, "transform": "klt"}),
    "gnaq-b3-klt": ("gnaq", 3, {**GNAQ, "transform": "klt"}),
}


def model_bytes(model) -> tuple:
    """(stored bytes of the embedding sections, float32 bytes) for the model's representation."""
    exported = model.quantizer.export()
    n = model.n_users + model.n_items
    float_bytes = n * model.dim * 4
    if "float" in exported:
        return float_bytes, float_bytes
    codes, bits = exported["codes"], model.quantizer.bits
    if "column_widths" in exported:  # transform coding: one bitstream of Σₖ b^g_k bits per row of group g
        row_bytes = -(-np.asarray(exported["column_widths"]).reshape(-1, codes.shape[1]).sum(1) // 8)
        group = np.asarray(exported.get("column_group", np.zeros(n, dtype=np.int64)))
        return int(row_bytes[group].sum()) + exported["scales"].size * 4, float_bytes
    if "widths" in exported:  # mixed precision: each node's row at its own width
        rows = -(-codes.shape[1] * np.asarray(exported["widths"]) // 8)
        return int(rows.sum()) + exported["scales"].size * 4, float_bytes
    row_bytes = -(-codes.shape[1] * bits // 8)
    if "levels" in exported:  # gnaq-official: layer-0 codes and 2^b float levels per node
        return n * row_bytes + exported["levels"].size * 4, float_bytes
    scales = exported["scales"]
    n_scales = 1 if bool((scales == scales.ravel()[0]).all()) else scales.size  # one global scale
    return n * row_bytes + n_scales * 4, float_bytes


def run_one(name, args, data):
    from gnaq.training import TrainConfig, Trainer
    quantizer, bits, options = RUNS[name]
    fractions = {"third": 3, "half": 2}
    if args.init_from:  # fine-tuned from a converged model: no warm-up
        options = {k: v for k, v in options.items() if k != "warmup"}
    elif options.get("warmup") in fractions:
        options = {**options, "warmup": args.epochs // fractions[options["warmup"]]}
    options = {k: v for k, v in options.items() if v is not None}
    quant_lr = options.pop("quant_lr", None)  # trainer settings, not the quantizer's
    distill = options.pop("distill", 0.0)
    out = Path(args.runs_dir).expanduser() / results_name(args) / (name + args.suffix)
    if out.exists():  # a fresh run each time: this script measures, it does not resume
        import shutil
        shutil.rmtree(out)
    cfg = TrainConfig(dataset=args.dataset, bits=bits, quantizer=quantizer, quant_options=options,
                      dim=args.dim, layers=args.layers, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, quant_lr=quant_lr, reg=args.reg, eval_every=args.eval_every,
                      patience=args.patience or 10**6, init_from=args.init_from, distill=distill,
                      lr_drops=args.lr_drops, sampler=args.sampler,
                      seed=args.seed, device=args.device, out=str(out), progress=False)
    trainer = Trainer(cfg, data)
    curve = []
    result = trainer.fit(on_eval=lambda r: (curve.append(r), print(name, json.dumps(
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}), flush=True)))
    stored, float_bytes = model_bytes(trainer.model)
    return {
        "run": name, "quantizer": quantizer if bits != 32 else "fp32", "bits": bits,
        "options": {**options, **({"quant_lr": quant_lr} if quant_lr else {}), **({"distill": distill} if distill else {})},
        **{k: result[f"test_{k}"] for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")},
        "model_bytes": int(stored), "compression": float_bytes / stored,
        "seconds_per_epoch": float(np.median([r["train_seconds"] for r in curve])),
        "best_epoch": result["best_epoch"], "epochs": result["epochs_run"],
        "valid_curve": [(r["epoch"], round(r["ndcg@20"], 5)) for r in curve],
        "config": {k: getattr(cfg, k) for k in ("dim", "layers", "epochs", "batch_size", "lr", "reg", "seed",
                                                 "init_from", "patience", "device", "lr_drops", "sampler")},
    }


def results_name(args) -> str:
    return args.dataset + ("-converged" if args.init_from else "")


def init_record(args) -> dict:
    """The fp32 row of a converged comparison: the --init-from run's own test result."""
    folder = Path(args.init_from).expanduser()
    result = json.loads((folder / "result.json").read_text())
    config_file = folder / "config.json"  # the run's own settings, not this comparison's
    saved = json.loads(config_file.read_text()) if config_file.exists() else {}
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()] \
        if (folder / "metrics.jsonl").exists() else []
    return {"run": "fp32", "quantizer": "fp32", "bits": 32, "options": {"source": str(args.init_from)},
            **{k: result[f"test_{k}"] for k in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")},
            "model_bytes": 0, "compression": 1.0,
            "seconds_per_epoch": float(np.median([x["train_seconds"] for x in lines])) if lines else 0.0,
            "best_epoch": result["best_epoch"], "epochs": result["epochs_run"], "valid_curve": [],
            "config": {**{k: saved.get(k, getattr(args, k)) for k in ("dim", "layers", "batch_size", "lr", "reg", "seed")},
                       "epochs": result["epochs_run"], "init_from": None, "patience": None}}


def write_table(dataset, runs_dir) -> str:
    folder = ROOT / "bench" / "results" / "compare" / dataset
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    for r in records:  # median over evaluated epochs: robust to a paused or disturbed epoch
        log = Path(runs_dir).expanduser() / dataset / r["run"] / "metrics.jsonl"
        if log.exists():
            lines = log.read_text().splitlines()
            r["seconds_per_epoch"] = float(np.median([json.loads(line)["train_seconds"] for line in lines]))
    order = {name: i for i, name in enumerate(RUNS)}
    records.sort(key=lambda r: (order.get(r["run"].split("-seed")[0], 99), r["run"]))
    fp = next((r for r in records if r["run"] == "fp32"), None)
    converged = dataset.endswith("-converged")
    common = next((r for r in records if r["run"] != "fp32"), records[0] if records else {}).get("config", {})
    rows = []
    for r in records:
        at = 20 if converged else 10  # converged tables compare at 20, as issue 11 asks
        rel = (f"{r[f'recall@{at}'] / fp[f'recall@{at}']:.1%} / {r[f'ndcg@{at}'] / fp[f'ndcg@{at}']:.1%}" if fp else "-")
        unset = {"lr_drops": 0, "sampler": "interactions"}  # what records from before these options ran with
        differs = {k: r["config"][k] for k in ("lr", "patience", "lr_drops", "sampler") if r["run"] != "fp32" and k in r["config"]
                   and r["config"][k] != common.get(k, unset.get(k))}
        options = ", ".join(f"{k}={v}" for k, v in {**r.get("options", {}), **differs}.items())
        rows.append([r["run"], options or "-", r["bits"], f"{r['recall@10']:.4f}", f"{r['ndcg@10']:.4f}", f"{r['recall@20']:.4f}",
                     f"{r['ndcg@20']:.4f}", rel, f"{r['model_bytes']:,}", f"{r['compression']:.1f}x",
                     f"{r['seconds_per_epoch']:.1f}" + (" (GPU)" if r["config"].get("device", "cpu") != "cpu" else ""),
                     f"{r['best_epoch']}/{r['epochs']}"])
    table = markdown_table(["run", "options", "bits", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20",
                            "R@20 / N@20 vs fp32" if converged else "R@10 / N@10 vs fp32",
                            "model bytes", "vs float32", "s/epoch (contended)", "best epoch"], rows)
    if records and converged:
        c = next(r for r in records if r["run"] != "fp32")["config"]
        table = (f"{dataset}: every quantizer fine-tuned from the converged full-precision run {c['init_from']} "
                 f"(the fp32 row: its own test result), no warm-up; d={c['dim']}, L={c['layers']}, batch "
                 f"{c['batch_size']}, lr {c['lr']}, reg {c['reg']}, at most {c['epochs']} epochs, early stop after "
                 f"{c['patience']} evaluations without validation NDCG@20 gain; test metrics at the best "
                 "validation NDCG@20. Model bytes: the embedding sections. s/epoch: contended, indicative only; "
                 "(GPU): that run was trained on a GPU (bench/results/gpu-h200*.md).\n\n"
                 + table)
    elif records:
        c = records[0]["config"]
        table = (f"{dataset}: d={c['dim']}, L={c['layers']}, batch {c['batch_size']}, lr {c['lr']}, reg {c['reg']}, "
                 f"{c['epochs']} epochs (rows with another budget or seed say so in their name: -e60, "
                 f"-seed2021), seed {c['seed']}; test metrics at the best validation NDCG@20. "
                 "Model bytes: the embedding sections (codes + scales; gnaq-official: codes + 2^b levels); "
                 "quantize=layer0 runs also need the training graph at inference (uint32 per interaction). "
                 "s/epoch: median over evaluated "
                 "epochs of single-threaded runs sharing 2 cores with another run — indicative only; "
                 "bench/train_speed.py is the controlled comparison.\n\n" + table)
    (ROOT / "bench" / "results" / f"compare-{dataset}.md").write_text(table + "\n")
    (ROOT / "bench" / "results" / f"compare-{dataset}.json").write_text(json.dumps(records, indent=1))
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--reg", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--lr-drops", type=int, default=0, help="learning-rate drops on a plateau (gnaq.train --lr-drops)")
    parser.add_argument("--sampler", default="interactions", choices=("interactions", "users"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--suffix", default="", help="appended to run names (e.g. -seed2021 for a repeat)")
    parser.add_argument("--table", action="store_true", help="only merge finished runs into the table")
    parser.add_argument("--init-from", default=None, help="converged fp32 run folder: fine-tune every quantizer from it")
    parser.add_argument("--patience", type=int, default=None, help="early stop after this many evaluations without gain")
    parser.add_argument("--runs-dir", default="~/.cache/gnaq-runs/compare", help="where run folders go (outside the repo)")
    args = parser.parse_args()
    folder = ROOT / "bench" / "results" / "compare" / results_name(args)
    if not args.table:
        from gnaq.data import load_dataset
        data = load_dataset(args.dataset, data_dir(), download_missing=False)
        folder.mkdir(parents=True, exist_ok=True)
        if args.init_from:
            (folder / "fp32.json").write_text(json.dumps(init_record(args), indent=1))
        args.runs = [r for r in args.runs if not (args.init_from and r == "fp32")]
        for name in args.runs:
            t0 = time.perf_counter()
            record = run_one(name, args, data)
            record["run"] = name + args.suffix
            record["wall_seconds"] = round(time.perf_counter() - t0, 1)
            (folder / f"{name}{args.suffix}.json").write_text(json.dumps(record, indent=1))
    print(write_table(results_name(args), args.runs_dir))


if __name__ == "__main__":
    main()
