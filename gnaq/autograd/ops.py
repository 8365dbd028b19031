"""Differentiable ops. Each op is its forward and its backward side by side.

Notation: ``g`` is ∂L/∂out, the closure adds ∂L/∂input = vjp(g) to each input's grad.
Broadcasting binary ops undo broadcasting with one helper, :func:`unbroadcast`.
"""

from __future__ import annotations

from .tensor import RowSparse, Tensor, as_tensor, make_output
from ..spmm import scatter_add_rows, spmm as _spmm


def unbroadcast(grad, shape):
    """Sum grad over the axes that broadcasting added or stretched, so it has ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _binary(a, b):
    a = as_tensor(a) if isinstance(a, Tensor) or not isinstance(b, Tensor) else as_tensor(a, like=b)
    b = as_tensor(b, like=a)
    return a, b


def _accum(t: Tensor, g) -> None:
    if t.requires_grad:
        t.accumulate(g)


# ---- elementwise arithmetic (broadcasting) -------------------------------------------
def add(a, b):
    """a + b."""
    a, b = _binary(a, b)
    def backward(g):
        _accum(a, unbroadcast(g, a.shape))
        _accum(b, unbroadcast(g, b.shape))
    return make_output(a.data + b.data, (a, b), backward)


def sub(a, b):
    """a − b."""
    a, b = _binary(a, b)
    def backward(g):
        _accum(a, unbroadcast(g, a.shape))
        _accum(b, unbroadcast(-g, b.shape))
    return make_output(a.data - b.data, (a, b), backward)


def mul(a, b):
    """a ⊙ b; ∂a = g ⊙ b, ∂b = g ⊙ a."""
    a, b = _binary(a, b)
    def backward(g):
        _accum(a, unbroadcast(g * b.data, a.shape))
        _accum(b, unbroadcast(g * a.data, b.shape))
    return make_output(a.data * b.data, (a, b), backward)


def div(a, b):
    """a / b; ∂a = g / b, ∂b = −g a / b²."""
    a, b = _binary(a, b)
    def backward(g):
        _accum(a, unbroadcast(g / b.data, a.shape))
        _accum(b, unbroadcast(-g * a.data / (b.data * b.data), b.shape))
    return make_output(a.data / b.data, (a, b), backward)


def neg(a):
    """−a."""
    a = as_tensor(a)
    return make_output(-a.data, (a,), lambda g: _accum(a, -g))


def power(a, exponent: float):
    """a ** p for a constant p; ∂a = g p a^(p−1)."""
    a = as_tensor(a)
    def backward(g):
        _accum(a, g * exponent * a.data ** (exponent - 1))
    return make_output(a.data ** exponent, (a,), backward)


# ---- linear algebra ------------------------------------------------------------------
def matmul(a, b):
    """a @ b for 2-D a (n, k), b (k, m); ∂a = g bᵀ, ∂b = aᵀ g."""
    a, b = _binary(a, b)
    def backward(g):
        if a.requires_grad:
            a.accumulate(g @ b.data.T)
        if b.requires_grad:
            b.accumulate(a.data.T @ g)
    return make_output(a.data @ b.data, (a, b), backward)


def spmm(A, x, A_T=None):
    """Sparse-dense product A @ x, A: constant CSR (n, m), x: (m, d); ∂x = Aᵀ g.

    Pass ``A_T`` (a CSR of Aᵀ, or A itself when A is symmetric, like LightGCN's Â) to avoid
    transposing on every backward.
    """
    x = as_tensor(x)
    def backward(g):
        transposed = A_T if A_T is not None else A.T.tocsr()
        _accum(x, _spmm(transposed, g))
    return make_output(_spmm(A, x.data), (x,), backward)


def propagate(A, x, weights):
    """LightGCN's layer sum in one op: z = Σₗ wₗ Aˡ x (l = 0 … L), A: symmetric (N, N) CSR, x: (N, d).

    ∂x = Σₗ wₗ Aˡ g (A = Aᵀ), by Horner: h ← w_L g; h ← A h + wₗ g for l = L−1 … 0.
    L products each way and one (N, d) accumulator, where a graph of per-layer spmm, mul and
    add ops keeps 2L + 1 temporaries and sums their gradients op by op.
    """
    x = as_tensor(x)
    last = len(weights) - 1
    layer = x.data
    out = layer * weights[0]
    for w in weights[1:]:
        layer = _spmm(A, layer)
        out += layer * w

    def backward(g):
        h = g * weights[last]
        for w in reversed(weights[:last]):
            h = _spmm(A, h)
            h += g * w
        _accum(x, h)
    return make_output(out, (x,), backward)


# ---- indexing ------------------------------------------------------------------------
def gather(a, index):
    """Rows a[index] (embedding lookup), index: int array (B,); ∂a = scatter-add of g rows.

    Repeated indices sum their gradients. A ``sparse_grad`` leaf receives RowSparse(index, g).
    """
    a = as_tensor(a)
    def backward(g):
        _accum(a, RowSparse(index, g, a.shape[0]) if a.sparse_grad else scatter_add_rows(index, g, a.shape[0]))
    return make_output(a.data[index], (a,), backward)


def bpr_margin(z, users, positives, negatives):
    """m_b = z[u_b] · (z[p_b] − z[n_b]) (B,) for index triples into z's rows; ∂z by one fused pass
    (gnaq/margins.py), repeats summed — what gather ×3, sub, mul and sum give, without their
    (B, d) temporaries. A ``sparse_grad`` leaf receives RowSparse over the triples' rows."""
    from ..margins import margin_grad_rows, margins, margins_grad
    z = as_tensor(z)
    def backward(g):
        if z.sparse_grad:
            _accum(z, RowSparse(*margin_grad_rows(z.data, users, positives, negatives, g), z.shape[0]))
        else:
            _accum(z, margins_grad(z.data, users, positives, negatives, g))
    return make_output(margins(z.data, users, positives, negatives), (z,), backward)


def sampled_rows(x, W, base, output: bool = False):
    """Rows of a propagation from a sampled operator: out = base + W x, W: constant CSR (T, N),
    x: (N, d), base: (T, d) constant; ∂x = Wᵀ g — row-sparse (RowSparse over W's columns) for a
    ``sparse_grad`` leaf, so the step costs O(nnz(W)·d), never O(N·d). ``output=True``: ``base``
    is already base + W x (computed by a fused kernel), only the backward is recorded."""
    x = as_tensor(x)
    def backward(g):
        if x.sparse_grad:
            _accum(x, RowSparse.transpose_product(W, g, x.shape[0]))
        else:
            _accum(x, _spmm(W.T.tocsr(), g))
    return make_output(base if output else base + _spmm(W, x.data), (x,), backward)


def concat(tensors, axis: int = 0):
    """Concatenate along an existing axis; ∂ of each input is its slice of g."""
    tensors = [as_tensor(t) for t in tensors]
    xp = tensors[0].xp
    bounds = [0]
    for t in tensors:
        bounds.append(bounds[-1] + t.shape[axis])
    def backward(g):
        for t, lo, hi in zip(tensors, bounds[:-1], bounds[1:]):
            index = [slice(None)] * g.ndim
            index[axis] = slice(lo, hi)
            _accum(t, g[tuple(index)])
    return make_output(xp.concatenate([t.data for t in tensors], axis=axis), tensors, backward)


def stack(tensors, axis: int = 0):
    """Stack along a new axis; ∂ of input i is g taken at position i of that axis."""
    tensors = [as_tensor(t) for t in tensors]
    xp = tensors[0].xp
    def backward(g):
        for i, t in enumerate(tensors):
            _accum(t, xp.take(g, i, axis=axis))
    return make_output(xp.stack([t.data for t in tensors], axis=axis), tensors, backward)


def reshape(a, shape):
    """a reshaped; ∂a = g reshaped back."""
    a = as_tensor(a)
    return make_output(a.data.reshape(shape), (a,), lambda g: _accum(a, g.reshape(a.shape)))


# ---- reductions ----------------------------------------------------------------------
def _expand_reduced(g, shape, axis, keepdims):
    if axis is None or keepdims:
        return g
    axes = (axis,) if isinstance(axis, int) else axis
    axes = sorted(ax % len(shape) for ax in axes)
    for ax in axes:
        g = g.reshape(g.shape[:ax] + (1,) + g.shape[ax:])
    return g


def sum(a, axis=None, keepdims: bool = False):  # noqa: A001 - mirrors numpy's name
    """Σ over axis (all when None); ∂a = g broadcast back to a's shape."""
    a = as_tensor(a)
    xp = a.xp
    def backward(g):
        _accum(a, xp.broadcast_to(_expand_reduced(g, a.shape, axis, keepdims), a.shape).copy())
    return make_output(a.data.sum(axis=axis, keepdims=keepdims), (a,), backward)


def mean(a, axis=None, keepdims: bool = False):
    """Mean over axis; ∂a = g / count broadcast back."""
    a = as_tensor(a)
    axes = range(a.ndim) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    count = 1
    for ax in axes:
        count *= a.shape[ax]
    return mul(sum(a, axis=axis, keepdims=keepdims), 1.0 / count)


# ---- elementwise functions -----------------------------------------------------------
def exp(a):
    """eᵃ; ∂a = g eᵃ."""
    a = as_tensor(a)
    out_data = a.xp.exp(a.data)
    return make_output(out_data, (a,), lambda g: _accum(a, g * out_data))


def log(a):
    """ln a; ∂a = g / a."""
    a = as_tensor(a)
    return make_output(a.xp.log(a.data), (a,), lambda g: _accum(a, g / a.data))


def _stable_sigmoid(xp, x):
    """σ(x) = 1/(1+e⁻ˣ) without overflow for large |x|."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def sigmoid(a):
    """σ(a); ∂a = g σ(a)(1 − σ(a))."""
    a = as_tensor(a)
    s = _stable_sigmoid(a.xp, a.data)
    return make_output(s, (a,), lambda g: _accum(a, g * s * (1 - s)))


def tanh(a):
    """tanh a; ∂a = g (1 − tanh² a)."""
    a = as_tensor(a)
    t = a.xp.tanh(a.data)
    return make_output(t, (a,), lambda g: _accum(a, g * (1 - t * t)))


def softplus(a):
    """log(1 + eᵃ) = max(a, 0) + log1p(e^−|a|) (stable); ∂a = g σ(a)."""
    a = as_tensor(a)
    xp = a.xp
    out_data = xp.maximum(a.data, 0) + xp.log1p(xp.exp(-xp.abs(a.data)))
    return make_output(out_data, (a,), lambda g: _accum(a, g * _stable_sigmoid(xp, a.data)))


def log_sigmoid(a):
    """log σ(a) = −softplus(−a) (stable for large |a|); ∂a = g (1 − σ(a)) = g σ(−a)."""
    a = as_tensor(a)
    xp = a.xp
    out_data = xp.minimum(a.data, 0) - xp.log1p(xp.exp(-xp.abs(a.data)))
    return make_output(out_data, (a,), lambda g: _accum(a, g * _stable_sigmoid(xp, -a.data)))


def where(condition, a, b):
    """condition ? a : b elementwise (condition constant); ∂a = g·c, ∂b = g·(1 − c)."""
    a, b = _binary(a, b)
    xp = a.xp
    condition = xp.asarray(condition)  # a host array is moved to the data's device (cupy refuses numpy)

    def backward(g):
        _accum(a, unbroadcast(xp.where(condition, g, 0), a.shape))
        _accum(b, unbroadcast(xp.where(condition, 0, g), b.shape))
    return make_output(xp.where(condition, a.data, b.data), (a, b), backward)


def clip(a, lo, hi):
    """min(max(a, lo), hi) for constant bounds; ∂a = g inside [lo, hi], 0 outside."""
    a = as_tensor(a)
    xp = a.xp
    inside = (a.data >= lo) & (a.data <= hi)
    return make_output(xp.clip(a.data, lo, hi), (a,), lambda g: _accum(a, g * inside))


# ---- user-defined ops --------------------------------------------------------------
def custom_op(inputs, output, vjp):
    """An op whose backward is written by hand (the quantizers' estimators).

    inputs: tensors; output: the forward result (array); vjp(g) returns one array (or None)
    per input, each of that input's shape.
    """
    inputs = [as_tensor(t) for t in inputs]
    def backward(g):
        for t, grad in zip(inputs, vjp(g)):
            if grad is not None:
                _accum(t, grad)
    return make_output(output, inputs, backward)


# ---- operator overloading ----------------------------------------------------------
Tensor.__add__ = add
Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__sub__ = sub
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = mul
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__neg__ = neg
Tensor.__pow__ = power
Tensor.__matmul__ = matmul
Tensor.__getitem__ = lambda self, index: gather(self, index)
Tensor.sum = sum
Tensor.mean = mean
