"""Named datasets: where to find them locally, where to download them, how to verify them.

Lookup order for ``load_dataset(name)``: ``data_dir`` (``--data-dir``), then ``$GNAQ_DATA_DIR``,
then the cache ``~/.cache/gnaq``; in each root the folder ``root/<name>/`` (the dataset's own
layout) and then ``root`` itself. A folder holding ``train.txt`` + ``test.txt`` (and optionally
``valid.txt``) is read as a LightGCN split; one holding ``ratings.dat`` as raw MovieLens, split
per user with the given seed. When nothing is found and ``download`` is true, the files are
fetched into the cache with a progress bar, checksum-verified, and renamed into place.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .interactions import DataError, Interactions, binary_csr
from .readers import read_lightgcn_file, read_ratings_dat
from .split import split_per_user
from .synthetic import make_synthetic

log = logging.getLogger("gnaq.data")

_LIGHTGCNPP = ("https://raw.githubusercontent.com/geon0325/LightGCNpp/"
               "a394f79a7aceb8f485f6bcb549b4865fe83f1d49/data/{name}/{split}.txt")
_LIGHTGCN = "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/{name}/{split}.txt"
_SELFREC = ("https://raw.githubusercontent.com/geon0325/LightGCNpp/"
            "a394f79a7aceb8f485f6bcb549b4865fe83f1d49/SELFRec/dataset/{name}/{split}.txt")


@dataclass(frozen=True)
class RemoteFile:
    url: str
    filename: str
    sha256: str | None = None   # None: unknown upstream; recorded on first download and re-checked
    md5: str | None = None
    convert: str | None = None  # "selfrec": `user item rating` lines regrouped to `user item ...` (sums: of the result)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    files: tuple                      # RemoteFile, downloaded into cache/<name>/
    fmt: str                          # "lightgcn" or "ratings"
    notes: str = ""
    extract: dict = field(default_factory=dict)  # zip member -> local filename


def _lightgcnpp(name, sums):
    return DatasetSpec(name, tuple(RemoteFile(_LIGHTGCNPP.format(name=name, split=s), f"{s}.txt", h)
                                   for s, h in sums.items()), "lightgcn",
                       "LightGCNpp (RecSys 2024) split: train/valid/test, 0-based ids")


def _selfrec(name, sums):
    return DatasetSpec(name, tuple(RemoteFile(_SELFREC.format(name=name, split=s), f"{s}.txt", h, convert="selfrec")
                                   for s, h in sums.items()), "lightgcn",
                       "SELFRec split (LightGCNpp's copy), regrouped one line a user: train/valid/test, 0-based ids")


def selfrec_to_lightgcn(source, target, name=None) -> None:
    """Rewrite SELFRec's one interaction a line (``user item rating``) as LightGCN's one user a
    line (``user item item ...``): users in order of first appearance, items in file order.
    ``name`` (default: ``source``) is what an error calls the file, e.g. its address."""
    rows, order = {}, []
    with open(source) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
                raise DataError(f"{name or source}, line {number}: expected `user item rating`: "
                                f"{line.rstrip()[:120]!r}")
            if fields[0] not in rows:
                rows[fields[0]] = []
                order.append(fields[0])
            rows[fields[0]].append(fields[1])
    with open(target, "w") as out:
        out.writelines(f"{user} {' '.join(rows[user])}\n" for user in order)


REGISTRY = {
    "ml-1m": _lightgcnpp("ml-1m", {
        "train": "dfa3a7a866feade29ca5722ac0423c1b0317ac1f6ad38a55fc1a7ceeb9cee3bb",
        "valid": "429fe0d750b304677898d7eeb1080764bbf06550b94c9508b8cc8cd0573e3dfc",
        "test": "0d58f78bbf606f401aec2efe3f519b945c458c8398955f986e03b880fbbd16a6"}),
    "ml-1m-raw": DatasetSpec(
        "ml-1m-raw",
        (RemoteFile("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip",
                    md5="c4d9eecfca2ab87c1945afe126590906"),),
        "ratings", "GroupLens MovieLens-1M ratings.dat, split per user (seeded 80/20)",
        extract={"ml-1m/ratings.dat": "ratings.dat"}),
    "gowalla": _lightgcnpp("gowalla", {
        "train": "d47e01d060624f389956c0b2f89a1ed8c453ea158631cd2b5320c241f3e1a073",
        "valid": "ddc22c1cd9a7d14fd5cd0c98b1473b614f4323038fef74ae0d28cc9c92a08ba2",
        "test": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"}),
    "lastfm": _lightgcnpp("lastfm", {
        "train": "1845769cb1a9834692d3cf884de523d23aa126fa6b58eb5f49e9628e8c317705",
        "valid": "9ae3440becfcbba19d5a5a8298b7933126f89424a468de5765bf1c6f08a9e3eb",
        "test": "0f0a15e3de2f868554ee1e32190c51db3e0ad0c4138e1428c66ba6de86102755"}),
    "yelp2018": DatasetSpec("yelp2018", tuple(RemoteFile(_LIGHTGCN.format(name="yelp2018", split=s), f"{s}.txt")
                                              for s in ("train", "test")), "lightgcn", "LightGCN official split"),
    "amazon-book": DatasetSpec("amazon-book", tuple(RemoteFile(_LIGHTGCN.format(name="amazon-book", split=s),
                                                               f"{s}.txt")
                                                    for s in ("train", "test")), "lightgcn", "LightGCN official split"),
    "amazon-sports": _selfrec("amazon-sports", {
        "train": "fa14594d9108791e512c21904c0906f351d8b76507007283c7aef333f49d9ff0",
        "valid": "64a299049ef99b8250fcd9bcf4df8dd021b818001f0530662a41596884ebfad8",
        "test": "5c9e493ce3d204706ec4b407519f858d8750addbc50d0b587ff2ac6d1ae41131"}),
}
DATASET_NAMES = ("synthetic",) + tuple(REGISTRY)


def cache_dir() -> Path:
    return Path(os.environ.get("GNAQ_CACHE_DIR", Path.home() / ".cache" / "gnaq"))


def candidate_dirs(name: str, data_dir=None) -> list:
    """Folders searched for the dataset's files, in order."""
    roots = [Path(p) for p in (data_dir, os.environ.get("GNAQ_DATA_DIR")) if p] + [cache_dir()]
    out = []
    for root in roots:
        out += [root / name, root]
        if name == "ml-1m-raw":
            out.insert(-1, root / "ml-1m")
    return out


