"""The training schedule: phases end by their own patience, budgets stop a run cleanly and resumably."""

import json

import numpy as np

import pytest

from gnaq import train as train_cli
from gnaq.data import make_synthetic
from gnaq.training import TrainConfig, Trainer

TINY = dict(dim=8, layers=1, batch_size=512, lr=0.01, progress=False)


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def script_validation(monkeypatch, scores, metric="ndcg@20"):
    """Replace validation ``metric`` by the scripted sequence (the test split stays real)."""
    scripted = iter(scores)
    original = Trainer.evaluate

    def evaluate(self, split="valid"):
        metrics = original(self, split)
        return {**metrics, metric: next(scripted)} if split == "valid" else metrics
    monkeypatch.setattr(Trainer, "evaluate", evaluate)


def rising_then_flat(rising, flat, start=0.0):
    return [start + 0.01 * (i + 1) for i in range(rising)] + [start + 0.01 * rising] * flat


def test_each_phase_ends_by_its_own_patience_not_by_a_share_of_the_budget(tmp_path, monkeypatch):
    """Full precision improves for 70 epochs (past two thirds of 100, the old cap), the quantizer
    for 40 more: each phase runs until its own patience is spent, the default budget never bites."""
    warm_patience, patience = 3, 2
    script_validation(monkeypatch, rising_then_flat(70, warm_patience) + rising_then_flat(40, 10, start=1.0))
    cfg = TrainConfig(**TINY, bits=2, patience=patience, warmup_patience=warm_patience, out=str(tmp_path / "run"))
    assert cfg.epochs >= 1000  # the overall budget is large by default
    result = Trainer(cfg, make_synthetic(n_users=60, n_items=40, seed=0)).fit()
    fp32, quantized = result["phases"]["full_precision"], result["phases"]["quantized"]
    assert fp32 == {"first_epoch": 1, "last_epoch": 70 + warm_patience, "best_epoch": 70, "ended_by": "patience"}
    assert quantized == {"first_epoch": 74, "last_epoch": 73 + 40 + patience, "best_epoch": 73 + 40,
                         "ended_by": "patience"}
    assert result["best_epoch"] == 113 and result["epochs_run"] == 115
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["phases"] == result["phases"]
    lines = read_lines(tmp_path / "run" / "metrics.jsonl")
    assert [line["quantized"] for line in lines] == [False] * 73 + [True] * 42


def test_the_epoch_budget_bounds_the_warm_up_to_half_and_the_run_to_all(tmp_path, monkeypatch):
    script_validation(monkeypatch, rising_then_flat(100, 0))
    cfg = TrainConfig(**TINY, bits=2, epochs=10, out=str(tmp_path / "run"))
    result = Trainer(cfg, make_synthetic(n_users=60, n_items=40, seed=0)).fit()
    assert result["phases"]["full_precision"]["last_epoch"] == 5
    assert result["phases"]["full_precision"]["ended_by"] == "epoch budget"
    assert result["phases"]["quantized"] == {"first_epoch": 6, "last_epoch": 10, "best_epoch": 10,
                                             "ended_by": "epoch budget"}


def test_select_makes_another_validation_metric_choose_the_epoch_and_end_the_run(tmp_path, monkeypatch):
    """--select ndcg@5 (the released GNAQ code's early-stopping metric): a scripted NDCG@5 that peaks
    at epoch 4 picks epoch 4 and ends the run after --patience flat evaluations, whatever NDCG@20 does."""
    script_validation(monkeypatch, rising_then_flat(4, 10), metric="ndcg@5")
    cfg = TrainConfig(**TINY, bits=32, topk=(5, 20), select="ndcg@5", patience=2, out=str(tmp_path / "run"))
    result = Trainer(cfg, make_synthetic(n_users=60, n_items=40, seed=0)).fit()
    assert (result["best_epoch"], result["epochs_run"], result["selection_metric"]) == (4, 6, "valid ndcg@5")
    assert "test_ndcg@5" in result
    with pytest.raises(ValueError, match=r"--select 'ndcg@10' must be ndcg@K with K one of --topk \[5, 20\]"):
        TrainConfig(**TINY, topk=(5, 20), select="ndcg@10").validate()


FAST = ["--bits", "32", "--dataset", "synthetic", "--dim", "8", "--layers", "1", "--batch-size", "512", "--quiet", "--no-export"]


@pytest.mark.parametrize("cut, extend", [(["--epochs", "2"], ["--epochs", "5"]),
                                         (["--time-budget", "0.000001"], ["--time-budget", "1h"])],
                         ids=["epoch-budget", "time-budget"])
