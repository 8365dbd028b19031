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
Adam); ``"auto"`` samples wherever the quantizer allows it (sampled.resolve_propagation).

``average`` β (averaging.py): while the run trains in full precision, what it evaluates, keeps as
best and exports is the moving average ā ← β ā + (1 − β) E⁽⁰⁾ over steps, not the last step's
table; last.npz holds both. Default: β = SAMPLED_AVERAGE with sampled propagation (its walks'
gradient noise), off on the full graph. The quantized phase starts from the best average and
trains its own weights.

Modules, one job each: config (TrainConfig, its presets and checks), loop (the Trainer: set-up, epochs,
``fit``), schedule (phases, warm-up, learning-rate drops, budgets), evaluation (validation, selection,
the weight average), checkpoints (the run folder: save, restore, resume), distributed (what runs
under mpiexec), warm_start (``--init-from``).
"""

from .config import DEPLOYMENT_OPTIONS, SAMPLED_AVERAGE, TrainConfig
from .loop import NonFiniteLoss, Trainer

__all__ = ["DEPLOYMENT_OPTIONS", "SAMPLED_AVERAGE", "NonFiniteLoss", "TrainConfig", "Trainer"]
