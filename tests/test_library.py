"""gnaq.Recommender against implicit's documented semantics, on a small synthetic matrix."""

import numpy as np
import pytest
import scipy.sparse

import gnaq
from conftest import FAST, make_recommender  # (the fitted-model fixtures are in conftest.py)
from gnaq.data import DataError, from_pandas
from gnaq.query import top_n
from gnaq.recommender import NotFittedError
from gnaq.training import TrainConfig



def test_parameters_follow_scikit_learn(user_items, tmp_path):
    model = gnaq.Recommender()
    defaults = TrainConfig()
    params = model.get_params()
    assert len(params) <= 12
    assert (params["factors"], params["epochs"], params["learning_rate"]) == \
        (defaults.dim, defaults.epochs, defaults.lr)  # the CLI's defaults
    assert model.set_params(factors=8, epochs=3) is model and model.get_params()["factors"] == 8
    with pytest.raises(ValueError, match="invalid parameter 'colour'"):
        model.set_params(colour=1)
    with pytest.raises(NotFittedError):
        model.recommend(0)
    with pytest.raises(ValueError, match="unknown 'colour'"):
        gnaq.Recommender(options={"colour": 1}).config()
    config = gnaq.Recommender(options={"layers": 1, "batch_size": 64}).config()
    assert (config.layers, config.batch_size) == (1, 64)
    # implicit saves an unfitted model's parameters; load gives the same unfitted model back
    model.set_params(options={"layers": 1})
    model.save(tmp_path / "params.json")
    again = gnaq.Recommender.load(tmp_path / "params.json")
    assert again.get_params() == model.get_params() and not hasattr(again, "_query")


def test_recommend_filters_liked_items_and_batches_like_single_calls(fitted, user_items):
    users = np.array([0, 5, 17, 42])
    ids, scores = fitted.recommend(users, user_items[users], N=7)
    assert ids.shape == scores.shape == (4, 7)
    for row, u in enumerate(users):
        liked = set(user_items[u].indices)
        assert not liked & set(ids[row].tolist())
        single_ids, single_scores = fitted.recommend(u, user_items[u], N=7)
        np.testing.assert_array_equal(single_ids, ids[row])
        np.testing.assert_allclose(single_scores, scores[row])
        assert np.all(np.diff(single_scores) <= 0)
    # brute force: the best unfiltered item of user 5 is the argmax of z_u · z_i
    full = fitted.user_factors[5].astype(np.float64) @ fitted.item_factors.T.astype(np.float64)
    top, _ = fitted.recommend(5, user_items[5], N=1, filter_already_liked_items=False)
    assert top[0] == int(np.argmax(full))


def test_n_beyond_items_and_items_restriction(fitted, user_items):
    n_items = user_items.shape[1]
    ids, _ = fitted.recommend(3, user_items[3], N=10 * n_items)
    assert len(ids) == n_items - user_items[3].nnz and len(set(ids.tolist())) == len(ids)
    allowed = [1, 2, 3, 50, 60]
    ids, _ = fitted.recommend(3, user_items[3], N=10, items=allowed)
    assert set(ids.tolist()) <= set(allowed) - set(user_items[3].indices)
    ids, scores = fitted.recommend([3, 4], user_items[[3, 4]], N=10, items=allowed)
    assert ids.shape == (2, 5) and np.isneginf(scores).sum() == sum(
        len(set(allowed) & set(user_items[u].indices)) for u in (3, 4))  # padded rows


def test_similar_items_and_users_rank_themselves_first(fitted):
    ids, scores = fitted.similar_items(7, N=5)
    assert ids[0] == 7 and scores[0] == pytest.approx(1.0) and np.all(np.diff(scores) <= 1e-12)
    ids, _ = fitted.similar_users(11, N=3)
    assert ids[0] == 11
    batch, _ = fitted.similar_items([7, 8], N=3)
    assert batch.shape == (2, 3) and list(batch[:, 0]) == [7, 8]


