"""Shared fixtures."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

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
