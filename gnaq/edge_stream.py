"""Item rows left in the file: fold-in recommendations from a .gnaq file larger than the device's RAM.

    import edge_stream                          # beside edge.py on the device; standard library only
    items = edge_stream.open_items("model.gnaq", chunk_items=256)
    items.recommend_for_items([7, 19, 230], k=10, exclude=[5])

For graph-free quantized files (kind "quantized": uniform, mixed widths or transform-coded). At open
the whole file is checked as ``edge.load`` checks it — magic, version, every header field against the
section sizes, and the CRC32, computed over the file in 4 KiB reads — but only the small sections are
read: the item scales (as a float32 array), the width/group index, the ids when they are not 0..n−1,
and the fold-in Gram matrix. Scoring reads the item codes ``chunk_items`` rows at a time and keeps a
heap of the k best, so the heap holds O(chunk + k + n_items·G floats of scales) — nothing per item
beyond its scales. The scores, the fold-in rule and the tie-break are ``edge.EdgeModel``'s (the same
float tables over the packed rows), so the top-k equals ``edge.load(path).recommend_for_items``.
"""

import json
import struct

try:
    from . import edge, edge_format
except ImportError:  # copied beside edge.py and edge_format.py on a device
    import edge
    import edge_format

CRC_CHUNK = 4096


def open_items(path, chunk_items: int = 256):
    return StreamedItems(path, chunk_items)


