"""Idle items, post-training: how much of a small item-only file the least-connected items are worth.

gnaq's ``idle_share`` (quant/gnaq.py rule 7) leaves that share of items uncoded (ẑ = 0, format 7) and gives
their bits to the rest; ``idle_by`` ranks them by training degree or by how few training users' top-20 lists
hold them ("recommended"). For each rule and share this builds the quantizer's initial codes from a
converged fp32 run (no quantized epoch: what the share does before training adapts to it), writes the item-only
file a device would get at ``--size`` (history-free, no user rows, no Ḡ, Huffman-coded rows) and scores it as
the device does: every test user folded in from their training items alone (gnaq.Query.fold_in, implicit ALS's
rule), train ∪ valid masked — test Recall@20 / NDCG@20 as % of the fp32 run's own (trained-in users).

    python bench/idle_items.py --dataset gowalla --fp32 RUN [--size 32] [--shares 0 0.3 0.5 0.6 0.7]
        [--idle-by degree recommended] [--suffix=-by]

Writes bench/results/idle-items-DATASET[SUFFIX].md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import data_dir, markdown_table  # noqa: E402
from item_frontier import file_metrics  # noqa: E402


def initial_codes_file(dataset: str, data, fp32: Path, size: float, share: float, idle_by: str, folder: Path) -> tuple:
    """The item-only file of the quantizer's codes as initialised from the fp32 run (the preset's structure):
    its path and export_model's sizes."""
    from gnaq.export import export_model
    from gnaq.training import TrainConfig, Trainer
    config = TrainConfig(dataset=dataset, size=size, export_users=False, export_gram=False, export_history=False,
                         init_from=str(fp32), quant_options={"idle_share": share, **({"idle_by": idle_by} if share else {})},
                         progress=False, out=str(folder / f"run-{idle_by}-{share}"))
    trainer = Trainer(config, data)
    path = folder / f"idle-{idle_by}-{share}.gnaq"
    return path, export_model(trainer.model, data, path, history=False, users=False, entropy=True, gram=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--fp32", required=True, type=Path, help="a converged --bits 32 run folder")
    parser.add_argument("--size", type=float, default=32.0, help="the file ratio (--size)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.6, 0.7])
    parser.add_argument("--idle-by", nargs="+", default=["degree"], choices=["degree", "recommended"])
    parser.add_argument("--suffix", default="")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from gnaq.data import load_dataset
    data = load_dataset(args.dataset, data_dir(), progress=False)
    reference = json.loads((args.fp32 / "result.json").read_text())
    ref = reference["test_recall@20"], reference["test_ndcg@20"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gnaq-idle-") as folder:
        for idle_by in args.idle_by:
            for share in args.shares:
                if not share and idle_by != args.idle_by[0]:
                    continue  # (none idle: the same file for every rule)
                path, info = initial_codes_file(args.dataset, data, args.fp32, args.size, share, idle_by, Path(folder))
                m = file_metrics(path, data)
                rows.append([idle_by if share else "–", f"{share:g}", f"{info['file_bytes']:,}",
                             f"{info['float32_file_bytes'] / info['file_bytes']:.1f}x",
                             f"{m['recall@20']:.4f} / {m['ndcg@20']:.4f}",
                             f"{100 * m['recall@20'] / ref[0]:.1f}% / {100 * m['ndcg@20'] / ref[1]:.1f}%"])
                print(" | ".join(rows[-1]), flush=True)
    out = args.out or ROOT / "bench" / "results" / f"idle-items-{args.dataset}{args.suffix}.md"
    command = " ".join(["python bench/idle_items.py", *sys.argv[1:]])
    text = (f"# Idle items at {args.size:g}x, post-training: {args.dataset}\n\n`{command}`\n\n"
            f"Initial codes of `--size {args.size:g}x --export-users no` (10% busy items at 3 bits) from the fp32 run "
            f"`{args.fp32.name}` (test Recall@20 / NDCG@20 {ref[0]:.4f} / {ref[1]:.4f}, trained-in users), no quantized "
            "epoch; the item-only file (no history, no Ḡ, Huffman-coded rows) scored with every test user folded in "
            "from their training items. 'vs float32': the same file holding float32 rows (item_frontier's ratio).\n\n"
            + markdown_table(["idle by", "idle share", "file bytes", "vs float32", "test R@20 / N@20", "kept of fp32"], rows) + "\n")
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
