"""Sparse × dense products ``Y = A X`` — the hot loop of LightGCN propagation.

A: (n, m) CSR, X: (m, d) dense, Y: (n, d). Three implementations, one selector:

- ``numba``: a row-parallel CSR kernel (``prange`` over rows of A, four nonzeros a pass over a
  row accumulator, inner loop over d), used on the CPU when numba imports. Each output row is
  written by one thread, so no atomics.
- ``scipy``: ``A @ X`` (scipy's single-threaded csr_matvecs), the plain twin and test oracle;
  also what ``auto`` picks for fewer than 4 columns (GNAQ's per-node scale vectors).
- ``cupy``: cupyx's cuSPARSE SpMM when A and X live on the GPU.

Results agree up to float rounding (the summation order within a row is the same: CSR order).

``sum_row_parts`` sums the parts of a row-sparse gradient (sampled training: row gathers and the
transposed walk operator) in one pass, one slot per table row; ``coalesce_rows`` (np.unique +
np.add.at) is its numpy twin and oracle.

``scatter_add_rows`` is the other sparse product of training, Sᵀ G for the one-hot selection
matrix S (B, n) of a gather: the backward of ``E[index]``. numpy's ``np.add.at`` is its twin and
oracle; the numba loop adds in the same order, so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from .backend import get_array_module, is_cupy_array

try:  # numba is optional ("fast" extra); without it the scipy path runs
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
    def _csr_spmm_numba(indptr, indices, values, dense, out, shift, weight):  # pragma: no cover - jitted
        """Y[r] = Σ_p values[p] · X[indices[p]] over row r's nonzeros p, in CSR order, + weight · shift[r]
        when ``shift`` has rows (an empty (0, d) array: none) — layer_sum's Horner step in one pass.

        Four nonzeros a pass over the row's accumulator: each pass loads and stores acc (d,) once
        for four gathered rows of X instead of once for each (measured 1.4-2.9x at d = 64,
        bench/results/spmm_speed.md). The additions keep CSR order, ((acc + v₀x₀) + v₁x₁) + …,
        so the result is bit-identical to the one-nonzero-a-pass loop."""
        n_rows = indptr.shape[0] - 1
        d = dense.shape[1]
        for row in prange(n_rows):
            acc = np.zeros(d, dtype=out.dtype)
            p = indptr[row]
            end = indptr[row + 1]
            while p + 3 < end:
                c0, c1, c2, c3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
                v0, v1, v2, v3 = values[p], values[p + 1], values[p + 2], values[p + 3]
                for k in range(d):
                    acc[k] = ((((acc[k] + v0 * dense[c0, k]) + v1 * dense[c1, k])
                               + v2 * dense[c2, k]) + v3 * dense[c3, k])
                p += 4
            while p < end:
                col, v = indices[p], values[p]
                for k in range(d):
                    acc[k] += v * dense[col, k]
                p += 1
            if shift.shape[0] > 0:
                for k in range(d):
                    out[row, k] = acc[k] + weight * shift[row, k]
            else:
                for k in range(d):
                    out[row, k] = acc[k]


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
    def _mark_rows(rows, touched):  # pragma: no cover - jitted
        """touched[r] = True for every r in rows; False if a row lies outside [0, len(touched))."""
        n = touched.shape[0]
        for j in range(rows.shape[0]):
            r = rows[j]
            if r < 0 or r >= n:
                return False
            touched[r] = True
        return True

    @njit(cache=True, nogil=True)
    def _add_rows(rows, values, slot, out):  # pragma: no cover - jitted
        for j in range(rows.shape[0]):
            s = slot[rows[j]]
            for c in range(values.shape[1]):
                out[s, c] += values[j, c]

    @njit(cache=True, nogil=True)
    def _entries_by_slot(indptr, indices, data, slot, n_slots):  # pragma: no cover - jitted
        """Wᵀ's entries grouped by output slot (a counting sort, O(nnz(W) + slots)): entry q of
        slot s, start[s] ≤ q < start[s + 1], is W[source[q], ·] with weight[q], in W's row order."""
        nnz = indices.shape[0]
        entry_slot = np.empty(nnz, dtype=np.int64)
        start = np.zeros(n_slots + 1, dtype=np.int64)
        for p in range(nnz):
            s = slot[indices[p]]
            entry_slot[p] = s
            start[s + 1] += 1
        for s in range(n_slots):
            start[s + 1] += start[s]
        cursor = start[:-1].copy()
        source = np.empty(nnz, dtype=np.int64)
        weight = np.empty(nnz, dtype=data.dtype)
        for row in range(indptr.shape[0] - 1):
            for p in range(indptr[row], indptr[row + 1]):
                s = entry_slot[p]
                q = cursor[s]
                cursor[s] = q + 1
                source[q], weight[q] = row, data[p]
        return start, source, weight

    @njit(parallel=True, cache=True, nogil=True)
    def _add_entries_by_slot(start, source, weight, g, out):  # pragma: no cover - jitted
        """out[s] += Σ_q weight[q] · g[source[q]] over slot s's entries: each slot's row written by
        one thread, the (B, d) rows of g gathered (they stay in cache; out's rows are written once)."""
        for s in prange(out.shape[0]):
            for q in range(start[s], start[s + 1]):
                i, w = source[q], weight[q]
                for c in range(g.shape[1]):
                    out[s, c] += w * g[i, c]

    def _add_transpose_product(indptr, indices, data, g, slot, out):
        """out[slot[j]] += Σ_i W[i, j] · g[i]: Wᵀ g by gathers into each slot — a scatter over W's
        rows instead writes out's rows at random (they leave the cache as the table grows) and
        cannot run in parallel (bench/results/scale.md: 19 → 9-11 ms a step at 1 M
        interactions, the counting sort included)."""
        start, source, weight = _entries_by_slot(indptr, indices, data, slot, out.shape[0])
        _add_entries_by_slot(start, source, weight, g, out)


