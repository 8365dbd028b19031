"""Shared fixtures."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import gnaq
from gnaq.data import make_synthetic

FAST = dict(factors=16, layers=2, epochs=4, batch_size=256, learning_rate=0.01, progress=False)  # a quick Recommender


def make_recommender(**settings):
    """gnaq.Recommender from flat settings: its parameters as such, the rest in ``options``."""
    names = gnaq.Recommender._param_names()
    return gnaq.Recommender(**{k: v for k, v in settings.items() if k in names},
                            options={k: v for k, v in settings.items() if k not in names})


@pytest.fixture(scope="session")
def user_items():
    """A small synthetic users × items matrix (train ∪ valid ∪ test)."""
    d = make_synthetic(seed=0)
    return (d.train + d.valid + d.test).tocsr()


@pytest.fixture(scope="session")
def fitted(user_items):
    """A Recommender fitted on user_items with FAST (shared: tests only query it)."""
    return make_recommender(**FAST).fit(user_items)


MICROPYTHON_PACKAGE = "@micropython/micropython-webassembly-pyscript@1.27.0"
MJS = Path("node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs")


@pytest.fixture(scope="session")
def micropython():
    """Path of MicroPython's WebAssembly port (micropython.mjs, run by node): $GNAQ_MICROPYTHON (``.ci/run``
    installs it and sets it), else an npm install into ~/.cache/gnaq-micropython. Skips without node."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the MicroPython (WebAssembly) checks need it")
    given = os.environ.get("GNAQ_MICROPYTHON")
    if given:
        return given
    cache = Path.home() / ".cache" / "gnaq-micropython"
    if not (cache / MJS).is_file():
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--prefix", str(cache), MICROPYTHON_PACKAGE],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm install {MICROPYTHON_PACKAGE} failed:\n{done.stderr[-2000:]}"
    return str(cache / MJS)
