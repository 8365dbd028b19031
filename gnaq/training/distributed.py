"""What feature-sliced training under mpiexec takes (gnaq.comm slices the columns)."""

from __future__ import annotations

from ..backend import resolve_device
from .config import TrainConfig


def check_sliced(config: TrainConfig, comm) -> None:
    """What feature-sliced training (mpiexec, W > 1) takes today; one clear line otherwise."""
    if config.distill:
        raise ValueError(f"--distill is not supported under mpiexec ({comm.size} processes) yet")
    if config.device not in ("cpu", "auto") or resolve_device(config.device) != "cpu":
        raise ValueError(f"under mpiexec ({comm.size} processes) gnaq trains on the CPU so far (--device cpu); "
                         "NCCL for one GPU a rank is not built")
