"""The numpy twins of gnaq.edge's pure-Python paths (picked at load when numpy imports): the same
integer tables gathered for every item at once, vectorised varint and CSR decoding, unpacking,
dequantization and propagation. Each function names the pure-Python code it mirrors, which stays
its oracle in the tests (bit-identical on integer sums). Not needed on a device without numpy.
"""

import array

import numpy as np

try:
    from .edge import EdgeFormatError, MAX_VARINT_BYTES, _row_bytes
except ImportError:  # copied beside edge.py on a device
    from edge import EdgeFormatError, MAX_VARINT_BYTES, _row_bytes


def cached(model):
    """The file's item codes (per width or node group) and scales as numpy arrays, built once."""
    if model._np_cache is None:
        if model.kind == "codebook":  # indices (n, M) per side; codewords: per subspace (C, K, p_m) int64
            M, b, K, starts = model.subspaces, model.bits, 1 << model.bits, model.subspace_starts
            model._np_cache = {
                side: unpack(np.frombuffer(getattr(model, side + "_codes"), dtype=np.uint8).reshape(n, model.row_bytes),
                             M, b).astype(np.int64)
                for side, n in (("user", model.n_users), ("item", model.n_items))}
            words = np.asarray(model.codewords, dtype=np.int64).reshape(model.codebooks, K * starts[-1])
            model._np_cache["codewords"] = [words[:, K * starts[m]:K * starts[m + 1]].reshape(model.codebooks, K, -1)
                                            for m in range(M)]
        elif model.kind in ("float", "propagate"):
            model._np_cache = {  # (array.array 'f' or 'd', native byte order)
                "items": np.asarray(model.item_float).reshape(model.n_items, model.dim),
                "users": np.asarray(model.user_float).reshape(model.n_users, model.dim)}
        else:
            groups = [(b, None if items is None else np.asarray(items, dtype=np.int64),
                       np.frombuffer(codes, dtype=np.uint8).reshape(  # (rows, row bytes); 0 bytes: an idle group
                           model.n_items if items is None else len(items), model._layout(b)[2]))
                      for b, items, codes in model.item_groups]
            model._np_cache = {
                "groups": groups,
                "scales": np.asarray(model.item_scales, dtype=np.float64).reshape(model.n_items, model.groups)}
    return model._np_cache


def item_ints(model):
    """aᵢₖ = 2cᵢₖ + 1 − 2^bᵢ for all items, (n_items, D) int8 (int16 with 8-bit items, and in column
    files, where it is m_k·aᵢₖ), built once."""
    arrays = cached(model)
    if "a_items" not in arrays:
        widest = max(b for b, _, _ in arrays["groups"])
        small = widest < 8 and not model.column_widths
        a_items = np.empty((model.n_items, model.dim), dtype=np.int8 if small else np.int16)
        for b, items, codes in arrays["groups"]:
            if model.column_widths:  # m_k·aₖ, 0 at 0 bits
                widths, steps = np.asarray(model.column_widths[b]), np.asarray(model.column_steps[b])
                a = (2 * unpack_columns(codes, widths) + 1 - (1 << widths)) * steps
            else:
                a = 2 * unpack(codes, model.dim, b) + 1 - (1 << b)
            a_items[slice(None) if items is None else items] = a
        arrays["a_items"] = a_items
    return arrays["a_items"]


def scores(model, a_user, user_quarter):
    """EdgeModel._scores_python's twin: the same per-byte tables, gathered for all items at once."""
    arrays = cached(model)
    scales = arrays["scales"]
    out = np.zeros(model.n_items, dtype=np.float64)
    for b, items, codes in arrays["groups"]:
        tables, consts = model._tables(a_user, b)
        exact = isinstance(a_user[0], int)  # integer codes: exact sums; a float vector: float64
        T = np.asarray(tables, dtype=np.int64 if exact else np.float64)
        bytes_per_group = codes.shape[1] // model.groups
        rows = slice(None) if items is None else items
        part = np.zeros(len(codes), dtype=np.float64)
        for g in range(model.groups):
            total = np.full(len(codes), consts[g], dtype=T.dtype)
            for j in range(g * bytes_per_group, (g + 1) * bytes_per_group):
                total += T[j][codes[:, j]]
            part += total * user_quarter[g] * scales[rows, g]
        out[rows] = part
    return out


def codebook_scores(model, vector, weights):
    """EdgeModel._codebook_scores' twin: the tables T (M, K) by numpy (ints: exact; floats: summed
    over j ascending as the pure-Python loop does), then Σₘ T[m][aᵢₘ]·w[m] for all items at once."""
    arrays = cached(model)
    starts, v = model.subspace_starts, np.asarray(vector)
    tables = []
    for m, words in enumerate(arrays["codewords"]):
        items, part = words[-1], v[starts[m]:starts[m + 1]]
        if v.dtype.kind in "iu":
            tables.append(items @ part.astype(np.int64))
        else:
            total = np.zeros(len(items))
            for j in range(items.shape[1]):
                total += float(part[j]) * items[:, j]
            tables.append(total)
    w = model._codebook_weights(weights)
    codes, out = arrays["item"], np.zeros(model.n_items)
    for m in range(model.subspaces):
        out += tables[m][codes[:, m]] * w[m]
    return out


