"""``gnaq.Recommender``: fit on your own interactions, recommend, save — implicit's conventions.

    model = gnaq.Recommender(bits=2).fit(user_items)          # scipy.sparse users × items
    ids, scores = model.recommend(userid, user_items[userid])  # top-N, liked items filtered
    model.save("model.gnaq"); device_model = gnaq.load("model.gnaq")

Constructor parameters are only stored (scikit-learn's rule); ``get_params``/``set_params`` read
and change them; their defaults are the CLI's (``TrainConfig``), except ``bits=2`` and
``device="auto"``. ``fit`` builds a ``TrainConfig`` and runs the same ``Trainer`` as
``python -m gnaq.train``. Scores are ŷᵤᵢ = zᵤ·zᵢ of the deployed (dequantized) representation
z = (user_factors; item_factors); ``similar_items`` ranks by cosine similarity of item_factors.
Ids: a matrix given to ``fit`` as scipy.sparse has ids 0..n-1; one from ``gnaq.data.from_pandas``
keeps its raw ids, and every argument and result is in raw ids.
"""

from __future__ import annotations

import inspect
import os
import tempfile

import numpy as np
import scipy.sparse

from .backend import to_numpy
from .data import DataError, InteractionMatrix, Interactions, binary_csr, check_user_items, from_scipy, split_per_user
from .trainer import TrainConfig, Trainer

_DEFAULTS = TrainConfig()


class NotFittedError(RuntimeError):
    """recommend/similar_items/save called before fit."""


