import json

import numpy as np
import pytest

from gnaq import train as train_cli
from gnaq.data import make_synthetic
from gnaq.metrics import evaluate
from gnaq.models.checks import lightgcn_loss_error
from gnaq.sampling import sample_bpr_epoch
from gnaq.training import TrainConfig, Trainer

FAST = ["--bits", "32", "--dataset", "synthetic", "--dim", "16", "--layers", "2", "--batch-size", "256",
        "--lr", "0.01", "--quiet", "--no-export", "--target", "off"]


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_lightgcn_loss_gradient_matches_finite_differences():
    assert lightgcn_loss_error(3) < 1e-6
    assert lightgcn_loss_error(2, distill=0.5, seed=2) < 1e-6  # with score distillation


def test_sampling_is_vectorised_correct_and_seeded():
    data = make_synthetic(seed=1)
    u, p, n = sample_bpr_epoch(data.train, np.random.default_rng(0))
    assert len(u) == data.train.nnz
    dense = data.train.toarray() > 0
    assert dense[u, p].all() and not dense[u, n].any()
    np.testing.assert_array_equal(np.sort(u * data.n_items + p), np.sort(data.train.tocoo().row * data.n_items + data.train.tocoo().col))
    u2, _, n2 = sample_bpr_epoch(data.train, np.random.default_rng(0))
    np.testing.assert_array_equal(n, n2)


@pytest.mark.parametrize("by", ["interactions", "users"])
def test_k_negatives_repeat_each_positive_with_its_own_valid_negatives(by):
    """--negatives 5 (the released GNAQ code's): each (u, p) five times in a row, each with its own
    negative outside u's items; the positives are the one-negative sampler's, from the same seed."""
    data = make_synthetic(seed=1)
    u1, p1, _ = sample_bpr_epoch(data.train, np.random.default_rng(0), by=by)
    u, p, n = sample_bpr_epoch(data.train, np.random.default_rng(0), by=by, negatives=5)
    assert len(u) == 5 * data.train.nnz
    np.testing.assert_array_equal(u.reshape(-1, 5), np.repeat(u1[:, None], 5, axis=1))
    np.testing.assert_array_equal(p.reshape(-1, 5), np.repeat(p1[:, None], 5, axis=1))
    assert not (data.train.toarray() > 0)[u, n].any()
    assert np.mean([len(set(row)) for row in n.reshape(-1, 5)]) > 4  # independent draws, not one repeated
    with pytest.raises(ValueError, match="--negatives must be ≥ 1"):
        sample_bpr_epoch(data.train, np.random.default_rng(0), negatives=0)


def test_a_step_with_k_negatives_holds_batch_size_positives(tmp_path, monkeypatch):
    """An epoch has as many steps with 3 negatives as with 1; each step's triplets are 3·batch_size."""
    from gnaq.models.lightgcn import LightGCN
    data = make_synthetic(n_users=80, n_items=50, seed=0)
    sizes = []
    original = LightGCN.bpr_loss

    def recording(self, users, *args, **kwargs):
        sizes.append(len(users))
        return original(self, users, *args, **kwargs)
    monkeypatch.setattr(LightGCN, "bpr_loss", recording)
    for k in (1, 3):
        Trainer(TrainConfig(dim=8, layers=1, batch_size=100, negatives=k, progress=False, out=str(tmp_path / f"k{k}")),
                data).train_epoch()
    one, three = sizes[:len(sizes) // 2], sizes[len(sizes) // 2:]
    assert len(one) == len(three) == -(-data.train.nnz // 100)
    assert three == [3 * s for s in one]


def test_user_sampler_weighs_every_user_the_same():
    """LightGCN's sampler: u uniform over users with items, p uniform over u's items."""
    import scipy.sparse as sp
    rows = np.array([0] * 40 + [1] * 2 + [3] * 6)                  # user 2 has no items
    cols = np.concatenate([np.arange(40), [0, 7], np.arange(10, 16)])
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(4, 60))
    dense = train.toarray() > 0
    counts_u, counts_p = np.zeros(4), np.zeros((4, 60))
    for seed in range(200):
        u, p, n = sample_bpr_epoch(train, np.random.default_rng(seed), by="users")
        assert len(u) == train.nnz and dense[u, p].all() and not dense[u, n].any()
        np.add.at(counts_u, u, 1)
        np.add.at(counts_p, (u, p), 1)
    assert counts_u[2] == 0
    share = counts_u[[0, 1, 3]] / counts_u.sum()                  # 1/3 each, not 40:2:6
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)
    np.testing.assert_allclose(counts_p[1, [0, 7]] / counts_u[1], 0.5, atol=0.05)
    by_interaction, _, _ = sample_bpr_epoch(train, np.random.default_rng(0))
    assert np.sum(by_interaction == 0) == 40                       # the other sampler: by degree
    with pytest.raises(ValueError, match="sampler"):
        sample_bpr_epoch(train, np.random.default_rng(0), by="items")


