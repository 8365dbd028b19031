"""N2UQ baseline (Liu et al., CVPR 2022): learnable input thresholds, uniform output levels.

For b bits, n = 2^b − 1 thresholds T₁ < … < Tₙ shared by the whole z (per tensor):

    T = β + M·exp(ω),  M lower-triangular ones (n, n−1)   (β, ω learned: thresholds stay ordered)
    q(x) = Σₖ 1[x ≥ Tₖ] ∈ [0, n],   ẑ = s · (q − n/2)        s = exp(log_s) learned

so the stored code is q and ẑ = s·(code + ½ − 2^(b−1)), the shared level rule. Backward (its
generalized straight-through estimator) is the exact gradient of the piecewise-linear
relaxation, with ramp widths wₖ held constant:

    g(x) = Σₖ clip((x − Tₖ)/wₖ + ½, 0, 1)     ∂g/∂x = Σₖ 1[|x − Tₖ| < wₖ/2] / wₖ = −Σₖ ∂g/∂Tₖ
    wₖ = (Tₖ₊₁ − Tₖ₋₁)/2 inside, the neighbouring gap at the ends, s for b = 1
    ∂ẑ/∂s = q − n/2

Threshold and scale gradients are scaled by 1/√(N·d·2^(b−1)) as LSQ's are. Init: the
thresholds and step of the Gaussian-optimal uniform quantizer for z's RMS.
N2UQ's entropy regulariser for weights is not used (it targets weight distributions).
"""

from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..backend import get_array_module
from .base import Quantizer, weighted_sum
from .uniform import optimal_step


def ramp_widths(thresholds, scale):
    """wₖ for each threshold (n,), from the thresholds' own gaps (constants for the backward)."""
    xp = get_array_module(thresholds)
    n = thresholds.shape[0]
    if n == 1:
        return xp.asarray([float(scale)], dtype=thresholds.dtype)
    gaps = xp.diff(thresholds)
    widths = xp.empty_like(thresholds)
    widths[0], widths[-1] = gaps[0], gaps[-1]
    widths[1:-1] = 0.5 * (gaps[:-1] + gaps[1:])
    return widths


def threshold_levels(x, thresholds):
    """q = number of thresholds ≤ x, elementwise, via searchsorted on the sorted thresholds."""
    xp = get_array_module(x)
    return xp.searchsorted(thresholds, x.ravel(), side="right").reshape(x.shape).astype(x.dtype)


def relaxation(x, thresholds, widths):
    """g(x; T) = Σₖ clip((x − Tₖ)/wₖ + ½, 0, 1) (the smooth stand-in for q)."""
    xp = get_array_module(x)
    return xp.clip((x[..., None] - thresholds) / widths + 0.5, 0, 1).sum(axis=-1)


def n2uq_vjp(g, x, thresholds, widths, q, s, n, grad_scale):
    """(∂L/∂x, ∂L/∂T (n,), ∂L/∂s) of ẑ = s·(q − n/2) under the relaxation."""
    xp = get_array_module(x)
    gx = xp.zeros_like(x)
    g_thresholds = xp.empty_like(thresholds)
    for k in range(thresholds.shape[0]):  # n ≤ 255 thresholds; each pass is vectorised over x
        active = xp.abs(x - thresholds[k]) < 0.5 * widths[k]
        contribution = g * s * active / widths[k]
        gx += contribution
        g_thresholds[k] = -contribution.sum() * grad_scale
    gs = (g * (q - n / 2)).sum() * grad_scale
    return gx, g_thresholds, gs


class N2UQQuantizer(Quantizer):
    name = "n2uq"

    def __init__(self, bits: int):
        self.bits = bits
        self.n = 2 ** bits - 1

    def setup(self, model) -> None:
        super().setup(model)
        xp = model.xp
        with ag.no_grad():
            z = weighted_sum(model.layers(), model.layer_weights).data
        step = optimal_step(self.bits) * float(xp.sqrt((z * z).mean()))
        half = 2 ** (self.bits - 1)
        dtype = z.dtype
        self.beta = ag.Tensor(xp.full((1,), (1 - half) * step, dtype=dtype), requires_grad=True, name="beta")
        self.log_gaps = ag.Tensor(xp.full((max(self.n - 1, 1),), math.log(step), dtype=dtype),
                                  requires_grad=True, name="log_gaps")
        self.log_s = ag.Tensor(xp.full((1,), math.log(step), dtype=dtype), requires_grad=True, name="log_s")
        lower = np.tril(np.ones((self.n, max(self.n - 1, 1))), k=-1)
        if self.n == 1:
            lower[:] = 0
        self.cumulative = xp.asarray(lower, dtype=dtype)

    def parameters(self) -> list:
        return [self.beta, self.log_gaps, self.log_s]

    def thresholds(self):
        return self.beta + ag.matmul(ag.Tensor(self.cumulative), ag.exp(self.log_gaps))

    def quantize(self, z, thresholds, log_s, size: int | None = None):
        """ẑ of z (|T|, d) Tensor; ``size``: the values the thresholds' gradient is scaled for (default z's)."""
        s = ag.exp(log_s)
        T, scale = thresholds.data, s.data
        q = threshold_levels(z.data, T)
        widths = ramp_widths(T, float(scale[0]))
        grad_scale = 1.0 / math.sqrt((size or z.data.size) * 2 ** (self.bits - 1))
        out = scale * (q - self.n / 2)
        return ag.custom_op([z, thresholds, s], out,
                            lambda g: n2uq_vjp(g, z.data, T, widths, q, scale, self.n, grad_scale))

    def combine(self, layers):
        z = weighted_sum(layers, self.model.layer_weights)
        return self.quantize(z, self.thresholds(), self.log_s)

    row_local = True  # z's rows need only the learned thresholds and step (sampled training)

    def represent_rows(self, z_rows, rows):
        """ẑ_T, the thresholds' gradient scaled for the whole table's N·d values (as in ``combine``)."""
        model = self.model
        return self.quantize(z_rows, self.thresholds(), self.log_s,
                             size=(model.n_users + model.n_items) * z_rows.shape[1])

    def export(self) -> dict:
        z = self.combination()
        with ag.no_grad():
            T = self.thresholds().data
        s = self.model.xp.exp(self.log_s.data)
        return {"codes": threshold_levels(z, T).astype(np.uint8),
                "scales": self.model.xp.full((len(z), 1), float(s[0]), dtype=z.dtype)}
