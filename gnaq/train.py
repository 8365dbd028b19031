"""``python -m gnaq.train``: train LightGCN (full precision or quantized), evaluate, export.

    python -m gnaq.train --dataset ml-1m --bits 2 --out runs/ml1m-2bit

Writes DIR/config.json, DIR/metrics.jsonl (one JSON line per evaluation), DIR/best.npz and
DIR/last.npz (atomic), DIR/result.json (test metrics of the best epoch) and, at the end, the
packed model (DIR/model.gnaq unless --export PATH). ``--resume DIR`` continues an interrupted
run exactly. Bad arguments or missing data: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time

from .backend import DEVICES, DeviceUnavailable


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit 2, no usage dump
        print(f"gnaq.train: error: {message}", file=sys.stderr)
        sys.exit(2)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written; every option's default shown (none where it has none)."""

    def _get_help_string(self, action):
        if action.default in (None, False, []) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    from .data import DATASET_NAMES
    from .quant import QUANTIZERS, SUPPORTED_BITS
    from .reach import REACH_SPLITS
    from .sampled import WALK_ALLOCATIONS
    from .training import TrainConfig
    defaults = TrainConfig()  # one set of defaults for the CLI and the library
    p = _Parser(prog="python -m gnaq.train", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(DATASET_NAMES)}, or a folder of "
                   "train.txt / valid.txt / test.txt")
    p.add_argument("--data-dir", default=None, help="folder holding DATASET/ (default: $GNAQ_DATA_DIR, else a cache "
                   "the known datasets are downloaded to)")
    p.add_argument("--bits", type=int, default=None, choices=SUPPORTED_BITS,
                   help="bits a value of the exported embeddings, on average (gnaq's busiest nodes get a bit "
                        "more, the rest less); 32: full precision (default: 2, as the library's Recommender; "
                        "with --size, the bits the ratio leaves)")
    p.add_argument("--quantizer", default=defaults.quantizer, choices=tuple(QUANTIZERS),
                   help="gnaq, or a baseline for comparison")
    p.add_argument("--target", default=None, metavar="FRACTION",
                   help="off: exactly --bits; a fraction such as 0.98: when the 2-bit model keeps less of full "
                        "precision's validation Recall@20 or NDCG@20, fine-tune larger files until one keeps it "
                        "(the choice is printed; default off, or with --resume the run's own)")
    p.add_argument("--dim", type=int, default=defaults.dim, help="embedding width d")
    p.add_argument("--layers", type=int, default=defaults.layers, help="LightGCN propagation layers L")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"overall epoch budget (default {defaults.epochs}: phases end by their patience long "
                        "before it; with --resume, extends the run)")
    p.add_argument("--time-budget", type=parse_duration, default=None, metavar="DURATION",
                   help="wall-clock budget of training + evaluation, e.g. 3600, 90m, 2h (the full-precision "
                        "warm-up may use half of it; with --resume, replaces the run's)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="BPR positives a step")
    p.add_argument("--lr", type=float, default=defaults.lr, help="Adam's learning rate")
    p.add_argument("--reg", type=float, default=defaults.reg, help="L2 weight on the layer-0 embeddings")
    p.add_argument("--topk", type=int, nargs="+", default=list(defaults.topk), help="K of Recall/NDCG@K reported")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the initial table, the split and sampling")
    p.add_argument("--device", default="cpu", choices=DEVICES, help="cuda needs cupy (pip install gnaq[gpu])")
    p.add_argument("--out", default=None, help="run folder (default runs/DATASET-bBITS-QUANTIZER)")
    p.add_argument("--export", default=None, help="packed model path (default OUT/model.gnaq)")
    p.add_argument("--no-export", action="store_true", help="train and evaluate only")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its last.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    q = p.add_argument_group("quantization")
    q.add_argument("--quant-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a quantizer option, e.g. delta=0.5 (repeatable; gnaq/quant/ lists each quantizer's)")
    q.add_argument("--quant-lr", type=float, default=defaults.quant_lr,
                   help="learning rate once quantization is active (default: 0.3·--lr for gnaq's default "
                        "deployment, else --lr)")
    q.add_argument("--size", type=parse_ratio, default=None, metavar="RATIO",
                   help="e.g. 16x: a graph-free file that many times smaller than the float32 file (sets --bits "
                        "unless given)")
    q.add_argument("--init-from", metavar="PATH", default=None,
                   help="start from a trained model's embeddings (a run folder or its best.npz): quantizers "
                        "initialise from it and skip the full-precision warm-up")
    q.add_argument("--distill", type=float, default=defaults.distill, metavar="LAMBDA",
                   help="score distillation from the --init-from model: + λ·mean squared score gap a batch")

    e = p.add_argument_group("schedule and evaluation")
    e.add_argument("--patience", type=int, default=defaults.patience,
                   help="evaluations without validation gain that end the (quantized) phase")
    e.add_argument("--warmup-patience", type=int, default=defaults.warmup_patience,
                   help="the same for gnaq's full-precision warm-up (default: --patience)")
    e.add_argument("--lr-drops", type=int, default=defaults.lr_drops, metavar="N",
                   help="when validation stops improving: back to the best epoch at lr ÷ 10, up to N times")
    e.add_argument("--eval-every", type=int, default=defaults.eval_every, help="epochs between evaluations")
    e.add_argument("--valid-users", type=int, default=defaults.valid_users, metavar="N",
                   help="validate on a fixed seeded sample of N users (0: all)")
    e.add_argument("--select", default=defaults.select, metavar="ndcg@K",
                   help="validation metric that selects the best epoch (default ndcg@20; K one of --topk)")
    e.add_argument("--merge-valid", action="store_true", help="train on train ∪ valid (LightGCN's gowalla protocol)")
    e.add_argument("--sampler", choices=("interactions", "users"), default=defaults.sampler,
                   help="BPR triplets: users drawn uniformly (LightGCN's) or one per training interaction")
    e.add_argument("--negatives", type=int, default=defaults.negatives, help="negatives a positive")

    g = p.add_argument_group("large graphs (sampled propagation, gnaq/sampled.py)")
    g.add_argument("--propagation", choices=("auto", "full", "sampled"), default=defaults.propagation,
                   help="full: the whole graph every step (an epoch ~ interactions²); sampled: only the batch's "
                        "rows, over a history refreshed --refreshes times an epoch (linear); auto: sampled for "
                        "full precision and gnaq's graph-free deployment, full for the baselines")
    g.add_argument("--refreshes", type=int, default=defaults.refreshes,
                   help="sampled: full propagations of the history an epoch")
    g.add_argument("--walks", type=int, default=defaults.walks,
                   help="sampled: random walks a batch row (default 0, the history estimator with the reach)")
    g.add_argument("--reach", type=float, default=defaults.reach, metavar="S",
                   help="with --walks 0: weight of the neighbours' share of each step's gradient, applied at "
                        "every refresh (default 1; 0: off; gnaq/reach.py)")
    g.add_argument("--reach-split", choices=REACH_SPLITS, default=defaults.reach_split,
                   help="with the reach: how a row's gradient is split between steps and moves (default lightgcn)")
    g.add_argument("--gradient-walks", type=int, default=None, metavar="K",
                   help="sampled, with walks: the gradient reaches K of each target's walks")
    g.add_argument("--walk-allocation", choices=WALK_ALLOCATIONS, default=defaults.walk_allocation,
                   help="sampled, with walks: walks a distinct batch row")
    g.add_argument("--average", type=parse_average, default=defaults.average, metavar="DECAY",
                   help="evaluate and export the moving average of the full-precision weights: auto (β 0.998 "
                        "with sampled propagation, off on the full graph), off, or β in (0, 1)")

    x = p.add_argument_group("export (the .gnaq file)")
    x.add_argument("--export-history", choices=("yes", "no"), default="yes",
                   help="store users' training items to mask what they have seen")
    x.add_argument("--export-users", choices=("yes", "no"), default="yes",
                   help="no: an item-only file (devices fold their own user in)")
    x.add_argument("--export-gram", choices=("yes", "no"), default="yes",
                   help="no: leave out the items' Gram matrix (a device computes it on its first fold-in)")
    x.add_argument("--export-entropy", choices=("yes", "no"), default="no",
                   help="yes: Huffman-code a transform-coded file's rows (~10%% fewer code bytes)")
    return p


def parse_duration(text: str) -> float:
    """'3600', '90s', '90m', '2h', '1.5h' → seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, scale = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or a number with s/m/h, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return seconds


def parse_ratio(text: str) -> float:
    """'16x' or '16' → 16.0 (a size ratio above 1)."""
    try:
        value = float(text[:-1] if text.lower().endswith("x") else text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a ratio such as 16x, got {text!r}") from None
    if not value > 1:
        raise argparse.ArgumentTypeError(f"must be above 1, got {text!r}")
    return value


def parse_average(text: str):
    """--average: auto → None (the trainer's default), off → 0, else a decay in (0, 1)."""
    if text in ("auto", None):
        return None
    if text == "off":
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a decay such as 0.998, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"a decay must be in [0, 1), got {text}")
    return value


def parse_quant_options(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--quant-option {item!r}: expected KEY=VALUE")
        low = value.lower()
        if low in ("true", "false", "yes", "no"):
            out[key] = low in ("true", "yes")
        else:
            try:
                out[key] = float(value) if any(c in value for c in ".e") else int(value)
            except ValueError:
                out[key] = value
    return out


def config_from_args(args):
    from .training import TrainConfig
    if args.resume:
        path = os.path.join(args.resume, "config.json")
        if not os.path.exists(path):
            raise ValueError(f"--resume {args.resume}: no config.json there")
        with open(path) as f:
            saved = json.load(f)
        from .training import DEPLOYMENT_OPTIONS
        if saved.get("quantizer") == "gnaq" and saved.get("bits") != 32 and not DEPLOYMENT_OPTIONS & set(
                saved.get("quant_options", {})):
            raise ValueError(f"--resume {args.resume}: this run folder was written by an older gnaq (its config "
                             "names no deployment); finish it with the version that wrote it, or start a new run")
        unknown = set(saved) - {f.name for f in dataclasses.fields(TrainConfig)}
        if unknown:
            raise ValueError(f"--resume {args.resume}: config.json holds {', '.join(sorted(unknown))}, which this "
                             "gnaq does not know; finish the run with the version that wrote it")
        saved["topk"] = tuple(saved["topk"])
        saved["progress"] = not args.quiet
        if args.epochs is not None:
            saved["epochs"] = args.epochs
        if args.time_budget is not None:
            saved["time_budget"] = args.time_budget
        if args.export is not None:
            saved["export"] = args.export
        return TrainConfig(**saved)
    if args.bits is None:  # --size picks the bits its ratio leaves (TrainConfig) from 32
        args.bits = 32 if args.size else 2
    shape = f"{args.size:g}x" if args.size else f"b{args.bits}"
    out = args.out or os.path.join("runs", f"{os.path.basename(args.dataset.rstrip('/'))}-{shape}-{args.quantizer}")
    epochs = args.epochs or TrainConfig.epochs
    options = parse_quant_options(args.quant_option)
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, merge_valid=args.merge_valid, bits=args.bits,
        quantizer=args.quantizer, quant_options=options, dim=args.dim,
        layers=args.layers, epochs=epochs, time_budget=args.time_budget, batch_size=args.batch_size, lr=args.lr,
        quant_lr=args.quant_lr, init_from=args.init_from, distill=args.distill, reg=args.reg, sampler=args.sampler,
        negatives=args.negatives, propagation=args.propagation, walks=args.walks, gradient_walks=args.gradient_walks,
        walk_allocation=args.walk_allocation, reach=args.reach, reach_split=args.reach_split,
        refreshes=args.refreshes, average=args.average, topk=tuple(args.topk), select=args.select,
        eval_every=args.eval_every, valid_users=args.valid_users, patience=args.patience,
        warmup_patience=args.warmup_patience, lr_drops=args.lr_drops, seed=args.seed,
        device=args.device, out=out, export=args.export, export_history=args.export_history == "yes",
        export_users=args.export_users == "yes", export_gram=args.export_gram == "yes",
        export_entropy=args.export_entropy == "yes", progress=not args.quiet, size=args.size)


def summary_line(result: dict, seconds: float, resumed_after: int = None) -> str:
    """One readable line: time, best epoch, test metrics at every K; ``resumed_after``: the epoch a
    resumed run went on from (its time is this process's, not the run's)."""
    ks = sorted({int(k.split("@")[1]) for k in result if k.startswith("test_recall@")})
    metrics = ", ".join(f"Recall@{k} {result[f'test_recall@{k}']:.4f} NDCG@{k} {result[f'test_ndcg@{k}']:.4f}"
                        for k in ks)
    minutes, secs = divmod(int(round(seconds)), 60)
    phases = "; ".join(f"{name.replace('_', ' ')} epochs {p['first_epoch']}-{p['last_epoch']} ended by {p['ended_by']}"
                       for name, p in result.get("phases", {}).items())
    resumed = f" (this process, resumed after epoch {resumed_after})" if resumed_after is not None else ""
    return (f"done in {minutes}m{secs:02d}s{resumed}: best epoch {result['best_epoch']} of {result['epochs_run']} "
            f"({result['selection_metric']}); test {metrics}" + (f" [{phases}]" if phases else ""))


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    from .data import DataError
    from .comm import MPIUnavailable
    from .training import NonFiniteLoss, Trainer
    try:
        if args.size and args.target not in (None, "auto", "off"):
            raise ValueError("--size fixes the file's size and --target its accuracy: give one of them")
        config = config_from_args(args)
        if config.device == "auto":
            from .backend import resolve_device
            if resolve_device("auto") == "cpu":
                print("gnaq.train: --device auto: no usable CUDA device, training on the CPU", file=sys.stderr)
        trainer = Trainer(config)
    except (ValueError, DataError, DeviceUnavailable, MPIUnavailable) as exc:
        print(f"gnaq.train: error: {exc}", file=sys.stderr)
        return 2
    root = trainer.comm.is_root
    say = print if root else (lambda *a, **k: None)
    if not root:  # under mpiexec, rank 0 alone speaks (and writes)
        logging.getLogger().setLevel(logging.WARNING)
    resumed_after = None
    if args.resume:
        trainer.restore(os.path.join(args.resume, "last.npz"))
        resumed_after = trainer.epoch
        say(f"resumed {args.resume} after epoch {trainer.epoch}", file=sys.stderr)
    for note in trainer.data.notes:
        say(f"data: {note}", file=sys.stderr)
    started = time.perf_counter()
    from .target import fit_to_target, label_of, resolve_target, saved_target
    try:
        asked_target = args.target if args.target is not None else (
            saved_target(args.resume) if args.resume else "off")
        target = resolve_target(asked_target, config)
        if target is not None and target > 1.5:  # a percentage typed as such
            raise ValueError(f"target must be a fraction such as 0.97, got {target:g}")
    except ValueError as exc:
        say(f"gnaq.train: error: --{exc}", file=sys.stderr)
        return 2
    try:
        asked = config  # the run folder the user named: the chosen model is exported there
        trainer, result, _ = fit_to_target(config, trainer.data, target,
                                           on_eval=lambda r: say(json.dumps(r), flush=True), trainer=trainer)
        config = trainer.config
    except KeyboardInterrupt:
        say(f"\ninterrupted; the last complete epoch ({trainer.epoch}) is in {config.out}/last.npz — "
              f"continue with: python -m gnaq.train --resume {config.out}", file=sys.stderr)
        return 130
    except NonFiniteLoss as exc:
        say(f"gnaq.train: stopped: {exc}", file=sys.stderr)
        return 1
    say(json.dumps({"result": result}))
    say(summary_line(result, time.perf_counter() - started, resumed_after), file=sys.stderr)
    if "valid_kept" in result:
        tried = ", ".join(f"{t['setting']} {100 * t['valid_kept']:.1f}%" for t in result.get("tried", []))
        say(f"the quantized model keeps {100 * result.get('valid_kept_recall', result['valid_kept']):.1f}% / "
              f"{100 * result['valid_kept_ndcg']:.1f}% of full precision's validation Recall@20 / NDCG@20"
              + (f" (tried for --target {target:g}: {tried}; chose {label_of(config)}; --target off keeps "
                 f"exactly --bits {asked.bits})" if tried else "")
              + ("" if target or result["valid_kept"] >= 0.97 else
                 "; --target 0.97 would fine-tune larger files until one keeps 97%"), file=sys.stderr)
    whole = trainer.whole_model()  # every column (collective under mpiexec)
    if not root:
        return 0
    if not trainer.model.quantizer.exportable:
        say(f"not exported: the .gnaq edge format cannot hold --quantizer {config.quantizer} with "
              f"options {config.quant_options}", file=sys.stderr)
    elif not args.no_export:
        try:
            from .export import export_model
        except ImportError:
            return 0
        path = config.export or os.path.join(asked.out, "model.gnaq")
        try:
            info = export_model(whole, trainer.data, path, history=config.export_history,
                                users=config.export_users, entropy=config.export_entropy,
                                gram=config.export_gram)
        except ValueError as exc:
            say(f"gnaq.train: not exported: {exc}", file=sys.stderr)
            return 2
        ratio = info["float32_file_bytes"] / info["file_bytes"]
        say(f"exported {path}: {config.bits} bits a value, {info['file_bytes']:,} bytes, {ratio:.1f}x smaller "
            "than the float32 file of the "
            f"same data ({info['float32_file_bytes']:,} bytes; embeddings {info['embedding_bytes']:,}, "
              f"graph {info['graph_bytes']:,}, history "
              f"{sum(n for k, n in info['sections'].items() if k.startswith('history_')):,})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
