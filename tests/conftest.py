"""Shared fixtures: the real pizza/steak/sushi images from ../shared/data, small
subsets of them (symlinked into a temporary folder, never copied into the repo), and a
temporary TORCH_HOME holding torchvision EfficientNet checkpoints."""

from __future__ import annotations

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The README's test command sets TUNE_FOOD_DATA_DIR=../shared/data; without it the
# tests look beside the checkout.
SHARED_DATA = os.path.abspath(os.environ.get("TUNE_FOOD_DATA_DIR")
                              or os.path.join(REPO, "..", "shared", "data"))
CLASSES = ("pizza", "steak", "sushi")
# the browser tests drive Debian's chromium (Playwright cannot download its own here)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_dataset(name: str = "pizza_steak_sushi") -> str:
    path = os.path.join(SHARED_DATA, name)
    if not os.path.isdir(path):
        pytest.fail(f"real images not found at {path}; set TUNE_FOOD_DATA_DIR to the folder "
                    "holding pizza_steak_sushi/ (see README)")
    return path


def make_subset(dest: str, per_class: dict[str, int], source: str | None = None,
                offset: int = 0) -> str:
    """A dataset folder at ``dest`` whose images are symlinks to the first
    ``per_class[split]`` real images of each class (after ``offset``)."""
    source = source or shared_dataset()
    for split, n in per_class.items():
        for cls in CLASSES:
            os.makedirs(os.path.join(dest, split, cls), exist_ok=True)
            files = sorted(os.listdir(os.path.join(source, split, cls)))[offset:offset + n]
            for f in files:
                os.symlink(os.path.join(source, split, cls, f), os.path.join(dest, split, cls, f))
    return dest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> str:
    """A data root with ``tiny`` (8 train / 4 test images per class, real photos)."""
    root = tmp_path_factory.mktemp("data")
    make_subset(str(root / "tiny"), {"train": 8, "test": 4})
    return str(root)


@pytest.fixture(scope="session")
def default_grid_root(tmp_path_factory) -> str:
    """A data root holding the two datasets the default grid names
    (``pizza_steak_sushi``, ``pizza_steak_sushi_20_percent``), each 2 train / 1 test
    real images per class: a dry run of the default grid checks 18 images, not 900."""
    root = tmp_path_factory.mktemp("default_grid_data")
    for name in ("pizza_steak_sushi", "pizza_steak_sushi_20_percent"):
        make_subset(str(root / name), {"train": 2, "test": 1}, source=shared_dataset(name))
    return str(root)


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory) -> str:
    """A TORCH_HOME whose hub cache holds B0, B2, B3 and B4 checkpoints (random weights saved
    under the exact file names torchvision looks for), so the torchvision path of the
    registry runs without the network."""
    import torch
    import torchvision

    home = tmp_path_factory.mktemp("torch_home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name in ("efficientnet_b0", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4"):
        url = torchvision.models.get_model_weights(name).DEFAULT.url
        torch.manual_seed(0)
        net = torchvision.models.get_model(name, weights=None)
        torch.save(net.state_dict(), ckpt / os.path.basename(url))
    return str(home)


@pytest.fixture
def use_torch_home(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", torch_home)  # torch.hub.get_dir() follows it
    return torch_home


def run_cli(module: str, *args: str, env: dict | None = None, timeout: float = 600):
    """Run ``python -m module args`` in a subprocess; return the CompletedProcess."""
    import subprocess

    full_env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def small_sweep(tiny_root, tmp_path_factory):
    """A 2-trial grid (Lite0 x 1 / 2 epochs) on 24 train / 12 test real images, batch 5
    so every epoch ends on an uneven batch."""
    tmp = tmp_path_factory.mktemp("sweep")
    space = tmp / "space.yaml"
    space.write_text("parameters:\n  model: efficientnet_lite0\n  data: tiny\n"
                     "  epochs: {grid_search: [1, 2]}\n  batch_size: 5\n  lr: 0.01\n")
    proc = run_cli("tune_food.sweep", "--grid", "--space", str(space), "--data-dir", tiny_root,
                   "--results-dir", str(tmp / "results"), "--cache-dir", str(tmp / "cache"),
                   "--name", "small")
    return proc, str(tmp / "results" / "small")
