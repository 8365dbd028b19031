"""Product quantization (``--quantizer pq``, gnaq/quant/pq.py; file kind "codebook", format 6) against
the float32 file of the same data: for each setting, from one converged fp32 run, the accuracy right
after k-means (no training) and after quantization-aware fine-tuning, the history-free file's bytes
and ratio, and top-10 latency per backend. The same fine-tuning from the CLI:

    python -m gnaq.train --dataset ml-1m --bits 2 --quantizer pq --init-from RUN --lr 0.0003 \
        --quant-option rotation=adaptive --quant-option subspaces=12 --quant-option code_bits=8

    python bench/product_quantization.py --run ~/.cache/gnaq-runs/ml1m-fp32 --dataset ml-1m \
        [--settings adaptive:12:8:sides identity:16:8:sides ...] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, emit, markdown_table  # noqa: E402

DEFAULT_SETTINGS = ["adaptive:16:8:sides", "adaptive:12:8:sides", "adaptive:12:8:shared", "adaptive:8:8:sides",
                    "adaptive:6:8:shared", "identity:16:8:sides"]


def latency(path, users, backend):
    """(load seconds, median top-10 milliseconds over ``users``) of the file on one backend."""
    from gnaq import edge
    t0 = time.perf_counter()
    model = edge.load(path, backend)
    load = time.perf_counter() - t0
    model.recommend(model.user_ids[0], k=10, exclude_seen=False)  # warm
    times = []
    for raw in model.user_ids[:users]:
        t0 = time.perf_counter()
        model.recommend(raw, k=10, exclude_seen=False)
        times.append(time.perf_counter() - t0)
    return load, 1000 * sorted(times)[len(times) // 2]


def main():
    from gnaq.export import export_model
    from gnaq.training import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="converged fp32 run folder (its best.npz and result.json)")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, metavar="ROTATION:M:BITS:CODEBOOKS")
    parser.add_argument("--lr", type=float, default=0.0003)
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning budget (0: k-means only)")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--users", type=int, default=50, help="users timed per backend (pure Python: a tenth)")
    parser.add_argument("--out", default="/tmp/gnaq-pq")
    parser.add_argument("--markdown", default=None, help="also write the table here")
    args = parser.parse_args()
    run = Path(args.run).expanduser()
    fp32 = json.loads((run / "result.json").read_text())
    rows = []
    for setting in args.settings:
        rotation, M, b, books = setting.split(":")
        options = {"rotation": rotation, "subspaces": int(M), "code_bits": int(b), "codebooks": books}
        out = Path(args.out) / setting.replace(":", "-")
        cfg = TrainConfig(dataset=args.dataset, data_dir=data_dir(), bits=2, quantizer="pq", quant_options=options,
                          init_from=str(run), lr=args.lr, patience=args.patience, epochs=max(args.epochs, 1),
                          progress=False, out=str(out))
        trainer = Trainer(cfg)
        before = trainer.evaluate("test")
        if args.epochs:
            after = trainer.fit()
            after = {k[len("test_"):]: v for k, v in after.items() if k.startswith("test_")}
        else:
            after = before
        path = out / "model.gnaq"
        info = export_model(trainer.model, trainer.data, path, history=False)
        q = trainer.model.quantizer
        ratio = info["float32_file_bytes"] / info["file_bytes"]
        pct = lambda m, k: 100 * m[k] / fp32[f"test_{k}"]  # noqa: E731
        timings = [latency(path, args.users if b != "python" else max(args.users // 10, 1), b)
                   for b in ("numba", "numpy", "python")]
        rows.append([setting, f"{q.mean_bits:.2f}", str(q.dims), f"{info['file_bytes']:,}", f"{ratio:.1f}x",
                     f"{pct(before, 'recall@20'):.1f}% / {pct(before, 'ndcg@20'):.1f}%",
                     f"{pct(after, 'recall@20'):.1f}% / {pct(after, 'ndcg@20'):.1f}%"]
                    + [f"{load:.2f} / {ms:.2f}" for load, ms in timings])
        print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["setting (rotation:M:b:codebooks)", "bits a value", "subspace dims p_m", "file bytes",
                            "vs float32 file", "k-means only R@20 / N@20 vs fp32", "fine-tuned R@20 / N@20 vs fp32",
                            "numba load s / top-10 ms", "numpy load s / top-10 ms", "python load s / top-10 ms"], rows)
    emit(table, args.markdown)


if __name__ == "__main__":
    main()
