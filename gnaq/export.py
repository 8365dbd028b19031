"""Write a trained model to the packed ``.gnaq`` file that gnaq.edge reads (format: see
gnaq/edge.py's docstring). Quantized models store b-bit codes (gnaq.pack) and float32 scales
per node; full-precision models store float32 rows. The write is atomic (temp + rename).
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from .backend import to_numpy
from .checkpoint import atomic_write_bytes
from .edge_format import FORMAT_VERSION, MAGIC, index_bits
from .entropy import code_tables, encode_rows, lengths_section
from .pack import SUPPORTED_PACK_BITS, pack, pack_columns


def build_sections(model, data, history: bool = True, compact: bool = True, users: bool = True,
                   entropy: bool = False, gram: bool = True) -> tuple:
    """(header fields, {section name: bytes}) for a model and its Interactions.

    compact: ids 0..n−1 left out, CSR sections delta + varint encoded (format 3) and, graph-free,
    the items' Gram matrix Ḡ = ZᵀZ / n_items for the device's fold-in (format 5); False writes
    the layout older readers know (int64 ids, uint64 indptr + uint32 indices, no Gram).
    users=False: an item-only file (n_users 0, no user rows, ids or history): a device folds its
    own user in from their items (gnaq.edge's fold_in) and holds nothing about anyone else.
    entropy: a transform-coded file's rows Huffman coded per column (gnaq.entropy, format 6).
    gram=False: no Ḡ section (4·d(d+1)/2 bytes, 8,320 at d = 64): a reader computes the same Ḡ from the
    rows it decoded on its first fold-in (one pass over the items; gnaq.edge)."""
    if not users and model.quantizer.deploys == "layer0":
        raise ValueError("an item-only file needs the graph-free deployment (quantize=z): a layer-0 file "
                         "carries every user's interactions in its graph")
    if not model.quantizer.exportable:
        raise ValueError(f"quantizer {model.quantizer.name!r} cannot be written as .gnaq: the format stores "
                         "a quantized z (codes and per-node scales) and this model's scores need more")
    exported = {k: v if isinstance(v, list) else to_numpy(v) for k, v in model.quantizer.export().items()}
    if entropy and "column_widths" not in exported:
        raise ValueError("entropy coding (--export-entropy) codes transform-coded rows: gnaq's graph-free "
                         "deployment (transform=klt, identity or auto)")
    n_users = model.n_users
    header = {"n_users": n_users, "n_items": model.n_items, "layers": model.n_layers,
              "layer_weights": model.layer_weights, "quantizer": model.quantizer.name,
              "embedding_dim": model.dim}
    sections = {}
    deploys = model.quantizer.deploys
    if "float" in exported:
        z = exported["float"].astype("<f4")
        header.update(kind="float", dim=z.shape[1], bits=32, groups=1)
        sections["user_float"], sections["item_float"] = z[:n_users].tobytes(), z[n_users:].tobytes()
    elif "pq_codes" in exported:  # product quantization (format 6): M indices a row, int8 codewords
        codes, words, bits = exported["pq_codes"], exported["codewords"], int(exported["code_bits"])
        C, M = len(words[0]), len(words)
        header.update(kind="codebook", dim=model.dim, bits=bits, subspace_dims=[w.shape[2] for w in words], codebooks=C)
        packed = pack_columns(codes, np.full(M, bits))
        sections["user_codes"], sections["item_codes"] = packed[:n_users].tobytes(), packed[n_users:].tobytes()
        sections["codewords"] = b"".join(w[c].astype(np.int8).tobytes() for c in range(C) for w in words)
        sections["codeword_scales"] = exported["codeword_scales"].astype("<f4").tobytes()
    else:
        if "column_widths" in exported:  # transform coding: 'bits' is the widest column, any of 1-8
            bits = int(np.max(exported["column_widths"]))
        else:
            bits = model.quantizer.bits
            if bits not in SUPPORTED_PACK_BITS:
                raise ValueError(f"cannot pack {bits}-bit codes; supported: {SUPPORTED_PACK_BITS}")
        codes, scales = exported["codes"], exported["scales"].astype("<f4")
        groups = scales.shape[1]
        if groups > 1 and (codes.shape[1] // groups) * bits % 8:
            raise ValueError("each scale group must fill whole bytes (D/G·b divisible by 8)")
        header.update(kind="quantized" if deploys == "z" else "propagate", dim=codes.shape[1], bits=bits,
                      groups=groups, level_offset=0.5 - 2 ** (bits - 1))
        if "column_widths" in exported:  # per node group g: column widths and integer steps
            columns = np.asarray(exported["column_widths"]).reshape(-1, codes.shape[1])
            header.update(column_widths=columns.tolist(), column_steps=np.asarray(exported["column_steps"]).tolist())
            del header["level_offset"]  # one per column: 0.5 − 2^(bₖ−1)
            group = np.asarray(exported.get("column_group", np.zeros(len(codes), dtype=np.int64)))
            tables = code_tables(codes, group, columns) if entropy else None
            if entropy:
                header["huffman"] = True
                sections["code_lengths"] = lengths_section(tables)
            for side, rows in (("user", slice(0, n_users)), ("item", slice(n_users, None))):
                if entropy:
                    sections[f"{side}_huffman"] = encode_rows(codes[rows], group[rows], tables)
                else:
                    sections[f"{side}_codes"] = pack_rows(codes[rows], group[rows], columns)
                if len(columns) > 1:
                    sections[f"{side}_width_index"] = pack(group[rows][None, :], index_bits(len(columns))).tobytes()
        elif "widths" in exported:  # mixed precision: each row packed at its node's width
            node_widths = to_numpy(exported["widths"])
            widths = sorted(set(node_widths.tolist()))
            header.update(bits=widths[0], widths=widths)
            del header["level_offset"]  # one per width: 0.5 − 2^(b−1)
            index = np.searchsorted(widths, node_widths)
            for side, rows in (("user", slice(0, n_users)), ("item", slice(n_users, None))):
                sections[f"{side}_codes"] = pack_mixed(codes[rows], node_widths[rows])
                sections[f"{side}_width_index"] = pack(index[rows][None, :], index_bits(len(widths))).tobytes()
        else:
            packed = pack(codes, bits)
            sections["user_codes"], sections["item_codes"] = packed[:n_users].tobytes(), packed[n_users:].tobytes()
        if "scale_table" in exported:  # coded scales (format 6): a table of levels, one byte a node
            index = np.asarray(exported["scale_index"], dtype=np.uint8)
            header["scale_levels"] = len(exported["scale_table"])
            sections["user_scale_index"] = index[:n_users].tobytes()
            sections["item_scale_index"] = index[n_users:].tobytes()
            sections["scale_table"] = np.asarray(exported["scale_table"]).astype("<f4").tobytes()
        else:
            sections["user_scales"], sections["item_scales"] = scales[:n_users].tobytes(), scales[n_users:].tobytes()
    if deploys == "layer0":  # the device propagates the stored Ê⁽⁰⁾ over the training graph
        sections.update(csr_sections("graph", data.train, compact))
    for side, ids in (("user", np.asarray(data.user_ids)), ("item", np.asarray(data.item_ids))):
        if ids.dtype.kind not in "iu":  # raw ids that are not integers (strings): labels in the header
            header[f"{side}_labels"] = [str(v) for v in ids.tolist()]
        elif compact and np.array_equal(ids, np.arange(len(ids))):  # ids 0..n-1 need no bytes (format 3)
            header[f"{side}_ids"] = "range"
        else:
            sections[f"{side}_ids"] = ids.astype("<i8").tobytes()
    if history and users:
        seen = data.train if data.valid is None else (data.train + data.valid).tocsr()
        sections.update(csr_sections("history", seen, compact))
    if deploys == "z" and compact and gram:  # the device's fold-in needs Ḡ = ZᵀZ / n_items of the rows as stored
        sections["item_gram"] = item_gram(header, sections)
    if not users:
        header["n_users"] = 0
        header.pop("user_labels", None)
        header["user_ids"] = "range"  # (no ids to give: there are no users)
        sections.pop("user_ids", None)
        for name in [k for k in sections if k.startswith("user_")]:
            sections[name] = b""
    return header, sections


def item_gram(header, sections) -> bytes:
    """Ḡ = ZᵀZ / n_items (float32, the lower triangle row by row) of the item rows exactly as the
    reader dequantizes them (the file is decoded once to compute it)."""
    from .edge import load
    blob = encode(header, {k: v for k, v in sections.items() if k != "item_gram"})
    z = load(blob, "numpy").item_vectors()
    gram = z.T @ z / max(len(z), 1)
    return gram[np.tril_indices(len(gram))].astype("<f4").tobytes()


def varints(values) -> bytes:
    """LEB128: 7 bits per byte, low group first, high bit set on every byte but a value's last."""
    values = np.asarray(values, dtype=np.uint64)
    n_bytes = np.ones(len(values), dtype=np.int64)
    for k in range(1, 10):
        n_bytes += values >= np.uint64(1 << (7 * k))
    starts = np.concatenate([[0], np.cumsum(n_bytes)[:-1]]).astype(np.int64)
    out = np.zeros(int(n_bytes.sum()), dtype=np.uint8)
    for k in range(int(n_bytes.max()) if len(values) else 0):
        rows = np.flatnonzero(n_bytes > k)
        group = (values[rows] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (n_bytes[rows] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[rows] + k] = (group | more).astype(np.uint8)
    return out.tobytes()


def csr_sections(name: str, matrix, compact: bool = True) -> dict:
    """A users × items CSR as NAME_lengths (varint row lengths) and NAME_deltas (varint: each row's
    first item, then gaps to the previous one), as gnaq.edge reads them (format 3); not compact:
    NAME_indptr (uint64) and NAME_indices (uint32)."""
    csr = matrix.tocsr()
    csr.sort_indices()
    if not compact:
        return {f"{name}_indptr": csr.indptr.astype("<u8").tobytes(),
                f"{name}_indices": csr.indices.astype("<u4").tobytes()}
    indices = csr.indices.astype(np.int64)
    gaps = indices.copy()
    gaps[1:] -= indices[:-1]
    starts = csr.indptr[:-1][np.diff(csr.indptr) > 0]
    gaps[starts] = indices[starts]  # a row restarts from 0
    return {f"{name}_lengths": varints(np.diff(csr.indptr)), f"{name}_deltas": varints(gaps)}


def pack_mixed(codes, widths) -> bytes:
    """Rows of (n, D) codes, row r packed at widths[r] bits, back to back (row r starts at
    Σ_{r' < r} ⌈D·b_r'/8⌉ bytes)."""
    widths = np.asarray(widths)
    distinct, index = np.unique(widths, return_inverse=True)
    return pack_rows(codes, index, np.repeat(distinct[:, None], codes.shape[1], axis=1))


def pack_rows(codes, group, columns) -> bytes:
    """Rows of (n, D) codes, row r packed with the column widths of its group, columns[group[r]]
    (pack_columns), back to back."""
    row_bytes = -(-columns.sum(1)[group] // 8)
    starts = np.concatenate([[0], np.cumsum(row_bytes)[:-1]]).astype(np.int64)
    out = np.zeros(int(row_bytes.sum()), dtype=np.uint8)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        packed = pack_columns(codes[rows], columns[g])
        out[starts[rows][:, None] + np.arange(packed.shape[1])] = packed
    return out.tobytes()


def encode(header: dict, sections: dict) -> bytes:
    """MAGIC | u16 version | u32 header length | header JSON | sections | u32 CRC32. The version
    is the oldest that can read the kind, so version-1 readers still open the other kinds."""
    layout, offset = {}, 0
    for name, blob in sections.items():
        layout[name] = [offset, len(blob)]
        offset += len(blob)
    # format 7: a column group of 0 bits; format 6: kind "codebook"; format 5: the items' Gram matrix; format 4:
    # column widths and steps; format 3: ids in the header (0..n-1 or labels), mixed widths, varint CSR sections
    needs_v3 = "range" in (header.get("user_ids"), header.get("item_ids")) or "user_labels" in header \
        or "item_labels" in header or "widths" in header or any(k.endswith("_lengths") for k in sections)
    idle_group = any(not sum(row) for row in header.get("column_widths", ()))  # format 7: a group coding nothing
    version = (7 if idle_group
               else 6 if header.get("kind") == "codebook" or "scale_levels" in header or "huffman" in header
               else 5 if "item_gram" in sections
               else 4 if "column_widths" in header
               else 3 if needs_v3
               else 2 if header.get("kind") == "propagate" else 1)
    assert version <= FORMAT_VERSION
    header = dict(header, format=version, sections=layout)
    header_bytes = json.dumps(header, sort_keys=True).encode("utf-8")
    body = MAGIC + struct.pack("<HI", version, len(header_bytes)) + header_bytes + b"".join(sections.values())
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def export_model(model, data, path, history: bool = True, compact: bool = True, users: bool = True,
                 entropy: bool = False, gram: bool = True) -> dict:
    """Write the .gnaq file (a path, atomically, or a binary file object); returns sizes: file
    bytes, bytes per section, and float32_file_bytes, the size of the same file holding float32
    z instead (no graph): what the quantization saves. users=False: items only, entropy: Huffman-coded
    rows, gram=False: no stored Ḡ (build_sections)."""
    header, sections = build_sections(model, data, history, compact, users, entropy, gram)
    blob = encode(header, sections)
    if hasattr(path, "write"):
        path.write(blob)
    else:
        atomic_write_bytes(str(path), lambda f: f.write(blob))
    embedding = sum(len(v) for k, v in sections.items()
                    if k.startswith(("codeword", "scale_", "code_lengths"))
                    or k.split("_", 1)[1] in ("codes", "scales", "scale_index", "float", "huffman"))
    graph = sum(len(v) for k, v in sections.items() if k.startswith("graph_"))
    return {"file_bytes": len(blob), "sections": {k: len(v) for k, v in sections.items()},
            "embedding_bytes": embedding, "graph_bytes": graph,
            "float32_file_bytes": len(blob) - embedding - graph + 4 * (header["n_users"] + model.n_items) * model.dim}
