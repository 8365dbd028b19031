"""Load a packed ``.gnaq`` model and recommend from it with the Python standard library alone.

This file is self-contained: copy it onto a device and ``import edge``. Module level imports
only the standard library; numpy and numba are used when importable (chosen at load time,
overridable with ``backend=``), and all backends return the same top-K (ties → smaller item
index) with scores equal up to float rounding (quantized models: bit-identical, float64).

File layout (little-endian):
    b"GNAQ" | u16 version | u32 header length | header (UTF-8 JSON) | sections | u32 CRC32
The CRC32 covers every byte before it. The header's "sections" maps a name to
[offset, nbytes] relative to the first byte after the header. Sections: user_codes,
item_codes (rows of ⌈D·b/8⌉ bytes, gnaq.pack's LSB-first bitstream) or user_float/item_float
(float32 rows), user_scales/item_scales (float32, G per node), user_ids/item_ids (int64),
and optionally history_indptr (uint64) + history_indices (uint32): each user's training items.

Score of a quantized model, off = ½ − 2^(b−1), groups g of D/G columns:
    ŷᵤᵢ = Σ_g sᵤ_g sᵢ_g Σ_{k∈g} (cᵤₖ + off)(cᵢₖ + off)
It is linear in the item's bits, so for one user every byte position j of an item row gets a
256-entry table Tⱼ[v] = Σ_{bits p set in v} sᵤ_g (cᵤₖ₍ₚ₎ + off)·2^t₍ₚ₎ and
    ŷᵤᵢ = Σ_g sᵢ_g (Σ_{j∈g} Tⱼ[rowᵢ[j]] + C_g),   C_g = off·Σ_{k∈g} sᵤ_g (cᵤₖ + off)
(2 bits, D = 64: 16 table look-ups per item).
"""

from __future__ import annotations

import array
import heapq
import json
import struct
import sys
import zlib

MAGIC = b"GNAQ"
FORMAT_VERSION = 1
BACKENDS = ("auto", "numba", "numpy", "python")


class EdgeFormatError(ValueError):
    """The file is not a valid .gnaq model (bad magic, newer version, truncated, corrupted)."""


class UnknownUserError(KeyError):
    """The raw user id is not in the model."""

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown user"


def _typed(buffer, code):
    """An array.array of type code from little-endian bytes."""
    out = array.array(code)
    out.frombytes(buffer)
    if sys.byteorder == "big":
        out.byteswap()
    return out