def test_save_then_load_gives_the_same_top_n(fitted, user_items, tmp_path):
    path = tmp_path / "model.gnaq"
    info = fitted.save(path)
    assert info["file_bytes"] == path.stat().st_size
    device = gnaq.load(path)
    for u in (0, 9, 33):
        ids, scores = fitted.recommend(u, user_items[u], N=10)
        ids_file, scores_file = device.recommend(u, N=10)
        np.testing.assert_array_equal(ids, ids_file)
        np.testing.assert_allclose(scores, scores_file, rtol=1e-5)
    np.testing.assert_array_equal(device.similar_items(7, N=5)[0], fitted.similar_items(7, N=5)[0])


def test_raw_ids_round_trip_from_a_frame(tmp_path):
    rng = np.random.default_rng(0)
    users = np.array([f"u{i}" for i in rng.integers(0, 40, 600)])
    items = np.array([f"song-{i}" for i in rng.integers(0, 30, 600)])
    frame = {"user": users, "item": items}  # indexed by column name, as a pandas DataFrame is
    matrix = from_pandas(frame)
    model = make_recommender(**FAST).fit(matrix)
    ids, _ = model.recommend("u3", N=5)
    assert all(i.startswith("song-") for i in ids)
    assert not set(ids.tolist()) & set(items[users == "u3"].tolist())
    assert model.similar_items("song-4", N=2)[0][0] == "song-4"
    with pytest.raises(KeyError, match="user 'nobody' is not in"):
        model.recommend("nobody")
    model.save(tmp_path / "labels.gnaq")
    device = gnaq.load(tmp_path / "labels.gnaq")
    np.testing.assert_array_equal(device.recommend("u3", N=5)[0], ids)


def test_from_pandas_with_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"uid": [10, 10, 20, 30, 30, 30], "iid": ["a", "b", "a", "c", "b", "a"]})
    matrix = from_pandas(frame, user_col="uid", item_col="iid")
    assert matrix.shape == (3, 3) and matrix.user_ids.tolist() == [10, 20, 30]
    with pytest.raises(DataError, match="no column 'user'"):
        from_pandas(frame)


def test_bad_input_gets_clear_errors(fitted, user_items):
    model = make_recommender(**FAST)
    with pytest.raises(DataError, match="no interactions"):
        model.fit(scipy.sparse.csr_matrix((5, 4)))
    with pytest.raises(DataError, match="negative"):
        model.fit(scipy.sparse.csr_matrix(np.array([[1.0, -1.0], [0.0, 1.0]])))
    with pytest.raises(DataError, match="NaN"):
        model.fit(scipy.sparse.csr_matrix(np.array([[1.0, np.nan], [0.0, 1.0]])))
    with pytest.raises(DataError, match="scipy.sparse"):
        model.fit(np.ones((3, 3)))
    with pytest.raises(DataError, match="valid has shape"):
        model.fit(user_items, valid=user_items[:10])
    with pytest.raises(ValueError, match="one row per userid"):
        fitted.recommend([1, 2], user_items[[1, 2, 3]])
    with pytest.raises(KeyError, match="user 10000 is not in"):
        fitted.recommend(10000)
    with pytest.raises(KeyError, match="item -3 is not in"):
        fitted.similar_items(-3)


def test_explicit_zeros_are_not_interactions(user_items):
    m = user_items.copy().astype(np.float32)
    m.data[::2] = 0  # stored but zero
    from gnaq.data import from_scipy
    assert from_scipy(m).matrix.nnz == user_items.nnz - len(m.data[::2])


