"""Seeded fuzzer for gnaq.edge's reader, run as a subprocess under a memory limit.

    python tests/edge_fuzz.py SEED N_PER_FILE FILE.gnaq [FILE.gnaq ...]

For every seed file it writes N variants — byte flips with the CRC recomputed, header field
edits and deletions (CRC recomputed), truncations — and loads each with the pure-Python and the
numpy backends. A variant must either load and score consistently (recommend's scores equal
score()'s, best first) or raise EdgeFormatError; anything else is printed with its traceback
and the exit status is 1. Prints one JSON line of outcome counts per mutation.
"""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import sys
import tempfile
import traceback
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "micropython"))
from fuzz_device import check  # noqa: E402  (the device's consistency check, shared)

LIMIT_BYTES = 1 << 30  # address space: a reader that believes a lying header dies here, not the CI box

ODD_VALUES = [-1, 0, 1, 2, 3, 7, 9, 33, 2 ** 31, 2 ** 40, 2 ** 63, 3.5, float("nan"), "x", None, [], {}, True,
              [0, 2 ** 62], [0], [-1, 4], [2 ** 40, 8]]


def load_edge():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import gnaq.edge
    return gnaq.edge


def split(blob):
    header_len = struct.unpack_from("<I", blob, 6)[0]
    return blob[:6], json.loads(blob[10:10 + header_len]), blob[10 + header_len:-4]


def join(prefix, header, body, header_text=None):
    text = (header_text if header_text is not None else json.dumps(header)).encode()
    out = prefix + struct.pack("<I", len(text)) + text + body
    return out + struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)


def with_crc(blob):
    return blob[:-4] + struct.pack("<I", zlib.crc32(blob[:-4]) & 0xFFFFFFFF)


def mutate(blob, rng):
    """(mutation name, variant bytes)."""
    kind = rng.choice(["flip", "field", "delete", "section", "truncate", "not-object"])
    prefix, header, body = split(blob)
    if kind == "flip":
        data = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data) - 4)] ^= 1 << rng.randrange(8)
        return kind, with_crc(bytes(data))
    if kind == "field":
        header[rng.choice(sorted(header))] = rng.choice(ODD_VALUES)
        return kind, join(prefix, header, body)
    if kind == "delete":
        del header[rng.choice(sorted(header))]
        return kind, join(prefix, header, body)
    if kind == "section":
        sections = header["sections"]
        name = rng.choice(sorted(sections))
        action = rng.choice(["value", "delete", "add"])
        if action == "value":
            sections[name] = rng.choice(ODD_VALUES)
        elif action == "delete":
            del sections[name]
        else:
            sections[rng.choice(["graph_indptr", "history_indices", "extra"])] = [0, rng.choice([0, 4, 8, 2 ** 40])]
        return kind, join(prefix, header, body)
    if kind == "truncate":
        cut = blob[:rng.randrange(len(blob))]
        return kind, (with_crc(cut) if len(cut) > 4 and rng.random() < 0.5 else cut)
    return kind, join(prefix, header, body, header_text=rng.choice(["[]", "3", '"gnaq"', "null", "{"]))


def main(argv):
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_BYTES, LIMIT_BYTES))
    seed, n = int(argv[0]), int(argv[1])
    edge = load_edge()
    backends = ["python"]
    try:
        import numpy  # noqa: F401
        backends.append("numpy")
    except ImportError:
        pass
    rng = random.Random(seed)
    counts, failures = {}, 0
    with tempfile.TemporaryDirectory() as folder:
        for source in argv[2:]:
            blob = Path(source).read_bytes()
            for i in range(n):
                kind, variant = mutate(blob, rng)
                path = os.path.join(folder, "variant.gnaq")
                Path(path).write_bytes(variant)
                for backend in backends:
                    key = f"{kind}:{backend}"
                    try:
                        check(edge, path, backend)
                        outcome = "loaded"
                    except edge.EdgeFormatError:
                        outcome = "refused"
                    except Exception:  # noqa: BLE001 - the point of the fuzzer
                        outcome = "crashed"
                        failures += 1
                        if failures <= 5:
                            print(f"{source} variant {i} ({kind}, {backend}):", file=sys.stderr)
                            traceback.print_exc()
                    counts.setdefault(key, {}).setdefault(outcome, 0)
                    counts[key][outcome] += 1
    print(json.dumps(counts, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
