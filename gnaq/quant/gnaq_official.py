"""GNAQ as the authors' released code computes it (github.com/WUT-IDEA/GNAQ-Graph-Node-Aware-
Dynamic-Quantization-for-Collaborative-Filtering, models/binary_quantization.py, funcs.py;
read for its formulas, none of its code is used). N nodes, d dims, b bits, V = 2^b levels.

What is learned and stored is the layer-0 table, per node one b-bit code per dimension and V
float levels of its own (a per-node, non-uniform codebook):

    Ê⁽⁰⁾ₙₖ = tanh(Cₙ,Kₙₖ)          C ∈ ℝ^{N×V} learned,  K ∈ {0…V−1}^{N×d} codes (no gradient)
    z = Σₗ αₗ Âˡ Ê⁽⁰⁾             full-precision LightGCN propagation, scores ŷᵤᵢ = zᵤ · zᵢ

1. Node-aware initialisation, from the node's own range [mₙ, Mₙ] of the (warmed-up) E⁽⁰⁾:
       Cₙⱼ = mₙ + (j + 1)(Mₙ − mₙ)/(V + 1)         j = 0…V−1 (V interior points)
       Kₙₖ = bin(eₙₖ; mₙ, Mₙ)                      bin(x; m, M) = clip(⌈(x − m)/w⌉ − 1, 0, V−1),
                                                   w = (M − m)/V: V equal bins of the node's range
2. Dynamic refinement through message passing: after every optimizer step the codes are
   re-assigned from the *propagated* representation of that step, Kₙₖ = bin(zₙₖ; min zₙ, max zₙ),
   so a node's codes follow what its neighbourhood made of it. (``rebin``: "z", the released code's;
   "never" keeps rule 1's codes — the ablation of bench/results/paper_claims.md.)
3. Gradient: only the levels learn, ∂L/∂Cₙⱼ = Σ_{k: Kₙₖ = j} (1 − Ê⁽⁰⁾ₙₖ²) · ∂L/∂Ê⁽⁰⁾ₙₖ, and
   ∂L/∂Ê⁽⁰⁾ = Σₗ αₗ (Âᵀ)ˡ ∂L/∂z arrives through the graph (there is no rounding to estimate
   through: the codes are assigned, not differentiated).

The released code's score adds a per-id bias (torchfm's FeaturesLinear over the user and the
item id: ŷᵤᵢ = zᵤ·zᵢ + bᵤ + bᵢ + b₀) and clips every gradient entry to ±3 before Adam's step.
``bias=True`` learns the item's bᵢ (n_items, 1), zero at the start — bᵤ and b₀ cancel in a BPR
margin ŷᵤₚ − ŷᵤₙ and in a user's ranking, so they change nothing; ``clip`` (e.g. 3) clamps the
levels' and the bias's gradients. Both are off by default: gnaq keeps LightGCN's score for every
method. Its full-precision start is a separately trained (BiGeaR) checkpoint; here it is
``warmup`` full-precision epochs of the same run, or ``--init-from`` a run (a BiGeaR run's E⁽⁰⁾).
Also not replicated: 5 negatives per positive a epoch and selection by NDCG@5 every 10 epochs.

Deployment differs from every other quantizer here: inference needs z, i.e. the propagation of
the stored table through the graph in full precision. The stored size is d·b/8 + 4V bytes per
node (at d = 64, b = 2: 16 + 16 = 32 B, 8x smaller than float32 — the paper's "8 to 12x"); the
``.gnaq`` edge format stores a quantized z and cannot hold this model (``exportable = False``).
"""

from __future__ import annotations

from .. import autograd as ag
from ..backend import get_array_module
from .base import Quantizer, parse_warmup, propagate_table, weighted_sum


def assign_codes(x, n_levels: int):
    """K = bin(x; rowmin, rowmax): (N, d) → (N, d) uint8 codes in [0, n_levels)."""
    xp = get_array_module(x)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    width = (hi - lo) / n_levels
    width = xp.where(width > 0, width, 1)  # a constant row: every code 0
    return xp.clip(xp.ceil((x - lo) / width) - 1, 0, n_levels - 1).astype(xp.uint8)


def initial_levels(x, n_levels: int):
    """C: the n_levels interior points of each row's range, (N, d) → (N, n_levels)."""
    xp = get_array_module(x)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    j = xp.arange(1, n_levels + 1, dtype=x.dtype)[None, :]
    return lo + j * (hi - lo) / (n_levels + 1)


