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
    try:
        return QUANTIZERS[name](bits, **options)
    except TypeError as exc:  # an option the quantizer does not take
        raise ValueError(f"quantizer {name!r}: {exc}") from None


from .bigear import BiGeaRQuantizer  # noqa: E402
from .gnaq import GNAQQuantizer  # noqa: E402
from .gnaq_official import OfficialGNAQQuantizer  # noqa: E402
from .lsq import LSQQuantizer  # noqa: E402
from .n2uq import N2UQQuantizer  # noqa: E402
from .pq import PQQuantizer  # noqa: E402
from .ste import STEQuantizer  # noqa: E402

QUANTIZERS.update({"gnaq": GNAQQuantizer, "gnaq-official": OfficialGNAQQuantizer, "ste": STEQuantizer, "lsq": LSQQuantizer,
                   "n2uq": N2UQQuantizer, "bigear": BiGeaRQuantizer, "pq": PQQuantizer})

__all__ = ["FullPrecision", "Quantizer", "make_quantizer", "QUANTIZERS", "SUPPORTED_BITS"]
