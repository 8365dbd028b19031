"""``gnaq.Recommender``: fit on your own interactions, recommend, save — implicit's conventions.

    model = gnaq.Recommender(bits=2).fit(user_items)          # scipy.sparse users × items
    ids, scores = model.recommend(userid, user_items[userid])  # top-N, liked items filtered
    model.save("model.gnaq"); device_model = gnaq.load("model.gnaq")

Constructor parameters are only stored (scikit-learn's rule); ``get_params``/``set_params`` read
and change them; ``fit`` interprets them: it builds a ``TrainConfig`` and runs the same ``Trainer``
as ``python -m gnaq.train``. Defaults are the CLI's (``TrainConfig``) except ``bits=2`` (the CLI's
``--bits`` defaults to 32) and ``device="auto"``. Scores are ŷᵤᵢ = zᵤ·zᵢ of the deployed (dequantized)
representation z = (user_factors; item_factors); ``similar_items`` ranks by cosine similarity of
item_factors. Ids: a matrix given to ``fit`` as scipy.sparse has ids 0..n-1; one from
``gnaq.data.from_pandas`` keeps its raw ids, and every argument and result is in raw ids.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time

import numpy as np

from .backend import to_numpy
from .checkpoint import atomic_write_bytes
from .data import DataError, InteractionMatrix, Interactions, binary_csr, check_user_items, from_scipy, split_per_user
from .training import TrainConfig, Trainer

_DEFAULTS = TrainConfig()

# Recommender(options={...}): the less common settings, each the CLI flag of the same name
OPTIONS = {
    "layers": _DEFAULTS.layers,            # LightGCN layers L
    "batch_size": _DEFAULTS.batch_size,    # BPR positives a step
    "patience": _DEFAULTS.patience,        # evaluations without gain that end a phase
    "lr_drops": _DEFAULTS.lr_drops,        # on a plateau: back to the best epoch at lr ÷ 10, this many times
    "sampler": _DEFAULTS.sampler,          # BPR triplets per uniform user ("users") or per interaction
    "propagation": _DEFAULTS.propagation,  # "auto", "full" or "sampled" (gnaq.sampled)
    "walks": _DEFAULTS.walks,              # sampled propagation's walks a batch row (None: 0 with the reach)
    "reach": _DEFAULTS.reach,              # with walks=0: the deferred reach's weight (gnaq.reach)
    "reach_split": _DEFAULTS.reach_split,  # "lightgcn" or "history" (gnaq.reach)
    "quant_options": None,                 # the quantizer's own options (gnaq.quant), e.g. {"delta": 0.5}
    "init_from": None,                     # start from a trained run's embeddings (a run folder or .npz)
    "target": "off",                       # or a fraction such as 0.98: climb to larger files until one keeps it
    "refit": True,                         # train again on all of user_items for the chosen schedule
    "checkpoint_dir": None,                # the run's folder (default: a new temporary one); fit resumes it
}


class NotFittedError(RuntimeError):
    """recommend/similar_items/save called before fit."""


class Recommender:
    """LightGCN with node-aware low-bit embeddings, behind implicit's model API.

    factors: d, the embedding width. bits: 2 (default), 1, 3, 4, 8, or 32 for full precision.
    quantizer: "gnaq" (default) or a baseline ("ste", "lsq", "n2uq", "bigear", "pq", "gnaq-official").
    learning_rate, regularization: Adam's step and the L2 weight on E⁽⁰⁾.
    epochs: the overall epoch budget (phases end by patience long before it).
    time_budget: seconds for the whole ``fit`` (None: no limit). With ``refit``, the selection run
    gets half; the refit runs where its estimated time fits what is left, else the selection
    run's model is kept (``refit_result_`` then says why).
    validation_fraction: share of each user's interactions held out for early stopping when
    ``fit`` gets no ``valid=`` matrix — ⌊fraction·n⌋ of a user's n, and at least one of every user
    with two or more (seeded by random_state; at least one stays in train).
    device: "auto" (cuda where cupy finds a GPU), "cpu" or "cuda". progress: progress bars and
    warnings (False: silent).
    options: a mapping of less common settings (``OPTIONS`` lists them with their defaults):
    layers, batch_size, patience, lr_drops, sampler, propagation, walks, reach, reach_split,
    quant_options, init_from, target, refit (default True: after the hold-out has chosen the
    schedule, train again on all of ``user_items`` for exactly that schedule and keep that model;
    ``result_`` is the selection run's, ``refit_result_`` the refit's; ignored when ``valid=`` is
    given) and checkpoint_dir (``fit`` on a folder holding a previous run's last.npz resumes it).
    """

    def __init__(self, factors=_DEFAULTS.dim, bits=2, quantizer=_DEFAULTS.quantizer, learning_rate=_DEFAULTS.lr,
                 regularization=_DEFAULTS.reg, epochs=_DEFAULTS.epochs, time_budget=_DEFAULTS.time_budget,
                 validation_fraction=0.1, device="auto", random_state=_DEFAULTS.seed, progress=True, options=None):
        self.factors, self.bits, self.quantizer = factors, bits, quantizer
        self.learning_rate, self.regularization = learning_rate, regularization
        self.epochs, self.time_budget, self.validation_fraction = epochs, time_budget, validation_fraction
        self.device, self.random_state, self.progress, self.options = device, random_state, progress, options

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
        defaults = inspect.signature(type(self).__init__).parameters
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k].default}
        return f"Recommender({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---- training ------------------------------------------------------------------------
    def _options(self) -> dict:
        """OPTIONS with the ``options`` mapping's values; an unknown key is a ValueError."""
        given = dict(self.options or {})
        unknown = sorted(set(given) - set(OPTIONS))
        if unknown:
            raise ValueError(f"Recommender options: unknown {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(OPTIONS)}")
        return {**OPTIONS, **given}

    def config(self) -> TrainConfig:
        """The TrainConfig that ``fit`` runs (the CLI builds the same object from its arguments)."""
        o = self._options()
        return TrainConfig(
            dataset="user_items", bits=self.bits, quantizer=self.quantizer,
            quant_options=dict(o["quant_options"] or {}),
            dim=self.factors, layers=o["layers"], epochs=self.epochs, batch_size=o["batch_size"],
            lr=self.learning_rate, reg=self.regularization, init_from=o["init_from"], patience=o["patience"],
            lr_drops=o["lr_drops"], sampler=o["sampler"], propagation=o["propagation"], walks=o["walks"],
            reach=o["reach"], reach_split=o["reach_split"], time_budget=self.time_budget,
            seed=self.random_state, device=self.device,
            out=o["checkpoint_dir"] or tempfile.mkdtemp(prefix="gnaq-fit-"), progress=self.progress)

    def fit(self, user_items, valid=None, show_progress=None, callback=None) -> "Recommender":
        """Train on ``user_items`` (scipy.sparse users × items, or an InteractionMatrix); returns self.

        Early stopping selects by NDCG@20 on ``valid`` (same shape), or on a seeded per-user
        hold-out of ``user_items`` when none is given; the hold-out is for selection only (and,
        with the ``refit`` option on, trained on afterwards). implicit's fit arguments: ``show_progress``
        (default: the ``progress`` parameter) and ``callback(epoch, elapsed_seconds, record)``,
        called after every evaluation with its metrics line.
        """
        started = time.perf_counter()
        given = user_items if isinstance(user_items, InteractionMatrix) else from_scipy(user_items)
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")
        options = self._options()
        full = given.matrix
        if valid is None:
            coo = full.tocoo()
            keep, held, _ = split_per_user(coo.row, coo.col, 0.0, self.validation_fraction, seed=self.random_state,
                                           min_valid=1)
            train = binary_csr(coo.row[keep], coo.col[keep], *full.shape)
            held_out = binary_csr(coo.row[held], coo.col[held], *full.shape)
        else:
            held_out = check_user_items(valid, "valid")
            if held_out.shape != full.shape:
                raise DataError(f"valid has shape {held_out.shape}; user_items has {full.shape}")
            train = full
        refit = options["refit"] and valid is None
        # selection split = "test" (valid=None): evaluation masks train only
        data = Interactions("user_items", train, test=held_out, valid=None,
                            user_ids=given.user_ids, item_ids=given.item_ids)
        config = self.config()
        if show_progress is not None:
            config.progress = bool(show_progress)
        if self.time_budget and refit:  # the selection run gets half; the refit what is left
            config.time_budget = self.time_budget / 2
        trainer = Trainer(config, data)
        trainer.resume_if_saved()  # (only a checkpoint_dir can hold one: the default folder is new)
        on_eval = None
        if callback is not None:
            on_eval = lambda record: callback(record["epoch"], trainer.elapsed, record)  # noqa: E731
        from .target import fit_to_target
        trainer, self.result_, _ = fit_to_target(config, data, options["target"], on_eval=on_eval, trainer=trainer)
        config = trainer.config
        if refit:
            data = Interactions("user_items", full, test=held_out, valid=None,
                                user_ids=given.user_ids, item_ids=given.item_ids)
            plan = refit_config(config, self.result_)
            left = None if not self.time_budget else self.time_budget - (time.perf_counter() - started)
            needed = refit_seconds(trainer, plan, full.nnz / max(train.nnz, 1))
            if left is not None and needed > left:
                self.refit_result_ = {"skipped": f"the refit needs ~{needed:.0f} s, {max(left, 0):.0f} s of "
                                                 f"time_budget {self.time_budget:g} s are left"}
                trainer._notice("time_budget: %s; keeping the selection run's model", self.refit_result_["skipped"])
                data = trainer.data
            else:
                trainer = Trainer(plan, data)
                trainer.resume_if_saved()  # a refit under way (or done) when fit stopped
                self.refit_result_ = trainer.fit()
        self.trainer_, self._data, self._liked = trainer, data, full
        self._query = self._deployed_query()
        return self

    def _deployed_query(self):
        """The Query of the file this model saves (so a fitted model and its file answer alike);
        a quantizer the format cannot hold answers from the engine's z instead."""
        from .export import export_model
        from .query import Query
        model, comm = self.trainer_.whole_model(), self.trainer_.comm  # every column (collective under mpiexec)
        if not model.quantizer.exportable:
            users, items = (to_numpy(x) for x in model.final_embeddings())
            return Query(users, items, self._data.user_ids, self._data.item_ids, self._liked)
        path = os.path.join(self.trainer_.config.out, "model.gnaq")
        if comm.is_root:  # rank 0 writes the file; every rank answers from it
            export_model(model, self._history_data(), path)
        comm.barrier()
        query = Query.from_file(path)
        query.source = "the fitted model"
        return query

    def _history_data(self):
        """The training graph, with everything given to fit as the history of each user."""
        rest = (self._liked - self._data.train).tocsr()
        rest.data = (rest.data > 0).astype(np.float32)
        rest.eliminate_zeros()
        return Interactions("user_items", self._data.train, test=self._data.test, valid=rest,
                            user_ids=self._data.user_ids, item_ids=self._data.item_ids)

    # ---- queries: one class (gnaq.query.Query) for fitted and loaded models ------------------
    def _check_fitted(self):
        if not hasattr(self, "_query"):
            raise NotFittedError("this Recommender is not fitted yet: call fit(user_items) first")

    @property
    def user_ids(self):
        """Raw id of each user row (what ``recommend`` takes), in the model's order."""
        self._check_fitted()
        return self._query.user_ids

    @property
    def item_ids(self):
        """Raw id of each item column (what ``recommend`` returns), in the model's order."""
        self._check_fitted()
        return self._query.item_ids

    @property
    def user_factors(self):
        """z of every user (n_users, d), float64: the deployed (dequantized) representation."""
        self._check_fitted()
        return self._query.user_factors

    @property
    def item_factors(self):
        """z of every item (n_items, d), float64; scores are user_factors @ item_factors.T."""
        self._check_fitted()
        return self._query.item_factors

    def recommend(self, userid, user_items=None, N=10, filter_already_liked_items=True, filter_items=None,
                  recalculate_user=False, items=None):
        """Top-N items as (ids, scores), implicit's semantics (gnaq.query.Query.recommend); user_items
        defaults to everything given to ``fit``."""
        self._check_fitted()
        return self._query.recommend(userid, user_items, N, filter_already_liked_items, filter_items,
                                     recalculate_user, items)

    def recalculate_user(self, userid, user_items):
        """z of users from their items alone (fold-in; gnaq.query.Query.fold_in)."""
        self._check_fitted()
        return self._query.recalculate_user(userid, user_items)

    def similar_items(self, itemid, N=10, recalculate_item=False, item_users=None, filter_items=None, items=None):
        """The N items most cosine-similar to itemid (itself first, score 1), as (ids, scores)."""
        self._check_fitted()
        return self._query.similar_items(itemid, N, recalculate_item, item_users, filter_items, items)

    def similar_users(self, userid, N=10, filter_users=None, users=None):
        """The N users most cosine-similar to userid (itself first), as (ids, scores)."""
        self._check_fitted()
        return self._query.similar_users(userid, N, filter_users, users)

    # ---- persistence -----------------------------------------------------------------------
    def save(self, path, history: bool = True, users: bool = True, gram: bool = True, entropy: bool = False) -> dict:
        """Write the packed .gnaq model to a path (atomic) or a binary file object; returns its
        sizes (gnaq.export). users=False: an item-only file (devices fold their user in) — for the
        most accurate one, fit with ``quant_options={"quantize_users": False}`` (the CLI's default for
        --export-users no: the items' codes trained against float users, quant/gnaq.py rule 8);
        gram=False: without the items' Gram matrix (a reader computes it on its first fold-in);
        entropy=True: a transform-coded model's rows Huffman coded (the CLI's --export-entropy yes)."""
        from .export import export_model
        if not hasattr(self, "_query"):  # implicit saves an unfitted model's parameters
            return save_params(self, path)
        if not hasattr(self, "trainer_"):
            raise NotFittedError("this Recommender was loaded from a file: save copies of that file instead")
        if not hasattr(path, "write"):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return export_model(self.trainer_.model, self._history_data(), path, history=history, users=users,
                            gram=gram, entropy=entropy)

    @classmethod
    def load(cls, path_or_file, backend: str = "auto") -> "Recommender":
        """A Recommender answering queries from a .gnaq file (path, binary file object or bytes), or
        an unfitted one with the parameters ``save`` wrote before ``fit``."""
        from .query import Query
        params = load_params(path_or_file)
        if params is not None:
            return cls(**params)
        model = cls()
        model._query = Query.from_file(path_or_file, backend)
        return model


PARAMS_MAGIC = "gnaq.Recommender parameters"


def save_params(model, path) -> dict:
    """An unfitted model's parameters as JSON (atomic), readable by ``Recommender.load``."""
    blob = json.dumps({"format": PARAMS_MAGIC, "params": model.get_params()}, indent=1).encode()
    if hasattr(path, "write"):
        path.write(blob)
    else:
        atomic_write_bytes(path, lambda f: f.write(blob))
    return {"file_bytes": len(blob), "fitted": False}


def load_params(path_or_file):
    """The parameters a ``save_params`` file holds, or None where it is something else (a .gnaq)."""
    if isinstance(path_or_file, (bytes, bytearray)):
        head = bytes(path_or_file)
    elif hasattr(path_or_file, "read"):
        if not hasattr(path_or_file, "seek"):
            return None
        at = path_or_file.tell()
        head = path_or_file.read()
        path_or_file.seek(at)
    else:
        with open(path_or_file, "rb") as f:
            head = f.read(64)
            if head.lstrip().startswith(b"{"):
                head += f.read()
    if not head.lstrip().startswith(b"{"):
        return None
    try:
        saved = json.loads(head)
    except ValueError:
        return None
    if not isinstance(saved, dict) or saved.get("format") != PARAMS_MAGIC:
        return None
    return saved["params"]


def refit_seconds(trainer, plan, growth: float) -> float:
    """The refit's estimated seconds: the selection run's seconds an epoch (evaluation included,
    so an overestimate) × the refit's epochs × how much larger its data is."""
    per_epoch = trainer.elapsed / max(trainer.epoch, 1)
    return per_epoch * plan.epochs * growth


def refit_config(config: TrainConfig, selected: dict) -> TrainConfig:
    """The selection run's schedule replayed without validation: E_fp full-precision epochs (the
    epoch the quantizer started from) as a fixed warm-up, then E_q quantized epochs (to the best
    quantized epoch); one phase (E = best epoch) when there was no warm-up. A setting the target
    ladder chose (fine-tuned from the first run's fp32 model) replays that run's E_fp, then its own —
    at least one quantized epoch, where its initial codes (epoch 0, Trainer._evaluate_epoch) were best."""
    from dataclasses import replace
    phases = selected["phases"]
    options = dict(config.quant_options)
    warm = phases.get("full_precision") if "quantized" in phases else None
    if warm is None and selected.get("warmup_phase"):  # a --target rung, fine-tuned from the first run's fp32 model
        fp32_epochs = selected["warmup_phase"]["best_epoch"]
        options["warmup"] = fp32_epochs
        # (its initial codes won, epoch 0: one epoch, the fewest a replay has)
        quantized = max(selected["best_epoch"], 1)
        return replace(config, quant_options=options, init_from=None, epochs=fp32_epochs + quantized,
                       eval_every=0, time_budget=None, out=os.path.join(config.out, "refit"))
    if warm and options.get("warmup") == "auto":
        fp32_epochs = warm["best_epoch"]
        options["warmup"] = fp32_epochs
        epochs = fp32_epochs + selected["best_epoch"] - warm["last_epoch"]
    else:
        epochs = selected["best_epoch"]
    return replace(config, quant_options=options, epochs=max(epochs, 1), eval_every=0, time_budget=None,
                   out=os.path.join(config.out, "refit"))


def load(path_or_file, backend: str = "auto"):
    """Open a .gnaq file (path, binary file object or bytes) with the fitted model's query API
    (gnaq.query.Query; answered from the dequantized rows gnaq.edge reads)."""
    from .query import Query
    return Query.from_file(path_or_file, backend)