def test_fit_resumes_from_its_checkpoint_folder(user_items, tmp_path):
    schedule = {"warmup": 1}  # fixed, so the 2-epoch and 4-epoch runs follow one schedule
    first = make_recommender(**{**FAST, "epochs": 2}, quant_options=schedule, checkpoint_dir=str(tmp_path)).fit(user_items)
    assert first.result_["epochs_run"] == 2
    again = make_recommender(**{**FAST, "epochs": 4}, quant_options=schedule, checkpoint_dir=str(tmp_path)).fit(user_items)
    assert again.result_["epochs_run"] == 4
    straight = make_recommender(**{**FAST, "epochs": 4}, quant_options=schedule).fit(user_items)
    np.testing.assert_allclose(again.user_factors, straight.user_factors, rtol=1e-5, atol=1e-6)


def test_a_fit_stopped_during_its_refit_resumes_the_refit_where_it_stopped(user_items, tmp_path, monkeypatch):
    from gnaq.training import Trainer
    options = dict(**{**FAST, "epochs": 40}, patience=2, refit=True)
    straight = make_recommender(**options).fit(user_items)
    train_epoch, refit_epochs = Trainer.train_epoch, []

    def stop_in_the_refit(self):
        if self.config.out.endswith("refit"):
            refit_epochs.append(self.epoch)
            if self.epoch == 3 and len(refit_epochs) == 4:  # the process dies in the refit's 4th epoch
                raise KeyboardInterrupt
        return train_epoch(self)
    monkeypatch.setattr(Trainer, "train_epoch", stop_in_the_refit)
    with pytest.raises(KeyboardInterrupt):
        make_recommender(**options, checkpoint_dir=str(tmp_path)).fit(user_items)
    resumed = make_recommender(**options, checkpoint_dir=str(tmp_path)).fit(user_items)
    assert refit_epochs[:5] == [0, 1, 2, 3, 3]  # the refit went on from its epoch 3, not from 0
    assert resumed.refit_result_["epochs_run"] == straight.refit_result_["epochs_run"]
    np.testing.assert_allclose(resumed.user_factors, straight.user_factors, rtol=1e-5, atol=1e-6)


def test_top_n_ties_go_to_the_smaller_index():
    scores = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [5.0, 5.0, 5.0, 5.0, 5.0]])
    index, values = top_n(scores, 2)
    np.testing.assert_array_equal(index, [[1, 2], [0, 1]])
    rng = np.random.default_rng(0)
    many = rng.integers(0, 4, size=(50, 40)).astype(float)
    index, _ = top_n(many, 7)
    brute = np.lexsort((np.broadcast_to(np.arange(40), many.shape), -many), axis=1)[:, :7]
    np.testing.assert_array_equal(index, brute)


def test_a_climbed_target_is_refit_from_scratch_on_every_interaction(user_items, tmp_path):
    assert gnaq.recommender.OPTIONS["target"] == "off"  # the ladder runs only when asked
    model = make_recommender(**{**FAST, "epochs": 40, "target": 1.5}, patience=2,  # unreachable: every rung
                             checkpoint_dir=str(tmp_path)).fit(user_items)
    assert [t["setting"] for t in model.result_["tried"]] == ["b2", "b2-mix25at4", "b3"]
    warm, chosen = model.result_["warmup_phase"], model.result_["phases"]["quantized"]
    refit = model.refit_result_["phases"]
    assert model.trainer_.config.init_from is None  # not the held-out run's fp32 model
    assert refit["full_precision"]["last_epoch"] == warm["best_epoch"]
    # (a rung whose initial codes were best, epoch 0, replays one quantized epoch)
    assert refit["quantized"]["last_epoch"] - refit["quantized"]["first_epoch"] + 1 == max(chosen["best_epoch"], 1)
    assert model.trainer_.config.bits == 3 and model.trainer_.data.train.nnz == user_items.nnz


