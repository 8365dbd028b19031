"""Quantizers: one per file behind gnaq.quant.base.Quantizer, picked by name and bit width."""

import inspect

from .base import FullPrecision, Quantizer

SUPPORTED_BITS = (1, 2, 3, 4, 8, 32)
QUANTIZERS = {}


def make_quantizer(name: str, bits: int, **options) -> Quantizer:
    """The quantizer ``name`` at ``bits``; ``bits = 32`` is full precision whatever the name."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; choose from {tuple(QUANTIZERS)}")
    if bits == 32:
        if options:
            raise ValueError(f"quantizer option {', '.join(sorted(options))} given at 32 bits: full precision "
                             "takes no quantizer options")
        return FullPrecision()
    check_options(name, options)
    return QUANTIZERS[name](bits, **options)


# options whose default is a number but which also take these words
_WORDS = {"warmup": ("auto",)}


def check_options(name: str, options: dict) -> None:
    """Refuse, naming it, an option quantizer ``name`` does not take or a value of the wrong kind
    (a word where its default is a number, a number where it is a word, anything but a bool for a flag)."""
    parameters = inspect.signature(QUANTIZERS[name].__init__).parameters
    valid = [p for p in parameters if p not in ("self", "bits")]
    for key, value in options.items():
        if key not in valid:
            raise ValueError(f"quantizer {name!r} has no option {key!r}; its options: {', '.join(valid)}")
        default = parameters[key].default
        if default is None or value in _WORDS.get(key, ()):
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = "true or false" if isinstance(default, bool) else (
                "a number" if isinstance(default, (int, float)) else f"a {type(default).__name__}")
            raise ValueError(f"quantizer option {key}={value!r}: expected {kind} (default {default!r})")


from .bigear import BiGeaRQuantizer  # noqa: E402
from .gnaq import GNAQQuantizer  # noqa: E402
from .gnaq_official import OfficialGNAQQuantizer  # noqa: E402
from .lsq import LSQQuantizer  # noqa: E402
from .n2uq import N2UQQuantizer  # noqa: E402
from .pq import PQQuantizer  # noqa: E402
from .ste import STEQuantizer  # noqa: E402

QUANTIZERS.update({"gnaq": GNAQQuantizer, "gnaq-official": OfficialGNAQQuantizer, "ste": STEQuantizer,
                   "lsq": LSQQuantizer, "n2uq": N2UQQuantizer, "bigear": BiGeaRQuantizer, "pq": PQQuantizer})

__all__ = ["FullPrecision", "Quantizer", "make_quantizer", "QUANTIZERS", "SUPPORTED_BITS"]
