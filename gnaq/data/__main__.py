"""``python -m gnaq.data info NAME [--data-dir DIR] [--merge-valid] [--json]``: dataset statistics."""

from __future__ import annotations

import argparse
import json
import sys

from .interactions import DataError
from .registry import load_dataset


def format_stats(stats: dict) -> str:
    lines = [f"dataset  {stats['name']}  ({stats['source']})",
             f"users    {stats['users']:,}", f"items    {stats['items']:,}",
             f"train    {stats['train']:,}", f"valid    {stats['valid']:,}", f"test     {stats['test']:,}",
             f"density  {stats['density']:.5f}",
             f"users without train items  {stats['users_without_train']:,}",
             f"items without train users  {stats['items_without_train']:,}",
             f"users with test items      {stats['test_users']:,}"]
    for side in ("user", "item"):
        q = stats[f"{side}_degree_quantiles"]
        lines.append(f"{side} train degree  min {q['0.0']:.0f}  q25 {q['0.25']:.0f}  median {q['0.5']:.0f}  "
                     f"q75 {q['0.75']:.0f}  q99 {q['0.99']:.0f}  max {q['1.0']:.0f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnaq.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print counts, density and degree quantiles")
    info.add_argument("name")
    info.add_argument("--data-dir")
    info.add_argument("--merge-valid", action="store_true")
    info.add_argument("--no-download", action="store_true")
    info.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        data = load_dataset(args.name, args.data_dir, args.merge_valid, not args.no_download)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stats = data.stats()
    print(json.dumps(stats) if args.json else format_stats(stats))
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
