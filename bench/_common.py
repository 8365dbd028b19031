"""Helpers shared by the bench scripts: timing and locating the real datasets."""

from __future__ import annotations

import os
import time
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lightgcnpp"


def data_dir():
    """--data-dir for the benches: $GNAQ_DATA_DIR, else ../shared/datasets/lightgcnpp if present."""
    env = os.environ.get("GNAQ_DATA_DIR")
    if env:
        return env
    return str(SHARED_DATA) if SHARED_DATA.is_dir() else None


def best_time(fn, repeat: int = 5, warmup: int = 1) -> float:
    """Minimum wall time of fn() over `repeat` runs after `warmup` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(table: str, path=None) -> None:
    """Print a table and, given a path, write it there too."""
    print(table)
    if path:
        Path(path).write_text(table + "\n")


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (saying so) where matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        import sys
        print("matplotlib not installed (pip install -e \".[bench]\"): no plot", file=sys.stderr)
        return None
    return plt
