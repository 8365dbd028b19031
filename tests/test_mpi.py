"""Feature-sliced training under mpiexec: the same model as one process (every quantizer), checkpoints that do
not depend on the number of processes, a killed rank that ends the job, clear refusals.

Runs ``mpiexec -n W python -m gnaq.train`` on a small synthetic graph; skips, saying why, where
mpiexec or mpi4py is absent (.ci/run installs both: pip install -e ".[mpi]")."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gnaq.comm import SingleProcess, all_sum, column_slice, launched_size

try:
    import mpi4py  # noqa: F401
    HAVE_MPI4PY = True
except ImportError:
    HAVE_MPI4PY = False
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(not (MPIEXEC and HAVE_MPI4PY), reason="mpiexec or mpi4py not installed "
                               "(pip install -e \".[mpi]\")")

ARGS = ["--dataset", "synthetic", "--dim", "8", "--layers", "2", "--batch-size", "512", "--quiet", "--bits", "32"]


def run(tmp_path, name, processes, extra, timeout=240):
    cmd = [sys.executable, "-m", "gnaq.train"] + ARGS + ["--out", str(tmp_path / name)] + extra
    if processes > 1:
        cmd = [MPIEXEC, "-n", str(processes)] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return done


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def assert_same_run(a, b, tol=1e-5):
    """Equal up to float32 sums in another order: the margins u·(p − n) are summed over slices
    first (4 + 4 columns, not 8), a relative difference of order 1e-7 a step; compounded over a few
    epochs of Adam it stays far below 1e-5, and rankings (the metrics) agree to the same tolerance."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["epoch"] == y["epoch"]
        for key in ("loss", "recall@20", "ndcg@20", "ndcg@10"):
            if x[key] is None or y[key] is None:  # (epoch 0 of a run that starts quantized: no loss yet)
                assert x[key] is y[key] and x["epoch"] == 0, (key, x, y)
                continue
            assert abs(x[key] - y[key]) <= tol * max(1.0, abs(x[key])), (key, x[key], y[key])


@needs_mpi
@pytest.mark.parametrize("propagation", ["full", "sampled", "sampled --walks 0 --reach 2",
                                         "sampled --walks 0 --reach 1 --reach-split lightgcn"])
def test_two_processes_train_the_model_of_one(tmp_path, propagation):
    extra = ["--epochs", "3", "--propagation"] + propagation.split()  # --reach: each rank moves its own columns
    one, two = run(tmp_path, "one", 1, extra), run(tmp_path, "two", 2, extra)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert_same_run(lines(tmp_path / "one" / "metrics.jsonl"), lines(tmp_path / "two" / "metrics.jsonl"))
    r1, r2 = (json.loads((tmp_path / n / "result.json").read_text()) for n in ("one", "two"))
    assert abs(r1["test_ndcg@20"] - r2["test_ndcg@20"]) < 1e-5
    from gnaq.edge import load
    m1, m2 = load(str(tmp_path / "one" / "model.gnaq")), load(str(tmp_path / "two" / "model.gnaq"))
    (i1, s1), (i2, s2) = (list(zip(*m.recommend(0, 10))) for m in (m1, m2))
    assert i1 == i2 and np.allclose(s1, s2, rtol=1e-5)
    assert two.stdout.count('"result"') == 1  # rank 0 alone speaks


@needs_mpi
@pytest.mark.parametrize("first, then", [(2, 1), (1, 4)])
def test_a_checkpoint_resumes_at_another_process_count_exactly(tmp_path, first, then):
    assert_resumes_exactly(tmp_path, first, then, cut_at=2, total=4, extra=["--no-export"])


