"""A small reverse-mode autograd over numpy/cupy arrays and scipy/cupyx sparse matrices."""

from .tensor import (RowSparse, Tensor, as_tensor, get_default_dtype, is_grad_enabled, no_grad,
                     set_default_dtype)
from .ops import (add, bpr_margin, clip, concat, custom_op, div, exp, gather, log, log_sigmoid, matmul,
                  mean, mul, neg, power, reshape, sampled_rows, sigmoid, softplus, spmm, propagate, stack, sub, sum,
                  tanh, unbroadcast, where)

__all__ = [
    "Tensor", "RowSparse", "as_tensor", "get_default_dtype", "set_default_dtype", "no_grad", "is_grad_enabled",
    "add", "bpr_margin", "sub", "mul", "div", "neg", "power", "matmul", "spmm", "propagate", "gather",
    "sampled_rows", "concat", "stack",
    "reshape", "sum", "mean", "exp", "log", "sigmoid", "tanh", "softplus", "log_sigmoid",
    "where", "clip", "custom_op", "unbroadcast",
]
