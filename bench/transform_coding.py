"""Transform coding for graph-free files: z rotated onto its principal axes, each axis at its own width.

A prototype quantizer (not exportable yet: the .gnaq format has no per-axis widths), trained
quantization-aware from a converged fp32 run, to see whether an average of exactly b bits per value
can beat uniform b-bit z. Scores are dot products, so an orthogonal R is free on the device:
(zᵤR)·(zᵢR) = zᵤ·zᵢ. With z (N, d) the fp32 run's representation and λₖ, R its covariance's
eigenvalues (descending) and eigenvectors (fixed at the start):

    widths bₖ ∈ {0..4} per axis by reverse water-filling on λₖ, Σₖ bₖ = b·d   (mixed_ptq.allocate_bits)
    ẑ = Q(z R; sₙ · Δ_{bₖ} · √(λₖ / mean λ), bₖ)   sₙ = exp(log sₙ) learned per node, init RMS(zₙR)
    (an axis at 0 bits is dropped: ẑ[:, k] = 0), LSQ-style step gradient scaled by 1/√(2d)

    python bench/transform_coding.py --run ~/.cache/gnaq-runs/ml1m-fp32 [--budget 2] [--lr 0.003]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir  # noqa: E402
from mixed_ptq import allocate_bits, axis_steps  # noqa: E402


def klt_quantizer(budget: float):
    from gnaq import autograd as ag
    from gnaq.quant.base import Quantizer, weighted_sum
    from gnaq.quant.uniform import fake_quantize, row_rms

    class KLTQuantizer(Quantizer):
        name = "klt"
        exportable = False

        def __init__(self, bits: int):
            self.bits = bits

        def setup(self, model) -> None:
            super().setup(model)
            z = self.combination().astype(np.float64)
            lam, axes = np.linalg.eigh(z.T @ z / len(z))
            lam, axes = lam[::-1], axes[:, ::-1]
            self.widths = allocate_bits(lam, int(round(budget * z.shape[1])), max_bits=4)
            dtype = model.embedding.data.dtype
            self.R = ag.Tensor(axes.astype(dtype))
            self.axis_bits = self.widths[None, :].astype(dtype)
            self.axis_step = ag.Tensor(axis_steps(self.widths, lam)[None, :].astype(dtype))
            self.log_node = ag.Tensor(np.log(row_rms(z @ axes)).astype(dtype), requires_grad=True, name="log_node")

        def parameters(self) -> list:
            return [self.log_node]

        def represent(self):
            zr = ag.matmul(weighted_sum(self.model.layers(), self.model.layer_weights), self.R)
            s = ag.exp(self.log_node) * self.axis_step
            return fake_quantize(zr, s, self.axis_bits, grad_scale=1.0 / math.sqrt(2 * zr.data.shape[1]))

    return KLTQuantizer


def main():
    from gnaq.quant import QUANTIZERS
    from gnaq.trainer import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="converged fp32 run folder (its best.npz and result.json)")
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--budget", type=float, default=2.0, help="average bits per value")
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--lr-drops", type=int, default=0)
    parser.add_argument("--sampler", default="interactions", choices=("interactions", "users"))
    parser.add_argument("--out", default="/tmp/gnaq-transform-coding")
    args = parser.parse_args()
    import json
    fp32 = json.loads((Path(args.run).expanduser() / "result.json").read_text())
    QUANTIZERS["klt"] = klt_quantizer(args.budget)
    cfg = TrainConfig(dataset=args.dataset, data_dir=data_dir(), bits=2, quantizer="klt",
                      init_from=str(Path(args.run).expanduser()), lr=args.lr, patience=args.patience,
                      epochs=args.epochs, sampler=args.sampler, lr_drops=args.lr_drops, progress=False, out=args.out)
    trainer = Trainer(cfg)
    widths = trainer.model.quantizer.widths
    print("axes per width (0..4 bits):", np.bincount(widths, minlength=5).tolist(), flush=True)
    rel = lambda m, pre="": (m[f"{pre}recall@20"] / fp32["test_recall@20"], m[f"{pre}ndcg@20"] / fp32["test_ndcg@20"])  # noqa: E731
    print("before training: test R@20 / N@20 vs fp32 %.1f%% / %.1f%%" % tuple(100 * v for v in rel(trainer.evaluate("test"))), flush=True)
    result = trainer.fit(on_eval=lambda r: print(f"epoch {r['epoch']}: valid NDCG@20 {r['ndcg@20']:.4f}", flush=True))
    r, n = rel(result, "test_")
    print(f"budget {args.budget} bits, lr {args.lr}, lr drops {args.lr_drops}: best epoch {result['best_epoch']} of {result['epochs_run']}, "
          f"test Recall@20 {result['test_recall@20']:.4f} NDCG@20 {result['test_ndcg@20']:.4f} = {r:.1%} / {n:.1%} of fp32")


if __name__ == "__main__":
    main()
