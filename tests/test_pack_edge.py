import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnaq import edge, edge_format, edge_numpy
from gnaq.data import make_synthetic
from gnaq.export import export_model
from gnaq.graph import normalized_adjacency
from gnaq.models import LightGCN
from gnaq.pack import pack, pack_columns, pack_numpy, row_bytes, unpack
from gnaq.quant import make_quantizer
from gnaq.recommend import main as recommend_main
from gnaq.spmm import HAVE_NUMBA

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ["numpy"] + (["numba"] if HAVE_NUMBA else [])


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("dim", [1, 3, 5, 13, 64])
def test_pack_round_trip_and_identical_bytes(bits, dim):
    rng = np.random.default_rng(bits * 100 + dim)
    cases = [rng.integers(0, 2 ** bits, size=(9, dim)), np.zeros((2, dim)), np.full((2, dim), 2 ** bits - 1)]
    for codes in cases:
        codes = codes.astype(np.uint8)
        packed = {impl: pack(codes, bits, impl) for impl in IMPLS}
        for impl, p in packed.items():
            assert p.shape == (len(codes), row_bytes(dim, bits)) and p.dtype == np.uint8
            assert p.tobytes() == packed["numpy"].tobytes(), impl
            for unpack_impl in IMPLS:
                np.testing.assert_array_equal(unpack(p, bits, dim, unpack_impl), codes)


def test_bit_order_is_lsb_first():
    # codes 1, 2, 3, 0 at 2 bits -> byte 0b00_11_10_01
    assert pack_numpy(np.array([[1, 2, 3, 0]], dtype=np.uint8), 2).tolist() == [[0b00111001]]
    # 3 bits straddle: codes 7, 0, 5 -> bits 111 000 101 -> byte0 = 0b01_000_111, byte1 = 0b1
    assert pack(np.array([[7, 0, 5]]), 3, "numpy").tolist() == [[0b01000111, 0b1]]


def test_column_widths_pack_one_bitstream_per_row():
    rng = np.random.default_rng(3)
    for b in (1, 2, 3, 4, 8):  # uniform widths: the same bytes as pack
        codes = rng.integers(0, 2 ** b, size=(7, 11)).astype(np.uint8)
        assert pack_columns(codes, [b] * 11).tobytes() == pack(codes, b, "numpy").tobytes()
    # widths 3, 1, 2, 4: codes 5, 1, 2, 9; stream bits p0.. = 1,0,1 | 1 | 0,1 | 1,0,0,1 (each LSB first)
    # → byte 0 = p7…p0 = 0b0_1_10_1_101, byte 1 = p9 p8 = 0b10
    assert pack_columns(np.array([[5, 1, 2, 9]]), [3, 1, 2, 4]).tolist() == [[0b01101101, 0b10]]
    widths = np.array([4, 1, 3, 2, 2, 1, 3])
    codes = (rng.integers(0, 256, size=(5, 7)) % (2 ** widths)).astype(np.uint8)
    np.testing.assert_array_equal(edge_numpy.unpack_columns(pack_columns(codes, widths), widths), codes)
    with pytest.raises(ValueError, match="widths"):
        pack_columns(np.array([[4, 0]]), [2, 1])
    # a column at 0 bits takes no bits: widths 2, 0, 2 pack like widths 2, 2 without the middle column
    np.testing.assert_array_equal(pack_columns(np.array([[3, 0, 1]]), [2, 0, 2]), pack(np.array([[3, 1]]), 2, "numpy"))


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 4\)"):
        pack(np.array([[4]]), 2)
    with pytest.raises(ValueError, match="bits must be one of"):
        pack(np.array([[1]]), 5)
    with pytest.raises(ValueError, match="packed rows must have"):
        unpack(np.zeros((2, 3), dtype=np.uint8), 2, 64)


@pytest.fixture(scope="module")
def data():
    return make_synthetic(n_users=60, n_items=90, seed=4)


def make_model(data, quantizer="gnaq", bits=2, dim=16, seed=0, **options):
    adj = normalized_adjacency(data.train)
    model = LightGCN(data.n_users, data.n_items, adj, dim=dim, n_layers=2,
                     quantizer=make_quantizer(quantizer, bits, **options), seed=seed, init_std=0.3)
    return model


def reference_scores(model, data):
    """ẑ_U ẑ_Iᵀ of the rows as a whole file stores them (users coded too, even when trained in float)."""
    from gnaq import autograd as ag
    quantizer = model.quantizer
    float_users = getattr(quantizer, "quantize_users", True) is False
    if float_users:
        quantizer.quantize_users = True
    try:
        with ag.no_grad():
            z = model.representation().data.astype(np.float64)
    finally:
        if float_users:
            quantizer.quantize_users = False
    return z[: data.n_users] @ z[data.n_users:].T


