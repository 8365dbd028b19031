"""Load a packed ``.gnaq`` model and recommend from it with the Python standard library alone.

This file is self-contained: copy it onto a device and ``import edge``. Module level imports
only the standard library; numpy and numba are used when importable (chosen at load time,
overridable with ``backend=``), and all backends return the same top-K (ties → smaller item
index) with scores equal up to float rounding (quantized models: bit-identical, float64).

The file format and its validation live in edge_format.py (copy it beside this file).

Kind "propagate" (format version 2; gnaq's ``quantize=layer0``): the codes and scales are the
layer-0 table Ê⁽⁰⁾ (value sₙ·(c + ½ − 2^(b−1))), and graph_indptr (uint64) + graph_indices
(uint32) hold the training interactions. At load the reader runs LightGCN's propagation once,
    E⁽ˡ⁺¹⁾ = Â E⁽ˡ⁾,  Âᵤᵢ = 1/√(dᵤ dᵢ),  z = Σₗ αₗ E⁽ˡ⁾   (header "layer_weights"),
in float64 (numpy: one bincount per column and layer, 1.1 s for MovieLens-1M; pure Python:
O(L·nnz·D) row sums, 14 s there), and then scores like a float model, ŷᵤᵢ = zᵤ·zᵢ.

Score of a quantized model, groups g of D/G columns, with the odd integers
aₖ = 2cₖ + 1 − 2^b = 2(cₖ + ½ − 2^(b−1)) (so a dequantized value is s·aₖ/2):
    ŷᵤᵢ = Σ_g (¼ sᵤ_g) sᵢ_g · Σ_{k∈g} aᵤₖ aᵢₖ
With column steps the inner sum is Σₖ (m^{g(u)}_k aᵤₖ)(m^{g(i)}_k aᵢₖ) (aₖ = 0 at 0 bits):
still integers. The inner sum is an exact integer on every path, and the float products are taken in the
same order, so all backends return bit-identical scores:
- python: aᵢₖ is linear in the item's bits, so for one user every byte position j of an item
  row gets an integer table Tⱼ[v] = Σ_{bits p set in v} aᵤₖ₍ₚ₎·2^(t₍ₚ₎+1), and
  Σₖ aᵤₖ aᵢₖ = Σ_{j∈g} Tⱼ[rowᵢ[j]] + (1 − 2^b)·Σ_{k∈g} aᵤₖ (2 bits, D = 64: 16 look-ups/item);
- numpy: the same integer tables, gathered for all items at once;
- numba: integer dot products over the item codes unpacked once to int8/int16 (D bytes per
  item, no float embeddings).
"""

import array
import heapq

try:  # inside the gnaq package; on a device, edge_format.py copied beside this file
    from .edge_format import (FORMAT_VERSION, HEADER_FIELDS, KINDS, MAGIC, MAX_CODE_LENGTH, MAX_COLUMN_BITS,  # noqa: F401
                              MAX_COLUMN_STEP, MAX_LAYERS, MAX_VARINT_BYTES, PACK_BITS, EdgeFormatError, _check_csr,
                              _check_finite, _integer, _read, _read_scales, _row_bytes, _typed, _validate_header,
                              index_bits)
except ImportError:
    from edge_format import (FORMAT_VERSION, HEADER_FIELDS, KINDS, MAGIC, MAX_CODE_LENGTH, MAX_COLUMN_BITS,  # noqa: F401
                             MAX_COLUMN_STEP, MAX_LAYERS, MAX_VARINT_BYTES, PACK_BITS, EdgeFormatError, _check_csr,
                             _check_finite, _integer, _read, _read_scales, _row_bytes, _typed, _validate_header,
                             index_bits)

BACKENDS = ("auto", "numba", "numpy", "python")
DEVICE_FILES = ("edge.py", "edge_format.py", "edge_stream.py")  # what a device copies


class UnknownUserError(KeyError):
    """The raw user id is not in the model."""

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown user"


FOLD_IN_NEGATIVES = 100.0  # w of fold_in: the total weight of "every item scores 0" (bench/results/foldin.md)
FOLD_IN_RIDGE = 3.0  # λ of fold_in, relative to the mean squared item norm