def assert_resumes_exactly(tmp_path, first, then, cut_at, total, extra):
    """A run cut after ``cut_at`` epochs at ``first`` processes and resumed at ``then`` up to
    ``total`` logs what the uninterrupted one-process run of ``total`` epochs logs."""
    whole = run(tmp_path, "whole", 1, ["--epochs", str(total)] + extra)
    cut = run(tmp_path, "cut", first, ["--epochs", str(cut_at)] + extra)
    assert whole.returncode == 0 and cut.returncode == 0, cut.stderr[-2000:]
    cmd = [sys.executable, "-m", "gnaq.train", "--resume", str(tmp_path / "cut"), "--epochs", str(total),
           "--quiet", "--no-export"]
    if then > 1:
        cmd = [MPIEXEC, "-n", str(then)] + cmd
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(lines(tmp_path / "whole" / "metrics.jsonl"), lines(tmp_path / "cut" / "metrics.jsonl"))


@needs_mpi
def test_a_killed_rank_ends_the_job_within_seconds_and_the_checkpoint_survives(tmp_path):
    out = tmp_path / "run"
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "gnaq.train"] + ARGS + [
        "--batch-size", "64", "--epochs", "500", "--no-export", "--out", str(out)]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "last.npz").exists() and time.time() < deadline:
        time.sleep(0.2)
    assert (out / "last.npz").exists(), "no checkpoint written"
    ranks = subprocess.run(["pgrep", "-f", "--", f"-m gnaq.train .*{out}"], capture_output=True, text=True).stdout.split()
    ranks = [int(p) for p in ranks if int(p) != job.pid]
    assert ranks, "no rank processes found"
    os.kill(ranks[-1], signal.SIGKILL)
    t0 = time.time()
    code = job.wait(timeout=30)  # a hang fails here
    assert code != 0 and time.time() - t0 < 10
    from gnaq.checkpoint import load_checkpoint
    arrays, meta = load_checkpoint(str(out / "last.npz"))
    assert arrays["model.embedding"].shape[1] == 8 and meta["epoch"] >= 1


# every quantizer and deployment (a fixed 2-epoch warm-up where the quantizer has one, so the switch is inside)
QUANTIZED = {
    "gnaq-graph-free": ["--bits", "2", "--quant-option", "warmup=2"],
    "gnaq-auto-warmup": ["--bits", "2", "--patience", "1"],
    "gnaq-layer0": ["--bits", "2", "--quant-option", "warmup=2", "--quant-option", "quantize=layer0"],
    "gnaq-z-mixed": ["--bits", "2", "--quant-option", "warmup=2", "--quant-option", "quantize=z",
                     "--quant-option", "transform=none", "--quant-option", "mix_share=0.25"],
    "gnaq-coded-scales-sampled": ["--bits", "2", "--quant-option", "warmup=2", "--quant-option", "scale_bits=8",
                                  "--propagation", "sampled"],
    "gnaq-official": ["--bits", "2", "--quantizer", "gnaq-official", "--quant-option", "warmup=2"],
    "ste": ["--bits", "2", "--quantizer", "ste"],
    "lsq": ["--bits", "2", "--quantizer", "lsq"],
    "n2uq": ["--bits", "2", "--quantizer", "n2uq"],
    "bigear": ["--bits", "1", "--quantizer", "bigear"],
    "pq": ["--bits", "2", "--quantizer", "pq", "--quant-option", "warmup=2"],
}


@needs_mpi
@pytest.mark.parametrize("name", sorted(QUANTIZED))
def test_every_quantizer_trains_the_model_of_one_process(tmp_path, name):
    """Once a quantizer is active every rank gathers what it reads and repeats it on whole rows
    (models/whole.py), so the quantized epochs differ from one process only by the full-precision
    epochs' float32 margins summed in two slices (assert_same_run's tolerance)."""
    extra = ["--epochs", "4"] + QUANTIZED[name]
    one, two = run(tmp_path, "one", 1, extra), run(tmp_path, "two", 2, extra)
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-1000:], two.stderr[-2000:])
    a, b = lines(tmp_path / "one" / "metrics.jsonl"), lines(tmp_path / "two" / "metrics.jsonl")
    assert any(r["quantized"] for r in a) and [r["quantized"] for r in a] == [r["quantized"] for r in b]
    assert_same_run(a, b)
    r1, r2 = (json.loads((tmp_path / n / "result.json").read_text()) for n in ("one", "two"))
    assert abs(r1["test_ndcg@20"] - r2["test_ndcg@20"]) < 1e-5 and r2["processes"] == 2
    if (tmp_path / "one" / "model.gnaq").exists():
        from gnaq.edge import load
        m1, m2 = load(str(tmp_path / "one" / "model.gnaq")), load(str(tmp_path / "two" / "model.gnaq"))
        for user in (0, 7):
            (i1, s1), (i2, s2) = (list(zip(*m.recommend(user, 10))) for m in (m1, m2))
            assert i1 == i2 and np.allclose(s1, s2, rtol=1e-5)


