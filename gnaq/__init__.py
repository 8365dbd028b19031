"""gnaq — quantized LightGCN recommenders, trained on numpy/cupy, served from a packed file.

Importing :mod:`gnaq` loads nothing heavy, so ``import gnaq.edge`` works on a device whose
Python cannot load numpy. The training stack lives in submodules (``gnaq.autograd``,
``gnaq.models``, ``gnaq.quant``, ``gnaq.train``).
"""

__version__ = "0.1.0"
