"""``--init-from``: E⁽⁰⁾ of a trained model, checked against this run before it is used."""

from __future__ import annotations

import os

import numpy as np

from ..checkpoint import load_checkpoint


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
            raise ValueError(f"--init-from {path}: trained with {key}={saved[key]!r}, "
                             f"this run has {getattr(cfg, key)!r}")
    if "graph" in meta and meta["graph"] != trainer.fingerprint:
        raise ValueError(f"--init-from {path}: trained on another graph (fingerprint {meta['graph']}, "
                         f"this run's {trainer.fingerprint})")
    return embedding
