"""The quantizer interface the model talks to, and the full-precision (identity) quantizer.

A quantizer sees the model's layer outputs and decides what the final representation z is:

    setup(model)               create parameters (may look at the initial embeddings)
    represent() → z            the (quantized) representation that scores are computed from;
                               by default combine(model.layers())
    ego() → E⁽⁰⁾               the layer-0 rows the L2 penalty acts on (default: the embedding)
    before_step()              called between backward and the optimizer step (gradient clipping)
    after_step()               called after each optimizer step (the official GNAQ re-assigns codes)
    item_bias                  None, or a (n_items, 1) Tensor b added to every score: ŷᵤᵢ = zᵤ·zᵢ + bᵢ
    on_epoch_start(epoch)      hook for schedules (GNAQ's full-precision warm-up); ``active``
                               is False while the representation is not yet quantized
    represent_rows(z_T, T) → ẑ_T  the same for some rows T of the full-precision z, where the
                               quantizer is row-local (``row_local``): sampled training (sampled.py)
    represent_layer_rows([E⁽⁰⁾_T … E⁽ᴸ⁾_T], T) → ẑ_T   the same from each layer's rows T, for a
                               row-local quantizer of every layer (``needs_layers``)
    refreshed(z̄, layers)       sampled training's history at each refresh: z̄ = P H (N, d) and, when
                               ``needs_layers``, [Âˡ H] — where a quantizer's scale is a statistic
                               of the whole table (STE's RMS), it is taken from the history
    combine([E⁽⁰⁾…E⁽ᴸ⁾]) → z   how layer outputs become z
    parameters()               learned tensors for the optimizer
    exportable                 False where the .gnaq format cannot hold the representation
    export() → dict            {"codes": (N, D) uint8 in [0, 2^b), "scales": (N, G)} — value of code c
                               in group g (D/G columns each) is scales[n, g]·(c + ½ − 2^(b−1)) —
                               or {"float": (N, D)} for full precision
"""

from __future__ import annotations

import copy

from .. import autograd as ag


class Quantizer:
    name = "base"
    bits = 32
    has_extra_loss = False
    active = True        # False while a quantizer trains in full precision (warm-up)
    exportable = True    # whether gnaq.export can write it as a .gnaq file
    deploys = "z"        # "z": the representation is quantized; "layer0": E⁽⁰⁾ is, z = Σ αₗ Âˡ Ê⁽⁰⁾
    row_local = False    # whether ẑ's row n depends on z's row n (and node n's parameters) alone
    ego_is_embedding = True  # whether ego() is the model's E⁽⁰⁾ (the L2 term then sums over slices)
    item_bias = None     # a learned per-item score bias (the official GNAQ's per-id bias), or None

    needs_layers = False  # whether sampled training must give it every layer's rows (represent_layer_rows)

    def represent_rows(self, z_rows, rows):
        """ẑ_T from z_T (|T|, d) Tensor for node ids ``rows`` (|T|,) — row-local quantizers only."""
        raise NotImplementedError(f"{self.name}: this quantizer needs the whole graph a step "
                                  "(--propagation full); sampled training takes row-local quantizers of z")

    def represent_layer_rows(self, layer_rows, rows):
        """ẑ_T from [E⁽⁰⁾_T … E⁽ᴸ⁾_T] (Tensors (|T|, d)) — quantizers with ``needs_layers``."""
        raise NotImplementedError(f"{self.name} quantizes z, not each layer")

    def refreshed(self, z_mean, layers=None) -> None:
        """Sampled training took a new history: z̄ = P H (N, d) array, layers [Âˡ H] or None."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before each epoch (epoch = number of completed epochs)."""

    def setup(self, model) -> None:
        self.model = model

    def bound_to(self, model) -> "Quantizer":
        """This quantizer, parameters and state shared, reading ``model`` instead (the same
        values in another shape: models/whole.py's one-process snapshot of a sliced model)."""
        other = copy.copy(self)
        other.model = model
        return other

    def represent(self):
        if self.deploys == "layer0":
            return propagate_table(self.model, self.quantize_tensor(self.model.embedding))
        return self.combine(self.model.layers())

    def quantize_tensor(self, x):
        """Fake-quantize a Tensor (used by ``deploys == "layer0"``)."""
        raise NotImplementedError(f"{self.name} quantizes z only")

    def ego(self):
        return self.model.embedding

    def before_step(self) -> None:
        """Called by the trainer after backward, before the optimizer step."""

    def after_step(self) -> None:
        """Called by the trainer after each optimizer step."""

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

    def export(self) -> dict:
        raise NotImplementedError

    def combination(self):
        """Σₗ αₗ E⁽ˡ⁾ of the current parameters as an array, no graph recorded."""
        with ag.no_grad():
            return weighted_sum(self.model.layers(), self.model.layer_weights).data

    def target(self):
        """The array that is quantized and stored: z, or E⁽⁰⁾ when ``deploys == "layer0"``."""
        return self.model.embedding.data if self.deploys == "layer0" else self.combination()


def parse_warmup(name: str, warmup):
    """A ``warmup`` option: epochs ≥ 0, or "auto" (→ None: full precision until the trainer sees
    validation NDCG@20 converge, then it sets ``quantizer.warmup`` to that epoch)."""
    if warmup == "auto" or warmup is None:
        return None
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0 or warmup != int(warmup):
        raise ValueError(f"{name}: warmup must be a whole number of epochs ≥ 0 or 'auto', got {warmup!r}")
    return int(warmup)


def set_deploys(quantizer, quantize: str) -> None:
    """The ``quantize`` option of the uniform quantizers: "z" (default) or "layer0"."""
    if quantize not in ("z", "layer0"):
        raise ValueError(f"{quantizer.name}: quantize must be 'z' or 'layer0', got {quantize!r}")
    quantizer.deploys = quantize


def propagate_table(model, table):
    """z = Σₗ αₗ Âˡ T in full precision, for a (quantized) layer-0 table T (one fused op)."""
    return ag.propagate(model.norm_adj, table, model.layer_weights)


def weighted_sum(tensors, weights):
    """Σ wₗ Tₗ."""
    total = tensors[0] * weights[0]
    for t, w in zip(tensors[1:], weights[1:]):
        total = total + t * w
    return total


class FullPrecision(Quantizer):
    """No quantization: z = Σₗ αₗ E⁽ˡ⁾ stored as float32."""
    name = "fp32"
    row_local = True

    def represent_rows(self, z_rows, rows):
        return z_rows

    def represent(self):  # z = Σₗ αₗ Âˡ E⁽⁰⁾ as one fused op (same values as combine(layers()))
        return propagate_table(self.model, self.model.embedding)

    def combine(self, layers):
        return weighted_sum(layers, self.model.layer_weights)

    def export(self) -> dict:
        return {"float": self.combination()}