def sum_row_parts(parts, n_rows: int, impl: str | None = None):
    """Σ of row-sparse parts as (unique rows (u,), summed values (u, d)); a part is (rows, values)
    or (W, g) for CSR W (m, n_rows): Wᵀ g. numba: one slot per table row (slots in row order), no
    part copied; ``numpy``: each part materialised, np.unique + np.add.at (the oracle, and cupy).
    Both return the rows ascending, and equal sums."""
    first = parts[0][1]
    if is_cupy_array(first) or (impl or ("numba" if HAVE_NUMBA else "numpy")) == "numpy" or first.ndim != 2:
        xp = get_array_module(first)
        rows, values = [], []
        for a, b in parts:
            if scipy_sparse_like(a):
                row_of = xp.repeat(xp.arange(a.shape[0]), xp.diff(a.indptr))
                rows.append(a.indices)
                values.append(b[row_of] * a.data[:, None].astype(b.dtype))
            else:
                rows.append(a)
                values.append(b)
        return coalesce_rows(xp.concatenate(rows), xp.concatenate(values))
    touched = np.zeros(n_rows, dtype=np.bool_)
    for a, _ in parts:
        if not _mark_rows(a.indices if scipy_sparse_like(a) else np.asarray(a), touched):
            raise IndexError(f"sum_row_parts: row out of range [0, {n_rows})")
    order = np.flatnonzero(touched)  # ascending: the optimizer then streams its rows (2x faster than in random order)
    slot = np.empty(n_rows, dtype=np.int64)  # read at touched rows only
    slot[order] = np.arange(len(order))
    out = np.zeros((len(order), first.shape[1]), dtype=first.dtype)
    for a, b in parts:
        b = np.ascontiguousarray(b, dtype=first.dtype)
        if scipy_sparse_like(a):
            _add_transpose_product(a.indptr, a.indices, a.data.astype(first.dtype, copy=False), b, slot, out)
        else:
            _add_rows(np.asarray(a, dtype=np.int64), b, slot, out)
    return order, out


def scipy_sparse_like(a) -> bool:
    """A CSR matrix (scipy or cupyx), told from an index array."""
    return hasattr(a, "indptr")


def coalesce_rows(rows, values):
    """(unique rows ascending (u,), summed values (u, d)) of row-sparse pairs rows (k,), values (k, d):
    np.unique + np.add.at (cupy's on the GPU), sum_row_parts's oracle."""
    xp = get_array_module(values)
    unique, inverse = xp.unique(rows, return_inverse=True)
    out = xp.zeros((len(unique),) + values.shape[1:], dtype=values.dtype)
    xp.add.at(out, inverse.ravel(), values)
    return unique, out


