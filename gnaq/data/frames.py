"""User×item matrices from the Python ecosystem, keeping the raw ids.

    from_pandas(df, user_col="user", item_col="item") -> InteractionMatrix
    from_scipy(matrix)                                -> InteractionMatrix (ids 0..n-1)
    from_events(users, items)                         -> InteractionMatrix

An InteractionMatrix is a binary (n_users, n_items) CSR plus the raw ids of its rows and
columns (strings or integers, sorted); ``gnaq.Recommender`` maps every result back through them.
pandas is not imported here: ``from_pandas`` only indexes the frame by column name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .interactions import DataError, binary_csr


@dataclass
class InteractionMatrix:
    matrix: scipy.sparse.csr_matrix   # (n_users, n_items) of 1.0
    user_ids: np.ndarray              # raw id of each row
    item_ids: np.ndarray              # raw id of each column

    @property
    def shape(self):
        return self.matrix.shape


def from_events(users, items, names=("users", "items")) -> InteractionMatrix:
    """Raw (user, item) pairs (any hashable ids of one type per column; repeats merged).
    ``names``: how errors call the two columns (from_pandas passes its column names)."""
    users, items = np.asarray(users), np.asarray(items)
    if users.ndim != 1 or items.ndim != 1 or len(users) != len(items):
        raise DataError(f"users and items must be 1-D and of equal length, got shapes {users.shape} and {items.shape}")
    if len(users) == 0:
        raise DataError("no interactions: the input is empty")
    indexes = []
    for name, ids in zip(names, (users, items)):
        _check_ids(name, ids)
        try:
            indexes.append(np.unique(ids, return_inverse=True))
        except TypeError:  # ids of mixed kinds, e.g. strings and numbers, cannot be ordered
            first = type(ids[0])
            row = next(r for r, v in enumerate(ids) if type(v) is not first)
            raise DataError(f"{name} row {row}: id {ids[row]!r} is a {type(ids[row]).__name__} where row 0 holds a "
                            f"{first.__name__}; give every id of a column as one type") from None
    (user_ids, user_index), (item_ids, item_index) = indexes
    return InteractionMatrix(binary_csr(user_index, item_index, len(user_ids), len(item_ids)), user_ids, item_ids)


def _check_ids(name, ids) -> None:
    """DataError naming the column and the first row whose id is missing (None or NaN)."""
    if ids.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(ids))
    elif ids.dtype.kind == "O":
        missing = [r for r, v in enumerate(ids) if v is None or (isinstance(v, float) and v != v)]
    else:
        return
    if len(missing):
        raise DataError(f"{name} row {missing[0]}: missing id ({len(missing)} row(s) without one); "
                        "drop or fill them before building the matrix")


def from_pandas(df, user_col: str = "user", item_col: str = "item") -> InteractionMatrix:
    """One row per event; the two named columns hold raw user and item ids."""
    for col in (user_col, item_col):
        try:
            df[col]
        except (KeyError, IndexError):
            raise DataError(f"from_pandas: no column {col!r} (pass user_col=/item_col=)") from None
    return from_events(_ids(df[user_col]), _ids(df[item_col]), names=(f"column {user_col!r}", f"column {item_col!r}"))


def _ids(column) -> np.ndarray:
    """A column's ids as an array; text as Python objects, so a missing value stays None or NaN
    (pandas' string dtypes hold it as NaN; numpy's would turn it into the text 'nan')."""
    ids = np.asarray(column)
    text = ids.dtype.kind in "OUST" or str(getattr(column, "dtype", "")).startswith("str")
    return np.asarray(column, dtype=object) if text else ids


def from_scipy(matrix) -> InteractionMatrix:
    """A users × items sparse matrix; any stored nonzero is an interaction (explicit zeros ignored)."""
    return InteractionMatrix(check_user_items(matrix, "matrix"), np.arange(matrix.shape[0]), np.arange(matrix.shape[1]))


def check_user_items(matrix, name: str = "user_items") -> scipy.sparse.csr_matrix:
    """A binary CSR copy of a scipy.sparse matrix; clear errors for what cannot be interactions."""
    if not scipy.sparse.issparse(matrix):
        raise DataError(f"{name} must be a scipy.sparse matrix (users × items), got {type(matrix).__name__}")
    if len(matrix.shape) != 2:
        raise DataError(f"{name} must be 2-D, got shape {matrix.shape}")
    csr = scipy.sparse.csr_matrix(matrix, copy=True)
    if csr.data.size and np.isnan(csr.data).any():
        raise DataError(f"{name} contains NaN values")
    if csr.data.size and (csr.data < 0).any():
        raise DataError(f"{name} contains negative values; interactions are nonnegative (any nonzero counts)")
    csr.eliminate_zeros()
    if csr.nnz == 0:
        raise DataError(f"{name} has no interactions (no stored nonzero)")
    csr.sum_duplicates()
    csr.data = np.ones_like(csr.data, dtype=np.float32)
    csr = csr.astype(np.float32)
    csr.sort_indices()
    return csr
