"""STE baseline: uniform b-bit quantization of z with one global, statistics-derived scale.

    z = Σₗ αₗ E⁽ˡ⁾,   s = Δ_b · RMS(z) (over all N·d values, no gradient),   ẑ = s·(q + ½)
    (``quantize="layer0"``: the same on E⁽⁰⁾, then z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision)
    Mixed widths (``mix_share``, quant/widths.py): node n at bₙ bits with sₙ = Δ_{bₙ} · RMS(z).

Gradient: straight-through inside the clip range, zero outside (Bengio et al. 2013).
"""

from __future__ import annotations

import numpy as np

from .. import autograd as ag
from .base import Quantizer, set_deploys, weighted_sum
from .uniform import codes_of, fake_quantize, levels, optimal_step
from .widths import check_mix, mean_bits, node_widths_and_steps


class STEQuantizer(Quantizer):
    name = "ste"

    def __init__(self, bits: int, quantize: str = "z", mix_share: float = 0.0, mix_bits: int = 4,
                 mix_by: str = "degree"):
        self.bits = bits
        set_deploys(self, quantize)
        self.mix = check_mix("ste", bits, mix_share, mix_bits, mix_by)
        self.width, self.step = bits, optimal_step(bits)

    def setup(self, model) -> None:
        super().setup(model)
        self.width, self.step = node_widths_and_steps(model, self.bits, self.mix)

    @property
    def mean_bits(self) -> float:
        return mean_bits(self.width)

    def scale(self, z):
        """Δ_b · RMS(z): (1, 1), or (N, 1) with each node's Δ_{bₙ} when widths are mixed."""
        xp = ag.Tensor(z).xp
        rms = float(xp.sqrt((z * z).mean()))
        return xp.asarray(self.step * rms, dtype=z.dtype).reshape(-1, 1)

    def quantize_tensor(self, x):
        return fake_quantize(x, ag.Tensor(self.scale(x.data)), self.width, learn_scale=False)

    # sampled training (sampled.py): z's rows T, the RMS from the history z̄ = P H at the last refresh
    # (exact at a refresh: z̄ is z there; between refreshes the scale lags z's RMS, a statistic of N·d values)
    @property
    def row_local(self) -> bool:
        return self.deploys == "z"

    def refreshed(self, z_mean, layers=None) -> None:
        xp = ag.Tensor(z_mean).xp
        self._history_rms = float(xp.sqrt((z_mean * z_mean).mean()))

    def represent_rows(self, z_rows, rows):
        """ẑ_T = s_T·(q + ½), s = Δ_b · RMS(z̄) (Δ_{bₙ} per node when widths are mixed)."""
        if not self.row_local:
            return super().represent_rows(z_rows, rows)
        if getattr(self, "_history_rms", None) is None:
            raise RuntimeError("ste: sampled rows before the sampler's first refresh (the scale's RMS comes from it)")
        xp = z_rows.xp
        mixed = bool(self.mix[0])
        step = self.step[rows] if mixed else self.step
        s = xp.asarray(step * self._history_rms, dtype=z_rows.dtype).reshape(-1, 1)
        return fake_quantize(z_rows, ag.Tensor(s), self.width[rows] if mixed else self.width, learn_scale=False)

    def combine(self, layers):
        return self.quantize_tensor(weighted_sum(layers, self.model.layer_weights))

    def export(self) -> dict:
        z_pre = self.target()
        s = self.scale(z_pre)
        out = {"codes": codes_of(levels(z_pre, s, self.width), self.width),
               "scales": s if len(s) == len(z_pre) else s.repeat(len(z_pre), axis=0)}
        if self.mix[0]:
            out["widths"] = self.width.ravel().astype(np.int64)
        return out
