import numpy as np
import pytest

from gnaq import autograd as ag
from gnaq.data import make_synthetic
from gnaq.graph import normalized_adjacency
from gnaq.metrics import evaluate
from gnaq.models import LightGCN
from gnaq.quant import QUANTIZERS, make_quantizer
from gnaq.quant.checks import quantizer_checks
from gnaq.quant.n2uq import N2UQQuantizer
from gnaq.quant.uniform import MAX_GAUSSIAN_STEP, codes_of, fake_quantize, levels, optimal_step
from gnaq.training import TrainConfig, Trainer


@pytest.mark.parametrize("name, error", list(quantizer_checks()), ids=lambda c: c if isinstance(c, str) else "")
def test_estimators_match_closed_form_and_relaxations(name, error):
    assert error < 1e-6, name


def test_uniform_levels_codes_and_values_by_hand():
    x = np.array([[-1.2, -0.3, 0.2, 0.9, 5.0]])
    q = levels(x, 0.5, 2)
    assert q.tolist() == [[-2, -1, 0, 1, 1]]
    assert codes_of(q, 2).tolist() == [[0, 1, 2, 3, 3]]
    np.testing.assert_allclose(fake_quantize(x, np.array([[0.5]]), 2).data, [[-0.75, -0.25, 0.25, 0.75, 0.75]])
    # b = 1 is (s/2)·sign(x); per-row scales broadcast
    x1 = np.array([[-3.0, 0.1], [2.0, -0.01]])
    out = fake_quantize(x1, np.array([[2.0], [4.0]]), 1).data
    np.testing.assert_allclose(out, [[-1.0, 1.0], [2.0, -2.0]])
    for bits in (1, 2, 3, 4, 8):
        span = 1.5 * 0.3 * 2 ** (bits - 1)  # past both ends of the range
        c = codes_of(levels(np.linspace(-span, span, 1001)[None], 0.3, bits), bits)
        assert np.unique(c).size == 2 ** bits
        assert c.min() == 0 and c.max() == 2 ** bits - 1


def test_optimal_steps_reproduce_max_table():
    for bits, step in MAX_GAUSSIAN_STEP.items():
        assert optimal_step(bits) == pytest.approx(step, abs=1.5e-3)
    assert optimal_step(8) < optimal_step(4) / 8


def test_n2uq_forward_by_hand():
    q = N2UQQuantizer(2)
    x = ag.Tensor(np.array([[-2.0, -0.5, 0.0, 3.0]]))
    out = q.quantize(x, ag.Tensor(np.array([-1.0, 0.0, 1.0])), ag.Tensor(np.array([np.log(2.0)])))
    np.testing.assert_allclose(out.data, [[-3.0, -1.0, 1.0, 3.0]])


def test_graph_term_changes_the_gradient_and_delta_zero_is_ste():
    from gnaq.quant.checks import _tiny_graph
    from gnaq.quant.gnaq import graph_quantize
    adj = _tiny_graph()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((adj.shape[0], 4))
    s = np.full((adj.shape[0], 1), 0.7)
    grads = []
    for delta in (0.0, 0.5):
        xt = ag.Tensor(x, requires_grad=True)
        graph_quantize(xt, ag.Tensor(s), 2, 1.0, adj, delta).backward(np.ones_like(x))
        grads.append(xt.grad)
    inside = (x / s >= -2) & (x / s < 2)
    np.testing.assert_array_equal(grads[0], inside.astype(float))
    assert not np.allclose(grads[0], grads[1])


@pytest.fixture(scope="module")
def data():
    return make_synthetic(seed=0)


EXPORTABLE = sorted(name for name, cls in QUANTIZERS.items() if cls.exportable and name != "pq")  # (pq: test_pq.py)


