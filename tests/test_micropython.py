"""The device reader under a real MicroPython (the WebAssembly port, run by node): every kind of file
gnaq exports loads, recommends, scores, finds similar items and folds a user in exactly as CPython's
pure-Python path does, and the fuzzed variants load consistently or are refused, never crash.

The port is the npm package conftest.MICROPYTHON_PACKAGE (the ``micropython`` fixture finds or installs
it); it skips only where node is missing.
"""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gnaq.data import make_synthetic
from gnaq.edge import DEVICE_FILES
from gnaq.export import export_model

sys.path.insert(0, str(Path(__file__).parent))
from edge_fuzz import mutate  # noqa: E402
from test_pack_edge import LAYER0, Z, make_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).parent / "micropython"
KINDS = [("q", "gnaq", 2, Z), ("l0", "gnaq", 3, LAYER0), ("f", "gnaq", 32, {}),
         ("mixed", "gnaq", 2, {**Z, "mix_share": 0.3}), ("mixed-l0", "gnaq", 2, {**LAYER0, "mix_share": 0.3}),
         ("klt", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25}),
         ("klt1", "gnaq", 1, {**Z, "transform": "klt"}), ("b8", "gnaq", 8, Z), ("pq", "pq", 2, {}),
         ("pq-shared", "pq", 1, {"code_bits": 4, "codebooks": "shared"}),
         ("pq-adaptive", "pq", 2, {"subspaces": 5, "code_bits": 4, "rotation": "adaptive"}),
         ("coded", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25, "scale_bits": 8, "average_bits": 1.75}),
         ("huffman", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.25, "scale_bits": 8}),
         ("huffman-idle", "gnaq", 2, {**Z, "transform": "klt", "busy_share": 0.1, "idle_share": 0.5, "scale_bits": 8,
                                               "quantize_users": False})]


def run_micropython(mjs, code, folders, heap=8 << 20, tmp_path=None):
    """stdout of ``code`` under MicroPython, ``folders`` {host: guest} copied into its filesystem."""
    script = tmp_path / "main.py"
    script.write_text(code)
    done = subprocess.run(["node", str(HERE / "run.mjs"), mjs, str(heap), str(script)]
                          + [f"{host}:{guest}" for host, guest in folders.items()],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return done.stdout


def run_cpython_pure(code, tmp_path):
    """The same code under this CPython with numpy and numba unimportable (the pure-Python path)."""
    script = tmp_path / "cpython_main.py"
    script.write_text("import sys\nsys.modules['numpy'] = None\nsys.modules['numba'] = None\n" + code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    data = make_synthetic(n_users=40, n_items=70, seed=4)
    for name, quantizer, bits, options in KINDS:
        for history in (True, False):
            model = make_model(data, quantizer, bits, dim=16, **options)
            export_model(model, data, folder / f"{name}{'' if history else '-nohist'}.gnaq", history=history,
                         entropy=name.startswith("huffman"))
    for name, entropy in (("items-nogram", False), ("items-nogram-huffman", True)):  # the device computes Ḡ
        model = make_model(data, "gnaq", 2, dim=16, **Z, transform="klt", busy_share=0.25, scale_bits=8)
        export_model(model, data, folder / f"{name}.gnaq", history=False, users=False, gram=False, entropy=entropy)
    return folder


def test_every_kind_of_file_answers_the_same_under_micropython_and_cpython(micropython, models, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in DEVICE_FILES:
        shutil.copy(ROOT / "gnaq" / name, lib / name)
    shutil.copy(HERE / "check_files.py", lib / "check_files.py")
    body = "import check_files\ncheck_files.main({models!r})\n"
    on_device = run_micropython(micropython, "import sys\nsys.path.append('/lib')\n" + body.format(models="/models"),
                                {lib: "/lib", models: "/models"}, tmp_path=tmp_path)
    on_desktop = run_cpython_pure(f"sys.path.insert(0, {str(lib)!r})\n" + body.format(models=str(models)), tmp_path)
    lines = on_device.splitlines()
    streamed = sum(2 for kind, name, bits, options in KINDS  # (edge_stream streams packed "quantized" rows only)
                   if bits != 32 and options.get("quantize") != "layer0" and name != "pq" and not kind.startswith("huffman")) + 1
    # per file: 3 users × 2, 2 similar, 1 fold-in; the two item-only files: 2 similar, 1 fold-in
    assert len(lines) == len(KINDS) * 2 * (3 * 2 + 2 + 1) + 2 * (2 + 1) + streamed
    assert sum(" streamed " in line for line in lines) == streamed
    assert {line.split()[0] for line in lines} == {p.name for p in models.glob("*.gnaq")}
    float_kinds = ("f", "l0", "mixed-l0")  # float sums: same operations, libm's pow may differ in the last bit
    for device, desktop in zip(lines, on_desktop.splitlines()):
        name = device.split()[0]
        if (name.split("-nohist")[0].split(".")[0] in float_kinds or " similar " in device or " fold-in " in device
                or " streamed " in device):
            assert device.split(" [")[0] == desktop.split(" [")[0]
            ids_device, ids_desktop = device.rsplit(" ", 1)[0], desktop.rsplit(" ", 1)[0]
            assert ids_device == ids_desktop, (device, desktop)
            values = [[_hex_float(x) for x in line.rsplit(" ", 1)[1].split(",") if x]
                      for line in (device, desktop)]
            assert values[0] == pytest.approx(values[1], rel=1e-12, abs=1e-15)
        else:  # packed integer sums: bit-identical
            assert device == desktop


def _hex_float(text):
    import struct
    return struct.unpack("<d", bytes.fromhex(text))[0]


def test_fuzzed_variants_load_consistently_or_are_refused_under_micropython(micropython, models, tmp_path):
    variants = tmp_path / "variants"
    variants.mkdir()
    rng = random.Random(0)
    sources = ["q.gnaq", "l0.gnaq", "f.gnaq", "mixed.gnaq", "mixed-l0.gnaq", "klt.gnaq", "items-nogram.gnaq"]
    per_file = 120
    for source in sources:
        blob = (models / source).read_bytes()
        for i in range(per_file):
            kind, variant = mutate(blob, rng)
            (variants / f"{source[:-5]}-{i:04d}-{kind}.gnaq").write_bytes(variant)
    lib = tmp_path / "lib"
    lib.mkdir()
    for name in DEVICE_FILES:
        shutil.copy(ROOT / "gnaq" / name, lib / name)
    code = (HERE / "fuzz_device.py").read_text() + "\nmain('/variants')\n"
    out = run_micropython(micropython, "import sys\nsys.path.append('/lib')\n" + code,
                          {lib: "/lib", variants: "/variants"}, tmp_path=tmp_path)
    counts = json.loads(out.strip().splitlines()[-1])
    assert sum(counts.values()) == len(sources) * per_file
    assert counts.get("crashed", 0) == 0, out[-3000:]
    assert counts["refused"] > len(sources) * per_file // 2 and counts["loaded"] > 0
