"""Interactions: the implicit-feedback dataset every other module reads.

train / valid / test are (n_users, n_items) CSR matrices of 1.0 (binary, duplicates merged).
``user_ids[u]`` / ``item_ids[i]`` map contiguous indices back to the raw ids of the source file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse


class DataError(ValueError):
    """Malformed or inconsistent input data; the message names the file and line."""


def binary_csr(users, items, n_users: int, n_items: int) -> scipy.sparse.csr_matrix:
    """(n_users, n_items) CSR with 1.0 at each (user, item); duplicates merged to a single 1."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    matrix = scipy.sparse.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix


@dataclass
class Interactions:
    name: str
    train: scipy.sparse.csr_matrix
    test: scipy.sparse.csr_matrix
    valid: scipy.sparse.csr_matrix | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    source: str = ""
    notes: list = field(default_factory=list)

    def __post_init__(self):
        if self.user_ids is None:
            self.user_ids = np.arange(self.n_users, dtype=np.int64)
        if self.item_ids is None:
            self.item_ids = np.arange(self.n_items, dtype=np.int64)

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    @property
    def n_nodes(self) -> int:
        return self.n_users + self.n_items

    def merge_valid_into_train(self) -> "Interactions":
        """A copy whose train is train ∪ valid and which has no validation split."""
        if self.valid is None:
            return self
        merged = (self.train + self.valid).tocsr()
        merged.data[:] = 1.0
        return Interactions(self.name, merged, self.test, None, self.user_ids, self.item_ids,
                            self.source, self.notes + ["valid merged into train"])

    def stats(self) -> dict:
        """Counts, density and degree quantiles of the train split."""
        user_deg = np.diff(self.train.indptr)
        item_deg = np.bincount(self.train.indices, minlength=self.n_items)
        quantiles = (0.0, 0.25, 0.5, 0.75, 0.99, 1.0)
        out = {
            "name": self.name, "source": self.source,
            "users": self.n_users, "items": self.n_items,
            "train": int(self.train.nnz),
            "valid": int(self.valid.nnz) if self.valid is not None else 0,
            "test": int(self.test.nnz),
            "density": self.train.nnz / max(1, self.n_users * self.n_items),
            "users_without_train": int((user_deg == 0).sum()),
            "items_without_train": int((item_deg == 0).sum()),
            "test_users": int((np.diff(self.test.indptr) > 0).sum()),
            "user_degree_quantiles": dict(zip(map(str, quantiles), np.quantile(user_deg, quantiles).tolist())),
            "item_degree_quantiles": dict(zip(map(str, quantiles), np.quantile(item_deg, quantiles).tolist())),
        }
        return out
