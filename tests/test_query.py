"""One query API for a fitted Recommender and a loaded .gnaq file, in implicit's conventions."""

import io

import numpy as np
import pytest
import scipy.sparse

import gnaq
from conftest import FAST, make_recommender  # noqa: F401  (the fitted-model fixtures are in conftest.py)
from gnaq import edge



@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("q") / "model.gnaq"
    fitted.save(path)
    return path


def test_a_fitted_model_and_its_file_answer_a_batch_identically(fitted, saved, user_items):
    users = np.arange(0, 500, 7)
    loaded = [gnaq.load(saved), gnaq.Recommender.load(saved), gnaq.load(io.BytesIO(saved.read_bytes())),
              gnaq.load(saved.read_bytes())]
    expected = fitted.recommend(users, user_items[users], N=20)
    for model in loaded:
        ids, scores = model.recommend(users, user_items[users], N=20)
        np.testing.assert_array_equal(ids, expected[0])
        assert scores.tobytes() == expected[1].tobytes()
        for call in (lambda m: m.similar_items([3, 9], N=6), lambda m: m.similar_users(11, N=4),
                     lambda m: m.recommend(5, N=7)):  # liked items: the file's history = what fit saw
            a, b = call(fitted), call(model)
            np.testing.assert_array_equal(a[0], b[0])
            assert a[1].tobytes() == b[1].tobytes()
        np.testing.assert_array_equal(model.user_factors, fitted.user_factors)
        np.testing.assert_array_equal(model.item_factors, fitted.item_factors)


def test_factors_are_the_deployed_file_rows_and_scores_their_products(fitted, saved):
    device = edge.load(saved, "python")
    np.testing.assert_array_equal(fitted.item_factors[4], device.item_vector(4))
    ids, scores = fitted.recommend(2, N=5, filter_already_liked_items=False)
    brute = fitted.user_factors[2] @ fitted.item_factors.T
    np.testing.assert_array_equal(ids, np.argsort(-brute, kind="stable")[:5])
    np.testing.assert_allclose(scores, brute[ids], rtol=1e-6)


def test_implicit_dtypes_and_shapes(fitted, user_items):
    ids, scores = fitted.recommend(np.arange(4), user_items[:4], N=3)
    assert ids.dtype == np.int32 and scores.dtype == np.float32 and ids.shape == (4, 3)


def test_an_empty_user_items_row_recommends(fitted, user_items):
    empty = scipy.sparse.csr_matrix((1, user_items.shape[1]))
    ids, _ = fitted.recommend(3, empty, N=5)
    unfiltered, _ = fitted.recommend(3, N=5, filter_already_liked_items=False)
    np.testing.assert_array_equal(ids, unfiltered)


def test_batched_items_restriction_returns_only_candidates(fitted, user_items):
    users = np.array([3, 4, 8])
    candidates = np.concatenate([user_items[3].indices[:3], [1, 2, 50, 60]])  # some liked by user 3
    ids, scores = fitted.recommend(users, user_items[users], N=10, items=candidates)
    assert ids.shape == (3, min(10, len(set(candidates))))
    assert set(ids.ravel().tolist()) <= set(candidates.tolist())
    for row, u in enumerate(users):
        liked = set(user_items[u].indices.tolist())
        finite = np.isfinite(scores[row])
        assert not liked & set(ids[row][finite].tolist())  # liked candidates only as −inf padding
        assert finite.sum() == len(set(candidates.tolist()) - liked)
    with pytest.raises(ValueError, match="both items and filter_items"):
        fitted.recommend(3, N=5, items=[1, 2], filter_items=[3])


def test_filter_items_removes_them(fitted):
    top, _ = fitted.recommend(7, N=5)
    again, _ = fitted.recommend(7, N=5, filter_items=top[:2])
    assert not set(top[:2].tolist()) & set(again.tolist())
    np.testing.assert_array_equal(again[:3], top[2:])


def test_recalculate_user_folds_in_from_the_row_alone_even_for_new_users(fitted, saved, user_items):
    row = scipy.sparse.csr_matrix(([1.0, 1.0, 1.0], ([0, 0, 0], [5, 17, 40])), shape=(1, user_items.shape[1]))
    ids, scores = fitted.recommend("someone new", row, N=8, recalculate_user=True)
    assert not {5, 17, 40} & set(ids.tolist())
    device = edge.load(saved, "python")  # the device computes the same user from the same items
    top = device.recommend_for_items([5, 17, 40], k=8)
    np.testing.assert_array_equal(ids, [i for i, _ in top])
    np.testing.assert_allclose(scores, [s for _, s in top], rtol=1e-5)
    z = fitted.recalculate_user(0, row)
    np.testing.assert_allclose(z, device.fold_in([5, 17, 40]), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="recalculate_user needs user_items"):
        fitted.recommend(1, recalculate_user=True)


