"""The .gnaq file format: its layout, the header's schema and the checks a reader runs before it
allocates anything. Standard library only, MicroPython-clean: a device copies it beside edge.py;
the writer (gnaq.export), the reader (gnaq.edge) and gnaq.query all take the format from here.

File layout (little-endian):
    b"GNAQ" | u16 version | u32 header length | header (UTF-8 JSON) | sections | u32 CRC32
The CRC32 covers every byte before it. The header's "sections" maps a name to
[offset, nbytes] relative to the first byte after the header. Sections: user_codes,
item_codes (rows of ⌈D·b/8⌉ bytes, gnaq.pack's LSB-first bitstream) or user_float/item_float
(float32 rows), user_scales/item_scales (float32, G per node), user_ids/item_ids (int64; format 3
leaves them out when the header says "user_ids": "range" (ids 0..n-1) or gives string ids as
"user_labels"/"item_labels" lists),
and optionally history_indptr (uint64) + history_indices (uint32): each user's training items
(format 3: history_lengths + history_deltas instead, LEB128 varints of the row lengths and of each
row's first item then the gaps to the previous one; likewise graph_*). Format 3 may also mix
widths: header "widths" [b₁ < b₂ …] (the first = "bits"), sections user_width_index/item_width_index
(each node's index into "widths", packed at 1, 2 or 4 bits), and every row of user_codes/item_codes
packed at its node's width, back to back. Format 4 may instead give each column its own width
and integer step (transform coding, gnaq's ``transform="klt"``), per node group g: header
"column_widths" [[b^g_1 … b^g_D] for each g] (0-8 bits; "bits" = the largest) and "column_steps"
[[m^g_1 … m^g_D] …] (1-64, 0 exactly where b = 0); with several groups, sections
user_width_index/item_width_index give each node's group (packed as for mixed widths). A row of
group g is one LSB-first bitstream with column k at stream bits Σ_{k'<k} b^g_k' …, ⌈Σₖ b^g_k/8⌉
bytes (rows back to back), and the code c of column k is worth sₙ·m^g_k·(c + ½ − 2^(b^g_k−1))
(0 where b^g_k = 0).

Format 6 may code the node scales (gnaq's ``scale_bits``): header "scale_levels" L (2-256), section
scale_table (L float32) and user_scale_index/item_scale_index (one byte a node, < L) in place of
user_scales/item_scales; node n's scale is scale_table[index[n]] (1 group). Format 6 also adds kind
"codebook" (product quantization, ``--quantizer pq``): header "subspace_dims" [p_1 … p_M] (Σ ≤ dim;
columns past Σ are 0), "codebooks" C (1: shared, 2: users' then items'), "bits" b (1-8, K = 2^b);
sections user_codes/item_codes (rows of ⌈M·b/8⌉ bytes, M indices LSB-first), codewords (int8:
codebook c, subspace m, codeword k at byte K·(c·Σp + Σ_{m'<m} p_m') + k·p_m, p_m values) and
codeword_scales (C·M float32, t^c_m at c·M + m). Row r of codebook c is [t^c_m · q^c_m[a_rm]]ₘ and
    ŷᵤᵢ = Σₘ Tₘ[aᵢₘ]·(t⁰_m t^{C−1}_m),   Tₘ[k] = ⟨q⁰_m[aᵤₘ], q^{C−1}_m[k]⟩ (integers)
— M look-ups an item, summed over m in order from 0.0 on every backend (bit-identical). And a column file
(format 6) may Huffman-code its rows: header "huffman": true, section code_lengths (each coded column's
2^b code lengths, one byte each, group by group) and user_huffman/item_huffman (rows in order, coded
columns in order, canonical codes MSB-first) in place of user_codes/item_codes; decoded once at load
to the packed rows (gnaq/entropy.py writes them).
"""

import array
import json
import struct
import sys

try:
    from zlib import crc32
except ImportError:  # MicroPython: binascii has it
    from binascii import crc32

MAGIC = b"GNAQ"
FORMAT_VERSION = 7  # 2 added kind "propagate", 3 ids given by the header (0..n-1 or labels), 4 column
# widths and steps, 5 the items' Gram matrix for fold-in, 6 kind "codebook" (product quantization) and
# coded node scales (a table of "scale_levels" floats, one byte a node), 7 a column group all 0 bits (its
# rows store no code and dequantize to 0: gnaq's idle_share);
# files are written with the oldest version that reads them