def detect_layout(folder: Path) -> str | None:
    """``lightgcn`` (train.txt + test.txt), ``ratings`` (ratings.dat) or None."""
    if (folder / "train.txt").is_file() and (folder / "test.txt").is_file():
        return "lightgcn"
    if (folder / "ratings.dat").is_file():
        return "ratings"
    return None


def file_digest(path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, remote: RemoteFile) -> None:
    if remote.md5 and file_digest(path, "md5") != remote.md5:
        raise DataError(f"{path}: md5 mismatch (expected {remote.md5}); the download is corrupt")
    if remote.sha256 and file_digest(path) != remote.sha256:
        raise DataError(f"{path}: sha256 mismatch (expected {remote.sha256}); the download is corrupt")


def download(spec: DatasetSpec, progress: bool = True) -> Path:
    """Fetch every file of spec into cache/<name>/ (temp file, verify, atomic rename)."""
    from tqdm.auto import tqdm
    folder = cache_dir() / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    for remote in spec.files:
        target = folder / remote.filename
        if target.exists():
            continue
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=30) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename, disable=not progress) as bar:
                    for block in iter(lambda: resp.read(1 << 16), b""):
                        out.write(block)
                        bar.update(len(block))
            if remote.convert == "selfrec":
                selfrec_to_lightgcn(tmp, tmp + ".txt", name=remote.url)
                os.replace(tmp + ".txt", tmp)
            _verify(Path(tmp), remote)
            if remote.sha256 is None:  # no published checksum: record one, re-check on later loads
                Path(str(target) + ".sha256").write_text(file_digest(tmp) + "\n")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    for member, local in spec.extract.items():
        if not (folder / local).exists():
            archive = folder / spec.files[0].filename
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
                fd, tmp = tempfile.mkstemp(dir=folder)
                with os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(tmp, folder / local)
    return folder


