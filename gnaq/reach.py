"""The history estimator's missing reach, applied at each refresh (``--reach``, with ``--walks 0``).

With no walks (sampled.py) a step's gradient reaches the batch's own rows only, ∂E⁽⁰⁾_T = g_T,
where LightGCN's reaches every row near them, ∂E⁽⁰⁾ = P g (N nodes, d dims, P = Σₗ αₗ Âˡ (N, N)).
What a step leaves out is (P − α₀ I) g: the neighbours' share (the own row keeps its whole g).
Here it is collected and applied once an interval, at the refresh that ends it:

    G = Σ_t g_t                                  (N, d): the steps' z-gradients since the last refresh
    E⁽⁰⁾ ← E⁽⁰⁾ − s · lr · (P − α₀ I) G / (√v̂ + ε)    (every row with v > 0, elementwise)

v̂ = v / (1 − β₂ᵗ) is Adam's second moment of the embedding (optim.py) at the refresh. With v held
fixed, Adam's step is linear in its gradient, so the interval's steps would have moved each row by
about lr · Σ_t c_t / (√v̂ + ε) for a gradient part c_t; this adds that part for c_t = (P − α₀ I) g_t,
late by at most one interval, in one move. ``s`` (the scale, ``--reach``) weighs it: 0 is the history
estimator alone, 1 the linearised step; a row Adam never moved (v = 0) takes none.

``split`` (``--reach-split``) says how a row's gradient is shared between its steps and the move:

- ``history``: a step gives the batch's rows their whole g, as the history estimator's forward
  has it (∂z_T/∂E⁽⁰⁾_T = I), and v is Adam's second moment of those steps alone.
- ``lightgcn`` (the default, sampled_recipe): as LightGCN's one gradient P g — a step gives its rows α₀ g
  (P's own share), the move the rest,
  and Adam normalises the two as one: at each move its second moment takes the interval's per-step share,
  n = (P − α₀ I) G / T over the interval's T steps, as T steps of Adam's EMA would,

      M ← β₂ᵀ M + (1 − β₂ᵀ) n²,    v ← v − M_before + M    (elementwise; M kept beside v, (N, d))

  so a hub, whose neighbours' share dominates its gradient, takes small steps along its own g, as on the full
  graph. On gowalla the history split let the top 1% of items' own rows grow along their z and under-rank them
  on test (bench/results/sampled_accuracy.md); at S = 1 this split kept 100.9-104.9% of the full
  graph's fp32 test Recall@20 / NDCG@20 on ml-1m, lastfm and gowalla, and 98.8-101.9% of its 2-bit (one run each).

Cost: G += g_T is one more row write per target a step; the move is one full propagation (the
refresh's cost, L products over Â) and O(N·d) — per epoch O(refreshes · L · nnz · d) more, still
linear in the interactions (bench/results/scale.md). The trainer moves E⁽⁰⁾ before each
refresh and at each epoch's end, so a checkpoint holds G = 0 (and the lightgcn split's M) and ``--resume``
stays exact. Measured accuracy: bench/results/sampled_accuracy.md.
"""

from __future__ import annotations

import numpy as np

from . import autograd as ag
from .backend import get_array_module
from .optim import follower_rows
from .spmm import layer_sum, scipy_sparse_like, sum_row_parts

try:
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the no-numba CI leg
    HAVE_NUMBA = False

if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def _add_transpose_numba(indptr, indices, data, g, out):  # pragma: no cover - jitted
        """out += Wᵀ g for CSR W (m, N), g (m, d): each entry's row added where it points."""
        for t in range(indptr.shape[0] - 1):
            for p in range(indptr[t], indptr[t + 1]):
                j, w = indices[p], data[p]
                for c in range(g.shape[1]):
                    out[j, c] += w * g[t, c]

    @njit(parallel=True, cache=True, nogil=True)
    def _move_numba(theta, follower, spread, gradients, alpha0, v, v_correction, step, eps):  # pragma: no cover
        """θ −= step · (spread − α₀ G) / (√(v / c) + ε) where v > 0, in place (and the follower)."""
        follow = follower.shape[0] > 0
        for r in prange(theta.shape[0]):
            for c in range(theta.shape[1]):
                if v[r, c] > 0:
                    move = step * (spread[r, c] - alpha0 * gradients[r, c]) / (np.sqrt(v[r, c] / v_correction) + eps)
                    theta[r, c] -= move
                    if follow:
                        follower[r, c] -= move


