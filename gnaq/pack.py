"""Bit-packing of b-bit codes into uint8 rows, b ∈ {1, 2, 3, 4, 8}.

Layout (rows independent, ⌈d·b/8⌉ bytes each): a row is one little-endian bitstream; code k
of the row occupies stream bits k·b … k·b + b − 1, its least significant bit first, and
stream bit p lives in byte p // 8 at bit p % 8. For b ∈ {1, 2, 4, 8} no code straddles a byte;
for b = 3 codes may. Unused high bits of the last byte are zero.

Two implementations with identical bytes, chosen in one place (:func:`set_pack_impl`):
``numba`` (row-parallel kernels with a 64-bit accumulator) and ``numpy`` (bits via shifts and
``np.packbits(bitorder="little")``, the oracle). gnaq.edge has a third, pure-Python reader.
"""

from __future__ import annotations

import numpy as np

from .spmm import HAVE_NUMBA

SUPPORTED_PACK_BITS = (1, 2, 3, 4, 8)
PACK_IMPLS = ("auto", "numba", "numpy")
_impl = {"name": "auto"}


def set_pack_impl(name: str) -> None:
    if name not in PACK_IMPLS:
        raise ValueError(f"unknown pack implementation {name!r}; expected one of {PACK_IMPLS}")
    if name == "numba" and not HAVE_NUMBA:
        raise RuntimeError("pack implementation 'numba' asked for, but numba is not installed")
    _impl["name"] = name


def row_bytes(dim: int, bits: int) -> int:
    """⌈dim·bits/8⌉."""
    return -(-dim * bits // 8)


def _check(codes, bits):
    if bits not in SUPPORTED_PACK_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_PACK_BITS}, got {bits}")
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D (n, d) array, got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= 2 ** bits):
        raise ValueError(f"codes must lie in [0, {2 ** bits}) for {bits} bits; "
                         f"got range [{codes.min()}, {codes.max()}]")
    return np.ascontiguousarray(codes, dtype=np.uint8)


def _resolve(impl):
    impl = impl or _impl["name"]
    if impl == "auto":
        return "numba" if HAVE_NUMBA else "numpy"
    if impl == "numba" and not HAVE_NUMBA:
        raise RuntimeError("pack implementation 'numba' asked for, but numba is not installed")
    return impl


# ---- numpy (oracle) ---------------------------------------------------------------------
def pack_numpy(codes, bits: int):
    n, d = codes.shape
    shifts = np.arange(bits, dtype=np.uint8)
    stream = ((codes[:, :, None] >> shifts) & 1).reshape(n, d * bits)
    return np.packbits(stream, axis=1, bitorder="little")


def unpack_numpy(packed, bits: int, dim: int):
    n = packed.shape[0]
    stream = np.unpackbits(packed, axis=1, bitorder="little")[:, : dim * bits].reshape(n, dim, bits)
    weights = (1 << np.arange(bits)).astype(np.uint8)
    return (stream * weights).sum(axis=2, dtype=np.uint16).astype(np.uint8)


def pack_columns(codes, widths):
    """(n, D) codes, column k in [0, 2^widths[k]) → (n, ⌈Σₖ widths[k]/8⌉) uint8: each row one LSB-first
    bitstream with column k at stream bits Σ_{k'<k} widths[k'] … (uniform widths b: ``pack(codes, b)``;
    a column at 0 bits takes no bits and its codes must be 0)."""
    codes, widths = np.asarray(codes), np.asarray(widths, dtype=np.int64)
    if codes.ndim != 2 or widths.shape != (codes.shape[1],) or (widths < 0).any() or (widths > 8).any():
        raise ValueError(f"need (n, D) codes and D widths in 0..8; got shapes {codes.shape} and {widths.shape}")
    if codes.size and ((codes < 0).any() or (codes >= 2 ** widths).any()):
        raise ValueError("codes must lie in [0, 2^widths[k]) in every column k")
    stream = np.concatenate([np.zeros((len(codes), 0), dtype=np.uint8)] + [
        (codes[:, k:k + 1].astype(np.uint8) >> np.arange(w, dtype=np.uint8)) & 1
        for k, w in enumerate(widths.tolist())],
        axis=1)
    return np.packbits(stream, axis=1, bitorder="little")


# ---- numba -------------------------------------------------------------------------------
if HAVE_NUMBA:
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def _pack_numba(codes, bits, out):  # pragma: no cover - jitted
        n, d = codes.shape
        width = out.shape[1]
        for i in prange(n):
            acc = np.uint64(0)
            filled = 0
            j = 0
            for k in range(d):
                acc |= np.uint64(codes[i, k]) << np.uint64(filled)
                filled += bits
                while filled >= 8:
                    out[i, j] = np.uint8(acc & np.uint64(255))
                    acc >>= np.uint64(8)
                    filled -= 8
                    j += 1
            if filled > 0 and j < width:
                out[i, j] = np.uint8(acc & np.uint64(255))

    @njit(parallel=True, cache=True)
    def _unpack_numba(packed, bits, dim, out):  # pragma: no cover - jitted
        n = packed.shape[0]
        mask = np.uint64((1 << bits) - 1)
        for i in prange(n):
            acc = np.uint64(0)
            available = 0
            j = 0
            for k in range(dim):
                while available < bits:
                    acc |= np.uint64(packed[i, j]) << np.uint64(available)
                    available += 8
                    j += 1
                out[i, k] = np.uint8(acc & mask)
                acc >>= np.uint64(bits)
                available -= bits


def pack(codes, bits: int, impl: str | None = None):
    """(n, d) codes in [0, 2^b) → (n, ⌈d·b/8⌉) uint8."""
    codes = _check(codes, bits)
    if _resolve(impl) == "numpy":
        return pack_numpy(codes, bits)
    out = np.zeros((codes.shape[0], row_bytes(codes.shape[1], bits)), dtype=np.uint8)
    _pack_numba(codes, bits, out)
    return out


def unpack(packed, bits: int, dim: int, impl: str | None = None):
    """(n, ⌈d·b/8⌉) uint8 → (n, d) uint8 codes."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    if bits not in SUPPORTED_PACK_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_PACK_BITS}, got {bits}")
    if packed.ndim != 2 or packed.shape[1] != row_bytes(dim, bits):
        raise ValueError(f"packed rows must have {row_bytes(dim, bits)} bytes for dim={dim}, bits={bits}; "
                         f"got shape {packed.shape}")
    if _resolve(impl) == "numpy":
        return unpack_numpy(packed, bits, dim)
    out = np.empty((packed.shape[0], dim), dtype=np.uint8)
    _unpack_numba(packed, bits, dim, out)
    return out
