"""Every check that refuses a run, invalidates a cache or decides what is comparable,
tested in the situation it exists for, along each of its dimensions: leakage from every
training dataset into every test split, the feature store's key and the feature sets'
fingerprints part by part, and the content of the data a resumed sweep compares."""

from __future__ import annotations

import io
import json
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import torch
from conftest import make_subset, shared_dataset, sweep_checks


def _dry_run(*argv: str) -> tuple[int, str]:
    """The dry run's checks, without Ray (conftest.sweep_checks): (exit code, stderr)."""
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code, _ = sweep_checks(*argv, "--dry-run")
    return code, err.getvalue()


@pytest.fixture
def two_sizes(tmp_path):
    """``small`` (10 train / 4 test per class) and ``big`` (20 / 4): big's training split
    holds small's and 10 more images per class."""
    root = tmp_path / "data"
    make_subset(str(root / "small"), {"train": 10, "test": 4})
    make_subset(str(root / "big"), {"train": 20, "test": 4})
    return root


@pytest.mark.parametrize("test_data, leak_into", [
    ("null", "big"),                  # each dataset its own test split: big's leaks
    ("[small, big]", "big"),          # one united test split: big's part leaks
    ("small", "small"),               # the test split of another dataset
])
def test_leakage_is_found_from_every_training_dataset(tmp_path, two_sizes, test_data,
                                                      leak_into):
    """A training image of ``big`` alone (not in ``small``'s training split) copied into
    a test split: refused whichever training dataset comes first in the grid, so a check
    of the first training dataset only (``list(train.items())[:1]``) misses it."""
    only_big = sorted((two_sizes / "big" / "train" / "sushi").iterdir())[15]
    leaked = two_sizes / leak_into / "test" / "sushi" / "leaked.jpg"
    os.symlink(os.readlink(only_big), leaked)
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: {grid_search: "
                     f"[small, big]}}\n  test_data: {test_data}\n  epochs: 1\n")
    code, err = _dry_run("--grid", "--space", str(space), "--data-dir", str(two_sizes),
                         "--results-dir", str(tmp_path / "results"), "--cache-dir",
                         str(tmp_path / "cache"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "are also in the training split of big" in lines[0] and str(leaked) in lines[0]
    assert "training split of small" not in lines[0]


@pytest.fixture
def b0_home(tmp_path, torch_home, monkeypatch):
    """A TORCH_HOME of this test's own holding the B0 checkpoint (random weights under
    torchvision's file name): the test may replace it."""
    home = tmp_path / "torch"
    shutil.copytree(torch_home, home)
    monkeypatch.setenv("TORCH_HOME", str(home))
    from tune_food.models.registry import weights_path

    return weights_path("efficientnet_b0")


def _replace_weights(path: str, seed: int) -> None:
    """Other B0 weights in the same file (a re-download of a newer release, say); the
    memoised file hash sees a new size or mtime."""
    import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.get_model("efficientnet_b0", weights=None)
    torch.save(net.state_dict(), path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_the_store_key_changes_with_each_part(b0_home):
    from tune_food.data.images import LOADER
    from tune_food.features.store import extractor_id

    base = extractor_id("efficientnet_b0")
    assert extractor_id("efficientnet_b2")[0] != base[0]                 # backbone
    assert extractor_id("efficientnet_lite0")[2] != base[2]              # transform
    assert base[2].startswith(f"{LOADER} | ")                            # decoder
    assert extractor_id("efficientnet_b0", "cuda:0")[3] != base[3]       # what computed it
    _replace_weights(b0_home, seed=1)
    after = extractor_id("efficientnet_b0")
    assert after[1] != base[1] and after[0] == base[0] and after[2:] == base[2:]   # weights


@pytest.mark.slow   # B0 built and converted twice (17 s here)
def test_features_of_replaced_weights_are_not_read_from_the_store(tmp_path, b0_home):
    """The store holds B0's vectors of 6 images; the weights file is replaced: the next
    extraction computes all 6 again (with the new weights) instead of reading the old."""
    from tune_food.features.extract import extract_features
    from tune_food.features.store import FeatureStore

    split = make_subset(str(tmp_path / "d"), {"test": 2})
    store = FeatureStore(str(tmp_path / "store"))
    first = extract_features("efficientnet_b0", os.path.join(split, "test"), store=store)
    assert first.computed == 6 and store.count() == 6
    _replace_weights(b0_home, seed=1)
    second = extract_features("efficientnet_b0", os.path.join(split, "test"), store=store)
    assert second.computed == 6 and store.count() == 12
    assert first.fingerprint != second.fingerprint
    # computed with the new weights (a process keeps a built backbone per weights file)
    assert not np.allclose(first.features, second.features, rtol=1e-3, atol=0)


def _flip_a_header_byte(path) -> None:
    """Other bytes, same size, still a decodable JPEG: the JFIF X density 72 -> 73 dpi."""
    data = bytearray(open(path, "rb").read())
    assert data[6:10] == b"JFIF" and data[15] == 0x48
    data[15] = 0x49
    os.remove(path)   # a real file now, not the symlink into ../shared/data
    with open(path, "wb") as fh:
        fh.write(data)


def test_the_feature_set_fingerprint_follows_each_image_and_label(tmp_path):
    from tune_food.data.splits import split_samples
    from tune_food.features.extract import fingerprint

    split = make_subset(str(tmp_path / "d"), {"test": 3})
    test = os.path.join(split, "test")

    def fp():
        classes, samples = split_samples(test)
        return fingerprint("efficientnet_lite0", samples, classes, test)

    base = fp()
    image = sorted((tmp_path / "d" / "test" / "pizza").iterdir())[0]
    _flip_a_header_byte(image)                      # same name and size, other bytes
    changed = fp()
    assert changed != base
    os.rename(image, tmp_path / "d" / "test" / "steak" / image.name)   # relabelled
    assert fp() not in (base, changed)


def test_resume_refuses_an_image_replaced_by_one_of_the_same_size(tmp_path):
    """--resume compares the images' bytes: an image whose name and size stayed but whose
    content changed is refused, in one line that says so."""
    from tune_food.data.datasets import dataset_fingerprint
    from tune_food.sweep.cli import parse_options

    root = tmp_path / "data"
    make_subset(str(root / "tiny"), {"train": 4, "test": 2})
    exp = tmp_path / "results" / "old"
    exp.mkdir(parents=True)
    (exp / "space.yaml").write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                                    "  epochs: 1\n")
    (exp / "sweep.json").write_text(json.dumps({
        "name": "old", "metric": "test_acc", "mode": "max", "status": "interrupted",
        "args": parse_options(["--grid", "--data-dir", str(root)]).saved(),
        "datasets": {"tiny": dataset_fingerprint(str(root / "tiny"), str(root))}}))
    argv = ("--resume", "--name", "old", "--results-dir", str(tmp_path / "results"))
    _flip_a_header_byte(sorted((root / "tiny" / "train" / "steak").iterdir())[1])
    code, err = _dry_run(*argv)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "the data changed since sweep 'old' started: tiny (18 files of " in err
    assert "an image's bytes changed" in err


def test_the_shipped_test_image_is_found_in_the_store_by_content_not_name(tmp_path):
    """The store is looked up by the bytes' SHA-256: the same photo under another name in
    another dataset is not computed again; one byte more is."""
    from tune_food.features.extract import extract_features
    from tune_food.features.store import FeatureStore

    src = sorted(os.listdir(os.path.join(shared_dataset(), "test", "pizza")))[0]
    for name in ("a", "b"):
        os.makedirs(tmp_path / name / "test" / "pizza")
    shutil.copyfile(os.path.join(shared_dataset(), "test", "pizza", src),
                    tmp_path / "a" / "test" / "pizza" / "one.jpg")
    shutil.copyfile(os.path.join(shared_dataset(), "test", "pizza", src),
                    tmp_path / "b" / "test" / "pizza" / "renamed.jpg")
    store = FeatureStore(str(tmp_path / "store"))
    assert extract_features("efficientnet_lite0", str(tmp_path / "a" / "test"),
                            store=store).computed == 1
    assert extract_features("efficientnet_lite0", str(tmp_path / "b" / "test"),
                            store=store).computed == 0
    _flip_a_header_byte(tmp_path / "b" / "test" / "pizza" / "renamed.jpg")
    assert extract_features("efficientnet_lite0", str(tmp_path / "b" / "test"),
                            store=store).computed == 1


def test_leakage_duplicates_and_their_messages_by_content(tmp_path):
    """The pure checks on their own: leaked test images are paired with the training
    image of the same bytes (the first copy in the training split), repeated images are
    grouped in split order, and the messages name the files."""
    from tune_food.data.validation import (
        ValidationPlan,
        duplicates,
        find_leakage,
        group_duplicates,
        leakage_error,
    )

    src = os.path.join(shared_dataset(), "train", "pizza")
    a, b, c = (os.path.join(src, f) for f in sorted(os.listdir(src))[:3])
    copy_a = tmp_path / "copy_a.jpg"
    copy_a2 = tmp_path / "copy_a2.jpg"
    shutil.copyfile(a, copy_a)
    shutil.copyfile(a, copy_a2)
    train = [(a, 0), (str(copy_a), 0), (b, 0)]
    test = [(c, 0), (str(copy_a2), 0)]
    assert find_leakage(train, test) == [(a, str(copy_a2))]
    assert find_leakage([(b, 0)], test) == []
    assert duplicates(train) == [[a, str(copy_a)]]
    assert duplicates([(a, 0), (b, 0)]) == []
    assert group_duplicates({"t/train": train, "t test": test}) == {"t/train": [[a, str(copy_a)]]}
    error = leakage_error({("big", "small"): [(a, str(copy_a2))] * 7})
    assert str(error) == (
        f"7 test image(s) of small are also in the training split of big: "
        f"{copy_a2} = {a}; {copy_a2} = {a}; {copy_a2} = {a}; {copy_a2} = {a}; "
        f"{copy_a2} = {a} and 2 more; a leaked test image inflates test accuracy: remove it "
        "from one side, or pass --allow-leakage to proceed (recorded in sweep.json)")
    five = str(leakage_error({("big", "small"): [(a, str(copy_a2))] * 5}))
    six = str(leakage_error({("big", "small"): [(a, str(copy_a2))] * 6}))
    assert f"{copy_a2} = {a}; a leaked" in five and "more" not in five
    assert f"{copy_a2} = {a} and 1 more; a leaked" in six
    two = leakage_error({("x", "y"): [(a, b)], ("z", "y"): [(c, b)]})
    assert str(two).startswith(f"1 test image(s) of y are also in the training split of x: "
                               f"{b} = {a} | 1 test image(s) of y are also in the training "
                               f"split of z: {b} = {c}; ")
    assert ValidationPlan("shared", 9, sha256=["x"]).summary() == {
        "source": "shared", "images": 9, "sha256": ["x"]}
    assert ValidationPlan("per-dataset", 3, sha256=["y"], warning="w").summary() == {
        "source": "per-dataset", "images": 3, "sha256": ["y"], "warning": "w"}


def _dataset(tmp_path, name: str, per_class: dict[str, int], offset: int = 0):
    """Training samples ``(path, class index)`` of links to real photos: the first
    ``per_class[c]`` photos of class c (after ``offset``), so datasets share bytes."""
    from conftest import CLASSES

    samples = []
    for label, cls in enumerate(CLASSES):
        folder = os.path.join(shared_dataset(), "train", cls)
        os.makedirs(tmp_path / name / cls, exist_ok=True)
        for f in sorted(os.listdir(folder))[offset:offset + per_class.get(cls, 0)]:
            link = tmp_path / name / cls / f
            os.symlink(os.path.join(folder, f), link)
            samples.append((str(link), label))
    return samples


def test_the_shared_validation_set_at_its_edges(tmp_path):
    """One validation set by content for every dataset, exactly when the images all
    datasets hold can give a stratified set of round(fraction x the smallest split):
    at least one per class, at least one per class left to train, two per class to
    stratify; else each dataset's own split, with the warning word for word."""
    from collections import Counter

    from sklearn.model_selection import train_test_split

    from tune_food.common.files import cached_sha256
    from tune_food.data.validation import ValidationPlan, shared_validation

    four = {"pizza": 4, "steak": 4, "sushi": 4}
    small = _dataset(tmp_path, "small", four)
    big = _dataset(tmp_path, "big", {"pizza": 10, "steak": 10, "sushi": 10})
    assert shared_validation({"small": small, "big": big}, 0.0, 0) == ValidationPlan("none")
    assert shared_validation({}, 0.3, 0) == ValidationPlan("none")

    # size 9 of 12 common images: 3 are left, one per class: still shared
    plan = shared_validation({"small": small, "big": big}, 0.75, 5)
    assert plan.source == "shared" and plan.images == 9 and not plan.warning
    common = sorted({cached_sha256(p) for p, _ in small})
    labels = [dict((cached_sha256(p), t) for p, t in small)[h] for h in common]
    want = sorted(train_test_split(common, test_size=9, random_state=5, stratify=labels)[1])
    assert plan.sha256 == want
    assert [sorted(cached_sha256(p) for p in plan.sets[n]) for n in ("small", "big")] == \
        [want, want]
    assert all(p.startswith(str(tmp_path / n)) for n in plan.sets for p in plan.sets[n])
    # size 3 (one per class) of 12: shared, one image of each class
    three = shared_validation({"small": small, "big": big}, 0.25, 0)
    assert three.source == "shared" and three.images == 3
    by_class = Counter(t for p, t in small if cached_sha256(p) in set(three.sha256))
    assert sorted(by_class.values()) == [1, 1, 1]
    # size 2 < 3 classes: not shared, and the per-dataset split cannot be stratified either
    from tune_food.common.errors import DataError

    with pytest.raises(DataError, match=r"cannot hold out val_fraction=0.16\d* of 12 images"):
        shared_validation({"small": small, "big": big}, 1 / 6, 0)
    # 30 images each, 12 of them common: size 9 leaves 3 to train (shared), size 10 leaves
    # 2 (per dataset, with the warning word for word)
    mixed = _dataset(tmp_path, "m1", four) + _dataset(tmp_path, "m2", {
        "pizza": 6, "steak": 6, "sushi": 6}, offset=10)
    assert shared_validation({"big": big, "mixed": mixed}, 0.3, 0).source == "shared"
    apart = shared_validation({"big": big, "mixed": mixed}, 1 / 3, 0)
    assert apart.source == "per-dataset"
    assert apart.warning == (
        "the training datasets big, mixed share 12 images, too few for a shared validation "
        "set of 10: each dataset holds out its own images, so val_* metrics of trials on "
        "different datasets compare different images")
    assert apart.images == 10 and sorted(apart.sets) == ["big", "mixed"]
    assert [len(apart.sets[n]) for n in ("big", "mixed")] == [10, 10]
    assert apart.sha256 == sorted({cached_sha256(p) for v in apart.sets.values() for p in v})
    assert len(apart.sha256) > 10   # the two datasets' own picks, united
    assert shared_validation({"big": big, "mixed": mixed}, 1 / 3, 0).sets == apart.sets
    assert shared_validation({"big": big, "mixed": mixed}, 1 / 3, 1).sets != apart.sets
    # a class of which the datasets share only two images still stratifies; one does not
    two = _dataset(tmp_path, "two", {"pizza": 2, "steak": 4, "sushi": 4})
    assert shared_validation({"two": two, "big": big}, 0.3, 0).source == "shared"
    one = _dataset(tmp_path, "one", {"pizza": 1, "steak": 5, "sushi": 5}) + \
        _dataset(tmp_path, "one_more", {"pizza": 5}, offset=10)
    assert shared_validation({"one": one, "big": big}, 0.3, 0).source == "per-dataset"
    # an image filed under another class in one dataset is not common
    moved = [(p, 1 if i == 0 else t) for i, (p, t) in enumerate(small)]
    relabelled = shared_validation({"small": moved, "big": big}, 0.25, 0)
    assert cached_sha256(small[0][0]) not in relabelled.sha256
