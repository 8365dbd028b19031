"""The device kit and the reader under MicroPython's unix port built 32-bit with a fixed heap (the
honest device: objects, allocator and MemoryError as on a board). Skips, saying why, where the binary
($GNAQ_MICROPYTHON_UNIX, else ../shared/tools/micropython/micropython) or mpy-cross is absent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gnaq import device, edge
from gnaq.data import make_synthetic
from gnaq.export import export_model

sys.path.insert(0, str(Path(__file__).parent))
from test_pack_edge import Z, make_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unix_micropython():
    path = os.environ.get("GNAQ_MICROPYTHON_UNIX") or str(ROOT.parent / "shared" / "tools" / "micropython" / "micropython")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no fixed-heap MicroPython at {path} (set $GNAQ_MICROPYTHON_UNIX)")
    return path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    data = make_synthetic(n_users=60, n_items=90, seed=3)
    path = tmp_path_factory.mktemp("kit") / "model.gnaq"
    export_model(make_model(data, "gnaq", 2, dim=16, **Z, transform="klt", busy_share=0.25), data, path)
    return path


def run(binary, heap, script, cwd):
    return subprocess.run([binary, "-X", f"heapsize={heap}", script], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_kit_imports_in_64k_and_runs_its_example_in_128k(unix_micropython, small_model, tmp_path):
    try:
        device.mpy_cross()
    except device.KitError as exc:
        pytest.skip(str(exc))
    out = tmp_path / "board"
    files = device.build(small_model, out)
    assert {p.name for p in files} == {"edge.mpy", "edge_format.mpy", "edge_stream.mpy", "model.gnaq", "main.py"}
    (out / "import_only.py").write_text("import gc\nimport edge\ngc.collect()\nprint(gc.mem_alloc())\n")
    imported = run(unix_micropython, "64K", "import_only.py", out)
    assert imported.returncode == 0, imported.stderr
    example = run(unix_micropython, "128K", "main.py", out)
    assert example.returncode == 0, example.stderr
    reader = edge.load(small_model, "python")
    expected = reader.recommend(reader.user_ids[0], k=10)
    printed = [line.split() for line in example.stdout.splitlines()[1:]]
    assert [int(rank) for rank, _, _ in printed] == list(range(1, 11))
    assert [int(item) for _, item, _ in printed] == [item for item, _ in expected]
    assert [score for _, _, score in printed] == ["%.4f" % s for _, s in expected]


def test_the_kit_names_the_push_command_and_refuses_a_bad_model(small_model, tmp_path, capsys):
    assert device.main(["build", str(small_model), str(tmp_path / "src"), "--source"]) == 0
    printed = capsys.readouterr().out
    assert "mpremote cp" in printed and ":model.gnaq" in printed and (tmp_path / "src" / "edge.py").exists()
    bad = tmp_path / "bad.gnaq"
    bad.write_bytes(b"GNAQ" + bytes(20))
    assert device.main(["build", str(bad), str(tmp_path / "nope")]) == 2
    assert "gnaq.device: error:" in capsys.readouterr().err


def test_the_source_reader_answers_as_cpython_under_the_fixed_heap(unix_micropython, small_model, tmp_path):
    folder = tmp_path / "src"
    device.build(small_model, folder, source=True)
    (folder / "check.py").write_text("import edge\nm = edge.load('model.gnaq')\n"
                                     "print(repr(m.recommend(m.user_ids[0], k=10)))\n")
    done = run(unix_micropython, "512K", "check.py", folder)
    assert done.returncode == 0, done.stderr
    reader = edge.load(small_model, "python")
    assert done.stdout.strip() == repr(reader.recommend(reader.user_ids[0], k=10))


@pytest.fixture(scope="module")
def large_model(tmp_path_factory):
    """A transform-coded 2-bit file of 6,000 nodes, d = 64: 16 times its bytes do not fit 128 KiB."""
    data = make_synthetic(n_users=2500, n_items=3500, seed=5)
    path = tmp_path_factory.mktemp("large") / "model.gnaq"
    export_model(make_model(data, "gnaq", 2, dim=64, **Z, transform="klt", busy_share=0.25), data, path)
    return path


def test_a_file_larger_than_the_heap_is_streamed_and_answers_within_128k(unix_micropython, large_model, tmp_path):
    """edge.load picks streaming by itself on a 128 KiB heap; a trained user's top-10 (integer sums) is
    CPython's byte for byte, the fold-in's and the cosines' to 1e-12, the ids the same."""
    folder = tmp_path / "board"
    try:
        device.build(large_model, folder)  # the reader as a board ships it: bytecode
    except device.KitError as exc:
        pytest.skip(str(exc))
    (folder / "queries.py").write_text(
        "import edge\nm = edge.load('model.gnaq')\nprint(type(m).__name__)\n"
        "print(repr(m.recommend(m.user_ids[7], k=10)))\n"
        "print(repr(m.recommend_for_items([m.item_ids[i] for i in (3, 50, 400)], k=10)))\n"
        "print(repr(m.similar_items(m.item_ids[9], k=10)))\n")
    done = run(unix_micropython, "128K", "queries.py", folder)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    kind, user, folded, similar = (eval(line) if i else line for i, line in enumerate(done.stdout.splitlines()))
    assert kind == "StreamedModel"
    reader = edge.load(large_model, "python")
    assert user == reader.recommend(reader.user_ids[7], k=10)
    for got, want in ((folded, reader.recommend_for_items([reader.item_ids[i] for i in (3, 50, 400)], k=10)),
                      (similar, reader.similar_items(reader.item_ids[9], k=10))):
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-12, abs=1e-15)


def test_fuzzed_files_end_in_a_result_or_a_refusal_under_a_128k_heap(unix_micropython, large_model, tmp_path):
    """The fuzz set on the fixed heap: every variant loads and answers or raises EdgeFormatError; a
    MemoryError counts as a crash."""
    import random
    from edge_fuzz import mutate
    variants = tmp_path / "variants"
    variants.mkdir()
    rng = random.Random(1)
    data = make_synthetic(n_users=60, n_items=90, seed=3)
    sources = []
    for name, options in (("q", Z), ("klt", {**Z, "transform": "klt", "busy_share": 0.25}),
                          ("mixed", {**Z, "mix_share": 0.3})):
        path = tmp_path / f"{name}.gnaq"
        export_model(make_model(data, "gnaq", 2, dim=16, **options), data, path)
        sources.append(path.read_bytes())
    sources.append(large_model.read_bytes())
    for n, blob in enumerate(sources):
        for i in range(40):
            kind, variant = mutate(blob, rng)
            (variants / f"{n}-{i:03d}-{kind}.gnaq").write_bytes(variant)
    folder = tmp_path / "board"
    try:
        device.build(large_model, folder)  # the reader as a board ships it: bytecode
    except device.KitError as exc:
        pytest.skip(str(exc))
    (folder / "fuzz.py").write_text((ROOT / "tests" / "micropython" / "fuzz_device.py").read_text()
                                    + f"\nmain({str(variants)!r})\n")
    done = run(unix_micropython, "128K", "fuzz.py", folder)
    counts = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert counts["crashed"] == 0, done.stdout[-3000:]
    assert counts["loaded"] + counts["refused"] == 4 * 40 and counts["loaded"] > 0 and counts["refused"] > 0
