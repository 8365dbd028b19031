"""The deferred reach (gnaq/reach.py, --reach): G sums the steps' z-gradients, the move at a refresh
is lr·s·(P − α₀ I) G / (√v̂ + ε) on every row Adam has moved, its numba kernel is its numpy twin, a
run with it resumes exactly, and it is refused where it does not apply."""

import json

import numpy as np
import pytest
import scipy.sparse

from gnaq import train as train_cli
from gnaq.autograd import RowSparse
from gnaq.graph import normalized_adjacency
from gnaq.models import LightGCN
from gnaq.optim import Adam
from gnaq.reach import DEFAULT_REACH, HAVE_NUMBA, LAYER_QUANTIZER_WALKS, DeferredReach, move_rows, sampled_recipe
from test_sampled import FAST, propagation_matrix, read_lines, tiny_graph


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_move_equals_its_numpy_twin():
    rng = np.random.default_rng(0)
    shape = (40, 8)
    spread, gradients = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    v = (rng.random(shape) ** 2).astype(np.float32)
    v[3] = 0  # a row Adam never moved, and single elements
    v[5, 2] = 0
    moved = {}
    for impl in ("numpy", "numba"):
        theta, follower = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
        before = theta.copy(), follower - theta
        move_rows(theta, follower, spread, gradients, 0.25, v, 0.3, 0.02, 1e-8, impl=impl)
        moved[impl] = before[0] - theta
        np.testing.assert_allclose(follower - theta, before[1], atol=2e-5)  # the follower took the same move
        assert not moved[impl][3].any() and moved[impl][5, 2] == 0
    np.testing.assert_allclose(moved["numba"], moved["numpy"], rtol=1e-5, atol=1e-6)


def float64_model_and_adam(rng, t: int):
    """tiny_graph's LightGCN (d = 4, 2 layers) in float64 and its Adam at step ``t`` (lr 0.05), v random
    but 0 on row 11, a row Adam never moved."""
    R = tiny_graph()
    model = LightGCN(R.shape[0], R.shape[1], normalized_adjacency(R), 4, 2, None, seed=0)
    model.embedding.data = model.embedding.data.astype(np.float64)
    optimizer = Adam(model.parameters(), lr=0.05)
    optimizer.t = t
    optimizer.v[0][...] = rng.random(model.embedding.data.shape) ** 2
    optimizer.v[0][11] = 0
    return R, model, optimizer


def random_step(rng, n: int, d: int):
    """A step's row-sparse embedding gradient: a (W, g) part on 6 random rows (W (6, N) selecting
    them) plus an own-row part on 2 of them, as the L2 term's; returns (grad, W, g, own_rows, own)."""
    targets = rng.choice(n, 6, replace=False)
    W = scipy.sparse.csr_matrix((np.ones(6), (np.arange(6), targets)), shape=(6, n))
    g = rng.standard_normal((6, d))
    own_rows, own = targets[:2], rng.standard_normal((2, d))
    return RowSparse.transpose_product(W, g, n) + RowSparse(own_rows, own, n), W, g, own_rows, own


def test_the_move_is_the_neighbours_share_of_the_summed_gradients_over_adams_scale():
    """Two steps' (W, g) parts accumulate to G = Σ Wᵀ g (the L2 term's row part left out); the move is
    lr·s·(P G − α₀ G) / (√v̂ + ε) against the dense P, on rows with v > 0, and G is then cleared."""
    rng = np.random.default_rng(1)
    R, model, optimizer = float64_model_and_adam(rng, t=7)
    n, d = model.embedding.data.shape
    reach = DeferredReach(model, scale=1.5)
    total = np.zeros((n, d))
    for _ in range(2):
        grad, W, g, _, _ = random_step(rng, n, d)
        reach.accumulate(grad)
        total += W.T @ g
    np.testing.assert_allclose(reach.gradients, total)
    theta = model.embedding.data.copy()
    assert reach.move(optimizer) and not reach.gradients.any() and not reach.move(optimizer)
    P = propagation_matrix(R, model.layer_weights)
    v_hat = optimizer.v[0] / (1 - optimizer.beta2 ** optimizer.t)
    expected = 0.05 * 1.5 * (P @ total - model.layer_weights[0] * total) / (np.sqrt(v_hat) + optimizer.eps)
    expected[11] = 0
    np.testing.assert_allclose(theta - model.embedding.data, expected, rtol=1e-6, atol=1e-12)
    assert np.abs(expected).sum(1)[12:].any()  # rows outside both batches moved: the reach


def test_the_reach_changes_a_no_walk_run(tmp_path):
    """The same seed and data with and without --reach: the losses part from the first move, at the
    epoch's second refresh (resuming with it is test_sampled's test_a_sampled_run_resumes_exactly_and_learns)."""
    losses = {}
    for name, extra in (("on", ["--reach", "2"]), ("off", ["--reach", "0"])):
        assert train_cli.main(FAST + ["--walks", "0", "--epochs", "2", "--out", str(tmp_path / name)] + extra) == 0
        losses[name] = [r["loss"] for r in read_lines(tmp_path / name / "metrics.jsonl")]
    assert losses["on"][0] != losses["off"][0] and losses["on"][1] != losses["off"][1]