if HAVE_NUMBA:
    @njit(parallel=True, cache=True, nogil=True)
    def _fold_numba(spread, gradients, alpha0, inv_steps, keep, v, second_moment):  # pragma: no cover - jitted
        """fold_second_moment in place, one pass, no temporaries."""
        for r in prange(v.shape[0]):
            for c in range(v.shape[1]):
                share = (spread[r, c] - alpha0 * gradients[r, c]) * inv_steps
                old = second_moment[r, c]
                new = keep * old + (1 - keep) * share * share
                second_moment[r, c] = new
                v[r, c] = max(v[r, c] - old, 0) + new


def fold_second_moment(spread, gradients, alpha0, steps, keep, v, second_moment, impl=None) -> None:
    """The "lightgcn" split's fold, in place (all (N, d)): with n = (spread − α₀ G) / T,
        v ← max(v − M, 0) + M',   M' = keep · M + (1 − keep) · n²
    ``impl``: ``numba`` (the CPU default where it imports: one pass, no (N, d) temporaries, whose fresh
    pages cost this machine's VM seconds) or ``numpy`` (the oracle, and cupy)."""
    if (impl or ("numba" if HAVE_NUMBA and isinstance(v, np.ndarray) else "numpy")) == "numba":
        dtype = v.dtype.type
        _fold_numba(spread, gradients, dtype(alpha0), dtype(1 / steps), dtype(keep), v, second_moment)
        return
    xp = get_array_module(v)
    share = (spread - alpha0 * gradients) / steps
    v -= second_moment
    xp.maximum(v, 0, out=v)
    second_moment *= keep
    second_moment += (1 - keep) * share * share
    v += second_moment


def add_transpose(W, g, out, impl=None) -> None:
    """out (N, d) += Wᵀ g in place, W CSR (m, N), g (m, d). ``impl``: ``numba`` (the CPU default where
    it imports) or ``numpy`` (spmm.sum_row_parts' numpy twin, then one add on unique rows: the oracle,
    and cupy)."""
    if (impl or ("numba" if HAVE_NUMBA and isinstance(out, np.ndarray) else "numpy")) == "numba":
        _add_transpose_numba(W.indptr, W.indices, W.data.astype(out.dtype, copy=False),
                             np.ascontiguousarray(g, dtype=out.dtype), out)
        return
    rows, values = sum_row_parts([(W, g)], out.shape[0], impl="numpy")  # unique rows, summed
    out[rows] += values.astype(out.dtype, copy=False)


def move_rows(theta, follower, spread, gradients, alpha0, v, v_correction, step, eps, impl=None) -> None:
    """θ (N, d) −= step · (spread − α₀ G) / (√(v / v_correction) + ε) on every element with v > 0, the
    same on ``follower`` (N, d) when given. ``impl``: ``numba`` (the CPU default where it imports)
    or ``numpy`` (the oracle, and cupy)."""
    cpu = isinstance(theta, np.ndarray)
    if (impl or ("numba" if HAVE_NUMBA and cpu else "numpy")) == "numba":
        dtype = theta.dtype.type
        _move_numba(theta, follower_rows(theta, follower), spread, gradients, dtype(alpha0), v, dtype(v_correction),
                    dtype(step), dtype(eps))
        return
    xp = get_array_module(theta)
    move = step * (spread - alpha0 * gradients) / (xp.sqrt(v / v_correction) + eps)
    move = xp.where(v > 0, move, 0).astype(theta.dtype)
    theta -= move
    if follower is not None:
        follower -= move


REACH_SPLITS = ("history", "lightgcn")
DEFAULT_REACH = 1.0  # the reach's weight when 0 walks leave it to its default (sampled_recipe)
LAYER_QUANTIZER_WALKS = 6  # walks for a quantizer of every layer, which the reach cannot complete


def sampled_recipe(walks, reach, split, needs_layers: bool) -> dict:
    """Sampled propagation's {"walks", "reach", "reach_split"}, the ones left at None ("auto") filled in.

    The default is the history estimator completed by the reach, split as LightGCN's gradient: 0 walks,
    reach DEFAULT_REACH, "lightgcn" — an epoch about 7x implicit's BPR, linear in the interactions, and
    within ~1% of the full graph's test Recall@20 / NDCG@20 on ml-1m, lastfm and gowalla (fp32 and
    2 bits; bench/results/sampled_accuracy.md). Given walks > 0 the reach is off (it completes
    the history estimator only). A quantizer of every layer (``needs_layers``: bigear) cannot take the
    reach, which moves z's gradient alone, so by default it gets LAYER_QUANTIZER_WALKS walks instead.
    """
    if walks is None:
        walks = LAYER_QUANTIZER_WALKS if needs_layers else 0
    if reach is None:
        reach = DEFAULT_REACH if walks == 0 and not needs_layers else 0.0
    return {"walks": int(walks), "reach": float(reach), "reach_split": (split or "lightgcn") if reach else None}


