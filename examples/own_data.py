"""Your own events → fit → recommend → save → load on the device path.

    python examples/own_data.py [OUT_DIR]

A table of raw (user, item) events — here made up, with string ids as a real log has them —
becomes an InteractionMatrix (pandas DataFrame: ``gnaq.data.from_pandas(df)``), a 2-bit model
is fitted and queried with implicit's calls, saved as one .gnaq file and opened again through
``gnaq.load`` (the same reader a device runs, gnaq/edge.py).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import gnaq
from gnaq.data import from_pandas

out = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="gnaq-own-data-"))
rng = np.random.default_rng(0)
n_events = 20_000  # listeners drawn by activity, songs by popularity (power laws), with taste groups
listener = rng.zipf(1.6, n_events) % 800
song = (rng.zipf(1.4, n_events) + 37 * (listener % 5)) % 600
events = {"user": np.array([f"listener-{u}" for u in listener]), "item": np.array([f"song-{s}" for s in song])}

user_items = from_pandas(events)  # a pandas DataFrame with these columns works the same way
print(f"{user_items.matrix.nnz:,} interactions, {user_items.shape[0]} users × {user_items.shape[1]} items")

model = gnaq.Recommender(bits=2, factors=32, epochs=15, progress=False, options={"layers": 2, "batch_size": 1024})
model.fit(user_items)
print(f"fitted: best epoch {model.result_['best_epoch']}, hold-out recall@20 {model.result_['test_recall@20']:.3f}")

who = "listener-3"
ids, scores = model.recommend(who, N=5)
print(f"\ntop 5 for {who} (songs they already played are filtered):")
for rank, (item, score) in enumerate(zip(ids, scores), 1):
    print(f"  {rank}. {item:10s} {score:7.3f}")

ids, scores = model.similar_items("song-40", N=4)
print("\nsongs like song-40:", ", ".join(f"{i} ({s:.2f})" for i, s in zip(ids, scores)))

path = out / "model.gnaq"
info = model.save(path)
print(f"\nsaved {path}: {info['file_bytes']:,} bytes")
device = gnaq.load(path)
same = list(device.recommend(who, N=5)[0]) == list(model.recommend(who, N=5)[0])
print(f"loaded with the {device.edge.backend} backend; same top 5 from the file: {same}")