def test_similar_items_and_users_take_implicit_filters(fitted, user_items):
    ids, scores = fitted.similar_items(7, N=5)
    assert ids[0] == 7 and scores[0] == pytest.approx(1.0)
    filtered, _ = fitted.similar_items(7, N=4, filter_items=[7])
    np.testing.assert_array_equal(filtered, ids[1:5])
    within, _ = fitted.similar_items(7, N=10, items=[1, 7, 30])
    assert sorted(within.tolist()) == [1, 7, 30]
    users, _ = fitted.similar_users(11, N=3, filter_users=[11])
    assert 11 not in users.tolist()
    item_users = user_items.T.tocsr()[[7]]
    again, _ = fitted.similar_items(7, N=5, recalculate_item=True, item_users=item_users)
    assert len(again) == 5


def test_an_item_only_file_serves_folded_in_users_and_refuses_the_rest(fitted, saved, tmp_path):
    path = tmp_path / "items.gnaq"
    info = fitted.save(path, users=False)
    assert info["file_bytes"] < saved.stat().st_size
    device = gnaq.load(path)
    assert device.user_factors is None and edge.load(path).n_users == 0
    row = scipy.sparse.csr_matrix(([1.0, 1.0], ([0, 0], [5, 17])), shape=(1, len(device.item_ids)))
    ids, scores = device.recommend(0, row, N=6, recalculate_user=True)
    expected = fitted.recommend(0, row, N=6, recalculate_user=True)
    np.testing.assert_array_equal(ids, expected[0])
    assert scores.tobytes() == expected[1].tobytes()
    with pytest.raises(ValueError, match="item-only file"):
        device.recommend(0, row, N=6)
    with pytest.raises(NotImplementedError):
        device.similar_users(0)


def test_an_item_only_file_without_its_gram_folds_in_as_the_file_with_it(fitted, tmp_path):
    with_gram, without = tmp_path / "with.gnaq", tmp_path / "without.gnaq"
    a, b = fitted.save(with_gram, users=False), fitted.save(without, users=False, gram=False)
    d = fitted.item_factors.shape[1]
    gram_bytes = 4 * d * (d + 1) // 2  # + its entry in the header's section table
    assert gram_bytes < a["file_bytes"] - b["file_bytes"] < gram_bytes + 64 and "item_gram" not in b["sections"]
    assert b["float32_file_bytes"] - b["file_bytes"] == a["float32_file_bytes"] - a["file_bytes"]
    liked = [5, 17, 40, 41]
    row = scipy.sparse.csr_matrix((np.ones(len(liked)), ([0] * len(liked), liked)), shape=(1, fitted.item_factors.shape[0]))
    expected = gnaq.load(with_gram).recommend(0, row, N=8, recalculate_user=True)
    ids, scores = gnaq.load(without).recommend(0, row, N=8, recalculate_user=True)
    np.testing.assert_array_equal(ids, expected[0])
    np.testing.assert_allclose(scores, expected[1], rtol=1e-5)
    for backend in ("python", "numpy"):  # the device computes Ḡ from the rows it decoded: the stored one
        stored, computed = edge.load(with_gram, backend), edge.load(without, backend)
        assert computed.item_gram is None
        np.testing.assert_allclose(computed.fold_in(liked), stored.fold_in(liked), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(np.asarray(computed.item_gram), np.asarray(stored.item_gram), rtol=1e-5, atol=1e-8)


def test_save_entropy_codes_the_rows_and_answers_as_the_packed_file(fitted, saved, user_items, tmp_path):
    """Recommender.save(entropy=True) is the CLI's --export-entropy yes: the same rows, Huffman coded."""
    info = fitted.save(tmp_path / "coded.gnaq", entropy=True)
    assert "user_huffman" in info["sections"] and "user_codes" not in info["sections"]
    assert info["file_bytes"] < saved.stat().st_size
    users = np.arange(0, 300, 11)
    expected = gnaq.load(saved).recommend(users, user_items[users], N=10)
    ids, scores = gnaq.load(tmp_path / "coded.gnaq").recommend(users, user_items[users], N=10)
    np.testing.assert_array_equal(ids, expected[0])
    assert scores.tobytes() == expected[1].tobytes()


def test_fit_takes_show_progress_and_a_callback(user_items):
    seen = []
    model = make_recommender(**FAST).fit(user_items, show_progress=False,
                                         callback=lambda epoch, seconds, record: seen.append((epoch, seconds, record)))
    assert [epoch for epoch, _, _ in seen] == [1, 2, 3, 4]
    assert all(s > 0 for _, s, _ in seen) and "ndcg@20" in seen[-1][2]
    assert model.result_["epochs_run"] == 4


def test_the_fold_in_is_the_same_rule_on_every_backend_and_without_the_stored_gram(saved, tmp_path):
    from gnaq.edge_numpy import item_vectors
    items = [5, 17, 40, 41]
    python = edge.load(saved, "python").fold_in(items)
    for backend in ("numpy", "numba"):
        np.testing.assert_allclose(edge.load(saved, backend).fold_in(items), python, rtol=1e-9, atol=1e-12)
    no_gram = edge.load(saved, "python")
    z = item_vectors(edge.load(saved, "numpy"))
    stored = np.asarray(no_gram.item_gram)
    np.testing.assert_allclose(stored, z.T @ z / len(z), rtol=1e-5, atol=1e-7)  # Ḡ = ZᵀZ / n_items, float32
    no_gram.item_gram = None  # a file without the section: computed from the rows on first use
    np.testing.assert_allclose(no_gram.fold_in(items), python, rtol=1e-4, atol=1e-7)