def _check_local(folder: Path, spec: DatasetSpec | None, notes: list) -> None:
    """Warn (not fail) when a local copy differs from the published file: it may be a custom split."""
    if spec is None or spec.fmt != "lightgcn":
        return
    for remote in spec.files:
        path = folder / remote.filename
        expected = remote.sha256
        recorded = Path(str(path) + ".sha256")
        if expected is None and recorded.exists():
            expected = recorded.read_text().strip()
        if path.exists() and expected and file_digest(path) != expected:
            msg = f"{path}: sha256 differs from the published {spec.name} file; using it as given"
            log.warning(msg)
            notes.append(msg)


def load_lightgcn_folder(folder: Path, name: str) -> Interactions:
    """Read train.txt, optional valid.txt, test.txt; n_users/n_items = largest id + 1 over all."""
    parts = {s: read_lightgcn_file(folder / f"{s}.txt") for s in ("train", "valid", "test")
             if (folder / f"{s}.txt").exists()}
    n_users = 1 + max(int(u.max(initial=-1)) for u, _ in parts.values())
    n_items = 1 + max(int(i.max(initial=-1)) for _, i in parts.values())
    if parts["train"][0].size == 0:
        raise DataError(f"{folder / 'train.txt'}: no interactions")
    csr = {s: binary_csr(u, i, n_users, n_items) for s, (u, i) in parts.items()}
    return Interactions(name, csr["train"], csr["test"], csr.get("valid"), source=str(folder))


def load_ratings_folder(folder: Path, name: str, seed: int = 0, test_ratio: float = 0.2,
                        valid_ratio: float = 0.0, min_rating: float | None = None) -> Interactions:
    """Read ratings.dat, map raw ids to contiguous indices, split per user (seeded)."""
    raw_users, raw_items = read_ratings_dat(folder / "ratings.dat", min_rating)
    user_ids, users = np.unique(raw_users, return_inverse=True)
    item_ids, items = np.unique(raw_items, return_inverse=True)
    train, valid, test = split_per_user(users, items, test_ratio, valid_ratio, seed)
    csr = lambda m: binary_csr(users[m], items[m], len(user_ids), len(item_ids))  # noqa: E731
    return Interactions(name, csr(train), csr(test), csr(valid) if valid_ratio > 0 else None,
                        user_ids, item_ids, source=str(folder / "ratings.dat"))


def load_dataset(name: str, data_dir=None, merge_valid: bool = False, download_missing: bool = True,
                 seed: int = 0, test_ratio: float = 0.2, valid_ratio: float = 0.1,
                 min_rating: float | None = None, progress: bool = True) -> Interactions:
    """Load a named dataset (see DATASET_NAMES) or a folder path; see the module docstring."""
    if name == "synthetic":
        data = make_synthetic(seed=seed)
        return data.merge_valid_into_train() if merge_valid else data
    spec = REGISTRY.get(name)
    folders = [Path(name)] if spec is None and Path(name).is_dir() else candidate_dirs(name, data_dir)
    if spec is None and not Path(name).is_dir():
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(DATASET_NAMES)} "
                        "or a folder holding train.txt/test.txt or ratings.dat")
    found = next(((f, detect_layout(f)) for f in folders if detect_layout(f)), None)
    if found is None and spec is not None and download_missing:
        try:
            folder = download(spec, progress)
            found = (folder, detect_layout(folder))
        except (OSError, DataError) as exc:
            raise DataError(_not_found_message(spec, folders, exc)) from None
    if found is None:
        raise DataError(_not_found_message(spec, folders, None))
    folder, layout = found
    notes = [f"found {layout} layout in {folder}"]
    log.info(notes[0])
    _check_local(folder, spec, notes)
    if layout == "lightgcn":
        data = load_lightgcn_folder(folder, Path(name).name)
    else:
        data = load_ratings_folder(folder, Path(name).name, seed, test_ratio, valid_ratio, min_rating)
    data.notes = notes + data.notes
    return data.merge_valid_into_train() if merge_valid else data


def _not_found_message(spec, folders, exc) -> str:
    where = ", ".join(str(f) for f in folders)
    if spec is None:
        return f"no train.txt/test.txt or ratings.dat found in: {where}"
    files = " ".join(r.url for r in spec.files)
    why = f" (download failed: {exc})" if exc else ""
    return (f"dataset {spec.name!r} not found in: {where}{why}. Download {files} into "
            f"{cache_dir() / spec.name}/ or a folder passed as --data-dir DIR (DIR/{spec.name}/), "
            f"or set GNAQ_DATA_DIR.")
