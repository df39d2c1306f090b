"""Features computed once: exact equivalence with the image pipeline and with the plain
timm loop, fingerprints that follow the data, a per-image store that is reused, grows by
what is new and survives concurrent writers, each distinct image computed once per
model, and feature sets that trials read from the object store without a copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, make_subset

from tune_food.data.splits import split_samples
from tune_food.features.extract import extract_features, feature_key, fingerprint
from tune_food.features.store import FeatureStore, extractor_id
from tune_food.features.tasks import compute_feature_sets
from tune_food.models.devices import computed_by
from tune_food.train.trainable import prepare, run_epoch

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
    cached = prepare(dict(CONFIG), datasets, tiny_features, device="cpu")
    cached_metrics = [run_epoch(cached, e) for e in range(1, CONFIG["epochs"] + 1)]
    full = prepare(dict(CONFIG, feature_cache="off"), datasets, None, device="cpu")
    full_metrics = [run_epoch(full, e) for e in range(1, CONFIG["epochs"] + 1)]
    assert (cached.feature_cache, full.feature_cache) == ("shared", "off")
    # both through the backbone runtime of the CPU: OpenVINO float32
    assert cached.backbone_runtime == full.backbone_runtime == computed_by("cpu", "openvino")
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
    again = prepare(dict(CONFIG), datasets, tiny_features, device="cpu")
    assert not torch.allclose(again.head.linear.weight, cached.head.linear.weight, atol=1e-3)


def test_feature_set_shapes(tiny_features, tiny_root):
    fs = tiny_features[feature_key("efficientnet_lite0", os.path.join(tiny_root, "tiny", "test"))]
    assert fs.features.shape == (12, 1280) and fs.features.dtype == np.float32
    assert fs.labels.dtype == np.int64 and fs.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
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


def test_store_is_reused_and_grows_by_the_new_images_only(tmp_path, tiny_root):
    src = os.path.join(tiny_root, "tiny", "test")
    split = tmp_path / "grow" / "test"
    make_subset(str(tmp_path / "grow"), {"test": 3})   # 9 real images, symlinked
    store = FeatureStore(str(tmp_path / "store"))
    first = extract_features("efficientnet_lite0", str(split), store=store)
    assert (first.source, first.computed, len(first)) == ("computed", 9, 9)
    assert os.listdir(store.directory) and store.count() == 9
    again = extract_features("efficientnet_lite0", str(split), store=store)
    assert (again.source, again.computed) == ("disk", 0)
    assert np.array_equal(first.features, again.features)
    assert list(again.paths) == list(first.paths) and again.fingerprint == first.fingerprint
    # the dataset grows by 3 images: only those 3 run through the backbone
    for cls in ("pizza", "steak", "sushi"):
        name = sorted(os.listdir(os.path.join(src, cls)))[3]
        os.symlink(os.path.join(src, cls, name), split / cls / name)
    grown = extract_features("efficientnet_lite0", str(split), store=store)
    assert (grown.source, grown.computed, len(grown)) == ("computed", 3, 12)
    assert store.count() == 12 and grown.fingerprint != first.fingerprint
    fresh = extract_features("efficientnet_lite0", str(split))   # no store at all
    np.testing.assert_allclose(grown.features, fresh.features, atol=1e-5, rtol=0)
    # another backbone is another key: nothing of Lite0's is reused
    assert store.get(extractor_id("efficientnet_lite1"), grown.hashes) == {}
    store.close()


def test_features_equal_the_plain_timm_loop(tiny_root):
    """The loop a user would write (timm's pretrained-config transform over
    torchvision's ImageFolder, batch 32, inference_mode, default memory format, float32)
    gives the same features to 1e-4, absolute, per element."""
    import timm
    from timm.data import create_transform, resolve_data_config
    from torchvision.datasets import ImageFolder

    from tune_food.models.registry import build_backbone

    split = os.path.join(tiny_root, "tiny", "test")
    cfg = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(
        "tf_efficientnet_lite0.in1k").to_dict())
    net = build_backbone("efficientnet_lite0")   # the Lite weights, default memory format
    loader = torch.utils.data.DataLoader(
        ImageFolder(split, create_transform(**cfg, is_training=False)), batch_size=32)
    with torch.inference_mode():
        plain = torch.cat([net(x) for x, _ in loader]).numpy()
    ours = extract_features("efficientnet_lite0", split)
    assert plain.shape == ours.features.shape == (12, 1280)
    assert np.abs(plain - ours.features).max() <= 1e-4
    assert np.abs(plain).max() > 0.1          # real, non-trivial features


WRITER = """
import sys, numpy as np
from tune_food.features import FeatureStore
store = FeatureStore(sys.argv[1], timeout_s=60)
key = ("backbone", "weights", "transform", "torch float32 cpu")
first, last = int(sys.argv[2]), int(sys.argv[3])
for start in range(first, last, 10):     # many small transactions, interleaving
    shas = [f"{i:064x}" for i in range(start, min(start + 10, last))]
    vecs = np.stack([np.full(1280, int(s, 16), np.float32) for s in shas])
    store.put(key, shas, vecs)
print(store.count(key))
"""


def test_two_processes_writing_one_store_leave_it_whole(tmp_path):
    directory = str(tmp_path / "store")
    env = dict(os.environ, PYTHONPATH=REPO)
    # overlapping ranges: images 300..599 are written by both at the same time
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, directory, str(a), str(b)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a, b in ((0, 600), (300, 900))]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
    store = FeatureStore(directory)
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    key = ("backbone", "weights", "transform", "torch float32 cpu")
    assert store.count(key) == 900
    got = store.get(key, [f"{i:064x}" for i in range(900)])
    assert len(got) == 900
    for sha, vec in got.items():
        assert vec.shape == (1280,) and (vec == np.float32(int(sha, 16))).all()
    store.close()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    yield ray
    ray.shutdown()


@pytest.mark.slow   # a local Ray (local_ray)
def test_each_distinct_image_is_computed_once_per_model(local_ray, tmp_path):
    """Two datasets that share images (like the 10 % and 20 % sets: b holds a's 4 train
    images per class and 2 more): every distinct image runs through the backbone once."""
    a = make_subset(str(tmp_path / "a"), {"train": 4, "test": 2})
    b = make_subset(str(tmp_path / "b"), {"train": 6, "test": 2}, offset=0)
    pairs = [("efficientnet_lite0", os.path.join(a, "train")),
             ("efficientnet_lite0", os.path.join(b, "train")),
             ("efficientnet_lite0", (os.path.join(a, "test"), os.path.join(b, "test")))]
    cache = str(tmp_path / "store")
    refs, infos = compute_feature_sets(pairs, 1, 0, cache)
    assert sorted(i["images"] for i in infos) == [6, 12, 18]
    assert sum(i["computed"] for i in infos) == 18 + 6   # 18 distinct train, 6 test images
    assert all(i["source"] == "computed" for i in infos)
    store = FeatureStore(cache)
    assert store.count(extractor_id("efficientnet_lite0")) == 24
    store.close()
    sets = {k: local_ray.get(r) for k, r in refs.items()}
    small, big = (sets[feature_key(*p)] for p in pairs[:2])
    np.testing.assert_array_equal(small.features, big.features[[0, 1, 2, 3, 6, 7, 8, 9, 12,
                                                                13, 14, 15]])
    # a second sweep: everything from the store, nothing computed
    _, again = compute_feature_sets(pairs, 1, 0, cache)
    assert [i["source"] for i in again] == ["disk"] * 3
    assert sum(i["computed"] for i in again) == 0
    # --backbone-runtime torch: OpenVINO's vectors are not read for PyTorch, and the
    # reverse; PyTorch's agree with them to 1e-4
    torch_refs, in_torch = compute_feature_sets(pairs, 1, 0, cache, runtime="torch")
    assert [i["source"] for i in in_torch] == ["computed"] * 3
    assert {i["computed_by"] for i in infos} == {computed_by("cpu", "openvino")}
    assert {i["computed_by"] for i in in_torch} == {computed_by("cpu", "torch")}
    pt = local_ray.get(torch_refs[feature_key(*pairs[1])])
    assert float(np.abs(pt.features - big.features).max()) <= 1e-4


@pytest.mark.slow   # a local Ray (local_ray)
def test_trials_read_features_from_shared_memory_without_a_copy(local_ray, tiny_root,
                                                                 tiny_features):
    """A Ray task builds a cached trial (prepare) from object refs: its training tensors
    are read-only views of the object store's shared memory, not copies."""
    refs = {k: local_ray.put(fs) for k, fs in tiny_features.items()}
    datasets = {"tiny": os.path.join(tiny_root, "tiny")}

    @local_ray.remote(num_cpus=1)
    def inspect(features):
        from tune_food.train.trainable import _get_features, prepare

        trial = prepare(dict(CONFIG, val_fraction=0.0), datasets, features, device="cpu")
        tensor = trial.train_loader.dataset.features
        key = feature_key("efficientnet_lite0", os.path.join(datasets["tiny"], "train"))
        arr = _get_features(features, "efficientnet_lite0", os.path.join(datasets["tiny"],
                                                                          "train")).features
        again = local_ray.get(features[key]).features   # a second get maps the same memory
        return (trial.feature_cache, arr.flags.writeable, arr.flags.owndata,
                tensor.data_ptr() == again.ctypes.data == arr.ctypes.data)

    assert local_ray.get(inspect.remote(refs)) == ("shared", False, False, True)


def test_evaluation_loss_is_plain_cross_entropy_under_label_smoothing(tiny_root, tiny_features):
    """A trial trained with label smoothing 0.3 reports test_loss and val_loss as plain
    cross-entropy of its logits (the smoothed loss is about 0.3 nats higher here)."""
    datasets = {"tiny": os.path.join(tiny_root, "tiny")}
    trial = prepare(dict(CONFIG, label_smoothing=0.3), datasets, tiny_features,
                    device="cpu")
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
