"""Quantizers: one per file behind gnaq.quant.base.Quantizer."""

from .base import FullPrecision, Quantizer

__all__ = ["FullPrecision", "Quantizer"]
