"""One LightGCN training epoch on MovieLens-1M: gnaq vs the PyTorch reference, same CPU, same
process, same triplets and hyper-parameters (d = 64, L = 3, batch 2048), and where gnaq's
epoch time goes. Also GNAQ 2-bit vs full precision (the quantizer's overhead).

    python bench/train_speed.py [--batch-size 2048] [--quantizers gnaq ste lsq n2uq bigear]
    (a quantizer may carry options: gnaq:quantize=layer0,refine=true)
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
from _common import best_time, data_dir, markdown_table  # noqa: E402


def main():
    from gnaq.data import load_dataset
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.spmm import spmm
    from gnaq.training import TrainConfig, Trainer
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--quantizers", nargs="*", default=["gnaq"])
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="timed epochs per model (the fastest counts)")
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="instead of whole epochs: ROUNDS rounds that time --steps training steps of every "
                             "model in turn; the fastest round counts (robust to a disturbed machine)")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    data = load_dataset(args.dataset, data_dir(), download_missing=False)
    rows, epoch_times = [], {}

    def gnaq_epoch(bits, quantizer="gnaq"):
        from gnaq.train import parse_quant_options
        quantizer, _, spec = quantizer.partition(":")  # e.g. gnaq:quantize=layer0,delta=0.5
        options = parse_quant_options(spec.split(",")) if spec else {}
        if quantizer in ("gnaq", "gnaq-official"):
            options.setdefault("warmup", 0)  # time the quantized step, not the full-precision warm-up
        trainer = Trainer(TrainConfig(bits=bits, quantizer=quantizer, quant_options=options, batch_size=args.batch_size,
                                      progress=False, out="/tmp/gnaq-train-speed"), data)
        trainer.profile = True
        trainer.train_epoch()  # warm-up: numba compilation, caches
        best, best_timings = float("inf"), None
        for _ in range(args.repeat):  # the fastest of `repeat` epochs: least disturbed by the OS
            for key in trainer.timings:
                trainer.timings[key] = 0.0
            t0 = time.perf_counter()
            trainer.train_epoch()
            seconds = time.perf_counter() - t0
            if seconds < best:
                best, best_timings = seconds, dict(trainer.timings)
        return best, best_timings, trainer

    if args.interleave:
        return interleaved(args, data)
    seconds, timings, trainer = gnaq_epoch(32)
    epoch_times["gnaq fp32"] = seconds
    n_batches = -(-data.train.nnz // args.batch_size)
    adj, x = trainer.norm_adj, trainer.model.embedding.data
    propagation = 2 * trainer.config.layers * n_batches * best_time(lambda: spmm(adj, x), 5)
    breakdown = [["sampling", timings["sampling"]], ["forward (incl. 3 spmm/batch)", timings["forward"]],
                 ["backward (incl. 3 spmm/batch)", timings["backward"]], ["optimizer (Adam)", timings["optimizer"]],
                 ["  of which propagation Â·X (6 spmm/batch, timed alone)", propagation]]
    for quantizer in args.quantizers:
        seconds, _, _ = gnaq_epoch(2, quantizer)
        epoch_times[f"{quantizer} 2-bit"] = seconds

    if not args.no_torch:
        try:
            import torch
            from reference_torch import TorchLightGCN, train_epoch
        except ImportError:
            print("torch not installed: reference skipped (pip install torch)")
        else:
            for layout in ("coo", "csr"):
                model = TorchLightGCN(data.n_users, data.n_items, adj, init=trainer.model.embedding.data.copy(),
                                      layout=layout)
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
                rng = np.random.default_rng(0)
                train_epoch(model, optimizer, sample_bpr_epoch(data.train, rng), args.batch_size, 1e-4)
                triplets = sample_bpr_epoch(data.train, rng)
                t0 = time.perf_counter()
                train_epoch(model, optimizer, triplets, args.batch_size, 1e-4)
                epoch_times[f"torch {layout.upper()} reference ({torch.get_num_threads()} threads)"] = \
                    time.perf_counter() - t0
            coo = adj.tocoo()
            g = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, coo.shape).coalesce()
            tx = torch.from_numpy(x)
            t_torch = best_time(lambda: torch.sparse.mm(g, tx), 5)
            t_gnaq = best_time(lambda: spmm(adj, x), 5)
            print(f"spmm Â·X (d=64): gnaq {t_gnaq * 1e3:.2f} ms, torch.sparse.mm {t_torch * 1e3:.2f} ms, "
                  f"gnaq {t_torch / t_gnaq:.1f}x faster")

    fp = epoch_times["gnaq fp32"]
    coo_ref = next((v for k, v in epoch_times.items() if k.startswith("torch COO")), None)
    csr_ref = next((v for k, v in epoch_times.items() if k.startswith("torch CSR")), None)
    for name, seconds in epoch_times.items():
        rows.append([name, f"{seconds:.2f}", f"{seconds / fp:.2f}",
                     *(f"{seconds / ref:.2f}" if ref else "-" for ref in (coo_ref, csr_ref))])
    print(f"{args.dataset}: {data.train.nnz:,} triplets/epoch, batch {args.batch_size}, {n_batches} batches")
    print(markdown_table(["epoch", "seconds", "vs gnaq fp32", "vs torch COO reference", "vs torch CSR reference"], rows))
    print()
    print(markdown_table(["gnaq fp32 epoch breakdown", "seconds"], [[k, f"{v:.2f}"] for k, v in breakdown]))


def interleaved(args, data):
    """Per-step time of every model, measured round-robin so that a slow spell of the machine
    hits all of them; epoch estimate = fastest round's seconds/step × batches per epoch."""
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.train import parse_quant_options
    from gnaq.training import TrainConfig, Trainer
    trainers = {}
    for spec in ["fp32"] + args.quantizers:
        name, _, options = spec.partition(":")
        bits = 32 if name == "fp32" else 2
        options = parse_quant_options(options.split(",")) if options else {}
        if name in ("gnaq", "gnaq-official"):
            options.setdefault("warmup", 0)  # time the quantized step, not the full-precision warm-up
        cfg = TrainConfig(bits=bits, quantizer="gnaq" if name == "fp32" else name, batch_size=args.batch_size,
                          quant_options=options,
                          progress=False, out="/tmp/gnaq-train-speed")
        trainers[spec if bits == 32 else f"{spec} 2-bit"] = Trainer(cfg, data)
    triplets = sample_bpr_epoch(data.train, np.random.default_rng(0))
    b = args.batch_size

    def steps(trainer, n):
        model, optimizer = trainer.model, trainer.optimizer
        t0 = time.perf_counter()
        for i in range(n):
            sl = slice((i * b) % (len(triplets[0]) - b), (i * b) % (len(triplets[0]) - b) + b)
            loss, _, _ = model.bpr_loss(*(t[sl] for t in triplets), 1e-4)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.quantizer.after_step()
        return (time.perf_counter() - t0) / n

    for trainer in trainers.values():
        steps(trainer, 3)  # compile, warm caches
    best = {name: float("inf") for name in trainers}
    for _ in range(args.interleave):
        for name, trainer in trainers.items():
            best[name] = min(best[name], steps(trainer, args.steps))
    n_batches = -(-data.train.nnz // b)
    fp = best["fp32"]
    rows = [[name, f"{t * 1e3:.1f}", f"{t * n_batches:.2f}", f"{t / fp:.2f}"] for name, t in best.items()]
    print(f"{args.dataset}: batch {b}, {n_batches} batches/epoch; fastest of {args.interleave} interleaved rounds "
          f"of {args.steps} steps")
    print(markdown_table(["model", "ms/step", "epoch estimate (s)", "vs fp32"], rows))


if __name__ == "__main__":
    main()