class Recommender:
    """LightGCN with node-aware low-bit embeddings, behind implicit's model API.

    validation_fraction: share of each user's interactions held out for early stopping when
    ``fit`` gets no ``valid=`` matrix (seeded by random_state; at least one stays in train).
    checkpoint_dir: where the run's checkpoints go (default: a temporary folder); ``fit`` on a
    folder holding a previous run's last.npz resumes it.
    refit: after the hold-out has chosen the schedule (epochs in full precision, epochs
    quantized), train again on all of ``user_items`` for exactly that schedule, without
    validation, and keep that model, so no interaction is lost (``result_`` is the selection
    run's, ``refit_result_`` the refit's). Ignored when ``valid=`` is given: then nothing is held out.
    """

    def __init__(self, factors=_DEFAULTS.dim, layers=_DEFAULTS.layers, bits=2, quantizer=_DEFAULTS.quantizer,
                 epochs=_DEFAULTS.epochs, batch_size=_DEFAULTS.batch_size, learning_rate=_DEFAULTS.lr,
                 regularization=_DEFAULTS.reg, quant_options=None, init_from=None,
                 validation_fraction=0.1, patience=_DEFAULTS.patience, lr_drops=_DEFAULTS.lr_drops,
                 sampler=_DEFAULTS.sampler, device="auto", time_budget=_DEFAULTS.time_budget, refit=False,
                 random_state=_DEFAULTS.seed, progress=True, checkpoint_dir=None):
        self.factors, self.layers, self.bits, self.quantizer = factors, layers, bits, quantizer
        self.epochs, self.batch_size, self.learning_rate = epochs, batch_size, learning_rate
        self.regularization, self.quant_options, self.init_from = regularization, quant_options, init_from
        self.validation_fraction, self.patience, self.device = validation_fraction, patience, device
        self.lr_drops, self.sampler, self.time_budget, self.refit = lr_drops, sampler, time_budget, refit
        self.random_state, self.progress, self.checkpoint_dir = random_state, progress, checkpoint_dir

    # ---- scikit-learn's parameter protocol -------------------------------------------------
    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> "Recommender":
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"invalid parameter {name!r} for Recommender; valid: {self._param_names()}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items() if v != inspect.signature(type(self).__init__).parameters[k].default}
        return f"Recommender({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---- training ------------------------------------------------------------------------
    def config(self) -> TrainConfig:
        """The TrainConfig that ``fit`` runs (the CLI builds the same object from its arguments)."""
        return TrainConfig(
            dataset="user_items", bits=self.bits, quantizer=self.quantizer, quant_options=dict(self.quant_options or {}),
            dim=self.factors, layers=self.layers, epochs=self.epochs, batch_size=self.batch_size,
            lr=self.learning_rate, reg=self.regularization, init_from=self.init_from, patience=self.patience,
            lr_drops=self.lr_drops, sampler=self.sampler, time_budget=self.time_budget,
            seed=self.random_state, device=self.device, out=self.checkpoint_dir or tempfile.mkdtemp(prefix="gnaq-fit-"),
            progress=self.progress)

    def fit(self, user_items, valid=None) -> "Recommender":
        """Train on ``user_items`` (scipy.sparse users × items, or an InteractionMatrix); returns self.

        Early stopping selects by NDCG@20 on ``valid`` (same shape), or on a seeded per-user
        hold-out of ``user_items`` when none is given; the hold-out is for selection only.
        """
        given = user_items if isinstance(user_items, InteractionMatrix) else from_scipy(user_items)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        full = given.matrix
        if valid is None:
            coo = full.tocoo()
            keep, held, _ = split_per_user(coo.row, coo.col, 0.0, self.validation_fraction, seed=self.random_state)
            train = binary_csr(coo.row[keep], coo.col[keep], *full.shape)
            held_out = binary_csr(coo.row[held], coo.col[held], *full.shape)
        else:
            held_out = check_user_items(valid, "valid")
            if held_out.shape != full.shape:
                raise DataError(f"valid has shape {held_out.shape}; user_items has {full.shape}")
            train = full
        # selection split = "test" (valid=None): evaluation masks train only
        data = Interactions("user_items", train, test=held_out, valid=None,
                            user_ids=given.user_ids, item_ids=given.item_ids)
        config = self.config()
        trainer = Trainer(config, data)
        last = os.path.join(config.out, "last.npz")
        if self.checkpoint_dir and os.path.exists(last):
            trainer.restore(last)
        self.result_ = trainer.fit()
        if self.refit and valid is None:
            data = Interactions("user_items", full, test=held_out, valid=None,
                                user_ids=given.user_ids, item_ids=given.item_ids)
            trainer = Trainer(refit_config(config, self.result_), data)
            self.refit_result_ = trainer.fit()
        self.trainer_, self._data, self._liked = trainer, data, full
        self._user_row = {raw: i for i, raw in enumerate(given.user_ids.tolist())}
        self._item_col = {raw: i for i, raw in enumerate(given.item_ids.tolist())}
        users, items = trainer.model.final_embeddings()
        self.user_factors, self.item_factors = to_numpy(users), to_numpy(items)
        return self

    # ---- queries -------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "trainer_"):
            raise NotFittedError("this Recommender is not fitted yet: call fit(user_items) first")

    @staticmethod
    def _as_list(ids):
        single = np.ndim(ids) == 0
        return single, ([ids.item() if hasattr(ids, "item") else ids] if single else np.asarray(ids).tolist())

    def _rows(self, ids, index, what):
        try:
            return np.array([index[i] for i in ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"{what} {exc.args[0]!r} was not seen in training") from None

    def recommend(self, userid, user_items=None, N: int = 10, filter_already_liked_items: bool = True, items=None):
        """Top-N items as (ids, scores), best first (ties: smaller item index).

        userid: one raw user id → arrays of shape (n,), n = min(N, eligible items); an array of
        ids → arrays of shape (len(userid), min(N, candidates)), rows with fewer eligible items
        padded with score -inf. user_items: the users' rows (len(userid) × n_items) whose
        items are filtered; default: their interactions given to ``fit``. items: restrict the
        candidates to these raw item ids.
        """
        self._check_fitted()
        if not isinstance(N, (int, np.integer)) or N <= 0:
            raise ValueError(f"N must be a positive integer, got {N!r}")
        single, ids = self._as_list(userid)
        rows = self._rows(ids, self._user_row, "user")
        scores = self.user_factors[rows].astype(np.float64) @ self.item_factors.T.astype(np.float64)
        if items is not None:
            _, item_list = self._as_list(items)
            allowed = np.zeros(scores.shape[1], dtype=bool)
            allowed[self._rows(item_list, self._item_col, "item")] = True
            scores[:, ~allowed] = -np.inf
        if filter_already_liked_items:
            liked = self._liked[rows] if user_items is None else check_user_items(user_items)
            if liked.shape != (len(rows), scores.shape[1]):
                raise ValueError(f"user_items has shape {liked.shape}; expected ({len(rows)}, {scores.shape[1]}): "
                                 "one row per userid, one column per item of the model")
            r, c = liked.nonzero()
            scores[r, c] = -np.inf
        n_candidates = scores.shape[1] if items is None else int(allowed.sum())
        index, values = top_n(scores, min(N, n_candidates))
        if single:
            keep = np.isfinite(values[0])
            return self._data.item_ids[index[0][keep]], values[0][keep]
        return self._data.item_ids[index], values

    def _similar(self, ids, factors, index, raw_ids, N, what):
        single, ids = self._as_list(ids)
        top, values = cosine_top_n(factors, self._rows(ids, index, what), N)
        return (raw_ids[top[0]], values[0]) if single else (raw_ids[top], values)

    def similar_items(self, itemid, N: int = 10):
        """The N items most cosine-similar to itemid (itself first, score 1), as (ids, scores)."""
        self._check_fitted()
        return self._similar(itemid, self.item_factors, self._item_col, self._data.item_ids, N, "item")

    def similar_users(self, userid, N: int = 10):
        """The N users most cosine-similar to userid (itself first), as (ids, scores)."""
        self._check_fitted()
        return self._similar(userid, self.user_factors, self._user_row, self._data.user_ids, N, "user")

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path, history: bool = True) -> dict:
        """Write the packed .gnaq model (atomic); returns its sizes (see gnaq.export)."""
        from .export import export_model
        self._check_fitted()
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        # the graph is the one trained on; the history (train ∪ valid there) is everything given to fit
        rest = (self._liked - self._data.train).tocsr()
        rest.data = (rest.data > 0).astype(np.float32)
        rest.eliminate_zeros()
        data = Interactions("user_items", self._data.train, test=self._data.test, valid=rest,
                            user_ids=self._data.user_ids, item_ids=self._data.item_ids)
        return export_model(self.trainer_.model, data, path, history=history)


