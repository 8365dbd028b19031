"""The evaluation mixin of the Trainer: validation on the selection split (a fixed user sample with
--valid-users), test at the end, and the weight average swapped in for what is evaluated."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..averaging import EmbeddingAverage
from ..metrics import evaluate

log = logging.getLogger("gnaq.train")


class EvaluationMixin:
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