class EdgeFormatError(ValueError):
    """The file is not a valid .gnaq model (bad magic, newer version, truncated, corrupted)."""


def _typed(buffer, code):
    """An array.array of type code from little-endian bytes (the constructor reads bytes as
    machine values on CPython and MicroPython alike; MicroPython's arrays have no frombytes)."""
    out = array.array(code, bytes(buffer))
    if sys.byteorder == "big":
        out.byteswap()
    return out


def _read(path):
    """(header, sections) of a .gnaq file: a path, a binary file object or the bytes themselves."""
    if isinstance(path, (bytes, bytearray)):
        blob, path = bytes(path), "<bytes>"
    elif hasattr(path, "read"):
        blob, path = path.read(), getattr(path, "name", "<file>")
    else:
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
    if crc32(memoryview(blob)[:-4]) & 0xFFFFFFFF != stored_crc:
        raise EdgeFormatError(f"{path}: CRC32 mismatch: the file is corrupted or truncated")
    try:
        header = json.loads(blob[10:10 + header_len].decode("utf-8"))
    except (UnicodeError, ValueError, RuntimeError) as exc:  # (RecursionError is a RuntimeError)
        raise EdgeFormatError(f"{path}: unreadable header ({exc})") from None
    base = 10 + header_len
    spans = _validate_header(path, version, header, len(blob) - 4 - base)
    view = memoryview(blob)
    return header, {name: view[base + offset: base + offset + size] for name, (offset, size) in spans.items()}


