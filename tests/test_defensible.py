"""Results a reviewer can defend: each model's own preprocessing, EXIF orientation, one
validation set for every dataset, no leaked test images, the united test set, and
which differences are real (exact McNemar). Real images, real weights, real Ray."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
import pytest
import torch
from conftest import CLASSES, make_subset, run_sweep, shared_dataset, sweep_checks
from PIL import Image


def _photo(split="test", cls="pizza", i=0) -> str:
    folder = os.path.join(shared_dataset(), split, cls)
    return os.path.join(folder, sorted(os.listdir(folder))[i])


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_transform_equals_timms_own(name):
    """The product's tensor for a real photo equals timm's, whose config is resolved here
    from a timm model instance (not the product's path through the pretrained cfg)."""
    import timm
    from timm.data import create_transform, resolve_data_config

    from tune_food.data.images import rgb_loader
    from tune_food.models.registry import get_spec, get_transform

    model = timm.create_model(f"tf_{name}.in1k", pretrained=False)
    expected = create_transform(**resolve_data_config({}, model=model))
    photo = _photo("train", "sushi", 3)
    ours = get_transform(name)(rgb_loader(photo))
    theirs = expected(Image.open(photo).convert("RGB"))
    assert ours.shape == (3, get_spec(name).input_size, get_spec(name).input_size)
    assert torch.equal(ours, theirs)
    resize = {"efficientnet_lite0": 256, "efficientnet_lite1": 272, "efficientnet_lite2": 292}
    assert f"Resize(size={resize[name]}," in repr(get_transform(name))


def test_b0_transform_is_the_weights_own(use_torch_home):
    import torchvision

    from tune_food.data.images import rgb_loader
    from tune_food.models.registry import build_model

    photo = _photo("test", "steak", 2)
    model = build_model("efficientnet_b0", 3)
    expected = torchvision.models.EfficientNet_B0_Weights.DEFAULT.transforms()
    theirs = expected(Image.open(photo).convert("RGB"))
    assert theirs.shape == (3, 224, 224)
    assert torch.equal(model.transform(rgb_loader(photo)), theirs)


def test_exif_rotated_photo_gives_the_upright_features(tmp_path):
    """A copy saved sideways with EXIF Orientation=6 decodes upright and has the same
    features as the upright original (to 1e-6)."""
    from tune_food.data.images import rgb_loader
    from tune_food.models.registry import build_backbone, get_transform

    upright = Image.open(_photo("test", "sushi", 0)).convert("RGB")
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 6   # Orientation: rotate 90 degrees clockwise to display
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "rotated.png", exif=exif)
    raw = Image.open(tmp_path / "rotated.png")
    assert raw.size == upright.size[::-1]               # stored sideways
    assert rgb_loader(str(tmp_path / "rotated.png")).size == upright.size
    transform, backbone = get_transform("efficientnet_lite0"), build_backbone("efficientnet_lite0")
    x = torch.stack([transform(rgb_loader(str(tmp_path / f))) for f in ("upright.png", "rotated.png")])
    with torch.no_grad():
        feats = backbone(x)
    assert torch.allclose(feats[0], feats[1], atol=1e-6)
    naive = transform(raw.convert("RGB")).unsqueeze(0)   # what ignoring EXIF gives
    with torch.no_grad():
        assert (backbone(naive)[0] - feats[0]).abs().max() > 1e-2





