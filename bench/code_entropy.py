"""Would entropy coding pay? The empirical entropy of a transform-coded file's code stream against
its fixed widths: per node group g and column k, H_gk = −Σ_c p(c) log₂ p(c) over the group's rows
(users and items together), and the bytes an ideal entropy coder (static per-column models, their
tables not counted) would need, Σ_g n_g·Σ_k H_gk / 8, against the packed Σ_g n_g·⌈Σ_k b_gk / 8⌉; the
same for the coded-scale bytes when the file has them.

    python bench/code_entropy.py FILE.gnaq [FILE.gnaq ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def entropy_bits(values) -> float:
    """−Σ p log₂ p of the empirical distribution of an integer array."""
    counts = np.bincount(np.asarray(values, dtype=np.int64))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def main():
    from gnaq import edge
    from gnaq.edge_numpy import unpack_columns
    for path in sys.argv[1:]:
        model = edge.load(path, "numpy")
        if not model.column_widths:
            print(f"{path}: not a transform-coded file (kind {model.kind!r})")
            continue
        sections = edge._read(path)[1]
        packed_bytes = ideal_bits = 0.0
        for side, n in (("user", model.n_users), ("item", model.n_items)):
            keys, starts = model._node_widths(sections, side, n, getattr(model, side + "_codes"))
            blob, keys, starts = np.frombuffer(getattr(model, side + "_codes"), dtype=np.uint8), np.asarray(keys), np.asarray(starts)
            for g, widths in enumerate(model.column_widths):
                rows = np.flatnonzero(keys == g)
                if not len(rows):
                    continue
                rb = model._layout(g)[2]
                codes = unpack_columns(blob[starts[rows][:, None] + np.arange(rb)], np.asarray(widths))
                packed_bytes += len(rows) * rb
                ideal_bits += len(rows) * sum(entropy_bits(codes[:, k]) for k, w in enumerate(widths) if w)
        line = (f"{path}: codes {packed_bytes:,.0f} B packed, {ideal_bits / 8:,.0f} B at their entropy "
                f"({1 - ideal_bits / 8 / packed_bytes:.1%} less)")
        if "scale_levels" in model.header:
            index = np.concatenate([np.frombuffer(bytes(sections[f"{s}_scale_index"]), dtype=np.uint8) for s in ("user", "item")])
            line += (f"; scales {len(index):,} B, {len(index) * entropy_bits(index) / 8:,.0f} B at their entropy "
                     f"({1 - entropy_bits(index) / 8:.1%} less)")
        print(line + f"; whole file {Path(path).stat().st_size:,} B")


if __name__ == "__main__":
    main()
