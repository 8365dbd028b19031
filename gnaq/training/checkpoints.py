"""The run folder's checkpoints, a mixin of the Trainer: last.npz (the whole state, written
atomically after every epoch), best.npz, result.json, and an exact resume from them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np

from ..averaging import EmbeddingAverage
from ..checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint

# what a checkpoint holds per column of E⁽⁰⁾: gathered when saved, sliced when read under mpiexec
# (the embedding is the optimizer's first parameter, so its moments are m0, v0)
SLICED_ARRAYS = ("model.embedding", "optim.m0", "optim.v0", "average.average", "reach.second_moment")


class CheckpointMixin:
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
        warmup = getattr(self.model.quantizer, "warmup", None)
        if not (self.average is not None and isinstance(warmup, int) and self.epoch == warmup):
            self.model.quantizer.on_epoch_start(self.epoch)  # re-enter a schedule (warm-up) where it was
        # (at a fixed warm-up's end with a weight average, fit's loop starts the quantizer from the average,
        # as the uninterrupted run does: starting it here would initialise it from the raw weights)

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

    def _write_result(self, result: dict) -> None:
        if self.comm.is_root:
            atomic_write_bytes(self._path("result.json"), lambda f: f.write(json.dumps(result, indent=2).encode()))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
