"""Compare a one-process run with an ``mpiexec -n W`` run of the same command: epochs, the largest
per-epoch differences, test metrics, bytes sent a rank a step.

    python -m gnaq.train --dataset ml-1m --bits 2 --out ONE
    mpiexec -n 2 python -m gnaq.train --dataset ml-1m --bits 2 --out TWO
    python bench/mpi_equality.py ONE TWO [--title "..."] [--out bench/results/mpi-ml-1m-2bit.md]

Prints a markdown report (and writes it with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table  # noqa: E402

TEST_KEYS = ("test_recall@10", "test_ndcg@10", "test_recall@20", "test_ndcg@20")


def read_run(folder: Path):
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return lines, json.loads((folder / "result.json").read_text())


def largest_differences(a: list, b: list) -> dict:
    """max over common epochs of |x − y| (loss relative, metrics absolute), and in which phase."""
    out = {}
    for key, relative in (("loss", True), ("ndcg@20", False), ("recall@20", False)):
        for phase in (False, True):
            pairs = [(x[key], y[key]) for x, y in zip(a, b) if x["quantized"] == phase == y["quantized"]]
            if pairs:
                out[(key, phase)] = max(abs(x - y) / (abs(x) if relative and x else 1.0) for x, y in pairs)
    return out


def report(one: Path, many: Path, title: str) -> str:
    a, ra = read_run(one)
    b, rb = read_run(many)
    phases = lambda r: ", ".join(f"{name} {p['first_epoch']}-{p['last_epoch']} (best {p['best_epoch']}, "  # noqa: E731
                                 f"ended by {p['ended_by']})" for name, p in r.get("phases", {}).items())
    diffs = largest_differences(a, b)
    lines = [f"# {title}", "",
             f"    one process: {one}", f"    mpiexec -n {rb.get('processes', '?')}: {many}", "",
             f"- epochs: {len(a)} and {len(b)}; best epoch {ra['best_epoch']} and {rb['best_epoch']}",
             f"- phases, one process: {phases(ra)}", f"- phases, mpiexec: {phases(rb)}",
             "- largest per-epoch difference (loss relative, validation metrics absolute): " + "; ".join(
                 f"{key} {'quantized' if phase else 'full precision'} {value:.1e}" for (key, phase), value in diffs.items()),
             f"- bytes sent a rank a training step (mean over the run): {rb.get('bytes_sent_per_rank_per_step', 0):,.0f}"
             + "".join(f"; {key.rsplit('_step_', 1)[1].replace('_', ' ')} {value:,.0f}" for key, value in rb.items()
                       if key.startswith("bytes_sent_per_rank_per_step_")),
             f"- seconds (training + evaluation): {ra['seconds']} and {rb['seconds']}", ""]
    rows = [[key, f"{ra[key]:.7f}", f"{rb[key]:.7f}"] for key in TEST_KEYS]
    lines.append(markdown_table(["", "one process", f"mpiexec -n {rb.get('processes', '?')}"], rows))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("one", type=Path)
    parser.add_argument("many", type=Path)
    parser.add_argument("--title", default="one process against mpiexec")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = report(args.one, args.many, args.title)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
