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
from gnaq.trainer import TrainConfig, Trainer


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


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("bits", [1, 2])
def test_export_dequantizes_to_the_trained_representation(data, name, bits):
    adj = normalized_adjacency(data.train)
    model = LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=make_quantizer(name, bits), seed=1)
    exported = model.quantizer.export()
    codes, scales = exported["codes"], exported["scales"]
    assert codes.dtype == np.uint8 and codes.max() < 2 ** bits
    groups = scales.shape[1]
    values = (codes.astype(np.float64) + 0.5 - 2 ** (bits - 1)).reshape(len(codes), groups, -1)
    dequantized = (values * scales[:, :, None]).reshape(len(codes), -1)
    with ag.no_grad():
        z = model.representation().data
    np.testing.assert_allclose(dequantized, z, rtol=1e-5, atol=1e-7)


def test_gnaq_scales_are_per_node_and_refined(data):
    adj = normalized_adjacency(data.train)
    q = make_quantizer("gnaq", 2)
    LightGCN(data.n_users, data.n_items, adj, dim=8, n_layers=2, quantizer=q, seed=1)
    scales = q.export()["scales"]
    assert scales.shape == (data.n_nodes, 1) and np.unique(scales).size > data.n_nodes // 2
    with pytest.raises(ValueError, match="delta"):
        make_quantizer("gnaq", 2, delta=1.5)
    with pytest.raises(ValueError, match="unexpected keyword"):
        make_quantizer("ste", 2, delta=0.5)


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
