"""Atomic ``.npz`` checkpoints: arrays plus a JSON blob of scalars, written via temp + rename."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from .backend import to_numpy


def atomic_write_bytes(path, write_fn) -> None:
    """Call write_fn(file) on a temp file beside path, fsync, then rename over path."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def save_checkpoint(path, arrays: dict, meta: dict) -> None:
    payload = {k: to_numpy(v) for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write_bytes(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path):
    """Return (arrays, meta)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
        meta = json.loads(npz["__meta__"].tobytes().decode())
    return arrays, meta
