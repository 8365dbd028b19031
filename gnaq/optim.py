"""Optimizers over lists of Tensors, updating ``.data`` in place.

Adam (Kingma & Ba 2015), with t the step count:
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
    θ ← θ − lr · m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)
A row-sparse gradient (autograd.RowSparse, sampled training) updates only its rows, with the same
formulas and the global t: "lazy" Adam (TensorFlow's LazyAdam, PyTorch's SparseAdam) — the moments
of rows outside the batch do not decay that step, so a row moves only on steps that touch it.
SGD: θ ← θ − lr · g (with optional momentum μ: b ← μ b + g, θ ← θ − lr b).

A parameter's ``follower`` (Tensor.follower, a table of its shape or None) takes every step the
parameter takes, on the same rows: where θ ← θ − s, F ← F − s, so F − θ stays what it was. Sampled training
keeps its drift E⁽⁰⁾ − H that way (sampled.py), reading one table where it would read two.
"""

from __future__ import annotations

import numpy as np

from .autograd import RowSparse
from .backend import get_array_module

try:  # the lazy (row-sparse) Adam update has a numba twin of the numpy rows below
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the no-numba CI leg
    HAVE_NUMBA = False

if HAVE_NUMBA:
    @njit(cache=True, nogil=True)
    def adam_row_numba(param, m, v, follower, r, g, i, b1, b2, step_size, v_correction, eps):  # pragma: no cover
        """Adam on row r of param/m/v from gradient row g[i] (the loop body of _adam_rows_numba, and of
        averaging's averaged Adam rows); the same step on follower's row r unless it has no rows."""
        follow = follower.shape[0] > 0
        for c in range(g.shape[1]):
            gi = g[i, c]
            mi = m[r, c] * b1 + (1 - b1) * gi
            vi = v[r, c] * b2 + (1 - b2) * (gi * gi)
            m[r, c] = mi
            v[r, c] = vi
            step = step_size * mi / (np.sqrt(vi / v_correction) + eps)
            param[r, c] -= step
            if follow:
                follower[r, c] -= step

    @njit(parallel=True, cache=True, nogil=True)
    def _adam_rows_numba(param, m, v, follower, rows, g, b1, b2, step_size, v_correction, eps):  # pragma: no cover
        for i in prange(rows.shape[0]):
            adam_row_numba(param, m, v, follower, rows[i], g, i, b1, b2, step_size, v_correction, eps)


def follower_rows(param, follower):
    """The kernels' follower argument: the table, or a (0, d) array of param's dtype for none."""
    return follower if follower is not None else np.empty((0, param.shape[1]), dtype=param.dtype)


def adam_scalars(dtype, b1, b2, step_size, v_correction, eps) -> tuple:
    """The kernel's scalar arguments in the table's dtype (float32 tables stay float32 in the loop)."""
    return tuple(dtype.type(x) for x in (b1, b2, step_size, v_correction, eps))


def adam_rows(param, m, v, rows, g, b1, b2, step_size, v_correction, eps, impl=None, follower=None):
    """Adam on rows ``rows`` (unique) of param/m/v (n, d) in place, gradient g (len(rows), d); the
    same step on ``follower``'s rows (n, d) when given.
    ``impl``: ``numba`` (the default on the CPU where it imports) or ``numpy`` (the oracle, and cupy)."""
    xp_cpu = isinstance(param, np.ndarray)
    if (impl or ("numba" if HAVE_NUMBA and xp_cpu and param.ndim == 2 else "numpy")) == "numba":
        _adam_rows_numba(param, m, v, follower_rows(param, follower), rows, np.ascontiguousarray(g, dtype=param.dtype),
                         *adam_scalars(param.dtype, b1, b2, step_size, v_correction, eps))
        return
    xp = get_array_module(param)
    m_rows = m[rows] * b1 + (1 - b1) * g
    v_rows = v[rows] * b2 + (1 - b2) * (g * g)
    m[rows], v[rows] = m_rows, v_rows
    step = step_size * m_rows / (xp.sqrt(v_rows / v_correction) + eps)
    param[rows] -= step
    if follower is not None:
        follower[rows] -= step


class Optimizer:
    def __init__(self, params, lr: float):
        self.params = list(params)
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SGD(Optimizer):
    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0):
        super().__init__(params, lr)
        self.momentum = momentum
        self.buffers = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.dense() if isinstance(p.grad, RowSparse) else p.grad
            if self.momentum:
                self.buffers[i] = g if self.buffers[i] is None else self.momentum * self.buffers[i] + g
                g = self.buffers[i]
            p.data -= self.lr * g


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = [p.xp.zeros_like(p.data) for p in self.params]
        self.v = [p.xp.zeros_like(p.data) for p in self.params]

    def step(self, average=None) -> None:
        """One update of every parameter with a gradient. ``average`` (averaging.EmbeddingAverage):
        its table's update also advances the average by one step — for a row-sparse gradient in the
        same pass over the rows (``average.adam_rows``)."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1 - b1 ** self.t)
        v_correction = 1 - b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            averaged = average is not None and p is average.param
            if isinstance(g, RowSparse):
                rows, g = g.coalesce()
                if averaged:
                    average.adam_rows(m, v, rows, g, b1, b2, step_size, v_correction, self.eps, p.follower)
                else:
                    adam_rows(p.data, m, v, rows, g, b1, b2, step_size, v_correction, self.eps, follower=p.follower)
                continue
            if averaged:
                average.before_step(None)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            step = step_size * m / (p.xp.sqrt(v / v_correction) + self.eps)
            p.data -= step
            if p.follower is not None:
                p.follower -= step
            if averaged:
                average.after_step()

    def state_dict(self) -> dict:
        state = {"t": self.t}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            state[f"m{i}"], state[f"v{i}"] = m, v
        return state

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        for i, p in enumerate(self.params):
            self.m[i][...] = p.xp.asarray(state[f"m{i}"])
            self.v[i][...] = p.xp.asarray(state[f"v{i}"])
