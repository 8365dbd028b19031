"""One query class for a fitted ``gnaq.Recommender`` and a loaded ``.gnaq`` file, in implicit's conventions.

A ``Query`` holds the deployed representation — z_u (n_users, d) and z_i (n_items, d), float64,
dequantized from the packed file (a fitted Recommender builds its Query from the very file it
saves, so the two answer identically) — the raw ids, and the users' liked items. Scores are
ŷᵤᵢ = zᵤ·zᵢ in float64; similarity is the cosine zᵢ·zⱼ / (‖zᵢ‖‖zⱼ‖).

implicit's calls and semantics (``implicit.cpu.matrix_factorization_base``):
- ``recommend(userid, user_items=None, N=10, filter_already_liked_items=True, filter_items=None,
  recalculate_user=False, items=None)`` → (ids, scores), best first, ties → smaller item index;
  one id → 1-D arrays of min(N, eligible) entries; an array → (len(userid), min(N, candidates))
  with −inf-scored candidates padding a row that has fewer eligible items. ``user_items``: one
  CSR row per userid (default: the liked items the model holds), or for one userid a list of raw
  item ids; ``recalculate_user``: z_u folded in from that row alone (``fold_in``), for users never
  seen too; ``items`` restricts the candidates (N ≤ len(items)) and returns every one of them, the
  filtered ones last with −inf scores; ``filter_items`` removes items; both at once is a ValueError.
- ``similar_items(itemid, N=10, recalculate_item=False, item_users=None, filter_items=None,
  items=None)``, ``similar_users(userid, N=10, filter_users=None, users=None)``.
- ids are the raw ids (int32 where they are 0..n−1, as implicit returns), scores float32.

Fold-in (recalculate_user): z_u = (w·Ḡ + Z_Hᵀ Z_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1 over the user's items H,
Ḡ = ZᵀZ / n_items — implicit ALS's fold-in (1 on each liked item, 0 on every item at a total weight
w), the rule gnaq.edge's ``fold_in`` runs on a device (w, λ = edge.FOLD_IN_NEGATIVES, FOLD_IN_RIDGE);
recalculate_item is the same over an item's users' z_u.
"""

import numpy as np
import scipy.sparse

from .edge import FOLD_IN_NEGATIVES, FOLD_IN_RIDGE
from .metrics import top_k_items


