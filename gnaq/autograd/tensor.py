"""Tensor: an array (numpy or cupy) with a gradient and the closure that propagates it.

Reverse mode in the micrograd style, scaled to arrays: every op creates its output Tensor with
``parents`` and a ``_backward(g)`` closure that adds each parent's vector-Jacobian product into
``parent.grad``. :meth:`Tensor.backward` sorts the graph topologically once and runs the
closures in reverse order, so a tensor used several times (fan-out) sums its gradients.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..backend import get_array_module

_state = {"grad_enabled": True, "dtype": np.float32}


def get_default_dtype():
    """Floating dtype used for tensors built from Python numbers or lists (float32 unless set)."""
    return _state["dtype"]


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (float32 or float64)."""
    dtype = np.dtype(dtype).type
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {np.dtype(dtype).name}")
    _state["dtype"] = dtype


def is_grad_enabled() -> bool:
    return _state["grad_enabled"]


@contextlib.contextmanager
def no_grad():
    """Within this block ops record no graph (evaluation, optimizer updates)."""
    previous = _state["grad_enabled"]
    _state["grad_enabled"] = False
    try:
        yield
    finally:
        _state["grad_enabled"] = previous


class Tensor:
    """A node of the computation graph.

    data: numpy or cupy array. grad: same shape, or None until backward reaches it.
    requires_grad: leaves (parameters) set it; op outputs inherit it from their parents.
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "name", "sparse_grad", "follower")
    __array_priority__ = 100  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        xp = get_array_module(data)
        if not hasattr(data, "dtype"):
            data = xp.asarray(data, dtype=get_default_dtype())
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad
        self._parents = ()
        self._backward = None
        self.name = name
        self.sparse_grad = False  # a leaf whose row gathers leave a RowSparse grad (sampled training)
        self.follower = None  # a table of data's shape the optimizer moves by each step it takes (optim.py)

    # ---- array-like facade -------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def xp(self):
        return get_array_module(self.data)

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        label = f", name={self.name!r}" if self.name else ""
        return f"Tensor(shape={tuple(self.shape)}, dtype={self.dtype}, requires_grad={self.requires_grad}{label})"

    def item(self) -> float:
        return float(self.data)

    def numpy(self):
        """The data as a numpy array (copied from the GPU if needed)."""
        return self.data.get() if hasattr(self.data, "get") else np.asarray(self.data)

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    # ---- graph -------------------------------------------------------------------------
    def accumulate(self, g) -> None:
        """grad += g (never in place: g may be shared with a sibling parent). A RowSparse g
        stays row-sparse while every term is; mixed with a dense one it is added densely."""
        if self.grad is None:
            self.grad = g
        elif isinstance(self.grad, RowSparse):
            self.grad = self.grad + g if isinstance(g, RowSparse) else g + self.grad.dense()
        else:
            self.grad = self.grad + (g.dense() if isinstance(g, RowSparse) else g)

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor; grad defaults to ones (scalar losses).

        Intermediate (non-leaf) gradients and closures are freed unless ``retain_graph``.
        """
        xp = self.xp
        if grad is None:
            if self.data.size != 1:
                raise ValueError("backward() without a gradient needs a scalar tensor; "
                                 f"this one has shape {tuple(self.shape)}")
            grad = xp.ones_like(self.data)
        self.grad = grad
        for node in reversed(_topological_order(self)):
            if node._backward is not None and node.grad is not None:
                node._backward(node.grad)
                if not retain_graph:
                    node.grad = None
                    node._backward = None
                    node._parents = ()

    # ---- operators (defined in ops.py, attached there) ---------------------------------


class RowSparse:
    """A gradient that is zero but on some rows, as a list of parts summed lazily:
    (rows (k,), values (k, d)) — ∂L/∂T[rows[j]] += values[j] — or (W, g) for a CSR W (m, n_rows)
    and g (m, d) — ∂L/∂T += Wᵀ g, the backward of a sampled propagation.

    What a row gather of a large table (the embedding, per-node scales) leaves behind in sampled
    training, where a dense (N, d) gradient per step would cost O(N·d) — more than the step's own
    work. ``coalesce`` sums every part in one pass (spmm.sum_row_parts), without concatenating them.
    """

    __slots__ = ("parts", "n_rows")

    def __init__(self, rows, values, n_rows: int, parts=None):
        self.parts = parts if parts is not None else [(rows, values)]
        self.n_rows = int(n_rows)

    @classmethod
    def transpose_product(cls, W, g, n_rows: int) -> "RowSparse":
        return cls(None, None, n_rows, parts=[(W, g)])

    def __add__(self, other: "RowSparse") -> "RowSparse":
        return RowSparse(None, None, self.n_rows, parts=self.parts + other.parts)

    def coalesce(self):
        """(unique rows (u,) ascending, their summed values (u, d))."""
        from ..spmm import sum_row_parts
        return sum_row_parts(self.parts, self.n_rows)

    def dense(self):
        from ..spmm import scatter_add_rows
        rows, values = self.coalesce()
        return scatter_add_rows(rows, values, self.n_rows)


def _topological_order(root: Tensor) -> list:
    """Nodes reachable from root that require grad, parents before children (iterative DFS)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent.requires_grad and id(parent) not in seen:
                stack.append((parent, False))
    return order


def make_output(data, parents, backward) -> Tensor:
    """Wrap an op's result; record parents and the backward closure if any parent needs grad."""
    out = Tensor(data)
    if _state["grad_enabled"] and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._parents = tuple(parents)
        out._backward = backward
    return out


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """x as a Tensor; Python/numpy scalars take the dtype of ``like`` (or the default dtype)."""
    if isinstance(x, Tensor):
        return x
    if like is not None:
        return Tensor(like.xp.asarray(x, dtype=like.dtype))
    return Tensor(x)
