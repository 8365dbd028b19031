"""Product quantization (gnaq/quant/pq.py) and its file kind "codebook" (format 6 of gnaq/edge.py)."""

import numpy as np
import pytest

from gnaq import autograd as ag
from gnaq import edge
from gnaq.data import make_synthetic
from gnaq.export import export_model
from gnaq.graph import normalized_adjacency
from gnaq.models import LightGCN
from gnaq.quant import make_quantizer
from gnaq.quant.pq import balanced_axes, kmeans, nearest, pq_lookup, round_codewords, subspace_dims


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=50, n_items=80, seed=5)


def make_model(data, dim=16, **options):
    model = LightGCN(data.n_users, data.n_items, normalized_adjacency(data.train), dim=dim, n_layers=2,
                     quantizer=make_quantizer("pq", options.pop("bits", 2), **options), seed=0, init_std=0.3,
                     dtype=np.float64)
    return model


def test_nearest_is_the_brute_force_argmin_and_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(300, 3)), rng.normal(size=(7, 3))
    index, dist = nearest(x, c)
    brute = ((x[:, None, :] - c[None]) ** 2).sum(2)
    np.testing.assert_array_equal(index, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), atol=1e-12)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    points = np.repeat(centres, 50, axis=0) + rng.normal(scale=0.1, size=(200, 2))
    found, assignment = kmeans(points, 4, seed=3)
    assert sorted(map(tuple, np.rint(found / 10).astype(int))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(set(assignment.tolist())) == 4 and np.all(np.bincount(assignment) == 50)
    # more centroids than rows: every row is its own codeword (distortion 0), no crash
    found, assignment = kmeans(points[:3], 8)
    np.testing.assert_allclose(found[assignment], points[:3])


def test_balanced_axes_spread_the_variance_evenly():
    variance = np.array([64.0, 32, 16, 8, 4, 2, 1, 0.5])
    order = balanced_axes(variance, 2)
    assert sorted(order.tolist()) == list(range(8))
    products = [np.prod(variance[order[m * 4:(m + 1) * 4]]) for m in range(2)]
    assert max(products) / min(products) < np.prod(variance[:4]) / np.prod(variance[4:])
    assert max(products) / min(products) <= 4.0


def test_codewords_round_to_int8_within_half_a_step():
    codebook = np.random.default_rng(1).normal(size=(2, 3, 5, 4))
    rounded, scale, ints = round_codewords(codebook)
    assert scale.shape == (2, 3) and np.abs(ints).max() == 127 and np.all(ints == np.rint(ints))
    assert np.all(np.abs(rounded - codebook) <= scale[:, :, None, None] / 2 + 1e-15)


def test_lookup_gradient_is_its_closed_form(rng=np.random.default_rng(2)):
    """Subspaces of 2, 3 and 1 columns in a codebook of room P = 3: ∂codebook = Σ over the rows using
    a codeword of ∂ẑ's subvector (the finite-difference gradient of the un-rounded lookup), zero in
    the unused room; ∂zr = ∂ẑ (straight-through); float64."""
    C, M, K, P, n, dims = 2, 3, 4, 3, 9, [2, 3, 1]
    offsets = np.concatenate([[0], np.cumsum(dims)])
    columns = np.concatenate([m * P + np.arange(p) for m, p in enumerate(dims)])
    codebook = ag.Tensor(rng.normal(size=(C, M, K, P)), requires_grad=True)
    zr = ag.Tensor(rng.normal(size=(n, sum(dims))), requires_grad=True)
    flat = (rng.integers(0, C, n)[:, None] * M + np.arange(M)) * K + rng.integers(0, K, (n, M))
    weight = rng.normal(size=(n, sum(dims)))
    out = pq_lookup(zr, codebook, flat, columns, straight_through=True)
    rounded = round_codewords(codebook.data)[0].reshape(-1, P)
    for r in range(n):
        for m, p in enumerate(dims):
            np.testing.assert_array_equal(out.data[r, offsets[m]:offsets[m + 1]], rounded[flat[r, m], :p])
    ag.sum(out * weight).backward()
    expected = np.zeros((C * M * K, P))
    for r in range(n):
        for m, p in enumerate(dims):
            expected[flat[r, m], :p] += weight[r, offsets[m]:offsets[m + 1]]
    np.testing.assert_allclose(codebook.grad, expected.reshape(C, M, K, P), atol=1e-12)
    np.testing.assert_allclose(zr.grad, weight)

    def unrounded(table):  # the smooth relaxation: the gather itself
        return (table.reshape(C * M * K, P)[flat.ravel()].reshape(n, M * P)[:, columns] * weight).sum()
    eps, flat_table = 1e-6, codebook.data.ravel()
    numeric = np.zeros(len(flat_table))
    for j in range(len(flat_table)):
        up, down = flat_table.copy(), flat_table.copy()
        up[j] += eps
        down[j] -= eps
        numeric[j] = (unrounded(up) - unrounded(down)) / (2 * eps)
    np.testing.assert_allclose(codebook.grad.ravel(), numeric, atol=1e-8)


def test_adaptive_subspaces_give_the_high_variance_axes_more_bits():
    variance = 2.0 ** -np.arange(16)  # 6 dB an axis
    dims = subspace_dims(variance, 4, 4)
    assert len(dims) == 4 and sum(dims) <= 16 and dims == sorted(dims)  # small subspaces first
    assert dims[0] < dims[-1]
    assert subspace_dims(np.ones(8), 4, 2) == [2, 2, 2, 2]  # flat spectrum: equal subspaces


def test_representation_is_the_nearest_codewords_and_rows_match(data):
    model = make_model(data, subspaces=4, code_bits=3)
    q = model.quantizer
    with ag.no_grad():
        z_hat = model.representation().data
        zr = q.combination() @ q.rotation.data
    rounded = round_codewords(q.codebook.data)[0]
    for n in (0, 7, data.n_users + 3):
        c = q.side[n]
        for m, (start, p) in enumerate(zip(q.offsets[:-1], q.dims)):
            sub = zr[n, start:start + p]
            best = ((rounded[c, m, :, :p] - sub) ** 2).sum(1).argmin()
            np.testing.assert_array_equal(z_hat[n, start:start + p], rounded[c, m, best, :p])
    rows = np.array([3, 60, 1, 99])
    with ag.no_grad():
        z_rows = ag.Tensor(q.combination()[rows])
        np.testing.assert_array_equal(q.represent_rows(z_rows, rows).data, z_hat[rows])
    assert q.mean_bits == 4 * 3 / 16


def test_reassignment_follows_the_embeddings_at_each_epoch(data):
    model = make_model(data, subspaces=4, code_bits=2)
    q = model.quantizer
    before = q.assignment.copy()
    model.embedding.data[...] = np.random.default_rng(9).normal(scale=0.3, size=model.embedding.data.shape)
    q.on_epoch_start(1)
    assert not np.array_equal(before, q.assignment)
    np.testing.assert_array_equal(q.assignment, q._nearest(q.combination() @ q.rotation.data, np.arange(len(q.side))))


def test_options_are_checked(data):
    with pytest.raises(ValueError, match="code_bits"):
        make_quantizer("pq", 2, code_bits=9)
    with pytest.raises(ValueError, match="codebooks"):
        make_quantizer("pq", 2, codebooks="per-node")
    with pytest.raises(ValueError, match="reassign"):
        make_quantizer("pq", 2, reassign="sometimes")
    with pytest.raises(ValueError, match="subspaces .* must divide dim"):
        make_model(data, subspaces=5)


@pytest.mark.parametrize("options", [{"subspaces": 4, "code_bits": 8}, {"subspaces": 8, "code_bits": 3,
                                                                          "codebooks": "shared"},
                                     {"subspaces": 5, "code_bits": 4, "rotation": "adaptive"}])
def test_file_holds_what_was_trained_and_is_smaller(data, tmp_path, options):
    model = make_model(data, **options)
    info = export_model(model, data, tmp_path / "m.gnaq", history=False)
    loaded = edge.load(tmp_path / "m.gnaq", "numpy")
    assert loaded.kind == "codebook" and loaded.header["format"] == 6
    with ag.no_grad():
        z_hat = model.representation().data
    np.testing.assert_allclose(loaded.item_vectors(), z_hat[data.n_users:], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loaded.user_vectors(), z_hat[:data.n_users], rtol=1e-6, atol=1e-7)
    M, b = model.quantizer.M, model.quantizer.code_bits
    assert info["sections"]["item_codes"] == data.n_items * -(-M * b // 8)
    assert info["sections"]["codewords"] == model.quantizer.C * 2 ** b * sum(model.quantizer.dims)


def test_codebook_header_is_checked_against_the_bytes(data, tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from edge_fuzz import join, split
    path = tmp_path / "m.gnaq"
    export_model(make_model(data, subspaces=4, code_bits=4), data, path)
    prefix, header, body = split(path.read_bytes())
    for field, value, message in [("subspace_dims", [4, 4, 4, 5], "'subspace_dims' is"),
                                  ("subspace_dims", [], "'subspace_dims'"), ("subspace_dims", [4, 0, 4], "'subspace_dims'"),
                                  ("codebooks", 3, "'codebooks' is 3"), ("bits", 9, "'bits' is 9"),
                                  ("bits", 5, "has .* bytes; the header implies"), ("groups", 2, "1 group"),
                                  ("level_offset", -7.5, "'level_offset'"), ("subspace_dims", [4, 4, 4, 3], "section")]:
        with pytest.raises(edge.EdgeFormatError, match=message):
            edge.load(join(prefix, dict(header, **{field: value}), body))
    with pytest.raises(edge.EdgeFormatError, match="needs format version 6"):
        edge.load(join(prefix[:4] + (5).to_bytes(2, "little"), dict(header, format=5), body))
    other = tmp_path / "q.gnaq"
    export_model(LightGCN(data.n_users, data.n_items, normalized_adjacency(data.train), dim=16,
                          quantizer=make_quantizer("gnaq", 2, quantize="z")), data, other)
    prefix, header, body = split(other.read_bytes())
    with pytest.raises(edge.EdgeFormatError, match="belongs to kind 'codebook'"):
        edge.load(join(prefix, dict(header, subspace_dims=[4]), body))
