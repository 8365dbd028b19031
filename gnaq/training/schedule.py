"""The schedule's mixin of the Trainer: which phase a run is in, when it ends (patience, epoch or time
budget), the "auto" warm-up's state machine, learning-rate drops, and keeping the best epoch."""

from __future__ import annotations

import json
import logging

from ..optim import Adam

log = logging.getLogger("gnaq.train")


class ScheduleMixin:
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

    def _drop_lr(self) -> None:
        """Validation stopped improving: continue from the best epoch at a tenth of the rate, with
        a fresh Adam (its moments belong to the discarded epochs). Sets the patience count back."""
        self.load_weights(self._path("best.npz"))
        self.optimizer = Adam(self.model.parameters(), lr=self.optimizer.lr)
        self.lr_drops_done += 1
        self.bad_evals = 0
        log.info("no gain for %d evaluations: back to epoch %d, learning rate ÷ 10 (drop %d of %d)",
                 self.config.patience, self.best["epoch"], self.lr_drops_done, self.config.lr_drops)

    def _keep(self, record, on_eval) -> None:
        """last.npz, then the record's metrics.jsonl line (so a resumed run never repeats a line)."""
        self.save("last.npz")
        if record is not None and self.comm.is_root:
            with open(self._path("metrics.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
            if on_eval:
                on_eval(record)
