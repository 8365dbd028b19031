"""Transform coding for graph-free files: gnaq's ``transform="klt"`` (gnaq/quant/axes.py).

Trains quantization-aware from a converged fp32 run and reports test Recall/NDCG@20 against that
run, before and after training, with the exported file's bytes: z rotated onto its principal axes
(free on the device: (zᵤR)·(zᵢR) = zᵤ·zᵢ), each axis at its own width by reverse water-filling
(Σₖ bₖ = b·d), its own integer-weighted step, one learned scale per node. The same run from the CLI:

    python -m gnaq.train --dataset ml-1m --bits 2 --init-from RUN --quant-option quantize=z \
        --quant-option transform=klt [--lr 0.003 ...]

    python bench/transform_coding.py --run ~/.cache/gnaq-runs/ml1m-fp32 [--bits 2] [--lr 0.003] [--busy-share 0.25]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir  # noqa: E402


def main():
    from gnaq.export import export_model
    from gnaq.training import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="converged fp32 run folder (its best.npz and result.json)")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--bits", type=int, default=2, help="average bits per value")
    parser.add_argument("--busy-share", type=float, default=0.0,
                        help="share of users and of items (by degree) at bits + 1 a value, the rest fewer")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr-drops", type=int, default=0)
    parser.add_argument("--sampler", default="interactions", choices=("interactions", "users"))
    parser.add_argument("--out", default="/tmp/gnaq-transform-coding")
    args = parser.parse_args()
    import json
    fp32 = json.loads((Path(args.run).expanduser() / "result.json").read_text())
    cfg = TrainConfig(dataset=args.dataset, data_dir=data_dir(), bits=args.bits, quantizer="gnaq",
                      quant_options={"quantize": "z", "transform": "klt",
                                     **({"busy_share": args.busy_share, "busy_bits": args.bits + 1} if args.busy_share else {})},
                      init_from=str(Path(args.run).expanduser()), lr=args.lr, patience=args.patience,
                      epochs=args.epochs, sampler=args.sampler, lr_drops=args.lr_drops, progress=False, out=args.out)
    trainer = Trainer(cfg)
    quantizer = trainer.model.quantizer
    for g, widths in enumerate(quantizer.axes.widths):  # per node group (1: the busy nodes)
        counts = np.bincount(widths, minlength=9)
        counts[0] += trainer.model.dim - len(widths)  # dropped axes
        print(f"group {g}: axes per width (0..8 bits): {counts.tolist()}", flush=True)
    print(f"mean bits per value: {quantizer.mean_bits:.3f}", flush=True)
    rel = lambda m, pre="": (m[f"{pre}recall@20"] / fp32["test_recall@20"], m[f"{pre}ndcg@20"] / fp32["test_ndcg@20"])  # noqa: E731
    print("before training: test R@20 / N@20 vs fp32 %.1f%% / %.1f%%" % tuple(100 * v for v in rel(trainer.evaluate("test"))), flush=True)
    result = trainer.fit(on_eval=lambda r: print(f"epoch {r['epoch']}: valid NDCG@20 {r['ndcg@20']:.4f}", flush=True))
    r, n = rel(result, "test_")
    info = export_model(trainer.model, trainer.data, Path(args.out) / "model.gnaq", history=False)
    print(f"file without history: {info['file_bytes']:,} bytes, {info['float32_file_bytes'] / info['file_bytes']:.1f}x "
          f"smaller than float32's ({info['float32_file_bytes']:,})")
    print(f"{args.bits} bits, lr {args.lr}, lr drops {args.lr_drops}: best epoch {result['best_epoch']} of {result['epochs_run']}, "
          f"test Recall@20 {result['test_recall@20']:.4f} NDCG@20 {result['test_ndcg@20']:.4f} = {r:.1%} / {n:.1%} of fp32")


if __name__ == "__main__":
    main()