def test_the_united_test_set_of_the_shipped_data_has_211_images():
    from tune_food.data.splits import split_samples
    from tune_food.data.validation import find_leakage

    root = os.path.dirname(shared_dataset())
    tests = tuple(os.path.join(root, d, "test")
                  for d in ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"))
    classes, samples = split_samples(tests)
    assert classes == list(CLASSES) and len(samples) == 211
    for d in ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"):
        train = split_samples(os.path.join(root, d, "train"))[1]
        assert find_leakage(train, samples) == []


def test_validation_is_shared_by_content_or_per_dataset_with_a_warning(tmp_path):
    from tune_food.common.files import cached_sha256
    from tune_food.data.splits import split_samples
    from tune_food.data.validation import shared_validation

    small = make_subset(str(tmp_path / "small"), {"train": 10})
    big = make_subset(str(tmp_path / "big"), {"train": 20})
    other = make_subset(str(tmp_path / "other"), {"train": 10}, offset=40)
    train = {n: split_samples(os.path.join(p, "train"))[1]
             for n, p in (("small", small), ("big", big), ("other", other))}
    plan = shared_validation({"small": train["small"], "big": train["big"]}, 0.3, 0)
    assert plan.source == "shared" and plan.images == 9 and not plan.warning
    for name in ("small", "big"):
        assert sorted(cached_sha256(p) for p in plan.sets[name]) == plan.sha256
    assert shared_validation({"small": train["small"], "big": train["big"]}, 0.3, 0).sets == plan.sets
    apart = shared_validation({"small": train["small"], "other": train["other"]}, 0.3, 0)
    assert apart.source == "per-dataset" and "share 0 images" in apart.warning


def _two_sizes(tmp_path):
    root = tmp_path / "data"
    make_subset(str(root / "small"), {"train": 10, "test": 4})
    make_subset(str(root / "big"), {"train": 20, "test": 4})
    return root


@pytest.mark.slow
def test_sweep_over_two_data_sizes_ranks_on_one_validation_set(tmp_path, shared_cache):
    root = _two_sizes(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n"
                     "  data: {grid_search: [small, big]}\n  test_data: small\n"
                     "  epochs: {grid_search: [1, 3]}\n  val_fraction: 0.3\n  batch_size: 8\n")
    out = run_sweep("--grid", "--space", str(space), "--data-dir", str(root),
                    "--results-dir", str(tmp_path / "results"), "--name", "v",
                    "--cache-dir", shared_cache)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "validation: 9 images, shared" in out.stdout
    exp = tmp_path / "results" / "v"
    state = json.loads((exp / "sweep.json").read_text())
    assert state["validation"]["source"] == "shared" and state["validation"]["images"] == 9
    board = pd.read_csv(exp / "leaderboard.csv")
    assert board["ranked_by"][0] == "val_acc (max)" and set(board["data"]) == {"small", "big"}
    assert (board["val_images"] == 9).all() and (board["val_set"] == "shared").all()
    val_lists = []
    for _, row in board.iterrows():
        pred = pd.read_csv(exp / row["checkpoint_path"] / "predictions.csv")
        val = pred[pred["split"] == "val"]
        val_lists.append(sorted(val["sha256"]))
        assert (val["label"] == val["predicted"]).sum() == row["val_correct"]
        test = pred[pred["split"] == "test"]
        assert len(test) == 12 and (test["label"] == test["predicted"]).sum() == row["test_correct"]
    assert all(v == state["validation"]["sha256"] for v in val_lists)
    assert board["p_vs_best"][0] == 1.0 and board["p_vs_best"].notna().all()
    assert list(board["tied_with_best"]) == list(board["p_vs_best"] >= 0.05)
    assert "statistically indistinguishable from the best on these 9 val images" in out.stdout


def test_a_leaked_test_image_is_refused_before_launch(tmp_path):
    """Through the dry run's checks, without Ray (conftest.sweep_checks)."""
    root = _two_sizes(tmp_path)
    train_img = sorted((root / "small" / "train" / "pizza").iterdir())[0]
    leaked = root / "small" / "test" / "pizza" / "leaked.jpg"
    os.symlink(os.readlink(train_img), leaked)              # same bytes, another name
    dup = root / "small" / "train" / "steak" / "again.jpg"
    os.symlink(os.readlink(sorted((root / "small" / "train" / "steak").iterdir())[0]), dup)
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: small\n  epochs: 1\n")
    argv = ["--grid", "--space", str(space), "--data-dir", str(root), "--results-dir",
            str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--dry-run"]
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        assert sweep_checks(*argv)[0] == 2
    line = err.getvalue().strip()
    assert len(line.splitlines()) == 1 and str(leaked) in line and str(train_img) in line
    assert "--allow-leakage" in line
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        assert sweep_checks(*argv, "--allow-leakage")[0] == 0
    # warnings go to stderr, and the duplicate warning names the files
    assert "warning: 1 test image(s) are also training images" in err.getvalue()
    dup_line = next(x for x in err.getvalue().splitlines() if "more than once" in x)
    first = sorted((root / "small" / "train" / "steak").iterdir())[0]
    assert dup_line.startswith("warning: small/train holds 1 image(s) more than once "
                               "(1 extra copies): ")
    assert str(first) in dup_line and str(dup) in dup_line
    assert "warning" not in out.getvalue()
