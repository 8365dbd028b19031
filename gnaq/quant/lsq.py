"""LSQ baseline (Esser et al., ICLR 2020): one learned step size for the whole z.

    ẑ = s·(q + ½),  q = clip(⌊z/s⌋, −2^(b−1), 2^(b−1) − 1),  s = exp(log_s) learned
    ∂ẑ/∂z = 1 inside the range (STE);  ∂ẑ/∂s = (q + ½) − 1[in]·z/s,  scaled by 1/√(N·d·2^(b−1))
    init: s₀ = 2·mean|z| / √(2^(b−1))  (LSQ's rule, on the initial representation)
    (``quantize="layer0"``: the same on E⁽⁰⁾, then z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision)
    Mixed widths (``mix_share``, quant/widths.py): one learned step per width w, s_w, shared by the
    N_w nodes at that width; init 2·mean|z| / √(2^(w−1)); gradient scale 1/√(N_w·d·2^(w−1)).
"""

from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..backend import to_numpy
from .base import Quantizer, set_deploys, weighted_sum
from .uniform import codes_of, fake_quantize, levels
from .widths import check_mix, mean_bits, node_widths_and_steps


class LSQQuantizer(Quantizer):
    name = "lsq"

    def __init__(self, bits: int, quantize: str = "z", mix_share: float = 0.0, mix_bits: int = 4,
                 mix_by: str = "degree"):
        self.bits = bits
        set_deploys(self, quantize)
        self.mix = check_mix("lsq", bits, mix_share, mix_bits, mix_by)
        self.width = bits

    def setup(self, model) -> None:
        super().setup(model)
        xp = model.xp
        z = self.target()
        self.width, _ = node_widths_and_steps(model, self.bits, self.mix)
        node_widths = to_numpy(self.width).ravel().astype(np.int64) if self.mix[0] else None
        widths = sorted(set(node_widths.tolist())) if self.mix[0] else [self.bits]
        mean_abs = float(xp.abs(z).mean())
        log_s = [math.log(2 * mean_abs / math.sqrt(2 ** (b - 1))) for b in widths]
        self.log_s = ag.Tensor(xp.asarray(np.array(log_s, dtype=z.dtype)[:, None]), requires_grad=True, name="log_s")
        if self.mix[0]:  # node → its width's step, and the per-node gradient scale
            group = np.searchsorted(widths, node_widths)
            self.group = xp.asarray(group)
            sizes = np.bincount(group, minlength=len(widths))[group][:, None]
            b = np.asarray(widths)[group][:, None]
            self.grad_scale = xp.asarray((1.0 / np.sqrt(sizes * z.shape[1] * 2.0 ** (b - 1))).astype(z.dtype))

    @property
    def mean_bits(self) -> float:
        return mean_bits(self.width)

    def parameters(self) -> list:
        return [self.log_s]

    def step_sizes(self):
        """s as a Tensor: (1, 1), or (N, 1) — each node's width's step — when widths are mixed."""
        s = ag.exp(self.log_s)
        return ag.gather(s, self.group) if self.mix[0] else s

    def quantize_tensor(self, x):
        grad_scale = self.grad_scale if self.mix[0] else 1.0 / math.sqrt(x.data.size * 2 ** (self.bits - 1))
        return fake_quantize(x, self.step_sizes(), self.width, grad_scale)

    def combine(self, layers):
        return self.quantize_tensor(weighted_sum(layers, self.model.layer_weights))

    @property
    def row_local(self) -> bool:  # z's rows need only the learned steps (sampled training)
        return self.deploys == "z"

    def represent_rows(self, z_rows, rows):
        """ẑ_T with the same steps and gradient scale 1/√(N·d·Q) as the whole table's (the loss
        reaches only a batch's rows there too, so s's gradient is the same sum)."""
        if not self.row_local:
            return super().represent_rows(z_rows, rows)
        model = self.model
        if self.mix[0]:
            s = ag.gather(ag.exp(self.log_s), self.group[rows])
            return fake_quantize(z_rows, s, self.width[rows], self.grad_scale[rows])
        size = (model.n_users + model.n_items) * z_rows.shape[1]
        return fake_quantize(z_rows, ag.exp(self.log_s), self.width, 1.0 / math.sqrt(size * 2 ** (self.bits - 1)))

    def export(self) -> dict:
        z_pre = self.target()
        with ag.no_grad():
            s = self.step_sizes().data
        out = {"codes": codes_of(levels(z_pre, s, self.width), self.width),
               "scales": s if len(s) == len(z_pre) else s.repeat(len(z_pre), axis=0)}
        if self.mix[0]:
            out["widths"] = self.width.ravel().astype(np.int64)
        return out
