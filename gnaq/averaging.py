"""Weight averaging: an exponential moving average of a per-node table, evaluated in place of it.

With θₜ (N, d) the table after optimizer step t and β the decay, the average is

    ā₀ = θ₀,    āₜ = β āₜ₋₁ + (1 − β) θₜ

(Polyak–Ruppert averaging with an exponential window of ~1/(1 − β) steps). Averaging removes the
step-to-step jitter that gradient noise leaves in θ at a constant learning rate; sampled
propagation's random walks add such noise (sampled.py), and the average is what the trainer
evaluates, keeps as the best checkpoint and exports while it trains in full precision.

Lazily, at O(rows a step touches · d): a row-sparse step changes θ on rows R only, so a row outside
R keeps its θ and k such steps compose in closed form,

    ā ← θ + βᵏ (ā − θ),

applied when the row is next touched (before the step changes its θ) and for every row when the
average is read (``synced``). ``last`` (N,) records the step each row's average has reached.
``before_step(None)`` (a full-graph step changes every row) updates every row each step — the
oracle the lazy path is tested against. With Adam's row-sparse step the catch-up, the update and the
blend of a row run back to back while the row is in cache (``adam_rows``): one pass over the table's,
the moments' and the average's rows instead of three.
"""

from __future__ import annotations

import numpy as np

from .optim import adam_rows as adam_rows_of, adam_scalars, follower_rows

try:  # the lazy rows' passes have numba twins of the numpy lines below (the CPU default)
    from numba import njit, prange
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - the no-numba CI leg
    HAVE_NUMBA = False

if HAVE_NUMBA:
    from .optim import adam_row_numba

    @njit(cache=True, nogil=True)
    def _catch_up_row(average, theta, last, r, t, beta):  # pragma: no cover - jitted
        decay = beta ** (t - last[r])
        for c in range(average.shape[1]):
            average[r, c] = theta[r, c] + decay * (average[r, c] - theta[r, c])
        last[r] = t

    @njit(cache=True, nogil=True)
    def _blend_row(average, theta, last, r, t, beta):  # pragma: no cover - jitted
        for c in range(average.shape[1]):
            average[r, c] = beta * average[r, c] + (1 - beta) * theta[r, c]
        last[r] = t

    @njit(parallel=True, cache=True, nogil=True)
    def _catch_up_rows_numba(average, theta, last, rows, t, beta):  # pragma: no cover - jitted
        for i in prange(rows.shape[0]):
            _catch_up_row(average, theta, last, rows[i], t, beta)

    @njit(parallel=True, cache=True, nogil=True)
    def _blend_rows_numba(average, theta, last, rows, t, beta):  # pragma: no cover - jitted
        for i in prange(rows.shape[0]):
            _blend_row(average, theta, last, rows[i], t, beta)

    @njit(parallel=True, cache=True, nogil=True)
    def _averaged_adam_rows_numba(average, last, t, beta, theta, m, v, follower, rows, g, b1, b2, step_size,
                                  v_correction, eps):  # pragma: no cover - jitted
        """Per row, while it is in cache: catch-up to t, Adam, blend at t + 1 (one pass over memory)."""
        for i in prange(rows.shape[0]):
            r = rows[i]
            _catch_up_row(average, theta, last, r, t, beta)
            adam_row_numba(theta, m, v, follower, r, g, i, b1, b2, step_size, v_correction, eps)
            _blend_row(average, theta, last, r, t + 1, beta)


class EmbeddingAverage:
    """ā of ``param.data`` (N, d) with decay ``beta`` in (0, 1). Each optimizer step either calls
    ``before_step(rows)`` and ``after_step()`` around its own update of the table (rows None: every
    row changes), or is ``adam_rows`` — optim.Adam.step(average=...) does one or the other."""

    def __init__(self, param, beta: float, impl: str | None = None):
        if not 0.0 < beta < 1.0:
            raise ValueError(f"--average must be in (0, 1) (or 0 for off), got {beta}")
        self.param, self.beta = param, float(beta)
        xp = param.xp
        self.average = param.data.copy()
        self.last = xp.zeros(param.data.shape[0], dtype=xp.int64)
        self.t = 0
        self._rows = None
        cpu = isinstance(param.data, np.ndarray) and param.data.ndim == 2
        self.impl = impl or ("numba" if HAVE_NUMBA and cpu else "numpy")

    def _catch_up(self, rows) -> None:
        """Bring ``rows`` (None: all) to step t: ā ← θ + β^(t − last) (ā − θ); θ was constant since."""
        theta = self.param.data
        if rows is None:
            decay = (self.beta ** (self.t - self.last).astype(theta.dtype))[:, None]
            self.average -= theta
            self.average *= decay
            self.average += theta
            self.last[:] = self.t
            return
        if self.impl == "numba":
            _catch_up_rows_numba(self.average, theta, self.last, rows, self.t, theta.dtype.type(self.beta))
            return
        decay = (self.beta ** (self.t - self.last[rows]).astype(theta.dtype))[:, None]
        self.average[rows] = theta[rows] + decay * (self.average[rows] - theta[rows])
        self.last[rows] = self.t

    def before_step(self, rows=None) -> None:
        """The coming step changes θ on ``rows`` (unique; None: every row — rows behind after lazy
        steps are caught up first)."""
        self._rows = rows
        if rows is not None:
            self._catch_up(rows)
        elif bool((self.last != self.t).any()):
            self._catch_up(None)

    def after_step(self) -> None:
        """ā ← β ā + (1 − β) θ on the rows the step changed (with every row, the dense update)."""
        rows, theta, b = self._rows, self.param.data, self.beta
        self.t += 1
        if rows is None:  # as b ā + (1 − b) θ, in place: no (N, d) temporary
            self.average -= theta
            self.average *= b
            self.average += theta
            self.last[:] = self.t
        elif self.impl == "numba":
            _blend_rows_numba(self.average, theta, self.last, rows, self.t, theta.dtype.type(b))
        else:
            self.average[rows] = b * self.average[rows] + (1 - b) * theta[rows]
            self.last[rows] = self.t
        self._rows = None

    def adam_rows(self, m, v, rows, g, b1, b2, step_size, v_correction, eps, follower=None) -> None:
        """One step that is optim.adam_rows on the table's ``rows`` (unique), with the rows' catch-up
        before it and their blend after it — numba: the three in one pass over each row; numpy:
        before_step, optim.adam_rows, after_step (the oracle). ``follower``: as optim.adam_rows."""
        theta = self.param.data
        if self.impl != "numba":
            self.before_step(rows)
            adam_rows_of(theta, m, v, rows, g, b1, b2, step_size, v_correction, eps, impl="numpy", follower=follower)
            self.after_step()
            return
        _averaged_adam_rows_numba(self.average, self.last, self.t, theta.dtype.type(self.beta), theta, m, v,
                                  follower_rows(theta, follower), rows,
                                  np.ascontiguousarray(g, dtype=theta.dtype),
                                  *adam_scalars(theta.dtype, b1, b2, step_size, v_correction, eps))
        self.t += 1

    def synced(self):
        """ā at step t, every row (the array itself: copy before changing it)."""
        self._catch_up(None)
        return self.average

    def state_dict(self) -> dict:
        return {"average": self.synced(), "t": np.int64(self.t)}

    def load_state_dict(self, state: dict) -> None:
        xp = self.param.xp
        self.average[...] = xp.asarray(state["average"])
        self.t = int(state["t"])
        self.last[:] = self.t
