"""Transform coding of z: rotate onto its principal axes, give each axis its own width.

Scores are dot products, so an orthogonal rotation R costs nothing on the device:
(zᵤR)·(zᵢR) = zᵤ·zᵢ — the file stores the rotated rows and the reader never sees R. On the
principal axes (the KLT: eigenvectors of the d × d second-moment matrix zᵀz/N, variances λₖ
descending) most of z's variance sits in few axes, and bits go where the variance is:

    widths bₖ ∈ {0..max_bits}, Σₖ bₖ = B (a row's bits), by reverse water-filling (allocate_bits):
        the next bit to the axis whose expected squared error λₖ·4^(−bₖ) it cuts most
    relative step of axis k:  rₖ = (Δ_{bₖ} / Δ_b) · √(λₖ / mean λ)   (Δ_b: uniform.optimal_step)

so that node n with scale sₙ = Δ_b·σₙ steps Δ_{bₖ}·σₙ·√(λₖ/mean λ) on axis k: the Gaussian
MSE-optimal step for that axis's spread. Node groups (gnaq's ``busy_share``: the busiest nodes) may
get more bits per row B_g than the others, on the same axes: each group g its widths b^g_k and steps.
An axis no group codes is dropped (R keeps d' < d columns); a group at 0 bits on a kept axis
stores nothing there and its value is 0.

Where z's variance is spread evenly (gowalla), its own coordinates may code it better than the
principal axes (a rotation makes light-tailed coordinates Gaussian-like): rotation "identity" keeps
R = I (widths and steps per coordinate), "auto" takes whichever of the two gives the smaller relative
squared error ‖z − ẑRᵀ‖²/‖z‖² at one group (relative_error).

The file keeps scores exact integers: every step is an integer multiple of one unit,
r^g_k ≈ u·m^g_k with m^g_k = round(MAX_STEP · r^g_k / max r) ∈ [1, MAX_STEP], and the quantizer
trains with those rounded steps, so what is trained is what is stored. A code c of node n (group
g) on axis k is worth sₙ·u·m^g_k·(c + ½ − 2^(b^g_k−1)), and
ŷᵤᵢ = ¼ (sᵤu)(sᵢu) Σₖ (m^{g(u)}_k aᵤₖ)(m^{g(i)}_k aᵢₖ) with the odd integers a (0 where b = 0).
"""

from __future__ import annotations

import numpy as np

from .uniform import optimal_step

MAX_STEP = 64      # the largest step multiplier (gnaq.edge: MAX_COLUMN_STEP)
MAX_AXIS_BITS = 8  # the widest axis: at 4, the busiest nodes' top axes were capped (PTQ 93.4% vs 95.5% of fp32)


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
    """(d,) rₖ = (Δ_{bₖ}/Δ_b)·√(λₖ / mean λ) (Δ taken as 1 on an axis at 0 bits)."""
    variance = np.asarray(variance, dtype=np.float64)
    delta = np.array([optimal_step(int(b)) if b else 1.0 for b in widths])
    return delta / optimal_step(bits) * np.sqrt(np.maximum(variance, 1e-30) / max(variance.mean(), 1e-30))


def integer_steps(steps, widths) -> tuple:
    """(m (G, d') int64, u): u·m ≈ steps where widths > 0, m ∈ [1, MAX_STEP] there and 0 elsewhere."""
    steps, coded = np.asarray(steps, dtype=np.float64), np.asarray(widths) > 0
    largest = float(steps[coded].max())
    m = np.where(coded, np.clip(np.rint(MAX_STEP * steps / largest), 1, MAX_STEP), 0).astype(np.int64)
    return m, largest / MAX_STEP


ROTATIONS = ("klt", "identity", "auto")


def axes_of(z, rotation: str):
    """(λ (d,), R (d, d)): z's principal axes ("klt", variances descending) or its own coordinates
    ("identity", λₖ = mean zₙₖ²)."""
    if rotation == "klt":
        return principal_axes(z)
    z = np.asarray(z, dtype=np.float64)
    return (z * z).mean(0), np.eye(z.shape[1])


def relative_error(z, code) -> float:
    """‖z − ẑ Rᵀ‖² / ‖z‖² of one group's code on z (N, d), node scale Δ_b·σ(zₙR) as training starts."""
    from .uniform import quantize_forward, row_rms
    z = np.asarray(z, dtype=np.float64)
    zr = z @ code.rotation
    widths = code.widths[0]
    step = optimal_step(code.bits) * row_rms(zr) * np.where(widths > 0, code.steps[0], 1.0)
    zq = quantize_forward(zr, step, widths[None, :].astype(np.float64))[1] * (widths > 0)
    return float(((zq @ code.rotation.T - z) ** 2).sum() / max((z * z).sum(), 1e-30))


class AxisCode:
    """The transform of one run, fixed once chosen (saved with the checkpoint): R (d, d') onto the
    kept axes (principal, or z's own: columns of I), per node group g its widths (G, d') and integer
    steps (G, d'), the unit u, and the average width b the steps are relative to (Δ_b)."""

    def __init__(self, rotation, widths, steps, unit: float, bits: int = 2):
        self.bits = int(bits)
        self.rotation = np.asarray(rotation)
        self.widths = np.asarray(widths, dtype=np.int64).reshape(-1, self.rotation.shape[1])
        self.integer_steps = np.asarray(steps, dtype=np.int64).reshape(self.widths.shape)
        self.unit = float(unit)

    @classmethod
    def fit(cls, z, bits: int, row_bits=None, max_bits: int = MAX_AXIS_BITS, rotation: str = "klt") -> "AxisCode":
        """Axes of z (N, d) — principal ("klt"), its own ("identity"), or ("auto") whichever of the two
        codes z with the smaller relative squared error at one group of bits·d a row; ``row_bits``: bits
        per row of each node group (default one group of bits·d), each spread over the axes by
        water-filling; steps relative to Δ_bits."""
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if rotation == "auto":
            errors = {r: relative_error(z, cls.fit(z, bits, None, max_bits, r)) for r in ("klt", "identity")}
            rotation = min(errors, key=errors.get)
        lam, axes = axes_of(z, rotation)
        row_bits = [bits * len(lam)] if row_bits is None else list(row_bits)
        widths = np.stack([allocate_bits(lam, int(total), max_bits) for total in row_bits])
        kept = widths.max(0) > 0
        steps = np.stack([relative_steps(w, lam, bits) for w in widths])
        m, unit = integer_steps(steps[:, kept], widths[:, kept])
        return cls(axes[:, kept], widths[:, kept], m, unit, bits)

    @property
    def steps(self) -> np.ndarray:
        """(G, d') the trained and stored relative steps u·m (0 where a group codes nothing)."""
        return self.unit * self.integer_steps.astype(np.float64)

    def state(self) -> dict:
        return {"axes_rotation": self.rotation, "axes_widths": self.widths, "axes_steps": self.integer_steps,
                "axes_unit": np.array(self.unit), "axes_bits": np.array(self.bits)}

    @classmethod
    def from_state(cls, state: dict) -> "AxisCode":
        return cls(state["axes_rotation"], state["axes_widths"], state["axes_steps"], float(state["axes_unit"]),
                   int(state.get("axes_bits", 2)))
