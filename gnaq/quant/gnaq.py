"""GNAQ: node-aware, message-passing-refined quantization with a graph-relational gradient.

The paper (Li et al., CIKM 2025, arXiv 2508.16516): its text was not at hand; its authors'
released code was (read in gnaq_official.py, which implements it). This module is the reading of
shared/GNAQ-METHOD.md with what measured best: what is quantized and stored is, by default, the
layer-0 table, as in the released code (``quantize="layer0"``, rule 3). N nodes, d dims, b bits,
Δ_b the Gaussian MSE-optimal step (uniform.optimal_step), σ(·) a row's RMS.

1. Node-aware initial intervals (learned, stored as log s):
       s⁽⁰⁾ₙ = Δ_b · σ(E⁽⁰⁾ₙ)                     (``node_aware=False``: Δ_b · σ(E⁽⁰⁾) for all n)
2. Refinement through message passing, λₗ = sigmoid(θₗ) learned (init θ = 0):
       s⁽ˡ⁺¹⁾ = λₗ · Â s⁽ˡ⁾ + (1 − λₗ) · Δ_b · σ(E⁽ˡ⁺¹⁾)     (no gradient through σ)
   (``refine=False``, the default: s⁽ˡ⁾ = Δ_b · σ(E⁽ˡ⁾) for l ≥ 1 — the learned refinement
   measured no gain on MovieLens-1M or gowalla and costs 6 scale-vector SpMMs per step)
3. Every layer is quantized with its own intervals, Ê⁽ˡ⁾ = Q(E⁽ˡ⁾; s⁽ˡ⁾), and the deployed
   representation is one b-bit row and one scale per node:
       z = Q(Σₗ αₗ Ê⁽ˡ⁾; κ · Σₗ αₗ s⁽ˡ⁾),   κ = exp(log κ) learned, init so the mean scale is
       Δ_b · σ of the initial combination. Default ``per_layer=False``: z = Q(Σₗ αₗ E⁽ˡ⁾; …),
       i.e. only the deployed z is quantized: per-layer quantization cost 5-8% of NDCG@20 on
       MovieLens-1M in bench/compare_quantizers.py, so the refined per-layer intervals define
       z's interval but the layers themselves stay in full precision.
   ``messages=True`` propagates quantized messages, E⁽ˡ⁺¹⁾ = Â Ê⁽ˡ⁾.
   ``quantize="layer0"`` (the default; ``"z"`` is the above) stores the layer-0 table, as the
   authors' released code does: Ê⁽⁰⁾ = Q(E⁽⁰⁾; s⁽⁰⁾) with the node-aware s⁽⁰⁾ of rule 1, and
       z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision — at inference too: the .gnaq file then carries the
       training graph and gnaq.edge propagates once at load (kind "propagate"). At 2 bits on
       MovieLens-1M: 96.6% of fp32's Recall@10 against 90.8% for quantize="z" (compare_quantizers).
4. Graph-relation-aware gradient (uniform.quantize_vjp), r = x − x̂:
       ∂L/∂x = ∂L/∂x̂ · 1[in range] · (1 + δ · tanh((Â r) / s));   δ = 0 is STE
       ∂L/∂s = LSQ's step gradient scaled by 1/√(d · 2^(b−1)) (d values share a node's s)
   Â r is computed in the backward pass only (one extra spmm per quantizer, skipped at δ = 0).
6. Mixed precision (``mix_share`` > 0): the ``mix_share`` of users and of items with the largest
   degree get ``mix_bits`` (default 4), the others ``bits``: average bits + share·(mix_bits − bits).
   Each node's step Δ_{bₙ} and LSQ gradient scale 1/√(d·2^(bₙ−1)) follow its width. Degree was
   chosen by bench/mixed_ptq.py: on a converged MovieLens-1M model (no training), 25% of the nodes
   at 4 bits by degree keep 95.5% / 96.4% of fp32's Recall/NDCG@20 vs 87.6% for uniform 2 bits,
   as good as by norm or by quantization error and far above a random choice (90.8%).
7. Transform coding (``transform="klt"``, graph-free only): z is rotated onto its principal
   axes, fitted when the intervals are (rule 1: from the converged model), and each axis gets its
   own width and step (quant/axes.py), with one learned scale per node on z itself
   (``transform="identity"``: z's own axes, R = I; ``"auto"``: whichever of the two codes z with the
   smaller squared error at one width per axis — principal axes on MovieLens-1M, whose variance
   sits in few axes, z's own on gowalla, where it is spread):
       ẑ = Q(z R; sₙ · u·m^g_k, b^g_k),   sₙ = exp(log sₙ), init Δ_b · σ(zₙR)
   R (d, d'), widths summing to b·d per row (dropped axes left out); g the node's group: with
   ``busy_share`` > 0 that share of users and of items with the largest degree (rule 6's ranking)
   get ``busy_bits`` per value and the others ⌊d·(b − share·busy_bits)/(1 − share)⌋ bits a row,
   so the average stays at most b. With ``idle_share`` > 0 that share of items store no code (ẑₙ = 0: never
   recommended; a scale byte kept) and the rest share their bits — items only (an uncoded user would be
   recommended nothing), so with ``quantize_users=False`` (rule 8), the item-only deployment, whose budget
   is the items'. ``idle_by`` ranks them: "recommended" (the default), the items in the fewest top-20 lists
   of (a seeded sample of up to 32,768) training users under the float z the codes start from, sᵤᵢ = zᵤ·zᵢ,
   seen items excluded, ties by degree (widths.recommendation_counts; fixed from then on and checkpointed);
   "degree", the smallest training degree. Their bits pay more elsewhere: gowalla at 32x, item-only, post-training
   with fold-in: 86.4 / 87.6% of fp32's test Recall / NDCG@20 with none idle; 60% idle 91.6 / 92.8% by
   degree, 95.0 / 95.7% by recommendation; 70% (the ``--size 32x`` preset) 90.3 / 92.2% and 95.6 / 95.9%
   (54% of gowalla's items are in no training user's top-20; bench/results/idle-items-gowalla.md). LSQ gradient scale
   1/√(d'·2^(b−1)) with b the average width (per axis, 1/√(d'·2^(bₖ−1)), measured 0.0016 lower best
   valid NDCG@20 on MovieLens-1M). Rules 1-3 do not apply: the node's scale is its own, not κ·Σₗ αₗ s⁽ˡ⁾ — on
   MovieLens-1M at 2 bits that sum of per-layer spreads started and stayed ~0.002 below it in valid
   NDCG@20 (test Recall@20 94.4% vs 95.2% of fp32). An axis takes up to 8 bits: capped at 4, the top
   axes of the busiest nodes were under-coded. This brings graph-free files to layer-0 accuracy at
   a quarter of the layer-0 file's bytes (bench/results/transform_coding-ml-1m.md).
5. Full-precision warm-up (``warmup`` epochs, z = Σₗ αₗ E⁽ˡ⁾ unquantized): the intervals
   are then (re)initialised by rule 1 from the trained embeddings, when nodes' statistics
   differ, and κ as in 3. The trainer selects and exports only quantized epochs.
   ``warmup="auto"`` (the trainer's default): full precision until validation NDCG@20 stops
   improving; the trainer then restores the best full-precision embeddings, resets Adam and
   quantizes from them — quantization from a converged model, as ``--init-from`` does.
8. Item-only deployment (``quantize_users=False``, with a transform): the file stores the items
   alone and a device folds its user in from their items in float (gnaq.edge's fold_in), so the
   users' rows are trained unquantized, ẑ_u = z_u R, and the items' codes are learned against them:
       ẑ = [z_U R ; Q(z_I R; …)]   (users U first, items I)
   Only items' rows are coded in training; a whole-file export still codes the users' (untrained).
   The trainer's validation then ranks with the trained float users, not folded-in ones.
"""

