"""Sparse × dense products ``Y = A X`` — the hot loop of LightGCN propagation.

A: (n, m) CSR, X: (m, d) dense, Y: (n, d). Three implementations, one selector:

- ``numba``: a row-parallel CSR kernel (``prange`` over rows of A, inner loop over d), used on
  the CPU when numba imports. Each output row is written by one thread, so no atomics.
- ``scipy``: ``A @ X`` (scipy's single-threaded csr_matvecs), the plain twin and test oracle;
  also what ``auto`` picks for fewer than 4 columns (GNAQ's per-node scale vectors).
- ``cupy``: cupyx's cuSPARSE SpMM when A and X live on the GPU.

Results agree up to float rounding (the summation order within a row is the same: CSR order).

``coalesce_rows`` sums the repeated rows of a row-sparse gradient (sampled training): numpy's
``np.unique`` + ``np.add.at`` is the oracle, the numba loop (one slot per table row) its twin,
equal bit for bit (both add in input order).

``scatter_add_rows`` is the other sparse product of training, Sᵀ G for the one-hot selection
matrix S (B, n) of a gather: the backward of ``E[index]``. numpy's ``np.add.at`` is its twin and
oracle; the numba loop adds in the same order, so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from .backend import is_cupy_array

try:  # numba is optional ("fast" extra); without it the scipy path runs
    import numba
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised in the no-numba CI leg only
    HAVE_NUMBA = False

SPMM_IMPLS = ("auto", "numba", "scipy")
_default_impl = "auto"


def set_spmm_impl(name: str) -> None:
    """Choose the CPU implementation: ``auto`` (numba if importable), ``numba`` or ``scipy``."""
    global _default_impl
    if name not in SPMM_IMPLS:
        raise ValueError(f"unknown spmm implementation {name!r}; expected one of {SPMM_IMPLS}")
    if name == "numba" and not HAVE_NUMBA:
        raise RuntimeError("spmm implementation 'numba' asked for, but numba is not installed")
    _default_impl = name


if HAVE_NUMBA:
    @njit(parallel=True, cache=True, nogil=True)
    def _csr_spmm_numba(indptr, indices, values, dense, out):  # pragma: no cover - jitted
        n_rows = indptr.shape[0] - 1
        d = dense.shape[1]
        for row in prange(n_rows):
            for k in range(d):
                out[row, k] = 0
            for p in range(indptr[row], indptr[row + 1]):
                col = indices[p]
                v = values[p]
                for k in range(d):
                    out[row, k] += v * dense[col, k]


if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _scatter_add_numba(index, values, out):  # pragma: no cover - jitted
        d = values.shape[1]
        for j in range(index.shape[0]):
            row = index[j]
            for k in range(d):
                out[row, k] += values[j, k]


if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _coalesce_numba(rows, values, n_rows):  # pragma: no cover - jitted
        slot = np.full(n_rows, -1, dtype=np.int64)
        order = np.empty(rows.shape[0], dtype=np.int64)  # unique rows in order of first appearance
        k = 0
        for j in range(rows.shape[0]):
            r = rows[j]
            if slot[r] < 0:
                slot[r] = k
                order[k] = r
                k += 1
        unique = np.sort(order[:k])
        for i in range(k):
            slot[unique[i]] = i
        out = np.zeros((k, values.shape[1]), dtype=values.dtype)
        for j in range(rows.shape[0]):
            s = slot[rows[j]]
            for c in range(values.shape[1]):
                out[s, c] += values[j, c]
        return unique, out


if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _transpose_rows_numba(indptr, indices, data, g, n_cols):  # pragma: no cover - jitted
        slot = np.full(n_cols, -1, dtype=np.int64)
        order = np.empty(indices.shape[0], dtype=np.int64)
        k = 0
        for p in range(indices.shape[0]):
            c = indices[p]
            if slot[c] < 0:
                slot[c] = k
                order[k] = c
                k += 1
        unique = np.sort(order[:k])
        for i in range(k):
            slot[unique[i]] = i
        out = np.zeros((k, g.shape[1]), dtype=g.dtype)
        for row in range(indptr.shape[0] - 1):
            for p in range(indptr[row], indptr[row + 1]):
                s = slot[indices[p]]
                v = data[p]
                for c in range(g.shape[1]):
                    out[s, c] += v * g[row, c]
        return unique, out


def transpose_product_rows(W, g, impl: str | None = None):
    """Wᵀ g for CSR W (T, N) and dense g (T, d), as (columns of W that hold entries, ascending (u,),
    those rows of Wᵀ g (u, d)): the row-sparse gradient of out = W x. ``impl``: ``numba`` (the
    default where numba imports) or ``numpy`` (np.unique + np.add.at, the oracle; cupy arrays)."""
    if is_cupy_array(g) or (impl or ("numba" if HAVE_NUMBA else "numpy")) == "numpy":
        xp = np if not is_cupy_array(g) else __import__("cupy")
        row_of = xp.repeat(xp.arange(W.shape[0]), xp.diff(W.indptr))
        return coalesce_rows(W.indices, g[row_of] * W.data[:, None].astype(g.dtype), W.shape[1], impl="numpy")
    g = np.ascontiguousarray(g)
    return _transpose_rows_numba(W.indptr, W.indices, W.data.astype(g.dtype, copy=False), g, W.shape[1])


def coalesce_rows(rows, values, n_rows: int | None = None, impl: str | None = None):
    """(unique rows ascending (u,), summed values (u, d)) of row-sparse pairs rows (k,), values (k, d).

    ``impl``: ``numba`` (default on the CPU where numba imports) or ``numpy`` (the oracle); cupy
    arrays use ``cupy.unique`` + ``cupy.add.at``.
    """
    if is_cupy_array(values) or (impl or ("numba" if HAVE_NUMBA else "numpy")) == "numpy" or values.ndim != 2:
        xp = np if not is_cupy_array(values) else __import__("cupy")
        unique, inverse = xp.unique(rows, return_inverse=True)
        out = xp.zeros((len(unique),) + values.shape[1:], dtype=values.dtype)
        xp.add.at(out, inverse.ravel(), values)
        return unique, out
    rows = np.asarray(rows, dtype=np.int64)
    n_rows = int(rows.max()) + 1 if n_rows is None and rows.size else (n_rows or 0)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
        raise IndexError(f"coalesce_rows: row out of range [0, {n_rows})")
    return _coalesce_numba(rows, np.ascontiguousarray(values), n_rows)


def scatter_add_rows(index, values, n_rows: int, impl: str | None = None):
    """out[index[j]] += values[j] for every j, repeated indices summed: (B,) x (B, d) -> (n_rows, d).

    ``impl``: ``numba`` (the default where numba imports and values are 2-D) or ``numpy``
    (``np.add.at``, the oracle); cupy arrays use ``cupy.add.at``.
    """
    if is_cupy_array(values):
        import cupy
        out = cupy.zeros((n_rows,) + values.shape[1:], dtype=values.dtype)
        cupy.add.at(out, index, values)
        return out
    out = np.zeros((n_rows,) + values.shape[1:], dtype=values.dtype)
    impl = impl or ("numba" if HAVE_NUMBA and values.ndim == 2 else "numpy")
    if impl == "numba":
        index = np.asarray(index)
        if index.size and (index.min() < 0 or index.max() >= n_rows):  # np.add.at raises; so do we
            raise IndexError(f"scatter_add_rows: index out of range [0, {n_rows})")
        _scatter_add_numba(index, np.ascontiguousarray(values), out)
    else:
        np.add.at(out, index, values)
    return out


def spmm(A, X, impl: str | None = None):
    """Return ``A @ X`` for CSR A (n, m) and dense X (m, d) on whatever device they live.

    ``impl`` overrides the module default (``auto``): ``numba`` or ``scipy`` on the CPU.
    """
    if is_cupy_array(X):
        return A @ X
    impl = impl or _default_impl
    if impl == "auto":  # scipy's csr_matvec wins for a few columns (measured 1.3 vs 8 ms at d = 1)
        impl = "numba" if HAVE_NUMBA and X.shape[1] >= 4 else "scipy"
    if impl == "scipy":
        return np.asarray(A @ X)
    if not HAVE_NUMBA:
        raise RuntimeError("spmm implementation 'numba' asked for, but numba is not installed")
    X = np.ascontiguousarray(X)
    dtype = np.result_type(A.dtype, X.dtype)
    values = A.data if A.data.dtype == dtype else A.data.astype(dtype)
    if X.dtype != dtype:
        X = X.astype(dtype)
    out = np.empty((A.shape[0], X.shape[1]), dtype=dtype)
    _csr_spmm_numba(A.indptr, A.indices, values, X, out)
    return out
