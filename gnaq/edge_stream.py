"""A .gnaq file read from flash as queries need it: a graph-free model in a microcontroller's heap.

    import edge_stream                          # beside edge.py and edge_format.py; standard library only
    model = edge_stream.open_model("model.gnaq", chunk_items=64)
    model.recommend(user, k=10)                 # a trained user (whole files)
    model.recommend_for_items([7, 19, 230], k=10, exclude=[5])   # someone known by their items
    model.similar_items(7, k=5)

``edge.load`` opens a file this way by itself where it would not fit the free heap (MicroPython's
``gc.mem_free()``). For graph-free quantized files with packed rows (uniform, mixed widths,
transform-coded, idle groups, coded scales; with or without users, history and the Gram matrix).

What stays in the heap: the header, the Gram matrix (d(d+1)/2 float32) and, per query, d·(d+1)/2
doubles of the fold-in system, a chunk of ``chunk_items`` rows with their scales and width indexes,
the user's nibble tables (two 16-entry tables a byte of a row, a set per row key) and the k best.
Nothing grows with the number of users or items. At open the whole file is checked as ``edge.load``
checks it — magic, version, every header field against the section sizes, the CRC32, the scales,
width indexes, ids and history — in 4 KiB reads, before anything is allocated for a query.

Scores are ``edge.EdgeModel``'s: Σ_g (c_g + Σ_j T_j[row_j])·¼sᵤ_g·sᵢ_g with T_j[v] = lo_j[v & 15] +
hi_j[v >> 4], so integer sums (trained users) are bit-identical and float sums (folded-in users) equal
to rounding; ties → the smaller item index. Item ids given as integers must be strictly increasing in
the file (gnaq writes them sorted), so a raw id is found by bisection in the file.
"""

import array
import json
import struct
import sys

try:
    from . import edge, edge_format
except ImportError:  # copied beside edge.py and edge_format.py on a device
    import edge
    import edge_format

CRC_CHUNK = 4096
_BIG_ENDIAN = sys.byteorder == "big"  # (float32 scales are read straight into an array on little-endian machines)


class NotStreamable(ValueError):
    """A valid file of a kind streaming does not read (propagate, float, codebook, Huffman-coded rows)."""


def open_model(path, chunk_items: int = 64):
    """A StreamedModel over ``path`` (a file path: the rows stay in the file)."""
    return StreamedModel(path, chunk_items)


open_items = open_model  # (its name when it served item-only queries alone)


