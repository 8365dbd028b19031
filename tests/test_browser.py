"""examples/browser/: the device reader in a web page (MicroPython/WebAssembly), driven by headless
Chromium (Debian's package; .ci/run installs it): the page folds a person's picks in and shows the
same top-10 as CPython's reader computes from the same items. Skips, saying why, without chromium."""

import html.parser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gnaq import edge
from gnaq.data import make_synthetic
from gnaq.export import export_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "browser"))
sys.path.insert(0, str(Path(__file__).parent))
import serve  # noqa: E402
from test_pack_edge import Z, make_model  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium): the browser example's test needs it")
    return found


class Recommendations(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.items = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "li" and "data-id" in attrs:
            self.items.append((attrs["data-id"], float(attrs["data-score"])))


def run_page(browser, url, tmp_path, *extra):
    out = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          "--virtual-time-budget=60000", *extra, url], capture_output=True, text=True, timeout=180)
    return out


def test_the_page_recommends_from_the_picks_like_the_reader_does(micropython, tmp_path):
    browser = chromium()
    data = make_synthetic(n_users=80, n_items=120, seed=5)
    model_path = tmp_path / "items.gnaq"
    export_model(make_model(data, "gnaq", 2, dim=16, **Z, transform="klt", busy_share=0.25), data, model_path,
                 users=False)
    folder = serve.prepare(tmp_path / "site", model_path, micropython)
    server, port = serve.serve(folder)
    try:
        picks = [3, 10, 17]
        out = run_page(browser, f"http://127.0.0.1:{port}/?pick={','.join(map(str, picks))}", tmp_path, "--dump-dom")
        parser = Recommendations()
        parser.feed(out.stdout)
        assert parser.items, out.stdout[-2000:] + out.stderr[-2000:]
        expected = edge.load(model_path, "python").recommend_for_items(picks, k=10)
        assert [int(i) for i, _ in parser.items] == [i for i, _ in expected]
        assert [s for _, s in parser.items] == pytest.approx([s for _, s in expected], rel=1e-9)
        shot = tmp_path / "page.png"
        run_page(browser, f"http://127.0.0.1:{port}/?pick=3,10,17", tmp_path, f"--screenshot={shot}",
                 "--window-size=1000,900")
        assert shot.stat().st_size > 10_000
    finally:
        server.shutdown()
