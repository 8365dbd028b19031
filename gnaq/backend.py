"""The one place that knows about devices: numpy/scipy on the CPU, cupy/cupyx on CUDA.

Everything else asks this module for its array module (``xp``) and sparse module (``sp``)::

    xp = get_array_module(x)        # numpy or cupy, whichever owns x
    sp = get_sparse_module(A)       # scipy.sparse or cupyx.scipy.sparse

cupy is optional: without it (or without a CUDA device) asking for ``cuda`` raises
:class:`DeviceUnavailable` with a message naming what is missing.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

DEVICES = ("cpu", "cuda", "auto")


class DeviceUnavailable(RuntimeError):
    """Raised when ``cuda`` is asked for and cupy or a CUDA device is missing."""


def _import_cupy():
    """Return the cupy module, or raise DeviceUnavailable saying why it cannot be used."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceUnavailable(
            "device 'cuda' needs cupy, which is not installed "
            "(pip install cupy-cuda12x, or gnaq[gpu])") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # cupy raises its own CUDARuntimeError when no driver is found
        raise DeviceUnavailable(f"device 'cuda': cupy is installed but CUDA is unusable ({exc})") from exc
    if count < 1:
        raise DeviceUnavailable("device 'cuda': cupy is installed but no CUDA device was found")
    return cupy


def cuda_available() -> bool:
    """True when cupy imports and sees at least one CUDA device."""
    try:
        _import_cupy()
    except DeviceUnavailable:
        return False
    return True


def resolve_device(name: str) -> str:
    """Map ``cpu | cuda | auto`` to a concrete device, ``cpu`` or ``cuda``.

    ``auto`` picks cuda when usable, else cpu. ``cuda`` without a usable GPU raises
    DeviceUnavailable.
    """
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    if name == "auto":
        return "cuda" if cuda_available() else "cpu"
    _import_cupy()
    return "cuda"


def array_module(device: str):
    """numpy for ``cpu``, cupy for ``cuda``."""
    return _import_cupy() if device == "cuda" else np


def sparse_module(device: str):
    """scipy.sparse for ``cpu``, cupyx.scipy.sparse for ``cuda``."""
    if device == "cuda":
        _import_cupy()
        import cupyx.scipy.sparse
        return cupyx.scipy.sparse
    return scipy.sparse


def is_cupy_array(x) -> bool:
    """True if x is a cupy ndarray or cupyx sparse matrix (checked without importing cupy)."""
    return type(x).__module__.split(".")[0] in ("cupy", "cupyx")


def get_array_module(*arrays):
    """numpy or cupy, whichever owns the arrays (cupy if any of them is on the GPU)."""
    for a in arrays:
        if is_cupy_array(a):
            import cupy
            return cupy
    return np


def get_sparse_module(matrix):
    """scipy.sparse or cupyx.scipy.sparse, whichever owns the matrix."""
    if is_cupy_array(matrix):
        import cupyx.scipy.sparse
        return cupyx.scipy.sparse
    return scipy.sparse


def device_of(x) -> str:
    """``cuda`` if x lives on the GPU, else ``cpu``."""
    return "cuda" if is_cupy_array(x) else "cpu"


def to_device(x, device: str):
    """Move a dense array or a CSR matrix to ``cpu`` or ``cuda`` (no copy if already there)."""
    if device == "cpu":
        return to_numpy(x)
    cupy = _import_cupy()
    if is_cupy_array(x):
        return x
    if scipy.sparse.issparse(x):
        import cupyx.scipy.sparse
        return cupyx.scipy.sparse.csr_matrix(x.tocsr())
    return cupy.asarray(x)


def to_numpy(x):
    """A host copy of x: numpy array or scipy CSR (x itself when already on the host)."""
    if not is_cupy_array(x):
        return x
    return x.get()  # cupy ndarray -> numpy, cupyx sparse -> scipy sparse


def synchronize(device: str) -> None:
    """Wait for queued GPU work (for honest timings); no-op on the CPU."""
    if device == "cuda":
        import cupy
        cupy.cuda.get_current_stream().synchronize()