@pytest.mark.parametrize("name", EXPORTABLE)
@pytest.mark.parametrize("bits", [1, 2])
def test_export_dequantizes_to_the_trained_representation(data, name, bits):
    adj = normalized_adjacency(data.train)
    options = {"quantize": "z"} if name == "gnaq" else {}  # (layer0: see the next test)
    model = LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=make_quantizer(name, bits, **options),
                     seed=1)
    exported = model.quantizer.export()
    codes, scales = exported["codes"], exported["scales"]
    assert codes.dtype == np.uint8 and codes.max() < 2 ** bits
    groups = scales.shape[1]
    values = (codes.astype(np.float64) + 0.5 - 2 ** (bits - 1)).reshape(len(codes), groups, -1)
    dequantized = (values * scales[:, :, None]).reshape(len(codes), -1)
    with ag.no_grad():
        z = model.representation().data
    np.testing.assert_allclose(dequantized, z, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["gnaq", "ste", "lsq"])
def test_layer0_deployment_stores_the_table_and_propagates_it(data, name):
    adj = normalized_adjacency(data.train)
    q = make_quantizer(name, 2, quantize="layer0")
    model = LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=q, seed=1)
    exported = q.export()
    table = (exported["codes"].astype(np.float64) - 1.5) * exported["scales"]
    with ag.no_grad():
        z = model.representation().data
    A = adj.toarray()
    np.testing.assert_allclose(z, (table + A @ table + A @ A @ table) / 3, rtol=1e-5, atol=1e-6)
    assert np.unique(exported["codes"]).size == 4 and q.deploys == "layer0"
    with pytest.raises(ValueError, match="quantize must be"):
        make_quantizer(name, 2, quantize="layer1")


def test_gnaq_scales_are_per_node(data):
    adj = normalized_adjacency(data.train)
    q = make_quantizer("gnaq", 2)
    LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=q, seed=1)
    scales = q.export()["scales"]
    assert scales.shape == (data.n_nodes, 1) and np.unique(scales).size > data.n_nodes // 2
    with pytest.raises(ValueError, match="delta"):
        make_quantizer("gnaq", 2, delta=1.5)
    with pytest.raises(ValueError, match="quantizer 'ste' has no option 'delta'"):
        make_quantizer("ste", 2, delta=0.5)


def test_official_gnaq_levels_codes_and_reassignment_by_hand(data, tmp_path):
    from gnaq.quant.gnaq_official import assign_codes, initial_levels
    row = np.array([[-1.0, -0.2, 0.1, 0.5, 1.0]])          # range [-1, 1], 4 bins of width 0.5
    np.testing.assert_array_equal(assign_codes(row, 4), [[0, 1, 2, 2, 3]])  # bins (lo, hi]: 0.5 → (0, 0.5]
    np.testing.assert_array_equal(assign_codes(np.zeros((1, 3)), 4), [[0, 0, 0]])  # constant row
    np.testing.assert_allclose(initial_levels(row, 4), [[-0.6, -0.2, 0.2, 0.6]])  # interior points
    np.testing.assert_allclose(initial_levels(row, 2), [[-1 / 3, 1 / 3]])
    cfg = TrainConfig(bits=2, quantizer="gnaq-official", dim=8, layers=2, epochs=1, batch_size=4096, lr=0.01,
                      progress=False, out=str(tmp_path), quant_options={"warmup": 0})
    trainer = Trainer(cfg, data)
    q = trainer.model.quantizer
    e0 = trainer.model.embedding.data
    np.testing.assert_array_equal(q.codes, assign_codes(e0, 4))  # rule 1 on the initial embeddings
    with ag.no_grad():
        z_before = q.represent().data
    users, pos, neg = (np.arange(6), np.arange(6), np.arange(6, 12))
    loss, _, _ = trainer.model.bpr_loss(users, pos, neg, reg=1e-4)
    trainer.optimizer.zero_grad()
    loss.backward()
    assert trainer.model.embedding.grad is None and np.abs(q.levels.grad).sum() > 0  # only levels learn
    trainer.optimizer.step()
    q.after_step()                                   # rule 2: codes re-binned from that step's z
    np.testing.assert_array_equal(q.codes, assign_codes(z_before, 4))
    assert not np.array_equal(q.codes, assign_codes(e0, 4))
    cfg.quant_options["rebin"] = "never"  # the ablation: rule 1's codes stay
    trainer = Trainer(cfg, data)
    q = trainer.model.quantizer
    before = q.codes.copy()
    loss, _, _ = trainer.model.bpr_loss(users, pos, neg, reg=1e-4)
    loss.backward()
    trainer.optimizer.step()
    q.after_step()
    np.testing.assert_array_equal(q.codes, before)
    with pytest.raises(ValueError, match="cannot be written as .gnaq"):
        from gnaq.export import build_sections
        build_sections(trainer.model, data)


