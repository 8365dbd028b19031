"""Gradient checks of the quantizers' hand-written estimators (float64), two ways:

1. closed form: each backward equals its formula written out again here, element by element
   in plain Python (independent of the vectorised implementation);
2. relaxation: where the estimator is the exact gradient of a smooth (piecewise-smooth)
   relaxation — N2UQ's ramp sum, BiGeaR's Fourier series — central finite differences of
   that relaxation, at points away from its kinks.

Each check yields (name, max relative error). Used by tests and bench/gradcheck.py.
"""

from __future__ import annotations

import math

import numpy as np

from .. import autograd as ag
from ..graph import normalized_adjacency
from ..data import binary_csr
from .bigear import binarize, fourier_sign
from .gnaq import graph_quantize
from .n2uq import N2UQQuantizer, ramp_widths, relaxation, threshold_levels


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0), np.abs(b).max(initial=0), 1e-12)
    return float(np.abs(a - b).max(initial=0) / scale)


def _tiny_graph(n_users=5, n_items=4, seed=0):
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.5)
    return normalized_adjacency(binary_csr(users, items, n_users, n_items), dtype=np.float64)


def uniform_closed_form(bits, delta, seed=0, mixed=False):
    """graph_quantize backward vs the formula, loop by loop (per-node scales, Â r dense).
    ``mixed``: every other node at 4 bits (per-node widths and gradient scales)."""
    rng = np.random.default_rng(seed)
    adj = _tiny_graph(seed=seed)
    n, d = adj.shape[0], 3
    x = rng.standard_normal((n, d)) * 2
    s = rng.random((n, 1)) * 0.8 + 0.3
    g = rng.standard_normal((n, d))
    widths = np.where(np.arange(n) % 2 == 1, 4, bits)[:, None] if mixed else np.full((n, 1), bits)
    gscale = 1 / np.sqrt(d * 2.0 ** (widths - 1))
    xt, st = ag.Tensor(x, requires_grad=True), ag.Tensor(s, requires_grad=True)
    if mixed:
        graph_quantize(xt, st, widths.astype(float), gscale, adj, delta).backward(g)
    else:
        graph_quantize(xt, st, bits, float(gscale[0, 0]), adj, delta).backward(g)

    xhat = np.empty_like(x)
    q = np.empty_like(x)
    for i in range(n):
        half = 2 ** (int(widths[i, 0]) - 1)
        for k in range(d):
            q[i, k] = min(max(math.floor(x[i, k] / s[i, 0]), -half), half - 1)
            xhat[i, k] = s[i, 0] * (q[i, k] + 0.5)
    r_bar = adj.toarray() @ (x - xhat)
    gx, gs = np.zeros_like(x), np.zeros_like(s)
    for i in range(n):
        half = 2 ** (int(widths[i, 0]) - 1)
        for k in range(d):
            inside = -half <= x[i, k] / s[i, 0] < half
            gx[i, k] = g[i, k] * inside * (1 + delta * math.tanh(r_bar[i, k] / s[i, 0]))
            gs[i, 0] += g[i, k] * ((q[i, k] + 0.5) - inside * x[i, k] / s[i, 0]) * gscale[i, 0]
    if mixed:
        return max(_rel(xt.grad, gx), _rel(st.grad, gs), _rel(xhat, graph_quantize(x, s, widths.astype(float), 1).data))
    return max(_rel(xt.grad, gx), _rel(st.grad, gs), _rel(xt.data * 0 + xhat, graph_quantize(x, s, bits, 1).data))


