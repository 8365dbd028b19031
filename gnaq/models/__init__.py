"""Models: LightGCN (full precision or with any gnaq.quant quantizer)."""

from .lightgcn import LightGCN

__all__ = ["LightGCN"]