def test_a_spent_budget_stops_cleanly_and_resumes_into_the_uninterrupted_run(tmp_path, capsys, cut, extend):
    assert train_cli.main(FAST + ["--epochs", "5", "--out", str(tmp_path / "full")]) == 0
    assert train_cli.main(FAST + ["--epochs", "5", "--out", str(tmp_path / "cut")] + cut) == 0
    stopped = json.loads((tmp_path / "cut" / "result.json").read_text())
    reason = "time budget" if "--time-budget" in cut else "epoch budget"
    assert stopped["phases"]["full_precision"]["ended_by"] == reason
    assert stopped["epochs_run"] == (1 if reason == "time budget" else 2)  # the epoch under way completes
    assert f"ended by {reason}" in capsys.readouterr().err
    assert train_cli.main(["--resume", str(tmp_path / "cut"), "--quiet", "--no-export"] + extend) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k} for r in rows]  # noqa: E731
    assert strip(read_lines(tmp_path / "cut" / "metrics.jsonl")) == strip(read_lines(tmp_path / "full" / "metrics.jsonl"))
    full = json.loads((tmp_path / "full" / "result.json").read_text())
    resumed = json.loads((tmp_path / "cut" / "result.json").read_text())
    full.pop("seconds"), resumed.pop("seconds")
    assert resumed == full


@pytest.mark.parametrize("argv, message", [(["--time-budget", "soon"], "--time-budget"),
                                           (["--time-budget", "-5m"], "--time-budget"),
                                           (["--warmup-patience", "0"], "--warmup-patience must be positive"),
                                           (["--patience", "0"], "--patience must be positive")])
def test_bad_budget_arguments_are_one_line_errors(capsys, argv, message):
    try:
        code = train_cli.main(FAST + argv)
    except SystemExit as exc:  # argparse's type errors exit from the parser
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_target_climbs_the_ladder_until_one_setting_keeps_it(tmp_path):
    from gnaq.target import fit_to_target
    data = make_synthetic(n_users=60, n_items=40, seed=0)
    config = TrainConfig(**TINY, bits=2, patience=2, epochs=30, out=str(tmp_path / "run"))
    trainer, result, tried = fit_to_target(config, data, target=0.5)
    assert [label for label, _ in tried] == ["b2"] and result["valid_kept"] >= 0.5  # met at once: nothing else
    assert result["valid_kept_ndcg"] == result["quantized_valid"] / result["full_precision_valid"]
    assert 0 < result["valid_kept"] == min(result["valid_kept_ndcg"], result["valid_kept_recall"])
    trainer, result, tried = fit_to_target(TrainConfig(**TINY, bits=2, patience=2, epochs=30, out=str(tmp_path / "all")),
                                           data, target=10.0)  # unreachable: every rung, the last kept
    assert [label for label, _ in tried] == ["b2", "b2-mix25at4", "b3"]
    assert trainer.config.bits == 3 and trainer.config.init_from.endswith("best_fp32.npz")
    assert [t["setting"] for t in result["tried"]] == ["b2", "b2-mix25at4", "b3"]
    rungs = [tmp_path / "all", tmp_path / "all" / "target-b2-mix25at4", tmp_path / "all" / "target-b3"]
    references = [json.loads((rung / "result.json").read_text())["full_precision_valid"] for rung in rungs]
    assert references == pytest.approx([references[0]] * 3, rel=1e-6)  # every rung against the same fp32 model
    explicit = TrainConfig(**TINY, bits=2, patience=2, epochs=30, quant_options={"quantize": "layer0"},
                           out=str(tmp_path / "explicit"))
    _, _, tried = fit_to_target(explicit, data, target=10.0)
    assert len(tried) == 1  # a deployment the user chose is not replaced


def test_the_default_target_asks_98_percent_of_the_default_deployment_only():
    from gnaq.target import DEFAULT_TARGET, resolve_target
    default = TrainConfig(**TINY, bits=2)
    assert DEFAULT_TARGET == 0.98 and resolve_target("auto", default) == 0.98
    assert resolve_target("off", default) is None and resolve_target(None, default) is None
    assert resolve_target("0.97", default) == 0.97 and resolve_target(0.9, default) == 0.9
    assert resolve_target("auto", TrainConfig(**TINY, bits=32)) is None  # nothing to climb
    assert resolve_target("auto", TrainConfig(**TINY, bits=8)) is None  # no wider rung
    assert resolve_target("auto", TrainConfig(**TINY, bits=2, quant_options={"quantize": "layer0"})) is None
    assert resolve_target("auto", TrainConfig(**TINY, size=32, export_users=False)) is None  # --size fixes the file
    with pytest.raises(ValueError, match="'auto', 'off' or a fraction"):
        resolve_target("most", default)
    with pytest.raises(ValueError, match="positive"):
        resolve_target(0, default)


