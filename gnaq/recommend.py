"""``python -m gnaq.recommend MODEL.gnaq --user ID [-k 10] [--json] [--backend B]``.

Top-k items for one user from a packed model, through gnaq.edge (standard library only).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import edge


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnaq.recommend", description=__doc__)
    parser.add_argument("model")
    parser.add_argument("--user", required=True, type=int, help="raw user id, as in the dataset")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--include-seen", action="store_true", help="do not filter training items")
    parser.add_argument("--backend", default="auto", choices=edge.BACKENDS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        model = edge.load(args.model, args.backend)
        top = model.recommend(args.user, k=args.k, exclude_seen=not args.include_seen)
    except (OSError, edge.EdgeFormatError, edge.UnknownUserError, ValueError, RuntimeError) as exc:
        print(f"gnaq.recommend: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"user": args.user, "backend": model.backend,
                          "items": [{"item": i, "score": s} for i, s in top]}))
    else:
        for rank, (item, score) in enumerate(top, 1):
            print(f"{rank:3d}  item {item}  score {score:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
