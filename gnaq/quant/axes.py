"""Transform coding of z: rotate onto its principal axes, give each axis its own width.

Scores are dot products, so an orthogonal rotation R costs nothing on the device:
(zᵤR)·(zᵢR) = zᵤ·zᵢ — the file stores the rotated rows and the reader never sees R. On the
principal axes (the KLT: eigenvectors of the d × d second-moment matrix zᵀz/N, variances λₖ
descending) most of z's variance sits in few axes, and bits go where the variance is:

    widths bₖ ∈ {0..max_bits}, Σₖ bₖ = budget · d, by reverse water-filling (allocate_bits):
        the next bit to the axis whose expected squared error λₖ·4^(−bₖ) it cuts most
    an axis at 0 bits is dropped (its column is not stored: R keeps d' < d columns)
    relative step of axis k:  rₖ = (Δ_{bₖ} / Δ_b) · √(λₖ / mean λ)   (Δ_b: uniform.optimal_step)

so that node n with scale sₙ = Δ_b·σₙ steps Δ_{bₖ}·σₙ·√(λₖ/mean λ) on axis k: the Gaussian
MSE-optimal step for that axis's spread. The file keeps scores exact integers per user: the
squared relative steps are rounded to integer column weights, rₖ² ≈ u²·Wₖ with
Wₖ = round(MAX_WEIGHT · rₖ² / max rₖ²) ≥ 1, and the quantizer trains with those rounded steps
(u·√Wₖ), so what is trained is what is stored. A code c of node n on axis k is worth
sₙ·u·√Wₖ·(c + ½ − 2^(bₖ−1)), and ŷᵤᵢ = ¼ (sᵤu)(sᵢu) Σₖ Wₖ aᵤₖ aᵢₖ with the odd integers a.
"""

from __future__ import annotations

import math

import numpy as np

from .uniform import optimal_step

MAX_WEIGHT = 4096  # the largest column weight: |Σₖ Wₖ aᵤₖ aᵢₖ| < 2^31 for d ≤ 2330 at 4 bits
MAX_AXIS_BITS = 4


def principal_axes(z):
    """(λ (d,), R (d, d)) of zᵀz/N for z (N, d): eigenvalues descending, eigenvectors as columns."""
    z = np.asarray(z, dtype=np.float64)
    lam, axes = np.linalg.eigh(z.T @ z / len(z))
    return np.maximum(lam[::-1], 0.0), axes[:, ::-1]


def allocate_bits(variance, total: int, max_bits: int = MAX_AXIS_BITS) -> np.ndarray:
    """(d,) integer widths summing to ``total`` (≤ d·max_bits): greedily give the next bit to the
    axis whose expected squared error λₖ·4^(−bₖ) it cuts most (reverse water-filling, 6 dB a bit;
    ties → the smaller axis index)."""
    variance = np.asarray(variance, dtype=np.float64)
    if not 0 <= total <= max_bits * len(variance):
        raise ValueError(f"cannot spread {total} bits over {len(variance)} axes of at most {max_bits} bits")
    widths = np.zeros(len(variance), dtype=np.int64)
    for _ in range(total):
        gain = np.where(widths < max_bits, variance * 4.0 ** (-widths), -1.0)
        widths[int(np.argmax(gain))] += 1
    return widths


def relative_steps(widths, variance, bits: int) -> np.ndarray:
    """(d,) rₖ = (Δ_{bₖ}/Δ_b)·√(λₖ / mean λ) (Δ taken as 1 on a dropped axis, bₖ = 0)."""
    variance = np.asarray(variance, dtype=np.float64)
    delta = np.array([optimal_step(int(b)) if b else 1.0 for b in widths])
    return delta / optimal_step(bits) * np.sqrt(np.maximum(variance, 1e-30) / max(variance.mean(), 1e-30))


def column_weights(steps) -> tuple:
    """(W (d',) int64 in [1, MAX_WEIGHT], u) with u·√Wₖ ≈ stepsₖ: the integer weights of the file."""
    steps = np.asarray(steps, dtype=np.float64)
    square_max = float((steps ** 2).max())
    weights = np.maximum(np.rint(MAX_WEIGHT * steps ** 2 / square_max), 1).astype(np.int64)
    return weights, math.sqrt(square_max / MAX_WEIGHT)


class AxisCode:
    """The transform of one run: R (d, d') onto the kept principal axes, their widths (d',) and
    integer weights (d',), and the unit u; fixed once chosen (saved with the checkpoint)."""

    def __init__(self, rotation, widths, weights, unit: float):
        self.rotation = np.asarray(rotation)
        self.widths = np.asarray(widths, dtype=np.int64)
        self.weights = np.asarray(weights, dtype=np.int64)
        self.unit = float(unit)

    @classmethod
    def fit(cls, z, bits: int, max_bits: int = MAX_AXIS_BITS) -> "AxisCode":
        """KLT of z (N, d) with widths for an average of ``bits`` per dimension of z."""
        lam, axes = principal_axes(z)
        widths = allocate_bits(lam, bits * len(lam), max_bits)
        kept = widths > 0
        weights, unit = column_weights(relative_steps(widths, lam, bits)[kept])
        return cls(axes[:, kept], widths[kept], weights, unit)

    @property
    def steps(self) -> np.ndarray:
        """(d',) the trained and stored relative steps u·√Wₖ."""
        return self.unit * np.sqrt(self.weights.astype(np.float64))

    def state(self) -> dict:
        return {"axes_rotation": self.rotation, "axes_widths": self.widths, "axes_weights": self.weights,
                "axes_unit": np.array(self.unit)}

    @classmethod
    def from_state(cls, state: dict) -> "AxisCode":
        return cls(state["axes_rotation"], state["axes_widths"], state["axes_weights"], float(state["axes_unit"]))