def test_reach_is_refused_with_walks_or_the_full_graph(capsys):
    for extra in (["--walks", "6"], ["--walks", "0", "--propagation", "full"], ["--walks", "0", "--reach", "-1"]):
        args = FAST + ["--reach", "1"] + extra
        assert train_cli.main(args + ["--epochs", "1"]) == 2
        assert "--reach" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_transpose_sum_equals_its_numpy_twin():
    from gnaq.reach import add_transpose
    rng = np.random.default_rng(2)
    W = scipy.sparse.random(12, 30, density=0.2, random_state=3, format="csr", dtype=np.float32)
    W = scipy.sparse.vstack([W, W[:3]]).tocsr()  # repeated targets add up
    g = rng.standard_normal((W.shape[0], 5)).astype(np.float32)
    out = {impl: np.ones((30, 5), dtype=np.float32) for impl in ("numpy", "numba")}
    for impl, table in out.items():
        add_transpose(W, g, table, impl=impl)
    np.testing.assert_allclose(out["numba"], out["numpy"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["numpy"], 1 + W.T @ g, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_fold_equals_its_numpy_twin():
    """fold_second_moment's one-pass kernel against the numpy oracle, a v below M_before (clipped at 0) included."""
    from gnaq.reach import fold_second_moment
    rng = np.random.default_rng(5)
    spread, G = rng.standard_normal((2, 40, 6)).astype(np.float32)
    v0, M0 = rng.random((2, 40, 6)).astype(np.float32)
    v0[:5] = M0[:5] / 2  # Adam's decay left v below the move's old share
    out = {}
    for impl in ("numpy", "numba"):
        v, M = v0.copy(), M0.copy()
        fold_second_moment(spread, G, 0.25, 7, 0.99, v, M, impl=impl)
        out[impl] = v, M
    for a, b in zip(out["numba"], out["numpy"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    share = (spread - 0.25 * G) / 7
    np.testing.assert_allclose(out["numpy"][1], 0.99 * M0 + 0.01 * share ** 2, rtol=1e-6)
    np.testing.assert_allclose(out["numpy"][0], np.maximum(v0 - M0, 0) + out["numpy"][1], rtol=1e-6)


def test_the_lightgcn_split_keeps_alpha0_g_a_step_and_folds_the_moves_share_into_adams_second_moment():
    """--reach-split lightgcn: each step's z-path parts are α₀ g (G sums the whole g); a move first takes
    M ← β₂ᵀ M + (1 − β₂ᵀ) ((P − α₀ I) G / T)² into v (v ← v − M_before + M), then moves by the new v̂ —
    row 11, which Adam never moved, too; checked against the dense P in float64 over two intervals."""
    rng = np.random.default_rng(2)
    R, model, optimizer = float64_model_and_adam(rng, t=9)
    n, d = model.embedding.data.shape
    reach = DeferredReach(model, scale=1.5, split="lightgcn")
    alpha0 = model.layer_weights[0]
    P = propagation_matrix(R, model.layer_weights)
    share_of = lambda G, steps: (P @ G - alpha0 * G) / steps  # noqa: E731
    b2 = optimizer.beta2
    M_expected = np.zeros((n, d))
    for steps in (3, 1):  # two intervals: 3 steps, then 1
        total = np.zeros((n, d))
        for _ in range(steps):
            grad, W, g, own_rows, own = random_step(rng, n, d)  # own: the L2 term's row part, kept as it is
            reach.accumulate(grad)
            total += W.T @ g
            expected_step = alpha0 * (W.T @ g)
            np.add.at(expected_step, own_rows, own)
            np.testing.assert_allclose(grad.dense(), expected_step, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(reach.gradients, total)
        v_before, theta = optimizer.v[0].copy(), model.embedding.data.copy()
        M_before = M_expected.copy()
        M_expected = b2 ** steps * M_expected + (1 - b2 ** steps) * share_of(total, steps) ** 2
        v_expected = np.maximum(v_before - M_before, 0) + M_expected
        assert reach.move(optimizer)
        np.testing.assert_allclose(reach.second_moment, M_expected, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(optimizer.v[0], v_expected, rtol=1e-10, atol=1e-15)
        v_hat = v_expected / (1 - b2 ** optimizer.t)
        move = 0.05 * 1.5 * (P @ total - alpha0 * total) / (np.sqrt(v_hat) + optimizer.eps)
        move[v_expected == 0] = 0
        np.testing.assert_allclose(theta - model.embedding.data, move, rtol=1e-6, atol=1e-12)
    assert np.abs(theta - model.embedding.data)[11].any()  # a row with v = 0 at the start moved: its share's v


def test_the_split_needs_the_reach(capsys):
    for extra in (["--walks", "0", "--reach", "0"], ["--walks", "6"], ["--propagation", "full"]):
        assert train_cli.main(FAST + extra + ["--reach-split", "lightgcn", "--epochs", "1"]) == 2
        assert "--reach-split lightgcn" in capsys.readouterr().err


def test_sampled_propagation_defaults_to_the_reach_split_as_lightgcn_and_records_it(tmp_path):
    """No --walks / --reach / --reach-split: 0 walks, reach 1, the lightgcn split — what result.json
    records; given walks the reach is off; bigear (every layer quantized) gets 6 walks and no reach."""
    assert train_cli.main(FAST + ["--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    with open(tmp_path / "run" / "result.json") as f:
        result = json.load(f)
    assert (result["propagation"], result["walks"], result["reach"], result["reach_split"]) == (
        "sampled", 0, DEFAULT_REACH, "lightgcn")
    assert sampled_recipe(6, None, None, needs_layers=False)["reach"] == 0
    assert sampled_recipe(0, 0, None, needs_layers=False)["reach"] == 0  # the history estimator alone
    assert sampled_recipe(0, 2, "history", needs_layers=False) == {"walks": 0, "reach": 2, "reach_split": "history"}
    from gnaq.training import TrainConfig  # a run saved by an earlier version (its defaults explicit) still loads
    assert TrainConfig(dataset="synthetic", walks=6, reach=0.0, reach_split="history").reach_split == "history"
    assert sampled_recipe(None, None, None, needs_layers=True) == {
        "walks": LAYER_QUANTIZER_WALKS, "reach": 0, "reach_split": None}
