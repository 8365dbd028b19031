"""Sampled (linear-cost) training: the walk operator is unbiased, its gradient exact, row-sparse
gradients and lazy Adam match their dense twins on the rows they touch, and a sampled run
resumes exactly, trains the default 2-bit deployment and refuses what needs the whole graph."""

import json

import numpy as np
import pytest
import scipy.sparse

from gnaq import autograd as ag
from gnaq import train as train_cli
from gnaq.data import make_synthetic
from gnaq.graph import bipartite_adjacency, normalized_adjacency
from gnaq.optim import Adam
from gnaq.sampled import WALK_BLOCK, SampledPropagation, resolve_propagation, walk_operator
from gnaq.spmm import HAVE_NUMBA, coalesce_rows, sum_row_parts

FAST = ["--bits", "32", "--dataset", "synthetic", "--dim", "8", "--layers", "2", "--batch-size", "512", "--quiet", "--no-export",
        "--propagation", "sampled"]


def tiny_graph(seed=0, users=30, items=20, density=0.15):
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density).astype(np.float32)
    dense[0] = 0  # an isolated user: its row of P is α₀ e₀ only
    return scipy.sparse.csr_matrix(dense)


def propagation_matrix(R, weights):
    """P = Σₗ αₗ Âˡ dense (N, N), the brute-force reference."""
    A = normalized_adjacency(R).toarray().astype(np.float64)
    P, power = np.zeros_like(A), np.eye(len(A))
    for w in weights:
        P += w * power
        power = power @ A
    return P


def test_the_walk_operator_is_an_unbiased_estimate_of_the_propagation_rows():
    R = tiny_graph()
    weights = [0.25] * 4
    A = bipartite_adjacency(R)
    indptr, indices, degree = A.indptr.astype(np.int64), A.indices.astype(np.int64), np.diff(A.indptr)
    targets = np.array([0, 1, 5, 30, 31, 40])  # the isolated user, two users, three items
    rng = np.random.default_rng(1)
    draws = 4000
    total = np.zeros((len(targets), A.shape[0]))
    square = np.zeros_like(total)
    for _ in range(draws):
        W = walk_operator(indptr, indices, degree, targets, weights, 2, rng).toarray().astype(np.float64)
        total += W
        square += W * W
    mean = total / draws
    se = np.sqrt(np.maximum(square / draws - mean ** 2, 0) / draws)
    P = propagation_matrix(R, weights)[targets]
    assert np.all(np.abs(mean - P) <= 5 * se + 1e-6), np.abs(mean - P).max()
    assert np.allclose(mean[0], P[0]) and mean[0, 0] == 0.25  # isolated: exactly α₀ on itself
    assert (W != 0).sum(axis=1).max() <= 1 + 2 * 3  # at most 1 + S·L entries a row


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_walks_are_the_numpy_twins_walks():
    """Targets in several walk blocks, the last one partial, isolated ones included."""
    R = tiny_graph(seed=4)
    A = bipartite_adjacency(R)
    targets = np.random.default_rng(1).permutation(np.tile(np.arange(50), 3))
    assert len(targets) > 2 * WALK_BLOCK and len(targets) % WALK_BLOCK and (np.diff(A.indptr)[targets] == 0).any()
    args = (A.indptr.astype(np.int64), A.indices, np.diff(A.indptr), targets, [0.25] * 4, 3)
    fast = walk_operator(*args, np.random.default_rng(0), impl="numba")
    twin = walk_operator(*args, np.random.default_rng(0), impl="numpy")
    assert np.array_equal(fast.indices, twin.indices) and np.allclose(fast.data, twin.data, rtol=1e-6)


def test_sampled_rows_gradient_is_exact_in_float64_and_row_sparse():
    rng = np.random.default_rng(0)
    W = scipy.sparse.random(7, 40, density=0.2, format="csr", random_state=2, dtype=np.float64)
    base = rng.normal(size=(7, 5))
    x = rng.normal(size=(40, 5))
    weight = rng.normal(size=(7, 5))
    loss = lambda X: float((np.tanh(base + W @ X) * weight).sum())  # noqa: E731
    eps, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (loss(up) - loss(down)) / (2 * eps)
    for sparse in (False, True):
        t = ag.Tensor(x.copy(), requires_grad=True)
        t.sparse_grad = sparse
        ag.sum(ag.tanh(ag.sampled_rows(t, W, base)) * weight).backward()
        grad = t.grad.dense() if sparse else t.grad
        assert isinstance(t.grad, ag.RowSparse) == sparse
        assert np.abs(grad - numeric).max() < 1e-8 * max(1.0, np.abs(numeric).max())
    rows, _ = t.grad.coalesce()
    assert set(rows) == set(W.indices)  # only the columns W touches


