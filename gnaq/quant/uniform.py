"""The mid-rise symmetric uniform quantizer every method shares, and its estimators.

For b bits and a scale s (broadcast per row or per tensor):

    q    = clip(⌊x / s⌋, −2^(b−1), 2^(b−1) − 1)     integer level
    x̂    = s · (q + ½)                               dequantized value (b = 1: ±s/2 = (s/2)·sign x)
    code = q + 2^(b−1) ∈ [0, 2^b)                    what is stored

Backward of :func:`fake_quantize` (``in`` = 1[−2^(b−1) ≤ x/s < 2^(b−1)], all elementwise):

    ∂L/∂x = ∂L/∂x̂ · in · (1 + δ · tanh(r̄ / s))        r̄ = Â (x − x̂) given, else δ-term absent
    ∂L/∂s = g_s · Σ_over_broadcast ∂L/∂x̂ · ((q + ½) − in · x / s)      (LSQ, Esser et al. 2020)

δ = 0 is the straight-through estimator. g_s is LSQ's gradient scale 1/√(n_shared · 2^(b−1)).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import autograd as ag
from ..autograd.ops import unbroadcast
from ..backend import get_array_module
from ..spmm import HAVE_NUMBA

if HAVE_NUMBA:
    from numba import njit, prange

    @njit(parallel=True, cache=True)
    def _quantize_rows_numba(x, s, half, q, out):  # pragma: no cover - jitted
        per_row = s.shape[0] > 1
        for i in prange(x.shape[0]):
            si = s[i, 0] if per_row else s[0, 0]
            for k in range(x.shape[1]):
                level = min(max(np.floor(x[i, k] / si), -half), half - 1)
                q[i, k] = level
                out[i, k] = si * (level + 0.5)

    @njit(parallel=True, cache=True)
    def _quantize_vjp_rows_numba(g, x, s, q, half, gx, gs_rows):  # pragma: no cover - jitted
        per_row = s.shape[0] > 1
        for i in prange(x.shape[0]):
            si = s[i, 0] if per_row else s[0, 0]
            acc = 0.0
            for k in range(x.shape[1]):
                ratio = x[i, k] / si
                inside = 1.0 if (ratio >= -half) and (ratio < half) else 0.0
                gx[i, k] = g[i, k] * inside
                acc += g[i, k] * ((q[i, k] + 0.5) - inside * ratio)
            gs_rows[i] = acc


def _numba_ok(x, s, bits=1) -> bool:
    """The fused CPU kernels handle numpy (N, d) x with (N, 1) or (1, 1) scales of x's dtype, one width."""
    return (HAVE_NUMBA and np.ndim(bits) == 0 and type(x) is np.ndarray and x.ndim == 2 and np.ndim(s) == 2
            and np.shape(s)[1] == 1 and np.shape(s)[0] in (1, x.shape[0]) and x.flags.c_contiguous)

# Max (1960): MSE-optimal uniform step for a unit Gaussian, b = 1..4 (mid-rise levels)
MAX_GAUSSIAN_STEP = {1: 1.596, 2: 0.996, 3: 0.586, 4: 0.335}


@functools.lru_cache(maxsize=None)
def optimal_step(bits: int) -> float:
    """Step Δ_b minimising E[(x − x̂)²] for x ~ N(0, 1) under the mid-rise b-bit quantizer.

    Found numerically once (quadrature on a fine grid + bounded scalar minimisation); for
    b ≤ 4 it reproduces Max's table to 3 decimals.
    """
    from scipy.optimize import minimize_scalar
    x = np.linspace(-9, 9, 400_001)
    density = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    dx = x[1] - x[0]
    half = 2 ** (bits - 1)

    def mse(step):
        q = np.clip(np.floor(x / step), -half, half - 1)
        return float(((x - step * (q + 0.5)) ** 2 * density).sum() * dx)
    upper = 4.0 / half
    return float(minimize_scalar(mse, bounds=(1e-4, upper), method="bounded",
                                 options={"xatol": 1e-7}).x)


def levels(x, s, bits: int):
    """Integer levels q = clip(⌊x/s⌋, −2^(b−1), 2^(b−1) − 1) (as x's float dtype)."""
    return quantize_forward(x, s, bits)[0]


def quantize_forward(x, s, bits):
    """(q, x̂ = s·(q + ½)); one fused pass with numba on the CPU, numpy/cupy otherwise.

    bits: one width, or an (N, 1) array of widths per row (mixed precision; numpy/cupy path)."""
    half = 2.0 ** (bits - 1) if np.ndim(bits) else 2 ** (bits - 1)
    if _numba_ok(x, s, bits):
        q, out = np.empty_like(x), np.empty_like(x)
        _quantize_rows_numba(x, np.asarray(s, dtype=x.dtype), float(half), q, out)
        return q, out
    xp = get_array_module(x)
    q = xp.clip(xp.floor(x / s), -half, half - 1)
    return q, s * (q + 0.5)


def codes_of(q, bits):
    """Stored codes q + 2^(b−1) as uint8 (bits: a width or an (N, 1) array of widths)."""
    return (q + 2 ** (bits - 1)).astype(np.uint8)


def row_rms(x):
    """σₙ = sqrt(mean_k xₙₖ²) per row, (N, 1), floored away from 0."""
    xp = get_array_module(x)
    return xp.maximum(xp.sqrt((x * x).mean(axis=1, keepdims=True)), 1e-8)


def quantize_vjp(g, x, s, q, bits, grad_scale, r_bar=None, delta=0.0):
    """Closed-form (∂L/∂x, ∂L/∂s) of the module docstring; s has x's shape or broadcasts to it."""
    xp = get_array_module(x)
    half = 2.0 ** (bits - 1) if np.ndim(bits) else 2 ** (bits - 1)
    if _numba_ok(x, s, bits) and not (r_bar is not None and delta) and g.flags.c_contiguous:
        gx, gs_rows = np.empty_like(x), np.empty(x.shape[0], dtype=x.dtype)
        _quantize_vjp_rows_numba(g, x, np.asarray(s, dtype=x.dtype), q, float(half), gx, gs_rows)
        gs = gs_rows.reshape(-1, 1) if np.shape(s)[0] > 1 else gs_rows.sum().reshape(1, 1)
        return gx, gs * grad_scale
    ratio = x / s
    inside = (ratio >= -half) & (ratio < half)
    gx = g * inside
    if r_bar is not None and delta:
        gx = gx * (1 + delta * xp.tanh(r_bar / s))
    gs = g * ((q + 0.5) - inside * ratio)
    return gx, unbroadcast(gs, np.shape(s)) * grad_scale


def fake_quantize(x, s, bits: int, grad_scale: float = 1.0, r_bar=None, delta: float = 0.0,
                  learn_scale: bool = True):
    """x̂ = s·(q + ½) as an autograd op with the hand-written backward above.

    x: Tensor (N, d); s: Tensor broadcastable to x ((N, 1) per node or (1, 1) per tensor).
    ``r_bar`` (array like x) enables the graph-relational term with weight ``delta``.
    """
    x, s = ag.as_tensor(x), ag.as_tensor(s)
    q, out = quantize_forward(x.data, s.data, bits)

    def vjp(g):
        gx, gs = quantize_vjp(g, x.data, s.data, q, bits, grad_scale, r_bar, delta)
        return gx, (gs if learn_scale else None)
    return ag.custom_op([x, s], out, vjp)