KINDS = ("float", "quantized", "propagate", "codebook")
MAX_VARINT_BYTES = 5  # a varint here holds a count or an item gap < 2^35
PACK_BITS = (1, 2, 3, 4, 8)
MAX_COLUMN_BITS, MAX_COLUMN_STEP = 8, 64  # inner sums |Σₖ m aᵤ · m aᵢ| ≤ D·64²·255² (int64 where ≥ 2^31)
MAX_LAYERS = 64
MAX_CODE_LENGTH = 24  # of a Huffman-coded file's codes (gnaq.entropy)
HEADER_FIELDS = ("bits", "codebooks", "column_steps", "column_widths", "dim", "embedding_dim", "format", "groups",
                 "huffman", "item_ids", "item_labels", "kind", "layer_weights", "layers", "level_offset", "n_items",
                 "n_users", "quantizer", "scale_levels", "sections", "subspace_dims", "user_ids", "user_labels",
                 "widths")


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_header(path, version, header, data_bytes):
    """Check every header field against the bytes that are there, before anything is allocated.

    Returns {section: (offset, size)}. Each section's size must be exactly what n_users, n_items,
    dim, bits and groups imply; the sections a kind needs must all be there and no others.
    Raises EdgeFormatError naming the field.
    """
    def refuse(message):
        raise EdgeFormatError(f"{path}: {message}")

    if not isinstance(header, dict):
        refuse(f"header is a JSON {type(header).__name__}, not an object")
    kind = header.get("kind")
    if kind not in KINDS:
        refuse(f"header field 'kind' is {kind!r}; expected one of {KINDS}")
    if kind == "propagate" and version < 2:
        refuse("kind 'propagate' needs format version 2")
    if kind == "codebook" and version < 6:
        refuse("kind 'codebook' needs format version 6")
    for field in header:  # every field is checked, also where this kind does not use it
        if field not in HEADER_FIELDS:
            refuse(f"unknown header field {field!r} (this reader knows {', '.join(sorted(HEADER_FIELDS))})")
    if "format" in header and header["format"] != version:
        refuse(f"header field 'format' is {header['format']!r}; the file's version is {version}")
    weights = header.get("layer_weights")
    if weights is not None or kind == "propagate":
        if (not isinstance(weights, list) or not 1 <= len(weights) <= MAX_LAYERS
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w == w
                           and abs(w) != float("inf") for w in weights)):
            refuse(f"header field 'layer_weights' must be a list of 1 to {MAX_LAYERS} finite numbers")
    layers = header.get("layers")
    if layers is not None and (not _integer(layers) or not 0 <= layers < MAX_LAYERS
                               or (weights is not None and len(weights) != layers + 1)):
        refuse(f"header field 'layers' is {layers!r}; expected an integer in [0, {MAX_LAYERS}) with one more "
               "entry in 'layer_weights'")
    size = header.get("embedding_dim")
    if size is not None and (not _integer(size) or size < 1):
        refuse(f"header field 'embedding_dim' is {size!r}; expected an integer ≥ 1")
    name = header.get("quantizer")
    if name is not None and (not isinstance(name, str) or len(name) > 64):
        refuse(f"header field 'quantizer' is {name!r}; expected a name (a string of at most 64 characters)")
    offset, b = header.get("level_offset"), header.get("bits")
    if offset is not None and (kind in ("float", "codebook") or not isinstance(offset, (int, float))
                               or isinstance(offset, bool) or not (_integer(b) and 1 <= b <= MAX_COLUMN_BITS)
                               or offset != 0.5 - 2 ** (b - 1)
                               or "widths" in header or "column_widths" in header):
        refuse(f"header field 'level_offset' is {offset!r}; a uniform quantized file gives 0.5 − 2^(bits−1)")
    for field in ("n_users", "n_items", "dim"):
        value = header.get(field)
        if not _integer(value) or value < (1 if field == "dim" else 0):
            refuse(f"header field {field!r} is {value!r}; expected an integer ≥ {1 if field == 'dim' else 0}")
    n_users, n_items, dim = header["n_users"], header["n_items"], header["dim"]
    bits, groups = header.get("bits", 32), header.get("groups", 1)
    if kind == "float":
        if bits != 32 or isinstance(bits, bool):
            refuse(f"header field 'bits' is {bits!r}; a float model has 32")
        if groups != 1 or isinstance(groups, bool):
            refuse(f"header field 'groups' is {groups!r}; a float model has 1")
        row_bytes = 4 * dim
        sizes = {"user_float": n_users * row_bytes, "item_float": n_items * row_bytes}
    elif kind == "codebook":  # M indices of b bits a row; C codebooks of 2^b int8 codewords of p_m per subspace
        dims, C = header.get("subspace_dims"), header.get("codebooks")
        if (not isinstance(dims, list) or not 1 <= len(dims) <= dim or not all(_integer(p) and p >= 1 for p in dims)
                or sum(dims) > dim):
            refuse(f"header field 'subspace_dims' is {dims!r}; expected 1 to dim ({dim}) integers ≥ 1 "
                   "summing to at most dim")
        M = len(dims)
        if not _integer(C) or C not in (1, 2):
            refuse(f"header field 'codebooks' is {C!r}; expected 1 (shared) or 2 (users', items')")
        if not _integer(bits) or not 1 <= bits <= MAX_COLUMN_BITS:
            refuse(f"header field 'bits' is {bits!r}; a codebook file's index width is 1 to {MAX_COLUMN_BITS}")
        if groups != 1 or isinstance(groups, bool) or "widths" in header or "column_widths" in header:
            refuse("a codebook file has 1 group and no 'widths' or 'column_widths'")
        row_bytes = _row_bytes(M, bits)
        sizes = {"user_codes": n_users * row_bytes, "item_codes": n_items * row_bytes,
                 "codewords": C * (1 << bits) * sum(dims), "codeword_scales": 4 * C * M}
    else:
        allowed = range(1, MAX_COLUMN_BITS + 1) if "column_widths" in header else PACK_BITS  # (the widest column)
        if not _integer(bits) or bits not in allowed:
            refuse(f"header field 'bits' is {bits!r}; expected one of {tuple(allowed)}")
        if not _integer(groups) or groups < 1 or dim % groups or (groups > 1 and (dim // groups) * bits % 8):
            refuse(f"header field 'groups' is {groups!r}; it must divide dim ({dim}) into groups of whole bytes")
        row_bytes = _row_bytes(dim, bits)
        sizes = {"user_codes": n_users * row_bytes, "item_codes": n_items * row_bytes,
                 "user_scales": 4 * n_users * groups, "item_scales": 4 * n_items * groups}
    levels = header.get("scale_levels")
    if levels is not None:  # coded scales: a table of L float32 and one byte a node in place of G floats
        if not _integer(levels) or not 2 <= levels <= 256 or kind != "quantized" or groups != 1 or version < 6:
            refuse(f"header field 'scale_levels' is {levels!r}; coded scales are 2 to 256 levels of a version-6 "
                   "'quantized' file with 1 group")
        for side, n in (("user", n_users), ("item", n_items)):
            del sizes[f"{side}_scales"]
            sizes[f"{side}_scale_index"] = n
        sizes["scale_table"] = 4 * levels
    for field in ("subspace_dims", "codebooks"):
        if field in header and kind != "codebook":
            refuse(f"header field {field!r} belongs to kind 'codebook', not {kind!r}")
    bounded = {}  # sections whose exact size needs the per-node widths: (fewest, most) bytes
    variable = {}  # sections whose size is data-dependent: {name: element size}
    columns, steps = header.get("column_widths"), header.get("column_steps")
    if columns is not None or steps is not None:
        def table(value, low, high):  # 1-4 lists of dim integers in [low, high]
            return (isinstance(value, list) and 1 <= len(value) <= 4 and all(
                isinstance(row, list) and len(row) == dim and all(_integer(v) and low <= v <= high for v in row)
                for row in value))
        if (kind != "quantized" or version < 4 or groups != 1 or "widths" in header
                or not table(columns, 0, MAX_COLUMN_BITS) or not any(sum(row) for row in columns)
                or (version < 7 and not all(sum(row) for row in columns))
                or bits != max(max(row) for row in columns)):
            refuse(f"header field 'column_widths' must hold 1 to 4 lists of dim ({dim}) widths from 0 to "
                   f"{MAX_COLUMN_BITS}, the largest equal to 'bits', none all 0 before version 7 (one not all 0 "
                   "since), in a version-4 'quantized' file with 1 group and no node 'widths'")
        if (not table(steps, 0, MAX_COLUMN_STEP) or len(steps) != len(columns)
                or any((m == 0) != (b == 0) for ms, bs in zip(steps, columns) for m, b in zip(ms, bs))):
            refuse(f"header field 'column_steps' must match 'column_widths' with integers from 1 to {MAX_COLUMN_STEP} "
                   "(0 exactly at 0 bits)")
        row_bytes = [-(-sum(row) // 8) for row in columns]
        huffman = header.get("huffman")
        if huffman is not None and (huffman is not True or version < 6):
            refuse(f"header field 'huffman' is {huffman!r}; an entropy-coded version-6 column file gives true")
        for side, n in (("user", n_users), ("item", n_items)):
            del sizes[f"{side}_codes"]
            if huffman:  # the rows come from a bitstream of any length, decoded (and checked) at load
                variable[f"{side}_huffman"] = 1
            elif len(columns) == 1:
                sizes[f"{side}_codes"] = n * row_bytes[0]
            else:
                bounded[f"{side}_codes"] = (n * min(row_bytes), n * max(row_bytes))
            if len(columns) > 1:
                sizes[f"{side}_width_index"] = -(-n * index_bits(len(columns)) // 8)
        if huffman:
            sizes["code_lengths"] = sum(1 << b for row in columns for b in row if b)
    elif "huffman" in header:
        refuse("header field 'huffman' belongs to transform-coded files ('column_widths')")
    widths = header.get("widths")
    if widths is not None:
        if (kind not in ("quantized", "propagate") or version < 3 or groups != 1 or not isinstance(widths, list)
                or not 2 <= len(widths) <= len(PACK_BITS) or not all(_integer(b) and b in PACK_BITS for b in widths)
                or widths != sorted(set(widths)) or widths[0] != bits):
            refuse(f"header field 'widths' is {widths!r}; mixed widths are 2 to {len(PACK_BITS)} distinct widths "
                   f"from {PACK_BITS}, ascending, the first equal to 'bits', in a version-3 'quantized' or 'propagate' "
                   "file with 1 group")
        for side, n in (("user", n_users), ("item", n_items)):
            del sizes[f"{side}_codes"]
            bounded[f"{side}_codes"] = (n * row_bytes, n * _row_bytes(dim, widths[-1]))
            sizes[f"{side}_width_index"] = -(-n * index_bits(len(widths)) // 8)
    for side, n in (("user", n_users), ("item", n_items)):
        given = header.get(f"{side}_ids")
        if given is not None and given != "range":
            refuse(f"header field '{side}_ids' is {given!r}; the only value it may take is 'range'")
        if (given == "range" or f"{side}_labels" in header) and version < 3:
            refuse(f"header field '{side}_{'ids' if given else 'labels'}' needs format version 3")
        if given is None and f"{side}_labels" not in header:
            sizes[f"{side}_ids"] = 8 * n
    for side, n in (("user", n_users), ("item", n_items)):
        labels = header.get(f"{side}_labels")
        if labels is not None and (not isinstance(labels, list) or len(labels) != n
                                   or not all(isinstance(v, str) for v in labels)):
            refuse(f"header field '{side}_labels' must be a list of {n} strings")
    layout = header.get("sections")
    if not isinstance(layout, dict):
        refuse("header field 'sections' is missing or not an object")
    for name, required in (("history", False), ("graph", kind == "propagate")):
        raw = f"{name}_indptr" in layout or f"{name}_indices" in layout
        packed = f"{name}_lengths" in layout or f"{name}_deltas" in layout
        if raw and packed:
            refuse(f"sections of '{name}' in two encodings")
        if packed:  # delta + varint (format 3): one varint length per user, one varint gap per entry
            if version < 3:
                refuse(f"varint section '{name}_lengths' needs format version 3")
            bounded[f"{name}_lengths"] = (n_users, MAX_VARINT_BYTES * n_users)
            variable[f"{name}_deltas"] = 1
        elif raw or required:
            sizes[f"{name}_indptr"] = 8 * (n_users + 1)
            variable[f"{name}_indices"] = 4
    if "item_gram" in layout:  # Ḡ = ZᵀZ / n_items, float32 lower triangle (row by row), for fold-in
        if version < 5:
            refuse("section 'item_gram' needs format version 5")
        sizes["item_gram"] = 4 * (dim * (dim + 1) // 2)
    expected = set(sizes) | set(variable) | set(bounded)
    missing, unknown = expected - set(layout), set(layout) - expected
    if missing:
        refuse(f"section(s) {sorted(missing)} missing for kind {kind!r}")
    if unknown:
        refuse(f"unknown section(s) {sorted(unknown)} for kind {kind!r}")
    spans = {}
    for name, span in layout.items():
        if (not isinstance(span, list) or len(span) != 2 or not all(_integer(v) and v >= 0 for v in span)):
            refuse(f"section {name!r}: expected [offset, nbytes] of non-negative integers, got {span!r}")
        offset, size = span
        if offset + size > data_bytes:
            refuse(f"section {name!r} runs past the end of the file")
        if name in sizes and size != sizes[name]:
            refuse(f"section {name!r} has {size} bytes; the header implies {sizes[name]}")
        if name in variable and size % variable[name]:
            refuse(f"section {name!r} has {size} bytes, not a multiple of {variable[name]}")
        if name in bounded and not bounded[name][0] <= size <= bounded[name][1]:
            low, high = bounded[name]
            refuse(f"section {name!r} has {size} bytes; its nodes' widths allow {low} to {high}")
        spans[name] = (offset, size)
    return spans


def _check_csr(path, name, indptr, indices, n_cols):
    """A CSR read from the file: indptr from 0, non-decreasing, ending at len(indices); indices < n_cols."""
    if indptr[0] != 0 or indptr[-1] != len(indices) or any(a > b for a, b in zip(indptr, indptr[1:])):
        raise EdgeFormatError(f"{path}: section '{name}_indptr' is not a valid CSR row pointer")
    if len(indices) and max(indices) >= n_cols:
        raise EdgeFormatError(f"{path}: section '{name}_indices' holds an item index ≥ n_items ({n_cols})")


def _read_scales(path, header, sections, side):
    """One side's node scales (float32 values): the SIDE_scales section, or, coded ("scale_levels"),
    scale_table[i] for each node's byte i of SIDE_scale_index; checked finite and in the table."""
    if "scale_levels" not in header:
        values = _typed(sections[f"{side}_scales"], "f")
        _check_finite(path, f"{side}_scales", values)
        return values
    table = _typed(sections["scale_table"], "f")
    _check_finite(path, "scale_table", table)
    index = bytes(sections[f"{side}_scale_index"])
    if index and max(index) >= len(table):
        raise EdgeFormatError(f"{path}: section '{side}_scale_index' names a level beyond 'scale_levels' "
                              f"({len(table)})")
    return array.array("f", (table[i] for i in index))


def _check_finite(path, name, values):
    if not all(v - v == 0 for v in values):  # false for nan and ±inf
        raise EdgeFormatError(f"{path}: section {name!r} holds a non-finite value")


def _row_bytes(d, b):
    """⌈d·b/8⌉: bytes of one packed row of d codes at b bits."""
    return -(-d * b // 8)


def index_bits(n_widths):
    """Bits of a node's width index: 1 for 2 widths, 2 for 3-4, 4 for 5."""
    return 1 if n_widths <= 2 else 2 if n_widths <= 4 else 4