@needs_mpi
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_quantized_checkpoint_resumes_at_another_process_count_exactly(tmp_path, first, then):
    """Cut inside the quantized phase (its replicated parameters and the sliced E⁽⁰⁾ in one file)."""
    assert_resumes_exactly(tmp_path, first, then, cut_at=3, total=5, extra=QUANTIZED["gnaq-graph-free"] + ["--no-export"])


LIBRARY_SCRIPT = """
import json, sys
import numpy as np, scipy.sparse as sp
import gnaq
from gnaq.comm import world
rng = np.random.default_rng(0)
rows, cols = rng.integers(0, 60, 1500), rng.integers(0, 40, 1500)
user_items = sp.csr_matrix((np.ones(1500, dtype=np.float32), (rows, cols)), shape=(60, 40))
user_items.data[:] = 1.0
model = gnaq.Recommender(bits=2, factors=8, epochs=4, progress=False, device="cpu",
                         options=dict(layers=2, batch_size=256, checkpoint_dir=sys.argv[1],
                                      quant_options={"warmup": 2})).fit(user_items)
ids, scores = model.recommend(np.arange(5), user_items[:5])
if world().is_root:
    print(json.dumps({"ids": ids.tolist(), "scores": scores.tolist()}))
"""


@needs_mpi
def test_the_library_fits_the_same_quantized_model_under_mpiexec(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(LIBRARY_SCRIPT)
    outs = []
    for processes, name in ((1, "one"), (2, "two")):
        cmd = [sys.executable, str(script), str(tmp_path / name)]
        if processes > 1:
            cmd = [MPIEXEC, "-n", "2"] + cmd
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        printed = [line for line in done.stdout.splitlines() if line.startswith("{")]
        assert len(printed) == 1  # rank 0 prints; both ranks answered the query
        outs.append(json.loads(printed[0]))
    assert outs[0]["ids"] == outs[1]["ids"]
    assert np.allclose(outs[0]["scores"], outs[1]["scores"], rtol=1e-5)


@needs_mpi
@pytest.mark.parametrize("processes, extra, message", [(3, [], "--dim 8 cannot be split over 3 processes")])
def test_what_slicing_cannot_do_is_one_clear_error(tmp_path, processes, extra, message):
    done = run(tmp_path, "bad", processes, ["--epochs", "1"] + extra)
    assert done.returncode != 0 and message in done.stderr


def test_one_process_is_the_identity_communicator():
    from gnaq import autograd as ag
    comm = SingleProcess()
    x = ag.Tensor(np.arange(3.0), requires_grad=True)
    y = all_sum(x, comm)
    ag.sum(y * y).backward()
    assert y is x and np.array_equal(x.grad, 2 * np.arange(3.0))
    assert column_slice(64, comm) == slice(0, 64)
    assert launched_size() == 1 or os.environ.get("PMI_SIZE")  # pytest itself runs outside mpiexec


def test_column_slices_tile_the_dimension_and_refuse_what_does_not_divide():
    class Comm:
        def __init__(self, rank, size):
            self.rank, self.size = rank, size
    slices = [column_slice(64, Comm(r, 4)) for r in range(4)]
    assert [(s.start, s.stop) for s in slices] == [(0, 16), (16, 32), (32, 48), (48, 64)]
    with pytest.raises(ValueError, match="cannot be split over 3"):
        column_slice(64, Comm(0, 3))
