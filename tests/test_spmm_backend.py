import numpy as np
import pytest
import scipy.sparse

from gnaq import backend
from gnaq.spmm import HAVE_NUMBA, layer_sum, scatter_add_rows, set_spmm_impl, spmm


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_spmm_equals_scipy(dtype):
    A = scipy.sparse.random(200, 150, density=0.05, random_state=1, format="csr", dtype=dtype)
    A.data[A.indptr[5]:A.indptr[6]] = 0  # an empty row
    A.eliminate_zeros()
    X = np.random.default_rng(1).standard_normal((150, 17)).astype(dtype)
    fast, ref = spmm(A, X, impl="numba"), spmm(A, X, impl="scipy")
    assert fast.dtype == dtype
    np.testing.assert_allclose(fast, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    assert np.all(fast[5] == 0)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_numba_spmm_sums_in_csr_order_for_every_row_length():
    """Rows of 0..11 nonzeros cover the four-at-a-time passes and every remainder; the additions
    keep CSR order, so the float32 result equals the one-nonzero-at-a-time sum bit for bit."""
    rng = np.random.default_rng(3)
    lengths = np.arange(12).repeat(3)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    indices = rng.integers(0, 40, indptr[-1]).astype(np.int32)
    A = scipy.sparse.csr_matrix((rng.standard_normal(indptr[-1]).astype(np.float32), indices, indptr), shape=(len(lengths), 40))
    X = rng.standard_normal((40, 64)).astype(np.float32)
    expected = np.zeros((A.shape[0], 64), np.float32)
    for row in range(A.shape[0]):
        for p in range(indptr[row], indptr[row + 1]):
            expected[row] += A.data[p] * X[indices[p]]
    np.testing.assert_array_equal(spmm(A, X, impl="numba"), expected)


@pytest.mark.parametrize("impl", ["numba", "scipy"] if HAVE_NUMBA else ["scipy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_sum_equals_the_layer_by_layer_sum_in_its_own_buffers(impl, dtype):
    """layer_sum: Σₗ wₗ Aˡ x by Horner through spmm's shift (A h + w x in one pass), against the sum of
    explicit powers, for L = 0 … 3; the second call writes the same two buffers (no allocation)."""
    A = scipy.sparse.random(60, 60, density=0.1, random_state=2, format="csr", dtype=dtype)
    x = np.random.default_rng(4).standard_normal((60, 8)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for weights in ([0.7], [0.5, 0.5], [0.25, 0.25, 0.5], [0.1, 0.2, 0.3, 0.4]):
        expected, power = np.zeros_like(x), x.copy()
        for layer, w in enumerate(weights):
            expected += w * power
            power = A @ power
        buffers = {}
        z = layer_sum(A, x, weights, buffers, impl=impl)
        assert z is buffers["out"] and z.dtype == dtype
        np.testing.assert_allclose(z, expected, **tol)
        held = dict(buffers)
        again = layer_sum(A, 2 * x, weights, buffers, impl=impl)
        assert again is held["out"] and buffers["scratch"] is held["scratch"]
        np.testing.assert_allclose(again, 2 * expected, **tol)
        other = layer_sum(A, -x, weights, buffers, result="other", impl=impl)  # its own result, the same scratch
        assert other is not again and buffers["scratch"] is held["scratch"]
        np.testing.assert_allclose(other, -expected, **tol)
        np.testing.assert_allclose(again, 2 * expected, **tol)
    shifted = spmm(A, x, impl=impl, shift=x, weight=-0.5)
    np.testing.assert_allclose(shifted, A @ x - 0.5 * x, **tol)
    if impl == "numba":
        with pytest.raises(ValueError, match="out must be"):
            spmm(A, x, impl=impl, out=np.empty((60, 7), dtype))


def test_spmm_impl_selector_validates():
    with pytest.raises(ValueError, match="unknown spmm"):
        set_spmm_impl("magic")


def test_cpu_device_and_unknown_device():
    assert backend.resolve_device("cpu") == "cpu"
    assert backend.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        backend.resolve_device("tpu")


@pytest.mark.skipif(backend.cuda_available(), reason="a GPU is present")
def test_cuda_without_gpu_says_what_is_missing():
    with pytest.raises(backend.DeviceUnavailable, match="cupy|CUDA"):
        backend.resolve_device("cuda")


@pytest.mark.parametrize("impl", ["numpy", "numba"] if HAVE_NUMBA else ["numpy"])
def test_scatter_add_rows_sums_repeats(impl):
    out = scatter_add_rows(np.array([1, 1, 0]), np.ones((3, 2)), 3, impl=impl)
    np.testing.assert_array_equal(out, [[1, 1], [2, 2], [0, 0]])
    with pytest.raises(IndexError):
        scatter_add_rows(np.array([3]), np.ones((1, 2)), 3, impl=impl)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_numba_scatter_add_equals_np_add_at_bit_for_bit():
    rng = np.random.default_rng(3)
    index = rng.integers(0, 50, size=2000)  # many repeats: the summation order matters in float32
    values = rng.standard_normal((2000, 8)).astype(np.float32)
    fast, ref = scatter_add_rows(index, values, 60, impl="numba"), scatter_add_rows(index, values, 60, impl="numpy")
    assert fast.dtype == np.float32
    np.testing.assert_array_equal(fast, ref)
