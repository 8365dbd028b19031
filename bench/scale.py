"""The scale curve: LightGCN training cost against the number of interactions, full-graph and
sampled propagation side by side, with implicit's BPR epoch on the same matrix as the floor.

    python bench/scale.py [--sizes 1 4 16 64] [--real ml-1m gowalla lastfm] [--steps 5]
                          [--whole-epoch-up-to 16] [--out bench/results/scale]

Synthetic graphs: gnaq.data.synthetic.make_synthetic(n_users, 0.4·n_users, mean_degree=25, seed=0)
with n_users chosen for the stated millions of training interactions (about 17.7 a user after the
70/10/20 split). Every (graph, mode) runs in its own child process, so its peak RSS is its own.
Per mode, the CLI defaults (--bits 32, d 64, L 3, batch 8192; sampled: no walks and --reach 1 split as LightGCN's (gnaq/reach.py), before --walks (6, earlier 4) an occurrence in the
batch and the weight average, 2 refreshes an epoch (earlier 8); "sampled-before": 4
walks a distinct row, no average, 8 refreshes an epoch; "sampled-rN": the default sampler at N refreshes an epoch;
"sampled-wN": at --walks N, "sampled-w0" the history estimator alone; "sampled-gK": 6 walks forward, the
gradient through K of them; "sampled-reachS": the history estimator with --reach S, whose move at each refresh
— one more propagation — counts with it; "sampled-reachS-lightgcn": the same with --reach-split lightgcn; "full-stepsN": the full graph at a batch of ⌈interactions / N⌉,
N steps an epoch — N propagations, linear in the interactions): step = median of --steps BPR steps (forward, backward, Adam) after two warm-up steps;
epoch = a whole timed epoch where it is affordable (sampled up to --whole-epoch-up-to M), else
sampling + steps × step (+ refreshes × refresh), said "est." — sampling the faster of two
epochs' and refresh the median of REFRESH_REPEATS warm ones (the reach's move with it), where before one cold
call each counted (allocation and page faults: 2-4x a warm refresh on this machine); validation = full ranking of a
fixed sample of 10,000 users (the trainer's --valid-users). implicit: BayesianPersonalizedRanking
(factors=63, iterations=1, num_threads = gnaq's NUMBA_NUM_THREADS) fit on the training matrix (a bench extra:
pip install implicit); earlier, implicit used every core whatever gnaq's thread count.
Memory: peak RSS against what the math needs — parameters, Adam's two moments, the graph(s), the
sampled history (the drift D = E⁽⁰⁾ − H and Z̄), the weight average (ā and its per-row step) and the interaction matrices.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table, pyplot  # noqa: E402

USERS_PER_MILLION = 1e6 / 17.7  # training interactions a synthetic user gets, on average, at mean_degree 25


CACHE = Path(os.environ.get("GNAQ_SCALE_CACHE", Path.home() / ".cache" / "gnaq-scale"))


def load(spec: str):
    """The graph of ``spec``; a synthetic one is generated once and kept in CACHE (pickle) for the
    other modes' child processes."""
    import pickle
    from gnaq.data import load_dataset, make_synthetic
    if spec.startswith("synthetic:"):
        millions = float(spec.split(":")[1])
        path = CACHE / f"synthetic-{millions:g}M-seed0.pkl"
        if path.exists():
            with open(path, "rb") as f:
                return pickle.load(f)
        n_users = int(round(millions * USERS_PER_MILLION))
        data = make_synthetic(n_users=n_users, n_items=int(0.4 * n_users), mean_degree=25, seed=0)
        CACHE.mkdir(parents=True, exist_ok=True)
        with open(str(path) + ".tmp", "wb") as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(str(path) + ".tmp", path)
        return data
    return load_dataset(spec, data_dir(), download_missing=False, progress=False)


def csr_bytes(m) -> int:
    return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


