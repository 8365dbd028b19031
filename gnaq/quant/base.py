"""The quantizer interface the model talks to, and the full-precision (identity) quantizer.

A quantizer sees the model's layer outputs and decides what the final representation z is:

    setup(model)               create parameters (may look at the initial embeddings)
    message(l, E)              what layer l propagates (E itself unless messages are quantized)
    combine([E⁽⁰⁾…E⁽ᴸ⁾]) → z   the (quantized) representation that scores are computed from
    parameters()               learned tensors for the optimizer
    export(z) → dict           codes (n, d) uint8 in [0, 2^b), scale (n,) [, offset], level rule
"""

from __future__ import annotations

from .. import autograd as ag


class Quantizer:
    name = "base"
    bits = 32
    has_extra_loss = False

    def setup(self, model) -> None:
        self.model = model

    def message(self, layer: int, E):
        return E

    def combine(self, layers):
        raise NotImplementedError

    def parameters(self) -> list:
        return []

    def extra_loss(self):
        return 0.0

    def state_dict(self) -> dict:
        return {p.name: p.data for p in self.parameters()}

    def load_state_dict(self, state: dict) -> None:
        for p in self.parameters():
            p.data[...] = p.xp.asarray(state[p.name])

    def export(self, z) -> dict:
        raise NotImplementedError


def weighted_sum(tensors, weights):
    """Σ wₗ Tₗ."""
    total = tensors[0] * weights[0]
    for t, w in zip(tensors[1:], weights[1:]):
        total = total + t * w
    return total


class FullPrecision(Quantizer):
    """No quantization: z = Σₗ αₗ E⁽ˡ⁾ stored as float32."""
    name = "fp32"

    def combine(self, layers):
        return weighted_sum(layers, self.model.layer_weights)

    def export(self, z) -> dict:
        return {"float": z}