def test_refit_replays_the_selected_schedule_on_every_interaction(user_items, tmp_path):
    model = make_recommender(**{**FAST, "epochs": 40}, patience=2, refit=True,
                             checkpoint_dir=str(tmp_path)).fit(user_items)
    chosen, refit = model.result_["phases"], model.refit_result_["phases"]
    assert model.trainer_.data.train.nnz == user_items.nnz  # nothing held out from the returned model
    assert refit["full_precision"] == {"first_epoch": 1, "last_epoch": chosen["full_precision"]["best_epoch"],
                                       "best_epoch": None, "ended_by": "fixed warm-up"}
    quantized_epochs = model.result_["best_epoch"] - chosen["full_precision"]["last_epoch"]
    assert refit["quantized"]["last_epoch"] - refit["quantized"]["first_epoch"] + 1 == quantized_epochs
    assert refit["quantized"]["ended_by"] == "epoch budget"
    held_out = make_recommender(**{**FAST, "epochs": 40}, patience=2, refit=False).fit(user_items)
    assert held_out.trainer_.data.train.nnz < user_items.nnz
    np.testing.assert_array_equal(model.result_["best_epoch"], held_out.result_["best_epoch"])  # same selection run
    assert not np.allclose(model.user_factors, held_out.user_factors)


def test_the_fast_sampled_mode_is_the_clis_from_the_library(user_items):
    """walks / reach / reach_split reach the TrainConfig fit runs (the CLI's --walks / --reach /
    --reach-split), and a fit in that mode trains: the deferred reach moved the rows (its config is the run's)."""
    model = make_recommender(factors=8, layers=2, epochs=2, batch_size=256, bits=32, propagation="sampled", walks=0,
                             reach=2, reach_split="lightgcn", progress=False, target="off", refit=False)
    config = model.config()
    assert (config.propagation, config.walks, config.reach, config.reach_split) == ("sampled", 0, 2, "lightgcn")
    defaults = gnaq.recommender.OPTIONS
    assert (defaults["walks"], defaults["reach"], defaults["reach_split"]) == (
        TrainConfig().walks, TrainConfig().reach, TrainConfig().reach_split)  # the CLI's defaults
    model.fit(user_items)
    assert model.trainer_.reach is not None and model.trainer_.config.reach == 2
    assert model.trainer_.reach.second_moment.any()  # the split's M took the moves' share
    with pytest.raises(ValueError, match="--reach"):
        make_recommender(propagation="sampled", walks=6, reach=2).config().validate()


def test_fitted_models_expose_their_ids_and_fold_in_from_raw_item_ids(fitted, user_items, tmp_path):
    assert fitted.item_ids.tolist() == list(range(user_items.shape[1]))
    assert fitted.user_ids.tolist() == list(range(user_items.shape[0]))
    liked = [fitted.item_ids[3], fitted.item_ids[40], fitted.item_ids[7]]
    row = scipy.sparse.csr_matrix((np.ones(3, dtype=np.float32), [3, 7, 40], [0, 3]), shape=(1, user_items.shape[1]))
    by_ids = fitted.recommend(None, liked, N=5, recalculate_user=True)
    by_row = fitted.recommend(None, row, N=5, recalculate_user=True)
    np.testing.assert_array_equal(by_ids[0], by_row[0])
    np.testing.assert_allclose(by_ids[1], by_row[1])
    assert not set(by_ids[0].tolist()) & {3, 7, 40}
    fitted.save(tmp_path / "m.gnaq")
    loaded = gnaq.Recommender.load(tmp_path / "m.gnaq")
    np.testing.assert_array_equal(loaded.item_ids, fitted.item_ids)


def test_recommend_from_candidates_returns_every_one_the_liked_last(fitted, user_items):
    liked = user_items[0].indices.tolist()[:2]
    candidates = liked + [i for i in range(user_items.shape[1]) if i not in user_items[0].indices][:3]
    ids, scores = fitted.recommend(0, user_items[0], N=len(candidates), items=candidates)
    assert sorted(ids.tolist()) == sorted(candidates)  # none dropped
    assert set(ids[-2:].tolist()) == set(liked) and np.isneginf(scores[-2:]).all()
    assert np.isfinite(scores[:-2]).all()