def codebook_vectors(model, side):
    """(n, dim) float64 rows t^c_m·q^c_m[aₘ] of one side of a codebook file (``_vector``'s twin)."""
    arrays = cached(model)
    c, codes, M = 0 if side == "user" else model.codebooks - 1, arrays[side], model.subspaces
    t = model.codeword_scales[c * M:(c + 1) * M]
    out = np.zeros((len(codes), model.dim))
    for m, words in enumerate(arrays["codewords"]):
        out[:, model.subspace_starts[m]:model.subspace_starts[m + 1]] = t[m] * words[c][codes[:, m]]
    return out


def item_vectors(model):
    """(n_items, dim) float64 numpy array of the scored item vectors (dequantized: s·a/2). Needs numpy."""
    if model.kind == "codebook":
        return codebook_vectors(model, "item")
    if model.kind in ("float", "propagate"):
        return cached(model)["items"].astype(np.float64)
    scales = np.repeat(cached(model)["scales"], model.dim // model.groups, axis=1)
    return 0.5 * scales * item_ints(model)


def user_vectors(model):
    """(n_users, dim) float64 numpy array of the users' z (dequantized as ``user_vector``). Needs numpy."""
    if model.kind == "codebook":
        return codebook_vectors(model, "user")
    if model.kind in ("float", "propagate"):
        return cached(model)["users"].astype(np.float64)
    if model.n_users == 0:
        return np.zeros((0, model.dim))
    keys = model.user_width or [model.row_keys[0]] * model.n_users
    starts = model.user_start if model.user_width else range(0, model.n_users * model.row_bytes, model.row_bytes)
    keys, starts = np.asarray(keys), np.asarray(starts, dtype=np.int64)
    blob = np.frombuffer(model.user_codes, dtype=np.uint8)
    a = np.zeros((model.n_users, model.dim), dtype=np.int64)
    for key in model.row_keys:
        rows = np.flatnonzero(keys == key)
        if not len(rows):
            continue
        _, widths, rb = model._layout(key)
        packed = blob[starts[rows][:, None] + np.arange(rb)]
        w = np.asarray(widths)
        codes = unpack_columns(packed, w) if model.column_widths else unpack(packed, model.dim, key)
        steps = np.asarray(model.column_steps[key]) if model.column_steps else 1
        a[rows] = np.where(w > 0, (2 * codes.astype(np.int64) + 1 - (1 << w)) * steps, 0)
    scales = np.asarray(model.user_scales, dtype=np.float64).reshape(model.n_users, model.groups)
    return 0.5 * np.repeat(scales, model.dim // model.groups, axis=1) * a


def float_scores(model, u):
    """Scores of user row u against every item of a float model (EdgeModel._float_scores' twin)."""
    a = cached(model)
    return a["items"].astype(np.float64) @ a["users"][u].astype(np.float64)


def vector_scores(model, z):
    """z·zᵢ for every item of a float model (EdgeModel._vector_scores' twin)."""
    return cached(model)["items"].astype(np.float64) @ np.asarray(z, dtype=np.float64)


def norms(vectors):
    return np.sqrt((vectors ** 2).sum(1))


def fold_in(model, rows, negatives, regularization):
    """EdgeModel.fold_in's twin: z = (w·Ḡ + Z_HᵀZ_H + λ·tr(Ḡ)·I)⁻¹ Z_Hᵀ 1 with numpy's solver, as a list."""
    if model.item_gram is None:
        z = item_vectors(model)
        model.item_gram = (z.T @ z / max(len(z), 1)).tolist()
    gram = np.asarray(model.item_gram, dtype=np.float64)
    cache = cached(model)
    if "z_items" not in cache:
        cache["z_items"] = item_vectors(model)
    z_h = cache["z_items"][np.asarray(rows, dtype=np.int64)] if rows else np.zeros((0, model.dim))
    a = negatives * gram + z_h.T @ z_h + max(regularization * np.trace(gram), 1e-12) * np.eye(model.dim)
    return np.linalg.solve(a, z_h.sum(0)).tolist()


def seen_array(model, u):
    if "history" not in cached(model):
        model._np_cache["history"] = np.frombuffer(model.history_indices, dtype=np.uint32)
    return model._np_cache["history"][model.history_indptr[u]:model.history_indptr[u + 1]]


def varints(blob, path, name):
    """The same decode, vectorised, as an int64 array: byte k of a varint contributes (b & 0x7F) << 7k."""
    b = np.frombuffer(blob, dtype=np.uint8)
    ends = b < 0x80
    if len(b) and not ends[-1]:
        raise EdgeFormatError(f"{path}: section {name!r} ends inside a varint")
    starts = np.flatnonzero(np.r_[True, ends[:-1]]) if len(b) else np.empty(0, dtype=np.int64)
    position = np.arange(len(b)) - np.repeat(starts, np.diff(np.r_[starts, len(b)]))
    if len(b) and position.max() >= MAX_VARINT_BYTES:
        raise EdgeFormatError(f"{path}: section {name!r} holds a varint longer than {MAX_VARINT_BYTES} bytes")
    parts = (b & 0x7F).astype(np.int64) << (7 * position)
    return np.add.reduceat(parts, starts) if len(b) else np.zeros(0, dtype=np.int64)


def undelta(lengths, deltas, path, name, n_cols):
    """The same, vectorised: per-row running sums as the global cumsum minus its value before the row.
    Gaps are < 2^35 (MAX_VARINT_BYTES) and each is checked < n_cols first, so no sum overflows."""
    lengths, gaps = np.asarray(lengths, dtype=np.int64), np.asarray(deltas, dtype=np.int64)
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    total = np.cumsum(gaps)
    before_row = np.r_[0, total][indptr[:-1]]
    indices = total - np.repeat(before_row, lengths)
    if len(gaps) and (gaps.max() >= n_cols or indices.max() >= n_cols):
        raise EdgeFormatError(f"{path}: section '{name}_deltas' runs past n_items ({n_cols})")
    return (array.array("Q", indptr.astype("<u8").tobytes()), array.array("I", indices.astype("<u4").tobytes()))


def unpack(packed, d, b):
    """(n, d) int16 codes of n packed rows (uint8, ⌈d·b/8⌉ bytes each, LSB-first) — _unpack_at's twin."""
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, : d * b]
    return (bits.reshape(len(packed), d, b).astype(np.int16) << np.arange(b, dtype=np.int16)).sum(2)


def unpack_columns(packed, widths):
    """(n, D) int16 codes of n packed rows whose column k takes widths[k] bits of the LSB-first
    stream from bit Σ_{k'<k} widths[k'] — the column layout of ``_user_codes``, for all rows."""
    bits = np.unpackbits(packed, axis=1, bitorder="little").astype(np.int16)
    out = np.zeros((len(packed), len(widths)), dtype=np.int16)
    offset = 0
    for k, w in enumerate(widths.tolist()):
        for t in range(w):
            out[:, k] |= bits[:, offset + t] << t
        offset += w
    return out


def dequantize(codes, widths, starts, scales, d):
    """(n·d,) float64 rows sₙ·(c + ½ − 2^(bₙ−1)), row n's d codes packed LSB-first at bₙ bits from
    byte starts[n] — the loop of ``_propagate`` (its oracle), one width group at a time."""
    widths, starts = np.asarray(widths, dtype=np.int64), np.asarray(starts, dtype=np.int64)
    scales, blob = np.asarray(scales, dtype=np.float64), np.frombuffer(codes, dtype=np.uint8)
    table = np.empty((len(widths), d))
    for b in np.unique(widths).tolist():
        rows = np.flatnonzero(widths == b)
        c = unpack(blob[starts[rows][:, None] + np.arange(_row_bytes(d, b))], d, b)
        table[rows] = scales[rows, None] * (c + 0.5 - 2 ** (b - 1))
    return table.ravel()


def propagate(tables, indptr, indices, d, weights, spread=None):
    """As _propagate_python. Â·X one column at a time with bincount (no N×nnz temporaries), or,
    given ``spread`` (the numba kernel), row by row over each side's CSR (items' via a stable
    transpose built once): out[r] = Σ_{e ∈ row r} w[e]·src[neighbour[e]]."""
    users = np.asarray(tables[0], dtype=np.float64).reshape(-1, d)
    items = np.asarray(tables[1], dtype=np.float64).reshape(-1, d)
    indptr = np.asarray(indptr, dtype=np.int64)
    cols = np.asarray(indices, dtype=np.int64)
    rows = np.repeat(np.arange(len(users)), np.diff(indptr))
    deg_u, deg_i = np.diff(indptr), np.bincount(cols, minlength=len(items))
    w = 1.0 / np.sqrt(deg_u[rows] * deg_i[cols]) if len(cols) else np.zeros(0)
    if spread is not None:
        order = np.argsort(cols, kind="stable")  # item-major, users of an item in user order
        item_ptr = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(deg_i, out=item_ptr[1:])
        item_users, item_w = rows[order], w[order]
    z_u, z_i = weights[0] * users, weights[0] * items
    for alpha in weights[1:]:
        new_u, new_i = np.empty_like(users), np.empty_like(items)
        if spread is not None:
            spread(indptr, cols, w, items, new_u)
            spread(item_ptr, item_users, item_w, users, new_i)
        else:
            for k in range(d):
                new_u[:, k] = np.bincount(rows, weights=w * items[cols, k], minlength=len(users))
                new_i[:, k] = np.bincount(cols, weights=w * users[rows, k], minlength=len(items))
        users, items = new_u, new_i
        z_u += alpha * users
        z_i += alpha * items
    return z_u.ravel(), z_i.ravel()


def top_k(scores, k, seen):
    """Top-k (score, index) pairs of a float64 array (modified in place), seen indices masked."""
    if seen is not None and len(seen):
        scores[seen] = -np.inf
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
