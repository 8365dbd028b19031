"""Central finite differences against analytic gradients, one generic checker for every op.

    ∂f/∂xᵢ ≈ (f(x + εeᵢ) − f(x − εeᵢ)) / 2ε,   error O(ε²) for smooth f.

The scalar objective is ``sum(w ⊙ f(inputs))`` with a fixed random ``w``, so every output
element's vector-Jacobian product is exercised. Run in float64.
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor


def numerical_grads(fn, arrays, weight, eps: float = 1e-6):
    """Finite-difference gradients of sum(weight * fn(*arrays)) w.r.t. each array."""
    def objective():
        out = fn(*[Tensor(a) for a in arrays])
        return float((np.asarray(out.data) * weight).sum())
    grads = []
    for a in arrays:
        grad = np.zeros_like(a)
        flat, gflat = a.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            up = objective()
            flat[i] = keep - eps
            down = objective()
            flat[i] = keep
            gflat[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


def analytic_grads(fn, arrays, weight):
    """Backward-pass gradients of sum(weight * fn(*arrays)) w.r.t. each array."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    out.backward(np.asarray(weight, dtype=out.dtype).reshape(out.shape))
    return [t.grad if t.grad is not None else np.zeros_like(t.data) for t in tensors]


def max_relative_error(fn, arrays, seed: int = 0, eps: float = 1e-6) -> float:
    """max over inputs of ‖analytic − numeric‖∞ / max(‖numeric‖∞, ‖analytic‖∞, 1e-12)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    out = fn(*[Tensor(a) for a in arrays])
    weight = np.random.default_rng(seed).standard_normal(np.shape(out.data))
    worst = 0.0
    for num, ana in zip(numerical_grads(fn, arrays, weight, eps), analytic_grads(fn, arrays, weight)):
        scale = max(np.abs(num).max(initial=0.0), np.abs(ana).max(initial=0.0), 1e-12)
        worst = max(worst, float(np.abs(num - ana).max(initial=0.0) / scale))
    return worst


def op_cases(seed: int = 0):
    """(name, fn, inputs) for every differentiable op, with broadcasting, repeated gather
    indices and fan-out, at points away from kinks (clip/where are piecewise linear)."""
    import scipy.sparse

    from . import ops
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal
    positive = lambda *shape: rng.random(shape) + 0.5  # noqa: E731
    A = scipy.sparse.random(6, 5, density=0.4, random_state=seed, format="csr")
    S = scipy.sparse.random(5, 5, density=0.5, random_state=seed + 1, format="csr")
    S = (S + S.T).tocsr()  # propagate needs a symmetric matrix, as Â is
    index = np.array([0, 3, 3, 1, 0, 4])  # repeats: gradients must sum
    cond = rng.random((4, 3)) > 0.5
    x_clip = normal((4, 3))
    x_clip[np.abs(np.abs(x_clip) - 0.7) < 0.05] += 0.2  # keep away from the clip corners
    return [
        ("add (broadcast)", ops.add, [normal((4, 3)), normal((1, 3))]),
        ("sub (broadcast)", ops.sub, [normal((4, 3)), normal((3,))]),
        ("mul (broadcast)", ops.mul, [normal((4, 3)), normal((4, 1))]),
        ("div (broadcast)", ops.div, [normal((4, 3)), positive(1, 3)]),
        ("neg", ops.neg, [normal((4, 3))]),
        ("power", lambda a: ops.power(a, 3.0), [normal((4, 3))]),
        ("power (fractional)", lambda a: ops.power(a, 0.5), [positive(4, 3)]),
        ("matmul", ops.matmul, [normal((4, 3)), normal((3, 2))]),
        ("spmm", lambda x: ops.spmm(A, x), [normal((5, 3))]),
        ("propagate (layer sum)", lambda x: ops.propagate(S, x, [0.25, 0.25, 0.25, 0.25]), [normal((5, 3))]),
        ("gather (repeated rows)", lambda a: ops.gather(a, index), [normal((5, 3))]),
        ("bpr_margin (repeated rows)", lambda z: ops.bpr_margin(z, index, index[::-1], (index + 2) % 5),
         [normal((5, 3))]),
        ("concat", lambda a, b: ops.concat([a, b], axis=0), [normal((2, 3)), normal((4, 3))]),
        ("concat axis 1", lambda a, b: ops.concat([a, b], axis=1), [normal((2, 3)), normal((2, 1))]),
        ("stack", lambda a, b: ops.stack([a, b], axis=1), [normal((2, 3)), normal((2, 3))]),
        ("reshape", lambda a: ops.reshape(a, (3, 4)), [normal((4, 3))]),
        ("sum all", lambda a: ops.sum(a), [normal((4, 3))]),
        ("sum axis 0", lambda a: ops.sum(a, axis=0), [normal((4, 3))]),
        ("sum axis 1 keepdims", lambda a: ops.sum(a, axis=1, keepdims=True), [normal((4, 3))]),
        ("mean axis 1", lambda a: ops.mean(a, axis=1), [normal((4, 3))]),
        ("exp", ops.exp, [normal((4, 3))]),
        ("log", ops.log, [positive(4, 3)]),
        ("sigmoid", ops.sigmoid, [3 * normal((4, 3))]),
        ("tanh", ops.tanh, [normal((4, 3))]),
        ("softplus", ops.softplus, [5 * normal((4, 3))]),
        ("log_sigmoid", ops.log_sigmoid, [5 * normal((4, 3))]),
        ("where", lambda a, b: ops.where(cond, a, b), [normal((4, 3)), normal((1, 3))]),
        ("clip", lambda a: ops.clip(a, -0.7, 0.7), [x_clip]),
        ("fan-out a*a + a", lambda a: ops.add(ops.mul(a, a), a), [normal((4, 3))]),
        ("fan-out gather twice", lambda a: ops.mul(ops.gather(a, index), ops.gather(a, index[::-1])),
         [normal((5, 3))]),
    ]