from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..backend import to_numpy
from ..spmm import spmm
from .axes import MAX_AXIS_BITS, ROTATIONS, AxisCode
from .base import Quantizer, parse_warmup, set_deploys, weighted_sum
from .scales import ScaleGrid
from .uniform import codes_of, levels, optimal_step, quantize_forward, quantize_vjp, row_rms
from .widths import (IDLE_RULES, average_bits_for_ratio, check_mix, mean_bits, node_groups, node_widths_and_steps,
                     recommended_score)

ENTROPY_ROUNDS = 3  # refits that grow the rest group's rows into a Huffman file's slack (file_entropy)


def graph_quantize(x, s, bits: int, grad_scale: float, norm_adj=None, delta: float = 0.0):
    """Fake-quantize x (N, d) with per-node scales s (N, 1); backward as in the docstring."""
    x, s = ag.as_tensor(x), ag.as_tensor(s)
    q, out = quantize_forward(x.data, s.data, bits)

    def vjp(g):
        r_bar = spmm(norm_adj, x.data - out) if (delta and norm_adj is not None) else None
        return quantize_vjp(g, x.data, s.data, q, bits, grad_scale, r_bar, delta)
    return ag.custom_op([x, s], out, vjp)


class GNAQQuantizer(Quantizer):
    name = "gnaq"

    def __init__(self, bits: int, delta: float = 0.0, node_aware: bool = True, refine: bool = False,
                 per_layer: bool = False, messages: bool = False, warmup: int = 0, quantize: str = "layer0",
                 mix_share: float = 0.0, mix_bits: int = 4, mix_by: str = "degree", transform: str = "none",
                 busy_share: float = 0.0, busy_bits: int = 3, idle_share: float = 0.0, idle_by: str = "recommended",
                 scale_bits: int = 0, average_bits=None,
                 file_ratio=None, file_rows: str = "all", file_gram: bool = True, file_entropy: bool = False,
                 quantize_users: bool = True):
        if not 0 <= delta < 1:
            raise ValueError(f"gnaq: delta must be in [0, 1), got {delta}")
        self.mix = check_mix("gnaq", bits, mix_share, mix_bits, mix_by)
        self.mix_share = self.mix[0]
        if transform not in ("none", *ROTATIONS):
            raise ValueError(f"gnaq: transform must be 'none' or one of {ROTATIONS}, got {transform!r}")
        if transform != "none" and (quantize != "z" or mix_share or per_layer or messages or bits > MAX_AXIS_BITS):
            raise ValueError(f"gnaq: transform={transform!r} codes the graph-free z at one average width "
                             f"≤ {MAX_AXIS_BITS} "
                             "(quantize='z', no mix_share, per_layer or messages)")
        if busy_share and (transform == "none" or not 0 < busy_share < 1 or not bits < busy_bits <= MAX_AXIS_BITS
                           or busy_share * busy_bits >= bits):
            raise ValueError(f"gnaq: busy_share (in (0, 1), with a transform) and busy_bits (above bits, at most "
                             f"{MAX_AXIS_BITS}, busy_share·busy_bits < bits); got {busy_share}, {busy_bits}")
        self.busy_share, self.busy_bits = float(busy_share), int(busy_bits)
        if idle_share and (transform == "none" or isinstance(idle_share, bool)
                           or not isinstance(idle_share, (int, float)) or not 0 < idle_share < 1 - busy_share):
            raise ValueError(f"gnaq: idle_share (in (0, 1 − busy_share), with a transform) got {idle_share!r} "
                             f"(busy_share {busy_share})")
        self.idle_share = float(idle_share)
        if idle_by not in IDLE_RULES:
            raise ValueError(f"gnaq: idle_by must be one of {IDLE_RULES}, got {idle_by!r}")
        self.idle_by = idle_by
        if scale_bits and (transform == "none" or not isinstance(scale_bits, int) or not 2 <= scale_bits <= 8):
            raise ValueError("gnaq: scale_bits (coded node scales, with a transform) must be 0 or 2 to 8, "
                             f"got {scale_bits!r}")
        average = bits if average_bits is None else average_bits
        if average_bits is not None and (transform == "none" or isinstance(average, bool)
                                         or not isinstance(average, (int, float)) or not 0 < average <= bits
                                         or busy_share * busy_bits >= average):
            raise ValueError(f"gnaq: average_bits (with a transform) must be in (0, bits = {bits}] and above "
                             f"busy_share·busy_bits; got {average_bits!r}")
        if file_ratio is not None and (transform == "none" or average_bits is not None or isinstance(file_ratio, bool)
                                       or not isinstance(file_ratio, (int, float)) or not file_ratio > 1):
            raise ValueError(f"gnaq: file_ratio (a file that many times smaller than float32's, with a transform and "
                             f"no average_bits) must be a number > 1, got {file_ratio!r}")
        self.file_ratio = None if file_ratio is None else float(file_ratio)
        if file_rows not in ("all", "items") or not isinstance(file_gram, bool) \
                or (self.file_ratio is None and (file_rows != "all" or not file_gram)):
            raise ValueError(f"gnaq: file_rows ('all' or 'items') and file_gram (True/False) size the file of a "
                             f"file_ratio; got file_rows={file_rows!r}, file_gram={file_gram!r}, "
                             f"file_ratio={file_ratio!r}")
        self.file_rows, self.file_gram = file_rows, file_gram
        if not isinstance(file_entropy, bool) or (file_entropy and self.file_ratio is None):
            raise ValueError("gnaq: file_entropy (True: size Huffman-coded rows, --export-entropy) needs a "
                             "file_ratio; "
                             f"got {file_entropy!r} with file_ratio={file_ratio!r}")
        self.file_entropy = file_entropy
        if not isinstance(quantize_users, bool) or (not quantize_users and transform == "none"):
            raise ValueError("gnaq: quantize_users (True/False; False needs a transform: rule 8) "
                             f"got {quantize_users!r}")
        self.quantize_users = quantize_users
        if idle_share and quantize_users:
            raise ValueError("gnaq: idle_share codes items alone below the average: it needs the item-only deployment "
                             "(quantize_users=False, the default of --export-users no)")
        if self.file_ratio and not scale_bits:
            scale_bits = 8  # the ratio's budget counts one byte of scale a node
        self.scale_bits, self.average_bits = int(scale_bits), float(average)
        self.scale_grid = None  # the ScaleGrid of coded scales, fitted with the intervals
        self.transform = transform
        self.axes = None  # the AxisCode of a transform, fitted with the intervals
        self.warmup = parse_warmup("gnaq", warmup)
        self.active = self.warmup == 0
        self.bits, self.delta = bits, float(delta)
        self.node_aware, self.refine = bool(node_aware), bool(refine)
        self.per_layer, self.messages = bool(per_layer), bool(messages)
        set_deploys(self, quantize)  # what .gnaq stores: z, or Ê⁽⁰⁾ to propagate
        self.step = optimal_step(bits)

    # ---- parameters ------------------------------------------------------------------
    def setup(self, model) -> None:
        super().setup(model)
        xp = model.xp
        e0 = model.embedding.data
        self.width, self.step = node_widths_and_steps(model, self.bits, self.mix)  # one width or (N, 1) (rule 6)
        self.log_s0 = ag.Tensor(xp.zeros((len(e0), 1), dtype=e0.dtype), requires_grad=True, name="log_s0")
        self.theta = [ag.Tensor(xp.zeros((1, 1), dtype=e0.dtype), requires_grad=True, name=f"theta{layer}")
                      for layer in range(model.n_layers)]  # λₗ = sigmoid(θₗ), one per propagation step
        self.log_kappa = ag.Tensor(xp.zeros((1, 1), dtype=e0.dtype), requires_grad=True, name="log_kappa")
        if self.transform != "none":  # node scales on z and node groups by degree (rule 7)
            self.log_node = ag.Tensor(xp.zeros((len(e0), 1), dtype=e0.dtype), requires_grad=True, name="log_node")
            self.node_group = node_groups(model, self.busy_share, self.idle_share)  # (N,) the rest, busy, idle
            d = model.dim
            if self.file_ratio:  # the row budget that makes the file file_ratio times smaller (widths.py)
                rows = model.n_items if self.file_rows == "items" else len(e0)
                self.average_bits = min(float(self.bits), average_bits_for_ratio(rows, d, self.file_ratio,
                                                                                 gram=self.file_gram))
                if not self.average_bits > self.busy_share * self.busy_bits:
                    raise ValueError(f"gnaq: a file {self.file_ratio:g}x smaller than float32's leaves "
                                     f"{max(self.average_bits, 0):.2f} bits a value for {rows} rows of dim {d}: "
                                     "too few (ask for a smaller ratio)")
            b, busy, idle = self.average_bits, self.busy_share, self.idle_share
            self.row_bits = [int(d * (b - busy * self.busy_bits) // (1 - busy - idle))] if busy or idle \
                else [int(round(d * b))]
            self.row_bits += [d * self.busy_bits] * (busy > 0) + [0] * (idle > 0)  # node_groups' order
        self.initialise_intervals()

    def on_epoch_start(self, epoch: int) -> None:
        if self.active or self.warmup is None or epoch < self.warmup:
            return
        if epoch == self.warmup:  # (a resumed run past the warm-up keeps its learned intervals)
            self.initialise_intervals()
        self.active = True

    def initialise_intervals(self) -> None:
        """s⁽⁰⁾ from each node's RMS (rule 1) and κ (rule 3), from the current embeddings."""
        model, xp = self.model, self.model.xp
        e0 = model.embedding.data
        if self.node_aware:
            s0 = self.step * row_rms(e0)
        else:
            s0 = self.step * xp.full((len(e0), 1), float(xp.sqrt((e0 * e0).mean())), dtype=e0.dtype)
        self.log_s0.data[...] = xp.log(s0)
        with ag.no_grad():  # κ₀: mean output scale = Δ_b · σ(initial full-precision combination)
            self.log_kappa.data[...] = 0.0
            _, z_scale = self.forward(messages=False)
            target = self.step * row_rms(weighted_sum(model.layers(), model.layer_weights).data)
        self.log_kappa.data[...] = math.log(float(target.mean()) / float(z_scale.data.mean()))
        if self.transform != "none":
            z = self.combination()
            if self.idle_share and self.idle_by == "recommended":  # from these z: the ones no list holds
                self.node_group = node_groups(model, self.busy_share, self.idle_share, recommended_score(z, model))
            self._fit_axes(z, self.row_bits)
            if self.file_entropy:
                self._spend_entropy_slack(z)

    def _fit_axes(self, z, row_bits) -> None:
        """The axes, widths and steps for rows of ``row_bits`` (one per group), and the node scales, from z."""
        self._set_axes(AxisCode.fit(to_numpy(z), self.bits, row_bits, rotation=self.transform))
        self.log_node.data[...] = self.model.xp.log(self.step * row_rms(z @ self.rotation.data))
        if self.scale_bits:
            self.scale_grid = ScaleGrid.fit(to_numpy(self.log_node.data), self.scale_bits)

    def _spend_entropy_slack(self, z) -> None:
        """``file_entropy``: a Huffman-coded file's rows (gnaq.entropy) take the bytes the packed rows would,
        B = Σ_rows ⌈B_g / 8⌉ over the file's rows (the budget ``file_ratio`` sized): the rest group's row
        bits B_0 grow to B_0 · (B − fixed) / rest — rest its rows' coded bytes, fixed the other groups' and
        the code-length tables — and the axes are refitted, ENTROPY_ROUNDS times; the last fit within B is
        kept. (gowalla at 32x: the Huffman file landed at 36.5x with the packed budget.)"""
        from ..entropy import coded_bits
        rows = slice(self.model.n_users, None) if self.file_rows == "items" else slice(None)
        group = np.asarray(self.node_group)[rows] if len(self.row_bits) > 1 else np.zeros(len(z), np.int64)[rows]
        budget = int(np.sum(-(-np.asarray(self.row_bits) // 8)[group]))
        fits, row_bits = list(self.row_bits), list(self.row_bits)
        for refits in range(ENTROPY_ROUNDS + 1):  # each round checks the current fit, then grows and refits
            bits, tables = coded_bits(to_numpy(self.export()["codes"])[rows], group, self.axes.widths)
            used, rest = -(-int(bits.sum()) // 8) + tables, int(bits[0]) / 8
            if used > budget:
                break
            fits = list(row_bits)
            grown = min(int(row_bits[0] * (budget - (used - rest)) / max(rest, 1.0)), self.model.dim * MAX_AXIS_BITS)
            if refits == ENTROPY_ROUNDS or grown <= fits[0]:
                break
            row_bits[0] = grown
            self._fit_axes(z, row_bits)
        if row_bits != fits:  # the last refit overshot: back to the last that fitted
            self._fit_axes(z, fits)

    def _set_axes(self, axes: AxisCode) -> None:
        xp, dtype = self.model.xp, self.model.embedding.data.dtype
        self.axes = axes
        self.rotation = ag.Tensor(xp.asarray(axes.rotation, dtype=dtype))
        group = self.node_group if len(axes.widths) > 1 else np.zeros(1, dtype=np.int64)  # (N,) or one row
        steps = np.where(axes.widths > 0, axes.steps, 1.0)  # (a step for the uncoded entries, masked below)
        self.axis_steps = ag.Tensor(xp.asarray(steps[group], dtype=dtype))
        self.axis_widths = xp.asarray(axes.widths[group].astype(dtype))
        self.axis_coded = xp.asarray((axes.widths[group] > 0).astype(dtype))  # 0: this group stores nothing

    def parameters(self) -> list:
        if self.transform != "none":  # its node scales are learned on z (rule 7)
            return [self.log_node]
        return [self.log_s0, *self.theta, self.log_kappa]

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.axes is not None:
            state.update(self.axes.state())
        if self.scale_grid is not None:
            state.update(self.scale_grid.state())
        if self.idle_share:  # (idle_by="recommended" ranks by the z it started from: kept for --resume)
            state["node_group"] = self.node_group
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.idle_share:  # a checkpoint from before idle_by ranked by degree
            self.node_group = to_numpy(state["node_group"]).astype(np.int64) if "node_group" in state \
                else node_groups(self.model, self.busy_share, self.idle_share)
        if self.transform != "none" and "axes_rotation" in state:
            self._set_axes(AxisCode.from_state({k: to_numpy(v) for k, v in state.items() if k.startswith("axes_")}))
        if "scale_grid" in state:
            self.scale_grid = ScaleGrid.from_state({"scale_grid": to_numpy(state["scale_grid"])})

    # ---- forward ---------------------------------------------------------------------
    @property
    def mean_bits(self) -> float:
        if self.axes is not None:
            rows = self.axes.widths.sum(1)[self.node_group if len(self.axes.widths) > 1 else 0]
            return float(rows.mean()) / self.model.dim
        return mean_bits(self.width)

    def _quantize(self, x, s):
        if self.axes is not None:  # transform coding: per-axis widths, LSQ scale 1/√(d'·2^(b−1)) (rule 7)
            out = graph_quantize(x, s, self.axis_widths, 1.0 / math.sqrt(x.shape[1] * 2 ** (self.bits - 1)),
                                 self.model.norm_adj, self.delta)
            return out * self.axis_coded
        if self.mix_share:  # per-node LSQ gradient scale 1/√(d·2^(bₙ−1))
            grad_scale = 1.0 / self.model.xp.sqrt(x.shape[1] * 2.0 ** (self.width - 1))
        else:
            grad_scale = 1.0 / math.sqrt(x.shape[1] * 2 ** (self.bits - 1))
        return graph_quantize(x, s, self.width, grad_scale, self.model.norm_adj, self.delta)

    def forward(self, messages=None):
        """Propagate, refine intervals and quantize; returns (z_pre, z_scale) Tensors."""
        model, adj = self.model, self.model.norm_adj
        messages = self.messages if messages is None else messages
        E, s = model.embedding, ag.exp(self.log_s0)
        layers, scales, quantized = [], [], []
        for layer in range(model.n_layers + 1):
            if layer > 0:
                E = ag.spmm(adj, quantized[-1] if messages else E, A_T=adj)
                own = ag.Tensor(self.step * row_rms(E.data))
                if self.refine:
                    lam = ag.sigmoid(self.theta[layer - 1])
                    s = lam * ag.spmm(adj, s, A_T=adj) + (1.0 - lam) * own
                else:
                    s = own
            layers.append(E)
            scales.append(s)
            if self.per_layer or messages:
                quantized.append(self._quantize(E, s))
        weights = model.layer_weights
        z_pre = weighted_sum(quantized if self.per_layer else layers, weights)
        return z_pre, ag.exp(self.log_kappa) * weighted_sum(scales, weights)

    def quantize_tensor(self, x):
        """``quantize='layer0'``: Ê⁽⁰⁾ = Q(E⁽⁰⁾; s⁽⁰⁾), the table that is stored."""
        return self._quantize(x, ag.exp(self.log_s0))

    def represent(self):
        model = self.model
        if not self.active:
            return weighted_sum(model.layers(), model.layer_weights)
        if self.deploys == "layer0":  # z = Σₗ αₗ Âˡ Ê⁽⁰⁾ in full precision
            return super().represent()
        if self.axes is not None:  # ẑ = Q(z R; sₙ·u·m^g_k, b^g_k) (rule 7)
            z = ag.matmul(weighted_sum(model.layers(), model.layer_weights), self.rotation)
            coded = self._quantize(z, ag.exp(self._log_node(self.log_node)) * self.axis_steps)
            return coded if self.quantize_users else self._users_unquantized(z, coded, model.xp.arange(len(z.data)))
        z_pre, z_scale = self.forward()
        return self._quantize(z_pre, z_scale)

    @property
    def row_local(self) -> bool:  # transform coding (rule 7) without the graph-aware gradient
        return self.transform != "none" and not self.delta

    def represent_rows(self, z_rows, rows):
        """ẑ_T = Q(z_T R; s_T · u·m^g_k, b^g_k) (rule 7) for rows T of z; full precision in the warm-up."""
        if not self.active:
            return z_rows
        if not self.row_local:
            return super().represent_rows(z_rows, rows)
        per_node = self.axis_widths.shape[0] > 1  # (N, d') by group, or one row for every node

        def pick(a):
            return a[rows] if per_node else a
        scale = ag.exp(self._log_node(ag.gather(self.log_node, rows))) * pick(self.axis_steps.data)
        rotated = ag.matmul(z_rows, self.rotation)
        out = graph_quantize(rotated, scale, pick(self.axis_widths),
                             1.0 / math.sqrt(self.rotation.shape[1] * 2 ** (self.bits - 1))) * pick(self.axis_coded)
        return out if self.quantize_users else self._users_unquantized(rotated, out, rows)

    def _users_unquantized(self, rotated, coded, rows):
        """Rule 8: the rows of users (index < n_users) as rotated z, the items' as coded."""
        is_user = (rows < self.model.n_users)[:, None].astype(rotated.data.dtype)
        return rotated * is_user + coded * (1.0 - is_user)

    def _log_node(self, log_node):
        """ℓ of the node scales as trained and stored: coded on the grid with ``scale_bits`` (quant/scales.py)."""
        return self.scale_grid.code(log_node) if self.scale_grid is not None else log_node

    def combine(self, layers):  # GNAQ propagates itself (represent); kept for the interface
        raise NotImplementedError("GNAQQuantizer computes z in represent()")

    # ---- export ----------------------------------------------------------------------
    def export(self) -> dict:
        if self.deploys == "layer0":
            e0, s0 = self.model.embedding.data, self.model.xp.exp(self.log_s0.data)
            out = {"codes": codes_of(levels(e0, s0, self.width), self.width), "scales": s0}
        else:
            if self.axes is not None:  # rotated rows; the file's per-node scale is sₙ·u, steps m^g_k per group
                zr = self.combination() @ self.rotation.data
                s = self.model.xp.exp(self._log_node(ag.Tensor(self.log_node.data)).data)
                codes = codes_of(levels(zr, s * self.axis_steps.data, self.axis_widths), self.axis_widths)
                out = {"codes": codes * (self.axis_widths > 0), "scales": s * self.axes.unit,
                       "column_widths": self.axes.widths, "column_steps": self.axes.integer_steps}
                if self.scale_grid is not None:  # one byte a node and the table of levels (format 6)
                    out["scale_index"] = to_numpy(self.scale_grid.index(self.log_node.data)).ravel().astype(np.uint8)
                    out["scale_table"] = self.scale_grid.table(self.axes.unit)
                if len(self.axes.widths) > 1:
                    out["column_group"] = self.node_group
                return out
            with ag.no_grad():
                z_pre, z_scale = self.forward()
            out = {"codes": codes_of(levels(z_pre.data, z_scale.data, self.width), self.width), "scales": z_scale.data}
        if self.mix_share:
            out["widths"] = self.width.ravel().astype(np.int64)
        return out