class Query:
    def __init__(self, user_factors, item_factors, user_ids, item_ids, liked=None, source="the model"):
        self.user_factors = None if user_factors is None else np.asarray(user_factors, dtype=np.float64)
        self.item_factors = np.asarray(item_factors, dtype=np.float64)
        self.user_ids, self.item_ids = _ids(user_ids), _ids(item_ids)
        self.liked, self.source = liked, source
        self._user_row = {raw: i for i, raw in enumerate(self.user_ids.tolist())}
        self._item_col = {raw: i for i, raw in enumerate(self.item_ids.tolist())}
        self._norms = {}
        self._gram = {}  # side → Ḡ = FᵀF / n of the factors fold_in regresses on

    @classmethod
    def from_file(cls, path_or_file, backend: str = "auto") -> "Query":
        """A .gnaq file (path, binary file object or bytes) through gnaq.edge's reader."""
        from . import edge
        model = edge.load(path_or_file, backend)
        liked = None
        if model.has_history:
            indptr = np.asarray(model.history_indptr, dtype=np.int64)
            indices = np.asarray(model.history_indices, dtype=np.int64)
            liked = scipy.sparse.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                                            shape=(model.n_users, model.n_items))
        users = model.user_vectors() if model.n_users else None
        query = cls(users, model.item_vectors(), model.user_ids, model.item_ids, liked, source=model.path)
        query.edge = model
        if model.item_gram is not None:
            query._gram["item"] = np.asarray(model.item_gram, dtype=np.float32).astype(np.float64)
        return query

    # ---- ids -------------------------------------------------------------------------------
    @staticmethod
    def _as_list(ids):
        single = np.ndim(ids) == 0
        return single, ([ids.item() if hasattr(ids, "item") else ids] if single else np.asarray(ids).tolist())

    def _rows(self, ids, index, what):
        try:
            return np.array([index[i] for i in ids], dtype=np.int64)
        except (KeyError, TypeError) as exc:
            raise KeyError(f"{what} {exc.args[0]!r} is not in {self.source}") from None

    def _user_rows(self, userid, user_items, what="userid"):
        """One CSR row per userid, or None (user_items None): shapes checked. For one userid,
        user_items may also be a list of raw item ids (the person's items, in any order)."""
        if user_items is None:
            return None
        if not scipy.sparse.issparse(user_items) and np.ndim(userid) == 0 and np.ndim(user_items) == 1:
            columns = np.unique(self._rows(self._as_list(user_items)[1], self._item_col, "item"))
            return scipy.sparse.csr_matrix((np.ones(len(columns), dtype=np.float32), columns, [0, len(columns)]),
                                           shape=(1, len(self.item_ids)))
        rows = _binary_rows(user_items, "user_items")
        count = 1 if np.ndim(userid) == 0 else len(np.asarray(userid))
        if rows.shape != (count, len(self.item_ids)):
            raise ValueError(f"user_items has shape {rows.shape}; expected ({count}, {len(self.item_ids)}): "
                             f"one row per {what}, one column per item of the model")
        return rows

    # ---- fold-in ------------------------------------------------------------------------------
    def fold_in(self, liked_rows, side="item", negatives=FOLD_IN_NEGATIVES, regularization=FOLD_IN_RIDGE):
        """z of each row of a binary CSR over one side's factors F (items, or users for
        recalculate_item), gnaq.edge's fold-in rule:
            z = (w·Ḡ + F_Hᵀ F_H + λ·tr(Ḡ)·I)⁻¹ F_Hᵀ 1,   Ḡ = FᵀF / n  (the file's item_gram when it has one);
        an empty row gives 0."""
        factors = self.item_factors if side == "item" else self.user_factors
        if side not in self._gram:
            self._gram[side] = factors.T @ factors / max(len(factors), 1)
        gram = self._gram[side]
        base = negatives * gram + regularization * np.trace(gram) * np.eye(gram.shape[0])
        out = np.zeros((liked_rows.shape[0], factors.shape[1]))
        for r in range(liked_rows.shape[0]):
            f = factors[liked_rows.indices[liked_rows.indptr[r]:liked_rows.indptr[r + 1]]]
            if len(f):
                out[r] = np.linalg.solve(base + f.T @ f, f.sum(0))
        return out

    def recalculate_user(self, userid, user_items):
        """implicit's recalculate_user: z of each userid from its row of user_items alone."""
        rows = self._user_rows(userid, user_items)
        if rows is None:
            raise ValueError("recalculate_user needs user_items: the items of each user to fold in")
        z = self.fold_in(rows)
        return z[0] if np.ndim(userid) == 0 else z

    # ---- recommend ----------------------------------------------------------------------------
    def recommend(self, userid, user_items=None, N=10, filter_already_liked_items=True, filter_items=None,
                  recalculate_user=False, items=None):
        if not isinstance(N, (int, np.integer)) or isinstance(N, bool) or N <= 0:
            raise ValueError(f"N must be a positive integer, got {N!r}")
        if items is not None and filter_items is not None:
            raise ValueError("Can't set both items and filter_items in recommend call")
        single, ids = self._as_list(userid)
        given = self._user_rows(userid, user_items)
        if recalculate_user:
            if given is None:
                raise ValueError("recalculate_user needs user_items: the items of each user to fold in")
            users = self.fold_in(given)
        else:
            if self.user_factors is None:
                raise ValueError(f"{self.source} holds no user rows (an item-only file): pass user_items "
                                 "with recalculate_user=True to fold the users in from their items")
            users = self.user_factors[self._rows(ids, self._user_row, "user")]
        if filter_already_liked_items:
            if given is not None:
                liked = given
            elif recalculate_user or self.liked is None:
                raise ValueError(f"{self.source} holds no liked items for these users: pass user_items, or "
                                 "filter_already_liked_items=False")
            else:
                liked = self.liked[self._rows(ids, self._user_row, "user")]
        scores = users @ self.item_factors.T
        if filter_already_liked_items:
            r, c = liked.nonzero()
            scores[r, c] = -np.inf
        if filter_items is not None:
            scores[:, self._rows(self._as_list(filter_items)[1], self._item_col, "item")] = -np.inf
        columns = None
        if items is not None:
            columns = np.unique(self._rows(self._as_list(items)[1], self._item_col, "item"))
            scores = scores[:, columns]
        index, values = top_n(scores, min(N, scores.shape[1]))
        if columns is not None:
            index = columns[index]
        if single:  # filtered items dropped, except from an explicit candidate list (implicit's rule)
            keep = np.isfinite(values[0]) | (columns is not None)
            return self.item_ids[index[0][keep]], values[0][keep].astype(np.float32)
        return self.item_ids[index], values.astype(np.float32)

    # ---- similarity ---------------------------------------------------------------------------
    def _unit(self, side):
        if side not in self._norms:
            factors = self.item_factors if side == "item" else self.user_factors
            norms = np.linalg.norm(factors, axis=1)
            self._norms[side] = factors / np.where(norms > 0, norms, 1.0)[:, None]
        return self._norms[side]

    def _similar(self, query, side, ids_out, index, N, filter_ids, restrict, what):
        if restrict is not None and filter_ids is not None:
            raise ValueError(f"Can't set both {what}s and filter_{what}s in similar_{what}s call")
        if not isinstance(N, (int, np.integer)) or N <= 0:
            raise ValueError(f"N must be a positive integer, got {N!r}")
        norms = np.linalg.norm(query, axis=1)
        scores = (query / np.where(norms > 0, norms, 1.0)[:, None]) @ self._unit(side).T
        if filter_ids is not None:
            scores[:, self._rows(self._as_list(filter_ids)[1], index, what)] = -np.inf
        columns = None
        if restrict is not None:
            columns = np.unique(self._rows(self._as_list(restrict)[1], index, what))
            scores = scores[:, columns]
        top, values = top_n(scores, min(N, scores.shape[1]))
        if columns is not None:
            top = columns[top]
        return ids_out[top], values.astype(np.float32)

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None, filter_items=None, items=None):
        single, ids = self._as_list(itemid)
        if recalculate_item:
            if self.user_factors is None:
                raise NotImplementedError(f"recalculate_item needs user rows; {self.source} holds items only")
            if item_users is None:
                raise ValueError("recalculate_item needs item_users: the users of each item to fold in")
            rows = _binary_rows(item_users, "item_users")
            if rows.shape != (len(ids), len(self.user_ids)):
                raise ValueError(f"item_users has shape {rows.shape}; expected ({len(ids)}, {len(self.user_ids)})")
            query = self.fold_in(rows, side="user")
        else:
            query = self.item_factors[self._rows(ids, self._item_col, "item")]
        top, values = self._similar(query, "item", self.item_ids, self._item_col, N, filter_items, items, "item")
        return (top[0], values[0]) if single else (top, values)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        if self.user_factors is None:
            raise NotImplementedError(f"similar_users needs user rows; {self.source} holds items only")
        single, ids = self._as_list(userid)
        query = self.user_factors[self._rows(ids, self._user_row, "user")]
        top, values = self._similar(query, "user", self.user_ids, self._user_row, N, filter_users, users, "user")
        return (top[0], values[0]) if single else (top, values)


def _ids(ids):
    """Raw ids as a numpy array: int32 where they are 0..n−1 (implicit's index dtype)."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu" and np.array_equal(ids, np.arange(len(ids))) and len(ids) < 2 ** 31:
        return ids.astype(np.int32)
    return ids


def _binary_rows(matrix, name):
    """A CSR with 1 where the given matrix holds a nonzero (empty rows allowed)."""
    if not scipy.sparse.issparse(matrix):
        raise ValueError(f"{name} must be a scipy.sparse matrix, got {type(matrix).__name__}")
    csr = scipy.sparse.csr_matrix(matrix, copy=True)
    if csr.data.size and not np.isfinite(csr.data).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    csr.eliminate_zeros()
    csr.data[:] = 1
    csr.sort_indices()
    return csr


def top_n(scores, n: int):
    """(index, values) of each row's n largest scores, best first, ties → smaller index (metrics.top_k_items)."""
    scores = np.atleast_2d(scores)
    if n <= 0:
        return np.empty((len(scores), 0), dtype=np.int64), np.empty((len(scores), 0))
    index = top_k_items(scores, n)
    return index, np.take_along_axis(scores, index, axis=1)