def test_progress_false_prints_nothing(user_items, capfd, caplog):
    make_recommender(**{**FAST, "epochs": 2, "refit": False}).fit(user_items[:40])  # (40 users: a noisy validation)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not [r for r in caplog.records if r.levelno >= 30]  # no warning reaches Python's last-resort handler


def test_time_budget_bounds_the_whole_fit_refit_included(user_items):
    import time
    started = time.perf_counter()
    model = make_recommender(**{**FAST, "epochs": 1000, "patience": 1000, "time_budget": 3.0}).fit(user_items)
    seconds = time.perf_counter() - started
    selection = model.result_
    assert selection["phases"][next(reversed(selection["phases"]))]["ended_by"] == "time budget"
    assert "skipped" in model.refit_result_ or model.refit_result_["epochs_run"] >= 1
    assert seconds < 3.0 + 3.0  # budgets bound training; data set-up and the export are outside them


def test_fewer_items_than_k_trains_and_evaluates(caplog):
    rng = np.random.default_rng(0)
    matrix = scipy.sparse.random(30, 10, density=0.4, random_state=rng, format="csr")
    matrix.data[:] = 1
    model = make_recommender(**{**FAST, "progress": True, "refit": False}).fit(matrix)
    assert 0 <= model.result_["test_recall@20"] <= 1 and 0 <= model.result_["test_ndcg@20"] <= 1
    assert sum("only 10 items" in r.getMessage() for r in caplog.records) == 1


def test_missing_or_mixed_ids_in_a_frame_name_the_column_and_row():
    with pytest.raises(DataError, match="column 'user' row 1: missing id"):
        from_pandas({"user": ["a", None, "b"], "item": ["x", "y", "z"]})
    with pytest.raises(DataError, match="column 'item' row 2: missing id"):
        from_pandas({"user": ["a", "c", "b"], "item": ["x", "y", float("nan")]})
    with pytest.raises(DataError, match="column 'user' row 1: id 3 is a int"):
        from_pandas({"user": ["a", 3, "b"], "item": ["x", "y", "z"]})
    assert from_pandas({"user": ["a", "c", "b"], "item": ["x", "y", "z"]}).shape == (3, 3)


def test_string_ids_reach_the_device_cli_and_the_example(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    from gnaq.data import from_events
    from gnaq.recommend import main as recommend_main
    rng = np.random.default_rng(1)
    users = [f"listener-{u}" for u in rng.integers(0, 40, 900)]
    items = [f"song-{i}" for i in rng.integers(0, 30, 900)]
    model = make_recommender(**{**FAST, "epochs": 2, "refit": False}).fit(from_events(users, items))
    path = tmp_path / "strings.gnaq"
    model.save(path)
    assert recommend_main([str(path), "--user", "listener-3", "-k", "3"]) == 0
    assert capsys.readouterr().out.count("song-") == 3
    assert recommend_main([str(path), "--items", "song-1, song-2", "-k", "2"]) == 0
    capsys.readouterr()
    assert recommend_main([str(path), "--items", "", "-k", "3"]) == 2
    assert "--items is empty" in capsys.readouterr().err
    example = Path(__file__).resolve().parent.parent / "examples" / "edge_without_numpy.py"
    out = subprocess.run([sys.executable, str(example), str(path), "listener-3"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("song-") == 10


@pytest.mark.parametrize("option, message", [
    ("delta=abc", "quantizer option delta='abc': expected a number"),
    ("foo=1", "quantizer 'gnaq' has no option 'foo'"),
])
def test_a_bad_quant_option_is_named_and_exits_2(option, message, capsys):
    from gnaq import train as train_cli
    assert train_cli.main(["--dataset", "synthetic", "--bits", "2", "--quant-option", option, "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert train_cli.main(["--dataset", "synthetic", "--bits", "32", "--quant-option", "delta=0.5", "--quiet"]) == 2
    assert "full precision takes no quantizer options" in capsys.readouterr().err