def scatter_add_rows(index, values, n_rows: int, impl: str | None = None):
    """out[index[j]] += values[j] for every j, repeated indices summed: (B,) x (B, d) -> (n_rows, d).

    ``impl``: ``numba`` (the default where numba imports and values are 2-D) or ``numpy``
    (``np.add.at``, the oracle); cupy arrays use ``cupy.add.at``.
    """
    if is_cupy_array(values):
        xp = get_array_module(values)
        out = xp.zeros((n_rows,) + values.shape[1:], dtype=values.dtype)
        xp.add.at(out, index, values)
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


def spmm(A, X, impl: str | None = None, out=None, shift=None, weight: float = 0.0):
    """Return ``A @ X`` (+ ``weight · shift``) for CSR A (n, m), dense X (m, d) and shift (n, d) on whatever
    device they live, written into ``out`` (n, d, contiguous, neither X nor shift) when given.

    ``impl`` overrides the module default (``auto``): ``numba`` or ``scipy`` on the CPU.
    """
    if not is_cupy_array(X):
        impl = impl or _default_impl
        if impl == "auto":  # scipy's csr_matvec wins for a few columns (measured 1.3 vs 8 ms at d = 1)
            impl = "numba" if HAVE_NUMBA and X.shape[1] >= 4 else "scipy"
        if impl == "numba" and not HAVE_NUMBA:
            raise RuntimeError("spmm implementation 'numba' asked for, but numba is not installed")
    if is_cupy_array(X) or impl == "scipy":
        product = A @ X if is_cupy_array(X) else np.asarray(A @ X)
        if shift is not None:
            product += weight * shift
        if out is None:
            return product
        out[...] = product
        return out
    X = np.ascontiguousarray(X)
    dtype = np.result_type(A.dtype, X.dtype)
    values = A.data if A.data.dtype == dtype else A.data.astype(dtype)
    if X.dtype != dtype:
        X = X.astype(dtype)
    if out is None:
        out = np.empty((A.shape[0], X.shape[1]), dtype=dtype)
    elif out.shape != (A.shape[0], X.shape[1]) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"spmm: out must be a contiguous {dtype} array of shape {(A.shape[0], X.shape[1])}, "
                         f"got {out.dtype} {out.shape}")
    shift = np.empty((0, X.shape[1]), dtype=dtype) if shift is None else np.ascontiguousarray(shift, dtype=dtype)
    _csr_spmm_numba(A.indptr, A.indices, values, X, out, shift, dtype.type(weight))
    return out


def layer_sum(A, x, weights, buffers: dict | None = None, result: str = "out", impl: str | None = None):
    """z = Σₗ wₗ Aˡ x (l = 0 … L) for CSR A (N, N) and x (N, d), no graph recorded, by Horner:

        h ← w_L x;   h ← A h + wₗ x   for l = L − 1 … 0     (each one pass: spmm's shift)

    in two (N, d) buffers, ``buffers[result]`` and ``buffers["scratch"]``, kept in the dict and reused by
    the next call with it (which overwrites that result; callers with their own ``result`` key share the
    scratch, free between calls): a refresh then allocates nothing,
    where fresh (N, d) pages cost this machine's VM up to seconds a refresh (bench/results/scale.md).
    Equal to the layer-by-layer sum up to float rounding (ops.propagate's forward; its backward is this)."""
    buffers = {} if buffers is None else buffers
    for name in (result, "scratch"):
        held = buffers.get(name)
        if held is None or held.shape != x.shape or held.dtype != x.dtype or type(held) is not type(x):
            buffers[name] = get_array_module(x).empty_like(x)
    last = len(weights) - 1
    # the buffer that holds h before each step alternates so that the last step writes buffers[result]
    source = buffers[result] if last % 2 == 0 else buffers["scratch"]
    source[...] = x
    source *= weights[last]
    for w in reversed(weights[:last]):
        target = buffers["scratch"] if source is buffers[result] else buffers[result]
        spmm(A, source, impl=impl, out=target, shift=x, weight=w)
        source = target
    return buffers[result]