def test_official_gnaq_item_bias_gradient_in_float64_and_scores_as_one_product(data, tmp_path):
    """bias=true: ŷᵤᵢ = zᵤ·zᵢ + bᵢ in the BPR margin (∂b checked by central differences of the loss
    recomputed in float64 from the same z) and in the evaluated factors ([z_U, 1] · [z_I, b])."""
    cfg = TrainConfig(bits=2, quantizer="gnaq-official", dim=8, layers=2, epochs=1, batch_size=4096, lr=0.01,
                      progress=False, out=str(tmp_path), quant_options={"warmup": 0, "bias": True})
    trainer = Trainer(cfg, data)
    model, q = trainer.model, trainer.model.quantizer
    rng = np.random.default_rng(3)
    q.bias.data[...] = rng.normal(0, 0.5, size=q.bias.shape)
    users, pos, neg = rng.integers(0, data.n_users, 64), rng.integers(0, data.n_items, 64), rng.integers(0, data.n_items, 64)
    loss, _, _ = model.bpr_loss(users, pos, neg, reg=0.0)
    trainer.optimizer.zero_grad()
    loss.backward()
    with ag.no_grad():
        z = q.represent().data.astype(np.float64)
    zu, zp, zn = z[users], z[data.n_users + pos], z[data.n_users + neg]

    def loss64(b):
        margin = (zu * (zp - zn)).sum(1) + b[pos, 0] - b[neg, 0]
        return np.mean(np.logaddexp(0.0, -margin))
    b, eps = q.bias.data.astype(np.float64), 1e-6
    numeric = np.zeros_like(b)
    for i in range(len(b)):
        up, down = b.copy(), b.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (loss64(up) - loss64(down)) / (2 * eps)
    assert abs(float(loss.data) - loss64(b)) < 1e-5
    np.testing.assert_allclose(q.bias.grad, numeric, rtol=1e-4, atol=1e-7)
    assert np.abs(numeric).sum() > 0
    user_f, item_f = model.final_embeddings()
    assert user_f.shape[1] == item_f.shape[1] == 9
    np.testing.assert_allclose(user_f @ item_f.T, z[:data.n_users] @ z[data.n_users:].T + b[:, 0][None, :], rtol=1e-5, atol=1e-5)
    clipped = Trainer(TrainConfig(**{**cfg.__dict__, "quant_options": {"warmup": 0, "bias": True, "clip": 1e-4},
                                     "out": str(tmp_path / "clip")}), data)
    clipped.model.quantizer.bias.data[...] = q.bias.data
    loss, _, _ = clipped.model.bpr_loss(users, pos, neg, reg=0.0)
    loss.backward()
    raw = clipped.model.quantizer.levels.grad.copy()
    clipped.model.quantizer.before_step()
    after = clipped.model.quantizer.levels.grad
    assert np.abs(raw).max() > 1e-4 and np.abs(after).max() <= 1e-4  # the bound binds, and holds
    np.testing.assert_array_equal(after, np.clip(raw, -1e-4, 1e-4))
    with pytest.raises(ValueError, match="clip"):
        make_quantizer("gnaq-official", 2, clip=-1)


