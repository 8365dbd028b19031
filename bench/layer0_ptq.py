"""Post-training diagnosis on a trained full-precision LightGCN: what quantizing the layer-0
table (then propagating in full precision) keeps, against quantizing z, and what the released
GNAQ code's steps do to it without any training.

    z = Σₗ αₗ Âˡ T,  T one of: E⁽⁰⁾ (fp32), tanh E⁽⁰⁾, per-node 2^b-level min-max codebook of E⁽⁰⁾
    (± tanh), that codebook with codes re-binned from the propagated z (1-3 times), and the
    uniform per-node quantizer (Δ_b·RMS) on E⁽⁰⁾ or on z.

    python bench/compare_quantizers.py --dataset ml-1m --runs fp32      # the checkpoint
    python bench/layer0_ptq.py [--checkpoint runs/compare/ml-1m/fp32/best.npz]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402


def main():
    from gnaq.checkpoint import load_checkpoint
    from gnaq.data import load_dataset
    from gnaq.graph import normalized_adjacency
    from gnaq.metrics import evaluate
    from gnaq.quant.gnaq_official import assign_codes, initial_levels
    from gnaq.quant.uniform import optimal_step
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--checkpoint", default=str(ROOT / "runs/compare/ml-1m/fp32/best.npz"))
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    arrays, _ = load_checkpoint(args.checkpoint)
    E = arrays["model.embedding"].astype(np.float64)
    A = normalized_adjacency(data.train, "cpu", dtype=np.float64)
    n_users, seen = data.n_users, (data.train + data.valid).tocsr()

    def propagate(table, layers=3):
        z, current = table.copy(), table
        for _ in range(layers):
            current = A @ current
            z += current
        return z / (layers + 1)

    def uniform(x, bits=2):
        half, s = 2 ** (bits - 1), optimal_step(bits) * np.sqrt((x * x).mean(1, keepdims=True)) + 1e-12
        return s * (np.clip(np.floor(x / s), -half, half - 1) + 0.5)

    rows, base = [], None

    def record(name, z):
        nonlocal base
        r = evaluate(z[:n_users], z[n_users:], seen, data.test, ks=(10,))
        base = base or r
        rows.append([name, f"{r['recall@10']:.4f}", f"{r['ndcg@10']:.4f}",
                     f"{r['recall@10'] / base['recall@10']:.1%} / {r['ndcg@10'] / base['ndcg@10']:.1%}"])

    record("fp32", propagate(E))
    record("tanh E⁽⁰⁾", propagate(np.tanh(E)))
    C, K = initial_levels(E, 4), assign_codes(E, 4).astype(int)
    lookup = lambda C, K: np.take_along_axis(C, K, axis=1)  # noqa: E731
    record("codebook of E⁽⁰⁾ (4 levels per node), no tanh", propagate(lookup(C, K)))
    z = propagate(np.tanh(lookup(C, K)))
    record("codebook of E⁽⁰⁾, tanh (released code at its start)", z)
    for step in range(1, 4):
        K = assign_codes(z, 4).astype(int)
        z = propagate(np.tanh(lookup(C, K)))
        record(f"… codes re-binned from z, {step}x", z)
    for bits in (1, 2, 3):
        record(f"uniform per-node {bits}-bit on E⁽⁰⁾, fp32 propagation", propagate(uniform(E, bits)))
    record("uniform per-node 2-bit on z", uniform(propagate(E), 2))
    print(f"{args.dataset}, checkpoint {args.checkpoint}, no training after quantization")
    print(markdown_table(["table T (z = Σ αₗ Âˡ T)", "Recall@10", "NDCG@10", "vs fp32"], rows))


if __name__ == "__main__":
    main()