class DeferredReach:
    """G and its move (module docstring) for ``model``'s embedding (N, d), at scale ``scale`` > 0 and
    ``split`` one of REACH_SPLITS. ``workspace``: a spmm.layer_sum buffers dict to share its scratch
    with (the SampledPropagation's: the move and the refresh never overlap)."""

    def __init__(self, model, scale: float, split: str = "history", workspace: dict | None = None):
        if not scale > 0:
            raise ValueError(f"--reach must be > 0 (or 0 for off), got {scale}")
        if split not in REACH_SPLITS:
            raise ValueError(f"--reach-split {split!r} unknown; choose from {REACH_SPLITS}")
        self.model, self.scale, self.split = model, float(scale), split
        self.alpha0 = float(model.layer_weights[0])  # P's own share of a row's gradient
        self.gradients = model.embedding.xp.zeros_like(model.embedding.data)
        self.workspace = {} if workspace is None else workspace  # P G ("spread") and layer_sum's scratch
        self.pending = False
        self.steps = 0  # steps accumulated since the last move (T)
        # the "lightgcn" split's M: the neighbours' share in Adam's second moment (N, d); checkpointed
        self.second_moment = model.embedding.xp.zeros_like(model.embedding.data) if split == "lightgcn" else None

    def accumulate(self, grad) -> None:
        """G += the step's z-gradient: the (W, g) parts of the embedding's row-sparse gradient, Wᵀ g
        (not the L2 term's own-row part, which LightGCN does not propagate either)."""
        parts = getattr(grad, "parts", ())
        for a, b in parts:
            if scipy_sparse_like(a):
                add_transpose(a, b, self.gradients)
                self.pending = True
        self.steps += 1
        if self.split == "lightgcn":  # the step keeps P's own share of g: α₀ g on the z-path parts
            grad.parts = [(a, self.alpha0 * b) if scipy_sparse_like(a) else (a, b) for a, b in parts]

    def move(self, optimizer, average=None) -> bool:
        """Apply the interval's reach to E⁽⁰⁾ (module docstring) and clear G; False when G is empty.
        ``optimizer``: the trainer's Adam (the embedding its first parameter, for v); ``average``
        (averaging.EmbeddingAverage or None): the move is one step of its window."""
        if not self.pending:
            self.steps = 0
            return False
        model, embedding = self.model, self.model.embedding
        if optimizer.params[0] is not embedding:
            raise RuntimeError("--reach: the embedding is not the optimizer's first parameter")
        with ag.no_grad():
            spread = layer_sum(model.norm_adj, self.gradients, model.layer_weights, self.workspace, result="spread")
        if self.second_moment is not None:
            self._fold_second_moment(optimizer, spread)
        if average is not None:
            average.before_step(None)
        move_rows(embedding.data, embedding.follower, spread, self.gradients, self.alpha0,
                  optimizer.v[0], 1 - optimizer.beta2 ** max(optimizer.t, 1), optimizer.lr * self.scale,
                  optimizer.eps)
        if average is not None:
            average.after_step()
        self.gradients[...] = 0
        self.pending = False
        self.steps = 0
        return True

    def state_dict(self) -> dict:
        """What a checkpoint carries: the lightgcn split's M (G is empty after each epoch's move)."""
        return {} if self.second_moment is None else {"second_moment": self.second_moment}

    def load_state_dict(self, state: dict) -> None:
        if self.second_moment is not None and "second_moment" in state:
            self.second_moment[...] = self.model.xp.asarray(state["second_moment"])

    def _fold_second_moment(self, optimizer, spread) -> None:
        """The "lightgcn" split: M ← β₂ᵀ M + (1 − β₂ᵀ) n², v ← max(v − M_before, 0) + M, with the per-step
        share n = (P − α₀ I) G / T (module docstring); the max keeps v ≥ 0 where Adam's own decay of
        v's steps shrank M's part below M_before (rows touched in the interval)."""
        steps = max(self.steps, 1)
        fold_second_moment(spread, self.gradients, self.alpha0, steps, optimizer.beta2 ** steps, optimizer.v[0],
                           self.second_moment)