@pytest.mark.parametrize("impl", ["numpy"] + (["numba"] if HAVE_NUMBA else []))
def test_row_sparse_sums_match_the_dense_oracle(impl):
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 50, 400)
    values = rng.normal(size=(400, 6)).astype(np.float32)
    W = scipy.sparse.random(30, 50, density=0.1, format="csr", random_state=4, dtype=np.float32)
    g = rng.normal(size=(30, 6)).astype(np.float32)
    unique, summed = sum_row_parts([(rows, values), (W, g), (rows[:7], values[:7])], 50, impl=impl)
    dense = np.asarray(W.T @ g)
    np.add.at(dense, rows, values)
    np.add.at(dense, rows[:7], values[:7])
    assert np.array_equal(unique, np.unique(np.concatenate([rows, W.indices])))  # unique, ascending, all of them
    assert np.allclose(summed, dense[unique], atol=1e-5)
    if impl == "numba":  # a row past the table is refused, not written past an array
        for bad in (50, -1):
            with pytest.raises(IndexError, match="out of range"):
                sum_row_parts([(rows, values), (np.array([bad]), values[:1])], 50, impl=impl)
    r2, v2 = coalesce_rows(rows, values)
    assert np.array_equal(r2, np.unique(rows)) and np.allclose(v2, np.asarray(np.add.reduceat(
        values[np.argsort(rows, kind="stable")], np.searchsorted(np.sort(rows), r2))), atol=1e-5)


def test_lazy_adam_updates_the_touched_rows_as_dense_adam_does_and_no_others():
    rng = np.random.default_rng(5)
    init = rng.normal(size=(20, 4))
    dense, sparse = ag.Tensor(init.copy(), requires_grad=True), ag.Tensor(init.copy(), requires_grad=True)
    sparse.sparse_grad = True
    opt_dense, opt_sparse = Adam([dense], lr=0.1), Adam([sparse], lr=0.1)
    index = np.array([3, 7, 3, 11])
    for _ in range(3):  # the same rows every step: lazy and dense Adam agree exactly there
        g = rng.normal(size=(4, 4))
        for t, opt in ((dense, opt_dense), (sparse, opt_sparse)):
            opt.zero_grad()
            ag.sum(ag.gather(t, index) * g).backward()
            opt.step()
    touched = np.unique(index)
    assert np.allclose(sparse.data[touched], dense.data[touched])
    others = np.setdiff1d(np.arange(20), touched)
    assert np.array_equal(sparse.data[others], init[others])


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_lazy_adam_kernel_equals_its_numpy_twin():
    from gnaq.optim import adam_rows
    rng = np.random.default_rng(6)
    state = [rng.normal(size=(30, 5)).astype(np.float32) for _ in range(3)]
    state[2] = np.abs(state[2])  # v ≥ 0
    rows, g = np.array([1, 4, 9, 20]), rng.normal(size=(4, 5)).astype(np.float32)
    a, b = [x.copy() for x in state], [x.copy() for x in state]
    adam_rows(*a, rows, g, 0.9, 0.999, 0.01, 0.5, 1e-8, impl="numpy")
    adam_rows(*b, rows, g, 0.9, 0.999, 0.01, 0.5, 1e-8, impl="numba")
    for x, y in zip(a, b):
        assert np.allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_numba_membership_search_answers_as_the_numpy_oracle():
    from gnaq import sampling
    data = make_synthetic(n_users=300, n_items=100, seed=1)
    train = data.train
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 300, 20000), rng.integers(0, 100, 20000)
    keys = np.repeat(np.arange(300), np.diff(train.indptr)) * 100 + train.indices
    fast, oracle = sampling._in_rows(train, users, items), sampling._is_member(keys, users * 100 + items)
    assert np.array_equal(fast, oracle) and 0 < fast.sum() < len(fast)


def take_step(model, sampled, step):
    """Move E⁽⁰⁾ by ``step`` as the optimizer does: the embedding and its follower, the drift D, together."""
    model.embedding.data += step
    sampled.drift += step


class _Model:  # what SampledPropagation reads of a LightGCN
    def __init__(self, R, dim=6, layers=3, seed=0):
        n = sum(R.shape)
        self.norm_adj = normalized_adjacency(R, dtype=np.float64)
        self.embedding = ag.Tensor(np.random.default_rng(seed).normal(size=(n, dim)), requires_grad=True)
        self.layer_weights, self.device = [1.0 / (layers + 1)] * (layers + 1), "cpu"


