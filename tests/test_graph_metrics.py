import math

import numpy as np
import pytest
import scipy.sparse

from gnaq.data import binary_csr
from gnaq.graph import normalized_adjacency
from gnaq.metrics import evaluate, top_k_items


def test_normalized_adjacency_matches_dense_reference():
    R = binary_csr([0, 0, 1, 2], [0, 2, 2, 1], 4, 4)  # user 3 and item 3 are isolated
    A_hat = normalized_adjacency(R).toarray()
    A = np.zeros((8, 8))
    A[:4, 4:] = R.toarray()
    A[4:, :4] = R.toarray().T
    deg = A.sum(1)
    with np.errstate(divide="ignore"):
        d = np.where(deg > 0, deg ** -0.5, 0)
    np.testing.assert_allclose(A_hat, d[:, None] * A * d[None, :], rtol=1e-6)
    assert A_hat.dtype == np.float32 and np.all(np.isfinite(A_hat))
    assert np.all(A_hat[3] == 0) and np.all(A_hat[:, 7] == 0)
    np.testing.assert_array_equal(A_hat, A_hat.T)


def brute_force_metrics(scores, train, test, k):
    """Plain-Python reference: sort each user's unseen items by (-score, index)."""
    out = {"recall": [], "ndcg": [], "precision": [], "hitrate": []}
    for u in range(scores.shape[0]):
        relevant = set(test[u].indices)
        if not relevant:
            continue
        seen = set(train[u].indices)
        ranked = sorted((i for i in range(scores.shape[1]) if i not in seen), key=lambda i: (-scores[u, i], i))[:k]
        hits = [1 if i in relevant else 0 for i in ranked]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        out["recall"].append(sum(hits) / len(relevant))
        out["precision"].append(sum(hits) / k)
        out["hitrate"].append(float(sum(hits) > 0))
        out["ndcg"].append(dcg / idcg)
    result = {f"{m}@{k}": float(np.mean(v)) for m, v in out.items()}
    result[f"ndcg@{k}_se"] = float(np.std(out["ndcg"]) / np.sqrt(len(out["ndcg"])))  # population std / √n
    return result


@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_brute_force_including_ties(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, d = 13, 17, 3
    # integer-valued embeddings make many exact score ties
    U = rng.integers(-2, 3, size=(n_users, d)).astype(np.float32)
    V = rng.integers(-2, 3, size=(n_items, d)).astype(np.float32)
    train = scipy.sparse.random(n_users, n_items, density=0.25, random_state=seed, format="csr")
    test = scipy.sparse.random(n_users, n_items, density=0.2, random_state=seed + 100, format="csr")
    test = (test - test.multiply(train > 0)).tocsr()
    test.eliminate_zeros()
    train.data[:] = 1
    test.data[:] = 1
    got = evaluate(U, V, train, test, ks=(1, 5, 10), chunk_size=4)
    scores = U @ V.T
    for k in (1, 5, 10):
        for name, value in brute_force_metrics(scores, train, test, k).items():
            assert got[name] == pytest.approx(value, abs=1e-12), (name, seed)
    assert got["users"] == int((np.diff(test.indptr) > 0).sum())


def test_chunking_does_not_change_results():
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((30, 4)), rng.standard_normal((20, 4))
    train = scipy.sparse.random(30, 20, density=0.2, random_state=1, format="csr")
    test = scipy.sparse.random(30, 20, density=0.1, random_state=2, format="csr")
    a = evaluate(U, V, train, test, chunk_size=1)
    b = evaluate(U, V, train, test, chunk_size=1000)
    assert a == pytest.approx(b, rel=1e-12)


def test_top_k_tie_break_by_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0]])
    assert top_k_items(scores, 2).tolist() == [[1, 2]]
    assert top_k_items(scores, 4).tolist() == [[1, 2, 4, 3]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_top_k_twins_match_a_stable_sort_with_ties_and_masked_items(dtype):
    from gnaq.metrics import HAVE_NUMBA
    rng = np.random.default_rng(7)
    impls = ("numba", "numpy") if HAVE_NUMBA else ("numpy",)
    for trial in range(200):
        n_rows, n = int(rng.integers(1, 6)), int(rng.integers(1, 40))
        scores = rng.integers(0, 4, size=(n_rows, n)).astype(dtype)  # few values: many ties
        if trial % 2 and dtype is not np.int64:
            scores[rng.random((n_rows, n)) < 0.3] = -np.inf  # masked items, tied among themselves
        for k in (1, 2, int(rng.integers(1, n + 1)), n, n + 3):
            expected = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]
            for impl in impls:
                assert top_k_items(scores, k, impl=impl).tolist() == expected.tolist(), (impl, k, scores)