def n2uq_checks(bits, seed=0):
    """N2UQ: closed form of all three gradients, and finite differences of the relaxation."""
    rng = np.random.default_rng(seed)
    q = N2UQQuantizer(bits)
    n = q.n
    T = np.sort(rng.standard_normal(n)) * 0.5 + np.arange(n) * 0.3
    s = 0.4
    widths = ramp_widths(T, s)
    x = rng.standard_normal((6, 4)) * (n * 0.3 + 0.5)
    # keep x away from ramp edges, where the relaxation has kinks
    for k in range(n):
        near = np.abs(np.abs(x - T[k]) - 0.5 * widths[k]) < 1e-3
        x[near] += 3e-3
    g = rng.standard_normal(x.shape)
    xt = ag.Tensor(x, requires_grad=True)
    Tt = ag.Tensor(T, requires_grad=True)
    log_s = ag.Tensor(np.array([math.log(s)]), requires_grad=True)
    out = q.quantize(xt, Tt, log_s)
    out.backward(g)
    levels = threshold_levels(x, T)
    grad_scale = 1 / math.sqrt(x.size * 2 ** (bits - 1))
    # closed form, element by element
    gx, gT, gs = np.zeros_like(x), np.zeros_like(T), 0.0
    for idx in np.ndindex(x.shape):
        gs += g[idx] * (levels[idx] - n / 2)
        for k in range(n):
            if abs(x[idx] - T[k]) < widths[k] / 2:
                gx[idx] += g[idx] * s / widths[k]
                gT[k] -= g[idx] * s / widths[k]
    closed = max(_rel(xt.grad, gx), _rel(Tt.grad, gT * grad_scale), _rel(log_s.grad, gs * grad_scale * s))
    # relaxation: F(x, T) = Σ g ⊙ s·(relax(x; T, w) − n/2), w fixed
    F = lambda xx, TT: float((g * s * (relaxation(xx, TT, widths) - n / 2)).sum())  # noqa: E731
    eps = 1e-6
    fd_x = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd_x[idx] = (F(up, T) - F(down, T)) / (2 * eps)
    fd_T = np.zeros_like(T)
    for k in range(n):
        up, down = T.copy(), T.copy()
        up[k] += eps
        down[k] -= eps
        fd_T[k] = (F(x, up) - F(x, down)) / (2 * eps)
    relaxed = max(_rel(xt.grad, fd_x), _rel(Tt.grad, fd_T * grad_scale))
    return closed, relaxed


def bigear_relaxation(seed=0):
    """BiGeaR: backward = ∂/∂x at x₀ of α(x)·sign(x) + α(x₀)·FourierSign(x), α = mean|x| per row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 4))
    g = rng.standard_normal(x.shape)
    xt = ag.Tensor(x, requires_grad=True)
    binarize(xt).backward(g)
    H = 3.0 * math.sqrt((x * x).mean()) + 1e-12  # a constant of the estimator
    alpha0 = np.abs(x).mean(axis=1, keepdims=True)
    F = lambda xx: float((g * (np.abs(xx).mean(axis=1, keepdims=True) * np.sign(xx)  # noqa: E731
                               + alpha0 * fourier_sign(xx, H))).sum())
    fd = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        fd[idx] = (F(up) - F(down)) / 2e-6
    return _rel(xt.grad, fd)


def refinement_against_dense(seed=0):
    """GNAQ's refined scales s⁽ˡ⁺¹⁾ = λ Â s⁽ˡ⁾ + (1 − λ) Δ σ(E⁽ˡ⁺¹⁾) vs a dense recomputation."""
    from ..models import LightGCN
    from .gnaq import GNAQQuantizer
    from .uniform import optimal_step
    adj = _tiny_graph(seed=seed)
    n_users, n_items = 5, 4
    quantizer = GNAQQuantizer(2, refine=True)
    model = LightGCN(n_users, n_items, adj, dim=3, n_layers=2, quantizer=quantizer, seed=seed, dtype=np.float64)
    quantizer.theta[0].data[:] = 0.3
    quantizer.theta[1].data[:] = -0.7
    _, z_scale = quantizer.forward()
    A = adj.toarray()
    E = model.embedding.data
    s = np.exp(quantizer.log_s0.data)
    scales = [s]
    for theta in (0.3, -0.7):
        E = A @ E
        lam = 1 / (1 + math.exp(-theta))
        rms = np.maximum(np.sqrt((E * E).mean(axis=1, keepdims=True)), 1e-8)  # isolated nodes: floor
        s = lam * (A @ s) + (1 - lam) * optimal_step(2) * rms
        scales.append(s)
    expected = math.exp(float(quantizer.log_kappa.data.ravel()[0])) * sum(scales) / 3
    return _rel(z_scale.data, expected)


