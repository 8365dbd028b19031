"""The README and docs as a product: runnable blocks run, links resolve, no round names, generated
pages current, sizes within bounds."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
BLOCK = re.compile(r"<!-- runnable -->\n```(\w+)\n(.*?)```", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
# history belongs in git and CHANGELOG.md: the names of the rounds that made things
ROUND = re.compile(r"\b(?:session|round|sprint) ?\d+\b|-s\d\d\b|\bbefore session\b", re.I)


def test_readme_reads_in_ten_minutes():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250 and len(text.encode()) <= 15_000


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_and_no_round_names(page):
    text = page.read_text()
    missing = [target for target in LINK.findall(text)
               if "://" not in target and not (page.parent / target).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
    assert not ROUND.findall(text), f"{page.name} names rounds: {ROUND.findall(text)}"


def test_no_round_names_in_the_code_or_result_names():
    found = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "gnaq").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if ROUND.search(line)]
    found += [str(p.relative_to(ROOT)) for p in (ROOT / "bench" / "results").rglob("*") if ROUND.search(p.name)]
    assert not found, found


def test_generated_pages_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def small_data(command: str) -> str:
    """A documented command on small data: the synthetic dataset, a few epochs."""
    command = re.sub(r"--dataset [\w-]+", "--dataset synthetic", command)
    return re.sub(r"(python -m gnaq\.train [^\n]*)", r"\1 --epochs 4 --dim 16 --quiet", command)


def run_blocks(page: Path, tmp_path: Path) -> None:
    """Every runnable block of a page in order, in one folder holding a copy of gnaq/ (as a fresh
    clone would, so `cp gnaq/edge.py ...` works); Python blocks with this interpreter."""
    work = tmp_path / page.stem
    shutil.copytree(ROOT / "gnaq", work / "gnaq", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    for language, body in BLOCK.findall(page.read_text()):
        if language == "python":
            command = [sys.executable, "-c", body]
        else:
            command = ["bash", "-euo", "pipefail", "-c", small_data(body).replace("python ", f"{sys.executable} ")]
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{page.name} block failed:\n{body}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(page, tmp_path):
    run_blocks(page, tmp_path)
