"""The device reader's heap on MicroPython's unix port built 32-bit with a fixed heap (a board's
allocator): for each file and query, the smallest heap that works (binary search over heap sizes),
the heap in use after the load, the allocation that failed just below, and a query's latency.

    python bench/device_heap.py NAME=FILE.gnaq [NAME=FILE.gnaq ...] [--queries whole fold stream]
                                [--micropython PATH] [--out bench/results/device_heap]

Modes: ``load`` — the file in the heap (``edge.load``); ``stream`` — rows read from the file
(``edge_stream.open_model``, its 64-row chunks). Queries: ``user`` — a trained user's top-10 (whole
files); ``fold`` — ``recommend_for_items`` from 5 items; ``similar`` — ``similar_items``. The reader is
imported as bytecode compiled by mpy-cross, as a board ships it (python -m gnaq.device build).
Latency: the median of 5 queries after the first, on this machine (a board runs the same bytecode
roughly 50-100x slower).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BINARY = ROOT.parent / "shared" / "tools" / "micropython" / "micropython"

SCRIPT = '''import gc, time
import edge
MODE, QUERY = {mode!r}, {query!r}
gc.collect()
t0 = time.ticks_us()
if MODE == "stream":
    import edge_stream
    model = edge_stream.open_model("model.gnaq")
else:
    model = edge.load("model.gnaq", "python")
load_ms = time.ticks_diff(time.ticks_us(), t0) / 1000
gc.collect()
resident = gc.mem_alloc()
items = [model.item_ids[i] for i in range(5)]
def ask():
    if QUERY == "user":
        return model.recommend(model.user_ids[0], k=10)
    if QUERY == "similar":
        return model.similar_items(items[0], k=10)
    return model.recommend_for_items(items, k=10)
ask()
times = []
for _ in range(5):
    t0 = time.ticks_us()
    top = ask()
    times.append(time.ticks_diff(time.ticks_us(), t0) / 1000)
times.sort()
print("RESULT", load_ms, resident, times[2], len(top))
'''


def attempt(binary, folder, heap_kib):
    done = subprocess.run([binary, "-X", f"heapsize={heap_kib}K", "run.py"], cwd=folder, capture_output=True,
                          text=True, timeout=600)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT")), None)
    if done.returncode == 0 and line:
        load_ms, resident, query_ms, n = line.split()[1:]
        return {"load_ms": float(load_ms), "resident": int(resident), "query_ms": float(query_ms)}
    text = done.stdout + done.stderr  # (the unix port prints a traceback to stdout)
    failed = re.search(r"allocating (\d+) bytes", text)
    return {"error": (text.strip().splitlines() or ["?"])[-1][:120],
            "allocation": int(failed.group(1)) if failed else None}


def smallest_heap(binary, folder, low=16, high=64 * 1024):
    """(smallest heap in KiB that works, its run, the run just below) by bisection on a 1/16 grid."""
    ok = attempt(binary, folder, high)
    if "error" in ok:
        return None, ok, ok
    below = None
    while high - low > max(4, high // 16):
        mid = (low + high) // 2
        run = attempt(binary, folder, mid)
        if "error" in run:
            low, below = mid, run
        else:
            high, ok = mid, run
    return high, ok, below


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="NAME=FILE")
    p.add_argument("--modes", nargs="+", default=["load", "stream"], choices=("load", "stream"))
    p.add_argument("--queries", nargs="+", default=["user", "fold", "similar"], choices=("user", "fold", "similar"))
    p.add_argument("--micropython", default=os.environ.get("GNAQ_MICROPYTHON_UNIX", str(BINARY)))
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "device_heap"))
    args = p.parse_args()
    from gnaq import device
    rows, records = [], []
    for spec in args.files:
        name, path = spec.split("=", 1)
        for mode, query in [(m, q) for m in args.modes for q in args.queries]:
            folder = Path(tempfile.mkdtemp(prefix="gnaq-heap-"))
            device.build(path, folder)
            if query == "user" and not device.edge.load(path, "python").n_users:
                continue
            (folder / "run.py").write_text(SCRIPT.format(mode=mode, query=query))
            heap, ok, below = smallest_heap(args.micropython, folder)
            shutil.rmtree(folder)
            record = {"file": name, "bytes": os.path.getsize(path), "mode": mode, "query": query, "heap_kib": heap,
                      **ok, "fails_below": below}
            records.append(record)
            rows.append([name, f"{record['bytes']:,}", mode, query, f"{heap} KiB" if heap else "> 64 MiB",
                         f"{ok.get('resident', 0) / 1024:.0f} KiB" if heap else "-",
                         f"{below['allocation']:,} B" if below and below.get("allocation") else "-",
                         f"{ok.get('load_ms', 0):.0f}" if heap else "-", f"{ok.get('query_ms', 0):.1f}" if heap else "-"])
            print(rows[-1], flush=True)
    table = markdown_table(["file", "bytes", "mode", "query", "smallest heap", "resident after load",
                            "allocation that failed below it", "load ms", "query ms"], rows)
    header = (f"`python bench/device_heap.py {' '.join(args.files)} --modes {' '.join(args.modes)} "
              f"--queries {' '.join(args.queries)}` — "
              f"MicroPython's unix port, 32-bit, fixed heap (`{Path(args.micropython).name} -X heapsize=...`), the reader "
              "as mpy-cross bytecode, on a 2-core x86-64 CPU; a board runs the same bytecode roughly 50-100x slower.")
    print(table)
    Path(args.out + ".md").write_text(f"# The device reader's heap\n\n{header}\n\n{table}\n")
    Path(args.out + ".json").write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
