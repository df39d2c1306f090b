"""Features computed once: exact equivalence with the image pipeline, fingerprints that
follow the data, and a disk cache that is reused."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from tune_food.features import FeatureCache, extract_features, feature_key, fingerprint
from tune_food.images import split_samples
from tune_food.trainable import prepare, run_epoch

CONFIG = {"model": "efficientnet_lite0", "data": "tiny", "test_data": None, "epochs": 3,
          "lr": 0.01, "batch_size": 5, "seed": 7, "dropout": 0.3, "weight_decay": 1e-4,
          "label_smoothing": 0.1, "val_fraction": 0.25, "augment": False}


@pytest.fixture(scope="module")
def tiny_features(tiny_root):
    root = os.path.join(tiny_root, "tiny")
    return {feature_key("efficientnet_lite0", os.path.join(root, split)):
            extract_features("efficientnet_lite0", os.path.join(root, split))
            for split in ("train", "test")}


def test_cached_features_train_exactly_like_the_image_pipeline(tiny_root, tiny_features):
    """Same config and seed: every epoch's metrics and the final head agree to 1e-5."""
    datasets = {"tiny": os.path.join(tiny_root, "tiny")}
    torch.set_num_threads(2)
    # one after the other: dropout draws from the global torch RNG, which each
    # prepare() seeds
    cached = prepare(dict(CONFIG), datasets, tiny_features)
    cached_metrics = [run_epoch(cached, e) for e in range(1, CONFIG["epochs"] + 1)]
    full = prepare(dict(CONFIG, feature_cache="off"), datasets, None)
    full_metrics = [run_epoch(full, e) for e in range(1, CONFIG["epochs"] + 1)]
    assert (cached.feature_cache, full.feature_cache) == ("shared", "off")
    assert cached.trainable_params == full.trainable_params == 3843
    assert cached.total_params == full.total_params
    assert "val_acc" in cached_metrics[0]
    for epoch, (a, b) in enumerate(zip(cached_metrics, full_metrics), start=1):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], abs=1e-5), (epoch, key)
    for (name, p), (_, q) in zip(cached.head.state_dict().items(), full.head.state_dict().items()):
        assert torch.allclose(p, q, atol=1e-5), name
    # and the head did train: it is not the seed's initialisation
    again = prepare(dict(CONFIG), datasets, tiny_features)
    assert not torch.allclose(again.head.linear.weight, cached.head.linear.weight, atol=1e-3)


def test_feature_set_shapes(tiny_features, tiny_root):
    fs = tiny_features[feature_key("efficientnet_lite0", os.path.join(tiny_root, "tiny", "test"))]
    assert fs.features.shape == (12, 1280) and fs.features.dtype == torch.float32
    assert fs.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert fs.classes == ["pizza", "steak", "sushi"] and len(fs.paths) == 12


def test_fingerprint_follows_every_input(tmp_path, tiny_root):
    src = os.path.join(tiny_root, "tiny", "test")
    split = tmp_path / "test"
    shutil.copytree(src, split)  # real copies: we are going to change one
    classes, samples = split_samples(str(split))
    base = fingerprint("efficientnet_lite0", samples, classes, str(split))
    assert base == fingerprint("efficientnet_lite0", samples, classes, str(split))
    assert base != fingerprint("efficientnet_lite1", samples, classes, str(split))
    victim = samples[0][0]
    data = open(victim, "rb").read()
    with open(victim, "wb") as fh:  # same size, one byte different
        fh.write(data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    assert os.path.getsize(victim) == len(data)
    changed = fingerprint("efficientnet_lite0", *split_samples(str(split))[::-1], str(split))
    assert changed != base
    os.remove(victim)
    assert fingerprint("efficientnet_lite0", *split_samples(str(split))[::-1], str(split)) \
        not in (base, changed)


def test_disk_cache_is_reused(tmp_path, tiny_root):
    split = os.path.join(tiny_root, "tiny", "test")
    cache = FeatureCache(str(tmp_path / "cache"))
    first = extract_features("efficientnet_lite0", split, cache=cache)
    assert first.source == "computed"
    files = os.listdir(cache.directory)
    assert len(files) == 1 and files[0].startswith("efficientnet_lite0-")
    second = extract_features("efficientnet_lite0", split, cache=cache)
    assert second.source == "disk"
    assert torch.equal(first.features, second.features)
    assert second.paths == first.paths and second.fingerprint == first.fingerprint
    assert second.seconds < first.seconds / 3


def test_evaluation_loss_is_plain_cross_entropy_under_label_smoothing(tiny_root, tiny_features):
    """A trial trained with label smoothing 0.3 reports test_loss and val_loss as plain
    cross-entropy of its logits (the smoothed loss is about 0.3 nats higher here)."""
    datasets = {"tiny": os.path.join(tiny_root, "tiny")}
    trial = prepare(dict(CONFIG, label_smoothing=0.3), datasets, tiny_features)
    metrics = run_epoch(trial, 1)
    trial.net.eval()
    for split, loader in (("test", trial.test_loader), ("val", trial.val_loader)):
        with torch.no_grad():
            logits = torch.cat([trial.net(x) for x, _ in loader])
        labels = torch.cat([y for _, y in loader])
        plain = float(torch.nn.functional.cross_entropy(logits, labels))
        smoothed = float(torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.3))
        assert abs(plain - smoothed) > 0.05, split  # the two losses really differ here
        assert metrics[f"{split}_loss"] == pytest.approx(plain, rel=1e-5), split