class EdgeModel:
    """A loaded .gnaq model. ``backend``: auto | numba | numpy | python."""

    def __init__(self, path, backend: str = "auto"):
        self.path = path if isinstance(path, str) else getattr(path, "name", "<bytes>") \
            if not isinstance(path, (bytes, bytearray)) else "<bytes>"
        self.header, sections = _read(path)
        h = self.header
        self.n_users, self.n_items = h["n_users"], h["n_items"]
        self.kind, self.dim = h["kind"], h["dim"]
        self.bits, self.groups = h.get("bits", 32), h.get("groups", 1)
        self.backend = self._choose_backend(backend)
        # raw ids: the int64 sections, or the header's string labels where the ids were not integers
        # (ids 0..n-1 stay a range: no per-node object, no dictionary)
        self.user_ids, self.item_ids = (
            h.get(f"{side}_labels") or (range(n) if h.get(f"{side}_ids") == "range" else
                                        list(_typed(sections[f"{side}_ids"], "q")))
            for side, n in (("user", self.n_users), ("item", self.n_items)))
        self._user_index, self._item_index = (
            _RangeIndex(len(ids)) if isinstance(ids, range) else {raw: i for i, raw in enumerate(ids)}
            for ids in (self.user_ids, self.item_ids))
        for side, index, n in (("user", self._user_index, self.n_users), ("item", self._item_index, self.n_items)):
            if len(index) != n:
                raise EdgeFormatError(f"{self.path}: section '{side}_ids' repeats an id")
        if self.kind in ("quantized", "propagate"):
            scales = {side: _read_scales(self.path, h, sections, side) for side in ("user", "item")}
        # transform coding (format 4): per node group g, column k at column_widths[g][k] bits, step column_steps[g][k]
        self.column_widths, self.column_steps = h.get("column_widths"), h.get("column_steps")
        # a row's kind: its width (uniform, mixed widths) or its node group (column files)
        self.row_keys = list(range(len(self.column_widths))) if self.column_widths else h.get("widths") or [self.bits]
        if self.kind == "quantized":
            self.row_bytes = self._layout(self.row_keys[0])[2]
            # numba sums in int32 where no dot product can reach 2^31 (|aₖ| ≤ m·(2^b − 1)), else int64
            largest = max(max(row) for row in self.column_steps) if self.column_steps else 1
            self.int32_sums = self.dim * (largest * ((1 << self.bits) - 1)) ** 2 < 2 ** 31
            if h.get("huffman"):  # entropy coded: back to the packed rows, once
                self.user_codes, self.item_codes = self._huffman_rows(sections)
            else:
                self.user_codes = bytes(sections["user_codes"])
                self.item_codes = bytes(sections["item_codes"])
            self._read_widths(sections)
            self.user_scales, self.item_scales = scales["user"], scales["item"]  # float32 arrays
        elif self.kind == "propagate":
            self.user_float, self.item_float = self._propagate(sections, scales)
        elif self.kind == "codebook":
            self.subspace_dims, self.codebooks = h["subspace_dims"], h["codebooks"]
            self.subspaces = len(self.subspace_dims)
            self.subspace_starts = [sum(self.subspace_dims[:m]) for m in range(self.subspaces + 1)]
            self.row_bytes = _row_bytes(self.subspaces, self.bits)
            self.user_codes, self.item_codes = bytes(sections["user_codes"]), bytes(sections["item_codes"])
            self.codewords = _typed(sections["codewords"], "b")  # codebook c, subspace m, codeword k, column j
            self.codeword_scales = list(_typed(sections["codeword_scales"], "f"))  # t^c_m at c·M + m
            _check_finite(self.path, "codeword_scales", self.codeword_scales)
        else:
            self.user_float = _typed(sections["user_float"], "f")
            self.item_float = _typed(sections["item_float"], "f")
            _check_finite(self.path, "user_float", self.user_float)
            _check_finite(self.path, "item_float", self.item_float)
        self.item_gram = None  # Ḡ (dim lists of dim floats), from the file or computed on first fold-in
        if "item_gram" in sections:
            lower = _typed(sections["item_gram"], "f")
            _check_finite(self.path, "item_gram", lower)
            self.item_gram = _symmetric(lower, self.dim)
        self.has_history = "history_indptr" in sections or "history_lengths" in sections
        if self.has_history:
            self.history_indptr, self.history_indices = self._read_csr(sections, "history")
        self._np_cache = None

    # ---- CSR sections: raw (uint64 indptr, uint32 indices) or delta + varint ----------------
    def _read_csr(self, sections, name):
        """(indptr 'Q', indices 'I') of a per-user CSR of item indices, checked.

        Varint encoding: ``NAME_lengths`` holds n_users LEB128 varints (row lengths) and
        ``NAME_deltas`` one varint per entry: the first item of a row, then gaps to the previous.
        """
        if f"{name}_indptr" in sections:
            indptr, indices = _typed(sections[f"{name}_indptr"], "Q"), _typed(sections[f"{name}_indices"], "I")
        else:
            decode = _fast("numpy").varints if self.backend != "python" else _varints_python
            lengths = decode(bytes(sections[f"{name}_lengths"]), self.path, f"{name}_lengths")
            deltas = decode(bytes(sections[f"{name}_deltas"]), self.path, f"{name}_deltas")
            total = int(sum(lengths) if self.backend == "python" else lengths.sum())
            if len(lengths) != self.n_users or total != len(deltas):
                raise EdgeFormatError(f"{self.path}: section '{name}_lengths' does not describe {self.n_users} rows "
                                      f"of the {len(deltas)} entries in '{name}_deltas'")
            undelta = _fast("numpy").undelta if self.backend != "python" else _undelta
            indptr, indices = undelta(lengths, deltas, self.path, name, self.n_items)
        _check_csr(self.path, name, indptr, indices, self.n_items)
        return indptr, indices

    # ---- entropy-coded rows (format 6, header "huffman"; gnaq/entropy.py writes them) ----------
    def _huffman_rows(self, sections):
        """(user rows, item rows) as the packed codes sections would hold them, from the code_lengths
        section (each coded column's 2^b code lengths, group by group) and each side's stream: rows in
        order, coded columns in order, canonical Huffman codes MSB-first. Refuses lengths over
        MAX_CODE_LENGTH, an over-full code (Kraft Σ 2^−ℓ > 1), a code no symbol has, a stream that ends
        inside a row or runs on past the last one."""
        columns, lengths = self.column_widths, bytes(sections["code_lengths"])
        decoders, p = [], 0
        for widths in columns:
            group = []
            for b in widths:
                table = lengths[p:p + (1 << b)] if b else b""
                p += len(table)
                if table and (max(table) > MAX_CODE_LENGTH
                              or sum(1 << (MAX_CODE_LENGTH - n) for n in table if n) > 1 << MAX_CODE_LENGTH):
                    raise EdgeFormatError(f"{self.path}: section 'code_lengths' holds an invalid Huffman code")
                counts = [0] * (MAX_CODE_LENGTH + 1)
                for n in table:
                    counts[n] += 1
                group.append((counts, [s for _, s in sorted((n, s) for s, n in enumerate(table) if n)]) if b else None)
            decoders.append(group)
        return [_decode_rows(self.path, f"{side}_huffman", bytes(sections[f"{side}_huffman"]),
                             self._width_index(sections, side, n), columns, decoders)
                for side, n in (("user", self.n_users), ("item", self.n_items))]

    # ---- mixed widths: nodes of several widths, each row packed at its node's width ----------
    def _width_index(self, sections, side, n):
        """Each of one side's n nodes' index into ``row_keys`` (its width, or its node group in column
        files): the SIDE_width_index section, checked; all 0 with one key."""
        keys = self.row_keys
        if len(keys) == 1:
            return [0] * n
        index = _unpack_index(bytes(sections[f"{side}_width_index"]), n, index_bits(len(keys)))
        if any(i >= len(keys) for i in index):
            raise EdgeFormatError(f"{self.path}: section '{side}_width_index' names a width or group beyond "
                                  f"'{'column_widths' if self.column_widths else 'widths'}'")
        return index

    def _node_widths(self, sections, side, n, codes):
        """(keys, starts) of one side's n rows: each node's row key (its width, or its node group in
        column files; uniform: ``bits``) and the byte where its packed row begins in ``codes``; the
        codes section must be exactly that long."""
        keys = self.row_keys
        row_bytes = {key: self._layout(key)[2] for key in keys}
        if len(keys) == 1:
            rb = row_bytes[keys[0]]
            return [keys[0]] * n, list(range(0, n * rb, rb))
        node_widths = [keys[i] for i in self._width_index(sections, side, n)]
        starts, total = [0] * n, 0
        for r, b in enumerate(node_widths):
            starts[r] = total
            total += row_bytes[b]
        if total != len(codes):
            raise EdgeFormatError(f"{self.path}: section '{side}_codes' has {len(codes)} bytes; "
                                  f"the node widths imply {total}")
        return node_widths, starts

    def _read_widths(self, sections):
        """Per-node widths (header "widths" + packed width-index sections) and per-width item groups.

        Uniform files: one group of every item at ``bits``. Mixed files: row r of a side starts
        at Σ_{r' < r} ⌈D·b_r'/8⌉; the codes section must be exactly that long.
        """
        keys = self.row_keys
        self.user_width = self.item_width = None
        if len(keys) == 1:
            self.item_groups = [(keys[0], None, self.item_codes)]
            return
        self.user_width, self.user_start = self._node_widths(sections, "user", self.n_users, self.user_codes)
        item_widths, item_starts = self._node_widths(sections, "item", self.n_items, self.item_codes)
        self.item_width, self.item_start = item_widths, item_starts
        self.item_groups = []
        for b in keys:
            rb = self._layout(b)[2]
            items = [i for i, w in enumerate(item_widths) if w == b]
            blob = b"".join(self.item_codes[item_starts[i]:item_starts[i] + rb] for i in items)
            self.item_groups.append((b, items, blob))

    # ---- kind "propagate": z from the layer-0 table and the training graph, once --------
    def _propagate(self, sections, scales):
        """z from the layer-0 codes (each row at its node's width) and the (already checked) scales
        {"user": …, "item": …}: Ê⁽⁰⁾ₙ = sₙ·(c + ½ − 2^(bₙ−1)), then z = Σₗ αₗ Âˡ Ê⁽⁰⁾."""
        h, d = self.header, self.dim
        indptr, indices = self._read_csr(sections, "graph")
        tables = []
        for side, n in (("user", self.n_users), ("item", self.n_items)):
            codes, side_scales = bytes(sections[f"{side}_codes"]), scales[side]
            node_widths, starts = self._node_widths(sections, side, n, codes)
            if self.backend != "python":
                tables.append(_fast("numpy").dequantize(codes, node_widths, starts, side_scales, d))
                continue
            table = array.array("d", bytes(8 * n * d))
            for r in range(n):
                s, b = side_scales[r], node_widths[r]
                offset = 0.5 - 2 ** (b - 1)
                row = _unpack_at(codes, starts[r], d, b)
                table[r * d:(r + 1) * d] = array.array("d", (s * (c + offset) for c in row))
            tables.append(table)
        if self.backend == "python":
            return _propagate_python(tables, indptr, indices, d, h["layer_weights"])
        spread = _fast("numba").kernels()["spread"] if self.backend == "numba" else None
        return _fast("numpy").propagate(tables, indptr, indices, d, h["layer_weights"], spread)

    # ---- backend selection -----------------------------------------------------------
    @staticmethod
    def _choose_backend(name):
        """The first of numba, numpy (or just the one named) whose modules import — the library and
        this reader's twin of it (edge_numba.py, edge_numpy.py); else python."""
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
        needs = {"numba": ("numpy", "numba"), "numpy": ("numpy",)}
        for candidate in (("numba", "numpy") if name == "auto" else (name,) if name in needs else ()):
            try:
                for module in needs[candidate]:
                    __import__(module)
                for twin in needs[candidate]:  # edge_numpy.py / edge_numba.py: copied beside this file, or not
                    _fast(twin)
                return candidate
            except ImportError:
                if name == candidate:
                    raise RuntimeError(f"backend {name!r} asked for, but {'/'.join(needs[name])} "
                                       "cannot be imported") from None
        return "python"

    def user_from_text(self, text):
        """The raw user id typed as ``text`` (a command line, a form): the string itself where the
        file holds it, else its integer where the file holds that."""
        return _id_from_text(text, self._user_index)

    def item_from_text(self, text):
        """The raw item id typed as ``text`` (user_from_text's rule)."""
        return _id_from_text(text, self._item_index)

    # ---- per-user tables ---------------------------------------------------------------
    def user_index(self, user_raw_id) -> int:
        try:
            return self._user_index[user_raw_id]
        except KeyError:
            raise UnknownUserError(f"user {user_raw_id!r} is not in {self.path} "
                                   f"({self.n_users} users)") from None

    def _layout(self, key):
        """(bit offsets, widths, row bytes) of a row's columns: column k at b = key bits from bit k·b,
        or, in column files, at column_widths[g][k] bits from Σ_{k'<k} column_widths[g][k'], g = key."""
        widths = self.column_widths[key] if self.column_widths else [key] * self.dim
        offsets, total = [], 0
        for w in widths:
            offsets.append(total)
            total += w
        return offsets, widths, -(-total // 8)

    def _user_codes(self, u):
        """The user's codes as ints (pure Python unpack of one row) and the user's width."""
        return self._row_codes(self.user_codes, self.user_width, self.user_width and self.user_start, u)

    def _row_codes(self, codes, node_keys, starts, r):
        """Row r's codes as ints and its key (width or node group), from one side's codes section."""
        b = node_keys[r] if node_keys else self.row_keys[0]
        start = starts[r] if node_keys else r * self.row_bytes
        return self._unpack_row(codes[start:start + self._layout(b)[2]], b), b

    def _unpack_row(self, row, key):
        """The codes (ints) of one packed row of row key ``key`` (LSB-first bitstream)."""
        offsets, widths, _ = self._layout(key)
        stream = int.from_bytes(row, "little")
        return [(stream >> o) & ((1 << w) - 1) for o, w in zip(offsets, widths)]

    def _dequantized(self, codes, key, scales):
        """A row's dim floats s_g·m_k·aₖ/2 from its codes, row key and G scales (0 at 0 bits)."""
        _, widths, _ = self._layout(key)
        steps = self.column_steps[key] if self.column_steps else [1] * self.dim
        per_group = self.dim // self.groups
        return [0.5 * scales[k // per_group] * m * (2 * c + 1 - (1 << w)) if w else 0.0
                for k, (c, w, m) in enumerate(zip(codes, widths, steps))]

    def item_vector(self, i):
        """z of item row i as a list of dim floats (see ``_vector``)."""
        return self._vector("item", i)

    def user_vector(self, u):
        """z of user row u as a list of dim floats (see ``_vector``)."""
        return self._vector("user", u)

    def _vector(self, side, r):
        """Row r of one side as dim floats: the float row, or the dequantized codes
        s_g·m_k·aₖ/2 (m_k = 1 without column steps, 0 at 0 bits). Pure Python, one row."""
        d = self.dim
        if self.kind == "codebook":
            words, weights = self._codebook_row(side, r)
            out = []
            for m in range(self.subspaces):
                out.extend(weights[m] * q for q in words[self.subspace_starts[m]:self.subspace_starts[m + 1]])
            return out + [0.0] * (d - len(out))  # (columns past Σ p_m are not coded)
        if self.kind != "quantized":
            return [float(v) for v in getattr(self, side + "_float")[r * d:(r + 1) * d]]
        keys = getattr(self, side + "_width")
        codes, key = self._row_codes(getattr(self, side + "_codes"), keys, keys and getattr(self, side + "_start"), r)
        G = self.groups
        return self._dequantized(codes, key, getattr(self, side + "_scales")[r * G:(r + 1) * G])

    def _user_terms(self, u):
        """(aᵤ as ints — times the user group's steps m_k in column files, 0 at 0 bits —, ¼·sᵤ_g per
        group): all the item scan needs from the user."""
        codes, key = self._user_codes(u)
        _, widths, _ = self._layout(key)
        a_user = [2 * c + 1 - (1 << w) if w else 0 for c, w in zip(codes, widths)]
        if self.column_steps:
            a_user = [a * m for a, m in zip(a_user, self.column_steps[key])]
        G = self.groups
        return a_user, [0.25 * s for s in self.user_scales[u * G:(u + 1) * G]]

    def _tables(self, a_user, b):
        """For items of width b: integer tables Tⱼ[v] (doubling: T[v + 2^p] = T[v] + w[p]) and
        constants per group, Σ_{k∈g} (1 − 2^bₖ)·aᵤₖ."""
        G = self.groups
        per_group = self.dim // G
        offsets, widths, row_bytes = self._layout(b)
        weight = [0] * (row_bytes * 8)
        consts = [0] * G
        if self.column_steps:  # items of group b: their steps m_k multiply in (0 at 0 bits)
            a_user = [a * m for a, m in zip(a_user, self.column_steps[b])]
        for k, a in enumerate(a_user):
            consts[k // per_group] += (1 - (1 << widths[k])) * a
            for t in range(widths[k]):
                weight[offsets[k] + t] = a * (2 << t)  # (exact for ints; a float user vector works too)
        tables = []
        for j in range(row_bytes):
            table = [0] * 256
            for p in range(8):
                w, size = weight[8 * j + p], 1 << p
                for v in range(size):
                    table[v + size] = table[v] + w
            tables.append(table)
        return tables, consts

    # ---- kind "codebook": M codeword indices a row ------------------------------------------
    def _codeword(self, c, m, k):
        """Codeword k of subspace m in codebook c: p_m ints in [−128, 127], at byte
        K·(c·Σp + Σ_{m'<m} p_m') + k·p_m of the codewords section (K = 2^bits)."""
        K, p, starts = 1 << self.bits, self.subspace_dims[m], self.subspace_starts
        start = K * (c * starts[-1] + starts[m]) + k * p
        return self.codewords[start:start + p]

    def _codebook_row(self, side, r):
        """(the Σp_m ints of row r's codewords, subspace by subspace; its codebook's M scales t^c_m):
        the row is z = [t^c_m · q^c_m[a_m]]ₘ (then 0s), c = 0 for users, the last codebook for items."""
        c = 0 if side == "user" else self.codebooks - 1
        M = self.subspaces
        index = _unpack_at(getattr(self, side + "_codes"), r * self.row_bytes, M, self.bits)
        words = []
        for m in range(M):
            words.extend(self._codeword(c, m, index[m]))
        return words, self.codeword_scales[c * M:(c + 1) * M]

    def _codebook_tables(self, vector, weights):
        """(T, w): T[m][k] = Σⱼ v_{m·p+j}·q^I_m[k][j] (j ascending) over the items' codebook I, and
        w[m] = weights[m]·t^I_m, so item i scores Σₘ T[m][aᵢₘ]·w[m] (m ascending, from 0.0).
        A user's codeword ints with its scales t^U_m give integer tables: exact on every path."""
        K, items = 1 << self.bits, self.codebooks - 1
        tables = []
        for m in range(self.subspaces):
            v = vector[self.subspace_starts[m]:self.subspace_starts[m + 1]]
            row = []
            for k in range(K):
                total = 0
                for a, q in zip(v, self._codeword(items, m, k)):
                    total += a * q
                row.append(total)
            tables.append(row)
        return tables, self._codebook_weights(weights)

    def _codebook_weights(self, weights):
        """w[m] = weights[m]·t^I_m over the items' codebook I: an item's float weight of T[m]."""
        M, items = self.subspaces, self.codebooks - 1
        return [weights[m] * self.codeword_scales[items * M + m] for m in range(M)]

    def _codebook_scores(self, vector, weights):
        """Σₘ T[m][aᵢₘ]·w[m] for every item (``_codebook_tables``): M look-ups an item."""
        if self.backend != "python":  # (numba: the numpy gathers; M of them per query)
            return _fast("numpy").codebook_scores(self, vector, weights)
        tables, w = self._codebook_tables(vector, weights)
        M, b, rb, codes = self.subspaces, self.bits, self.row_bytes, self.item_codes
        out = [0.0] * self.n_items
        for i in range(self.n_items):
            index = codes[i * rb:(i + 1) * rb] if b == 8 else _unpack_at(codes, i * rb, M, b)
            score = 0.0
            for m in range(M):
                score += tables[m][index[m]] * w[m]
            out[i] = score
        return out

    # ---- scoring -----------------------------------------------------------------------
    def _scores_all(self, u):
        """Scores of user row u against every item, as a list (python) or numpy array."""
        if self.kind in ("float", "propagate"):
            return self._float_scores(u)
        if self.kind == "codebook":
            return self._codebook_scores(*self._codebook_row("user", u))
        a_user, user_quarter = self._user_terms(u)
        if self.backend == "numba":
            return _fast("numba").scores(self, a_user, user_quarter)
        if self.backend == "python":
            return self._scores_python(a_user, user_quarter)
        return _fast("numpy").scores(self, a_user, user_quarter)

    def _scores_python(self, a_user, user_quarter):
        G, scales = self.groups, self.item_scales
        out = [0.0] * self.n_items
        for b, items, codes in self.item_groups:  # one group per width: its rows packed back to back
            tables, consts = self._tables(a_user, b)
            rb = self._layout(b)[2]
            bytes_per_group = rb // G
            for n, i in enumerate(items if items is not None else range(self.n_items)):
                out[i] = _packed_score(codes[n * rb:(n + 1) * rb], tables, consts, user_quarter, scales, i * G,
                                       bytes_per_group)
        return out

    def _float_scores(self, u):
        d = self.dim
        if self.backend == "python":
            return self._float_dots(self.user_float[u * d:(u + 1) * d])
        return _fast("numpy").float_scores(self, u)

    def _float_dots(self, z):
        """z·zᵢ for every row zᵢ of a float file's items, one running sum per item (pure Python)."""
        d, items = self.dim, self.item_float
        out = [0.0] * self.n_items
        for i in range(self.n_items):
            total = 0.0
            for a, b in zip(z, items[i * d:(i + 1) * d]):
                total += a * b
            out[i] = total
        return out

    # ---- any vector against every item: similar items, folded-in users ---------------------
    def _vector_scores(self, z):
        """z·zᵢ for every item i, z a list of dim floats. Quantized files score in the packed domain
        with float tables (the user's a replaced by z, ¼sᵤ by ½: zᵢₖ = ½sᵢ·m_k·aᵢₖ); the numba
        backend uses the numpy path here (its kernel sums integers)."""
        if self.kind == "codebook":
            return self._codebook_scores(z, [1.0] * self.subspaces)
        if self.kind == "quantized":
            if self.backend == "python":
                return self._scores_python(z, [0.5] * self.groups)
            return _fast("numpy").scores(self, z, [0.5] * self.groups)
        if self.backend == "python":
            return self._float_dots(z)
        return _fast("numpy").vector_scores(self, z)

    def _item_norms(self):
        """‖zᵢ‖ for every item, computed once."""
        if getattr(self, "_norms", None) is None:
            if self.backend == "python":
                self._norms = [sum(v * v for v in self.item_vector(i)) ** 0.5 for i in range(self.n_items)]
            else:
                self._norms = _fast("numpy").norms(self.item_vectors())
        return self._norms

    def item_row(self, item_raw_id) -> int:
        try:
            return self._item_index[item_raw_id]
        except KeyError:
            raise KeyError(f"item {item_raw_id!r} is not in {self.path} ({self.n_items} items)") from None

    def similar_items(self, item_raw_id, k: int = 10):
        """Top-k [(item_raw_id, cosine)] of zᵢ against every item, the item itself included (first)."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        i = self.item_row(item_raw_id)
        query = self.item_vector(i)
        norm = sum(v * v for v in query) ** 0.5
        scores, norms = self._vector_scores(query), self._item_norms()
        cosines = [s / (norm * n) if norm and n else 0.0 for s, n in zip(scores, norms)]
        cosines[i] = 1.0 if norm else 0.0  # itself first, exactly 1
        return [(self.item_ids[j], float(c)) for c, j in _top_k_python(cosines, k, ())]

    def gram(self):
        """Ḡ = ZᵀZ / n_items (dim × dim lists): the file's item_gram section, else computed once from
        the item rows (pure Python, O(n_items·dim²))."""
        if self.item_gram is None:
            self.item_gram = _mean_gram((self.item_vector(i) for i in range(self.n_items)), self.dim, self.n_items)
        return self.item_gram

    def fold_in(self, item_raw_ids, negatives: float = FOLD_IN_NEGATIVES, regularization: float = FOLD_IN_RIDGE):
        """A user's z from their items H alone (no user row needed), implicit ALS's fold-in:
            z = (w·Ḡ + Z_Hᵀ Z_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1,   Ḡ = ZᵀZ / n_items,
        the least-squares fit of a score of 1 on each liked item and 0 on every item (weight
        w / n_items each), ridge λ relative to the mean squared item norm tr(Ḡ); d × d Cholesky,
        pure Python. w = negatives, λ = regularization (measured: bench/results/foldin.md).
        An empty H gives the zero vector."""
        rows = [self.item_row(raw) for raw in item_raw_ids]
        if self.backend != "python":
            return _fast("numpy").fold_in(self, rows, negatives, regularization)
        d = self.dim
        mean_gram = self.gram()
        ridge = regularization * sum(mean_gram[a][a] for a in range(d))
        gram = [[negatives * mean_gram[a][b] for b in range(a + 1)] for a in range(d)]
        return _solve_fold_in(gram, ridge, (self.item_vector(i) for i in rows))

    def recommend_for_items(self, item_raw_ids, k: int = 10, exclude=()):
        """Top-k [(item_raw_id, score)] for a user known only by their items (``fold_in``), those
        items and the raw ids in ``exclude`` left out; best first, ties → smaller item index."""
        if not isinstance(k, int) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        liked = list(item_raw_ids)
        skip = set(self.item_row(raw) for raw in liked)
        for raw in exclude:
            skip.add(self.item_row(raw))
        scores = self._vector_scores(self.fold_in(liked))
        return [(self.item_ids[i], float(s)) for s, i in _top_k_python(scores, k, skip)]

    # ---- public API ----------------------------------------------------------------------
    def item_vectors(self):
        """(n_items, dim) float64 numpy array of the scored item vectors (dequantized: s·m·a/2). Needs numpy."""
        return _fast("numpy").item_vectors(self)

    def user_vectors(self):
        """(n_users, dim) float64 numpy array of the users' z (as ``user_vector``). Needs numpy."""
        return _fast("numpy").user_vectors(self)

    def history_csr(self):
        """The file's history as (indptr, indices) lists of ints, or None without one."""
        if not self.has_history:
            return None
        return list(self.history_indptr), list(self.history_indices)

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
        if self.backend == "python":
            top = _top_k_python(scores, k, set(self.seen_items(user_raw_id)) if exclude_seen else ())
        elif self.backend == "numba":
            top = _fast("numba").top_k(self, scores, u, k, exclude_seen)
        else:
            fast = _fast("numpy")
            top = fast.top_k(scores, k, fast.seen_array(self, u) if exclude_seen else None)
        return [(self.item_ids[i], float(s)) for s, i in top]

def _fast(name):
    """The numpy or numba module beside this one (gnaq.edge_numpy / edge_numba, or, copied onto a
    device, edge_numpy.py / edge_numba.py next to edge.py), imported on first use."""
    module = "edge_" + name
    if module not in _FAST:
        package = __name__.rpartition(".")[0]
        _FAST[module] = __import__(package + "." + module, None, None, [module]) if package else __import__(module)
    return _FAST[module]


_FAST = {}


def _symmetric(lower, d):
    """d × d lists of lists from a row-major lower triangle (d(d+1)/2 values)."""
    out = [[0.0] * d for _ in range(d)]
    p = 0
    for a in range(d):
        for b in range(a + 1):
            out[a][b] = out[b][a] = float(lower[p])
            p += 1
    return out


def _solve_fold_in(gram, ridge, vectors):
    """z of the fold-in: (gram + Σ v vᵀ + ridge·I) z = Σ v over the liked items' vectors, ``gram`` the
    lower triangle w·Ḡ (rows of a + 1 values: lists or arrays, updated in place)."""
    d = len(gram)
    rhs = [0.0] * d
    for v in vectors:
        for a in range(d):
            va = v[a]
            if va == 0.0:
                continue
            rhs[a] += va
            row = gram[a]
            for b in range(a + 1):
                row[b] += va * v[b]
    for a in range(d):
        gram[a][a] += ridge if ridge > 0 else 1e-12
    return _cholesky_solve(gram, rhs)


def _cholesky_solve(a, b):
    """x with A x = b for a symmetric positive definite A given by its lower triangle (lists of
    lists, overwritten by L with A = L Lᵀ); forward then back substitution."""
    d = len(b)
    for j in range(d):
        row = a[j]
        pivot = row[j] - sum(row[t] * row[t] for t in range(j))
        if not pivot > 0:
            raise ValueError("fold-in: the regularised Gram matrix is not positive definite")
        row[j] = pivot ** 0.5
        for i in range(j + 1, d):
            other = a[i]
            other[j] = (other[j] - sum(other[t] * row[t] for t in range(j))) / row[j]
    y = [0.0] * d
    for i in range(d):
        y[i] = (b[i] - sum(a[i][t] * y[t] for t in range(i))) / a[i][i]
    x = [0.0] * d
    for i in range(d - 1, -1, -1):
        x[i] = (y[i] - sum(a[t][i] * x[t] for t in range(i + 1, d))) / a[i][i]
    return x


class _RangeIndex:
    """The row of a raw id when the ids are 0..n−1: the id itself (a dictionary's ``in`` and ``[]``)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __contains__(self, raw):  # what a dictionary of ints finds: ints, and numbers equal to one
        if isinstance(raw, (bool, str, bytes)):
            return False
        try:
            return raw == int(raw) and 0 <= raw < self.n
        except (TypeError, ValueError, OverflowError):
            return False

    def __getitem__(self, raw):
        if raw in self:
            return int(raw)
        raise KeyError(raw)


def _id_from_text(text, index):
    text = text.strip()
    if text in index:
        return text
    try:
        number = int(text)
    except ValueError:
        return text
    return number if number in index else text


def _top_k_python(scores, k, seen):
    """Top-k (score, index) pairs of a list of scores, best first, ties → smaller index, indices in
    ``seen`` skipped (``_top_k_pairs``)."""
    return _top_k_pairs(((s, i) for i, s in enumerate(scores) if i not in seen), k)


def _top_k_pairs(pairs, k):
    """Top-k of an iterable of (score, index), best first, ties → smaller index: a min-heap of the
    k best so far keyed (score, −index), so its root is the one to displace (heappush/heappop
    only: all MicroPython's heapq has). The pairs may be streamed: it holds k of them."""
    heap = []
    for s, i in pairs:
        if len(heap) < k:
            heapq.heappush(heap, (s, -i))
        elif (s, -i) > heap[0]:
            heapq.heappop(heap)
            heapq.heappush(heap, (s, -i))
    out = []
    while heap:
        s, negative = heapq.heappop(heap)
        out.append((s, -negative))
    out.reverse()
    return out


def _packed_score(row, tables, consts, quarter, scales, base, per_group):
    """One item's score from its packed row: Σ_g (consts[g] + Σ_{j∈g} tables[j][row[j]])·quarter[g]·
    scales[base + g], in that order (so every path gives the same float)."""
    score = 0.0
    for g in range(len(consts)):
        total = consts[g]
        for j in range(g * per_group, (g + 1) * per_group):
            total += tables[j][row[j]]
        score += total * quarter[g] * scales[base + g]
    return score


def _mean_gram(vectors, d, n):
    """Ḡ = Σ v vᵀ / n over an iterable of n vectors of d floats, as d × d lists (pure Python)."""
    gram = [[0.0] * d for _ in range(d)]
    for v in vectors:
        for a in range(d):
            if v[a]:
                row, va = gram[a], v[a]
                for b in range(a + 1):
                    row[b] += va * v[b]
    n = max(n, 1)
    return _symmetric([gram[a][b] / n for a in range(d) for b in range(a + 1)], d)


def _decode_rows(path, name, blob, keys, columns, decoders):
    """Packed rows (LSB-first, ⌈Σ b/8⌉ bytes each) of the rows whose groups are ``keys``, decoded from a
    canonical Huffman stream (MSB-first; decoders[g][k] = (count per length, symbols by code))."""
    out, position, end = bytearray(), 0, 8 * len(blob)
    for g in keys:
        stream, offset = 0, 0
        for b, decoder in zip(columns[g], decoders[g]):
            if b:
                counts, symbols = decoder
                code = first = index = 0
                for length in range(1, MAX_CODE_LENGTH + 1):
                    if position >= end:
                        raise EdgeFormatError(f"{path}: section {name!r} ends inside a row")
                    code |= (blob[position >> 3] >> (7 - (position & 7))) & 1
                    position += 1
                    count = counts[length]
                    if code - count < first:
                        stream |= symbols[index + code - first] << offset
                        break
                    index += count
                    first = (first + count) << 1
                    code <<= 1
                else:
                    raise EdgeFormatError(f"{path}: section {name!r} holds a code no symbol has")
            offset += b
        out += stream.to_bytes(-(-offset // 8), "little")
    if end - position >= 8:
        raise EdgeFormatError(f"{path}: section {name!r} runs on past its last row")
    return bytes(out)


def _unpack_at(codes, start, d, b):
    """d codes of b bits from the row that starts at byte ``start`` (LSB-first bitstream)."""
    stream, mask = int.from_bytes(codes[start:start + _row_bytes(d, b)], "little"), (1 << b) - 1
    return [(stream >> (k * b)) & mask for k in range(d)]


def _unpack_index(blob, n, b):
    """n codes of b ∈ {1, 2, 4} bits, LSB-first, byte by byte (_unpack_at on one big integer would
    take O(n²) time and memory for a section of n nodes)."""
    per_byte, mask = 8 // b, (1 << b) - 1
    out = []
    for byte in blob:
        for t in range(per_byte):
            out.append((byte >> (t * b)) & mask)
    return out[:n]


def _varints_python(blob, path, name):
    """LEB128 varints (7 bits per byte, low first; high bit = more) as a list of ints."""
    out, value, shift = [], 0, 0
    for byte in blob:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            out.append(value)
            value = shift = 0
        else:
            shift += 7
            if shift >= 7 * MAX_VARINT_BYTES:
                raise EdgeFormatError(f"{path}: section {name!r} holds a varint longer than {MAX_VARINT_BYTES} bytes")
    if shift:
        raise EdgeFormatError(f"{path}: section {name!r} ends inside a varint")
    return out


def _undelta(lengths, deltas, path, name, n_cols):
    """indptr from row lengths; indices as running sums of gaps restarted at each row."""
    indptr, indices = array.array("Q", [0]), array.array("I")
    p = 0
    for length in lengths:
        total = 0
        for gap in deltas[p:p + length]:
            total += gap
            if total >= n_cols:
                raise EdgeFormatError(f"{path}: section '{name}_deltas' runs past n_items ({n_cols})")
            indices.append(total)
        p += length
        indptr.append(p)
    return indptr, indices


def _propagate_python(tables, indptr, indices, d, weights):
    """z = Σₗ αₗ Âˡ E⁽⁰⁾ on flat row-major float arrays (users, items): each node's row is a sum
    over its CSR neighbours (the item side through a transposed CSR built once)."""
    users, items = tables
    n_users, n_items = len(users) // d, len(items) // d
    deg_item = [0] * n_items
    for i in indices:
        deg_item[i] += 1
    w_user = [0.0] * len(indices)  # edge weights 1/√(dᵤ dᵢ) in user-major order
    for u in range(n_users):
        start, stop = indptr[u], indptr[u + 1]
        for e in range(start, stop):
            w_user[e] = 1.0 / ((stop - start) * deg_item[indices[e]]) ** 0.5
    item_ptr = [0] * (n_items + 1)  # transpose by counting sort: item-major users and weights
    for i in range(n_items):
        item_ptr[i + 1] = item_ptr[i] + deg_item[i]
    fill, item_users, w_item = item_ptr[:-1], [0] * len(indices), [0.0] * len(indices)
    for u in range(n_users):
        for e in range(indptr[u], indptr[u + 1]):
            slot = fill[indices[e]]
            item_users[slot], w_item[slot] = u, w_user[e]
            fill[indices[e]] = slot + 1

    def spread(src, n, ptr, neighbours, w):  # out[r] = Σ_e w[e]·src[neighbours[e]]
        out = array.array("d", bytes(8 * n * d))
        for r in range(n):
            if ptr[r] == ptr[r + 1]:
                continue
            acc = [0.0] * d
            for e in range(ptr[r], ptr[r + 1]):
                we, b = w[e], neighbours[e] * d
                acc = [a + we * x for a, x in zip(acc, src[b:b + d])]
            out[r * d:(r + 1) * d] = array.array("d", acc)
        return out

    z = [array.array("d", (weights[0] * v for v in t)) for t in (users, items)]
    for alpha in weights[1:]:
        users, items = (spread(items, n_users, indptr, indices, w_user),
                        spread(users, n_items, item_ptr, item_users, w_item))
        for out, layer in zip(z, (users, items)):
            for j, v in enumerate(layer):
                out[j] += alpha * v
    return z


LOAD_FACTOR = 16  # heap a whole load takes, in file bytes (the pure-Python path's lists and tables)


def load(path, backend: str = "auto", stream=None):
    """Open a .gnaq file. backend: auto (numba, else numpy, else python) | numba | numpy | python.

    stream: True reads rows from the file as queries need them (edge_stream.open_model: graph-free
    quantized files, in a microcontroller's heap); False loads the file whole; None (the default)
    streams where LOAD_FACTOR times the file's bytes exceed the free heap (MicroPython's
    ``gc.mem_free()``; CPython always loads whole), so the same two lines work on every board."""
    asked = stream
    if stream is None:
        stream = _short_of_heap(path)
    if stream:
        try:
            from . import edge_stream
        except ImportError:  # on a device, edge_stream.py beside this file
            import edge_stream
        try:
            return edge_stream.open_model(path)
        except edge_stream.NotStreamable:  # a kind it cannot stream: loaded whole, unless streaming was asked for
            if asked:
                raise
    return EdgeModel(path, backend)


def _short_of_heap(path) -> bool:
    import gc
    free = getattr(gc, "mem_free", None)
    if free is None or not isinstance(path, str):
        return False
    import os
    gc.collect()
    return LOAD_FACTOR * os.stat(path)[6] > free()