class StreamedModel(edge.EdgeModel):
    """A graph-free quantized .gnaq file whose rows, scales, ids and history are read while answering."""

    def __init__(self, path, chunk_items: int = 64):
        if not isinstance(chunk_items, int) or chunk_items < 1:
            raise ValueError(f"chunk_items must be a positive integer, got {chunk_items!r}")
        self.path, self.chunk_items, self.backend = str(path), chunk_items, "python"
        self._f = f = open(path, "rb")
        try:
            self._open(f)
        except BaseException:
            f.close()
            raise

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- open: the header, the CRC and every per-node section checked in chunks ----------------
    def _open(self, f):
        path = self.path
        head = f.read(10)
        f.seek(0, 2)
        size = f.tell()
        if len(head) < 10 or size < 14 or head[:4] != edge_format.MAGIC:
            raise edge.EdgeFormatError(f"{path}: not a .gnaq model (bad magic {head[:4]!r})")
        version, header_len = struct.unpack_from("<HI", head, 4)
        if version > edge_format.FORMAT_VERSION or version < 1:
            raise edge.EdgeFormatError(f"{path}: format version {version} is not one this reader "
                                       f"(version {edge_format.FORMAT_VERSION}) reads")
        if 10 + header_len + 4 > size:
            raise edge.EdgeFormatError(f"{path}: truncated (header says {header_len} bytes, file has {size})")
        f.seek(0)
        crc, left = 0, size - 4
        buf = bytearray(512)
        view = memoryview(buf)
        while left:
            n = f.readinto(view[:min(512, left)])
            if not n:
                raise edge.EdgeFormatError(f"{path}: truncated while reading")
            crc = edge_format.crc32(view[:n], crc)
            left -= n
        if crc & 0xFFFFFFFF != struct.unpack("<I", f.read(4))[0]:
            raise edge.EdgeFormatError(f"{path}: CRC32 mismatch: the file is corrupted or truncated")
        del buf, view
        f.seek(10)
        try:
            header = json.loads(f.read(header_len).decode("utf-8"))
        except (UnicodeError, ValueError, RuntimeError) as exc:
            raise edge.EdgeFormatError(f"{path}: unreadable header ({exc})") from None
        base = 10 + header_len
        spans = edge_format._validate_header(path, version, header, size - 4 - base)
        if header["kind"] != "quantized" or header.get("huffman"):
            raise NotStreamable(f"{path}: streaming reads graph-free quantized files with packed rows; this one is "
                             f"{'Huffman coded' if header.get('huffman') else repr(header['kind'])} "
                             "(load it with edge.load)")
        self._at = {name: base + offset for name, (offset, _) in spans.items()}
        self._size = {name: nbytes for name, (_, nbytes) in spans.items()}
        self.header = h = header
        self.n_users, self.n_items, self.kind, self.dim = h["n_users"], h["n_items"], h["kind"], h["dim"]
        self.bits, self.groups = h.get("bits", 32), h.get("groups", 1)
        self.column_widths, self.column_steps = h.get("column_widths"), h.get("column_steps")
        self.row_keys = (list(range(len(self.column_widths))) if self.column_widths
                         else h.get("widths") or [self.bits])
        self._row_bytes = [self._layout(key)[2] for key in self.row_keys]
        self._codes_buf = self._scale_buf = None
        self._buffers()  # first, while the heap is least fragmented
        self._index_bits = edge.index_bits(len(self.row_keys)) if len(self.row_keys) > 1 else 0
        self._scale_table = None
        if "scale_levels" in h:
            self._scale_table = edge_format._typed(self._section("scale_table"), "f")
            edge_format._check_finite(path, "scale_table", self._scale_table)
        self._labels, self._label_index = {}, {}
        for side in ("user", "item"):
            labels = h.get(side + "_labels")
            self._labels[side] = labels
            if labels is not None:
                self._label_index[side] = {raw: i for i, raw in enumerate(labels)}
                if len(self._label_index[side]) != len(labels):
                    raise edge.EdgeFormatError(f"{path}: header field '{side}_labels' repeats an id")
            self._check_side(side)
        self.item_gram = None
        self._gram_rows = None  # Ḡ's lower triangle, a float32 array a row (no large block)
        if "item_gram" in spans:
            self._gram_rows = []
            for a in range(self.dim):
                row = edge_format._typed(self._section("item_gram", 2 * a * (a + 1), 4 * (a + 1)), "f")
                edge_format._check_finite(path, "item_gram", row)
                self._gram_rows.append(row)
        self.has_history = "history_indptr" in spans or "history_lengths" in spans
        if self.has_history:
            self._check_history()

    def _section(self, name, start=0, nbytes=None):
        """Bytes [start, start + nbytes) of a section (to its end by default), read from the file."""
        self._f.seek(self._at[name] + start)
        return self._f.read(self._size[name] - start if nbytes is None else nbytes)

    def _blocks(self, name, block_bytes=256):
        """A section in reads of ``block_bytes`` into one small buffer of this generator's (each block is
        valid until the next)."""
        done, size = 0, self._size[name]
        buf = bytearray(block_bytes)
        view = memoryview(buf)
        while done < size:
            n = min(block_bytes, size - done)
            self._f.seek(self._at[name] + done)
            self._f.readinto(view[:n])
            done += n
            yield view[:n] if n < block_bytes else buf

    def _check_side(self, side):
        """Scales finite, width indexes within the header's keys and summing to the codes section,
        integer ids strictly increasing: one pass in chunks."""
        n, path = getattr(self, "n_" + side + "s"), self.path
        total = 0
        for first in range(0, n, self.chunk_items):
            count = min(self.chunk_items, n - first)
            keys = self._keys(side, first, count)
            if keys is not None:
                for key in keys:
                    if key >= len(self.row_keys):
                        raise edge.EdgeFormatError(f"{path}: section '{side}_width_index' names a width or group "
                                                   "beyond the header's")
                    total += self._row_bytes[key]
            self._scales(side, first, count, check=True)
        if self._index_bits:
            if total != self._size[side + "_codes"]:
                raise edge.EdgeFormatError(f"{path}: section '{side}_codes' has {self._size[side + '_codes']} "
                                           f"bytes; the node widths imply {total}")
        if (side + "_ids") in self._size:
            last = None
            for first in range(0, n, self.chunk_items):
                for raw in edge_format._typed(self._section(side + "_ids", 8 * first,
                                                            8 * min(self.chunk_items, n - first)), "q"):
                    if last is not None and raw <= last:
                        raise ValueError(f"{path}: {side} ids are not strictly increasing; streaming finds an id "
                                         "by bisection (load the file with edge.load)")
                    last = raw

    def _check_history(self):
        """The history is a well-formed CSR of n_users rows of item indices < n_items."""
        path, n_items = self.path, self.n_items
        if "history_indptr" in self._size:
            indptr = edge_format._typed(self._section("history_indptr", 0, 8), "Q")
            last, previous, count = indptr[0], indptr[0], self._size["history_indices"] // 4
            for block in self._blocks("history_indptr"):
                for p in edge_format._typed(block, "Q"):
                    if p < previous:
                        last = -1
                    previous = p
            if last != 0 or previous != count:
                raise edge.EdgeFormatError(f"{path}: section 'history_indptr' is not a valid CSR row pointer")
            for block in self._blocks("history_indices"):
                if block and max(edge_format._typed(block, "I")) >= n_items:
                    raise edge.EdgeFormatError(f"{path}: section 'history_indices' holds an item index ≥ n_items "
                                               f"({n_items})")
            return
        rows, entries = 0, 0
        for length in self._varints("history_lengths"):
            rows += 1
            entries += length
        lengths = self._varints("history_lengths")
        left, total, seen = 0, 0, 0
        for gap in self._varints("history_deltas"):
            while not left:  # the next non-empty row
                try:
                    left, total = next(lengths), 0
                except StopIteration:
                    left = -1
            if left < 0:
                seen = -1
                break
            total += gap
            if total >= n_items:
                raise edge.EdgeFormatError(f"{path}: section 'history_deltas' runs past n_items ({n_items})")
            left -= 1
            seen += 1
        if rows != self.n_users or seen != entries:
            raise edge.EdgeFormatError(f"{path}: section 'history_lengths' does not describe {self.n_users} rows "
                                       "of the entries in 'history_deltas'")

    def _varints(self, name, skip=0):
        """The LEB128 varints of a section, streamed; the first ``skip`` of them passed over."""
        value = shift = 0
        for block in self._blocks(name):
            for byte in block:
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    if skip:
                        skip -= 1
                    else:
                        yield value
                    value = shift = 0
                else:
                    shift += 7
                    if shift >= 7 * edge_format.MAX_VARINT_BYTES:
                        raise edge.EdgeFormatError(f"{self.path}: section {name!r} holds a varint longer than "
                                                   f"{edge_format.MAX_VARINT_BYTES} bytes")
        if shift:
            raise edge.EdgeFormatError(f"{self.path}: section {name!r} ends inside a varint")

    # ---- one side's rows, a chunk at a time ------------------------------------------------------
    def _keys(self, side, first, count):
        """Row key indexes of rows [first, first + count), or None with one key."""
        b = self._index_bits
        if not b:
            return None
        per, mask = 8 // b, (1 << b) - 1
        start = first // per
        blob = self._section(side + "_width_index", start, (first + count + per - 1) // per - start)
        out = []
        for byte in blob:
            for t in range(per):
                out.append((byte >> (t * b)) & mask)
        skip = first - start * per
        return out[skip:skip + count]

    def _scales(self, side, first, count, check=False):
        """The G scales of rows [first, first + count) as floats."""
        G = self.groups
        if self._scale_table is None:
            values = edge_format._typed(self._section(side + "_scales", 4 * G * first, 4 * G * count), "f")
            if check:
                edge_format._check_finite(self.path, side + "_scales", values)
            return values
        index = self._section(side + "_scale_index", first, count)
        if check and index and max(index) >= len(self._scale_table):
            raise edge.EdgeFormatError(f"{self.path}: section '{side}_scale_index' names a level beyond "
                                       f"'scale_levels' ({len(self._scale_table)})")
        return [self._scale_table[i] for i in index]

    def _buffers(self):
        """The chunk's buffers, allocated once and reused by every scan (no heap churn of large
        blocks: a fragmented heap has no large holes)."""
        if self._codes_buf is None:
            self._codes_buf = bytearray(self.chunk_items * max(self._row_bytes))
            self._scale_buf = array.array("f", bytes(4 * self.chunk_items * self.groups))
            self._table_bufs = [[array.array("d", bytes(256)) for _ in range(rb)] for rb in self._row_bytes]
        return self._codes_buf, self._scale_buf

    def _rows(self, side, first=0, last=None):
        """(r, key index, the chunk's G·count scales, r's place t in the chunk, the chunk's packed rows,
        r's first byte there, r's bytes) of rows [first, last), read ``chunk_items`` rows at a time
        into buffers reused from chunk to chunk (a row is valid until the next step)."""
        n = getattr(self, "n_" + side + "s")
        last = n if last is None else last
        offset = self._bytes_before(side, first)
        codes, scale_buf = self._buffers()
        view = memoryview(codes)
        for start in range(first, last, self.chunk_items):
            count = min(self.chunk_items, last - start)
            keys = self._keys(side, start, count)
            if keys is None:
                nbytes = count * self._row_bytes[0]
            else:
                nbytes = 0
                for key in keys:
                    nbytes += self._row_bytes[key]
            self._f.seek(self._at[side + "_codes"] + offset)
            self._f.readinto(view[:nbytes])
            offset += nbytes
            scales = self._chunk_scales(side, start, count, scale_buf)
            p = 0
            for t in range(count):
                key = keys[t] if keys is not None else 0
                rb = self._row_bytes[key]
                yield start + t, key, scales, t, codes, p, rb
                p += rb

    def _chunk_scales(self, side, first, count, buf):
        """The G scales of rows [first, first + count): read into ``buf`` (float32), or looked up in
        the scale table (coded scales: one byte a node)."""
        G = self.groups
        if self._scale_table is not None:
            return [self._scale_table[i] for i in self._section(side + "_scale_index", first, count)]
        if _BIG_ENDIAN:
            return edge_format._typed(self._section(side + "_scales", 4 * G * first, 4 * G * count), "f")
        self._f.seek(self._at[side + "_scales"] + 4 * G * first)
        self._f.readinto(memoryview(buf)[:G * count])
        return buf

    def _bytes_before(self, side, first):
        """Bytes of the packed rows before row ``first``: from the width index with several row sizes."""
        b = self._index_bits
        if not b:
            return first * self._row_bytes[0]
        per, mask, total, r = 8 // b, (1 << b) - 1, 0, 0
        for block in self._blocks(side + "_width_index"):
            for byte in block:
                for t in range(per):
                    if r == first:
                        return total
                    total += self._row_bytes[(byte >> (t * b)) & mask]
                    r += 1
        return total

    def _vector(self, side, r):
        """Row r of one side as dim floats (as ``edge.EdgeModel._vector`` dequantizes it)."""
        G = self.groups
        for _, key, scales, t, codes, p, rb in self._rows(side, r, r + 1):
            key = self.row_keys[key]
            return self._dequantized(self._unpack_row(codes[p:p + rb], key), key, scales[t * G:(t + 1) * G])

    # ---- ids ---------------------------------------------------------------------------------------
    def _raw_id(self, side, i):
        labels = self._labels[side]
        if labels is not None:
            return labels[i]
        if (side + "_ids") in self._size:
            return edge_format._typed(self._section(side + "_ids", 8 * i, 8), "q")[0]
        return i

    def _row(self, side, raw):
        """The row of raw id ``raw``, or -1."""
        n = getattr(self, "n_" + side + "s")
        if self._labels[side] is not None:
            return self._label_index[side].get(raw, -1)
        if not edge_format._integer(raw):
            return -1
        if (side + "_ids") not in self._size:
            return raw if 0 <= raw < n else -1
        low, high = 0, n - 1
        while low <= high:  # the ids are strictly increasing (checked at open)
            mid = (low + high) // 2
            value = self._raw_id(side, mid)
            if value == raw:
                return mid
            low, high = (mid + 1, high) if value < raw else (low, mid - 1)
        return -1

    @property
    def item_ids(self):
        return _Ids(self, "item")

    @property
    def user_ids(self):
        return _Ids(self, "user")

    def item_row(self, item_raw_id) -> int:
        r = self._row("item", item_raw_id)
        if r < 0:
            raise KeyError(f"item {item_raw_id!r} is not in {self.path} ({self.n_items} items)")
        return r

    def user_index(self, user_raw_id) -> int:
        r = self._row("user", user_raw_id)
        if r < 0:
            raise edge.UnknownUserError(f"user {user_raw_id!r} is not in {self.path} ({self.n_users} users)")
        return r

    def user_from_text(self, text):
        return edge._id_from_text(text, self.user_ids)

    def item_from_text(self, text):
        return edge._id_from_text(text, self.item_ids)

    def seen_items(self, user_raw_id):
        """Indices of the user's training items (empty without a history section)."""
        u = self.user_index(user_raw_id)
        if not self.has_history:
            return []
        if "history_indptr" in self._size:
            start, end = edge_format._typed(self._section("history_indptr", 8 * u, 16), "Q")
            return list(edge_format._typed(self._section("history_indices", 4 * start, 4 * (end - start)), "I"))
        before, length = 0, 0
        for r, n in enumerate(self._varints("history_lengths")):
            if r == u:
                length = n
                break
            before += n
        out, total = [], 0
        for gap in self._varints("history_deltas", before):
            if len(out) == length:
                break
            total += gap
            out.append(total)
        return out

    # ---- scoring -------------------------------------------------------------------------------------
    def _nibble_tables(self, a_user, key):
        """For rows of ``key``: two 16-entry tables a byte (bits 0-3, bits 4-7) of Σ aᵤₖ·2^(t+1) over
        the bits t of column k it holds, and the per-group constants Σ_{k∈g} (1 − 2^bₖ)·aᵤₖ (as
        EdgeModel._tables, a byte table split in halves)."""
        G = self.groups
        per_group = self.dim // G
        offsets, widths, row_bytes = self._layout(key)
        weight = [0] * (row_bytes * 8)
        consts = [0] * G
        if self.column_steps:
            a_user = [a * m for a, m in zip(a_user, self.column_steps[key])]
        for k, a in enumerate(a_user):
            consts[k // per_group] += (1 - (1 << widths[k])) * a
            for t in range(widths[k]):
                weight[offsets[k] + t] = a * (2 << t)
        # a table of 32 doubles a byte, allocated at open and refilled: its low half at 0, its high half at
        # 16 (integer sums stay exact: every entry and total is far below 2^53)
        tables = self._table_bufs[self.row_keys.index(key)]
        for p0 in range(0, row_bytes * 8, 4):
            table, base = tables[p0 // 8], 16 * ((p0 // 4) % 2)
            table[base] = 0.0
            for p in range(4):
                w, size = weight[p0 + p], 1 << p
                for v in range(size):
                    table[base + v + size] = table[base + v] + w
        return tables, consts

    def _scan(self, a_user, quarter, skip=(), query=None):
        """(score, item) of every item not in ``skip``: the packed-domain score of a_user (ints, or
        floats with quarter ½) and, with ``query`` (its norm), the cosine instead."""
        G = self.groups
        tables = [self._nibble_tables(a_user, key) for key in self.row_keys]
        for i, key, scales, t, codes, p, rb in self._rows("item"):
            if i in skip:
                continue
            byte_tables, consts = tables[key]
            per_group = rb // G
            score, o, start = 0.0, 0, p
            for g in range(G):
                total = consts[g]
                for q in range(start, start + per_group):
                    v, table = codes[q], byte_tables[o]
                    total += table[v & 15] + table[16 + (v >> 4)]
                    o += 1
                start += per_group
                score += total * quarter[g] * scales[t * G + g]
            if query is not None:
                if i == query[1]:
                    score = 1.0 if query[0] else 0.0
                else:
                    vector = self._dequantized(self._unpack_row(codes[p:p + rb], self.row_keys[key]),
                                               self.row_keys[key], scales[t * G:(t + 1) * G])
                    norm = sum(x * x for x in vector) ** 0.5
                    score = score / (query[0] * norm) if query[0] and norm else 0.0
            yield score, i

    def _answer(self, pairs, k):
        return [(self._raw_id("item", i), float(s)) for s, i in edge._top_k_pairs(pairs, k)]

    def recommend(self, user_raw_id, k: int = 10, exclude_seen: bool = True):
        """Top-k [(item_raw_id, score)] of a trained user, best first, ties → smaller item index."""
        _check_k(k)
        u = self.user_index(user_raw_id)
        if exclude_seen and not self.has_history:
            raise ValueError(f"{self.path} was exported without training history, so seen items "
                             "cannot be excluded; pass exclude_seen=False")
        seen = set(self.seen_items(user_raw_id)) if exclude_seen else ()
        return self._answer(self._scan(*self._user_terms(u), seen), k)

    def gram(self):
        """Ḡ's lower triangle, row a as an array of a + 1 doubles: the file's, or one streamed pass."""
        d = self.dim
        if self._gram_rows is not None:
            return [array.array("d", [float(v) for v in row]) for row in self._gram_rows]
        if self.item_gram is None:
            gram = [array.array("d", [0.0] * (a + 1)) for a in range(d)]
            G = self.groups  # (as edge._mean_gram: the lower triangle, vector by vector)
            for _, key, scales, t, codes, p, rb in self._rows("item"):
                v = self._dequantized(self._unpack_row(codes[p:p + rb], self.row_keys[key]), self.row_keys[key],
                                      scales[t * G:(t + 1) * G])
                for a in range(d):
                    if v[a]:
                        target, va = gram[a], v[a]
                        for b in range(a + 1):
                            target[b] += va * v[b]
            n = max(self.n_items, 1)
            for a in range(d):
                target = gram[a]
                for b in range(a + 1):
                    target[b] = target[b] / n
            self.item_gram = gram
        return [array.array("d", row) for row in self.item_gram]

    def fold_in(self, item_raw_ids, negatives: float = edge.FOLD_IN_NEGATIVES,
                regularization: float = edge.FOLD_IN_RIDGE):
        """``edge.EdgeModel.fold_in``, its d × d system held as arrays of doubles."""
        rows = [self.item_row(raw) for raw in item_raw_ids]
        d = self.dim
        gram = self.gram()
        ridge = regularization * sum(gram[a][a] for a in range(d))
        for a in range(d):
            target = gram[a]
            for b in range(a + 1):
                target[b] = negatives * target[b]
        return edge._solve_fold_in(gram, ridge, (self.item_vector(i) for i in rows))

    def recommend_for_items(self, item_raw_ids, k: int = 10, exclude=()):
        """Top-k [(item_raw_id, score)] for someone known by their items, those and ``exclude`` left out."""
        _check_k(k)
        liked = list(item_raw_ids)
        skip = set(self.item_row(raw) for raw in liked) | set(self.item_row(raw) for raw in exclude)
        z = self.fold_in(liked)
        return self._answer(self._scan(z, [0.5] * self.groups, skip), k)

    def similar_items(self, item_raw_id, k: int = 10):
        """Top-k [(item_raw_id, cosine)] of zᵢ against every item, the item itself first."""
        _check_k(k)
        i = self.item_row(item_raw_id)
        query = self.item_vector(i)
        norm = sum(v * v for v in query) ** 0.5
        return self._answer(self._scan(query, [0.5] * self.groups, (), (norm, i)), k)

    def score(self, user_raw_id, item_raw_ids):
        """Scores of one trained user for the given raw item ids."""
        wanted = {}
        for raw in item_raw_ids:
            wanted[self.item_row(raw)] = None
        scores = dict((i, s) for s, i in self._scan(*self._user_terms(self.user_index(user_raw_id))) if i in wanted)
        return [float(scores[self.item_row(raw)]) for raw in item_raw_ids]

    def _user_terms(self, u):
        """(aᵤ as ints, times the user group's steps; ¼·sᵤ_g per group), as edge.EdgeModel's."""
        G = self.groups
        for _, key, scales, t, codes, p, rb in self._rows("user", u, u + 1):
            key = self.row_keys[key]
            _, widths, _ = self._layout(key)
            a_user = [2 * c + 1 - (1 << w) if w else 0 for c, w in zip(self._unpack_row(codes[p:p + rb], key), widths)]
            if self.column_steps:
                a_user = [a * m for a, m in zip(a_user, self.column_steps[key])]
            return a_user, [0.25 * s for s in scales[t * G:(t + 1) * G]]


class _Ids:
    """A side's raw ids, read from the file when asked (indexable, sliceable, sized)."""

    def __init__(self, model, side):
        self.model, self.side = model, side

    def __len__(self):
        return getattr(self.model, "n_" + self.side + "s")

    def __getitem__(self, i):
        n = len(self)
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(n))]
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("id index out of range")
        return self.model._raw_id(self.side, i)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __contains__(self, raw):  # a raw id of the side: by the ids' index, not a scan of the file
        return self.model._row(self.side, raw) >= 0


def _check_k(k):
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer, got {k!r}")
