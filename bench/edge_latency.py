"""Edge serving from a packed MovieLens-1M model: per-user top-10 latency (median, p99) of the
pure-Python, numpy and numba paths at 1, 2, 4 and 32 bits, beside the file sizes, bytes per
node and compression vs float32 (embedding sections alone, and whole files with and without
the training history), plus a plain float32 numpy matmul + argpartition over the
full-precision embeddings as the reference.

Latency does not depend on how well the model is trained, so the models are LightGCN on the
real ml-1m graph at initialisation (GNAQ quantizer); pass --checkpoint-free to say so.

A 2-bit ``quantize=layer0`` model (kind "propagate") is timed too: its load runs the
propagation over the training graph.

    python bench/edge_latency.py [--users 200] [--skip-python-propagation]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402


def latencies(fn, users):
    times = []
    for u in users:
        t0 = time.perf_counter()
        fn(u)
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3, np.percentile(times, 99) * 1e3


def main():
    from gnaq import autograd as ag
    from gnaq import edge
    from gnaq.data import load_dataset
    from gnaq.export import export_model
    from gnaq.graph import normalized_adjacency
    from gnaq.models import LightGCN
    from gnaq.quant import make_quantizer
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--python-users", type=int, default=50)
    parser.add_argument("--skip-python-propagation", action="store_true",
                        help="do not time the pure-Python load of the layer-0 model (minutes)")
    args = parser.parse_args()
    data = load_dataset("ml-1m", data_dir(), download_missing=False)
    adj = normalized_adjacency(data.train)
    rng = np.random.default_rng(0)
    users = [int(u) for u in rng.choice(data.user_ids, size=args.users, replace=False)]
    n_nodes = data.n_nodes
    folder = tempfile.mkdtemp()
    size_rows, latency_rows = [], []
    sizes = {}
    for bits in (1, 2, 4, 32):
        model = LightGCN(data.n_users, data.n_items, adj, 64, 3, make_quantizer("gnaq", bits, quantize="z") if bits != 32
                         else make_quantizer("gnaq", 32), seed=0)
        path = os.path.join(folder, f"ml1m-b{bits}.gnaq")
        info = export_model(model, data, path, history=True)
        info_nohist = export_model(model, data, path + ".nohist", history=False)
        sizes[bits] = (info["embedding_bytes"], info["file_bytes"], info_nohist["file_bytes"])
        for backend in ("python", "numpy", "numba"):
            m = edge.load(path, backend=backend)
            m.recommend(users[0])  # warm-up (numba compiles)
            sample = users[: args.python_users] if backend == "python" else users
            med, p99 = latencies(lambda u: m.recommend(u, k=10), sample)
            latency_rows.append([bits, backend, f"{med:.3f}", f"{p99:.3f}", len(sample)])
        if bits == 32:
            with ag.no_grad():
                z = model.representation().data
            U, V = z[: data.n_users], z[data.n_users:]
            seen = (data.train + data.valid).tocsr()
            index = {int(raw): i for i, raw in enumerate(data.user_ids)}

            def matmul_top10(raw):
                u = index[raw]
                scores = V @ U[u]
                scores[seen.indices[seen.indptr[u]:seen.indptr[u + 1]]] = -np.inf
                top = np.argpartition(-scores, 9)[:10]
                return top[np.argsort(-scores[top], kind="stable")]
            med, p99 = latencies(matmul_top10, users)
            latency_rows.append(["32 (reference)", "float32 numpy matmul", f"{med:.3f}", f"{p99:.3f}", len(users)])
    f_emb, f_file, f_nohist = sizes[32]
    for bits, (emb, file_bytes, nohist) in sizes.items():
        size_rows.append([bits, f"{emb:,}", f"{emb / n_nodes:.1f}", f"{f_emb / emb:.1f}x",
                          f"{file_bytes:,}", f"{f_file / file_bytes:.1f}x", f"{nohist:,}", f"{f_nohist / nohist:.1f}x"])
    print(f"ml-1m: {data.n_users:,} users + {data.n_items:,} items = {n_nodes:,} nodes, d = 64")
    print(markdown_table(["bits", "embedding bytes", "bytes/node", "vs float32", "file (history)", "vs float32 file",
                          "file (no history)", "vs float32 file"], size_rows))
    print()
    print(markdown_table(["bits", "path", "median ms", "p99 ms", "users timed"], latency_rows))

    # quantize=layer0: the file carries Ê⁽⁰⁾ and the training graph; the reader propagates at load
    model = LightGCN(data.n_users, data.n_items, adj, 64, 3, make_quantizer("gnaq", 2, quantize="layer0"), seed=0)
    path = os.path.join(folder, "ml1m-b2-layer0.gnaq")
    info = export_model(model, data, path, history=True)
    info_nohist = export_model(model, data, path + ".nohist", history=False)
    rows = []
    for backend in ("numba", "numpy") + (("python",) if not args.skip_python_propagation else ()):
        t0 = time.perf_counter()
        m = edge.load(path, backend=backend)
        load_s = time.perf_counter() - t0
        m.recommend(users[0])
        sample = users[: args.python_users] if backend == "python" else users
        med, p99 = latencies(lambda u: m.recommend(u, k=10), sample)
        rows.append([backend, f"{load_s:.2f}", f"{med:.3f}", f"{p99:.3f}", len(sample)])
    print()
    print(f"2-bit quantize=layer0 (kind 'propagate'): embedding bytes {info['embedding_bytes']:,} "
          f"({f_emb / info['embedding_bytes']:.1f}x smaller than float32), training graph "
          f"{info['graph_bytes']:,} bytes, file {info['file_bytes']:,} bytes with history "
          f"({f_file / info['file_bytes']:.1f}x), {info_nohist['file_bytes']:,} without "
          f"({f_nohist / info_nohist['file_bytes']:.1f}x)")
    print(markdown_table(["path", "load + propagation s", "top-10 median ms", "p99 ms", "users timed"], rows))


if __name__ == "__main__":
    main()
