import os
from pathlib import Path

import numpy as np
import pytest

from gnaq.data import (DataError, load_dataset, make_synthetic, read_lightgcn_file,
                       read_ratings_dat, split_per_user)
from gnaq.data.__main__ import main as data_main

FIXTURES = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "lightgcnpp"


@pytest.fixture
def fixtures(tmp_path):
    """tests/data/**/NAME.fixture copied to tmp/**/NAME (the names the loaders expect)."""
    import shutil
    for src in FIXTURES.rglob("*.fixture"):
        dst = tmp_path / "data" / src.relative_to(FIXTURES).with_suffix("")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return tmp_path / "data"


def test_ratings_dat_parsing_and_id_maps(fixtures):
    users, items = read_ratings_dat(fixtures / "ml-1m" / "ratings.dat")
    assert len(users) == 17 and users[0] == 10 and items[-1] == 110
    data = load_dataset("ml-1m", data_dir=fixtures, download_missing=False, valid_ratio=0.0)
    assert data.n_users == 4 and data.n_items == 11
    assert data.notes[0].startswith("found ratings layout")
    assert list(data.user_ids) == [10, 20, 30, 40]
    # (10, 100) appears twice: merged; every rating counts as an interaction
    assert data.train.nnz + data.test.nnz == 16
    assert np.all(data.train.data == 1.0)
    # every user keeps ≥ 1 train item (user 40 has a single interaction)
    assert np.all(np.diff(data.train.indptr) >= 1)


def test_ratings_threshold(fixtures):
    users, _ = read_ratings_dat(fixtures / "ml-1m" / "ratings.dat", min_rating=4)
    assert len(users) == 11


def test_split_is_seeded_and_has_the_right_ratios():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = np.concatenate([rng.permutation(100)[:20] for _ in range(50)])
    a = split_per_user(users, items, 0.2, 0.1, seed=7)
    b = split_per_user(users, items, 0.2, 0.1, seed=7)
    c = split_per_user(users, items, 0.2, 0.1, seed=8)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()
    assert not np.array_equal(a[2], c[2])
    train, valid, test = a
    assert np.all(train ^ valid ^ test) and not np.any(train & test)
    assert np.all(np.bincount(users[test]) == 4) and np.all(np.bincount(users[valid]) == 2)


def test_min_valid_holds_out_an_item_of_every_user_with_two():
    users = np.repeat(np.arange(5), [1, 2, 3, 9, 30])
    items = np.concatenate([np.arange(n) for n in (1, 2, 3, 9, 30)])
    train, valid, _ = split_per_user(users, items, 0.0, 0.1, seed=0)
    assert np.bincount(users[valid], minlength=5).tolist() == [0, 0, 0, 0, 3]  # ⌊0.1·n⌋ alone
    train, valid, _ = split_per_user(users, items, 0.0, 0.1, seed=0, min_valid=1)
    assert np.bincount(users[valid], minlength=5).tolist() == [0, 1, 1, 1, 3]
    assert np.all(np.bincount(users[train], minlength=5) >= 1)  # the one-item user keeps it


def test_split_keeps_one_train_item_per_user():
    users = np.array([0, 1, 1, 2, 2, 2])
    train, valid, test = split_per_user(users, np.arange(6), 0.5, 0.4, seed=0)
    assert np.all(np.bincount(users[train], minlength=3) >= 1)


def test_lightgcn_format_and_merge_valid(fixtures):
    data = load_dataset(str(fixtures / "lgcn_small"), download_missing=False)
    assert (data.n_users, data.n_items) == (4, 6)           # ids up to 5 appear only in test
    assert data.train.nnz == 8                                # "3 1 1 0": duplicate merged
    assert data.valid.nnz == 2 and data.test.nnz == 4        # user 3 has an empty test line
    assert data.train[2].indices.tolist() == [4]
    merged = data.merge_valid_into_train()
    assert merged.valid is None and merged.train.nnz == 10
    stats = data.stats()
    assert stats["items_without_train"] == 1 and stats["test_users"] == 3


@pytest.mark.parametrize("content, message", [
    ("0 1 2\n1 x 3\n", "line 2: ids must be integers"),
    ("0 1\n-1 2\n", "line 2: ids must be non-negative"),
])
def test_malformed_lightgcn_line_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "train.txt"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_lightgcn_file(path)
    assert str(path) in str(info.value)