def test_seeded_quantized_training_is_deterministic(data, tmp_path):
    results = []
    for run in ("a", "b"):
        cfg = TrainConfig(bits=2, quantizer="gnaq", dim=8, layers=2, epochs=2, batch_size=512, lr=0.01,
                          progress=False, out=str(tmp_path / run), quant_options={"delta": 0.3})
        trainer = Trainer(cfg, data)
        trainer.fit()
        results.append(trainer.model.quantizer.export())
    np.testing.assert_array_equal(results[0]["codes"], results[1]["codes"])
    np.testing.assert_array_equal(results[0]["scales"], results[1]["scales"])


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_each_quantizer_learns_on_synthetic_data(data, name, tmp_path):
    cfg = TrainConfig(bits=2, quantizer=name, dim=16, layers=2, epochs=6, batch_size=256, lr=0.01,
                      progress=False, out=str(tmp_path))
    result = Trainer(cfg, data).fit()
    rng = np.random.default_rng(0)
    random = evaluate(rng.standard_normal((data.n_users, 16)), rng.standard_normal((data.n_items, 16)),
                      data.train + data.valid, data.test)
    assert result["test_recall@20"] > 3 * random["recall@20"], name


def test_mixed_widths_follow_degree_and_quantize_each_node_at_its_width(data, tmp_path):
    from gnaq.quant.widths import mixed_widths
    from gnaq.quant.uniform import optimal_step, row_rms
    cfg = TrainConfig(bits=2, dim=8, layers=2, epochs=2, batch_size=512, lr=0.01, progress=False, out=str(tmp_path),
                      quant_options={"warmup": 0, "quantize": "z", "mix_share": 0.25})
    trainer = Trainer(cfg, data)
    q, model = trainer.model.quantizer, trainer.model
    widths = q.width.ravel()
    degree = np.diff(model.norm_adj.indptr)
    for lo, hi in ((0, data.n_users), (data.n_users, data.n_nodes)):
        high = widths[lo:hi] == 4
        assert high.sum() == round(0.25 * (hi - lo))
        assert degree[lo:hi][high].min() >= degree[lo:hi][~high].max()  # the busiest nodes get the bits
    assert q.mean_bits == pytest.approx(2 + 2 * widths.__eq__(4).mean())
    np.testing.assert_allclose(np.exp(q.log_s0.data).ravel(),
                               np.array([optimal_step(int(b)) for b in widths]) * row_rms(model.embedding.data).ravel(),
                               rtol=1e-6)
    trainer.fit()
    codes = q.export()["codes"]
    assert codes[widths == 2].max() <= 3 and codes[widths == 4].max() > 3 and codes.max() <= 15
    assert q.exportable and make_quantizer("gnaq", 2, mix_share=0.25, quantize="layer0").exportable
    assert (mixed_widths(model, 2, 4, 0.25, "random") != widths).any()
    with pytest.raises(ValueError, match="mix_share"):
        make_quantizer("gnaq", 4, mix_share=0.25, mix_bits=4)


def test_allocate_bits_is_reverse_water_filling_by_hand():
    from gnaq.quant.axes import allocate_bits, integer_steps
    # gains λ·4^(−b): [16, 4, 1, ¼] → axis 0; [4, 4, 1, ¼] → axis 0 (tie: smaller index);
    # [1, 4, 1, ¼] → axis 1; [1, 1, 1, ¼] → axis 0
    np.testing.assert_array_equal(allocate_bits([16, 4, 1, 0.25], 4), [3, 1, 0, 0])
    np.testing.assert_array_equal(allocate_bits([16, 4, 1, 0.25], 16, max_bits=4), [4, 4, 4, 4])
    np.testing.assert_array_equal(allocate_bits([16, 4, 1, 0.25], 16), [6, 5, 3, 2])  # errors λ·4^−b: 4^−4·(1, 1, 4, 4)
    with pytest.raises(ValueError, match="cannot spread"):
        allocate_bits([1.0, 1.0], 17)
    m, unit = integer_steps(np.array([[2.0, 1.0, 0.5], [2.5, 0.7, 9.0]]), np.array([[1, 2, 3], [4, 1, 0]]))
    np.testing.assert_array_equal(m, [[51, 26, 13], [64, 18, 0]])  # the largest coded step is 64 units
    assert unit == 2.5 / 64


