"""The GPU path, checked in one prepared run (under ten minutes) the first time a GPU machine is lent:

    python bench/gpu_check.py [--users 20000 --items 15000] [--out bench/results/gpu_check]

1. ``pytest tests/test_gpu.py`` (CPU/GPU parity, gradient checks, a checkpoint moving between them);
2. on one synthetic graph, one epoch of each mode — full precision and gnaq 2 bits, full-graph and
   sampled propagation (with the deferred reach and the weight average, the sampled defaults) — on the
   CPU and on cuda from the same seed: the epoch's mean loss side by side, seconds, and the GPU's peak
   memory (cupy's pool). Without cupy or a device it says so and runs the CPU half (a dry run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import markdown_table  # noqa: E402


def one_epoch(device, bits, propagation, data, folder):
    from gnaq.training import TrainConfig, Trainer
    config = TrainConfig(bits=bits, quant_options={"warmup": 0} if bits != 32 else {}, dim=64, layers=3,
                         epochs=1, propagation=propagation, progress=False, device=device,
                         out=os.path.join(folder, f"{device}-{bits}-{propagation}"))
    trainer = Trainer(config, data)
    peak = None
    if device == "cuda":
        import cupy
        cupy.get_default_memory_pool().free_all_blocks()
    started = time.perf_counter()
    loss = trainer.train_epoch()
    if device == "cuda":
        import cupy
        cupy.cuda.runtime.deviceSynchronize()
        peak = cupy.get_default_memory_pool().total_bytes()
    return {"loss": float(loss), "seconds": time.perf_counter() - started, "pool_bytes": peak}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--items", type=int, default=15000)
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gpu_check"))
    args = p.parse_args()
    from gnaq import backend
    from gnaq.data import make_synthetic
    gpu = backend.cuda_available()
    print("cuda:", "available" if gpu else "unavailable (cupy or a device missing): the CPU half only", flush=True)
    tests = None
    if not args.skip_tests:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_gpu.py"], cwd=ROOT,
                              capture_output=True, text=True)
        tests = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        print("tests/test_gpu.py:", tests, flush=True)
    data = make_synthetic(n_users=args.users, n_items=args.items, seed=0)
    rows, records = [], []
    with tempfile.TemporaryDirectory() as folder:
        for bits in (32, 2):
            for propagation in ("full", "sampled"):
                cpu = one_epoch("cpu", bits, propagation, data, folder)
                cuda = one_epoch("cuda", bits, propagation, data, folder) if gpu else None
                records.append({"bits": bits, "propagation": propagation, "cpu": cpu, "cuda": cuda})
                rows.append([bits, propagation, f"{cpu['loss']:.6f}", f"{cuda['loss']:.6f}" if cuda else "-",
                             f"{cpu['seconds']:.1f}", f"{cuda['seconds']:.1f}" if cuda else "-",
                             f"{cuda['pool_bytes'] / 2**20:.0f} MiB" if cuda else "-"])
                print(rows[-1], flush=True)
    table = markdown_table(["bits", "propagation", "loss, CPU", "loss, cuda", "s, CPU", "s, cuda", "GPU pool"], rows)
    print(table)
    device = "no GPU (dry run)"
    if gpu:
        import cupy
        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    Path(args.out + ".md").write_text(
        f"# The GPU path, one epoch of each mode against the CPU\n\n`python bench/gpu_check.py --users {args.users} "
        f"--items {args.items}` on {device}; synthetic graph ({data.train.nnz:,} training interactions), d = 64, "
        f"L = 3, batch 8192, one epoch from the same seed.\n\ntests/test_gpu.py: {tests}\n\n{table}\n")
    Path(args.out + ".json").write_text(json.dumps({"device": device, "tests": tests, "epochs": records}, indent=1))


if __name__ == "__main__":
    main()