def test_malformed_ratings_line(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::5::100\n1::3::5\n")
    with pytest.raises(DataError, match=r"ratings.dat, line 2: expected"):
        read_ratings_dat(path)
    path.write_text("1::2::five::100\n")
    with pytest.raises(DataError, match="line 1: non-numeric"):
        read_ratings_dat(path)


def test_empty_files(tmp_path):
    (tmp_path / "train.txt").write_text("")
    (tmp_path / "test.txt").write_text("0 1\n")
    with pytest.raises(DataError, match="train.txt: file is empty"):
        load_dataset(str(tmp_path), download_missing=False)
    (tmp_path / "ratings.dat").write_text("")
    with pytest.raises(DataError, match="no ratings found"):
        read_ratings_dat(tmp_path / "ratings.dat")


def test_missing_dataset_offline_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("GNAQ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GNAQ_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"'gowalla' not found.*Download .*gowalla/train.txt.*--data-dir"):
        load_dataset("gowalla", data_dir=tmp_path, download_missing=False)
    with pytest.raises(DataError, match="unknown dataset 'nope'"):
        load_dataset("nope")


def test_download_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path, monkeypatch):
    from gnaq.data import registry
    monkeypatch.setenv("GNAQ_CACHE_DIR", str(tmp_path))
    source = tmp_path / "src.txt"
    source.write_text("0 1 2\n")
    spec = registry.DatasetSpec("toy", (registry.RemoteFile(source.as_uri(), "train.txt", "0" * 64),), "lightgcn")
    with pytest.raises(DataError, match="sha256 mismatch"):
        registry.download(spec, progress=False)
    assert os.listdir(tmp_path / "toy") == []
    good = registry.RemoteFile(source.as_uri(), "train.txt", registry.file_digest(source))
    folder = registry.download(registry.DatasetSpec("toy", (good,), "lightgcn"), progress=False)
    assert (folder / "train.txt").read_text() == "0 1 2\n"


def test_data_dir_env_var(fixtures, monkeypatch, tmp_path):
    monkeypatch.setenv("GNAQ_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GNAQ_DATA_DIR", str(fixtures))
    assert load_dataset("ml-1m-raw", download_missing=False).n_users == 4


def test_synthetic_is_seeded_and_power_law():
    a, b = make_synthetic(seed=3), make_synthetic(seed=3)
    assert (a.train != b.train).nnz == 0 and (a.test != b.test).nnz == 0
    deg = np.diff(a.train.indptr)
    assert deg.max() > 4 * np.median(deg)


def test_info_cli(fixtures, capsys):
    assert data_main(["info", str(fixtures / "lgcn_small"), "--no-download"]) == 0
    assert "users    4" in capsys.readouterr().out
    assert data_main(["info", "nope"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/datasets/lightgcnpp not present")
@pytest.mark.parametrize("name, users, items, train", [
    ("ml-1m", 6039, 3628, 590733), ("gowalla", 29858, 40981, 719081), ("lastfm", 1885, 17388, 64315)])
def test_real_splits_match_sources(name, users, items, train):
    data = load_dataset(name, data_dir=SHARED, download_missing=False)
    assert (data.n_users, data.n_items, data.train.nnz) == (users, items, train)
    assert not any("differs" in n for n in data.notes)   # checksums match the registry
    if name == "gowalla":
        assert data.merge_valid_into_train().train.nnz == 810128


def test_selfrec_download_is_regrouped_then_verified(tmp_path, monkeypatch):
    from gnaq.data import registry
    monkeypatch.setenv("GNAQ_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "src.txt"
    source.write_text("0 6 1\n0 2 1\n3 5 1\n1 4 1\n\n")  # user item rating, a user's lines together
    expected = tmp_path / "expected.txt"
    expected.write_text("0 6 2\n3 5\n1 4\n")
    good = registry.RemoteFile(source.as_uri(), "train.txt", registry.file_digest(expected), convert="selfrec")
    folder = registry.download(registry.DatasetSpec("toy", (good,), "lightgcn"), progress=False)
    assert (folder / "train.txt").read_text() == expected.read_text()
    source.write_text("0 6 1\n0 x 1\n")
    bad = registry.RemoteFile(source.as_uri(), "train.txt", registry.file_digest(expected), convert="selfrec")
    with pytest.raises(DataError, match=r"src\..*line 2: expected `user item rating`"):
        registry.download(registry.DatasetSpec("toy2", (bad,), "lightgcn"), progress=False)
    assert os.listdir(tmp_path / "cache" / "toy2") == []


SELFREC = SHARED.parent / "selfrec"


@pytest.mark.skipif(not (SELFREC / "amazon-sports").is_dir(), reason="../shared/datasets/selfrec not present")
def test_amazon_sports_matches_sources_and_the_downloader_rebuilds_it_byte_for_byte(tmp_path):
    from gnaq.data import registry
    data = load_dataset("amazon-sports", data_dir=SELFREC, download_missing=False)
    assert (data.n_users, data.n_items, data.train.nnz, data.valid.nnz, data.test.nnz) == \
        (35598, 18357, 211807, 23809, 60721)
    assert not any("differs" in n for n in data.notes)   # the registry's checksums are the shared copy's
    for remote in registry.REGISTRY["amazon-sports"].files:  # upstream's form → the downloader's rule → same bytes
        lines = (SELFREC / "amazon-sports" / remote.filename).read_text().splitlines()
        upstream = tmp_path / remote.filename
        upstream.write_text("".join(f"{f[0]} {i} 1\n" for f in map(str.split, lines) for i in f[1:]))
        registry.selfrec_to_lightgcn(upstream, tmp_path / "rebuilt.txt")
        assert registry.file_digest(tmp_path / "rebuilt.txt") == remote.sha256
