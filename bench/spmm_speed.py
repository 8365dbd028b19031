"""SpMM speed: Y = Â X on MovieLens-1M's graph (d = 64), scipy vs numba vs torch, same CPU.

GFLOP/s counts 2·nnz·d flops. Effective GB/s counts the minimum traffic: Â once (values +
column indices + row pointers), X once, Y once. The last column is that bandwidth divided by
a plain numpy streaming copy's (read + write) bandwidth measured in the same run: the limit.
The "ceiling" row is a numba kernel that reads exactly the bytes the SpMM reads (row pointers,
column indices, values, the gathered rows of X) and writes Y, in the same order and threads,
but only sums the rows (no multiply): how fast this machine can move the SpMM's data.
The "before" row is the kernel gnaq shipped earlier (one nonzero a pass, adding into
Y directly), timed in the same process; the last column divides each time by torch CSR's.

    python bench/spmm_speed.py [--dim 64] [--repeat 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import best_time, data_dir, markdown_table  # noqa: E402

from gnaq.graph import normalized_adjacency  # noqa: E402
from gnaq.spmm import HAVE_NUMBA, spmm  # noqa: E402


def load_graph():
    root = data_dir()
    if root:
        from gnaq.data import load_dataset
        data = load_dataset("ml-1m", data_dir=root, download_missing=False)
        return normalized_adjacency(data.train), "ml-1m train graph"
    R = scipy.sparse.random(6040, 3706, density=0.0362, random_state=0, format="csr")
    R.data[:] = 1
    return normalized_adjacency(R), "random graph of ml-1m's shape"


def ceiling_kernel():
    """Same reads and writes as gnaq's CSR kernel, values summed separately, rows only added."""
    from numba import njit, prange

    @njit(parallel=True, cache=True, nogil=True)
    def gather_sum(indptr, indices, values, dense, out):  # pragma: no cover - jitted
        d = dense.shape[1]
        for row in prange(indptr.shape[0] - 1):
            for k in range(d):
                out[row, k] = 0
            touched = 0.0
            for p in range(indptr[row], indptr[row + 1]):
                col = indices[p]
                touched += values[p]
                for k in range(d):
                    out[row, k] += dense[col, k]
            out[row, 0] += touched
    return gather_sum


def one_at_a_time_kernel():
    """gnaq's earlier kernel: one nonzero a pass, adding straight into Y's row."""
    from numba import njit, prange

    @njit(parallel=True, cache=True, nogil=True)
    def one_at_a_time(indptr, indices, values, dense, out):  # pragma: no cover - jitted
        d = dense.shape[1]
        for row in prange(indptr.shape[0] - 1):
            for k in range(d):
                out[row, k] = 0
            for p in range(indptr[row], indptr[row + 1]):
                col = indices[p]
                v = values[p]
                for k in range(d):
                    out[row, k] += v * dense[col, k]
    return one_at_a_time


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    A, label = load_graph()
    n, nnz, d = A.shape[0], A.nnz, args.dim
    X = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    flops = 2.0 * nnz * d
    traffic = nnz * 8 + (n + 1) * 4 + 2 * n * d * 4

    big = np.ones(64 * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(big)
    copy_gbs = 2 * big.nbytes / best_time(lambda: np.copyto(dst, big), args.repeat) / 1e9

    results = {"scipy (csr @ dense)": best_time(lambda: spmm(A, X, impl="scipy"), args.repeat)}
    if HAVE_NUMBA:
        results["gnaq numba kernel"] = best_time(lambda: spmm(A, X, impl="numba"), args.repeat)
        previous, out_previous = one_at_a_time_kernel(), np.empty_like(X)
        results["gnaq kernel before: one nonzero a pass"] = best_time(
            lambda: previous(A.indptr, A.indices, A.data, X, out_previous), args.repeat)
        kernel, out = ceiling_kernel(), np.empty_like(X)
        results["ceiling: same bytes, adds only (numba)"] = best_time(
            lambda: kernel(A.indptr, A.indices, A.data, X, out), args.repeat)
    try:
        import torch
        coo = A.tocoo()
        t_coo = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data, A.shape).coalesce()
        t_csr = t_coo.to_sparse_csr()
        t_x = torch.from_numpy(X)
        results["torch.sparse.mm (COO)"] = best_time(lambda: torch.sparse.mm(t_coo, t_x), args.repeat)
        results["torch CSR @ dense"] = best_time(lambda: t_csr @ t_x, args.repeat)
        torch_note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_note = "torch not installed: its rows are skipped"

    base, csr = results.get("torch.sparse.mm (COO)"), results.get("torch CSR @ dense")
    rows = []
    for name, t in results.items():
        gbs = traffic / t / 1e9
        rows.append([name, f"{t * 1e3:.2f}", f"{flops / t / 1e9:.2f}", f"{gbs:.2f}",
                     f"{gbs / copy_gbs:.2f}", f"{base / t:.2f}x" if base else "-",
                     f"{t / csr:.2f}" if csr else "-"])
    print(f"{label}: N = {n:,} nodes, nnz = {nnz:,}, d = {d}; {torch_note}")
    print(f"numpy streaming copy: {copy_gbs:.2f} GB/s (read + write)")
    print(markdown_table(["implementation", "ms", "GFLOP/s", "effective GB/s", "of copy bandwidth",
                          "speed-up vs torch COO", "time ÷ torch CSR's"], rows))


if __name__ == "__main__":
    main()
