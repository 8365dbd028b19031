"""The normalized bipartite adjacency of LightGCN.

R: (n_users, n_items) binary train matrix. Nodes are users then items, N = n_users + n_items.

    A = [[0, R], [Rᵀ, 0]]  (N, N),   Â = D^-1/2 A D^-1/2,   D = diag(A 1)

Isolated nodes (degree 0) get d^-1/2 = 0, hence a zero row and column, never inf or nan.
Â is symmetric, so Âᵀ = Â (the autograd's spmm backward reuses it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from .backend import to_device


def bipartite_adjacency(train: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    """A = [[0, R], [Rᵀ, 0]] as float32 CSR with sorted indices."""
    n_users, n_items = train.shape
    R = train.astype(np.float32)
    A = scipy.sparse.bmat([[None, R], [R.T, None]], format="csr",
                          dtype=np.float32)
    if A.shape != (n_users + n_items,) * 2:  # bmat drops trailing empty blocks' shapes otherwise
        A.resize((n_users + n_items, n_users + n_items))
    A.sort_indices()
    return A


def inverse_sqrt_degree(A) -> np.ndarray:
    """d^-1/2 per node, 0 where the degree is 0."""
    degree = np.asarray(A.sum(axis=1)).ravel()
    out = np.zeros_like(degree, dtype=np.float64)
    nonzero = degree > 0
    out[nonzero] = degree[nonzero] ** -0.5
    return out


def graph_fingerprint(train) -> str:
    """First 16 hex digits of sha256 over the train matrix's shape and CSR structure."""
    import hashlib
    csr = train.tocsr()
    csr.sort_indices()
    digest = hashlib.sha256(np.asarray(csr.shape, dtype=np.int64).tobytes())
    digest.update(np.asarray(csr.indptr, dtype=np.int64).tobytes())
    digest.update(np.asarray(csr.indices, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def normalized_adjacency(train, device: str = "cpu", dtype=np.float32):
    """Â = D^-1/2 A D^-1/2 (N, N) CSR on the requested device (scipy or cupyx sparse)."""
    A = bipartite_adjacency(train)
    d_inv_sqrt = inverse_sqrt_degree(A)
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    A.data = (A.data * d_inv_sqrt[rows] * d_inv_sqrt[A.indices]).astype(dtype)
    return to_device(A, device)