def test_sampled_rows_are_exact_at_a_refresh_and_unbiased_after_a_drift():
    R = tiny_graph(seed=2)
    model = _Model(R)
    P = propagation_matrix(R, model.layer_weights)
    sampled = SampledPropagation(model, R, walks=3)
    sampled.refresh()
    targets = np.arange(0, 50, 3)
    rng = np.random.default_rng(0)
    z = sampled.rows(targets, rng).data
    assert np.allclose(z, (P @ model.embedding.data)[targets])  # E⁽⁰⁾ = H: the control variate is exact
    step = 0.1 * np.random.default_rng(1).normal(size=model.embedding.shape)
    take_step(model, sampled, step)
    draws = np.stack([sampled.rows(targets, rng).data for _ in range(3000)])
    expected = (P @ model.embedding.data)[targets]
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected) <= 5 * se + 1e-9)


def test_gradient_walks_keep_the_forward_and_estimate_its_gradient_without_bias():
    """--gradient-walks K: z_T is the same (every walk); the gradient reaches the hop-0 rows and K
    walks' rows of each occurrence, scaled by S/K, and its mean over draws is the all-walk gradient."""
    from gnaq.sampled import gradient_operator
    R = tiny_graph(seed=2)
    model = _Model(R)
    full = SampledPropagation(model, R, walks=4)
    full.refresh()
    take_step(model, full, 0.1 * np.random.default_rng(1).normal(size=model.embedding.shape))
    targets, counts = np.array([0, 3, 31, 40, 7]), np.array([1, 2, 1, 3, 1])
    g = np.random.default_rng(2).normal(size=(len(targets), model.embedding.shape[1]))
    W = walk_operator(full.indptr, full.indices, full.degree, targets, model.layer_weights, 4,
                      np.random.default_rng(3), repeats=counts)
    draws = np.stack([(gradient_operator(W, 4, 1, 3, np.random.default_rng(i)).T @ g) for i in range(3000)])
    expected = W.T @ g
    se = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected) <= 5 * se + 1e-9)
    one = gradient_operator(W, 4, 1, 3, np.random.default_rng(0))
    assert one.nnz == W.nnz // (1 + 4 * 3) * (1 + 3) and np.array_equal(np.diff(one.indptr), counts * 4)
    assert set(one.indices) <= set(W.indices)
    part = SampledPropagation(model, R, walks=4, gradient_walks=1)  # takes the drift table over, same values
    part.drift[...], part.mean = full.drift, full.mean
    model.embedding.grad = None
    z = part.rows(targets, np.random.default_rng(5), counts)
    ag.sum(z * g).backward()
    rng = np.random.default_rng(5)  # the same draws: the walks, then the walks the gradient keeps
    W5 = walk_operator(part.indptr, part.indices, part.degree, targets, model.layer_weights, 4, rng, repeats=counts)
    G5 = gradient_operator(W5, 4, 1, 3, rng)
    assert np.allclose(z.data, part.mean[targets] + W5 @ part.drift, atol=1e-6)  # the forward: every walk
    assert np.allclose(np.asarray(model.embedding.grad), G5.T @ g, atol=1e-6)  # the gradient: the kept walks
    with pytest.raises(ValueError, match="gradient-walks"):
        SampledPropagation(model, R, walks=4, gradient_walks=5)


