# Load one .gnaq file and answer top-10 queries, on whatever Python runs this (CPython or MicroPython).
# load_phase(path, backend) then query_phase(n_queries), each printing one JSON line. On MicroPython
# the bench runs them as two top-level scripts with a collection after each, so gc.mem_alloc() at the
# start of a phase is the heap that stays resident (this port's GC only frees at the top level), and
# peak_heap is the most it held during a phase (gc.mem_alloc() with collections switched off is every
# byte the phase allocated, an upper bound of its peak). CPython reports -1 there.
import gc
import json
import time

import edge

try:
    ticks, diff = time.ticks_us, time.ticks_diff  # MicroPython
except AttributeError:
    ticks, diff = (lambda: int(time.perf_counter() * 1e6)), (lambda a, b: a - b)

MODEL = []


def heap():
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else -1


def load_phase(path, backend, stream=False):
    before = heap()
    t0 = ticks()
    if stream:  # the item rows stay in the file (edge_stream.py beside edge.py)
        import edge_stream
        MODEL.append(edge_stream.open_items(path, chunk_items=128))
    else:
        MODEL.append(edge.load(path, backend))
    print(json.dumps({"backend": MODEL[0].backend, "load_s": diff(ticks(), t0) / 1e6, "heap_before": before,
                      "allocated_by_load": heap() - before if before >= 0 else -1}))


def query_phase(n_queries):
    model, resident = MODEL[0], heap()
    times = []
    for q in range(n_queries):
        t0 = ticks()
        if model.n_users:
            user = model.user_ids[(q * 7919) % model.n_users]
            model.recommend(user, k=10, exclude_seen=model.has_history)
        else:  # an item-only file: a user folded in from 10 items of their own
            start = (q * 7919) % model.n_items
            model.recommend_for_items([model.item_ids[(start + j * 31) % model.n_items] for j in range(10)], k=10)
        times.append(diff(ticks(), t0))
    first = times[0]  # an item-only file without its Gram matrix computes it here
    times.sort()
    print(json.dumps({"top10_ms": times[len(times) // 2] / 1e3, "first_top10_ms": first / 1e3,
                      "resident_after_load": resident,
                      "allocated_per_query": (heap() - resident) // n_queries if resident >= 0 else -1}))