def lookup_levels(table, codes):
    """Ê = table[n, codes[n, k]]: table (N, V) Tensor, codes (N, d) → (N, d) Tensor.

    Backward: ∂L/∂tableₙⱼ = Σ_{k: codesₙₖ = j} ∂L/∂Êₙₖ (one bincount)."""
    table = ag.as_tensor(table)
    xp = table.xp
    n, v = table.shape
    flat = (xp.arange(n, dtype=xp.int64)[:, None] * v + codes).ravel()
    out = table.data.ravel()[flat].reshape(codes.shape)

    def vjp(g):
        return [xp.bincount(flat, weights=g.ravel(), minlength=n * v).reshape(n, v).astype(g.dtype)]
    return ag.custom_op([table], out, vjp)


class OfficialGNAQQuantizer(Quantizer):
    name = "gnaq-official"
    exportable = False

    def __init__(self, bits: int, warmup: int = 0, tanh: bool = True, rebin: str = "z", bias: bool = False,
                 clip: float = None):
        if rebin not in ("z", "never"):
            raise ValueError(f"gnaq-official: rebin must be 'z' (rule 2) or 'never', got {rebin!r}")
        if clip is not None and not (isinstance(clip, (int, float)) and not isinstance(clip, bool) and clip > 0):
            raise ValueError(f"gnaq-official: clip must be a positive number (the released code's: 3), got {clip!r}")
        self.use_bias, self.clip = bool(bias), (float(clip) if clip is not None else None)
        self.bits, self.n_levels, self.rebin = bits, 2 ** bits, rebin
        self.warmup, self.tanh = parse_warmup("gnaq-official", warmup), bool(tanh)
        self.active = self.warmup == 0
        self._ego = None
        self._last_z = None

    def setup(self, model) -> None:
        super().setup(model)
        xp, e0 = model.xp, model.embedding.data
        self.levels = ag.Tensor(xp.zeros((len(e0), self.n_levels), dtype=e0.dtype), requires_grad=True,
                                name="levels")
        self.codes = xp.zeros(e0.shape, dtype=xp.uint8)
        if self.use_bias:
            if getattr(model, "comm", None) is not None and model.comm.size > 1:
                raise ValueError("gnaq-official: bias=true runs in one process (the bias is not sliced)")
            self.bias = ag.Tensor(xp.zeros((model.n_items, 1), dtype=e0.dtype), requires_grad=True, name="item_bias")
        self.initialise()

    def initialise(self) -> None:
        """Rule 1 from the current embeddings (at setup, and again when the warm-up ends)."""
        e0 = self.model.embedding.data
        self.levels.data[...] = initial_levels(e0, self.n_levels)
        self.codes[...] = assign_codes(e0, self.n_levels)

    def on_epoch_start(self, epoch: int) -> None:
        if self.active or self.warmup is None or epoch < self.warmup:
            return
        if epoch == self.warmup:  # (a resumed run past the warm-up keeps its levels and codes)
            self.initialise()
        self.active = True

    @property
    def item_bias(self):
        """bᵢ (n_items, 1) once the quantized phase runs (bias=true), else None."""
        return self.bias if self.use_bias and self.active else None

    def parameters(self) -> list:
        return [self.levels] + ([self.bias] if self.use_bias else [])

    def before_step(self) -> None:
        if self.clip is not None:  # torch.nn.utils.clip_grad_value_: every entry into [−clip, clip]
            for p in self.parameters():
                if p.grad is not None:
                    p.grad = p.xp.clip(p.grad, -self.clip, self.clip)

    ego_is_embedding = False  # the L2 term acts on the looked-up levels

    def ego(self):
        return self._ego if self.active else self.model.embedding

    def represent(self):
        model = self.model
        if not self.active:
            return weighted_sum(model.layers(), model.layer_weights)
        e0 = lookup_levels(self.levels, self.codes)
        if self.tanh:
            e0 = ag.tanh(e0)
        z = propagate_table(model, e0)
        self._ego = e0
        if ag.is_grad_enabled():
            self._last_z = z.data  # rule 2 re-assigns from this once the step is taken
        return z

    def after_step(self) -> None:
        if self.active and self._last_z is not None and self.rebin == "z":
            self.codes[...] = assign_codes(self._last_z, self.n_levels)
        self._last_z = self._ego = None

    def state_dict(self) -> dict:
        return {"levels": self.levels.data, "codes": self.codes,
                **({"item_bias": self.bias.data} if self.use_bias else {})}

    def load_state_dict(self, state: dict) -> None:
        xp = self.model.xp
        self.levels.data[...] = xp.asarray(state["levels"])
        self.codes[...] = xp.asarray(state["codes"])
        if self.use_bias:
            self.bias.data[...] = xp.asarray(state["item_bias"])

    def export(self) -> dict:
        """{"codes": (N, d) layer-0 codes, "levels": (N, V)}: what this scheme stores."""
        return {"codes": self.codes.copy(), "levels": self.levels.data.copy()}
