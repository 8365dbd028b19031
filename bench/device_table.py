"""File kind × interpreter: load time, top-10 time and memory of the device reader.

    python bench/device_table.py NAME=FILE.gnaq [NAME=FILE.gnaq ...] [--queries 20] [--micropython MJS]

Each (file, interpreter) runs in a fresh process: CPython with numba, with numpy only, pure Python
(numpy made unimportable), and MicroPython 1.27 (the WebAssembly port under node, --micropython or
$GNAQ_MICROPYTHON; skipped when neither is given). Load time: edge.load; top-10: the median of
--queries recommend() calls (item-only files: recommend_for_items from 10 items), and the first call
alone (an item-only file without its Gram matrix computes Ḡ there). Memory: CPython —
peak RSS of the process minus its RSS before the load; MicroPython — gc.mem_alloc() after a
collection, after the load and after the queries (resident heap; the port's heap grows on demand, so
a fixed 1 MiB heap cannot be imposed on it). The table goes to stdout and bench/results/device_table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from _common import markdown_table  # noqa: E402

CPYTHON = """
import resource, sys
{block}
sys.path[:0] = [{gnaq!r}, {probe!r}]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import edge, probe
probe.load_phase({path!r}, {backend!r}, {stream!r})
probe.query_phase({queries})
print('{{"peak_rss_kb": %d}}' % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before))
"""


def run_cpython(path, backend, queries, stream=False):
    block = "sys.modules['numpy'] = None; sys.modules['numba'] = None" if backend == "python" else ""
    code = CPYTHON.format(block=block, gnaq=str(ROOT / "gnaq"), probe=str(ROOT / "bench" / "device"),
                          path=str(path), backend=backend, queries=queries, stream=stream)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    record = {**json.loads(out[-3]), **json.loads(out[-2])}
    record["memory"] = f"{json.loads(out[-1])['peak_rss_kb'] / 1024:.1f} MB peak RSS"
    return record


def run_micropython(mjs, path, queries, stream=False):
    with tempfile.TemporaryDirectory() as folder:
        lib, data = Path(folder) / "lib", Path(folder) / "data"
        lib.mkdir(), data.mkdir()
        for source in (ROOT / "gnaq" / "edge.py", ROOT / "gnaq" / "edge_stream.py", ROOT / "bench" / "device" / "probe.py"):
            (lib / source.name).write_bytes(source.read_bytes())
        (data / "m.gnaq").write_bytes(Path(path).read_bytes())
        scripts = [Path(folder) / "load.py", Path(folder) / "query.py"]
        scripts[0].write_text("import sys\nsys.path.append('/lib')\nimport gc\ngc.disable()\nimport probe\n"
                              f"probe.load_phase('/data/m.gnaq', 'python', {stream})\n")
        scripts[1].write_text(f"gc.disable()\nprobe.query_phase({queries})\n")
        out = subprocess.run(["node", str(ROOT / "tests" / "micropython" / "run.mjs"), mjs, str(8 << 20),
                              ",".join(map(str, scripts)), f"{lib}:/lib", f"{data}:/data"],
                             capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    record = {**json.loads(lines[-2]), **json.loads(lines[-1])}
    record["memory"] = (f"resident {record['resident_after_load'] / 1024:.0f} KiB after load; allocated: "
                        f"{record['allocated_by_load'] / 1024:.0f} KiB by the load, "
                        f"{record['allocated_per_query'] / 1024:.0f} KiB per top-10")
    return record


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="NAME=FILE")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--micropython", default=os.environ.get("GNAQ_MICROPYTHON"))
    p.add_argument("--stream", action="store_true", help="also the streamed reader (edge_stream.open_items: item "
                                                           "rows left in the file) for item-only files")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "device_table.md"))
    args = p.parse_args()
    rows = []
    for spec in args.files:
        name, _, path = spec.partition("=")
        size = Path(path).stat().st_size
        runs = [(f"CPython {sys.version.split()[0]} + {b}", lambda b=b: run_cpython(path, b, args.queries))
                for b in ("numba", "numpy", "python")]
        if args.micropython:
            runs.append(("MicroPython 1.27 (wasm, node)", lambda: run_micropython(args.micropython, path, args.queries)))
        if args.stream:
            runs.append((f"CPython {sys.version.split()[0]} pure, streamed",
                         lambda: run_cpython(path, "python", args.queries, stream=True)))
            if args.micropython:
                runs.append(("MicroPython 1.27 (wasm, node), streamed",
                             lambda: run_micropython(args.micropython, path, args.queries, stream=True)))
        for label, fn in runs:
            r = fn()
            rows.append([name, f"{size:,}", label, f"{r['load_s']:.3f}", f"{r['first_top10_ms']:.2f}",
                         f"{r['top10_ms']:.2f}", r["memory"]])
            print(" | ".join(rows[-1]), flush=True)
    table = markdown_table(["file", "bytes", "interpreter", "load s", "first top-10 ms", "top-10 ms", "memory"], rows)
    Path(args.out).write_text(__doc__.split("\n\n")[0] + "\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
