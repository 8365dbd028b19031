"""gnaq — quantized LightGCN recommenders, trained on numpy/cupy, served from a packed file.

``gnaq.Recommender`` (fit / recommend / similar_items / save) and ``gnaq.load`` are the library;
importing :mod:`gnaq` loads nothing heavy, so ``import gnaq.edge`` works on a device whose
Python cannot load numpy. The training stack lives in submodules (``gnaq.autograd``,
``gnaq.models``, ``gnaq.quant``, ``gnaq.train``).
"""

__version__ = "0.1.0"
__all__ = ["Recommender", "load"]


def __getattr__(name):  # the library front door, imported on first use (keeps `import gnaq.edge` light)
    if name in ("Recommender", "load"):
        from . import recommender
        return getattr(recommender, name)
    raise AttributeError(f"module 'gnaq' has no attribute {name!r}")