def _read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 14 or blob[:4] != MAGIC:
        raise EdgeFormatError(f"{path}: not a .gnaq model (bad magic {blob[:4]!r})")
    version, header_len = struct.unpack_from("<HI", blob, 4)
    if version > FORMAT_VERSION:
        raise EdgeFormatError(f"{path}: format version {version} is newer than this reader's "
                              f"{FORMAT_VERSION}; update gnaq.edge")
    if version < 1:
        raise EdgeFormatError(f"{path}: invalid format version {version}")
    if 10 + header_len + 4 > len(blob):
        raise EdgeFormatError(f"{path}: truncated (header says {header_len} bytes, file has {len(blob)})")
    (stored_crc,) = struct.unpack_from("<I", blob, len(blob) - 4)
    if zlib.crc32(memoryview(blob)[:-4]) & 0xFFFFFFFF != stored_crc:
        raise EdgeFormatError(f"{path}: CRC32 mismatch: the file is corrupted or truncated")
    try:
        header = json.loads(blob[10:10 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EdgeFormatError(f"{path}: unreadable header ({exc})") from None
    base = 10 + header_len
    data_end = len(blob) - 4
    sections = {}
    for name, (offset, size) in header["sections"].items():
        if offset < 0 or base + offset + size > data_end:
            raise EdgeFormatError(f"{path}: section {name!r} runs past the end of the file")
        sections[name] = memoryview(blob)[base + offset: base + offset + size]
    return header, sections


class EdgeModel:
    """A loaded .gnaq model. ``backend``: auto | numba | numpy | python."""

    def __init__(self, path, backend: str = "auto"):
        self.path = str(path)
        self.header, sections = _read(path)
        h = self.header
        self.n_users, self.n_items = h["n_users"], h["n_items"]
        self.kind, self.dim = h["kind"], h["dim"]
        self.bits, self.groups = h.get("bits", 32), h.get("groups", 1)
        self.user_ids = list(_typed(sections["user_ids"], "q"))
        self.item_ids = list(_typed(sections["item_ids"], "q"))
        self._user_index = {raw: i for i, raw in enumerate(self.user_ids)}
        self._item_index = {raw: i for i, raw in enumerate(self.item_ids)}
        if self.kind == "quantized":
            self.row_bytes = -(-self.dim * self.bits // 8)
            self.user_codes = bytes(sections["user_codes"])
            self.item_codes = bytes(sections["item_codes"])
            self.user_scales = list(_typed(sections["user_scales"], "f"))
            self.item_scales = list(_typed(sections["item_scales"], "f"))
            self.offset = 0.5 - 2 ** (self.bits - 1)
        else:
            self.user_float = _typed(sections["user_float"], "f")
            self.item_float = _typed(sections["item_float"], "f")
        self.has_history = "history_indptr" in sections
        if self.has_history:
            self.history_indptr = _typed(sections["history_indptr"], "Q")
            self.history_indices = _typed(sections["history_indices"], "I")
        self.backend = self._choose_backend(backend)
        self._np_cache = None

    # ---- backend selection -----------------------------------------------------------
    @staticmethod
    def _choose_backend(name):
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        if name in ("auto", "numba"):
            try:
                import numba  # noqa: F401
                import numpy  # noqa: F401
                return "numba"
            except ImportError:
                if name == "numba":
                    raise RuntimeError("backend 'numba' asked for, but numba/numpy cannot be imported") from None
        if name in ("auto", "numpy"):
            try:
                import numpy  # noqa: F401
                return "numpy"
            except ImportError:
                if name == "numpy":
                    raise RuntimeError("backend 'numpy' asked for, but numpy cannot be imported") from None
        return "python"

    # ---- per-user tables ---------------------------------------------------------------
    def user_index(self, user_raw_id) -> int:
        try:
            return self._user_index[user_raw_id]
        except KeyError:
            raise UnknownUserError(f"user {user_raw_id!r} is not in {self.path} "
                                   f"({self.n_users} users)") from None

    def _user_codes(self, u):
        """The user's codes as ints (pure Python unpack of one row)."""
        rb, b = self.row_bytes, self.bits
        stream = int.from_bytes(self.user_codes[u * rb:(u + 1) * rb], "little")
        mask = (1 << b) - 1
        return [(stream >> (k * b)) & mask for k in range(self.dim)]

    def _tables(self, u):
        """(tables[j][v] for each byte position j, constant C_g per group), floats."""
        codes = self._user_codes(u)
        b, off, G = self.bits, self.offset, self.groups
        per_group = self.dim // G
        scales = self.user_scales[u * G:(u + 1) * G]
        weight = [0.0] * (self.row_bytes * 8)
        consts = [0.0] * G
        for k, c in enumerate(codes):
            w = scales[k // per_group] * (c + off)
            consts[k // per_group] += off * w
            for t in range(b):
                weight[k * b + t] = w * (1 << t)
        tables = []
        for j in range(self.row_bytes):
            bit_weight = weight[8 * j: 8 * j + 8]
            table = [0.0] * 256
            for v in range(1, 256):
                low = v & -v
                table[v] = table[v ^ low] + bit_weight[low.bit_length() - 1]
            tables.append(table)
        return tables, consts

    # ---- scoring -----------------------------------------------------------------------
    def _scores_all(self, u):
        """Scores of user row u against every item, as a list (python) or numpy array."""
        if self.kind == "float":
            return self._float_scores(u)
        tables, consts = self._tables(u)
        if self.backend == "python":
            return self._scores_python(tables, consts)
        return self._scores_numpy(tables, consts)

    def _scores_python(self, tables, consts):
        rb, G = self.row_bytes, self.groups
        bytes_per_group = rb // G
        codes, scales = self.item_codes, self.item_scales
        out = [0.0] * self.n_items
        if G == 1:
            c0 = consts[0]
            for i in range(self.n_items):
                row = codes[i * rb:(i + 1) * rb]
                total = 0.0
                for table, byte in zip(tables, row):
                    total += table[byte]
                out[i] = scales[i] * (total + c0)
            return out
        for i in range(self.n_items):
            row = codes[i * rb:(i + 1) * rb]
            score = 0.0
            for g in range(G):
                total = 0.0
                for j in range(g * bytes_per_group, (g + 1) * bytes_per_group):
                    total += tables[j][row[j]]
                score += scales[i * G + g] * (total + consts[g])
            out[i] = score
        return out

    def _arrays(self):
        if self._np_cache is None:
            import numpy as np
            if self.kind == "float":
                self._np_cache = {
                    "items": np.frombuffer(self.item_float, dtype="<f4").reshape(self.n_items, self.dim),
                    "users": np.frombuffer(self.user_float, dtype="<f4").reshape(self.n_users, self.dim)}
            else:
                self._np_cache = {
                    "codes": np.frombuffer(self.item_codes, dtype=np.uint8).reshape(self.n_items, self.row_bytes),
                    "scales": np.asarray(self.item_scales, dtype=np.float32).reshape(self.n_items, self.groups)}
        return self._np_cache

    def _scores_numpy(self, tables, consts):
        import numpy as np
        arrays = self._arrays()
        T = np.asarray(tables, dtype=np.float64)
        if self.backend == "numba":
            out = np.empty(self.n_items, dtype=np.float64)
            _numba_kernel()(arrays["codes"], arrays["scales"], T, np.asarray(consts, dtype=np.float64), out)
            return out
        codes, scales = arrays["codes"], arrays["scales"].astype(np.float64)
        G, bytes_per_group = self.groups, self.row_bytes // self.groups
        out = np.zeros(self.n_items, dtype=np.float64)
        for g in range(G):  # same summation order as the Python loop: bytes left to right
            total = np.zeros(self.n_items, dtype=np.float64)
            for j in range(g * bytes_per_group, (g + 1) * bytes_per_group):
                total += T[j][codes[:, j]]
            out += scales[:, g] * (total + consts[g])
        return out

    def _float_scores(self, u):
        d = self.dim
        if self.backend == "python":
            user = self.user_float[u * d:(u + 1) * d]
            items = self.item_float
            out = [0.0] * self.n_items
            for i in range(self.n_items):
                total = 0.0
                for a, b in zip(user, items[i * d:(i + 1) * d]):
                    total += a * b
                out[i] = total
            return out
        import numpy as np
        arrays = self._arrays()
        return arrays["items"].astype(np.float64) @ arrays["users"][u].astype(np.float64)

    # ---- public API ----------------------------------------------------------------------
    def seen_items(self, user_raw_id):
        """Indices of the user's training items (empty without a history section)."""
        u = self.user_index(user_raw_id)
        if not self.has_history:
            return []
        return list(self.history_indices[self.history_indptr[u]:self.history_indptr[u + 1]])

    def score(self, user_raw_id, item_raw_ids):
        """Scores of one user for the given raw item ids, as floats."""
        u = self.user_index(user_raw_id)
        rows = []
        for raw in item_raw_ids:
            if raw not in self._item_index:
                raise KeyError(f"item {raw!r} is not in {self.path}")
            rows.append(self._item_index[raw])
        scores = self._scores_all(u)
        return [float(scores[i]) for i in rows]

    def recommend(self, user_raw_id, k: int = 10, exclude_seen: bool = True):
        """Top-k [(item_raw_id, score)], best first, ties → smaller item index."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        u = self.user_index(user_raw_id)
        if exclude_seen and not self.has_history:
            raise ValueError(f"{self.path} was exported without training history, so seen items "
                             "cannot be excluded; pass exclude_seen=False")
        scores = self._scores_all(u)
        seen = set(self.seen_items(user_raw_id)) if exclude_seen else set()
        if self.backend == "python":
            candidates = ((s, i) for i, s in enumerate(scores) if i not in seen)
            top = heapq.nsmallest(k, candidates, key=lambda pair: (-pair[0], pair[1]))
        else:
            top = _top_k_numpy(scores, k, seen)
        return [(self.item_ids[i], float(s)) for s, i in top]


def _top_k_numpy(scores, k, seen):
    import numpy as np
    scores = np.array(scores, dtype=np.float64)
    if seen:
        scores[np.fromiter(seen, dtype=np.int64)] = -np.inf
    valid = int(np.isfinite(scores).sum())
    k = min(k, valid)
    if k == 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    kth = scores[part].min()
    tied_outside = int((scores == kth).sum()) > int((scores[part] == kth).sum())
    if tied_outside:  # resolve boundary ties by index, like a stable sort
        part = np.argsort(-scores, kind="stable")[:k]
    part = np.sort(part)
    order = np.argsort(-scores[part], kind="stable")
    return [(scores[i], int(i)) for i in part[order]]


_KERNEL = {}


def _numba_kernel():
    """The packed-domain scoring kernel, compiled on first use (parallel over items)."""
    if "score" not in _KERNEL:
        from numba import njit, prange

        @njit(parallel=True, cache=False)
        def score(codes, scales, tables, consts, out):  # pragma: no cover - jitted
            n, rb = codes.shape
            G = scales.shape[1]
            per_group = rb // G
            for i in prange(n):
                acc = 0.0
                for g in range(G):
                    total = 0.0
                    for j in range(g * per_group, (g + 1) * per_group):
                        total += tables[j, codes[i, j]]
                    acc += float(scales[i, g]) * (total + consts[g])
                out[i] = acc
        _KERNEL["score"] = score
    return _KERNEL["score"]


def load(path, backend: str = "auto") -> EdgeModel:
    """Open a .gnaq file. backend: auto (numba, else numpy, else python) | numba | numpy | python."""
    return EdgeModel(path, backend)
