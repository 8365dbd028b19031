"""Serve recommendations from a .gnaq file with numpy blocked, as on a device whose Python
cannot load C extensions: only the standard library (and gnaq/edge.py, which can be copied
alone) is used.

    python examples/edge_without_numpy.py MODEL.gnaq USER_ID
"""

import sys

sys.modules["numpy"] = None  # any import of numpy now fails, as it would on the device
sys.modules["numba"] = None

import gnaq.edge as edge  # noqa: E402

path = sys.argv[1]
model = edge.load(path)
user = model.user_from_text(sys.argv[2])  # ids as the file holds them: text or numbers
print(f"backend: {model.backend}; {model.n_users} users, {model.n_items} items, {model.bits}-bit codes")
for rank, (item, score) in enumerate(model.recommend(user, k=10), 1):
    print(f"{rank:2d}. item {item}  score {score:.4f}")
