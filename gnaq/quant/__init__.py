"""Quantizers: one per file behind gnaq.quant.base.Quantizer, picked by name and bit width."""

from .base import FullPrecision, Quantizer

SUPPORTED_BITS = (1, 2, 3, 4, 8, 32)
QUANTIZERS = {}


def make_quantizer(name: str, bits: int, **options) -> Quantizer:
    """The quantizer ``name`` at ``bits``; ``bits = 32`` is full precision whatever the name."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    if bits == 32:
        return FullPrecision()
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; choose from {tuple(QUANTIZERS)}")
    return QUANTIZERS[name](bits, **options)


QUANTIZERS["gnaq"] = None  # filled in below as quantizer modules are imported

__all__ = ["FullPrecision", "Quantizer", "make_quantizer", "QUANTIZERS", "SUPPORTED_BITS"]
