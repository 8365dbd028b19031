"""The training loop behind ``python -m gnaq.train``: epochs of BPR, evaluation, early
stopping, checkpoints and exact resume. The CLI parses arguments; this module does the work.

Run folder layout:
    config.json      the resolved configuration
    metrics.jsonl    one JSON line per evaluation (epoch, loss, metrics, seconds)
    last.npz         state after the last completed epoch (parameters, Adam, RNG, counters)
    best.npz         parameters at the best validation NDCG@20
    result.json      final test metrics of the best checkpoint, and what ended each phase

The schedule: phases that end by convergence, under budgets that only guard against runaway
runs. A quantized gnaq run has two phases — full precision ("auto" warm-up) until validation
NDCG@20 has not improved for ``warmup_patience`` evaluations, then the quantizer until it has not
improved for ``patience`` evaluations (after ``lr_drops`` drops) — and a full-precision run or one
started ``--init-from`` a trained model has one. ``epochs`` (default 1000) and ``time_budget``
(seconds of training and evaluation, summed over resumes) bound the whole run; the warm-up may use
at most half of either, so the quantizer always gets the other half. Each phase records its first
and last epoch and what ended it: "patience", "epoch budget" or "time budget".

A step propagates the whole graph (``propagation="full"``: an epoch costs O(nnz²·d/B)) or only its
batch's rows (``"sampled"``, gnaq/sampled.py: O(nnz·S·L·d) an epoch, row-sparse gradients, lazy
Adam); ``"auto"`` samples from SAMPLED_MIN_INTERACTIONS training interactions up.

``average`` β (averaging.py): while the run trains in full precision, what it evaluates, keeps as
best and exports is the moving average ā ← β ā + (1 − β) E⁽⁰⁾ over steps, not the last step's
table; last.npz holds both. Default: β = SAMPLED_AVERAGE with sampled propagation (its walks'
gradient noise), off on the full graph. The quantized phase starts from the best average and
trains its own weights.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .backend import resolve_device, synchronize, to_device
from .checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from .comm import column_slice, world
from .graph import graph_fingerprint, normalized_adjacency
from .metrics import evaluate
from .models import LightGCN
from .models.lightgcn import initial_table
from .models.whole import snapshot
from .optim import Adam
from .reach import REACH_SPLITS, DeferredReach, sampled_recipe
from .sampled import PROPAGATIONS, SampledPropagation, default_refresh_every, resolve_propagation
from .sampling import sample_bpr_epoch
from .averaging import EmbeddingAverage

log = logging.getLogger("gnaq.train")


class NonFiniteLoss(RuntimeError):
    pass


# what a checkpoint holds per column of E⁽⁰⁾: gathered when saved, sliced when read under mpiexec
# (the embedding is the optimizer's first parameter, so its moments are m0, v0)
SLICED_ARRAYS = ("model.embedding", "optim.m0", "optim.v0", "average.average", "reach.second_moment")
SAMPLED_AVERAGE = 0.998  # the default averaging decay with sampled propagation (bench/results/sampled_accuracy.md)
DEPLOYMENT_OPTIONS = {"quantize", "transform", "mix_share", "busy_share"}  # gnaq options that choose a deployment


@dataclass
class TrainConfig:
    dataset: str = "synthetic"
    data_dir: str | None = None
    merge_valid: bool = False
    bits: int = 32
    quantizer: str = "gnaq"
    quant_options: dict = field(default_factory=dict)
    dim: int = 64
    layers: int = 3
    epochs: int = 1000  # the overall budget: phases end by their patience long before it
    time_budget: float | None = None  # seconds of training + evaluation over the whole run (None: no limit)
    batch_size: int = 8192
    lr: float = 0.01
    quant_lr: float | None = None  # learning rate once the quantizer is active (None: lr)
    init_from: str | None = None  # a run folder or checkpoint: start from its E⁽⁰⁾ (no warm-up needed)
    distill: float = 0.0  # λ of score distillation from the --init-from model (its full-precision z)
    reg: float = 1e-4
    sampler: str = "users"  # BPR triplets per uniform user (LightGCN's), or per interaction
    negatives: int = 1  # negatives a positive (a batch holds batch_size positives, batch_size·negatives triplets)
    propagation: str = "auto"  # "full": the whole graph a step; "sampled": the batch's rows (sampled.py); auto: by size
    walks: int | None = None  # sampled: random walks a target row (None: reach.sampled_recipe's 0 with the reach)
    gradient_walks: int | None = None  # sampled: walks of each target its gradient reaches (None: all of them)
    walk_allocation: str = "occurrence"  # sampled: walks a distinct target: S·count, S ("target") or S·⌈√count⌉
    reach: float | None = None  # sampled, 0 walks: weight of the neighbours' gradient share (reach.py; None: 1)
    reach_split: str | None = None  # with the reach: "history" or "lightgcn" (reach.py; None: lightgcn)
    refreshes: int = 2  # sampled: history refreshes an epoch (one full propagation each)
    average: float | None = None  # EMA decay β of the evaluated weights (None: SAMPLED_AVERAGE if sampled, else off)
    topk: tuple = (10, 20)
    select: str | None = None  # early stopping's validation metric, "ndcg@K" with K in topk (None: ndcg@20, else the largest K)
    valid_users: int = 0  # validate on a fixed seeded sample of this many users (0: every user with validation items)
    eval_every: int = 1  # 0: no validation at all (a refit: the budget ends the run, the last epoch is the model)
    patience: int = 5
    warmup_patience: int | None = None  # the "auto" warm-up's own patience (None: patience)
    lr_drops: int = 0  # on a plateau: restore the best epoch, lr ÷ 10, fresh Adam — this many times, then stop
    seed: int = 2020
    device: str = "cpu"
    out: str = "runs/latest"
    export: str | None = None
    export_history: bool = True
    export_users: bool = True  # False: an item-only file (devices fold their user in); --size then sizes it
    export_gram: bool = True  # False: no items' Gram matrix in the file (a device computes it)
    export_entropy: bool = False  # True: a transform-coded file's rows Huffman coded (gnaq.entropy)
    progress: bool = True
    default_deployment: bool = False  # set when gnaq's default deployment filled the options in
    size: float | None = None  # a file this many times smaller than float32's (gnaq's file_ratio; picks bits)

    def __post_init__(self):
        below_a_bit = False  # --size leaves about a bit a value or less (ratios past ~27x at d = 64)
        if self.size and self.quantizer == "gnaq":  # --size: the bits a value it leaves, rounded up (d = dim)
            if self.bits == 32:  # the narrowest supported width at or above it, at least 2 (the widths'
                from .quant import SUPPORTED_BITS  # reference Δ_b; below it the average is fractional)
                needed = math.ceil(32 / self.size - 8 / self.dim)
                below_a_bit = needed < 2
                self.bits = min((b for b in SUPPORTED_BITS if max(needed, 2) <= b < 32), default=8)
            self.quant_options = {**self.quant_options, "file_ratio": self.size}
            if not self.export_users:  # the ratio is the item-only file's (item rows, no user rows)
                self.quant_options["file_rows"] = "items"
            if not self.export_gram:
                self.quant_options["file_gram"] = False
            if self.export_entropy:  # Huffman rows: sized to fill the packed rows' bytes (quant/gnaq.py)
                self.quant_options["file_entropy"] = True
        # gnaq's default schedule: full precision until it converges ("auto"), then quantize from
        # its best epoch; nothing to warm up when the run starts from a trained model
        self.quant_options = dict(self.quant_options)
        if self.quantizer in ("gnaq", "gnaq-official", "pq") and self.bits != 32 and not self.init_from:
            self.quant_options.setdefault("warmup", "auto")
        # gnaq's default deployment, the frontier's choice (bench/results/frontier-ml-1m.md): a graph-free
        # file, transform coded, the busiest 25% of users and items at bits + 1 a value (the average stays
        # at most bits), quantization-aware at 0.3·lr — unless any deployment option is given
        if self.quantizer == "gnaq" and self.bits != 32 and not DEPLOYMENT_OPTIONS & set(self.quant_options):
            self.default_deployment = True
            from .quant.axes import MAX_AXIS_BITS
            self.quant_options.update(quantize="z", transform="auto")
            if self.bits < MAX_AXIS_BITS:  # below a bit a value, 10% busy: the rest keep ~½ bit a value
                self.quant_options.update(busy_share=0.1 if below_a_bit else 0.25, busy_bits=self.bits + 1)
            if below_a_bit and not self.export_users:  # an item-only file that small: the 70% least-recommended
                self.quant_options.setdefault("idle_share", 0.7)  # items uncoded (idle-items-*-by.md)
            if self.quant_lr is None:
                self.quant_lr = 0.3 * self.lr
        # an item-only file stores no user row: the items' codes are trained against float users, as the
        # device's fold-in gives them (quant/gnaq.py rule 8; bench/results/item-frontier-ml-1m.md)
        if self.quantizer == "gnaq" and self.bits != 32 and not self.export_users \
                and self.quant_options.get("transform", "none") != "none":
            self.quant_options.setdefault("quantize_users", False)

    @property
    def selection_metric(self) -> str:
        """The validation metric that selects epochs and ends phases: --select, else NDCG@20 (the largest K without 20)."""
        return self.select or f"ndcg@{20 if 20 in self.topk else max(self.topk)}"

    def validate(self) -> None:
        from .quant import QUANTIZERS, SUPPORTED_BITS
        from .sampling import SAMPLERS
        checks = [
            (self.dim > 0, f"--dim must be positive, got {self.dim}"),
            (self.layers >= 0, f"--layers must be ≥ 0, got {self.layers}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.batch_size > 0, f"--batch-size must be positive, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (self.quant_lr is None or self.quant_lr > 0, f"--quant-lr must be positive, got {self.quant_lr}"),
            (self.reg >= 0, f"--reg must be ≥ 0, got {self.reg}"),
            (self.sampler in SAMPLERS, f"--sampler {self.sampler!r} unknown; choose from {SAMPLERS}"),
            (self.negatives >= 1, f"--negatives must be ≥ 1, got {self.negatives}"),
            (self.distill >= 0, f"--distill must be ≥ 0, got {self.distill}"),
            (not self.distill or self.init_from, "--distill needs --init-from (the teacher)"),
            (self.lr_drops >= 0, f"--lr-drops must be ≥ 0, got {self.lr_drops}"),
            (self.eval_every >= 0, f"--eval-every must be ≥ 0, got {self.eval_every}"),
            (self.valid_users >= 0, f"--valid-users must be ≥ 0, got {self.valid_users}"),
            (self.patience > 0, f"--patience must be positive, got {self.patience}"),
            (self.propagation in PROPAGATIONS, f"--propagation {self.propagation!r} unknown; choose from {PROPAGATIONS}"),
            (self.size is None or (self.size > 1 and self.quantizer == "gnaq"),
             f"--size must be a ratio above 1 (e.g. 16x) of the gnaq quantizer, got {self.size} with {self.quantizer}"),
            (self.walks is None or self.walks >= 0, f"--walks must be ≥ 0, got {self.walks}"),
            (self.gradient_walks is None or (self.walks or 0) >= self.gradient_walks >= 1,
             f"--gradient-walks {self.gradient_walks} must be in [1, --walks] (--walks {self.walks}; "
             "the default is no walks, the history estimator with --reach 1)"),
            (self.refreshes >= 1, f"--refreshes must be ≥ 1, got {self.refreshes}"),
            (self.reach is None or self.reach >= 0, f"--reach must be ≥ 0 (0: off), got {self.reach}"),
            (not self.reach or (not self.walks and self.propagation != "full"),
             f"--reach {self.reach} completes the history estimator: it needs --walks 0 and sampled propagation "
             f"(got --walks {self.walks}, --propagation {self.propagation})"),
            (self.reach_split is None or self.reach_split in REACH_SPLITS,
             f"--reach-split {self.reach_split!r} unknown; choose from {REACH_SPLITS}"),
            # "history" with the reach off is a valid explicit setting: the split then has nothing to split
            (self.reach_split in (None, "history") or (self.reach != 0 and not self.walks and self.propagation != "full"),
             f"--reach-split {self.reach_split} splits the deferred reach's gradient: it needs the reach on "
             f"(got --reach {self.reach}, --walks {self.walks}, --propagation {self.propagation})"),
            (self.average is None or 0 <= self.average < 1, f"--average must be in [0, 1) (0: off), got {self.average}"),
            (self.warmup_patience is None or self.warmup_patience > 0,
             f"--warmup-patience must be positive, got {self.warmup_patience}"),
            (self.time_budget is None or self.time_budget > 0, f"--time-budget must be positive, got {self.time_budget}"),
            (len(self.topk) > 0 and min(self.topk) > 0, f"--topk values must be positive, got {self.topk}"),
            (self.select is None or self.select in {f"ndcg@{k}" for k in self.topk},
             f"--select {self.select!r} must be ndcg@K with K one of --topk {list(self.topk)}"),
            (self.bits in SUPPORTED_BITS, f"--bits {self.bits} unsupported; choose from {SUPPORTED_BITS}"),
            (self.quantizer in QUANTIZERS, f"--quantizer {self.quantizer!r} unknown; choose from {tuple(QUANTIZERS)}"),
        ]
        warmup = self.quant_options.get("warmup", 0) if self.bits != 32 else 0
        if warmup != "auto":
            checks.append((isinstance(warmup, (int, float)) and warmup < self.epochs,
                           f"--epochs ({self.epochs}) must exceed the quantizer's warm-up ({warmup})"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        from .quant import make_quantizer
        make_quantizer(self.quantizer, self.bits, **self.quant_options)  # its options, before any data is read


class Trainer:
    def __init__(self, config: TrainConfig, data=None):
        from .data import load_dataset
        from .quant import make_quantizer
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
        self.propagation = resolve_propagation(config.propagation, d.train.nnz)
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
    def evaluate(self, split: str = "valid") -> dict:
        """Metrics on ``valid`` (train masked; ``valid_users`` > 0: on ``validation_users()``) or
        ``test`` (train ∪ valid masked, every user, with a progress bar)."""
        return self._metrics(split, self.model)

    def _metrics(self, split: str, model) -> dict:
        """``evaluate``'s metrics of any model over this run's data (the same users and masks)."""
        d = self.data
        target = d.valid if split == "valid" else d.test
        mask = d.train if split == "valid" or d.valid is None else (d.train + d.valid).tocsr()
        user_emb, item_emb = model.final_embeddings()
        selecting = split == self.selection_split and split == "valid"
        return evaluate(user_emb, item_emb, mask, target, ks=tuple(self.config.topk),
                        users=self.validation_users() if selecting else None,
                        progress=self.config.progress and split == "test")

    def validation_users(self):
        """The users validation ranks: None (all with validation items) or, with ``valid_users`` = n,
        a sorted sample of n of them drawn once from ``seed`` (the same in every epoch and on resume)."""
        n = self.config.valid_users
        if not n:
            return None
        if getattr(self, "_validation_users", None) is None:
            candidates = np.flatnonzero(np.diff(self.data.valid.indptr) > 0)
            rng = np.random.default_rng([self.config.seed, 1])  # its own stream: the sampler's RNG is untouched
            self._validation_users = np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
        return self._validation_users

    @property
    def selection_split(self) -> str:
        return "valid" if self.data.valid is not None else "test"

    # ---- checkpoints -------------------------------------------------------------------
    def _path(self, name):
        return os.path.join(self.config.out, name)

    def save(self, name: str = "last.npz") -> None:
        """Write the state (rank 0 under mpiexec, after gathering every rank's columns: a checkpoint
        does not depend on the number of processes)."""
        arrays = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        arrays.update({f"optim.{k}": v for k, v in self.optimizer.state_dict().items() if k != "t"})
        average_t = None
        if self.average is not None and name == "last.npz":  # best files hold the weights evaluated alone
            state = self.average.state_dict()
            arrays["average.average"], average_t = state["average"], int(state["t"])
        if self.reach is not None and name == "last.npz":
            arrays.update({f"reach.{k}": v for k, v in self.reach.state_dict().items()})
        if self.comm.size > 1:
            arrays = {k: self.comm.allgather_columns(v) if k in SLICED_ARRAYS else v for k, v in arrays.items()}
        meta = {"epoch": self.epoch, "best": self.best, "bad_evals": self.bad_evals,
                "optim_t": self.optimizer.t, "rng": self.rng.bit_generator.state,
                "config": _jsonable(asdict(self.config)), "graph": self.fingerprint,
                "warmup_state": self.warmup_state, "warmup_end": getattr(self.model.quantizer, "warmup", None),
                "lr_drops_done": self.lr_drops_done, "elapsed": self.elapsed, "phases": self.phases,
                "reference_score": self.reference_score, "reference_recall": self.reference_recall,
                "average_t": average_t}
        if self.comm.is_root:
            save_checkpoint(self._path(name), arrays, meta)

    def _read(self, path):
        """A checkpoint's (arrays, meta), read by rank 0 and sent to every rank, each keeping its columns."""
        if self.comm.size == 1:
            return load_checkpoint(path)
        arrays, meta = self.comm.bcast(load_checkpoint(path) if self.comm.is_root else None)
        return {k: np.ascontiguousarray(v[:, self.columns]) if k in SLICED_ARRAYS else v
                for k, v in arrays.items()}, meta

    def restore(self, path) -> None:
        arrays, meta = self._read(path)
        self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        optim = {k[6:]: v for k, v in arrays.items() if k.startswith("optim.")}
        optim["t"] = meta["optim_t"]
        self.optimizer.load_state_dict(optim)
        if self.average is not None:  # a checkpoint without one (written before averaging): start it here
            if "average.average" in arrays and meta.get("average_t") is not None:
                self.average.load_state_dict({"average": arrays["average.average"], "t": meta["average_t"]})
            else:
                self.average = EmbeddingAverage(self.model.embedding, self.average_decay)
        if self.reach is not None:
            self.reach.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("reach.")})
        self.rng.bit_generator.state = meta["rng"]
        self.epoch, self.best, self.bad_evals = meta["epoch"], meta["best"], meta["bad_evals"]
        self.warmup_state = meta.get("warmup_state", self.warmup_state)
        self.lr_drops_done = meta.get("lr_drops_done", 0)
        self.elapsed, self.phases = meta.get("elapsed", 0.0), meta.get("phases", {})
        self.reference_score, self.reference_recall = meta.get("reference_score"), meta.get("reference_recall")
        if hasattr(self.model.quantizer, "warmup") and meta.get("warmup_end") is not None:
            self.model.quantizer.warmup = meta["warmup_end"]  # where an "auto" warm-up ended
        self.model.quantizer.on_epoch_start(self.epoch)  # re-enter a schedule (warm-up) where it was

    def resume_if_saved(self) -> bool:
        """Restore OUT/last.npz when this run's folder holds one (a run stopped part-way, or done);
        True when it did."""
        last = self._path("last.npz")
        if os.path.exists(last):
            self.restore(last)
            return True
        return False

    def load_weights(self, path) -> None:
        self._reloaded = True
        arrays, _ = self._read(path)
        self.model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})

    # ---- "auto" warm-up: full precision until it converges ---------------------------------
    def _track_warmup(self, score: float, recall: float = None) -> None:
        """During an "auto" warm-up (quantizer.warmup is None): keep the best full-precision
        epoch; once validation has not improved for ``warmup_patience`` evaluations (or half of
        the epoch or time budget is spent), restore it, reset Adam and let the quantizer start
        next epoch."""
        quantizer, cfg = self.model.quantizer, self.config
        if getattr(quantizer, "warmup", 0) is not None:
            return
        state = self.warmup_state
        if score > state["score"]:
            state.update(score=score, epoch=self.epoch, bad=0, recall=recall)
            self.save("best_fp32.npz")
        else:
            state["bad"] += 1
        patience = cfg.warmup_patience or cfg.patience
        ended_by = ("patience" if state["bad"] >= patience else
                    "epoch budget" if self.epoch >= cfg.epochs // 2 else
                    "time budget" if cfg.time_budget and self.elapsed >= cfg.time_budget / 2 else None)
        if ended_by:
            self.load_weights(self._path("best_fp32.npz"))
            self.optimizer = Adam(self.model.parameters(), lr=cfg.lr)
            quantizer.warmup = self.epoch  # on_epoch_start(self.epoch) initialises from the restored weights
            self._end_phase("full_precision", ended_by, state["epoch"])
            self.reference_score, self.reference_recall = state["score"], state.get("recall")
            log.info("full precision ended by its %s at epoch %d (best %d); quantizing from it",
                     ended_by, self.epoch, state["epoch"])

    def _phase_name(self) -> str:
        active = self.model.quantizer.active and self.config.bits != 32
        return "quantized" if active else "full_precision"

    def _end_phase(self, name: str, ended_by: str, best_epoch: int) -> None:
        warmup = getattr(self.model.quantizer, "warmup", None)
        if name == "quantized" and warmup and "full_precision" not in self.phases:  # a fixed warm-up
            self.phases["full_precision"] = {"first_epoch": 1, "last_epoch": warmup, "best_epoch": None,
                                             "ended_by": "fixed warm-up"}
        first = 1 + max((p["last_epoch"] for k, p in self.phases.items() if k != name), default=0)
        self.phases[name] = {"first_epoch": first, "last_epoch": self.epoch, "best_epoch": best_epoch,
                             "ended_by": ended_by}

    def _stop_reason(self):
        """Why the run stops now (None: it goes on)."""
        cfg = self.config
        if self.bad_evals >= cfg.patience:
            return "patience"
        if self.epoch >= cfg.epochs:
            return "epoch budget"
        if cfg.time_budget and self.elapsed >= cfg.time_budget:
            return "time budget"
        return None

    # ---- weight averaging (averaging.py) ------------------------------------------------------
    def _swap_in_average(self):
        """While averaging: put ā in E⁽⁰⁾'s place (evaluated, saved as best) and return the raw table."""
        if self.average is None:
            return None
        embedding = self.model.embedding
        raw, embedding.data = embedding.data, self.average.synced().copy()
        self._reloaded = False
        return raw

    def _swap_out_average(self, raw) -> None:
        """Back to the raw table — unless a checkpoint was loaded meanwhile (the warm-up ended, or a
        learning-rate drop went back to the best epoch): then training goes on from it, and a
        full-precision drop starts a fresh average there."""
        if raw is None:
            return
        if not self._reloaded:
            self.model.embedding.data = raw
        elif self.average is not None:
            warming_up = getattr(self.model.quantizer, "warmup", 0) is None or self.config.bits == 32
            self.average = EmbeddingAverage(self.model.embedding, self.average_decay) if warming_up else None

    # ---- learning-rate drops on a plateau -------------------------------------------------
    def _drop_lr(self) -> None:
        """Validation stopped improving: continue from the best epoch at a tenth of the rate, with
        a fresh Adam (its moments belong to the discarded epochs). Sets the patience count back."""
        self.load_weights(self._path("best.npz"))
        self.optimizer = Adam(self.model.parameters(), lr=self.optimizer.lr)
        self.lr_drops_done += 1
        self.bad_evals = 0
        log.info("no gain for %d evaluations: back to epoch %d, learning rate ÷ 10 (drop %d of %d)",
                 self.config.patience, self.best["epoch"], self.lr_drops_done, self.config.lr_drops)

    # ---- the whole run -----------------------------------------------------------------
    def _evaluate_epoch(self, loss, train_seconds: float) -> dict:
        """Evaluate on the selection split; a quantized epoch better than the best so far becomes best.npz
        (an epoch 0 is a run's initial codes, before any quantized step: post-training quantization, kept
        where no epoch of training beats it on validation — gowalla's 32x item-only preset). The record."""
        cfg, quantizer = self.config, self.model.quantizer
        metric = cfg.selection_metric
        recall_metric = metric.replace("ndcg", "recall")
        t1 = time.perf_counter()
        raw = self._swap_in_average()
        metrics = self.evaluate(self.selection_split)
        se = metrics.get(f"{metric}_se", 0.0)
        if metrics[metric] and se > 0.01 * metrics[metric] and not self._se_warned:
            self._se_warned = True
            self._notice("validation %s %.4f ± %.4f (standard error over %d users, %.1f%% of it): "
                        "differences below ~2 standard errors are noise%s", metric, metrics[metric], se,
                        metrics["users"], 100 * se / metrics[metric],
                        "; raise --valid-users" if cfg.valid_users else "")
        record = {"epoch": self.epoch, "loss": loss, "split": self.selection_split,
                  "quantized": bool(quantizer.active) and cfg.bits != 32, "lr": self.optimizer.lr,
                  **{k: v for k, v in metrics.items() if k != "users"}, "valid_users": metrics["users"],
                  "train_seconds": round(train_seconds, 3)}
        self.elapsed += time.perf_counter() - t1  # the warm-up's time budget sees this epoch whole
        if not quantizer.active:  # warm-up epochs are full precision: never selected
            self._track_warmup(metrics[metric], metrics[recall_metric])
        elif metrics[metric] > self.best["score"]:
            self.best = {"score": metrics[metric], "epoch": self.epoch, "recall": metrics[recall_metric]}
            self.bad_evals = 0
            self.save("best.npz")
        else:
            self.bad_evals += 1
            if self.bad_evals >= cfg.patience and self.lr_drops_done < cfg.lr_drops:
                self._drop_lr()
        self._swap_out_average(raw)
        record["eval_seconds"] = round(time.perf_counter() - t1, 3)
        return record

    def _keep(self, record, on_eval) -> None:
        """last.npz, then the record's metrics.jsonl line (so a resumed run never repeats a line)."""
        self.save("last.npz")
        if record is not None and self.comm.is_root:
            with open(self._path("metrics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            if on_eval:
                on_eval(record)

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

    def _write_result(self, result: dict) -> None:
        if self.comm.is_root:
            atomic_write_bytes(self._path("result.json"), lambda f: f.write(json.dumps(result, indent=2).encode()))


def check_sliced(config: TrainConfig, comm) -> None:
    """What feature-sliced training (mpiexec, W > 1) takes today; one clear line otherwise."""
    if config.distill:
        raise ValueError(f"--distill is not supported under mpiexec ({comm.size} processes) yet")
    if config.device not in ("cpu", "auto") or resolve_device(config.device) != "cpu":
        raise ValueError(f"under mpiexec ({comm.size} processes) gnaq trains on the CPU so far (--device cpu); "
                         "NCCL for one GPU a rank is not built")


def initial_embedding(path, trainer) -> np.ndarray:
    """E⁽⁰⁾ (N, d) of a trained model, for ``--init-from``: a run folder (its best.npz) or a .npz.

    Refuses, naming the path and the field, a checkpoint whose shape, dataset or training
    graph differs from this run's (the graph by the fingerprint saved with the checkpoint).
    """
    if os.path.isdir(path):
        path = os.path.join(path, "best.npz")
    if not os.path.isfile(path):
        raise ValueError(f"--init-from {path}: no such checkpoint")
    try:
        arrays, meta = load_checkpoint(path)
    except Exception as exc:  # a truncated or foreign file: one clear line
        raise ValueError(f"--init-from {path}: not a gnaq checkpoint ({exc})") from exc
    if "model.embedding" not in arrays:
        raise ValueError(f"--init-from {path}: no model.embedding in the checkpoint")
    embedding = arrays["model.embedding"]
    d, cfg = trainer.data, trainer.config
    expected = (d.n_users + d.n_items, cfg.dim)
    if embedding.shape != expected:
        raise ValueError(f"--init-from {path}: embedding shape {embedding.shape} does not match this run's "
                         f"{expected} (n_users + n_items, --dim)")
    saved = meta.get("config", {})
    for key in ("dataset", "merge_valid", "layers"):
        if key in saved and saved[key] != getattr(cfg, key):
            raise ValueError(f"--init-from {path}: trained with {key}={saved[key]!r}, this run has {getattr(cfg, key)!r}")
    if "graph" in meta and meta["graph"] != trainer.fingerprint:
        raise ValueError(f"--init-from {path}: trained on another graph (fingerprint {meta['graph']}, "
                         f"this run's {trainer.fingerprint})")
    return embedding


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
