"""TrainConfig: everything a training run is asked, with gnaq's presets and the checks a run makes
before it reads any data. The CLI (gnaq.train) and the library (gnaq.Recommender) build one each."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..reach import REACH_SPLITS
from ..sampled import PROPAGATIONS

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
    # early stopping's validation metric, "ndcg@K" with K in topk (None: ndcg@20, else the largest K)
    select: str | None = None
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
                from ..quant import SUPPORTED_BITS  # reference Δ_b; below it the average is fractional)
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
            from ..quant.axes import MAX_AXIS_BITS
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
        """The validation metric that selects epochs and ends phases: --select, else NDCG@20 (the largest K
        without 20)."""
        return self.select or f"ndcg@{20 if 20 in self.topk else max(self.topk)}"

    def validate(self) -> None:
        from ..quant import QUANTIZERS, SUPPORTED_BITS
        from ..sampling import SAMPLERS
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
            (self.propagation in PROPAGATIONS,
             f"--propagation {self.propagation!r} unknown; choose from {PROPAGATIONS}"),
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
            (self.reach_split in (None, "history")
             or (self.reach != 0 and not self.walks and self.propagation != "full"),
             f"--reach-split {self.reach_split} splits the deferred reach's gradient: it needs the reach on "
             f"(got --reach {self.reach}, --walks {self.walks}, --propagation {self.propagation})"),
            (self.average is None or 0 <= self.average < 1,
             f"--average must be in [0, 1) (0: off), got {self.average}"),
            (self.warmup_patience is None or self.warmup_patience > 0,
             f"--warmup-patience must be positive, got {self.warmup_patience}"),
            (self.time_budget is None or self.time_budget > 0,
             f"--time-budget must be positive, got {self.time_budget}"),
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
        from ..quant import make_quantizer
        make_quantizer(self.quantizer, self.bits, **self.quant_options)  # its options, before any data is read
