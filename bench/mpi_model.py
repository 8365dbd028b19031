"""A model of feature-sliced training at scale, from compute measured here and a stated network.

    python bench/mpi_model.py [--bandwidth-gbps 100] [--latency-us 5] [--out bench/results/mpi_model]

Measured on this machine (--graph, default bench/scale.py's synthetic 16 M interactions — out of cache, as
a large graph is; CLI defaults d = 64,
L = 3, B = 8192; medians of 7 steps after 2): the full-graph step (its cost is per edge: c_e =
step / nnz), the sampled step split into its per-column work (the drift rows, the transposed product, Adam — ∝ d/W)
and its random walks (∝ B·S·L, no d: divided among ranks by batch rows, then gathered), and one full
propagation (the sampled history's refresh, ∝ nnz·d/W).

Per step, a rank sends one allreduce of the batch's margins (4·B bytes) and one float — a ring
allreduce of m bytes over W ranks takes 2(W−1)/W · m / bandwidth + 2(W−1) · latency — and, sampled,
an allgather of the walk operator (8 bytes an entry, 13 entries a target, ≤ 3B targets: (W−1)/W · m /
bandwidth + (W−1) · latency). So

    full:     epoch(W) = nnz/B · (c_e·nnz / W + allreduce(W))
    sampled:  epoch(W) = nnz/B · ((walks + per_column) / W + allreduce(W) + allgather(W))
                         + refreshes · propagate·nnz / W

for amazon-book (2.4 M interactions), a 100 M-interaction graph and a 1 B-edge graph (500 M
interactions, both directions). Memory a rank: parameters and Adam's moments (and the sampled
history) divide by W; the graph is replicated (8 bytes an edge for Â, 12 for the walks' adjacency).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import markdown_table  # noqa: E402

GRAPHS = {"amazon-book (2.4 M interactions)": 2.4e6, "100 M interactions": 1e8, "1 B edges (500 M interactions)": 5e8}
USERS_PER_INTERACTION = 1 / 17.7  # bench/scale.py's synthetic graphs: nodes ≈ 1.4 × users
PROCESSES = (1, 2, 4, 8, 16, 32, 64)


def duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 3600 else f"{seconds / 3600:,.1f} h"


def measure(graph: str, steps: int = 7) -> dict:
    import numpy as np
    import scale
    from gnaq.sampled import walk_operator
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.training import TrainConfig, Trainer
    data = scale.load(graph)
    out = {"nnz": data.train.nnz}
    for mode in ("full", "sampled"):
        trainer = Trainer(TrainConfig(bits=32, propagation=mode, progress=False, out=tempfile.mkdtemp()), data=data)
        users, pos, neg = sample_bpr_epoch(data.train, trainer.rng, by="users")
        cfg, model = trainer.config, trainer.model
        if trainer.sampled is not None:
            trainer.sampled.refresh()
        times, walk_times = [], []
        for b in range(steps + 2):
            sl = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
            t0 = time.perf_counter()
            loss, _, _ = model.bpr_loss(users[sl], pos[sl], neg[sl], cfg.reg, sampled=trainer.sampled, rng=trainer.rng)
            trainer.optimizer.zero_grad()
            loss.backward()
            trainer.optimizer.step()
            times.append(time.perf_counter() - t0)
            if trainer.sampled is not None:
                s = trainer.sampled
                targets = np.unique(np.concatenate([users[sl], pos[sl] + data.n_users, neg[sl] + data.n_users]))
                t0 = time.perf_counter()
                walk_operator(s.indptr, s.indices, s.degree, targets, model.layer_weights, s.walks, trainer.rng)
                walk_times.append(time.perf_counter() - t0)
        out[f"{mode}_step"] = statistics.median(times[2:])
        if trainer.sampled is not None:
            out["walks"] = statistics.median(walk_times[2:])
            t0 = time.perf_counter()
            trainer.sampled.refresh()
            out["refresh"] = time.perf_counter() - t0
    out["per_column"] = max(out["sampled_step"] - out["walks"], 0.0)
    return out


def allreduce_seconds(nbytes: float, w: int, bandwidth: float, latency: float) -> float:
    return 0.0 if w == 1 else 2 * (w - 1) / w * nbytes / bandwidth + 2 * (w - 1) * latency


def allgather_seconds(nbytes: float, w: int, bandwidth: float, latency: float) -> float:
    return 0.0 if w == 1 else (w - 1) / w * nbytes / bandwidth + (w - 1) * latency


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bandwidth-gbps", type=float, default=100.0, help="network bandwidth, Gbit/s a link")
    parser.add_argument("--latency-us", type=float, default=5.0)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--refreshes", type=int, default=2)  # the trainer's default (8 earlier)
    parser.add_argument("--graph", default="synthetic:16",
                        help="where compute is measured (bench/scale.py's graphs; 16 M: out of cache, as at scale)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "mpi_model"))
    args = parser.parse_args()
    m = measure(args.graph)
    bandwidth, latency, B = args.bandwidth_gbps * 1e9 / 8, args.latency_us * 1e-6, args.batch_size
    c_edge = m["full_step"] / m["nnz"]  # seconds a full-graph step spends per interaction
    refresh_per = m["refresh"] / m["nnz"]
    lines = [f"Measured here ({args.graph}, {m['nnz']:,} interactions): full-graph step {1000 * m['full_step']:.0f} ms; "
             f"sampled step {1000 * m['sampled_step']:.0f} ms = walks {1000 * m['walks']:.0f} ms (divided by batch rows) "
             f"+ {1000 * m['per_column']:.0f} ms per-column work (divided by columns); refresh {1000 * m['refresh']:.0f} ms. "
             f"Network: {args.bandwidth_gbps:g} Gbit/s, {args.latency_us:g} µs; a step allreduces {4 * B + 4:,} bytes.", ""]
    for name, nnz in GRAPHS.items():
        steps = nnz / B
        rows = []
        base = {}
        for w in PROCESSES:
            comm = allreduce_seconds(4 * B + 4, w, bandwidth, latency)
            full = steps * (c_edge * nnz / w + comm)
            gather = allgather_seconds(3 * B * 13 * 8, w, bandwidth, latency)
            sampled = steps * ((m["walks"] + m["per_column"]) / w + comm + gather) + args.refreshes * refresh_per * nnz / w
            base.setdefault("full", full)
            base.setdefault("sampled", sampled)
            nodes = nnz * USERS_PER_INTERACTION * 1.4
            rows.append([w, duration(full), f"{base['full'] / full:.1f}x", duration(sampled),
                         f"{base['sampled'] / sampled:.1f}x", f"{1000 * comm:.2f} (+{1000 * gather:.2f})",
                         f"{(5 * nodes * 64 * 4 / w + 20 * nnz) / 2**30:,.1f}"])
        lines += [f"### {name}", "", markdown_table(
            ["W", "full-graph epoch", "speed-up", "sampled epoch", "speed-up", "allreduce ms a step (+ sampled allgather)",
             "GiB a rank (sampled: params, Adam, history / W + graphs)"], rows), ""]
    text = "\n".join(lines)
    print(text)
    with open(args.out + ".md", "w") as f:
        f.write(f"Command: `python bench/mpi_model.py {' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
