"""Parsers for the on-disk formats. Each returns raw (user, item) id arrays.

- MovieLens ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp`` per line.
- LightGCN split files (``train.txt``/``valid.txt``/``test.txt``): ``user item item ...`` per
  line, 0-based ids; a line with a user and no items is allowed (a user with nothing there).

A malformed line raises DataError naming the file, the line number and the line.
"""

from __future__ import annotations

import os

import numpy as np

from .interactions import DataError


def _bad_line(path, number, line, why):
    return DataError(f"{path}, line {number}: {why}: {line.rstrip()[:120]!r}")


def read_ratings_dat(path, min_rating: float | None = None):
    """Parse ratings.dat into raw (users, items) int64 arrays; keep rating ≥ min_rating if given."""
    users, items = [], []
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split("::")
            if len(parts) != 4:
                raise _bad_line(path, number, line, "expected UserID::MovieID::Rating::Timestamp")
            try:
                user, item, rating = int(parts[0]), int(parts[1]), float(parts[2])
                int(parts[3])
            except ValueError:
                raise _bad_line(path, number, line, "non-numeric field") from None
            if min_rating is None or rating >= min_rating:
                users.append(user)
                items.append(item)
    if not users:
        raise DataError(f"{path}: no ratings found (empty file, or none at or above the threshold)")
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)


def read_lightgcn_file(path):
    """Parse a LightGCN split file into (users, items) int64 arrays of 0-based ids."""
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: file is empty")
    users, items = [], []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ids = [int(tok) for tok in line.split()]
            except ValueError:
                raise _bad_line(path, number, line, "ids must be integers") from None
            if min(ids) < 0:
                raise _bad_line(path, number, line, "ids must be non-negative")
            users.extend([ids[0]] * (len(ids) - 1))
            items.extend(ids[1:])
    return np.array(users, dtype=np.int64), np.array(items, dtype=np.int64)
