"""LSQ baseline (Esser et al., ICLR 2020): one learned step size for the whole z.

    ẑ = s·(q + ½),  q = clip(⌊z/s⌋, −2^(b−1), 2^(b−1) − 1),  s = exp(log_s) learned
    ∂ẑ/∂z = 1 inside the range (STE);  ∂ẑ/∂s = (q + ½) − 1[in]·z/s,  scaled by 1/√(N·d·2^(b−1))
    init: s₀ = 2·mean|z| / √(2^(b−1))  (LSQ's rule, on the initial representation)
    (``quantize="layer0"``: the same on E⁽⁰⁾, then z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision)
"""

from __future__ import annotations

import math

from .. import autograd as ag
from .base import Quantizer, set_deploys, weighted_sum
from .uniform import codes_of, fake_quantize, levels


class LSQQuantizer(Quantizer):
    name = "lsq"

    def __init__(self, bits: int, quantize: str = "z"):
        self.bits = bits
        set_deploys(self, quantize)

    def setup(self, model) -> None:
        super().setup(model)
        xp = model.xp
        z = self.target()
        s0 = 2 * float(xp.abs(z).mean()) / math.sqrt(2 ** (self.bits - 1))
        self.log_s = ag.Tensor(xp.full((1, 1), math.log(s0), dtype=z.dtype), requires_grad=True, name="log_s")

    def parameters(self) -> list:
        return [self.log_s]

    def quantize_tensor(self, x):
        grad_scale = 1.0 / math.sqrt(x.data.size * 2 ** (self.bits - 1))
        return fake_quantize(x, ag.exp(self.log_s), self.bits, grad_scale)

    def combine(self, layers):
        return self.quantize_tensor(weighted_sum(layers, self.model.layer_weights))

    def export(self) -> dict:
        z_pre = self.target()
        s = self.model.xp.exp(self.log_s.data)
        return {"codes": codes_of(levels(z_pre, s, self.bits), self.bits),
                "scales": s.repeat(len(z_pre), axis=0)}