def test_the_main_command_keeps_its_bits_and_climbs_only_when_asked(tmp_path, capsys):
    argv = FAST + ["--bits", "2", "--patience", "2", "--epochs", "30"]
    exporting = [a for a in argv if a != "--no-export"]
    assert train_cli.main(exporting + ["--out", str(tmp_path / "plain")]) == 0  # no --target: exactly 2 bits
    err = capsys.readouterr().err
    assert "tried for" not in err and "2 bits a value" in err
    assert not list((tmp_path / "plain").glob("target-*"))
    plain = json.loads((tmp_path / "plain" / "result.json").read_text())
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["bits"] == 2
    # a target out of reach: every rung is tried, the last one chosen
    assert train_cli.main(exporting + ["--out", str(tmp_path / "climb"), "--target", "1.2"]) == 0
    err = capsys.readouterr().err
    assert "tried for --target 1.2" in err and "chose b" in err and "--target off keeps exactly --bits 2" in err
    assert f"exported {tmp_path / 'climb' / 'model.gnaq'}" in err  # the chosen model, in the folder asked for
    assert not list((tmp_path / "climb").glob("target-*/model.gnaq"))
    record = json.loads((tmp_path / "climb" / "target.json").read_text())
    assert record["target"] == 1.2 and record["tried"][0] == {"setting": "b2", "valid_kept": plain["valid_kept"]}
    chosen = json.loads((tmp_path / "climb" / record["chosen"] / "result.json").read_text())
    top = json.loads((tmp_path / "climb" / "result.json").read_text())  # the top level describes the exported model
    assert top["test_recall@20"] == chosen["test_recall@20"] and top["chosen"] == record["chosen"]
    assert top["bits"] == json.loads((tmp_path / "climb" / record["chosen"] / "config.json").read_text())["bits"]
    assert chosen["full_precision_valid"] == pytest.approx(plain["full_precision_valid"], rel=1e-6)
    assert record["warmup_phase"] == plain["phases"]["full_precision"]
    assert train_cli.main(["--resume", str(tmp_path / "climb")]) == 0  # resumed when done: the same choice, said so
    err = capsys.readouterr().err
    assert "tried for --target 1.2" in err and "--target off keeps exactly --bits 2" in err
    assert json.loads((tmp_path / "climb" / "target.json").read_text())["chosen"] == record["chosen"]


def test_sampled_validation_is_a_fixed_seeded_sample_and_reports_its_standard_error(tmp_path):
    from gnaq.metrics import evaluate
    data = make_synthetic(n_users=300, n_items=80, seed=1)
    config = TrainConfig(**TINY, valid_users=50, epochs=3, out=str(tmp_path / "a"))
    first = Trainer(config, data)
    users = first.validation_users()
    candidates = np.flatnonzero(np.diff(data.valid.indptr) > 0)
    assert len(users) == 50 and set(users.tolist()) <= set(candidates.tolist()) and np.all(np.diff(users) > 0)
    again = Trainer(TrainConfig(**TINY, valid_users=50, epochs=3, out=str(tmp_path / "b")), data)
    np.testing.assert_array_equal(again.validation_users(), users)  # the same sample from the same seed
    other = Trainer(TrainConfig(**TINY, valid_users=50, epochs=3, seed=7, out=str(tmp_path / "c")), data)
    assert not np.array_equal(other.validation_users(), users)
    first.fit()
    lines = read_lines(tmp_path / "a" / "metrics.jsonl")
    assert [line["valid_users"] for line in lines] == [50, 50, 50]
    user_emb, item_emb = first.model.final_embeddings()  # the line's metric is the sample's, with its error
    direct = evaluate(user_emb, item_emb, data.train, data.valid, ks=(10, 20), users=users)
    assert first.evaluate("valid")["ndcg@20"] == pytest.approx(direct["ndcg@20"])
    assert 0 < lines[-1]["ndcg@20_se"] < lines[-1]["ndcg@20"]
    full = Trainer(TrainConfig(**TINY, epochs=3, out=str(tmp_path / "d")), data).evaluate("valid")
    assert full["users"] == len(candidates)
