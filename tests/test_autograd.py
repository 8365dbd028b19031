import numpy as np
import pytest
import scipy.sparse

from gnaq import autograd as ag
from gnaq.autograd.gradcheck import max_relative_error, op_cases
from gnaq.margins import HAVE_NUMBA


@pytest.mark.parametrize("name, fn, inputs", op_cases(seed=0), ids=lambda c: c if isinstance(c, str) else "")
def test_every_op_matches_finite_differences(name, fn, inputs):
    assert max_relative_error(fn, inputs) < 1e-6, name


@pytest.mark.parametrize("seed", [1, 2])
def test_every_op_other_random_points(seed):
    for name, fn, inputs in op_cases(seed=seed):
        assert max_relative_error(fn, inputs, seed=seed) < 1e-6, name


def test_spmm_backward_is_transpose_product():
    rng = np.random.default_rng(3)
    A = scipy.sparse.random(40, 30, density=0.1, random_state=3, format="csr")
    x = ag.Tensor(rng.standard_normal((30, 5)), requires_grad=True)
    g = rng.standard_normal((40, 5))
    ag.spmm(A, x).backward(g)
    np.testing.assert_allclose(x.grad, A.T @ g, rtol=1e-12, atol=1e-12)


def test_gather_sums_repeated_indices():
    x = ag.Tensor(np.zeros((3, 2)), requires_grad=True)
    ag.gather(x, np.array([2, 2, 0, 2])).backward(np.ones((4, 2)))
    np.testing.assert_array_equal(x.grad, [[1, 1], [0, 0], [3, 3]])


def test_fan_out_accumulates_and_leaf_grads_are_independent():
    a = ag.Tensor(np.array([2.0, 3.0]), requires_grad=True)
    b = ag.Tensor(np.array([1.0, 1.0]), requires_grad=True)
    out = ag.sum(a + b)        # a and b receive the same upstream array
    out2 = ag.sum(a * a)
    (out + out2).backward()
    np.testing.assert_array_equal(a.grad, [5.0, 7.0])
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_no_grad_records_nothing():
    a = ag.Tensor(np.ones(3), requires_grad=True)
    with ag.no_grad():
        out = a * 2.0
    assert not out.requires_grad and out._parents == ()
    assert ag.is_grad_enabled()


def test_float32_default_and_float64_on_request():
    assert ag.Tensor([1.0, 2.0]).dtype == np.float32
    assert (ag.Tensor(np.ones(2, dtype=np.float32)) * 3.0).dtype == np.float32
    ag.set_default_dtype(np.float64)
    try:
        assert ag.Tensor([1.0]).dtype == np.float64
    finally:
        ag.set_default_dtype(np.float32)
    with pytest.raises(ValueError, match="float32 or float64"):
        ag.set_default_dtype(np.int32)


def test_stable_functions_at_extremes():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    ls = ag.log_sigmoid(ag.Tensor(x)).data
    sp = ag.softplus(ag.Tensor(x)).data
    assert np.all(np.isfinite(ls)) and np.all(np.isfinite(sp))
    np.testing.assert_allclose(ls, -np.logaddexp(0, -x))
    np.testing.assert_allclose(sp, np.logaddexp(0, x))
    np.testing.assert_allclose(ag.sigmoid(ag.Tensor(x)).data, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-4)


def test_backward_needs_scalar_or_grad():
    a = ag.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        (a * 2.0).backward()


def test_custom_op_uses_the_given_vjp():
    a = ag.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    out = ag.custom_op([a], np.sign(a.data), lambda g: [3.0 * g])
    out.backward(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(a.grad, [3.0, 6.0])


def test_adam_matches_textbook_update():
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(4)
    target = rng.standard_normal(4)
    p = ag.Tensor(theta0.copy(), requires_grad=True)
    opt = ag_adam = __import__("gnaq.optim", fromlist=["Adam"]).Adam([p], lr=0.1)
    theta, m, v = theta0.copy(), np.zeros(4), np.zeros(4)
    for t in range(1, 6):
        opt.zero_grad()
        ag.sum((p - target) ** 2.0).backward()
        ag_adam.step()
        g = 2 * (theta - target)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        theta = theta - 0.1 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p.data, theta, rtol=1e-12)


def test_sgd_descends():
    from gnaq.optim import SGD
    p = ag.Tensor(np.array([3.0]), requires_grad=True)
    opt = SGD([p], lr=0.25)
    for _ in range(3):
        opt.zero_grad()
        ag.sum(p * p).backward()
        opt.step()
    np.testing.assert_allclose(p.data, [3.0 * 0.5 ** 3])


@pytest.mark.parametrize("impl", ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba not installed"))])
def test_bpr_margins_and_their_gradient_equal_the_gathers_in_float64(impl):
    """margins.margins / margins_grad (numba and the numpy twin) against the autograd spelling
    gather ×3 → zᵤ·(zₚ − zₙ); a sparse_grad leaf gets the same gradient row-sparse; a row index
    out of range raises."""
    from gnaq.margins import margins, margins_grad
    rng = np.random.default_rng(5)
    z = rng.standard_normal((40, 7))
    users, pos, neg = (rng.integers(0, 40, size=300) for _ in range(3))  # many repeats
    g = rng.standard_normal(300)
    reference = ag.Tensor(z.copy(), requires_grad=True)
    u, p, n = (ag.gather(reference, i) for i in (users, pos, neg))
    m = ag.sum(u * (p - n), axis=1)
    ag.sum(m * g).backward()
    assert np.allclose(margins(z, users, pos, neg, impl=impl), m.data, rtol=0, atol=1e-12)
    assert np.allclose(margins_grad(z, users, pos, neg, g, impl=impl), reference.grad, rtol=0, atol=1e-12)
    leaf = ag.Tensor(z.copy(), requires_grad=True)
    leaf.sparse_grad = True
    ag.sum(ag.bpr_margin(leaf, users, pos, neg) * g).backward()
    assert isinstance(leaf.grad, ag.RowSparse)
    assert np.allclose(leaf.grad.dense(), reference.grad, rtol=0, atol=1e-12)
    with pytest.raises(IndexError):
        margins(z, users, pos, np.append(neg[:-1], 40), impl=impl)
    with pytest.raises(IndexError):
        margins_grad(z, users, pos, np.append(neg[:-1], 40), g, impl=impl)
