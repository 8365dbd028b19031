"""Coded node scales: one byte a node instead of a float32 (gnaq's ``scale_bits``, transform coding).

A node's scale sₙ = exp(ℓₙ) is stored as the index of the nearest of L = 2^β levels on a uniform
grid in log scale, fitted once when the intervals are (from the converged model's ℓ):

    ℓ̂ₙ = lo + h·iₙ,   iₙ = clip(round((ℓₙ − lo)/h), 0, L − 1),   h = (hi − lo)/(L − 1)
    lo, hi = min ℓ − margin, max ℓ + margin

so the relative error of a scale is at most e^(h/2) − 1 (0.8% for β = 8 over a range of e⁴). The
quantizer trains with ℓ̂ (straight-through: ∂L/∂ℓ = ∂L/∂ℓ̂), so what is trained is what is stored; the
file holds the L table values exp(lo + h·i)·u (float32) and each node's byte iₙ (gnaq.edge, format 6).
"""

from __future__ import annotations

import numpy as np

from .. import autograd as ag

SCALE_MARGIN = 0.5  # room in log scale on either side of the fitted range, for the scales to move in training


class ScaleGrid:
    def __init__(self, bits: int, lo: float, hi: float):
        self.bits, self.lo, self.hi = int(bits), float(lo), float(hi)
        self.levels = 2 ** self.bits
        self.step = max(self.hi - self.lo, 1e-12) / (self.levels - 1)

    @classmethod
    def fit(cls, log_scales, bits: int, margin: float = SCALE_MARGIN) -> "ScaleGrid":
        values = np.asarray(log_scales, dtype=np.float64)
        return cls(bits, float(values.min()) - margin, float(values.max()) + margin)

    def index(self, log_scales):
        """iₙ = clip(round((ℓₙ − lo)/h), 0, L − 1), as log_scales' array type (float)."""
        xp = ag.Tensor(log_scales).xp
        return xp.clip(xp.rint((log_scales - self.lo) / self.step), 0, self.levels - 1)

    def code(self, log_scales):
        """ℓ̂ = lo + h·i of a Tensor ℓ, straight-through."""
        log_scales = ag.as_tensor(log_scales)
        out = self.lo + self.step * self.index(log_scales.data)
        return ag.custom_op([log_scales], out.astype(log_scales.data.dtype), lambda g: (g,))

    def table(self, unit: float = 1.0) -> np.ndarray:
        """(L,) the scale of each level, exp(lo + h·i)·unit."""
        return np.exp(self.lo + self.step * np.arange(self.levels)) * unit

    def state(self) -> dict:
        return {"scale_grid": np.array([self.bits, self.lo, self.hi], dtype=np.float64)}

    @classmethod
    def from_state(cls, state: dict) -> "ScaleGrid":
        bits, lo, hi = np.asarray(state["scale_grid"], dtype=np.float64).tolist()
        return cls(int(bits), lo, hi)