def lsq_mixed_closed_form(seed=0):
    """LSQ with mixed widths: ẑ and ∂L/∂log s_w vs a loop over nodes (one learned step per width,
    gradient scale 1/√(N_w·d·2^(w−1)), the 40% highest-degree nodes of each side at 4 bits)."""
    from ..models import LightGCN
    from .lsq import LSQQuantizer
    adj = _tiny_graph(seed=seed)
    quantizer = LSQQuantizer(2, mix_share=0.4, mix_bits=4)
    model = LightGCN(5, 4, adj, dim=3, n_layers=2, quantizer=quantizer, seed=seed, dtype=np.float64, init_std=0.5)
    quantizer.log_s.data[:] = np.log([[0.4], [0.15]])
    x = quantizer.combination()
    g = np.random.default_rng(seed).standard_normal(x.shape)
    z = quantizer.combine(model.layers())
    z.backward(g)
    widths = quantizer.width.ravel().astype(int)
    steps = {2: 0.4, 4: 0.15}
    zhat, grad = np.empty_like(x), {2: 0.0, 4: 0.0}
    for i in range(len(x)):
        b = widths[i]
        s, half, count = steps[b], 2 ** (b - 1), int((widths == b).sum())
        for k in range(x.shape[1]):
            q = min(max(math.floor(x[i, k] / s), -half), half - 1)
            zhat[i, k] = s * (q + 0.5)
            inside = -half <= x[i, k] / s < half
            grad[b] += g[i, k] * ((q + 0.5) - inside * x[i, k] / s) / math.sqrt(count * x.shape[1] * 2 ** (b - 1))
    expected = np.array([[grad[2] * steps[2]], [grad[4] * steps[4]]])  # d/d log s = s · d/ds
    assert set(widths) == {2, 4}
    return max(_rel(z.data, zhat), _rel(quantizer.log_s.grad, expected))


def transform_coding_closed_form(seed=0):
    """gnaq ``transform="klt"`` with two node groups: ẑ, ∂L/∂log sₙ and ∂L/∂E⁽⁰⁾ vs a loop over
    nodes and axes (zr = zR, step sₙ·u·m^g_k, width b^g_k, 0 where b^g_k = 0; LSQ scale
    1/√(d'·2^(b−1)); ∂L/∂E⁽⁰⁾ = Σₗ αₗ Âˡ ((g ⊙ in ⊙ coded) Rᵀ), Â symmetric)."""
    from ..models import LightGCN
    from .gnaq import GNAQQuantizer
    adj = _tiny_graph(n_users=8, n_items=7, seed=seed)
    quantizer = GNAQQuantizer(2, quantize="z", transform="klt", busy_share=0.25, busy_bits=4, warmup=0)
    model = LightGCN(8, 7, adj, dim=4, n_layers=2, quantizer=quantizer, seed=seed, dtype=np.float64, init_std=0.5)
    quantizer.log_node.data[...] += np.random.default_rng(seed).normal(0, 0.2, quantizer.log_node.data.shape)
    z = quantizer.combination()
    g = np.random.default_rng(seed + 1).standard_normal((len(z), quantizer.axes.rotation.shape[1]))
    zq = quantizer.represent()
    zq.backward(g)
    axes, group = quantizer.axes, quantizer.node_group
    zr, s = z @ axes.rotation, np.exp(quantizer.log_node.data[:, 0])
    gscale = 1 / math.sqrt(zr.shape[1] * 2 ** (2 - 1))
    zhat, g_log, g_zr = np.zeros_like(zr), np.zeros(len(z)), np.zeros_like(zr)
    for i in range(len(z)):
        for k in range(zr.shape[1]):
            b, m = int(axes.widths[group[i], k]), int(axes.integer_steps[group[i], k])
            if b == 0:
                continue  # this group stores nothing on axis k: value 0, no gradient
            step, half = s[i] * axes.unit * m, 2 ** (b - 1)
            q = min(max(math.floor(zr[i, k] / step), -half), half - 1)
            zhat[i, k] = step * (q + 0.5)
            inside = -half <= zr[i, k] / step < half
            g_zr[i, k] = g[i, k] * inside
            g_log[i] += g[i, k] * ((q + 0.5) - inside * zr[i, k] / step) * gscale * step  # d/d log sₙ
    A = adj.toarray()
    g_z = g_zr @ axes.rotation.T
    g_e = (g_z + A @ g_z + A @ A @ g_z) / 3
    assert set(group.tolist()) == {0, 1} and (axes.widths == 0).any()  # both groups, an uncoded entry
    return max(_rel(zq.data, zhat), _rel(quantizer.log_node.grad[:, 0], g_log), _rel(model.embedding.grad, g_e))


