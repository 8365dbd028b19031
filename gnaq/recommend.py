"""``python -m gnaq.recommend MODEL.gnaq (--user ID | --items ID,ID,...) [-k 10] [--json] [--backend B]``.

Top-k items for one user from a packed model, through gnaq.edge (standard library only): a user
of the model (--user), or someone known only by the items they like (--items: folded in, those
items left out; item-only files too).
"""

from __future__ import annotations

import argparse
import json
import sys

from . import edge


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gnaq.recommend", description=__doc__)
    parser.add_argument("model")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user id, as in the dataset (text or a number)")
    who.add_argument("--items", help="comma-separated raw item ids this person likes (fold-in)")
    parser.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--include-seen", action="store_true", help="do not filter training items")
    parser.add_argument("--backend", default="auto", choices=edge.BACKENDS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        model = edge.load(args.model, args.backend)
        if args.k < 1:
            raise ValueError(f"-k must be at least 1, got {args.k}")
        if args.items is not None:
            liked = [model.item_from_text(x) for x in args.items.split(",") if x.strip()]
            if not liked:
                raise ValueError("--items is empty: give the ids of at least one item this person likes")
            top = model.recommend_for_items(liked, k=args.k)
        else:
            top = model.recommend(model.user_from_text(args.user), k=args.k, exclude_seen=not args.include_seen)
    except (OSError, edge.EdgeFormatError, edge.UnknownUserError, KeyError, ValueError, RuntimeError) as exc:
        print(f"gnaq.recommend: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"user": args.user, "items_liked": args.items, "backend": model.backend,
                          "items": [{"item": i, "score": s} for i, s in top]}))
    else:
        for rank, (item, score) in enumerate(top, 1):
            print(f"{rank:3d}  item {item}  score {score:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
