"""Where 2-bit post-training quantization loses: users alone, items alone, or both, quantized per node
(the Gaussian MSE-optimal step times the row's RMS, no transform, no training), on a converged
full-precision run's z; test Recall / NDCG@20 against the float z.

    python bench/ptq_sides.py DATASET RUN_FOLDER DATA_DIR
"""
import sys

import numpy as np
from gnaq.checkpoint import load_checkpoint
from gnaq.data import load_dataset
from gnaq.graph import normalized_adjacency
from gnaq.metrics import evaluate
from gnaq.quant.uniform import quantize_forward, optimal_step, row_rms
D, run, ddir = sys.argv[1], sys.argv[2], sys.argv[3]  # (L = 3 layers, α = 1/4: the defaults)
data = load_dataset(D, ddir, False, seed=2020, progress=False)
arrays, meta = load_checkpoint(run + "/best.npz")
E = arrays["model.embedding"].astype(np.float64)
A = normalized_adjacency(data.train).astype(np.float64)
z, h = E / 4, E
for _ in range(3):
    h = A @ h
    z = z + h / 4
nu = data.n_users


def q(x, b):
    s = optimal_step(b) * row_rms(x)
    return quantize_forward(x, s.reshape(-1, 1), b)[1]


mask = (data.train + data.valid).tocsr()
base = evaluate(z[:nu], z[nu:], mask, data.test, ks=(20,))
for name, (u, i) in {"fp32": (z[:nu], z[nu:]), "users 2-bit": (q(z[:nu], 2), z[nu:]), "items 2-bit": (z[:nu], q(z[nu:], 2)),
                     "both 2-bit": (q(z[:nu], 2), q(z[nu:], 2)), "users 4-bit, items 2": (q(z[:nu], 4), q(z[nu:], 2)),
                     "users 3-bit, items 2": (q(z[:nu], 3), q(z[nu:], 2))}.items():
    m = evaluate(u, i, mask, data.test, ks=(20,))
    print(f"{D} {name:22s} R@20 {m['recall@20']:.4f} ({100*m['recall@20']/base['recall@20']:.1f}%) N@20 {m['ndcg@20']:.4f} ({100*m['ndcg@20']/base['ndcg@20']:.1f}%)")
