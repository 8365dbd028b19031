"""Serve the browser example: copies what the page needs next to it and starts a local web server.

    python examples/browser/serve.py MODEL.gnaq [--port 8000] [--micropython MJS]
    # then open http://localhost:8000/  (or ...?pick=0,3,7 to pick items at once)

The page needs, in one folder: index.html, micropython.mjs + micropython.wasm (npm package
@micropython/micropython-webassembly-pyscript, found through --micropython or $GNAQ_MICROPYTHON),
gnaq's device reader (edge.py, edge_format.py) and the model as model.gnaq.
"""

import argparse
import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
GNAQ = HERE.parents[1] / "gnaq"
# gnaq.edge.DEVICE_FILES (this script runs without gnaq installed)
READER = ("edge.py", "edge_format.py", "edge_stream.py")


def prepare(folder, model, micropython_mjs) -> Path:
    """Fill ``folder`` with the page, the MicroPython port, the reader and the model; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mjs = Path(micropython_mjs)
    for source, name in ((HERE / "index.html", "index.html"), (mjs, "micropython.mjs"),
                         (mjs.with_suffix(".wasm"), "micropython.wasm"), (Path(model), "model.gnaq"),
                         *((GNAQ / name, name) for name in READER)):
        shutil.copyfile(source, folder / name)
    return folder


class _Quiet(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".wasm": "application/wasm"}

    def log_message(self, *args):
        pass


def serve(folder, port=0):
    """A threaded HTTP server over ``folder`` on localhost; returns (server, port). Stop: server.shutdown()."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--micropython", default=os.environ.get("GNAQ_MICROPYTHON"))
    args = p.parse_args()
    if not args.micropython:
        p.error("--micropython MJS (or $GNAQ_MICROPYTHON): micropython.mjs of the npm package")
    folder = prepare(tempfile.mkdtemp(prefix="gnaq-page-"), args.model, args.micropython)
    server, port = serve(folder, args.port)
    print(f"serving {folder} at http://localhost:{port}/ (Ctrl-C stops)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.shutdown()


if __name__ == "__main__":
    main()
