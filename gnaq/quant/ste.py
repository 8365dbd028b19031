"""STE baseline: uniform b-bit quantization of z with one global, statistics-derived scale.

    z = Σₗ αₗ E⁽ˡ⁾,   s = Δ_b · RMS(z) (over all N·d values, no gradient),   ẑ = s·(q + ½)
    (``quantize="layer0"``: the same on E⁽⁰⁾, then z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision)

Gradient: straight-through inside the clip range, zero outside (Bengio et al. 2013).
"""

from __future__ import annotations

from .. import autograd as ag
from .base import Quantizer, set_deploys, weighted_sum
from .uniform import codes_of, fake_quantize, levels, optimal_step


class STEQuantizer(Quantizer):
    name = "ste"

    def __init__(self, bits: int, quantize: str = "z"):
        self.bits = bits
        set_deploys(self, quantize)

    def scale(self, z):
        xp = ag.Tensor(z).xp
        return xp.asarray(optimal_step(self.bits) * float(xp.sqrt((z * z).mean())), dtype=z.dtype).reshape(1, 1)

    def quantize_tensor(self, x):
        return fake_quantize(x, ag.Tensor(self.scale(x.data)), self.bits, learn_scale=False)

    def combine(self, layers):
        return self.quantize_tensor(weighted_sum(layers, self.model.layer_weights))

    def export(self) -> dict:
        z_pre = self.target()
        s = self.scale(z_pre)
        return {"codes": codes_of(levels(z_pre, s, self.bits), self.bits),
                "scales": s.reshape(1, 1).repeat(len(z_pre), axis=0)}
