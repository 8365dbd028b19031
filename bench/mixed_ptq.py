"""Which nodes deserve more bits? Post-training diagnosis on a converged full-precision model.

z (N, d) of the fp32 run is quantized per node with its own step, sₙ = Δ_{bₙ} · σ(zₙ), at a width
bₙ per node (σ: the row's RMS; Δ_b: the Gaussian MSE-optimal step), and test Recall/NDCG@20 are
measured on ẑ. Uniform widths 2, 3, 4 against mixed 2/4-bit assignments with the same average
(a share of the nodes at 4 bits, e.g. 25% → 2.5 bits), the 4-bit nodes chosen by one statistic:
degree, embedding norm, 2-bit quantization error ‖zₙ − ẑₙ‖², or at random. Last rows: the same after
rotating z by an orthogonal R (Hadamard, random), which scores ignore: (zᵤR)·(zᵢR) = zᵤ·zᵢ, and
transform coding: R = z's principal axes (the KLT), each axis at its own width (reverse water-filling).
Shares are taken within users and within items separately, so both sides keep the average.

    python bench/mixed_ptq.py --run ~/.cache/gnaq-runs/ml1m-fp32 [--dataset ml-1m] [--share 0.25]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402


def quantize_rows(z, bits):
    """ẑ with sₙ = Δ_{bₙ}·σ(zₙ), bits: (N,) ints (gnaq's per-row-width quantizer)."""
    from gnaq.quant.uniform import optimal_step, quantize_forward, row_rms
    step = np.array([optimal_step(int(b)) for b in bits])[:, None]
    return quantize_forward(z, step * row_rms(z), bits[:, None].astype(float))[1]


def choose(score, n_users, share, low=2, high=4):
    """Bits per node: `high` for the top `share` of users and of items by score, else `low`."""
    from gnaq.quant.widths import widths_by_score
    return widths_by_score(score, n_users, low, high, share)


def quantize_axes(zr, widths, variance):
    """ẑ on rotated axes: axis k at widths[k] bits (0: dropped), node n's step on axis k
    RMS(zₙ)·Δ_{bₖ}·√(λₖ / mean λ) (gnaq.quant.axes.relative_steps times Δ_2)."""
    from gnaq.quant.axes import relative_steps
    from gnaq.quant.uniform import optimal_step, quantize_forward, row_rms
    out = np.zeros_like(zr)
    steps = row_rms(zr) * (relative_steps(widths, variance, 2) * optimal_step(2))[None, :]
    for k, b in enumerate(widths.tolist()):
        if b:
            out[:, k] = quantize_forward(zr[:, k:k + 1], steps[:, k:k + 1], b)[1][:, 0]
    return out


def hadamard(n):
    """Sylvester's n × n Hadamard matrix / √n (n a power of 2): orthogonal, spreads a row's outliers."""
    h = np.ones((1, 1))
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    if len(h) != n:
        raise ValueError(f"no Sylvester Hadamard matrix of size {n}")
    return h / np.sqrt(n)


def main():
    from gnaq.data import load_dataset
    from gnaq.metrics import evaluate
    from gnaq.training import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--share", type=float, nargs="+", default=[0.25])
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    saved = json.loads((Path(args.run).expanduser() / "config.json").read_text())
    trainer = Trainer(TrainConfig(dataset=args.dataset, dim=saved["dim"], layers=saved["layers"], progress=False,
                                  out="/tmp/gnaq-mixed-ptq"), data)
    trainer.load_weights(Path(args.run).expanduser() / "best.npz")
    users, items = trainer.model.final_embeddings()
    z = np.concatenate([users, items]).astype(np.float64)
    n_users = data.n_users
    seen = (data.train + data.valid).tocsr() if data.valid is not None else data.train

    def measure(zq):
        m = evaluate(zq[:n_users], zq[n_users:], seen, data.test, ks=(20,))
        return m["recall@20"], m["ndcg@20"]
    base = measure(z)
    degree = np.concatenate([np.diff(data.train.indptr), np.bincount(data.train.indices, minlength=data.n_items)])
    norm = np.linalg.norm(z, axis=1)
    error2 = ((z - quantize_rows(z, np.full(len(z), 2))) ** 2).sum(1)
    rows = []
    for b in (2, 3, 4):
        r, n = measure(quantize_rows(z, np.full(len(z), b)))
        rows.append([f"uniform {b}-bit", b, f"{r / base[0]:.1%}", f"{n / base[1]:.1%}"])
    rng = np.random.default_rng(0)
    for share in args.share:
        for name, score in (("degree", degree.astype(float)), ("norm", norm), ("2-bit error", error2),
                            ("random", rng.random(len(z)))):
            bits = choose(score, n_users, share)
            r, n = measure(quantize_rows(z, bits))
            rows.append([f"mixed 2/4 by {name} ({share:.0%} at 4 bits)", f"{bits.mean():.2f}",
                         f"{r / base[0]:.1%}", f"{n / base[1]:.1%}"])
    for low, high in ((2, 3), (2, 8), (1, 4), (1, 8)):  # other pairs at the same 2.5-bit average, by degree
        share = (2.5 - low) / (high - low)
        bits = choose(degree.astype(float), n_users, share, low, high)
        r, n = measure(quantize_rows(z, bits))
        rows.append([f"mixed {low}/{high} by degree ({share:.0%} at {high} bits)", f"{bits.mean():.2f}",
                     f"{r / base[0]:.1%}", f"{n / base[1]:.1%}"])
    # a rotation R (d × d orthogonal) before quantizing is free on the device: (zᵤR)·(zᵢR) = zᵤ·zᵢ
    mixed = choose(degree.astype(float), n_users, 0.25)
    for name, rotations in (("Hadamard", [hadamard(z.shape[1])]),
                            ("random orthogonal, 4 seeds", [np.linalg.qr(np.random.default_rng(s).standard_normal(
                                (z.shape[1], z.shape[1])))[0] for s in range(4)])):
        for label, bits in (("uniform 2-bit", np.full(len(z), 2)), ("mixed 2/4 by degree (25% at 4 bits)", mixed)):
            got = np.mean([measure(quantize_rows(z @ R, bits)) for R in rotations], axis=0)
            rows.append([f"{label}, after a {name} rotation", f"{bits.mean():.2f}",
                         f"{got[0] / base[0]:.1%}", f"{got[1] / base[1]:.1%}"])
    # transform coding: rotate onto z's principal axes (the KLT, again free on the device) and give each
    # axis k its own width bₖ ∈ {0..4} (0: dropped) by reverse water-filling on its variance λₖ under the
    # same budget Σₖ bₖ = 2d; step of node n on axis k: Δ_{bₖ} · RMS(zₙR) · √(λₖ / mean λ)
    from gnaq.quant.axes import allocate_bits, principal_axes
    lam, axes = principal_axes(z)
    zr = z @ axes
    for budget in (2.0, 2.5):
        widths = allocate_bits(lam, int(round(budget * z.shape[1])), max_bits=4)
        zq = quantize_axes(zr, widths, lam)
        r, n = measure(zq)
        rows.append([f"KLT + bits per axis ({', '.join(f'{np.sum(widths == b)}×{b}' for b in range(5) if np.sum(widths == b))})",
                     f"{widths.mean():.2f}", f"{r / base[0]:.1%}", f"{n / base[1]:.1%}"])
    r, n = measure(quantize_rows(zr, np.full(len(z), 2)))
    rows.append(["uniform 2-bit after the KLT (no per-axis widths)", "2.00", f"{r / base[0]:.1%}", f"{n / base[1]:.1%}"])
    print(markdown_table(["z quantized (no training after)", "mean bits", "Recall@20 vs fp32", "NDCG@20 vs fp32"],
                         rows), flush=True)
    print(f"\nfp32 test Recall@20 {base[0]:.4f} NDCG@20 {base[1]:.4f}; run {args.run}")


if __name__ == "__main__":
    main()