class StreamedItems(edge.EdgeModel):
    """The item side of a graph-free quantized .gnaq file, its codes read from the file while scoring."""

    def __init__(self, path, chunk_items: int = 256):
        if not isinstance(chunk_items, int) or chunk_items < 1:
            raise ValueError(f"chunk_items must be a positive integer, got {chunk_items!r}")
        self.path, self.chunk_items = str(path), chunk_items
        with open(path, "rb") as f:
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
            while left:
                block = f.read(min(CRC_CHUNK, left))
                crc = edge_format.crc32(block, crc)
                left -= len(block)
            if crc & 0xFFFFFFFF != struct.unpack("<I", f.read(4))[0]:
                raise edge.EdgeFormatError(f"{path}: CRC32 mismatch: the file is corrupted or truncated")
            f.seek(10)
            try:
                header = json.loads(f.read(header_len).decode("utf-8"))
            except (UnicodeError, ValueError, RuntimeError) as exc:
                raise edge.EdgeFormatError(f"{path}: unreadable header ({exc})") from None
            base = 10 + header_len
            spans = edge_format._validate_header(path, version, header, size - 4 - base)
            if header["kind"] != "quantized" or header.get("huffman"):
                raise ValueError(f"{path}: open_items streams graph-free quantized files with packed rows; this one "
                                 f"is {'Huffman coded' if header.get('huffman') else repr(header['kind'])} "
                                 "(load it with edge.load)")

            def section(name):
                offset, nbytes = spans[name]
                f.seek(base + offset)
                return f.read(nbytes)

            self.header, h = header, header
            self.n_users, self.n_items, self.kind, self.dim = h["n_users"], h["n_items"], h["kind"], h["dim"]
            self.bits, self.groups, self.backend = h.get("bits", 32), h.get("groups", 1), "python"
            self.column_widths, self.column_steps = h.get("column_widths"), h.get("column_steps")
            self.row_keys = (list(range(len(self.column_widths))) if self.column_widths
                             else h.get("widths") or [self.bits])
            self.row_bytes = self._layout(self.row_keys[0])[2]
            names = ("item_scales",) if "scale_levels" not in h else ("scale_table", "item_scale_index")
            self.item_scales = edge_format._read_scales(self.path, h, {name: section(name) for name in names}, "item")
            self._labels = h.get("item_labels") or (None if h.get("item_ids") == "range" else
                                                    list(edge_format._typed(section("item_ids"), "q")))
            self._item_index = None if self._labels is None else {raw: i for i, raw in enumerate(self._labels)}
            if self._item_index is not None and len(self._item_index) != self.n_items:
                raise edge.EdgeFormatError(f"{self.path}: section 'item_ids' repeats an id")
            self._keys = None  # each item's row key index (several widths or node groups), packed
            if len(self.row_keys) > 1:
                self._keys = edge._unpack_index(section("item_width_index"), self.n_items,
                                                edge.index_bits(len(self.row_keys)))
                if any(i >= len(self.row_keys) for i in self._keys):
                    raise edge.EdgeFormatError(f"{self.path}: section 'item_width_index' names a width or group "
                                               "beyond the header's")
                total = sum(self._layout(self.row_keys[i])[2] for i in self._keys)
                if total != spans["item_codes"][1]:
                    raise edge.EdgeFormatError(f"{self.path}: section 'item_codes' has {spans['item_codes'][1]} "
                                               f"bytes; the node widths imply {total}")
            self.item_gram = None
            if "item_gram" in spans:
                lower = edge_format._typed(section("item_gram"), "f")
                edge_format._check_finite(self.path, "item_gram", lower)
                self.item_gram = edge._symmetric(lower, self.dim)
        self._codes_at = base + spans["item_codes"][0]
        self.user_width = self.item_width = None

    # ---- ids and rows -------------------------------------------------------------------------
    @property
    def item_ids(self):
        return range(self.n_items) if self._labels is None else self._labels

    def item_row(self, item_raw_id) -> int:
        if self._item_index is None:
            if edge_format._integer(item_raw_id) and 0 <= item_raw_id < self.n_items:
                return item_raw_id
        elif item_raw_id in self._item_index:
            return self._item_index[item_raw_id]
        raise KeyError(f"item {item_raw_id!r} is not in {self.path} ({self.n_items} items)")

    def _key_of(self, i):
        return self.row_keys[self._keys[i]] if self._keys else self.row_keys[0]

    def _rows(self, start=0):
        """(item index, key, row bytes) of every item from ``start``, read chunk_items rows at a time."""
        offset = 0
        if self._keys:
            offset = sum(self._layout(self._key_of(i))[2] for i in range(start))
        else:
            offset = start * self.row_bytes
        with open(self.path, "rb") as f:
            f.seek(self._codes_at + offset)
            for first in range(start, self.n_items, self.chunk_items):
                last = min(first + self.chunk_items, self.n_items)
                keys = [self._key_of(i) for i in range(first, last)]
                sizes = [self._layout(key)[2] for key in keys]
                blob, p = f.read(sum(sizes)), 0
                for i, key, rb in zip(range(first, last), keys, sizes):
                    yield i, key, blob[p:p + rb]
                    p += rb

    def _vector(self, side, r):
        """z of item row r, read from the file (as edge.EdgeModel._vector dequantizes it)."""
        for i, key, row in self._rows(r):
            G = self.groups
            return self._dequantized(self._unpack_row(row, key), key, self.item_scales[i * G:(i + 1) * G])

    def gram(self):
        if self.item_gram is None:  # no stored Gram: one streamed pass over the items
            G = self.groups
            vectors = (self._dequantized(self._unpack_row(row, key), key, self.item_scales[i * G:(i + 1) * G])
                       for i, key, row in self._rows())
            self.item_gram = edge._mean_gram(vectors, self.dim, self.n_items)
        return self.item_gram

    # ---- scoring, one chunk at a time -------------------------------------------------------------
    def recommend_for_items(self, item_raw_ids, k: int = 10, exclude=()):
        """Top-k [(item_raw_id, score)] for someone known by their items, as edge.EdgeModel's, streamed."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        liked = list(item_raw_ids)
        skip = set(self.item_row(raw) for raw in liked) | set(self.item_row(raw) for raw in exclude)
        z = self.fold_in(liked)
        G, scales, quarter = self.groups, self.item_scales, [0.5] * self.groups
        tables = {key: self._tables(z, key) for key in self.row_keys}
        pairs = ((edge._packed_score(row, tables[key][0], tables[key][1], quarter, scales, i * G, len(row) // G), i)
                 for i, key, row in self._rows() if i not in skip)
        return [(self.item_ids[i], float(score)) for score, i in edge._top_k_pairs(pairs, k)]
