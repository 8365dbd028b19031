"""Does ``Recommender.fit`` lose accuracy by holding 10% of the interactions out for early stopping?

The user's view: ``user_items`` = a dataset's train ∪ valid (everything they have); the model is
tested on the dataset's test split (train ∪ valid masked). Two ways, same parameters and seed:
- ``held-out``: today's fit — 10% of each user's interactions select the epochs, the model
  never trains on them;
- ``refit``: the same selection run, then the chosen schedule replayed on all of user_items
  (``Recommender(refit=True)``).

    python bench/fit_refit.py --datasets lastfm amazon-sports --bits 2 32
    python bench/fit_refit.py --datasets ml-1m --bits 2 32 --fits default   # every default

The held-out and refit fits train exactly ``bits`` (``target="off"``: the question is the hold-out's,
not the ladder's); ``default`` is ``Recommender(bits=bits)`` with every default (refit, and the
target ladder, ``target="auto"``). Each record goes to bench/results/fit_refit/DATASET-bBITS.json
as it finishes (a --fits subset keeps the record's other fits); the tables to
bench/results/fit_refit.md: refit against held-out, and the default ``Recommender(bits=2).fit``
against the default ``Recommender(bits=32).fit`` — what the README's guarantee states — with the
setting the ladder chose.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import SHARED_DATA, data_dir, markdown_table  # noqa: E402

import gnaq  # noqa: E402
from gnaq.data import load_dataset  # noqa: E402
from gnaq.metrics import evaluate  # noqa: E402

OUT = ROOT / "bench" / "results" / "fit_refit"
DATA_DIRS = {"amazon-sports": Path(data_dir() or SHARED_DATA).parent / "selfrec"}


def measure(name: str, bits: int, fits=("held-out", "refit"), record=None) -> dict:
    data = load_dataset(name, data_dir=DATA_DIRS.get(name, data_dir()), download_missing=False, progress=False)
    user_items = (data.train + data.valid).tocsr()
    record = dict(record or {}, dataset=name, bits=bits)
    for label, options in (("held-out", dict(refit=False, target="off")), ("refit", dict(refit=True, target="off")),
                           ("default", {})):
        if label not in fits:
            continue
        t0 = time.perf_counter()
        model = gnaq.Recommender(bits=bits, progress=False, **options).fit(user_items)
        seconds = time.perf_counter() - t0
        metrics = evaluate(model.user_factors, model.item_factors, user_items, data.test, ks=(20,))
        record[label] = {"recall@20": metrics["recall@20"], "ndcg@20": metrics["ndcg@20"],
                         "seconds": round(seconds, 1), "phases": model.result_["phases"],
                         "tried": model.result_.get("tried"), "valid_kept": model.result_.get("valid_kept"),
                         "bits_chosen": model.trainer_.config.bits,
                         "quant_options": model.trainer_.config.quant_options if bits != 32 else {}}
        print(json.dumps({"dataset": name, "bits": bits, "fit": label, **record[label]}), flush=True)
    return record


def table() -> str:
    rows = []
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        if "held-out" not in r or "refit" not in r:
            continue
        h, f = r["held-out"], r["refit"]
        phases = " + ".join(str(p["last_epoch"] - p["first_epoch"] + 1) for p in h["phases"].values())
        rows.append([r["dataset"], r["bits"], phases,
                     f"{h['recall@20']:.4f} / {h['ndcg@20']:.4f}", f"{h['seconds'] / 60:.1f}",
                     f"{f['recall@20']:.4f} / {f['ndcg@20']:.4f}", f"{f['seconds'] / 60:.1f}",
                     f"{100 * f['recall@20'] / h['recall@20']:.1f}% / {100 * f['ndcg@20'] / h['ndcg@20']:.1f}%"])
    return markdown_table(["dataset", "bits", "selection epochs (phases)", "held-out: test R@20 / N@20", "min",
                           "refit: test R@20 / N@20", "min", "refit vs held-out"], rows)


def guarantee_table() -> str:
    """Recommender(bits=2).fit against Recommender(bits=32).fit, both with every default (refit)."""
    rows = []
    for path in sorted(OUT.glob("*-b2.json")):
        quantized, full = json.loads(path.read_text()), OUT / path.name.replace("-b2.json", "-b32.json")
        if "default" not in quantized or not full.exists() or "default" not in json.loads(full.read_text()):
            continue
        q, f = quantized["default"], json.loads(full.read_text())["default"]
        tried = ", ".join(f"{t['setting']} {100 * t['valid_kept']:.1f}%" for t in q.get("tried") or []) or (
            f"b2 {100 * q['valid_kept']:.1f}%" if q.get("valid_kept") else "b2 (≥ the target; share not recorded)")
        chosen = f"{q.get('bits_chosen', 2)} bits" + (" + busiest 25% at 4" if "mix_share" in q.get("quant_options", {}) else "")
        rows.append([quantized["dataset"], f"{f['recall@20']:.4f} / {f['ndcg@20']:.4f}", f"{f['seconds'] / 60:.1f}",
                     f"{q['recall@20']:.4f} / {q['ndcg@20']:.4f}", f"{q['seconds'] / 60:.1f}", tried, chosen,
                     f"{100 * q['recall@20'] / f['recall@20']:.1f}% / {100 * q['ndcg@20'] / f['ndcg@20']:.1f}%"])
    return markdown_table(["dataset", "bits=32: test R@20 / N@20", "min", "bits=2: test R@20 / N@20", "min",
                           "hold-out share each setting kept", "chosen", "bits=2 vs bits=32"], rows)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["lastfm", "amazon-sports"])
    p.add_argument("--bits", nargs="+", type=int, default=[2, 32])
    p.add_argument("--fits", nargs="+", choices=("held-out", "refit", "default"),
                   default=["held-out", "refit"])
    p.add_argument("--table", action="store_true", help="only rebuild the table from the records")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for name in args.datasets:
            for bits in args.bits:
                path = OUT / f"{name}-b{bits}.json"
                before = json.loads(path.read_text()) if path.exists() else None
                path.write_text(json.dumps(measure(name, bits, args.fits, before), indent=1))
    text = (table() + "\n\n## The defaults' guarantee: `Recommender(bits=2).fit` against `Recommender(bits=32).fit`\n\n"
            + guarantee_table())
    (OUT.parent / "fit_refit.md").write_text(__doc__.split("\n\n")[0] + "\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
