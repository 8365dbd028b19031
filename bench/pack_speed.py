"""Pack/unpack throughput of b-bit codes: numba kernels, the numpy fallback and the pure-Python
edge path, on a MovieLens-1M-sized (9,746 × 64) and a 1M-row (× 64) table, as GB/s of output
bytes, with the ratio to a numpy memory copy of the same number of bytes (the limit).

    python bench/pack_speed.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import best_time, markdown_table  # noqa: E402


def python_unpack(packed_bytes, n, dim, bits):
    """The edge module's pure-Python row decoding (int.from_bytes + shifts), whole table."""
    rb = -(-dim * bits // 8)
    mask = (1 << bits) - 1
    out = []
    for i in range(n):
        stream = int.from_bytes(packed_bytes[i * rb:(i + 1) * rb], "little")
        out.append([(stream >> (k * bits)) & mask for k in range(dim)])
    return out


def main():
    from gnaq.pack import HAVE_NUMBA, pack, unpack
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    impls = ["numpy"] + (["numba"] if HAVE_NUMBA else [])
    for label, n in (("ml-1m 9,746 x 64", 9746), ("1M x 64", 1_000_000)):
        for bits in (1, 2, 4, 8, 3):
            codes = np.random.default_rng(bits).integers(0, 2 ** bits, size=(n, 64), dtype=np.uint8)
            packed = pack(codes, bits, "numpy")
            for what, out_bytes, src in (("pack", packed.nbytes, codes), ("unpack", codes.nbytes, packed)):
                dst = np.empty(out_bytes, dtype=np.uint8)
                copy_src = np.ones(out_bytes, dtype=np.uint8)
                copy = best_time(lambda: np.copyto(dst, copy_src), args.repeat)
                for impl in impls:
                    fn = (lambda: pack(codes, bits, impl)) if what == "pack" else (lambda: unpack(packed, bits, 64, impl))
                    t = best_time(fn, args.repeat)
                    rows.append([label, bits, what, impl, f"{out_bytes / t / 1e9:.2f}", f"{copy / t:.3f}"])
                if what == "unpack" and n < 100_000:
                    blob = packed.tobytes()
                    t0 = time.perf_counter()
                    python_unpack(blob, n, 64, bits)
                    t = time.perf_counter() - t0
                    rows.append([label, bits, what, "pure python", f"{out_bytes / t / 1e9:.4f}", f"{copy / t:.5f}"])
    print(markdown_table(["table", "bits", "op", "implementation", "GB/s (output)", "vs numpy copy"], rows))


if __name__ == "__main__":
    main()