def refit_config(config: TrainConfig, selected: dict) -> TrainConfig:
    """The selection run's schedule replayed without validation: E_fp full-precision epochs (the
    epoch the quantizer started from) as a fixed warm-up, then E_q quantized epochs (to the best
    quantized epoch); one phase (E = best epoch) when there was no warm-up."""
    from dataclasses import replace
    phases = selected["phases"]
    options = dict(config.quant_options)
    warm = phases.get("full_precision") if "quantized" in phases else None
    if warm and options.get("warmup") == "auto":
        fp32_epochs = warm["best_epoch"]
        options["warmup"] = fp32_epochs
        epochs = fp32_epochs + selected["best_epoch"] - warm["last_epoch"]
    else:
        epochs = selected["best_epoch"]
    return replace(config, quant_options=options, epochs=max(epochs, 1), eval_every=0, time_budget=None,
                   out=os.path.join(config.out, "refit"))


def cosine_top_n(factors, rows, N: int):
    """(index, values): for each row in `rows`, the N rows of `factors` (n, d) of largest cosine
    similarity to it, best first (the row itself first, with score 1)."""
    norms = np.linalg.norm(factors, axis=1).astype(np.float64)
    unit = factors / np.where(norms > 0, norms, 1.0)[:, None]
    return top_n(unit[rows] @ unit.T, min(N, len(factors)))


def top_n(scores, n: int):
    """(index, values) of each row's n largest scores, best first, ties → smaller index."""
    scores = np.atleast_2d(scores)
    if n <= 0:
        return np.empty((len(scores), 0), dtype=np.int64), np.empty((len(scores), 0))
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(scores), 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    # boundary ties: argpartition may pick any of equal scores; re-take with the index tie-break
    order = np.lexsort((part, -part_scores), axis=1)
    index = np.take_along_axis(part, order, axis=1)
    kth = np.take_along_axis(part_scores, order, axis=1)[:, -1:]
    if n < scores.shape[1] and np.any((scores == kth).sum(1) > (np.take_along_axis(part_scores, order, 1) == kth).sum(1)):
        full = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :n]
        return full, np.take_along_axis(scores, full, axis=1)
    return index, np.take_along_axis(scores, index, axis=1)


class PackedRecommender:
    """A .gnaq file behind the same query API (``gnaq.load``): recommend and similar_items,
    answered by gnaq.edge (scores as the edge backends compute them; ids are the file's raw ids)."""

    def __init__(self, path, backend: str = "auto"):
        from . import edge
        self.model = edge.load(path, backend)
        self.item_ids = np.asarray(self.model.item_ids)

    def recommend(self, userid, user_items=None, N: int = 10, filter_already_liked_items: bool = True):
        """(ids, scores) of one user's top-N; liked items are the file's history (user_items unused)."""
        top = self.model.recommend(userid, k=N, exclude_seen=filter_already_liked_items)
        return np.asarray([i for i, _ in top]), np.asarray([s for _, s in top])

    def similar_items(self, itemid, N: int = 10):
        """The N items most cosine-similar to itemid (itself first), from the dequantized item vectors."""
        if itemid not in self.model._item_index:
            raise KeyError(f"item {itemid!r} is not in {self.model.path}")
        index, values = cosine_top_n(self.model.item_vectors(), [self.model._item_index[itemid]], N)
        return self.item_ids[index[0]], values[0]


def load(path, backend: str = "auto") -> PackedRecommender:
    """Open a .gnaq file as a recommender (see PackedRecommender)."""
    return PackedRecommender(path, backend)
