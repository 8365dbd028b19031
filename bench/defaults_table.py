"""The schedule's table: run folders → phases, what ended them, minutes, test Recall@20 / NDCG@20 and
their ratio to a full-precision run of the same data.

    python bench/defaults_table.py --out bench/results/defaults.md \\
        "ml-1m|fp32|RUN" "ml-1m|2-bit default|RUN|FP32_RUN" ...

Each spec is DATASET|SETTING|RUN[|REFERENCE_RUN] (run folders of ``python -m gnaq.train``). Phases
come from result.json (runs from before the convergence schedule: counted from metrics.jsonl, the
end then unrecorded); minutes are the training and evaluation seconds the run logged. A run that
climbed the --target ladder (its target-*/ folders) is reported as the model it chose — the first
rung, in ladder order, whose validation share meets --target (OUT/target.json, where the run wrote
one, says so itself) — with the settings tried and the minutes of every rung summed.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import emit, markdown_table  # noqa: E402


def summary(run: Path) -> dict:
    result = json.loads((run / "result.json").read_text())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    seconds = result.get("seconds") or sum(x.get("train_seconds", 0) + x.get("eval_seconds", 0) for x in lines)
    phases = result.get("phases")
    if phases:
        text = " + ".join(f"{p['last_epoch'] - p['first_epoch'] + 1} ({p['ended_by']})" for p in phases.values())
    else:
        warm = sum(not x["quantized"] for x in lines)
        text = f"{warm} + {len(lines) - warm} (not recorded)" if warm < len(lines) else f"{warm} (not recorded)"
    return {"phases": text, "minutes": seconds / 60, "recall": result["test_recall@20"], "ndcg": result["test_ndcg@20"],
            "kept": result.get("valid_kept")}


def chosen_rung(run: Path, target: float):
    """(chosen folder, [(setting, valid_kept)] tried) of a run that climbed the ladder, else (run, [])."""
    from gnaq.target import LADDER, label_of
    record = run / "target.json"
    if record.exists():
        data = json.loads(record.read_text())
        return run / data["chosen"], [(t["setting"], t["valid_kept"]) for t in data["tried"]]
    config = json.loads((run / "config.json").read_text())
    labels = [f"b{config['bits']}"] + [label_of(step) for step in LADDER.get(config["bits"], [])]
    tried = []
    for label in labels:
        folder = run / f"target-{label}" if tried else run  # the first setting is the run itself
        if not (folder / "result.json").exists():
            break
        kept = json.loads((folder / "result.json").read_text()).get("valid_kept")
        tried.append((label, kept))
        if kept is None or kept >= target:
            break
    return (folder if len(tried) > 1 else run), (tried if len(tried) > 1 else [])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+")
    p.add_argument("--out")
    p.add_argument("--target", type=float, default=0.98, help="the runs' --target, for runs without target.json")
    args = p.parse_args()
    rows = []
    for spec in args.specs:
        dataset, setting, run, *ref = spec.split("|")
        run = Path(run).expanduser()
        chosen, tried = chosen_rung(run, args.target)
        s = summary(chosen)
        if tried:  # the whole command: the first run and every rung it fine-tuned
            s["minutes"] = sum(summary(run / f"target-{name}" if i else run)["minutes"] for i, (name, _) in enumerate(tried))
            warm = json.loads((run / "result.json").read_text()).get("phases", {}).get("full_precision")
            first = f"{warm['last_epoch'] - warm['first_epoch'] + 1} ({warm['ended_by']})" if warm else "--init-from"
            s["phases"] = f"{first} + {s['phases']} (" + ", ".join(
                f"{name} {100 * kept:.1f}%" for name, kept in tried) + ")"
        ratio = "–"
        if ref:
            r = summary(Path(ref[0]).expanduser())
            ratio = f"{100 * s['recall'] / r['recall']:.1f}% / {100 * s['ndcg'] / r['ndcg']:.1f}%"
        kept = f"{100 * s['kept']:.1f}%" if s["kept"] else "–"
        rows.append([dataset, setting, s["phases"], f"{s['minutes']:.1f}", f"{s['recall']:.4f} / {s['ndcg']:.4f}",
                     ratio, kept])
    table = markdown_table(["dataset", "setting", "epochs: fp32 + quantized (ended by)", "minutes",
                            "test R@20 / N@20", "vs fp32", "valid kept"], rows)
    emit(table, args.out)


if __name__ == "__main__":
    main()
