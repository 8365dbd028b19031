# Runs under MicroPython and CPython alike (the device reader's contract): for every .gnaq file in a
# folder, load it, and print one line per query — top-10 ids and the scores' float64 bits in hex — so
# that two interpreters' outputs can be compared byte for byte. main(models_dir) is called by the test.
import binascii
import gc
import os
import struct

import edge
import edge_stream


def hexes(values):
    return ",".join(binascii.hexlify(struct.pack("<d", v)).decode() for v in values)


def main(models_dir):
    for name in sorted(os.listdir(models_dir)):
        if not name.endswith(".gnaq"):
            continue
        model = edge.load(models_dir + "/" + name)
        assert model.backend == "python", model.backend
        users = [model.user_ids[0], model.user_ids[model.n_users // 2], model.user_ids[-1]] if model.n_users else []
        for user in users:
            top = model.recommend(user, k=10, exclude_seen=model.has_history)
            print(name, "recommend", user, [i for i, _ in top], hexes([s for _, s in top]))
            print(name, "score", user, hexes(model.score(user, model.item_ids)))
        for item in (model.item_ids[0], model.item_ids[-1]):
            top = model.similar_items(item, k=5)
            print(name, "similar", item, [i for i, _ in top], hexes([s for _, s in top]))
        liked = model.item_ids[1:4]
        top = model.recommend_for_items(liked, k=10)
        print(name, "fold-in", liked, [i for i, _ in top], hexes([s for _, s in top]))
        if model.kind == "quantized" and not model.header.get("huffman"):  # the same, item rows streamed 16 at a time
            streamed = edge_stream.open_model(models_dir + "/" + name, chunk_items=16).recommend_for_items(liked, k=10)
            # the same ids; float sums over half-byte tables: equal to rounding
            assert [i for i, _ in streamed] == [i for i, _ in top], (name, streamed, top)
            assert all(abs(a - b) <= 1e-12 * max(1.0, abs(b)) for (_, a), (_, b) in zip(streamed, top)), name
            print(name, "streamed", [i for i, _ in streamed], hexes([s for _, s in streamed]))
        del model
        gc.collect()
