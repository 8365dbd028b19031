"""How much noise does sampled propagation add to a step's gradient, and where (by node degree)?

For R BPR batches b (the trainer's sampler, the model of a run folder or a fresh one) and each
node row v of E⁽⁰⁾, with the history refreshed at the model (z_T exact, only the gradient sampled):

    g_full[b]  = ∂L_b/∂E⁽⁰⁾ of the full graph (P g_T),      μ = mean_b g_full[b]
    g_walk[b]  = W_Tᵀ g_T, the sampled operator's gradient (one walk draw per batch)
    batch noise  = mean_b ‖g_full[b] − μ‖²_v,   walk noise = mean_b ‖g_walk[b] − g_full[b]‖²_v

Adam divides each coordinate by the root of its second moment, ≈ ‖μ‖² + noise: the more noise a
row's gradient carries, the smaller the step its signal μ gets. The table gives, per degree
quintile of users and of items, the median over rows of walk noise ÷ batch noise and of the
signal-to-noise ratios ‖μ‖² / noise with and without the walks.

    python bench/sampled_noise.py --dataset gowalla --run RUN_FOLDER --walks 4 16 --batches 32
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402

from gnaq.sampled import SampledPropagation  # noqa: E402
from gnaq.sampling import sample_bpr_epoch  # noqa: E402
from gnaq.training import TrainConfig, Trainer  # noqa: E402


def gradient(model, batch, reg, sampled=None, rng=None) -> np.ndarray:
    """∂L_batch/∂E⁽⁰⁾ (N, d) dense."""
    model.embedding.grad = None
    loss, _, _ = model.bpr_loss(*batch, reg, sampled=sampled, rng=rng)
    loss.backward()
    g = model.embedding.grad
    return np.asarray(g.dense() if hasattr(g, "dense") else g, dtype=np.float64)


def weighted_walk_rows(indptr, indices, degree, targets, weights, walks: int, uniforms, impl=None):
    """sampled.walk_rows with steps drawn ∝ Â_uv (∝ 1/√d_v) instead of uniformly: a step u → v then
    weighs Â_uv / p(v | u) = r_u = Σ_{v'∈N(u)} 1/√(d_u d_v'), so layer l weighs αₗ/S · Π r along the walk."""
    k, n_layers = len(targets), len(weights) - 1
    inv_root = 1.0 / np.sqrt(np.maximum(degree, 1).astype(np.float64))
    cum = np.cumsum(inv_root[indices])
    row_start = np.concatenate([[0.0], cum])[indptr[:-1]]
    row_total = np.concatenate([[0.0], cum])[indptr[1:]] - row_start
    r = row_total * inv_root
    start = np.repeat(np.asarray(targets), walks)
    alive = degree[start] > 0
    current, product = start, np.ones(len(start))
    columns, values = [np.asarray(targets)[:, None]], [np.full((k, 1), weights[0])]
    stratum = np.tile(np.arange(walks), k)
    for layer in range(1, n_layers + 1):
        u = (stratum + uniforms[0]) / walks if layer == 1 else uniforms[layer - 1]
        x = row_start[current] + u * row_total[current]
        edge = np.clip(np.searchsorted(cum, x, side="right"), indptr[current], np.maximum(indptr[current + 1] - 1, 0))
        product = product * r[current]
        current = np.where(alive, indices[np.where(alive, edge, 0)], current)
        columns.append(current.reshape(k, walks))
        values.append((weights[layer] / walks * product * alive).reshape(k, walks))
    return np.hstack(columns), np.hstack(values).astype(np.float32)


def measure(trainer, walks_list, n_batches: int, seed: int = 0, weighted: bool = False,
            allocation: str = "target") -> list[dict]:
    cfg, model, train = trainer.config, trainer.model, trainer.data.train
    rng = np.random.default_rng(seed)
    users, pos, neg = sample_bpr_epoch(train, rng, by=cfg.sampler)
    batches = [tuple(a[b * cfg.batch_size:(b + 1) * cfg.batch_size] for a in (users, pos, neg))
               for b in range(min(n_batches, len(users) // cfg.batch_size))]
    full = [gradient(model, batch, cfg.reg) for batch in batches]
    mean = np.mean(full, axis=0)
    batch_noise = np.mean([((g - mean) ** 2).sum(1) for g in full], axis=0)
    signal = (mean ** 2).sum(1)
    degree = np.concatenate([np.diff(train.indptr), np.diff(train.tocsc().indptr)])
    n_users = train.shape[0]
    rows = []
    import gnaq.sampled
    if weighted:
        gnaq.sampled.walk_rows = weighted_walk_rows
    for walks in walks_list:
        sampled = SampledPropagation(model, train, walks, allocation)
        sampled.refresh()
        walk_noise = np.mean([((gradient(model, batch, cfg.reg, sampled, rng) - g) ** 2).sum(1)
                              for batch, g in zip(batches, full)], axis=0)
        for side, lo, hi in (("users", 0, n_users), ("items", n_users, len(degree))):
            order = lo + np.flatnonzero(degree[lo:hi] > 0)
            order = order[np.argsort(degree[order], kind="stable")]  # equal-count quintiles by degree
            for q, sel in enumerate(np.array_split(order, 5)):
                bn, wn, s = batch_noise[sel], walk_noise[sel], signal[sel]
                rows.append({"walks": walks, "side": side, "quintile": q + 1,
                             "degree": f"{degree[sel[0]]}-{degree[sel[-1]]}",
                             "walk ÷ batch noise": float(np.median(wn / np.maximum(bn, 1e-30))),
                             "SNR full graph": float(np.median(s / np.maximum(bn, 1e-30))),
                             "SNR sampled": float(np.median(s / np.maximum(bn + wn, 1e-30)))})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="lastfm")
    ap.add_argument("--run", help="a run folder or .npz (--init-from): the model to measure at (default: the initial table)")
    ap.add_argument("--walks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--weighted", action="store_true", help="walk steps drawn ∝ Â_uv (weighted_walk_rows)")
    ap.add_argument("--allocation", default="target", help="walks a distinct target (sampled.WALK_ALLOCATIONS)")
    args = ap.parse_args(argv)
    cfg = TrainConfig(dataset=args.dataset, data_dir=data_dir(), bits=32, propagation="full", progress=False,
                      out="/tmp/gnaq-sampled-noise", init_from=args.run)
    trainer = Trainer(cfg)
    rows = measure(trainer, args.walks, args.batches, weighted=args.weighted, allocation=args.allocation)
    print(f"# {args.dataset}: gradient noise of sampled propagation ({args.batches} batches of "
          f"{cfg.batch_size}; model: {args.run or 'initial'})\n")
    keys = list(rows[0])
    print(markdown_table(keys, [[f"{r[k]:.3g}" if isinstance(r[k], float) else r[k] for k in keys] for r in rows]))


if __name__ == "__main__":
    main()