def test_transform_coding_rotates_onto_principal_axes_and_spends_the_budget(data):
    adj = normalized_adjacency(data.train)
    rng = np.random.default_rng(2)
    init = rng.standard_normal((data.n_nodes, 12)) * np.geomspace(3, 0.03, 12)  # anisotropic: axes matter
    q = make_quantizer("gnaq", 2, quantize="z", transform="klt")
    model = LightGCN(data.n_users, data.n_items, adj, dim=12, n_layers=2, quantizer=q, init_embedding=init,
                     dtype=np.float64)
    z = q.combination()
    R, widths = q.axes.rotation, q.axes.widths[0]
    assert q.axes.widths.shape == (1, len(widths)) and widths.sum() == 2 * 12 and q.mean_bits == 2.0 and (widths >= 1).all()
    assert len(widths) < 12 and widths[0] > 2 and (np.diff(widths) <= 0).all()  # low-variance axes dropped
    np.testing.assert_allclose(R.T @ R, np.eye(len(widths)), atol=1e-12)
    cov = R.T @ (z.T @ z / len(z)) @ R  # R's columns: eigenvectors, variances descending
    np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-9 * cov.max())
    assert (np.diff(np.diag(cov)) <= 0).all()
    exported = q.export()
    assert exported["codes"].shape == (data.n_nodes, len(widths)) and (exported["codes"] < 2 ** widths).all()
    values = exported["codes"] + 0.5 - 2.0 ** (widths - 1)
    with ag.no_grad():
        zq = model.representation().data
    np.testing.assert_allclose(exported["scales"] * exported["column_steps"] * values, zq, atol=1e-12)
    zr = z @ R  # the node scale starts at Δ_2·σ(zₙR)
    np.testing.assert_allclose(np.exp(q.log_node.data), optimal_step(2) * np.sqrt((zr ** 2).mean(1, keepdims=True)))
    # at the same bits, per-axis widths (dropped axes counted as error) beat one width per node on z
    step = optimal_step(2) * np.sqrt((z ** 2).mean(1, keepdims=True))
    uniform = (levels(z, step, 2) + 0.5) * step
    error, error_uniform = ((zq @ R.T - z) ** 2).sum(), ((uniform - z) ** 2).sum()
    assert error < 0.5 * error_uniform, (error, error_uniform)
    # busy nodes: the 25% highest-degree users and items code 3 bits a value, the rest fewer, same axes
    q = make_quantizer("gnaq", 2, quantize="z", transform="klt", busy_share=0.25, busy_bits=3)
    model = LightGCN(data.n_users, data.n_items, adj, dim=12, n_layers=2, quantizer=q, init_embedding=init,
                     dtype=np.float64)
    group, widths = q.node_group, q.axes.widths
    degree = np.diff(adj.indptr)
    for lo, hi in ((0, data.n_users), (data.n_users, data.n_nodes)):
        busy = group[lo:hi] == 1
        assert busy.sum() == round(0.25 * (hi - lo)) and degree[lo:hi][busy].min() >= degree[lo:hi][~busy].max()
    assert widths.sum(1).tolist() == [(12 * (2 - 0.75)) // 0.75, 36] and q.mean_bits <= 2
    np.testing.assert_array_equal(q.axes.integer_steps == 0, widths == 0)
    exported = q.export()
    values = np.where(widths[group] > 0, exported["codes"] + 0.5 - 2.0 ** (widths[group] - 1), 0.0)
    with ag.no_grad():
        zq = model.representation().data
    np.testing.assert_allclose(exported["scales"] * exported["column_steps"][group] * values, zq, atol=1e-12)
    assert (zq[widths[group] == 0] == 0).all() and (exported["codes"][widths[group] == 0] == 0).all()
    for bad in ({"quantize": "layer0"}, {"quantize": "z", "mix_share": 0.25}, {"quantize": "z", "per_layer": True}):
        with pytest.raises(ValueError, match="transform='klt'"):
            make_quantizer("gnaq", bad.pop("bits", 2), transform="klt", **bad)
    with pytest.raises(ValueError, match="transform must be"):
        make_quantizer("gnaq", 2, quantize="z", transform="pca")
    for busy in ({"busy_share": 0.5, "busy_bits": 4}, {"busy_share": 0.25, "busy_bits": 2}, {"busy_share": 0.25}):
        with pytest.raises(ValueError, match="busy_share"):
            make_quantizer("gnaq", 2, quantize="z", **({"transform": "klt"} if "busy_bits" in busy else {}), **busy)


def test_idle_nodes_store_no_code_and_the_others_share_their_bits(data):
    """idle_share: the least-connected share of items (by degree, beside the busy share at the top; no
    user) code 0 bits, ẑ = 0; the rest take the remaining bits of the average, so the mean stays ≤ b."""
    adj = normalized_adjacency(data.train)
    init = np.random.default_rng(2).standard_normal((data.n_nodes, 12)) * np.geomspace(3, 0.03, 12)
    q = make_quantizer("gnaq", 2, quantize="z", transform="klt", busy_share=0.25, busy_bits=3, idle_share=0.4,
                       idle_by="degree", quantize_users=False)
    model = LightGCN(data.n_users, data.n_items, adj, dim=12, n_layers=2, quantizer=q, init_embedding=init,
                     dtype=np.float64)
    group, degree = q.node_group, np.diff(adj.indptr)
    for lo, hi in ((0, data.n_users), (data.n_users, data.n_nodes)):
        g, deg = group[lo:hi], degree[lo:hi]
        idle = round(0.4 * (hi - lo)) if lo else 0
        assert (g == 1).sum() == round(0.25 * (hi - lo)) and (g == 2).sum() == idle
        assert deg[g == 0].max() <= deg[g == 1].min() and (not idle or deg[g == 2].max() <= deg[g == 0].min())
    assert q.axes.widths.sum(1).tolist() == [int(12 * (2 - 0.25 * 3) // (1 - 0.25 - 0.4)), 36, 0]
    assert q.axes.widths.sum(1)[group[data.n_users:]].mean() <= 2 * 12  # the items' average
    with ag.no_grad():
        zq = model.representation().data
    assert (zq[group == 2] == 0).all() and (np.abs(zq[group != 2]).sum(1) > 0).all()
    for bad in ({"idle_share": 0.8}, {"idle_share": 1.0, "busy_share": 0}, {"quantize_users": True},
                {"idle_share": 0.3, "transform": "none", "busy_share": 0}):
        with pytest.raises(ValueError, match="idle_share"):
            make_quantizer("gnaq", 2, quantize="z", **{"transform": "klt", "busy_share": 0.25, "idle_share": 0.3,
                                                       "quantize_users": False, **bad})
    with pytest.raises(ValueError, match="idle_by"):
        make_quantizer("gnaq", 2, quantize="z", transform="klt", idle_share=0.3, idle_by="popular", quantize_users=False)


def test_file_entropy_grows_the_rest_rows_into_the_huffman_files_slack_within_the_packed_budget():
    """file_entropy: with --size and --export-entropy the rest group's row bits grow until the Huffman-coded
    rows (gnaq.entropy.coded_bits, checked against the written stream) fill what the packed rows would take,
    B = Σ ⌈B_g / 8⌉ over the file's rows (items), and never past it; the busy group keeps its width."""
    from gnaq.entropy import code_tables, coded_bits, encode_rows, lengths_section
    data = make_synthetic(600, 3000, mean_degree=8, seed=1)  # enough rows that the code tables are a small part
    adj = normalized_adjacency(data.train)
    init = np.random.default_rng(6).standard_normal((data.n_nodes, 16)) * np.geomspace(3, 0.1, 16)
    widths = {}
    for entropy in (False, True):
        q = make_quantizer("gnaq", 2, quantize="z", transform="klt", busy_share=0.1, busy_bits=3, idle_share=0.3,
                           file_ratio=16.0, file_rows="items", file_gram=False, file_entropy=entropy,
                           quantize_users=False)
        LightGCN(data.n_users, data.n_items, adj, dim=16, n_layers=2, quantizer=q, init_embedding=init, dtype=np.float64)
        widths[entropy] = q.axes.widths.sum(1)
        group, codes = q.node_group[data.n_users:], q.export()["codes"][data.n_users:]
        bits, tables = coded_bits(codes, group, q.axes.widths)
        written = code_tables(codes, group, q.axes.widths)
        assert -(-int(bits.sum()) // 8) == len(encode_rows(codes, group, written)) and tables == len(lengths_section(written))
        budget = int(np.sum(-(-np.asarray(q.row_bits) // 8)[group]))
        assert -(-int(bits.sum()) // 8) + tables <= budget
    assert widths[True][0] > widths[False][0] and widths[True][1:].tolist() == widths[False][1:].tolist()
    with pytest.raises(ValueError, match="file_entropy"):
        make_quantizer("gnaq", 2, quantize="z", transform="klt", file_entropy=True)


def test_recommendation_counts_match_a_brute_force_ranking(data):
    """recommendation_counts: item i's count is the number of users whose k best unseen items, by zᵤ·zᵢ with
    their training items excluded, hold i — against a full sort per user; a sample takes that many users."""
    from gnaq.quant.widths import recommendation_counts
    adj = normalized_adjacency(data.train)
    z = np.random.default_rng(3).standard_normal((data.n_nodes, 6))
    model = LightGCN(data.n_users, data.n_items, adj, dim=6, n_layers=1)
    train = data.train.tocsr()
    expected = np.zeros(data.n_items)
    for u in range(data.n_users):
        scores = z[data.n_users:] @ z[u]
        unseen = np.setdiff1d(np.arange(data.n_items), train.indices[train.indptr[u]:train.indptr[u + 1]])
        expected[unseen[np.argsort(-scores[unseen])[:5]]] += 1
    assert np.array_equal(recommendation_counts(z, model, k=5), expected)
    sampled = recommendation_counts(z, model, k=5, sample=7)
    assert sampled.sum() == 7 * 5 and (sampled <= expected).all()


def test_idle_by_recommended_leaves_the_unlisted_items_uncoded_and_resumes_them(data):
    """idle_by="recommended" (the default): the idle items are those with the smallest recommended_score
    under the z the codes start from (busy ones excluded); the groups travel in the state, so a quantizer
    started from other z takes them back; a state from before idle_by (no groups) gets the degree's."""
    from gnaq.quant.widths import node_groups, recommended_score
    adj = normalized_adjacency(data.train)

    def built(seed):
        init = np.random.default_rng(seed).standard_normal((data.n_nodes, 8)) * np.geomspace(3, 0.1, 8)
        q = make_quantizer("gnaq", 2, quantize="z", transform="klt", busy_share=0.2, busy_bits=3, idle_share=0.5,
                           quantize_users=False)
        model = LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=q, init_embedding=init,
                         dtype=np.float64)
        return q, model

    q, model = built(4)
    score, group = recommended_score(q.combination(), model), q.node_group[data.n_users:]
    assert (group == 2).sum() == round(0.5 * data.n_items) and (group[score == score.min()] != 0).all()
    assert score[group == 2].max() <= score[group == 0].min()  # the idle: the fewest lists, then degree
    by_degree = node_groups(model, 0.2, 0.5)
    assert not np.array_equal(q.node_group, by_degree)  # (this fixture ranks differently by the two rules)
    other, _ = built(5)
    assert not np.array_equal(other.node_group, q.node_group)
    other.load_state_dict(q.state_dict())
    assert np.array_equal(other.node_group, q.node_group)
    np.testing.assert_array_equal(other.axis_widths, q.axis_widths)
    old = {k: v for k, v in q.state_dict().items() if k != "node_group"}
    other.load_state_dict(old)
    assert np.array_equal(other.node_group, by_degree)


def test_auto_rotation_codes_z_on_the_axes_with_the_smaller_error():
    """Principal axes where the variance sits in few rotated directions; z's own axes where its
    coordinates are independent and light-tailed (a rotation would make them Gaussian-like)."""
    from gnaq.quant.axes import AxisCode, relative_error
    rng = np.random.default_rng(0)
    rotated = rng.standard_normal((3000, 16)) * np.geomspace(3, 0.1, 16) @ np.linalg.qr(rng.standard_normal((16, 16)))[0]
    uniform = rng.uniform(-1, 1, (3000, 16))
    for z, better in ((rotated, "klt"), (uniform, "identity")):
        errors = {r: relative_error(z, AxisCode.fit(z, 2, rotation=r)) for r in ("klt", "identity")}
        assert min(errors, key=errors.get) == better and max(errors.values()) > 1.2 * min(errors.values())
        auto = AxisCode.fit(z, 2, rotation="auto")
        assert relative_error(z, auto) == pytest.approx(errors[better])
    identity = AxisCode.fit(uniform, 2, rotation="identity")
    np.testing.assert_array_equal(identity.rotation, np.eye(16)[:, :identity.rotation.shape[1]])
    with pytest.raises(ValueError, match="rotation must be"):
        AxisCode.fit(uniform, 2, rotation="pca")


def test_coded_scales_train_and_store_one_byte_a_node(data, tmp_path):
    """scale_bits: the node scales trained are the grid's (straight-through), within half a grid step
    of the learned ℓ, and the file holds one byte a node and the level table instead of float32s."""
    from gnaq import edge
    from gnaq.export import export_model
    from gnaq.quant.scales import ScaleGrid
    adj = normalized_adjacency(data.train)
    models = {bits: LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, seed=1, quantizer=make_quantizer(
        "gnaq", 2, quantize="z", transform="klt", scale_bits=bits)) for bits in (0, 8)}
    q = models[8].quantizer
    grid = q.scale_grid
    assert isinstance(grid, ScaleGrid) and grid.levels == 256
    coded = q._log_node(ag.Tensor(q.log_node.data)).data
    assert np.all(np.abs(coded - q.log_node.data) <= grid.step / 2 + 1e-6)
    x = ag.Tensor(q.log_node.data.copy(), requires_grad=True)
    ag.sum(q._log_node(x) * 3.0).backward()
    np.testing.assert_array_equal(x.grad, np.full_like(x.data, 3.0))  # straight-through
    sizes = {}
    for bits, model in models.items():
        info = export_model(model, data, tmp_path / f"{bits}.gnaq", history=False)
        sizes[bits] = sum(v for k, v in info["sections"].items() if "scale" in k)
        loaded = edge.load(tmp_path / f"{bits}.gnaq", "numpy")
        with ag.no_grad():
            z = model.representation().data @ np.eye(model.quantizer.rotation.shape[1])
        np.testing.assert_allclose(loaded.item_vectors()[:, :z.shape[1]], z[data.n_users:], rtol=1e-5, atol=1e-6)
    n = data.n_users + data.n_items
    assert sizes == {0: 4 * n, 8: n + 4 * 256}  # 4 bytes a node → 1, plus the table
    with pytest.raises(ValueError, match="scale_bits"):
        make_quantizer("gnaq", 2, quantize="z", scale_bits=8)  # needs a transform
    with pytest.raises(ValueError, match="average_bits"):
        make_quantizer("gnaq", 2, quantize="z", transform="klt", average_bits=2.5)


def test_average_bits_sets_the_row_budget(data):
    adj = normalized_adjacency(data.train)
    model = LightGCN(data.n_users, data.n_items, adj, dim=16, n_layers=2, seed=1, quantizer=make_quantizer(
        "gnaq", 2, quantize="z", transform="klt", average_bits=1.5))
    assert model.quantizer.row_bits == [24] and abs(model.quantizer.mean_bits - 1.5) < 1e-9
