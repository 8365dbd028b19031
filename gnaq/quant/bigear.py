"""BiGeaR baseline (Chen et al., KDD 2022): layer-wise binarization with per-node scales.

Every layer's embedding is binarized with its own per-node scale, and the representation is
the concatenation of the layer-wise codes (so BiGeaR stores L+1 code rows per node):

    Qₗ = αₗ ⊙ sign(E⁽ˡ⁾),  αₗₙ = ‖E⁽ˡ⁾ₙ‖₁ / d
    z  = [w₀ Q₀ ‖ w₁ Q₁ ‖ … ‖ w_L Q_L],  wₗ = 1/(L+1)      ŷᵤᵢ = Σₗ wₗ² αₗᵤ αₗᵢ ⟨sign, sign⟩

Gradient of sign: the derivative of its Fourier series on a period 2H (BiGeaR's estimator),

    sign(x) ≈ (4/π) Σ_{i odd ≤ 2m−1} sin(π i x / H) / i,   ∂/∂x ≈ (4/H) Σ_{i odd} cos(π i x / H)

with m = 4 terms and H = 3·RMS of the layer (no gradient). The gradient also flows through
αₙ = mean_k |xₙₖ| (∂α/∂xₖ = sign(xₖ)/d), so for one row

    ∂L/∂xⱼ = gⱼ αₙ F'(xⱼ) + sign(xⱼ)/d · Σₖ gₖ sign(xₖ)

the exact gradient, at x₀, of the surrogate α(x)·sign(x) + α(x₀)·F(x). Without the α term the Fourier derivative
(which oscillates around 0 away from x = 0) cannot grow the embeddings' magnitudes and BPR
stalls at log 2 (measured). BiGeaR's inference-time ranking distillation is not reproduced.

At b > 1 (BiGeaR is a 1-bit method) each layer uses the shared mid-rise b-bit quantizer with
per-node scale Δ_b·σ(E⁽ˡ⁾ₙ), differentiable in E through σ, and the STE/LSQ estimator.
"""

from __future__ import annotations

import math

from .. import autograd as ag
from ..backend import get_array_module
from .base import Quantizer
from .uniform import codes_of, fake_quantize, levels, optimal_step, row_rms

FOURIER_TERMS = 4


def fourier_sign(x, period_half, terms: int = FOURIER_TERMS):
    """(4/π) Σ_{i odd} sin(π i x / H) / i — the relaxation whose gradient is the estimator."""
    xp = get_array_module(x)
    return sum((4 / math.pi) * xp.sin(math.pi * i * x / period_half) / i for i in range(1, 2 * terms, 2))


def fourier_sign_grad(x, period_half, terms: int = FOURIER_TERMS):
    """(4/H) Σ_{i odd} cos(π i x / H)."""
    xp = get_array_module(x)
    return sum((4 / period_half) * xp.cos(math.pi * i * x / period_half) for i in range(1, 2 * terms, 2))


def half_period(x) -> float:
    """H = 3·RMS(x) over every value of a layer (no gradient)."""
    xp = get_array_module(x)
    return 3.0 * float(xp.sqrt((x * x).mean())) + 1e-12


def binarize(x, period_half: float | None = None):
    """α ⊙ sign(x), α = mean |x| per row; backward: the Fourier estimator plus α's gradient, on the
    half period H of x's layer (``half_period(x)`` unless given: x may be some of its rows)."""
    x = ag.as_tensor(x)
    xp = x.xp
    d = x.shape[1]
    alpha = xp.abs(x.data).mean(axis=1, keepdims=True)
    sign = xp.where(x.data >= 0, 1.0, -1.0).astype(x.dtype)
    period_half = half_period(x.data) if period_half is None else period_half

    def vjp(g):
        through_sign = g * alpha * fourier_sign_grad(x.data, period_half)
        through_alpha = sign * ((g * sign).sum(axis=1, keepdims=True) / d)
        return [through_sign + through_alpha]
    return ag.custom_op([x], alpha * sign, vjp)


class BiGeaRQuantizer(Quantizer):
    name = "bigear"

    def __init__(self, bits: int):
        self.bits = bits

    def _layer(self, E, period_half=None):
        if self.bits == 1:
            return binarize(E, period_half)
        rms = ag.power(ag.mean(E * E, axis=1, keepdims=True) + 1e-16, 0.5)
        grad_scale = 1.0 / math.sqrt(E.shape[1] * 2 ** (self.bits - 1))
        return fake_quantize(E, rms * optimal_step(self.bits), self.bits, grad_scale)

    def step_scale(self, e):
        return optimal_step(self.bits) * row_rms(e)

    def combine(self, layers):
        weights = self.model.layer_weights
        return ag.concat([self._layer(E) * w for E, w in zip(layers, weights)], axis=1)

    # sampled training (sampled.py): every layer's rows T; each row's codes and scale are its own,
    # and 1 bit's Fourier half period (a whole layer's statistic) comes from the last refresh's layers
    row_local = True
    needs_layers = True

    def refreshed(self, z_mean, layers=None) -> None:
        self._half_periods = [half_period(E) for E in layers] if layers is not None else None

    def represent_layer_rows(self, layer_rows, rows):
        periods = getattr(self, "_half_periods", None) or [None] * len(layer_rows)
        weights = self.model.layer_weights
        return ag.concat([self._layer(E, H) * w for E, H, w in zip(layer_rows, periods, weights)], axis=1)

    def export(self) -> dict:
        xp = self.model.xp
        with ag.no_grad():
            layers = [E.data for E in self.model.layers()]
        codes, scales = [], []
        for E, w in zip(layers, self.model.layer_weights):
            if self.bits == 1:  # α·sign(x) = (2α)·(code − ½), code = 1[x ≥ 0]
                codes.append((E >= 0).astype("uint8"))
                scales.append(2 * w * xp.abs(E).mean(axis=1, keepdims=True))
            else:
                s = self.step_scale(E)
                codes.append(codes_of(levels(E, s, self.bits), self.bits))
                scales.append(w * s)
        return {"codes": xp.concatenate(codes, axis=1), "scales": xp.concatenate(scales, axis=1)}
