"""GPU timing: one training epoch and one full evaluation on MovieLens-1M and gowalla for gnaq
(full precision and GNAQ 2-bit) and the PyTorch reference on the same GPU in the same run,
with the peak GPU memory of each. Needs cupy and torch with CUDA.

    python bench/gpu_speed.py [--datasets ml-1m gowalla] [--batch-size 2048]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402


def main():
    import cupy
    from gnaq.backend import synchronize
    from gnaq.data import load_dataset
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.training import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["ml-1m", "gowalla"])
    parser.add_argument("--batch-size", type=int, default=2048)
    args = parser.parse_args()
    pool = cupy.get_default_memory_pool()
    rows = []
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}")
    for name in args.datasets:
        data = load_dataset(name, data_dir(), download_missing=False)
        for bits in (32, 2):
            trainer = Trainer(TrainConfig(bits=bits, batch_size=args.batch_size, progress=False, device="cuda",
                                          quant_options={"warmup": 0} if bits != 32 else {},
                                          out=f"/tmp/gnaq-gpu-{name}-{bits}"), data)
            trainer.train_epoch()
            pool.free_all_blocks()
            synchronize("cuda")
            t0 = time.perf_counter()
            trainer.train_epoch()
            synchronize("cuda")
            epoch = time.perf_counter() - t0
            t0 = time.perf_counter()
            trainer.evaluate("test")
            synchronize("cuda")
            evaluation = time.perf_counter() - t0
            rows.append([name, f"gnaq {'fp32' if bits == 32 else 'GNAQ 2-bit'}", f"{epoch:.2f}", f"{evaluation:.2f}",
                         f"{pool.total_bytes() / 2**20:.0f}"])
            print(*rows[-1], sep=" | ", flush=True)  # as it comes, for a time-boxed run
            del trainer
            pool.free_all_blocks()
        try:
            import torch
            from reference_torch import TorchLightGCN, train_epoch
        except ImportError:
            continue
        from gnaq.graph import normalized_adjacency
        from gnaq.metrics import evaluate
        adj = normalized_adjacency(data.train)
        model = TorchLightGCN(data.n_users, data.n_items, adj, device="cuda")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        train_epoch(model, optimizer, sample_bpr_epoch(data.train, rng), args.batch_size, 1e-4, "cuda")
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_epoch(model, optimizer, sample_bpr_epoch(data.train, rng), args.batch_size, 1e-4, "cuda")
        torch.cuda.synchronize()
        epoch = time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            z = cupy.asarray(model.computer())
        seen = data.train if data.valid is None else (data.train + data.valid).tocsr()
        evaluate(z[: data.n_users], z[data.n_users:], seen, data.test)
        torch.cuda.synchronize()
        evaluation = time.perf_counter() - t0
        rows.append([name, "torch reference", f"{epoch:.2f}", f"{evaluation:.2f} (gnaq.metrics)",
                     f"{torch.cuda.max_memory_allocated() / 2**20:.0f}"])
        print(*rows[-1], sep=" | ", flush=True)
    print(markdown_table(["dataset", "model", "epoch s", "full evaluation s", "peak GPU MB"], rows))


if __name__ == "__main__":
    main()
