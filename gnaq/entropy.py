"""Entropy coding of a transform-coded file's code stream (format 6, header "huffman"): one static
canonical Huffman code per node group g and coded column k, over that column's 2^b_gk codes.

    lengths ℓ_gk(c) from the codes' counts over the group's rows (users and items together), ≤ 24 bits
    canonical codes: by (ℓ, c) ascending, code = previous + 1, shifted left at each new length (deflate's)
    stream: each side's rows in order, each row's coded columns in order, every code MSB-first, bits
            packed MSB-first into bytes (the last byte zero-padded)

gnaq.edge decodes the stream once at load back into the packed rows (``_huffman_rows``), so scoring is
unchanged. Saves what the fixed widths waste over the codes' entropy (bench/code_entropy.py: ~10% of
the code bytes of ml-1m's default file).
"""

from __future__ import annotations

import heapq

import numpy as np

from .edge_format import MAX_CODE_LENGTH  # the bound the reader checks


def huffman_lengths(counts, max_length: int = MAX_CODE_LENGTH) -> np.ndarray:
    """(K,) code lengths of a Huffman code for symbol counts (0 for a symbol never seen; a lone symbol
    gets 1 bit), at most ``max_length``: where the tree is deeper, the counts are halved (floored at 1)
    and the code rebuilt."""
    counts = np.asarray(counts, dtype=np.int64)
    while True:
        used = np.flatnonzero(counts > 0)
        lengths = np.zeros(len(counts), dtype=np.int64)
        if len(used) == 1:
            lengths[used] = 1
            return lengths
        heap = [(int(counts[s]), int(s), (int(s),)) for s in used]  # (weight, tie-break, leaves)
        heapq.heapify(heap)
        while len(heap) > 1:
            w1, t1, a = heapq.heappop(heap)
            w2, t2, b = heapq.heappop(heap)
            for s in a + b:
                lengths[s] += 1
            heapq.heappush(heap, (w1 + w2, min(t1, t2), a + b))
        if lengths.max(initial=0) <= max_length:
            return lengths
        counts = np.where(counts > 0, np.maximum(counts // 2, 1), 0)


def canonical_codes(lengths) -> np.ndarray:
    """(K,) code values of the canonical Huffman code with these lengths (symbols by (length, symbol))."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous = 0, 0
    for s in sorted(np.flatnonzero(lengths > 0).tolist(), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - previous
        codes[s], previous = code, int(lengths[s])
        code += 1
    return codes


def code_tables(codes, group, columns) -> list:
    """[[lengths (2^b,) or None for each column k] for each group g] from (N, D) codes and each row's group."""
    tables = []
    for g, widths in enumerate(np.asarray(columns)):
        rows = codes[np.asarray(group) == g]
        tables.append([huffman_lengths(np.bincount(rows[:, k], minlength=1 << int(b))) if b else None
                       for k, b in enumerate(widths.tolist())])
    return tables


def coded_bits(codes, group, columns) -> tuple:
    """((G,) stream bits of each node group's rows, code_lengths section bytes): what encode_rows and
    lengths_section would write for these (N, D) codes, Σ_rows ℓ_gk(code) per group and Σ_gk 2^b_gk
    — the size of a Huffman-coded file's rows without writing them."""
    codes, group = np.asarray(codes, dtype=np.int64), np.asarray(group)
    tables = code_tables(codes, group, columns)
    bits = np.zeros(len(tables), dtype=np.int64)
    for g, table in enumerate(tables):
        rows = codes[group == g]
        bits[g] = sum(int(lengths[rows[:, k]].sum()) for k, lengths in enumerate(table) if lengths is not None)
    return bits, len(lengths_section(tables))


def lengths_section(tables) -> bytes:
    """The code_lengths section: every coded column's 2^b lengths, group by group, one byte each."""
    return b"".join(lengths.astype(np.uint8).tobytes() for group in tables for lengths in group if lengths is not None)


def encode_rows(codes, group, tables) -> bytes:
    """One side's stream: rows in order, coded columns in order, codes MSB-first, packed MSB-first."""
    codes, group = np.asarray(codes, dtype=np.int64), np.asarray(group)
    n, d = codes.shape
    values, lengths = np.zeros((n, d), dtype=np.int64), np.zeros((n, d), dtype=np.int64)
    for g, columns in enumerate(tables):
        rows = np.flatnonzero(group == g)
        for k, table in enumerate(columns):
            if table is not None and len(rows):
                values[rows, k] = canonical_codes(table)[codes[rows, k]]
                lengths[rows, k] = table[codes[rows, k]]
    values, lengths = values.ravel(), lengths.ravel()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    bits = np.zeros(int(lengths.sum()), dtype=np.uint8)
    for j in range(int(lengths.max(initial=0))):
        has = lengths > j
        bits[starts[has] + j] = (values[has] >> (lengths[has] - 1 - j)) & 1
    return np.packbits(bits, bitorder="big").tobytes()
