"""Datasets: locating, downloading with manifest verification, validation, loaders."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
import zipfile

import pytest
import torch
from conftest import make_subset, shared_dataset

from tune_food.common.errors import DataError
from tune_food.data.datasets import (
    DATA_DIR_ENV,
    download_dataset,
    load_manifest,
    resolve_data_root,
    resolve_dataset,
    verify_manifest,
)
from tune_food.data.loaders import make_dataloaders
from tune_food.data.splits import validate_image_folder
from tune_food.models.registry import get_transform


def test_data_root_precedence(tmp_path, monkeypatch):
    flag, env = tmp_path / "flag", tmp_path / "env"
    flag.mkdir(), env.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(env))
    assert resolve_data_root(str(flag)) == str(flag)
    assert resolve_data_root(None) == str(env)
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.chdir(tmp_path)
    assert resolve_data_root(None) == str(tmp_path / "data")
    with pytest.raises(DataError, match="--data-dir"):
        resolve_data_root(str(tmp_path / "missing"))


def test_shared_data_matches_the_committed_manifests():
    for name in ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"):
        manifest = load_manifest(name)
        assert len(manifest) == {"pizza_steak_sushi": 300,
                                 "pizza_steak_sushi_20_percent": 600}[name]
        verify_manifest(shared_dataset(name), manifest)


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server over a folder (no outside network is involved)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _zip(folder: str, dest: str) -> None:
    with zipfile.ZipFile(dest, "w") as zf:
        for root, _, files in os.walk(folder):
            for f in files:
                p = os.path.join(root, f)
                zf.write(p, os.path.relpath(p, folder))


def test_download_extracts_and_verifies(http_root, tmp_path):
    www, base = http_root
    _zip(shared_dataset(), str(www / "pss.zip"))
    target = download_dataset("pizza_steak_sushi", str(tmp_path / "root"), url=f"{base}/pss.zip")
    assert target == str(tmp_path / "root" / "pizza_steak_sushi")
    assert len(os.listdir(os.path.join(target, "test", "sushi"))) == 31
    assert os.listdir(tmp_path / "root") == ["pizza_steak_sushi"]  # no temp folder left


def test_download_with_a_tampered_file_is_rejected_and_leaves_nothing(http_root, tmp_path):
    www, base = http_root
    copy = tmp_path / "copy"
    shutil.copytree(shared_dataset(), copy)
    victim = sorted((copy / "train" / "steak").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    _zip(str(copy), str(www / "pss.zip"))
    root = tmp_path / "root"
    with pytest.raises(DataError, match=r"wrong SHA-256 \['train/steak/"):
        download_dataset("pizza_steak_sushi", str(root), url=f"{base}/pss.zip")
    assert os.listdir(root) == []


def test_a_download_never_replaces_what_is_at_its_target(http_root, tmp_path):
    """The download goes only into a new folder: a folder (even an empty one, which a
    rename would replace) or a file already at ``<data root>/<name>`` is refused before
    anything is fetched, and left as it was."""
    www, base = http_root
    _zip(shared_dataset(), str(www / "pss.zip"))
    root = tmp_path / "root"
    for make in (lambda p: p.mkdir(), lambda p: p.write_text("mine")):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir()
        target = root / "pizza_steak_sushi"
        make(target)
        with pytest.raises(DataError, match="exists already and is not replaced"):
            download_dataset("pizza_steak_sushi", str(root), url=f"{base}/pss.zip")
        assert os.listdir(root) == ["pizza_steak_sushi"]   # no temporary folder either
        assert (os.listdir(target) == []) if target.is_dir() else target.read_text() == "mine"


def test_missing_dataset_offline_names_the_flag_and_variable(tmp_path):
    with pytest.raises(DataError) as err:
        resolve_dataset("pizza_steak_sushi", str(tmp_path), download=False)
    assert "--data-dir" in str(err.value) and DATA_DIR_ENV in str(err.value)
    with pytest.raises(DataError, match="can download: pizza_steak_sushi"):
        resolve_dataset("my_food", str(tmp_path))


def test_validate_real_dataset():
    info = validate_image_folder(shared_dataset())
    assert info.classes == ["pizza", "steak", "sushi"]
    assert (len(info.train.samples), len(info.test.samples)) == (225, 75)
    assert info.bad_images == []


def test_dataloaders_batches_and_labels(tiny_root):
    root = os.path.join(tiny_root, "tiny")
    train, val, test, classes = make_dataloaders(
        os.path.join(root, "train"), os.path.join(root, "test"),
        get_transform("efficientnet_lite0"), batch_size=5, seed=3, val_fraction=0.25)
    assert classes == ["pizza", "steak", "sushi"]
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (18, 6, 12)
    val_labels = sorted(t for _, t in val.dataset.samples)
    assert val_labels == [0, 0, 1, 1, 2, 2]  # stratified
    x, y = next(iter(test))
    assert x.shape == (5, 3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert [len(b[1]) for b in test] == [5, 5, 2]
    with pytest.raises(ValueError, match="absolute"):
        make_dataloaders("tiny/train", "tiny/test", get_transform("efficientnet_lite0"), 5)


def test_test_split_from_another_dataset(tmp_path):
    make_subset(str(tmp_path / "a"), {"train": 3})
    make_subset(str(tmp_path / "b"), {"test": 2})
    info = validate_image_folder(str(tmp_path / "a"), test_dir=str(tmp_path / "b" / "test"))
    assert len(info.train.samples) == 9 and len(info.test.samples) == 6


def test_a_test_sets_fingerprint_is_its_images_bytes_and_classes_whatever_their_paths(tmp_path):
    """data.validation.images_fingerprint (sweep.json's test_sets, which a warm start
    compares): the count, and SHA-256 over the sorted "<class folder>\\t<image SHA-256>"
    lines, recomputed here from the real photos; other paths, the same bytes: the same
    fingerprint; one image in another class, or one image fewer: another."""
    import hashlib

    from tune_food.data.validation import images_fingerprint

    a = make_subset(str(tmp_path / "a"), {"test": 2})
    b = make_subset(str(tmp_path / "b"), {"test": 2})
    samples = [(os.path.join(a, "test", c, f), i)
               for i, c in enumerate(("pizza", "steak", "sushi"))
               for f in sorted(os.listdir(os.path.join(a, "test", c)))]
    lines = sorted(f"{os.path.basename(os.path.dirname(p))}\t"
                   f"{hashlib.sha256(open(p, 'rb').read()).hexdigest()}\n" for p, _ in samples)
    expected = {"images": 6, "sha256": hashlib.sha256("".join(lines).encode()).hexdigest()}
    assert images_fingerprint(samples) == expected
    moved = [(p.replace(a, b), i) for p, i in reversed(samples)]
    assert images_fingerprint(moved) == expected
    fewer = images_fingerprint(samples[1:])
    assert fewer["images"] == 5 and fewer["sha256"] != expected["sha256"]
    relabelled = tmp_path / "c" / "test" / "steak"
    relabelled.mkdir(parents=True)
    os.symlink(samples[0][0], relabelled / "x.jpg")
    other = [(str(relabelled / "x.jpg"), 1)] + samples[1:]
    assert images_fingerprint(other)["images"] == 6
    assert images_fingerprint(other)["sha256"] != expected["sha256"]