LAYER0 = {"quantize": "layer0"}
Z = {"quantize": "z"}


@pytest.mark.parametrize("quantizer, bits, options", [
    ("gnaq", 1, Z), ("gnaq", 2, Z), ("gnaq", 3, Z), ("gnaq", 4, Z), ("gnaq", 8, Z), ("bigear", 1, {}),
    ("bigear", 2, {}), ("n2uq", 2, {}), ("gnaq", 32, {}), ("gnaq", 2, LAYER0), ("gnaq", 1, LAYER0),
    ("gnaq", 2, {**Z, "mix_share": 0.3}), ("gnaq", 1, {**Z, "mix_share": 0.2, "mix_bits": 8}),
    ("gnaq", 3, {**Z, "mix_share": 0.5, "mix_bits": 4}), ("gnaq", 2, {**LAYER0, "mix_share": 0.3}),
    ("gnaq", 1, {**LAYER0, "mix_share": 0.25, "mix_bits": 8}), ("ste", 2, {"mix_share": 0.25}),
    ("lsq", 2, {"mix_share": 0.25}), ("lsq", 3, {**LAYER0, "mix_share": 0.3, "mix_bits": 8}),
    ("ste", 1, {**LAYER0, "mix_share": 0.5}), ("gnaq", 2, {**Z, "transform": "klt"}),
    ("gnaq", 1, {**Z, "transform": "klt"}), ("gnaq", 3, {**Z, "transform": "klt"}),
    ("gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25, "busy_bits": 3}),
    ("gnaq", 1, {**Z, "transform": "klt", "busy_share": 0.3, "busy_bits": 3}),
    ("gnaq", 4, {**Z, "transform": "klt", "busy_share": 0.25, "busy_bits": 8}),  # int64 sums in numba
    ("gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25, "busy_bits": 5}),  # 'bits' (the widest column) 6
    ("gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25, "busy_bits": 3, "scale_bits": 8}),
    ("gnaq", 2, {**Z, "transform": "auto", "scale_bits": 4, "average_bits": 1.5}),
    ("gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.1, "busy_bits": 3, "idle_share": 0.5, "scale_bits": 8,
                 "quantize_users": False}),
    ("gnaq", 2, {**Z, "transform": "identity", "idle_share": 0.4, "quantize_users": False}),  # idle items: ẑ = 0
    ("pq", 2, {}), ("pq", 2, {"subspaces": 8, "code_bits": 3}), ("pq", 2, {"subspaces": 5, "rotation": "adaptive"}), ("pq", 1, {"code_bits": 4, "codebooks": "shared",
                                                                            "rotation": "balanced"})])
def test_backends_agree_with_each_other_and_the_float_reference(data, tmp_path, quantizer, bits, options):
    model = make_model(data, quantizer, bits, **options)
    path = tmp_path / "m.gnaq"
    info = export_model(model, data, path)
    layer0 = options.get("quantize") == "layer0"
    assert (info["graph_bytes"] > 0) == layer0  # a layer-0 table travels with its graph
    reference = reference_scores(model, data)
    backends = ["python", "numpy"] + (["numba"] if HAVE_NUMBA else [])
    models = {b: edge.load(path, backend=b) for b in backends}
    for user in (0, 7, 59):
        raw = int(data.user_ids[user])
        scores = {b: np.array(m.score(raw, list(data.item_ids))) for b, m in models.items()}
        for b in backends:
            np.testing.assert_allclose(scores[b], reference[user], rtol=2e-5, atol=1e-6)
            if bits != 32 and not layer0:  # packed scoring is bit-identical across backends
                assert scores[b].tobytes() == scores["python"].tobytes(), b
        tops = {b: m.recommend(raw, k=10) for b, m in models.items()}
        assert all([i for i, _ in tops[b]] == [i for i, _ in tops["python"]] for b in backends)
        seen = set(data.train[user].indices) | set(data.valid[user].indices)
        assert not seen & {int(i) for i, _ in tops["python"]}
        unseen = np.array([i for i in range(data.n_items) if i not in seen])
        expected = unseen[np.argsort(-reference[user][unseen], kind="stable")[:10]]
        np.testing.assert_allclose([s for _, s in tops["python"]], reference[user][expected], rtol=2e-5, atol=1e-6)


def test_ties_break_by_smaller_item_index(data, tmp_path):
    model = make_model(data, "gnaq", 1, dim=8, quantize="z")  # 1 bit, d = 8: many exactly tied scores
    path = tmp_path / "m.gnaq"
    export_model(model, data, path)
    for backend in ["python", "numpy"] + (["numba"] if HAVE_NUMBA else []):
        m = edge.load(path, backend=backend)
        top = m.recommend(int(data.user_ids[0]), k=40, exclude_seen=False)
        keys = [(-s, int(np.flatnonzero(data.item_ids == i)[0])) for i, s in top]
        assert keys == sorted(keys), backend


def test_history_is_optional_and_smaller(data, tmp_path):
    model = make_model(data)
    with_history = export_model(model, data, tmp_path / "a.gnaq", history=True)
    without = export_model(model, data, tmp_path / "b.gnaq", history=False)
    assert without["file_bytes"] < with_history["file_bytes"]
    m = edge.load(tmp_path / "b.gnaq")
    with pytest.raises(ValueError, match="without training history"):
        m.recommend(int(data.user_ids[0]))
    assert len(m.recommend(int(data.user_ids[0]), exclude_seen=False)) == 10


def test_errors_are_specific(data, tmp_path):
    model = make_model(data)
    path = tmp_path / "m.gnaq"
    export_model(model, data, path)
    blob = path.read_bytes()
    m = edge.load(path)
    with pytest.raises(edge.UnknownUserError, match="user 123456 is not in"):
        m.recommend(123456)
    for k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            m.recommend(int(data.user_ids[0]), k=k)
    cases = {
        "flipped": blob[:100] + bytes([blob[100] ^ 0x40]) + blob[101:],
        "truncated": blob[: len(blob) // 2],
        "magic": b"GNAX" + blob[4:],
        "newer": blob[:4] + (99).to_bytes(2, "little") + blob[6:],
        "tiny": blob[:6],
    }
    messages = {"flipped": "CRC32 mismatch", "truncated": "CRC32 mismatch|truncated", "magic": "bad magic",
                "newer": "version 99 is newer", "tiny": "bad magic"}
    for name, corrupted in cases.items():
        bad = tmp_path / f"{name}.gnaq"
        bad.write_bytes(corrupted)
        with pytest.raises(edge.EdgeFormatError, match=messages[name]):
            edge.load(bad)


def test_format_version_is_the_oldest_that_reads_the_kind(data, tmp_path, monkeypatch):
    from dataclasses import replace
    raw = replace(data, user_ids=np.arange(data.n_users) + 100, item_ids=np.arange(data.n_items) * 3)
    for options, source, version in ((Z, raw, 1), (LAYER0, raw, 2), (LAYER0, data, 3), (Z, data, 5)):
        path = tmp_path / f"v{version}.gnaq"
        export_model(make_model(data, **options), source, path, compact=version >= 3)
        assert int.from_bytes(path.read_bytes()[4:6], "little") == version
    idle = make_model(data, transform="klt", busy_share=0.1, idle_share=0.4, quantize_users=False, **Z)
    export_model(idle, data, tmp_path / "v7.gnaq")  # a group of 0 bits: version 7; without one, 5 (above)
    assert int.from_bytes((tmp_path / "v7.gnaq").read_bytes()[4:6], "little") == 7
    export_model(make_model(data, transform="klt", **Z), data, tmp_path / "v4.gnaq", compact=False)  # column widths
    assert int.from_bytes((tmp_path / "v4.gnaq").read_bytes()[4:6], "little") == 4
    assert "item_gram" in edge._read(tmp_path / "v5.gnaq")[1] and "item_gram" not in edge._read(tmp_path / "v4.gnaq")[1]
    # ids 0..n-1 cost no bytes (format 3): the file is smaller by exactly the two int64 id sections
    export_model(make_model(data, **LAYER0), data, tmp_path / "v3-ids.gnaq", compact=False)  # v2 layout, ids 0..n-1
    assert int.from_bytes((tmp_path / "v3-ids.gnaq").read_bytes()[4:6], "little") == 2
    history = data.train.nnz + data.valid.nnz
    saved = (tmp_path / "v3-ids.gnaq").stat().st_size - (tmp_path / "v3.gnaq").stat().st_size
    assert saved > 8 * (data.n_users + data.n_items) + 2 * history  # no ids; ≤ 2 bytes per history entry
    a, b = edge.load(tmp_path / "v3.gnaq"), edge.load(tmp_path / "v3-ids.gnaq")
    assert all(a.seen_items(u) == b.seen_items(u) for u in range(data.n_users))
    assert not {"user_ids", "item_ids"} & set(edge._read(tmp_path / "v3.gnaq")[1])
    assert [(3 * i, s) for i, s in edge.load(tmp_path / "v5.gnaq").recommend(5, k=3)] == \
        edge.load(tmp_path / "v1.gnaq").recommend(105, k=3)  # the same model under its raw ids
    assert edge.load(tmp_path / "v1.gnaq").item_ids[:3] == [0, 3, 6]
    monkeypatch.setattr(edge_format, "FORMAT_VERSION", 1)  # a reader from before kind "propagate"
    edge.load(tmp_path / "v1.gnaq")
    with pytest.raises(edge.EdgeFormatError, match="version 2 is newer"):
        edge.load(tmp_path / "v2.gnaq")
    monkeypatch.setattr(edge_format, "FORMAT_VERSION", 2)  # a reader from before header ids
    with pytest.raises(edge.EdgeFormatError, match="version 3 is newer"):
        edge.load(tmp_path / "v3.gnaq")
    monkeypatch.setattr(edge_format, "FORMAT_VERSION", 3)  # a reader from before column widths
    with pytest.raises(edge.EdgeFormatError, match="version 4 is newer"):
        edge.load(tmp_path / "v4.gnaq")
    monkeypatch.setattr(edge_format, "FORMAT_VERSION", 4)  # a reader from before the fold-in Gram matrix
    with pytest.raises(edge.EdgeFormatError, match="version 5 is newer"):
        edge.load(tmp_path / "v5.gnaq")
    monkeypatch.setattr(edge_format, "FORMAT_VERSION", 6)  # a reader from before idle groups
    with pytest.raises(edge.EdgeFormatError, match="version 7 is newer"):
        edge.load(tmp_path / "v7.gnaq")


def test_column_fields_are_checked_against_the_bytes(data, tmp_path):
    """A transform-coded file whose header lies about its columns is refused, naming the field."""
    import json
    import struct
    import zlib
    path = tmp_path / "klt.gnaq"
    export_model(make_model(data, transform="klt", busy_share=0.25, busy_bits=3, **Z), data, path)
    blob = path.read_bytes()
    n = struct.unpack_from("<I", blob, 6)[0]
    header, rest = json.loads(blob[10:10 + n]), blob[10 + n:-4]
    widths, steps = header["column_widths"], header["column_steps"]
    assert len(widths) == 2 and "user_width_index" in header["sections"]  # two node groups

    def write(edit):
        h = json.loads(json.dumps(header))
        edit(h)
        body = json.dumps(h).encode()
        out = blob[:4] + struct.pack("<HI", h["format"], len(body)) + body + rest
        (tmp_path / "bad.gnaq").write_bytes(out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF))
        return tmp_path / "bad.gnaq"
    d = len(widths[0])
    cases = [
        (lambda h: h.update(column_widths=[row[:-1] for row in widths]), "column_widths"),       # one column short
        (lambda h: h.update(column_widths=widths[1:]), "column_steps"),                         # one group, two steps
        (lambda h: h.update(column_widths=widths * 3, column_steps=steps * 3), "column_widths"),  # six groups
        (lambda h: h.update(column_widths=[[min(b + 1, 4) for b in row] for row in widths]),
         "column_steps|_codes|bits"),                                                            # more bits than bytes
        (lambda h: h.update(column_widths=[[0] * d, widths[1]]), "column_widths"),               # a group with no bits
        (lambda h: h.update(column_widths=[[0] * d] * 2, column_steps=[[0] * d] * 2, format=7),
         "column_widths"),                                                                       # no group with bits
        (lambda h: h.update(column_widths=[[9] * d] * 2, bits=9), "bits|column_widths"),          # past 8 bits
        (lambda h: h.update(bits=h["bits"] - 1), "bits|column_widths"),                          # not the widest
        (lambda h: h.update(column_steps=[[65] * d] * 2), "column_steps"),                       # int32 sums
        (lambda h: h.update(column_widths=[widths[0][:-1] + [0], widths[1]]), "column_steps"),   # a step at 0 bits
        (lambda h: h.pop("column_steps"), "column_steps"),
        (lambda h: h.update(format=3), "column_widths"),                                          # version 4 field
        (lambda h: h.update(widths=[2, 4]), "column_widths"),                                     # not with node widths
        (lambda h: h.update(kind="propagate"), "column_widths|layer_weights|graph"),
    ]
    for edit, field in cases:
        with pytest.raises(edge.EdgeFormatError, match=field):
            edge.load(write(edit))
    edge.load(write(lambda h: None))  # the unedited header still loads


def test_export_is_atomic_and_keeps_the_old_file_on_failure(data, tmp_path, monkeypatch):
    model = make_model(data)
    path = tmp_path / "m.gnaq"
    export_model(model, data, path)
    before = path.read_bytes()
    import gnaq.export as export_module
    monkeypatch.setattr(export_module, "encode", lambda h, s: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        export_model(model, data, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.gnaq"]


@pytest.mark.parametrize("options", [Z, LAYER0], ids=["z", "layer0"])
def test_edge_runs_with_numpy_unimportable(data, tmp_path, options):
    model = make_model(data, **options)
    path = tmp_path / "m.gnaq"
    export_model(model, data, path)
    user = int(data.user_ids[5])
    expected = edge.load(path, backend="python").recommend(user, k=5)
    script = (
        "import sys; sys.modules['numpy'] = None; sys.modules['numba'] = None\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import gnaq.edge as edge\n"
        f"m = edge.load({str(path)!r})\n"
        "assert m.backend == 'python', m.backend\n"
        f"print(repr(m.recommend({user}, k=5)))\n"
        "assert 'numpy' not in [k for k, v in sys.modules.items() if v is not None]\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(expected)


def test_recommend_cli(data, tmp_path, capsys):
    model = make_model(data)
    path = tmp_path / "m.gnaq"
    export_model(model, data, path)
    user = int(data.user_ids[2])
    assert recommend_main([str(path), "--user", str(user), "-k", "3", "--json"]) == 0
    import json
    out = json.loads(capsys.readouterr().out)
    assert len(out["items"]) == 3
    assert recommend_main([str(path), "--user", "999999"]) == 2
    assert "is not in" in capsys.readouterr().err
    assert recommend_main([str(tmp_path / "missing.gnaq"), "--user", "1"]) == 2
    capsys.readouterr()
    liked = [int(data.item_ids[i]) for i in (1, 4, 9)]
    assert recommend_main([str(path), "--items", ",".join(map(str, liked)), "-k", "4", "--json"]) == 0
    folded = [x["item"] for x in json.loads(capsys.readouterr().out)["items"]]
    assert folded == [i for i, _ in edge.load(path).recommend_for_items(liked, k=4)] and not set(folded) & set(liked)
    assert recommend_main([str(path), "--items", "1,99999"]) == 2 and "99999" in capsys.readouterr().err


def test_fuzzed_files_load_consistently_or_are_refused(data, tmp_path):
    """Thousands of seeded variants of ten real files (quantized, propagate, float, mixed widths
    graph-free and layer-0, column widths, codebook, coded scales, Huffman-coded rows, item-only without
    its Gram matrix), under a
    1 GiB address-space limit: each loads and scores consistently or raises EdgeFormatError."""
    import json
    sources = []
    for name, quantizer, bits, options in [("q", "gnaq", 2, Z), ("l0", "gnaq", 3, LAYER0), ("f", "gnaq", 32, {}),
                                           ("mixed", "gnaq", 2, {**Z, "mix_share": 0.3}),
                                           ("mixed-l0", "gnaq", 2, {**LAYER0, "mix_share": 0.3}),
                                           ("klt", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25}),
                                           ("pq", "pq", 2, {"subspaces": 3, "code_bits": 4, "rotation": "adaptive"}),
                                           ("coded", "gnaq", 2, {**Z, "transform": "klt", "scale_bits": 8}),
                                           ("huffman", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25}),
                                           ("huffman-idle", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.1,
                                                                        "idle_share": 0.5, "quantize_users": False})]:
        path = tmp_path / f"{name}.gnaq"
        export_model(make_model(data, quantizer, bits, dim=8, **options), data, path, entropy=name.startswith("huffman"))
        sources.append(str(path))
    path = tmp_path / "items-nogram.gnaq"  # item-only, no Ḡ: the reader folds in from rows it computes Ḡ of
    export_model(make_model(data, "gnaq", 2, dim=8, **Z, transform="klt", scale_bits=8), data, path, history=False,
                 users=False, gram=False)
    sources.append(str(path))
    fuzz = Path(__file__).with_name("edge_fuzz.py")
    proc = subprocess.run([sys.executable, str(fuzz), "0", "700", *sources], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    total = sum(sum(c.values()) for c in counts.values())
    assert total >= 2 * 10 * 700  # every variant, two backends
    assert all("crashed" not in c for c in counts.values())
    assert sum(c.get("refused", 0) for c in counts.values()) > total // 2  # most lies are caught
    assert sum(c.get("loaded", 0) for c in counts.values()) > 0  # harmless edits (e.g. a flipped code bit) load


def test_varint_sections_decode_the_same_in_python_and_numpy(data, tmp_path):
    from gnaq.edge import _varints_python
    from gnaq.edge_numpy import varints as _varints_numpy
    from gnaq.export import varints
    values = [0, 1, 127, 128, 300, 16383, 16384, 2 ** 21, 2 ** 34 - 1] + list(range(0, 5000, 7))
    blob = varints(values)
    assert _varints_python(blob, "f", "s") == _varints_numpy(blob, "f", "s").tolist() == values
    for bad, why in ((bytes([0x80]), "ends inside"), (bytes([0xFF] * 6 + [1]), "longer than")):
        for decode in (_varints_python, _varints_numpy):
            with pytest.raises(edge.EdgeFormatError, match=why):
                decode(bad, "f", "s")
    model = make_model(data, "gnaq", 2, **LAYER0)  # graph and history both varint-encoded
    export_model(model, data, tmp_path / "c.gnaq")
    export_model(model, data, tmp_path / "r.gnaq", compact=False)
    assert {"graph_lengths", "history_deltas"} <= set(edge._read(tmp_path / "c.gnaq")[1])
    for backend in ("python", "numpy"):
        compact, raw = edge.load(tmp_path / "c.gnaq", backend), edge.load(tmp_path / "r.gnaq", backend)
        assert compact.recommend(3, k=10) == raw.recommend(3, k=10)


def test_undelta_is_the_same_in_python_and_numpy():
    from gnaq.edge import _undelta
    from gnaq.edge_numpy import undelta as _undelta_numpy
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 6, size=40).tolist() + [0, 0]
    rows = [sorted(rng.choice(50, size=n, replace=False).tolist()) for n in lengths]
    deltas = [g for row in rows for g in np.diff([0] + row).tolist()]
    py, vec = _undelta(lengths, deltas, "f", "history", 50), _undelta_numpy(lengths, deltas, "f", "history", 50)
    assert py == vec and list(py[1]) == [i for row in rows for i in row]
    for bad in ([3, 60], [40, 10], [49, 0, 1]):  # a gap, or a running sum, past n_items
        for undelta in (_undelta, _undelta_numpy):
            with pytest.raises(edge.EdgeFormatError, match="runs past n_items"):
                undelta([len(bad)], bad, "f", "history", 50)


def test_layer0_dequantization_vectorised_equals_the_python_loop():
    from gnaq.edge import _row_bytes, _unpack_at
    from gnaq.edge_numpy import dequantize
    from gnaq.export import pack_mixed
    rng = np.random.default_rng(1)
    d, widths = 12, rng.choice([1, 2, 4, 8], size=30)
    codes = np.stack([rng.integers(0, 2 ** int(b), size=d) for b in widths]).astype(np.uint8)
    blob, scales = pack_mixed(codes, widths), rng.random(30).tolist()
    starts = np.concatenate([[0], np.cumsum([_row_bytes(d, int(b)) for b in widths])[:-1]]).tolist()
    loop = [scales[r] * (c + 0.5 - 2 ** (int(widths[r]) - 1)) for r in range(30)
            for c in _unpack_at(blob, starts[r], d, int(widths[r]))]
    assert dequantize(blob, widths.tolist(), starts, scales, d).tolist() == loop


def test_column_files_with_three_node_groups_score_like_their_dequantized_rows(data, tmp_path, monkeypatch):
    """The format allows up to four node groups (gnaq writes two): a third group, packed with a 2-bit
    index per node, scores exactly what its dequantized rows say on every backend."""
    model = make_model(data, "gnaq", 2, transform="klt", busy_share=0.25, busy_bits=3, **Z)
    exported = model.quantizer.export()
    widths, steps = exported["column_widths"], exported["column_steps"]
    third = np.maximum(widths[0] - 1, 0)
    third[0] = max(third[0], 1)  # a group with fewer bits, at least one
    group = exported["column_group"].copy()
    group[::3] = 2
    # group 2's codes clipped to its widths (a column at 0 bits holds code 0)
    codes = np.where(group[:, None] == 2, np.minimum(exported["codes"], 2 ** third[None, :] - 1), exported["codes"])
    faked = {**exported, "codes": codes.astype(np.uint8), "column_group": group,
             "column_widths": np.vstack([widths, third]), "column_steps": np.vstack([steps, np.where(third > 0, steps[0], 0)])}
    monkeypatch.setattr(model.quantizer, "export", lambda: faked)
    path = tmp_path / "three.gnaq"
    export_model(model, data, path)
    all_widths, all_steps = faked["column_widths"][group], faked["column_steps"][group]
    values = np.where(all_widths > 0, codes + 0.5 - 2.0 ** (all_widths - 1), 0.0) * all_steps * faked["scales"]
    reference = values[: data.n_users] @ values[data.n_users:].T
    assert len(edge._read(path)[0]["column_widths"]) == 3
    scores = {}
    for backend in ["python", "numpy"] + (["numba"] if HAVE_NUMBA else []):
        m = edge.load(path, backend=backend)
        scores[backend] = np.array([m.score(int(data.user_ids[u]), list(data.item_ids)) for u in (0, 3, 59)])
        np.testing.assert_allclose(scores[backend], reference[[0, 3, 59]], rtol=1e-6, atol=1e-9)
        assert scores[backend].tobytes() == scores["python"].tobytes(), backend


@pytest.mark.parametrize("options, bits", [(Z, 2), ({}, 32), ({**Z, "transform": "klt", "busy_share": 0.25}, 2)],
                         ids=["uniform", "float", "columns"])
def test_every_header_field_is_checked_even_where_the_kind_does_not_use_it(data, tmp_path, options, bits):
    """A graph-free file never reads layer_weights, layers, quantizer or level_offset, and a float
    file never reads groups: a lie in any of them is still refused, naming the field."""
    sys.path.insert(0, str(Path(__file__).parent))
    from edge_fuzz import join, split
    path = tmp_path / "m.gnaq"
    export_model(make_model(data, "gnaq", bits, **options), data, path)
    prefix, header, body = split(path.read_bytes())
    lies = {"layer_weights": "x", "layers": 7, "quantizer": 3, "embedding_dim": 0, "format": 9,
            "level_offset": 0.25, "colour": "blue"}
    if bits == 32:
        lies["groups"] = 2
    for field, value in lies.items():
        (tmp_path / "lie.gnaq").write_bytes(join(prefix, {**header, field: value}, body))
        for backend in ("python", "numpy"):
            with pytest.raises(edge.EdgeFormatError, match=f"'{field}'"):
                edge.load(tmp_path / "lie.gnaq", backend)
    (tmp_path / "true.gnaq").write_bytes(join(prefix, header, body))
    edge.load(tmp_path / "true.gnaq")  # the same bytes without a lie load


@pytest.mark.parametrize("options, compact", [(Z, True), ({**Z, "mix_share": 0.3}, True),
                                              ({**Z, "transform": "klt", "busy_share": 0.25}, True),
                                              ({**Z, "transform": "klt", "busy_share": 0.25}, False),
                                              ({**Z, "transform": "klt", "busy_share": 0.25, "scale_bits": 8}, True)],
                         ids=["uniform", "mixed", "columns", "columns-no-gram-int64-ids", "coded-scales"])
def test_streamed_models_answer_like_the_loaded_file(data, tmp_path, options, compact):
    """Every query of a file read from flash equals the loaded file's: integer sums bit for bit, float
    sums (fold-in, cosines) to 1e-12, the same ids, whatever the chunk."""
    from dataclasses import replace
    from gnaq import edge_stream
    source = data if compact else replace(data, item_ids=np.arange(data.n_items) * 3 + 1,
                                          user_ids=np.arange(data.n_users) * 2 + 5)
    path = tmp_path / "m.gnaq"
    export_model(make_model(data, "gnaq", 2, **options), source, path, compact=compact, gram=compact)
    loaded = edge.load(path, "python")
    liked = [loaded.item_ids[i] for i in (2, 11, 40)]

    def close(a, b):
        return [i for i, _ in a] == [i for i, _ in b] and all(
            abs(x - y) <= 1e-12 * max(1.0, abs(y)) for (_, x), (_, y) in zip(a, b))
    for chunk in (1, 7, 256):
        with edge_stream.open_model(path, chunk_items=chunk) as streamed:
            assert close(streamed.recommend_for_items(liked, k=12, exclude=[loaded.item_ids[5]]),
                         loaded.recommend_for_items(liked, k=12, exclude=[loaded.item_ids[5]]))
            for user in (loaded.user_ids[0], loaded.user_ids[17], loaded.user_ids[-1]):
                assert streamed.recommend(user, k=12) == loaded.recommend(user, k=12)  # integer sums
                assert streamed.seen_items(user) == loaded.seen_items(user)
            assert streamed.score(loaded.user_ids[3], liked) == loaded.score(loaded.user_ids[3], liked)
            assert close(streamed.similar_items(liked[0], k=8), loaded.similar_items(liked[0], k=8))
            rows = (0, 33, data.n_items - 1)
            assert [streamed.item_vector(i) for i in rows] == [loaded.item_vector(i) for i in rows]
            assert list(streamed.item_ids[:4]) == list(loaded.item_ids[:4]) and len(streamed.user_ids) == loaded.n_users
    with pytest.raises(edge.UnknownUserError):
        edge_stream.open_model(path).recommend(-7)


def test_streaming_refuses_what_it_cannot_stream_and_every_lie(data, tmp_path):
    from gnaq import edge_stream
    path = tmp_path / "l0.gnaq"
    export_model(make_model(data, **LAYER0), data, path)
    with pytest.raises(ValueError, match="graph-free"):
        edge_stream.open_items(path)
    export_model(make_model(data, **Z), data, path)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    (tmp_path / "bad.gnaq").write_bytes(bytes(blob))
    with pytest.raises(edge.EdgeFormatError, match="CRC32"):
        edge_stream.open_items(tmp_path / "bad.gnaq")
    (tmp_path / "short.gnaq").write_bytes(path.read_bytes()[:9])
    with pytest.raises(edge.EdgeFormatError):
        edge_stream.open_items(tmp_path / "short.gnaq")
    with pytest.raises(KeyError, match="item 100000"):
        edge_stream.open_items(path).recommend_for_items([100000])
    from dataclasses import replace
    shuffled = replace(data, item_ids=np.arange(data.n_items)[::-1].copy())  # ids a bisection cannot search
    export_model(make_model(data, **Z), shuffled, tmp_path / "desc.gnaq", compact=False)
    with pytest.raises(ValueError, match="strictly increasing"):
        edge_stream.open_model(tmp_path / "desc.gnaq")


@pytest.mark.parametrize("options", [{**Z, "transform": "klt"}, {**Z, "transform": "klt", "busy_share": 0.25,
                                                                 "scale_bits": 8, "average_bits": 1.5}])
def test_huffman_coded_rows_answer_exactly_as_the_packed_file(data, tmp_path, options):
    """export_model(entropy=True): the rows decode at load to the packed file's bytes, so every backend
    scores bit-identically to it; the code bytes are fewer; every lie in the stream is refused."""
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from edge_fuzz import join, split
    model = make_model(data, "gnaq", 2, **options)
    plain, coded = tmp_path / "plain.gnaq", tmp_path / "coded.gnaq"
    packed = export_model(model, data, plain)["sections"]
    streams = export_model(model, data, coded, entropy=True)["sections"]
    assert streams["user_huffman"] + streams["item_huffman"] < packed["user_codes"] + packed["item_codes"]
    assert edge._read(coded)[0]["huffman"] is True
    for backend in ["python", "numpy"] + (["numba"] if HAVE_NUMBA else []):
        a, b = edge.load(plain, backend), edge.load(coded, backend)
        assert (a.user_codes, a.item_codes) == (b.user_codes, b.item_codes)
        for user in (0, 11):
            assert b.recommend(int(data.user_ids[user]), k=10) == a.recommend(int(data.user_ids[user]), k=10)
    prefix, header, body = split(coded.read_bytes())
    lengths = header["sections"]["code_lengths"]
    stream = header["sections"]["item_huffman"]
    for mutate, message in [
            (lambda b: b[:lengths[0]] + bytes([30]) + b[lengths[0] + 1:], "invalid Huffman code"),  # over 24 bits
            (lambda b: b[:lengths[0]] + bytes([1, 1, 1]) + b[lengths[0] + 3:], "invalid Huffman code"),  # Kraft > 1
    ]:
        with pytest.raises(edge.EdgeFormatError, match=message):
            edge.load(join(prefix, header, mutate(body)))
    short = dict(header, sections={**header["sections"], "item_huffman": [stream[0], stream[1] - 1]})
    with pytest.raises(edge.EdgeFormatError, match="ends inside|no symbol"):
        edge.load(join(prefix, short, body))
    long = dict(header, sections={**header["sections"], "item_huffman": [stream[0], stream[1] + 1]})
    with pytest.raises(edge.EdgeFormatError, match="runs on past its last row"):
        edge.load(join(prefix, long, body + b"\0"))
    with pytest.raises(ValueError, match="transform-coded rows"):
        export_model(make_model(data, "gnaq", 2, **Z), data, tmp_path / "x.gnaq", entropy=True)
    from gnaq import edge_stream
    with pytest.raises(ValueError, match="Huffman coded"):
        edge_stream.open_items(coded)
    with pytest.raises(edge.EdgeFormatError, match="'huffman' belongs"):
        prefix, header, body = split(plain.read_bytes())
        header.pop("column_widths"), header.pop("column_steps")
        edge.load(join(prefix, dict(header, huffman=True), body))