REFRESH_REPEATS = 3  # warm refreshes (each with the reach's move) timed; their median counts
SAMPLER_MODES = {"r": "refreshes", "w": "walks", "g": "gradient_walks"}  # "sampled-w0": TrainConfig(walks=0), …


def sampler_options(mode: str) -> dict:
    """TrainConfig overrides of a mode: "sampled-before" the earlier 4-walk sampler; "sampled-rN" N refreshes an
    epoch, "sampled-wN" N walks ("sampled-w0": the history estimator alone, --reach 0), "sampled-gK" the
    gradient through K of 6 walks (--gradient-walks), "sampled-reachS[-SPLIT]" no walks and --reach S (split
    "history" unless named, as earlier); anything else none (the CLI's default sampler: 0 walks + the reach
    at 1, lightgcn split; earlier 6 walks)."""
    if mode == "sampled-before":
        return dict(walk_allocation="target", average=0.0, walks=4, refreshes=8)
    if mode.startswith("sampled-reach"):  # the history estimator with its deferred reach (gnaq/reach.py)
        scale, _, split = mode[len("sampled-reach"):].partition("-")  # "sampled-reach1-lightgcn": --reach-split
        return dict(walks=0, reach=float(scale), reach_split=split or "history")
    if mode.startswith("sampled-") and mode[8:9] in SAMPLER_MODES and mode[9:].isdigit():
        option = {SAMPLER_MODES[mode[8]]: int(mode[9:])}
        if mode[8] == "g":
            option["walks"] = 6
        return {**option, "reach": 0.0} if option.get("walks") == 0 else option
    return {}


