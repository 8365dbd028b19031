import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_then_edge_without_numpy(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert "test recall@20" in out.stdout and (tmp_path / "model.gnaq").exists()
    edge_out = subprocess.run([sys.executable, str(ROOT / "examples" / "edge_without_numpy.py"),
                               str(tmp_path / "model.gnaq"), "0"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert "backend: python" in edge_out.stdout and "\n10. item" in edge_out.stdout


def test_own_data_example(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "own_data.py"), str(tmp_path / "new")],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert "top 5 for listener-3" in out.stdout and "same top 5 from the file: True" in out.stdout