def test_few_epochs_learn_far_above_random(tmp_path):
    data = make_synthetic(seed=0)
    cfg = TrainConfig(dim=16, layers=2, epochs=8, batch_size=256, lr=0.01, progress=False, out=str(tmp_path))
    result = Trainer(cfg, data).fit()
    rng = np.random.default_rng(0)
    random = evaluate(rng.standard_normal((data.n_users, 16)), rng.standard_normal((data.n_items, 16)),
                      data.train + data.valid, data.test)
    assert result["test_recall@20"] > 3 * random["recall@20"]
    assert result["test_recall@20"] > 0.3
    lines = read_lines(tmp_path / "metrics.jsonl")
    assert [line["epoch"] for line in lines] == list(range(1, 9))
    assert lines[-1]["loss"] < lines[0]["loss"]


def test_same_seed_same_metrics(tmp_path):
    a = train_cli.main(FAST + ["--epochs", "2", "--out", str(tmp_path / "a")])
    b = train_cli.main(FAST + ["--epochs", "2", "--out", str(tmp_path / "b")])
    assert a == b == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "a" / "metrics.jsonl")) == strip(read_lines(tmp_path / "b" / "metrics.jsonl"))


def test_interrupt_then_resume_equals_uninterrupted_run(tmp_path, monkeypatch, capsys):
    assert train_cli.main(FAST + ["--epochs", "4", "--out", str(tmp_path / "full")]) == 0
    original = Trainer.train_epoch
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert train_cli.main(FAST + ["--epochs", "4", "--out", str(tmp_path / "cut")]) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--quiet", "--no-export"]) == 0
    said = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("done in") and "(this process, resumed after epoch 2)" in line for line in said)
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(read_lines(tmp_path / "full" / "metrics.jsonl"))
    full = json.loads((tmp_path / "full" / "result.json").read_text())
    cut = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert full.pop("seconds") >= 0 and cut.pop("seconds") >= 0  # wall-clock (0.1 s steps): the only field that may differ
    assert full == cut


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    original = Trainer.train_epoch
    calls = {"n": 0}

    def poisoned(self):
        calls["n"] += 1
        if calls["n"] == 2:
            self.model.embedding.data[:] = np.nan
        return original(self)
    monkeypatch.setattr(Trainer, "train_epoch", poisoned)
    assert train_cli.main(FAST + ["--epochs", "3", "--out", str(out)]) == 1
    assert "stopped: loss became nan" in capsys.readouterr().err
    from gnaq.checkpoint import load_checkpoint
    arrays, meta = load_checkpoint(out / "last.npz")
    assert meta["epoch"] == 1 and np.isfinite(arrays["model.embedding"]).all()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope"], "invalid choice|unknown dataset"),
    (["--dim", "0"], "--dim must be positive"),
    (["--bits", "5"], "invalid choice"),
    (["--epochs", "-1"], "--epochs must be positive"),
    (["--dataset", "gowalla", "--data-dir", "/nonexistent"], "not found"),
    (["--device", "tpu"], "invalid choice"),
    (["--resume", "/nonexistent"], "no config.json"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("GNAQ_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("GNAQ_DATA_DIR", raising=False)  # (the lookup falls back to it after --data-dir)
    monkeypatch.setattr("gnaq.data.registry.download", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(SystemExit) as info:
        raise SystemExit(train_cli.main(argv + ["--quiet"]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    import re
    assert re.search(message, err)


@pytest.mark.parametrize("quantizer, option", [("gnaq", "per_layer=false"), ("gnaq-official", "tanh=true")])
def test_warmup_schedule_resumes_exactly_and_selects_only_quantized_epochs(tmp_path, monkeypatch, quantizer, option):
    args = FAST + ["--bits", "2", "--quantizer", quantizer, "--quant-option", "warmup=2", "--quant-option", option]
    assert train_cli.main(args + ["--epochs", "4", "--out", str(tmp_path / "full")]) == 0
    lines = read_lines(tmp_path / "full" / "metrics.jsonl")
    assert [line["quantized"] for line in lines] == [False, False, True, True]
    assert json.loads((tmp_path / "full" / "result.json").read_text())["best_epoch"] in (3, 4)
    original = Trainer.train_epoch
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 3:  # right after the warm-up: the intervals are re-initialised on resume
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert train_cli.main(args + ["--epochs", "4", "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--quiet", "--no-export"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(lines)


def test_warmup_must_be_shorter_than_training(capsys):
    assert train_cli.main(FAST + ["--bits", "2", "--quant-option", "warmup=5", "--epochs", "5"]) == 2
    assert "must exceed the quantizer's warm-up" in capsys.readouterr().err


def test_cli_exports_a_loadable_packed_model(tmp_path, capsys):
    from gnaq import edge
    path = tmp_path / "m.gnaq"
    argv = [a for a in FAST if a != "--no-export"]
    assert train_cli.main(argv + ["--epochs", "1", "--bits", "2", "--out", str(tmp_path / "run"),
                                  "--export", str(path), "--export-history", "no"]) == 0
    assert "exported" in capsys.readouterr().err
    model = edge.load(path)
    assert model.kind == "quantized" and model.column_widths and not model.has_history  # graph-free, transform coded
    assert len(model.recommend(0, k=3, exclude_seen=False)) == 3
    path.unlink()
    assert train_cli.main(argv + ["--epochs", "1", "--bits", "2", "--quantizer", "gnaq-official",
                                  "--out", str(tmp_path / "official"), "--export", str(path)]) == 0
    assert "not exported" in capsys.readouterr().err and not path.exists()


def test_init_from_starts_every_quantizer_from_the_trained_embeddings(tmp_path):
    assert train_cli.main(FAST + ["--epochs", "3", "--out", str(tmp_path / "fp32")]) == 0
    lines = read_lines(tmp_path / "fp32" / "metrics.jsonl")
    assert not any(line["quantized"] for line in lines)  # a --bits 32 run is never "quantized"
    from gnaq.checkpoint import load_checkpoint
    trained = load_checkpoint(tmp_path / "fp32" / "best.npz")[0]["model.embedding"]
    data = Trainer(TrainConfig(progress=False, out=str(tmp_path / "x"))).data  # the CLI's synthetic data
    for quantizer in ("gnaq", "ste", "lsq"):
        cfg = TrainConfig(dim=16, layers=2, bits=2, quantizer=quantizer, epochs=1, progress=False,
                          init_from=str(tmp_path / "fp32"), out=str(tmp_path / quantizer))
        trainer = Trainer(cfg, data)
        np.testing.assert_array_equal(trainer.model.embedding.data, trained)
        assert trainer.model.quantizer.active  # no warm-up: quantized from the first step
        assert "warmup" not in cfg.quant_options
    # gnaq's intervals are initialised from the loaded rows (rule 1), exactly as after a warm-up
    from gnaq.quant.uniform import row_rms
    q = trainer.model.quantizer if quantizer == "gnaq" else Trainer(TrainConfig(
        dim=16, layers=2, bits=2, epochs=1, progress=False, init_from=str(tmp_path / "fp32"),
        out=str(tmp_path / "g")), data).model.quantizer
    np.testing.assert_allclose(np.exp(q.log_s0.data), q.step * row_rms(trained), rtol=1e-6)


def test_init_from_refuses_a_mismatched_checkpoint(tmp_path, capsys):
    assert train_cli.main(FAST + ["--epochs", "1", "--out", str(tmp_path / "fp32")]) == 0
    assert train_cli.main(FAST + ["--epochs", "1", "--dim", "8", "--init-from", str(tmp_path / "fp32"),
                                  "--out", str(tmp_path / "a")]) == 2
    assert "shape" in capsys.readouterr().err
    assert train_cli.main(FAST + ["--epochs", "1", "--layers", "3", "--init-from", str(tmp_path / "fp32"),
                                  "--out", str(tmp_path / "b")]) == 2
    assert "layers=2" in capsys.readouterr().err
    other = make_synthetic(seed=5)  # same shape as the CLI's synthetic data, another graph
    cfg = TrainConfig(dim=16, layers=2, epochs=1, progress=False, init_from=str(tmp_path / "fp32"), out=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="another graph"):
        Trainer(cfg, other)
    assert train_cli.main(FAST + ["--init-from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_run_ends_with_one_readable_line(tmp_path, capsys):
    assert train_cli.main(FAST + ["--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("done in 0m") and "test Recall@10" in last and "NDCG@20" in last


def test_auto_warmup_quantizes_from_the_best_full_precision_epoch(tmp_path):
    data = make_synthetic(seed=0)
    cfg = TrainConfig(dim=16, layers=2, bits=2, epochs=12, batch_size=256, lr=0.05, patience=2, progress=False,
                      out=str(tmp_path / "auto"))
    assert cfg.quant_options["warmup"] == "auto"
    trainer = Trainer(cfg, data)
    trainer.fit()
    lines = read_lines(tmp_path / "auto" / "metrics.jsonl")
    warm = [line for line in lines if not line["quantized"]]
    switch = trainer.model.quantizer.warmup
    assert switch == len(warm) and 0 < switch <= 8  # converged (or 2/3 of the budget), then quantized
    best_fp32 = max(warm, key=lambda line: line["ndcg@20"])
    assert trainer.warmup_state["epoch"] == best_fp32["epoch"]
    # the quantized phase started from the best full-precision embeddings: its intervals are rule 1 of them
    from gnaq.checkpoint import load_checkpoint
    from gnaq.quant.uniform import row_rms
    e_best = load_checkpoint(tmp_path / "auto" / "best_fp32.npz")[0]["model.embedding"]
    fresh = Trainer(TrainConfig(dim=16, layers=2, bits=2, epochs=12, progress=False, out=str(tmp_path / "x"),
                                init_from=str(tmp_path / "auto" / "best_fp32.npz")), data)
    np.testing.assert_allclose(np.exp(fresh.model.quantizer.log_s0.data), fresh.model.quantizer.step * row_rms(e_best),
                               rtol=1e-6)
    assert all(line["quantized"] for line in lines[switch:])


@pytest.mark.parametrize("options", [[], ["--quant-option", "quantize=z", "--quant-option", "transform=klt"],
                                     ["--quantizer", "pq", "--quant-option", "rotation=adaptive",
                                      "--quant-option", "subspaces=5", "--quant-option", "code_bits=4"],
                                     ["--quant-option", "quantize=z", "--quant-option", "transform=klt",
                                      "--quant-option", "idle_share=0.4", "--export-users", "no"]],
                         ids=["layer0", "klt", "pq", "klt-idle"])
def test_auto_warmup_interrupted_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, options):
    """klt: the axes are fitted when quantization starts and travel with the checkpoint; pq: so do its
    rotation, subspaces, codebooks and assignments; klt-idle: so do the idle items, ranked (idle_by
    "recommended") by the lists of the z quantization started from."""
    args = FAST + ["--bits", "2", "--epochs", "9", "--patience", "2", "--lr", "0.05"] + options
    assert train_cli.main(args + ["--out", str(tmp_path / "full")]) == 0
    full = read_lines(tmp_path / "full" / "metrics.jsonl")
    switch = sum(not line["quantized"] for line in full)
    assert 0 < switch < len(full)
    for cut_at in (switch, switch + 2):  # just before the first quantized epoch, and inside the quantized phase
        original = Trainer.train_epoch
        calls = {"n": 0}

        def interrupted(self):
            calls["n"] += 1
            if calls["n"] == cut_at + 1:
                raise KeyboardInterrupt
            return original(self)
        monkeypatch.setattr(Trainer, "train_epoch", interrupted)
        out = tmp_path / f"cut{cut_at}"
        assert train_cli.main(args + ["--out", str(out)]) == 130
        monkeypatch.setattr(Trainer, "train_epoch", original)
        assert train_cli.main(["--resume", str(out), "--quiet", "--no-export"]) == 0
        strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
        assert strip(read_lines(out / "metrics.jsonl")) == strip(full)


def test_a_run_that_starts_quantized_has_its_initial_codes_as_epoch_0(tmp_path):
    """--init-from a trained model: the quantizer's initial codes (post-training quantization) are evaluated
    as epoch 0 and selected like any epoch — kept when training only makes them worse (a wrecking rate)."""
    assert train_cli.main(FAST + ["--epochs", "4", "--out", str(tmp_path / "teacher")]) == 0
    base = FAST + ["--bits", "2", "--quant-option", "quantize=z", "--epochs", "3", "--target", "off",
                   "--init-from", str(tmp_path / "teacher")]
    for name, lr in (("fine", "0.01"), ("wrecked", "3")):
        assert train_cli.main(base + ["--quant-lr", lr, "--out", str(tmp_path / name)]) == 0
        records = read_lines(tmp_path / name / "metrics.jsonl")
        assert [r["epoch"] for r in records] == [0, 1, 2, 3] and records[0]["quantized"] and records[0]["loss"] is None
        assert records[0]["lr"] == float(lr)  # (the quantized phase's rate)
        result = json.loads((tmp_path / name / "result.json").read_text())
        assert result["best_epoch"] == max(records, key=lambda r: r["ndcg@20"])["epoch"]
    assert result["best_epoch"] == 0  # (wrecked)


def test_distillation_pulls_the_students_scores_to_the_teacher(tmp_path, capsys):
    assert train_cli.main(FAST + ["--epochs", "4", "--out", str(tmp_path / "teacher")]) == 0
    assert train_cli.main(FAST + ["--epochs", "1", "--distill", "1", "--out", str(tmp_path / "x")]) == 2
    assert "--distill needs --init-from" in capsys.readouterr().err
    gaps = {}
    for distill in (0.0, 5.0):
        cfg = TrainConfig(dim=16, layers=2, bits=2, epochs=3, batch_size=256, lr=0.01, progress=False,
                          quant_options={"quantize": "z"}, init_from=str(tmp_path / "teacher"), distill=distill,
                          eval_every=0, out=str(tmp_path / f"d{distill}"))  # (the trained codes, not a selection)
        trainer = Trainer(cfg)
        trainer.fit()
        teacher = Trainer(TrainConfig(dim=16, layers=2, epochs=1, progress=False, out=str(tmp_path / "t"),
                                      init_from=str(tmp_path / "teacher"))).model.final_embeddings()
        student = trainer.model.final_embeddings()
        gaps[distill] = float(np.mean((student[0] @ student[1].T - teacher[0] @ teacher[1].T) ** 2))
    assert gaps[5.0] < 0.5 * gaps[0.0]


def test_export_line_gives_the_file_size_and_its_ratio_to_float32(tmp_path, capsys):
    args = [a for a in FAST if a != "--no-export"]
    assert train_cli.main(args + ["--epochs", "2", "--bits", "2", "--quant-option", "quantize=z",
                                  "--out", str(tmp_path / "q")]) == 0
    line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("exported")][-1]
    size = (tmp_path / "q" / "model.gnaq").stat().st_size
    assert f"{size:,} bytes" in line and "smaller than the float32 file" in line
    ratio = float(line.split(" bytes, ")[1].split("x")[0])
    assert ratio > 3  # 2-bit codes + a scale per node against float32 rows, d = 16


def test_lr_drop_restores_the_best_epoch_at_a_tenth_of_the_rate(tmp_path, monkeypatch):
    """Validation scores scripted 0.1, 0.3, 0.2, 0.25: at epoch 3 (patience 1) the run goes back to
    epoch 2's weights with lr ÷ 10 and a fresh Adam, and goes on instead of stopping."""
    from gnaq.checkpoint import load_checkpoint
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.2, 0.1])
    original = Trainer.evaluate

    def evaluate(self, split="valid"):
        metrics = original(self, split)
        return {**metrics, "ndcg@20": next(scripted)} if split == "valid" else metrics
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    cfg = TrainConfig(dim=16, layers=2, epochs=6, batch_size=256, lr=0.01, patience=1, lr_drops=1, propagation="full",
                      progress=False, out=str(tmp_path / "run"))
    trainer = Trainer(cfg, make_synthetic(seed=0))
    seen = []
    trainer.fit(on_eval=lambda record: seen.append((record["epoch"], record["lr"], trainer.optimizer.t,
                                                     trainer.model.embedding.data.copy())))
    lrs = [lr for _, lr, _, _ in seen]
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.001])   # no gain at 3 → ÷ 10; none at 4 → stop
    assert trainer.lr_drops_done == 1 and trainer.best["epoch"] == 2
    best = load_checkpoint(tmp_path / "run" / "best.npz")[0]["model.embedding"]
    np.testing.assert_array_equal(seen[2][3], seen[1][3])          # after epoch 3: epoch 2's weights back
    assert seen[2][2] == 0 and seen[3][2] > 0                       # Adam started afresh
    assert not np.array_equal(seen[3][3], best)                     # and training went on from there


def test_lr_drops_resume_exactly(tmp_path, monkeypatch):
    args = FAST + ["--epochs", "10", "--patience", "1", "--lr", "0.05", "--lr-drops", "2"]
    assert train_cli.main(args + ["--out", str(tmp_path / "full")]) == 0
    lines = read_lines(tmp_path / "full" / "metrics.jsonl")
    drop = next(i for i, line in enumerate(lines) if line["lr"] < 0.05)  # first epoch at the lower rate
    original = Trainer.train_epoch
    calls = {"n": 0}

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == drop + 1:  # just after the drop: restored weights, fresh Adam, lower rate
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    assert train_cli.main(args + ["--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(Trainer, "train_epoch", original)
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--quiet", "--no-export"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(lines)


def test_default_deployment_is_graph_free_transform_coding_unless_one_is_chosen():
    default = TrainConfig(bits=2)
    assert default.quant_options == {"warmup": "auto", "quantize": "z", "transform": "auto", "busy_share": 0.25,
                                      "busy_bits": 3}
    assert default.quant_lr == pytest.approx(0.003)
    assert TrainConfig(bits=8).quant_options == {"warmup": "auto", "quantize": "z", "transform": "auto"}
    assert TrainConfig(bits=2, quant_lr=0.01).quant_lr == 0.01
    for chosen in ({"quantize": "layer0"}, {"mix_share": 0.25}, {"quantize": "z"}):
        config = TrainConfig(bits=2, quant_options=chosen)
        assert config.quant_options == {"warmup": "auto", **chosen} and config.quant_lr is None
    assert TrainConfig(bits=32).quant_options == {} and TrainConfig(bits=2, quantizer="ste").quant_options == {}
    # --size past ~27x (about a bit a value or less): 2-bit reference widths, 10% of the nodes busy at 3 bits
    assert TrainConfig(size=32).bits == 2 and TrainConfig(size=32).quant_options["busy_share"] == 0.1
    assert TrainConfig(size=16).bits == 2 and TrainConfig(size=16).quant_options["busy_share"] == 0.25
    # … and an item-only file that small leaves its 70% least-recommended items uncoded (idle_share)
    assert TrainConfig(size=32, export_users=False).quant_options["idle_share"] == 0.7
    assert "idle_share" not in TrainConfig(size=32).quant_options  # (whole files: users' rows are coded)
    assert "idle_share" not in TrainConfig(size=16, export_users=False).quant_options
    # an item-only file: users stay float in training (rule 8) unless asked otherwise
    assert TrainConfig(bits=2, export_users=False).quant_options["quantize_users"] is False
    assert TrainConfig(bits=2, export_users=False, quant_options={"quantize": "z", "transform": "klt",
                                                                   "quantize_users": True}).quant_options["quantize_users"]
    assert "quantize_users" not in TrainConfig(bits=2, export_users=False, quant_options={"quantize": "z"}).quant_options


def test_a_run_folder_from_an_older_gnaq_is_refused_in_one_line(tmp_path, capsys):
    assert train_cli.main(FAST + ["--bits", "2", "--quant-option", "quantize=layer0", "--epochs", "2",
                                  "--out", str(tmp_path / "old")]) == 0
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["quant_options"]["quantize"]  # what a run written before the graph-free default holds
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert train_cli.main(["--resume", str(tmp_path / "old"), "--epochs", "3", "--quiet", "--no-export"]) == 2
    assert "written by an older gnaq" in capsys.readouterr().err
    config["quant_options"]["quantize"], config["colour"] = "layer0", "blue"  # a field this gnaq does not know
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert train_cli.main(["--resume", str(tmp_path / "old"), "--epochs", "3", "--quiet", "--no-export"]) == 2
    assert "holds colour" in capsys.readouterr().err


@pytest.mark.parametrize("ratio", [4, 6])
def test_size_preset_writes_a_file_that_many_times_smaller(tmp_path, capsys, ratio):
    """--size RATIO: the graph-free default deployment at the bits a value the ratio leaves, one byte
    of scale a node; the history-free file is at least RATIO times smaller than float32's."""
    args = [a for a in FAST if a != "--no-export"] + ["--epochs", "2", "--export-history", "no"]
    assert train_cli.main(args + ["--size", f"{ratio}x", "--out", str(tmp_path / "s")]) == 0
    line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("exported")][-1]
    assert float(line.split(" bytes, ")[1].split("x")[0]) >= ratio
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["quant_options"]["file_ratio"] == ratio
    from gnaq import edge
    assert edge.load(tmp_path / "s" / "model.gnaq").header["scale_levels"] == 256  # one byte of scale a node
    assert train_cli.main(args + ["--size", "1000x", "--out", str(tmp_path / "t")]) == 2
    assert "too few" in capsys.readouterr().err
    assert train_cli.main(args + ["--size", "16x", "--target", "0.97"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_size_preset_sizes_an_item_only_file_as_itself(tmp_path, capsys):
    """--size with --export-users no: the ratio is the item-only file's against the float32 item-only
    file (item rows, with or without the Gram matrix), not the whole file's."""
    from gnaq import edge
    ratio = 4
    args = [a for a in FAST if a != "--no-export"] + ["--epochs", "2", "--export-history", "no"]
    for gram in ("yes", "no"):  # an item-only file is sized as itself: item rows, with or without Ḡ
        out, entropy = tmp_path / f"items-{gram}", "yes" if gram == "no" else "no"
        assert train_cli.main(args + ["--size", f"{ratio}x", "--export-users", "no", "--export-gram", gram,
                                      "--export-entropy", entropy, "--out", str(out)]) == 0
        line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("exported")][-1]
        assert ratio <= float(line.split(" bytes, ")[1].split("x")[0]) < 1.5 * ratio
        device = edge.load(out / "model.gnaq")
        assert device.n_users == 0 and (device.item_gram is not None) == (gram == "yes")
        saved = json.loads((out / "config.json").read_text())
        assert saved["export_users"] is False and saved["export_gram"] is (gram == "yes")
        assert saved["export_entropy"] is (entropy == "yes") and bool(device.header.get("huffman")) is (entropy == "yes")