@pytest.mark.parametrize("impl", ["numpy"] + (["numba"] if HAVE_NUMBA else []))
@pytest.mark.parametrize("averaged", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_the_drift_table_follows_every_optimizer_step_of_the_embedding(impl, averaged, sparse, monkeypatch):
    """D = E⁽⁰⁾ − H (H: E⁽⁰⁾ at the refresh) after real Adam steps — lazy rows (numba kernel or numpy
    lines, with the fused average or without) and dense — and 0 again at the next refresh."""
    import gnaq.optim
    from gnaq.averaging import EmbeddingAverage
    from gnaq.optim import Adam
    monkeypatch.setattr(gnaq.optim, "HAVE_NUMBA", impl == "numba")
    R = tiny_graph(seed=4)
    model = _Model(R)
    sampled = SampledPropagation(model, R, walks=2)
    sampled.refresh()
    history = model.embedding.data.copy()
    model.embedding.sparse_grad = sparse
    optimizer = Adam([model.embedding], lr=0.05)
    average = EmbeddingAverage(model.embedding, 0.9, impl=impl) if averaged else None
    rng = np.random.default_rng(8)
    for _ in range(4):
        targets = rng.integers(0, 50, 12)
        z = sampled.rows(targets, rng)
        optimizer.zero_grad()
        ag.sum(z * rng.normal(size=z.shape)).backward()
        assert isinstance(model.embedding.grad, ag.RowSparse) == sparse
        optimizer.step(average=average)
        assert np.allclose(sampled.drift, model.embedding.data - history, rtol=0, atol=1e-12)
    assert np.abs(sampled.drift).max() > 1e-3  # it moved
    sampled.refresh()
    assert not sampled.drift.any()
    SampledPropagation(model, R, walks=2)  # takes the follower over: the first one's rows would be wrong
    with pytest.raises(RuntimeError, match="follower"):
        sampled.rows(targets, rng)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_the_fused_drift_kernel_equals_its_numpy_twin(monkeypatch):
    import gnaq.sampled
    R = tiny_graph(seed=3)
    model = _Model(R)
    sampled = SampledPropagation(model, R, walks=3)
    sampled.refresh()
    step = 0.1 * np.random.default_rng(2).normal(size=model.embedding.shape)
    take_step(model, sampled, step)
    targets = np.arange(0, 50, 2)
    fused = sampled.rows(targets, np.random.default_rng(7)).data
    monkeypatch.setattr(gnaq.sampled, "HAVE_NUMBA", False)
    assert np.allclose(fused, sampled.rows(targets, np.random.default_rng(7)).data, atol=1e-12)


def test_auto_propagation_samples_only_large_graphs_and_unknown_names_fail():
    assert resolve_propagation("auto", True) == "sampled"
    assert resolve_propagation("auto", False) == "full"  # a quantizer that needs the graph a step
    assert resolve_propagation("full", True) == "full"
    with pytest.raises(ValueError, match="--propagation"):
        resolve_propagation("walks", 10)


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


SAMPLERS = {"6 walks": ["--walks", "6"], "history estimator": ["--walks", "0", "--reach", "0"],
            "history split": ["--walks", "0", "--reach", "2", "--refreshes", "3", "--reach-split", "history"],
            "lightgcn split": ["--walks", "0", "--reach", "2", "--refreshes", "3", "--reach-split", "lightgcn"]}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
@pytest.mark.parametrize("bits", ["32", "2"])
def test_a_sampled_run_resumes_exactly_and_learns(tmp_path, bits, sampler):
    """Also with --reach (reach.py), whose moves at three refreshes an epoch a cut run must repeat, and
    its lightgcn split (the default's), whose second moment M the checkpoint carries."""
    sampler = SAMPLERS[sampler]
    extra = ["--bits", bits] + sampler + (["--quant-option", "warmup=2"] if bits == "2" else [])
    assert train_cli.main(FAST + extra + ["--epochs", "4", "--out", str(tmp_path / "full")]) == 0
    assert train_cli.main(FAST + extra + ["--epochs", "3", "--out", str(tmp_path / "cut")]) == 0
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--epochs", "4", "--quiet", "--no-export"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    full = read_lines(tmp_path / "full" / "metrics.jsonl")
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(full)
    assert full[-1]["ndcg@20"] > full[0]["ndcg@20"]
    assert full[-1]["quantized"] == (bits == "2")


@pytest.mark.parametrize("quantizer", [["--quantizer", "gnaq-official"], ["--quantizer", "lsq", "--quant-option", "quantize=layer0"]])
def test_a_quantizer_that_needs_the_whole_graph_is_refused_clearly(capsys, quantizer):
    code = train_cli.main(FAST + ["--bits", "2", "--epochs", "2"] + quantizer)
    err = capsys.readouterr().err
    assert code == 2 and "--propagation full" in err and quantizer[1] in err


BASELINES = [("ste", 2, {}), ("ste", 2, {"mix_share": 0.25}), ("lsq", 2, {}), ("lsq", 2, {"mix_share": 0.25}),
             ("n2uq", 2, {}), ("bigear", 1, {}), ("bigear", 2, {})]


@pytest.mark.parametrize("name,bits,options", BASELINES)
def test_sampled_baseline_rows_and_their_quantizer_gradients_equal_the_whole_tables_at_a_refresh(tmp_path, name, bits, options):
    """At a refresh z_T (or each layer's rows) is exact, so ẑ_T equals the whole table's rows and a
    batch's loss gives the quantizer's own parameters the same gradient (STE's scale: the history's RMS,
    BiGeaR's 1-bit half period: the history layers', LSQ's and N2UQ's gradient scale: the whole table's)."""
    from gnaq.training import TrainConfig, Trainer
    data = make_synthetic(n_users=60, n_items=40, mean_degree=6, seed=0)
    trainer = Trainer(TrainConfig(dataset="synthetic", bits=bits, quantizer=name, quant_options=options, dim=8, layers=2,
                                  progress=False, propagation="sampled", out=str(tmp_path)), data=data)
    model, sampled = trainer.model, trainer.sampled
    sampled.refresh()
    rows = np.array([0, 5, 59, 60, 99])
    with ag.no_grad():
        whole = model.representation().data
        if model.quantizer.needs_layers:
            part = model.quantizer.represent_layer_rows(sampled.layer_rows(rows, np.random.default_rng(0)), rows).data
        else:
            part = model.quantizer.represent_rows(sampled.rows(rows, np.random.default_rng(0)), rows).data
    assert np.allclose(part, whole[rows], atol=1e-6)
    users, pos, neg = np.array([0, 3, 3, 17]), np.array([1, 2, 2, 30]), np.array([5, 9, 33, 0])
    grads = []
    for mode in (None, sampled):
        for p in model.parameters():
            p.grad = None
        loss, _, _ = model.bpr_loss(users, pos, neg, 1e-4, sampled=mode, rng=np.random.default_rng(1))
        loss.backward()
        grads.append([p.grad for p in model.quantizer.parameters()])
    for full, part in zip(*grads):
        assert np.allclose(full, part, rtol=1e-4, atol=1e-7)
    if model.quantizer.needs_layers:  # and the same backward into each layer's rows (1 bit: the layer's half period)
        weight = np.random.default_rng(2).normal(size=whole[rows].shape)
        layers = [ag.Tensor(E.data.copy(), requires_grad=True) for E in model.layers()]
        ag.sum(ag.gather(model.quantizer.combine(layers), rows) * weight).backward()
        row_layers = [ag.Tensor(E.data[rows], requires_grad=True) for E in layers]
        ag.sum(model.quantizer.represent_layer_rows(row_layers, rows) * weight).backward()
        for E, E_rows in zip(layers, row_layers):
            assert np.allclose(E.grad[rows], E_rows.grad, rtol=1e-4, atol=1e-7)


def test_sampled_layer_rows_are_exact_at_a_refresh_and_unbiased_after_a_drift():
    R = tiny_graph(seed=2)
    model = _Model(R)
    model.quantizer = type("Layers", (), {"needs_layers": True, "refreshed": lambda self, z, layers: None})()
    A = normalized_adjacency(R).toarray()
    sampled = SampledPropagation(model, R, walks=3)
    sampled.refresh()
    targets = np.arange(0, 50, 3)
    rng = np.random.default_rng(0)
    powers = [np.linalg.matrix_power(A, layer) for layer in range(4)]
    for layer, rows in enumerate(sampled.layer_rows(targets, rng)):
        assert np.allclose(rows.data, (powers[layer] @ model.embedding.data)[targets])
    step = 0.1 * np.random.default_rng(1).normal(size=model.embedding.shape)
    take_step(model, sampled, step)
    draws = [np.stack(d) for d in zip(*[[r.data for r in sampled.layer_rows(targets, rng, counts=np.full(len(targets), 2))]
                                         for _ in range(2000)])]
    for layer, layer_draws in enumerate(draws):
        expected = (powers[layer] @ model.embedding.data)[targets]
        se = layer_draws.std(axis=0) / np.sqrt(len(layer_draws))
        assert np.all(np.abs(layer_draws.mean(axis=0) - expected) <= 5 * se + 1e-6), layer  # W is float32
    weighted = sum(w * d.mean(axis=0) for w, d in zip(model.layer_weights, draws))
    assert np.allclose(weighted, (propagation_matrix(R, model.layer_weights) @ model.embedding.data)[targets], atol=0.05)


def test_with_no_walks_a_row_is_its_history_plus_its_own_drift_and_its_gradient_is_exact():
    """--walks 0: z_T = Z̄_T + D_T and ∂E⁽⁰⁾ = g on the targets' rows only (a repeat's g summed), each
    layer's rows Ē⁽ˡ⁾_T + D_T with z_T their αₗ-weighted sum; the gradient against central differences
    of the forward recomputed in float64 from the embedding (D = E⁽⁰⁾ − H)."""
    R = tiny_graph(seed=2)
    model = _Model(R)
    model.quantizer = type("Layers", (), {"needs_layers": True, "refreshed": lambda self, z, layers: None})()
    P = propagation_matrix(R, model.layer_weights)
    A = normalized_adjacency(R).toarray()
    sampled = SampledPropagation(model, R, walks=0)
    sampled.refresh()
    history = model.embedding.data.copy()
    take_step(model, sampled, 0.1 * np.random.default_rng(1).normal(size=model.embedding.shape))
    targets = np.array([4, 0, 31, 4, 17, 49, 4])  # repeats, an isolated user, users and items
    counts = np.bincount(targets)[targets]
    z = sampled.rows(targets, np.random.default_rng(0), counts=counts)
    forward = lambda E: (P @ history)[targets] + (E - history)[targets]  # noqa: E731
    assert np.allclose(z.data, forward(model.embedding.data))
    weight = np.random.default_rng(3).normal(size=z.shape)
    model.embedding.grad = None
    ag.sum(z * weight).backward()
    eps, numeric = 1e-6, np.zeros_like(history)
    for idx in np.ndindex(*history.shape):
        up, down = model.embedding.data.copy(), model.embedding.data.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = ((forward(up) * weight).sum() - (forward(down) * weight).sum()) / (2 * eps)
    grad = model.embedding.grad.dense() if isinstance(model.embedding.grad, ag.RowSparse) else model.embedding.grad
    assert np.abs(grad - numeric).max() < 1e-8
    assert set(np.flatnonzero(np.abs(numeric).sum(axis=1))) == set(targets)
    layers = sampled.layer_rows(targets, np.random.default_rng(0))
    for layer, rows in enumerate(layers):
        drift = (model.embedding.data - history)[targets]
        assert np.allclose(rows.data, (np.linalg.matrix_power(A, layer) @ history)[targets] + drift)
    assert np.allclose(sum(w * r.data for w, r in zip(model.layer_weights, layers)), z.data)
    with pytest.raises(ValueError, match="walks must be ≥ 0"):
        SampledPropagation(model, R, walks=-1)


@pytest.mark.parametrize("quantizer", [["--quantizer", "bigear", "--bits", "1"], ["--quantizer", "lsq", "--bits", "2"]])
def test_a_sampled_baseline_run_resumes_exactly_learns_and_exports(tmp_path, quantizer):
    assert train_cli.main(FAST[:-3] + quantizer + ["--propagation", "sampled", "--epochs", "4", "--out", str(tmp_path / "full"),
                                                    "--export", str(tmp_path / "model.gnaq")]) == 0
    assert train_cli.main(FAST + quantizer + ["--epochs", "3", "--out", str(tmp_path / "cut")]) == 0
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--epochs", "4", "--quiet", "--no-export"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    full = read_lines(tmp_path / "full" / "metrics.jsonl")
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(full)
    assert full[-1]["ndcg@20"] > full[0]["ndcg@20"] and full[-1]["quantized"]
    assert (tmp_path / "model.gnaq").stat().st_size > 0


def test_sampled_gnaq_rows_quantize_as_the_whole_table_does(tmp_path):
    from gnaq.training import TrainConfig, Trainer
    data = make_synthetic(n_users=60, n_items=40, mean_degree=6, seed=0)
    trainer = Trainer(TrainConfig(dataset="synthetic", bits=2, dim=8, layers=2, progress=False, propagation="sampled",
                                  out=str(tmp_path)), data=data)
    trainer.model.quantizer.warmup = 0
    trainer.model.quantizer.on_epoch_start(0)  # quantize now (fits the transform and the node scales)
    with ag.no_grad():
        whole = trainer.model.representation().data
        z = trainer.model.quantizer.combination()
        rows = np.array([0, 5, 59, 60, 99])
        part = trainer.model.quantizer.represent_rows(ag.Tensor(z[rows]), rows).data
    assert np.allclose(part, whole[rows], atol=1e-6)


def test_quantize_users_off_keeps_users_rows_float_and_codes_items_alone(tmp_path):
    """Rule 8 (item-only deployment): users' rows of ẑ are z R exactly, items' rows the codes they have
    with users quantized too; the sampled rows agree with the whole table; gradients reach both sides."""
    from gnaq.training import TrainConfig, Trainer
    data = make_synthetic(n_users=60, n_items=40, mean_degree=6, seed=0)
    reps = {}
    for quantize_users in (True, False):
        options = {"quantize": "z", "transform": "klt", "busy_share": 0.25, "busy_bits": 3,
                   "quantize_users": quantize_users}
        trainer = Trainer(TrainConfig(dataset="synthetic", bits=2, dim=8, layers=2, progress=False,
                                      propagation="sampled", quant_options=options, out=str(tmp_path / str(quantize_users))),
                          data=data)
        q = trainer.model.quantizer
        q.warmup = 0
        q.on_epoch_start(0)
        with ag.no_grad():
            reps[quantize_users] = whole = trainer.model.representation().data
            z = q.combination()
            rows = np.array([0, 5, 59, 60, 99])
            part = q.represent_rows(ag.Tensor(z[rows]), rows).data
        np.testing.assert_allclose(part, whole[rows], atol=1e-6)
    rotated = z @ q.rotation.data
    np.testing.assert_allclose(reps[False][:60], rotated[:60], rtol=1e-6)
    assert not np.allclose(reps[True][:60], rotated[:60], atol=1e-3)  # coded when users are quantized
    np.testing.assert_array_equal(reps[False][60:], reps[True][60:])
    trainer.model.embedding.grad = None
    loss = ag.sum(trainer.model.representation() * ag.Tensor(np.ones_like(whole)))
    loss.backward()
    assert np.abs(trainer.model.embedding.grad[:60]).sum() > 0 and np.abs(trainer.model.embedding.grad[60:]).sum() > 0
    with pytest.raises(ValueError, match="quantize_users"):
        Trainer(TrainConfig(dataset="synthetic", bits=2, dim=8, layers=2, progress=False,
                            quant_options={"quantize": "z", "quantize_users": False}, out=str(tmp_path / "x")), data=data)


def test_on_a_small_graph_sampled_training_ranks_as_well_as_the_full_graph(tmp_path):
    """Test NDCG@20 of the two modes, same data, seed and defaults, converged by patience: the
    sampled model within 3 standard errors of the test metric (its spread over users) of the
    full-graph one — on this graph they measure 0.457 (6 walks) and 0.450 (the default: no walks, the
    reach split as LightGCN's) vs 0.446 (± 0.012)."""
    from gnaq.training import TrainConfig, Trainer
    data = make_synthetic(n_users=600, n_items=300, mean_degree=20, seed=0)
    results = {}
    for mode, walks in (("full", None), ("sampled", 6), ("sampled", None)):
        config = TrainConfig(dataset="synthetic", bits=32, dim=16, layers=2, batch_size=1024, epochs=40, patience=5,
                             progress=False, propagation=mode, walks=walks, out=str(tmp_path / f"{mode}{walks}"))
        results[mode, walks] = Trainer(config, data=data).fit()
    full = results["full", None]
    assert results["sampled", None]["reach"] > 0  # the default sampler is the reach's
    for walks in (6, None):  # the walks, and the default
        sampled = results["sampled", walks]
        assert sampled["test_ndcg@20"] >= full["test_ndcg@20"] - 3 * full["test_ndcg@20_se"], walks
        assert sampled["test_recall@20"] >= full["test_recall@20"] - 0.05, walks


@pytest.mark.parametrize("impl", ["numpy", pytest.param("numba", marks=pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba not installed"))])
def test_the_lazy_average_equals_the_dense_moving_average_in_float64(impl):
    """Row-sparse steps, rows caught up in closed form (ā ← θ + βᵏ(ā − θ)), against ā ← β ā + (1 − β) θ
    over every row at every step; every 7th step changes every row (before_step(None) after lazy
    steps: the rows behind are caught up first)."""
    from gnaq.averaging import EmbeddingAverage
    rng = np.random.default_rng(3)
    lazy_table = ag.Tensor(rng.standard_normal((25, 4)))
    dense_table = ag.Tensor(lazy_table.data.copy())
    lazy, dense = EmbeddingAverage(lazy_table, 0.9, impl=impl), EmbeddingAverage(dense_table, 0.9)
    reference = dense_table.data.copy()
    for step in range(60):
        rows = np.unique(rng.integers(0, 25, size=int(rng.integers(0, 8))))
        if step % 7 == 6:
            rows = np.arange(25)
        delta = rng.standard_normal((len(rows), 4))
        lazy.before_step(None if step % 7 == 6 else rows)
        lazy_table.data[rows] += delta
        lazy.after_step()
        dense.before_step(None)
        dense_table.data[rows] += delta
        dense.after_step()
        reference = 0.9 * reference + 0.1 * dense_table.data
        if step % 10 == 9:
            assert np.allclose(dense.synced(), reference, rtol=0, atol=1e-12)
            assert np.allclose(lazy.synced(), reference, rtol=0, atol=1e-12)
    assert not np.allclose(reference, lazy_table.data, atol=1e-3)  # the average is not the last table


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_adams_step_on_an_averaged_table_in_one_pass_equals_its_three_numpy_passes_in_float64():
    """Adam.step(average=...) with row-sparse gradients: the numba kernel (catch-up, update, blend per
    row) against before_step + numpy Adam + after_step, on the table, both moments and the average."""
    from gnaq.averaging import EmbeddingAverage
    from gnaq.autograd.tensor import RowSparse
    from gnaq.optim import Adam
    rng = np.random.default_rng(5)
    tables = [ag.Tensor(rng.standard_normal((30, 6)), requires_grad=True) for _ in range(2)]
    tables[1].data[...] = tables[0].data
    averages = [EmbeddingAverage(t, 0.8, impl=impl) for t, impl in zip(tables, ("numba", "numpy"))]
    optimizers = [Adam([t], lr=0.05) for t in tables]
    for step in range(40):
        rows = rng.integers(0, 30, size=int(rng.integers(1, 12)))  # repeats: coalesce sums them
        values = rng.standard_normal((len(rows), 6))
        for table, average, optimizer in zip(tables, averages, optimizers):
            table.grad = RowSparse(rows, values.copy(), 30)
            optimizer.step(average=average)
    assert averages[0].t == averages[1].t == 40
    assert np.allclose(tables[0].data, tables[1].data, rtol=0, atol=1e-12)
    assert np.allclose(optimizers[0].m[0], optimizers[1].m[0], rtol=0, atol=1e-12)
    assert np.allclose(optimizers[0].v[0], optimizers[1].v[0], rtol=0, atol=1e-12)
    assert np.allclose(averages[0].synced(), averages[1].synced(), rtol=0, atol=1e-12)
    assert not np.allclose(averages[0].synced(), tables[0].data, atol=1e-3)  # the average lags the table


def test_a_sampled_run_keeps_the_average_as_its_best_and_off_keeps_the_weights(tmp_path):
    from gnaq.checkpoint import load_checkpoint
    args = FAST + ["--bits", "32", "--epochs", "3", "--patience", "9"]
    assert train_cli.main(args + ["--out", str(tmp_path / "avg")]) == 0
    assert train_cli.main(args + ["--average", "off", "--out", str(tmp_path / "off")]) == 0
    best, _ = load_checkpoint(tmp_path / "avg" / "best.npz")
    last, meta = load_checkpoint(tmp_path / "avg" / "last.npz")
    lines = read_lines(tmp_path / "avg" / "metrics.jsonl")
    assert max(lines, key=lambda r: r["ndcg@20"])["epoch"] == 3  # still learning: the best is the last epoch's …
    assert np.array_equal(best["model.embedding"], last["average.average"])  # … average, not its weights
    assert meta["average_t"] > 0 and not np.allclose(last["average.average"], last["model.embedding"])
    off_last, off_meta = load_checkpoint(tmp_path / "off" / "last.npz")
    assert "average.average" not in off_last and off_meta["average_t"] is None
    # averaging changes what is evaluated, never the training trajectory
    assert np.array_equal(off_last["model.embedding"], last["model.embedding"])
    with pytest.raises(SystemExit) as exit_info:  # argparse's one-line error
        train_cli.main(args + ["--average", "1.5", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("allocation", ["occurrence", "sqrt"])
def test_walks_allocated_by_occurrence_stay_unbiased_with_less_variance(allocation):
    """A target occurring c times in the batch gets walks·c (or ·⌈√c⌉) walks and the mean of its
    rows: z_T after a drift is still unbiased, and its spread falls by about √c (or c^¼)."""
    R = tiny_graph(seed=2)
    model = _Model(R)
    P = propagation_matrix(R, model.layer_weights)
    targets = np.array([3, 7, 31, 35])
    counts = np.array([1, 9, 16, 4])
    start = model.embedding.data.copy()
    step = 0.1 * np.random.default_rng(1).normal(size=model.embedding.shape)
    expected = (P @ (start + step))[targets]
    rng = np.random.default_rng(0)
    spreads = {}
    for name, kind in (("plain", "target"), ("allocated", allocation)):
        model.embedding.data[...] = start
        sampled = SampledPropagation(model, R, walks=2, allocation=kind)  # the embedding's follower now
        sampled.refresh()
        take_step(model, sampled, step)
        draws = np.stack([sampled.rows(targets, rng, counts=counts).data for _ in range(3000)])
        se = draws.std(axis=0) / np.sqrt(len(draws))
        assert np.all(np.abs(draws.mean(axis=0) - expected) <= 5 * se + 1e-9), name
        spreads[name] = draws.std(axis=0).mean(axis=1)
    repeats = counts if allocation == "occurrence" else np.ceil(np.sqrt(counts))
    ratio = spreads["plain"] / spreads["allocated"]
    assert np.allclose(ratio, np.sqrt(repeats), rtol=0.15), (ratio, np.sqrt(repeats))
    with pytest.raises(ValueError, match="allocation"):
        SampledPropagation(model, R, walks=2, allocation="per-degree")