def official_gnaq_checks(bits=2, seed=0):
    """gnaq-official: z = Σₗ αₗ Âˡ tanh(C[K]) vs a dense loop, and ∂(Σ g ⊙ z)/∂C vs its closed form
    Σ_{k: Kₙₖ = j} (1 − tanh²)·(Σₗ αₗ (Âᵀ)ˡ g)ₙₖ and vs central finite differences (codes fixed)."""
    from ..models import LightGCN
    from .gnaq_official import OfficialGNAQQuantizer
    rng = np.random.default_rng(seed)
    adj = _tiny_graph(seed=seed)
    quantizer = OfficialGNAQQuantizer(bits)
    LightGCN(5, 4, adj, dim=3, n_layers=2, quantizer=quantizer, seed=seed, dtype=np.float64)  # binds the quantizer
    n, v = quantizer.levels.shape
    quantizer.codes[...] = rng.integers(0, v, size=quantizer.codes.shape)
    K = quantizer.codes.astype(int)
    g = rng.standard_normal((n, 3))
    z = quantizer.represent()
    z.backward(g)
    A = adj.toarray()

    def dense_z(C):
        e0 = np.array([[math.tanh(C[i, K[i, k]]) for k in range(3)] for i in range(n)])
        return (e0 + A @ e0 + A @ A @ e0) / 3

    C = quantizer.levels.data.copy()
    forward = _rel(z.data, dense_z(C))
    back = (g + A.T @ g + A.T @ A.T @ g) / 3
    closed = np.zeros_like(C)
    for i in range(n):
        for k in range(3):
            closed[i, K[i, k]] += (1 - math.tanh(C[i, K[i, k]]) ** 2) * back[i, k]
    fd = np.zeros_like(C)
    for idx in np.ndindex(C.shape):
        up, down = C.copy(), C.copy()
        up[idx] += 1e-6
        down[idx] -= 1e-6
        fd[idx] = (float((g * dense_z(up)).sum()) - float((g * dense_z(down)).sum())) / 2e-6
    return forward, _rel(quantizer.levels.grad, closed), _rel(quantizer.levels.grad, fd)


def quantizer_checks():
    for bits in (1, 2, 4):
        yield f"uniform/gnaq estimator closed form (b={bits}, δ=0, STE+LSQ)", uniform_closed_form(bits, 0.0, bits)
        yield f"uniform/gnaq estimator closed form (b={bits}, δ=0.5, graph term)", uniform_closed_form(bits, 0.5, bits)
    yield "gnaq mixed widths 2/4 per node, estimator closed form (δ=0)", uniform_closed_form(2, 0.0, 5, mixed=True)
    yield "gnaq mixed widths 2/4 per node, estimator closed form (δ=0.5)", uniform_closed_form(2, 0.5, 6, mixed=True)
    yield "lsq mixed widths 2/4, one step per width, estimator closed form", lsq_mixed_closed_form(3)
    yield ("gnaq transform coding (principal axes, two node groups), estimator closed form",
           transform_coding_closed_form(0))
    for bits in (1, 2, 3):
        closed, relaxed = n2uq_checks(bits, seed=bits)
        yield f"n2uq estimator closed form (b={bits})", closed
        yield f"n2uq estimator vs finite differences of its relaxation (b={bits})", relaxed
    yield "bigear Fourier-sign estimator vs finite differences of its series", bigear_relaxation()
    yield "gnaq refined intervals vs dense reference (L=2)", refinement_against_dense()
    for bits in (1, 2):
        forward, closed, fd = official_gnaq_checks(bits, seed=bits)
        yield f"gnaq-official z = Σ αₗ Âˡ tanh(C[K]) vs dense loop (b={bits})", forward
        yield f"gnaq-official level gradient closed form (b={bits})", closed
        yield f"gnaq-official level gradient vs finite differences (b={bits})", fd

