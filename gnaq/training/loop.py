"""The Trainer: a run's set-up (data, graph, model, quantizer, optimizer, sampled propagation),
one epoch of BPR steps, and ``fit``, the loop over epochs until the schedule ends it."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict

import numpy as np

from ..averaging import EmbeddingAverage
from ..backend import resolve_device, synchronize, to_device
from ..checkpoint import atomic_write_bytes
from ..comm import column_slice, world
from ..graph import graph_fingerprint, normalized_adjacency
from ..models import LightGCN
from ..models.lightgcn import initial_table
from ..models.whole import snapshot
from ..optim import Adam
from ..reach import DeferredReach, sampled_recipe
from ..sampled import SampledPropagation, default_refresh_every, resolve_propagation
from ..sampling import sample_bpr_epoch
from .checkpoints import CheckpointMixin, _jsonable
from .config import SAMPLED_AVERAGE, TrainConfig
from .distributed import check_sliced
from .evaluation import EvaluationMixin
from .schedule import ScheduleMixin
from .warm_start import initial_embedding

log = logging.getLogger("gnaq.train")


class NonFiniteLoss(RuntimeError):
    pass


class Trainer(ScheduleMixin, EvaluationMixin, CheckpointMixin):
    """One training run: its data, model, optimizer and schedule (gnaq.training's docstring)."""

    def __init__(self, config: TrainConfig, data=None):
        from ..data import load_dataset
        from ..quant import make_quantizer
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        self.data = data if data is not None else load_dataset(
            config.dataset, config.data_dir, config.merge_valid, seed=config.seed, progress=config.progress)
        d = self.data
        if max(config.topk) > d.n_items and config.eval_every:
            self._notice("only %d items: a top-%d list holds all of them (metrics @K above %d rank every item)",
                        d.n_items, max(config.topk), d.n_items)
        self.norm_adj = normalized_adjacency(d.train, self.device)
        self.fingerprint = graph_fingerprint(d.train)
        self.comm = world()
        self.columns = slice(0, config.dim)  # this rank's columns of E⁽⁰⁾ (feature-sliced under mpiexec)
        if self.comm.size > 1:
            check_sliced(config, self.comm)
            self.columns = column_slice(config.dim, self.comm)
            if not self.comm.is_root:  # progress bars and logs on rank 0 only
                self.config = config = dataclasses.replace(config, progress=False)
        initial = initial_embedding(config.init_from, self) if config.init_from else None
        quantizer = make_quantizer(config.quantizer, config.bits, **config.quant_options)
        sliced = None
        if self.comm.size > 1:  # every rank draws the whole table from the seed and keeps its columns
            whole = initial if initial is not None else initial_table(d.n_users + d.n_items, config.dim, config.seed)
            sliced = np.ascontiguousarray(whole[:, self.columns])
        self.model = LightGCN(d.n_users, d.n_items, self.norm_adj, self.columns.stop - self.columns.start,
                              config.layers, quantizer, seed=config.seed, device=self.device,
                              init_embedding=sliced if sliced is not None else initial, comm=self.comm)
        # auto samples for full precision and gnaq's and pq's row-local deployments, whatever the process
        # count (so W processes train the model of one); the baselines keep the full graph
        samples = getattr(quantizer, "row_local", False) and (config.quantizer in ("gnaq", "pq") or config.bits == 32)
        self.propagation = resolve_propagation(config.propagation, samples)
        self.sampled, self.recipe = None, {}
        if self.propagation == "sampled":
            if not getattr(quantizer, "row_local", False):
                raise ValueError(f"--propagation sampled: quantizer {config.quantizer!r} with options "
                                 f"{config.quant_options} needs the whole graph a step; use --propagation full "
                                 "(sampled training takes --bits 32, gnaq's default graph-free deployment, pq, "
                                 "ste or lsq quantizing z, n2uq and bigear)")
            if self.comm.size > 1 and config.quantizer not in ("gnaq", "pq") and config.bits != 32:
                raise ValueError(f"--propagation sampled under mpiexec: quantizer {config.quantizer!r} runs in one "
                                 "process (its whole-table statistics are not sliced); use --propagation full")
            if config.reach and getattr(quantizer, "needs_layers", False):
                raise ValueError(f"--reach: quantizer {config.quantizer!r} quantizes every layer; its gradient is "
                                 "not z's (use --reach 0)")
            self.recipe = sampled_recipe(config.walks, config.reach, config.reach_split,
                                         getattr(quantizer, "needs_layers", False))
            self.sampled = SampledPropagation(self.model, d.train, self.recipe["walks"], config.walk_allocation,
                                              config.gradient_walks)
            log.info("sampled propagation: %s", ", ".join(f"{k} {v}" for k, v in self.recipe.items()))
            n_nodes = d.n_users + d.n_items
            for p in self.model.parameters():  # per-node tables get row-sparse gradients, lazy Adam
                p.sparse_grad = p.shape[0] == n_nodes
        self.optimizer = Adam(self.model.parameters(), lr=config.lr)
        self.average_decay = config.average if config.average is not None else (
            SAMPLED_AVERAGE if self.propagation == "sampled" else 0.0)
        self.average = EmbeddingAverage(self.model.embedding, self.average_decay) if self.average_decay else None
        self.reach = None
        if self.sampled is not None and self.recipe["reach"]:  # (its move shares the refresh's scratch)
            self.reach = DeferredReach(self.model, self.recipe["reach"], self.recipe["reach_split"],
                                       workspace=self.sampled.workspace)
        self._reloaded = False  # weights loaded from a checkpoint since the last evaluation began
        # the --init-from model in full precision: the teacher's z for --distill, and what a quantized
        # run keeps a share of (fit evaluates it once, then lets it go)
        self._start_model = None if initial is None else LightGCN(
            d.n_users, d.n_items, self.norm_adj, config.dim, config.layers, None, device=self.device,
            init_embedding=np.array(initial))  # its own copy: restore() and Adam write self.model's in place
        self.teacher = None
        if config.distill:
            self.teacher = self._start_model.xp.concatenate(self._start_model.final_embeddings())
        self.rng = np.random.default_rng(config.seed)
        self.epoch = 0
        self.best = {"score": -math.inf, "epoch": 0}
        self.bad_evals = 0
        self.lr_drops_done = 0  # learning-rate drops taken so far (each ÷ 10)
        self.warmup_state = {"score": -math.inf, "epoch": 0, "bad": 0}  # the "auto" warm-up's progress
        self.elapsed = 0.0  # seconds of training + evaluation so far, over resumes (the time budget's clock)
        self.phases = {}  # phase name -> {"first_epoch", "last_epoch", "best_epoch", "ended_by"}
        self.reference_score = None  # validation NDCG@20 of the full-precision model the quantizer starts from
        self.reference_recall = None  # … and its Recall@20
        self._se_warned = False  # the standard-error warning is said once a run
        self.phase_bytes = {}  # phase name -> [bytes this rank sent in training steps, steps] (this process)
        self.timings = {"sampling": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        self.profile = False  # on a GPU, synchronise after each phase so `timings` are true (slower)
        os.makedirs(config.out, exist_ok=True)

    def _notice(self, message, *args):
        """A warning worth a user's eye: logged as a warning with progress on, as info without."""
        (log.warning if self.config.progress else log.info)(message, *args)

    def whole_model(self):
        """The model with every column (collective under mpiexec: every rank calls it); self.model
        in one process. What export and the Recommender's queries see (models/whole.py)."""
        return snapshot(self.model)

    # ---- one epoch -------------------------------------------------------------------
    def train_epoch(self) -> float:
        """One pass of BPR triplets; returns the mean loss. Raises NonFiniteLoss."""
        from tqdm.auto import tqdm
        cfg, timings = self.config, self.timings
        sync = synchronize if self.profile else (lambda device: None)
        t0 = time.perf_counter()
        users, pos, neg = sample_bpr_epoch(self.data.train, self.rng, by=cfg.sampler, negatives=cfg.negatives)
        users, pos, neg = (to_device(a, self.device) for a in (users, pos, neg))  # once per epoch
        timings["sampling"] += time.perf_counter() - t0
        batch = cfg.batch_size * cfg.negatives  # triplets a step: batch_size positives, each with its negatives
        n_batches = math.ceil(len(users) / batch)
        total = None
        refresh_every = default_refresh_every(n_batches, cfg.refreshes)
        bar = tqdm(range(n_batches), desc=f"epoch {self.epoch + 1}", leave=False, disable=not cfg.progress)
        for b in bar:
            sl = slice(b * batch, (b + 1) * batch)
            t0 = time.perf_counter()
            if self.sampled is not None and b % refresh_every == 0:  # the history, from this step's E⁽⁰⁾
                if self.reach is not None:  # the interval's reach first (reach.py)
                    self.reach.move(self.optimizer, self.average)
                self.sampled.refresh()
            loss, _, _ = self.model.bpr_loss(users[sl], pos[sl], neg[sl], cfg.reg, self.teacher, cfg.distill,
                                             sampled=self.sampled, rng=self.rng)
            sync(self.device)
            t1 = time.perf_counter()
            self.optimizer.zero_grad()
            loss.backward()
            if self.reach is not None:
                self.reach.accumulate(self.model.embedding.grad)
            sync(self.device)
            t2 = time.perf_counter()
            self.model.quantizer.before_step()
            self.optimizer.step(average=self.average)
            self.model.quantizer.after_step()
            sync(self.device)
            timings["forward"] += t1 - t0
            timings["backward"] += t2 - t1
            timings["optimizer"] += time.perf_counter() - t2
            total = loss.data if total is None else total + loss.data  # stays on the device
            if b % 20 == 0 or b == n_batches - 1:
                running = float(total) / (b + 1)
                bar.set_postfix(loss=f"{running:.4f}")
                if not math.isfinite(running):
                    raise NonFiniteLoss(f"loss became {running} at epoch {self.epoch + 1}, batch {b + 1}; "
                                        "try a smaller --lr; the last good checkpoint is kept")
        if self.reach is not None:  # before evaluation and the checkpoint, which then holds G = 0
            self.reach.move(self.optimizer, self.average)
        mean_loss = float(total) / n_batches
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(f"loss became {mean_loss} at epoch {self.epoch + 1}; "
                                "the last good checkpoint is kept")
        return mean_loss

    # ---- evaluation --------------------------------------------------------------------
    # ---- checkpoints -------------------------------------------------------------------
    # ---- "auto" warm-up: full precision until it converges ---------------------------------
    # ---- weight averaging (averaging.py) ------------------------------------------------------
    # ---- learning-rate drops on a plateau -------------------------------------------------
    # ---- the whole run -----------------------------------------------------------------
    def fit(self, on_eval=None) -> dict:
        """Train until every phase has converged (or a budget is spent); returns test metrics of
        the best checkpoint, the phases and the seconds spent."""
        cfg = self.config
        if self.comm.is_root:
            atomic_write_bytes(self._path("config.json"),
                               lambda f: f.write(json.dumps(_jsonable(asdict(cfg)), indent=2).encode()))
        metric = cfg.selection_metric
        quantizer = self.model.quantizer
        recall_metric = metric.replace("ndcg", "recall")
        if self._start_model is not None and cfg.bits != 32 and cfg.eval_every and self.reference_score is None:
            start = self._metrics(self.selection_split, self._start_model)  # the model it starts from, unquantized
            self.reference_score, self.reference_recall = start[metric], start[recall_metric]
        self._start_model = None  # (the teacher's z, if any, was taken at construction)
        while (ended_by := self._stop_reason()) is None:
            warmup = getattr(quantizer, "warmup", None)
            if self.average is not None and cfg.bits != 32 and isinstance(warmup, int) and self.epoch >= warmup \
                    and not quantizer.active:  # a fixed warm-up ends: the quantizer starts from the average
                self.model.embedding.data[...] = self.average.synced()
            quantizer.on_epoch_start(self.epoch)
            if self.average is not None and quantizer.active and cfg.bits != 32:
                self.average = None  # quantized: the phase trains (and is judged by) its own weights
            # a function of the schedule's state only, so a resumed run gets the same rate
            base = cfg.quant_lr if (cfg.quant_lr and quantizer.active and cfg.bits != 32) else cfg.lr
            self.optimizer.lr = base * 0.1 ** self.lr_drops_done
            if self.epoch == 0 and quantizer.active and cfg.bits != 32 and cfg.eval_every \
                    and self.best["score"] == -math.inf:  # a run that starts quantized (--init-from): its
                self._keep(self._evaluate_epoch(None, 0.0), on_eval)  # initial codes are epoch 0's candidate
            t0 = time.perf_counter()
            sent = self.comm.bytes_sent
            loss = self.train_epoch()
            phase = self.phase_bytes.setdefault(self._phase_name(), [0, 0])  # training steps' bytes, not evaluation's
            phase[0] += self.comm.bytes_sent - sent
            phase[1] += math.ceil(self.data.train.nnz / cfg.batch_size)
            train_seconds = time.perf_counter() - t0
            self.elapsed += train_seconds
            self.epoch += 1
            record = None
            if cfg.eval_every and (self.epoch % cfg.eval_every == 0 or self.epoch == cfg.epochs):
                record = self._evaluate_epoch(loss, train_seconds)
            self._keep(record, on_eval)
        self._end_phase(self._phase_name(), ended_by, self.best["epoch"] if cfg.eval_every else self.epoch)
        if not cfg.eval_every and self.average is not None:  # nothing evaluated: the average is the model
            self.model.embedding.data[...] = self.average.synced()
            self.average = None
        self.save("last.npz")  # the phase record travels with the state
        if not cfg.eval_every:  # nothing selected: the last epoch is the model, no split to test on
            result = {"best_epoch": self.epoch, "epochs_run": self.epoch, "selection_metric": None,
                      "phases": self.phases, "seconds": round(self.elapsed, 1)}
            self._write_result(result)
            return result
        if self.comm.bcast(os.path.exists(self._path("best.npz"))):
            self.load_weights(self._path("best.npz"))
        kept = {}
        if cfg.bits != 32 and self.reference_score:  # what quantization kept of full precision, on validation
            kept = {"full_precision_valid": self.reference_score, "quantized_valid": self.best["score"],
                    "valid_kept_ndcg": self.best["score"] / self.reference_score}
            if self.reference_recall and self.best.get("recall") is not None:
                kept["valid_kept_recall"] = self.best["recall"] / self.reference_recall
            kept["valid_kept"] = min(kept["valid_kept_ndcg"], kept.get("valid_kept_recall", math.inf))
        result = {"best_epoch": self.best["epoch"], "epochs_run": self.epoch,
                  "selection_metric": f"{self.selection_split} {metric}",
                  "phases": self.phases, "seconds": round(self.elapsed, 1), "propagation": self.propagation,
                  **self.recipe, **kept, **self._comm_record(),
                  **{f"test_{k}": v for k, v in self.evaluate("test").items()}}
        self._write_result(result)
        return result

    def _comm_record(self) -> dict:
        if self.comm.size == 1:
            return {}
        sent, steps = (sum(column) for column in zip(*self.phase_bytes.values())) if self.phase_bytes else (0, 0)
        return {"processes": self.comm.size,
                "bytes_sent_per_rank_per_step": round(sent / max(steps, 1), 1),
                **{f"bytes_sent_per_rank_per_step_{name}": round(sent / max(steps, 1), 1)
                   for name, (sent, steps) in self.phase_bytes.items()}}