def measure_gnaq(spec: str, mode: str, steps: int, whole_epoch_up_to: float) -> dict:
    from gnaq.sampling import sample_bpr_epoch
    from gnaq.training import TrainConfig, Trainer
    t0 = time.perf_counter()
    data = load(spec)
    load_seconds = time.perf_counter() - t0
    before = sampler_options(mode)
    if mode.startswith("full-steps"):  # the full graph at N steps an epoch: batch ⌈interactions / N⌉
        before["batch_size"] = -(-data.train.nnz // int(mode[len("full-steps"):]))
    trainer = Trainer(TrainConfig(bits=32, propagation=mode.split("-")[0], progress=False, valid_users=10000,
                                  out=tempfile.mkdtemp(prefix="gnaq-scale-"), **before), data=data)
    cfg, model = trainer.config, trainer.model
    nnz = data.train.nnz
    samplings = []
    for _ in range(2):  # the warm one, as every epoch's but the first (a lone cold call counts page faults)
        users = pos = neg = None  # (one epoch's samples in memory at a time)
        t0 = time.perf_counter()
        users, pos, neg = sample_bpr_epoch(data.train, trainer.rng, by=cfg.sampler)
        samplings.append(time.perf_counter() - t0)
    sampling = min(samplings)
    n_steps = -(-len(users) // cfg.batch_size)
    if trainer.sampled is not None:
        trainer.sampled.refresh()  # (cold: allocations and the jit cache's load, once a run)

    def step(b):
        sl = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
        loss, _, _ = model.bpr_loss(users[sl], pos[sl], neg[sl], cfg.reg, sampled=trainer.sampled, rng=trainer.rng)
        trainer.optimizer.zero_grad()
        loss.backward()
        if trainer.reach is not None:
            trainer.reach.accumulate(model.embedding.grad)
        trainer.optimizer.step(average=trainer.average)  # as Trainer.train_epoch
    times = []
    for b in range(steps + 2):
        t0 = time.perf_counter()
        step(b % n_steps)
        times.append(time.perf_counter() - t0)
    step_seconds = statistics.median(times[2:])
    refreshes_timed = []  # warm: each the reach's move (one propagation and O(N·d)) and the refresh after it
    for r in range(REFRESH_REPEATS if trainer.sampled is not None else 0):
        if trainer.reach is not None:
            step(r % n_steps)  # (an interval for the move to apply)
        t0 = time.perf_counter()
        if trainer.reach is not None:
            trainer.reach.move(trainer.optimizer, trainer.average)
        trainer.sampled.refresh()
        refreshes_timed.append(time.perf_counter() - t0)
    refresh = statistics.median(refreshes_timed) if refreshes_timed else 0.0
    millions = float(spec.split(":")[1]) if spec.startswith("synthetic:") else nnz / 1e6  # the nominal size
    if mode.startswith("sampled") and millions <= whole_epoch_up_to:
        del users, pos, neg  # (the epoch samples its own: one epoch's samples in memory, as in training)
        t0 = time.perf_counter()
        trainer.train_epoch()
        epoch, estimated = time.perf_counter() - t0, False
    else:
        refreshes = min(cfg.refreshes, n_steps) if mode.startswith("sampled") else 0
        epoch, estimated = sampling + n_steps * step_seconds + refreshes * refresh, True
    t0 = time.perf_counter()
    metrics = trainer.evaluate("valid")
    evaluation = time.perf_counter() - t0
    n, d = data.n_users + data.n_items, cfg.dim
    need = 3 * n * d * 4 + csr_bytes(trainer.norm_adj)  # E⁽⁰⁾, Adam m and v, Â
    need += sum(csr_bytes(m) for m in (data.train, data.valid, data.test) if m is not None)
    if trainer.sampled is not None:
        need += 2 * n * d * 4 + trainer.sampled.indptr.nbytes + trainer.sampled.indices.nbytes  # D, Z̄, A
    if trainer.reach is not None:  # the reach's G (gnaq/reach.py), and the lightgcn split's M
        need += n * d * 4 * (1 + (trainer.reach.second_moment is not None))
    if trainer.average is not None:  # the weight average ā and each row's last step (averaging.py)
        need += n * d * 4 + n * 8
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"spec": spec, "mode": mode, "interactions": nnz, "users": data.n_users, "items": data.n_items,
            "load_seconds": load_seconds, "sampling_seconds": sampling, "refresh_seconds": refresh,
            "sampling_times": samplings, "refresh_times": refreshes_timed,
            "step_seconds": step_seconds, "steps": n_steps, "epoch_seconds": epoch, "epoch_estimated": estimated,
            "eval_seconds": evaluation, "eval_users": metrics["users"], "peak_rss": peak, "needed_bytes": need,
            "valid_ndcg@20": metrics["ndcg@20"]}


def gnaq_threads() -> int:
    """The threads gnaq's numba kernels may use (NUMBA_NUM_THREADS, default every core)."""
    import numba
    return numba.config.NUMBA_NUM_THREADS


def measure_implicit(spec: str) -> dict:
    import numpy as np
    from implicit.bpr import BayesianPersonalizedRanking
    data = load(spec)
    train = data.train.astype(np.float32).tocsr()
    threads = gnaq_threads()  # the floor runs on as many threads as gnaq may use (its default: every core)
    BayesianPersonalizedRanking(factors=63, iterations=1, random_state=0, num_threads=threads).fit(
        train[:1000], show_progress=False)
    model = BayesianPersonalizedRanking(factors=63, iterations=1, random_state=0, num_threads=threads)
    t0 = time.perf_counter()
    model.fit(train, show_progress=False)
    return {"spec": spec, "mode": "implicit", "interactions": data.train.nnz, "epoch_seconds": time.perf_counter() - t0,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def child(spec, mode, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", spec, mode, "--steps", str(args.steps),
           "--whole-epoch-up-to", str(args.whole_epoch_up_to)]
    print(f"... {spec} {mode}", file=sys.stderr, flush=True)
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"{spec} {mode} failed:\n{run.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(run.stdout.strip().splitlines()[-1])


def table(rows) -> str:
    floor = {r["spec"]: r["epoch_seconds"] for r in rows if r["mode"] == "implicit"}
    header = ["graph", "train interactions", "mode", "step ms", "epoch s", "x implicit BPR", "validation s (10k users)",
              "peak RSS GiB", "RSS / needed"]
    out = []
    for r in rows:
        ratio = f"{r['epoch_seconds'] / floor[r['spec']]:.1f}x" if r["spec"] in floor and r["mode"] != "implicit" else "–"
        epoch = f"{r['epoch_seconds']:,.1f}" + (" (est.)" if r.get("epoch_estimated") else "")
        out.append([r["spec"].replace("synthetic:", "synthetic ") + ("M" if r["spec"].startswith("synthetic") else ""),
                    f"{r['interactions']:,}", r["mode"],
                    f"{1000 * r['step_seconds']:,.0f}" if "step_seconds" in r else "–", epoch, ratio,
                    f"{r['eval_seconds']:.1f}" if "eval_seconds" in r else "–", f"{r['peak_rss'] / 2**30:.2f}",
                    f"{r['peak_rss'] / r['needed_bytes']:.2f}" if "needed_bytes" in r else "–"])
    return markdown_table(header, out)


def synthetic_series(rows, mode) -> list:
    """(interactions, epoch seconds) of ``mode`` on the synthetic graphs, by size."""
    return sorted((r["interactions"], r["epoch_seconds"]) for r in rows
                  if r["mode"] == mode and r["spec"].startswith("synthetic"))


def growth(rows) -> str:
    """Epoch-time growth between consecutive synthetic sizes, per mode (the target: ≤ 5x for 4x)."""
    lines = []
    for mode in dict.fromkeys(r["mode"] for r in rows):  # every mode measured, in the order run
        series = synthetic_series(rows, mode)
        for (n0, t0), (n1, t1) in zip(series, series[1:]):
            lines.append(f"- {mode}: {n0 / 1e6:.1f} M → {n1 / 1e6:.1f} M interactions ({n1 / n0:.1f}x): "
                         f"epoch {t1 / t0:.1f}x")
    return "\n".join(lines)


def plot(rows, path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 4.2))
    labels = {"full": "gnaq full graph", "sampled": "gnaq sampled (default)", "sampled-before": "gnaq sampled, 4 walks",
              "sampled-w0": "gnaq sampled, no walks (history)", "implicit": "implicit BPR (floor)"}
    styles = {"full": "o-", "sampled-before": "d:", "sampled": "s-", "sampled-w0": "v-", "implicit": "^--"}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        pts = synthetic_series(rows, mode)
        if pts:
            option = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sampler_options(mode).items())
            ax.loglog(*zip(*pts), styles.get(mode, "x-"),
                      label=labels.get(mode, f"gnaq sampled, {option}" if option else f"gnaq {mode}"))
    ax.set_xlabel("training interactions")
    ax.set_ylabel("seconds per epoch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="*", default=[1, 4, 16, 64], help="millions of train interactions")
    parser.add_argument("--real", nargs="*", default=["ml-1m", "gowalla", "lastfm"])
    parser.add_argument("--modes", nargs="*", default=["full", "sampled", "implicit"])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--whole-epoch-up-to", type=float, default=16.0, metavar="M")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale"))
    parser.add_argument("--child", nargs=2, metavar=("SPEC", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec, mode = args.child
        result = measure_implicit(spec) if mode == "implicit" else measure_gnaq(spec, mode, args.steps, args.whole_epoch_up_to)
        print(json.dumps(result))
        return
    specs = [f"synthetic:{s:g}" for s in args.sizes] + list(args.real)
    rows = []
    for spec in specs:
        for mode in args.modes:
            row = child(spec, mode, args)
            if row:
                rows.append(row)
                print(json.dumps(row), flush=True)
    text = table(rows) + "\n\n" + growth(rows) + "\n"
    print(text)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(f"Command: `python bench/scale.py {' '.join(sys.argv[1:])}`\n\n{text}")
    plot(rows, args.out + ".png")


if __name__ == "__main__":
    main()
