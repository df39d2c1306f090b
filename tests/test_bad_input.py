"""Bad input: every malformed dataset, space or flag is one clear line on stderr, exit
code 2, no traceback, and no sweep folder that looks like a finished sweep.

The command runs in-process: :func:`cli` is the whole command (``main``), for what it
refuses before Ray starts; :func:`checks` is its checks without Ray
(``conftest.sweep_checks``), for what the plan refuses, which the command finds while
its local Ray starts (the slow tests run that)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import make_subset, run_sweep, shared_dataset, sweep_checks
from PIL import Image

from tune_food.common.files import write_csv_atomic
from tune_food.data.images import rgb_loader
from tune_food.data.splits import ImageSplit, validate_image_folder
from tune_food.sweep import run as sweep

SPACE = ("parameters:\n  model: efficientnet_lite0\n  data: {data}\n"
         "  epochs: 1\n  batch_size: 8\n{extra}")


def cli(capsys, tmp_path, *args, data_root=None, space=None, run=None):
    """Run the sweep CLI in-process; return (exit code, stderr lines, stdout)."""
    argv = ["--results-dir", str(tmp_path / "results"), "--name", "s"]
    if "--resume" not in args and "--search" not in args:
        argv.insert(0, "--grid")
    if data_root is not None:
        argv += ["--data-dir", str(data_root)]
    if space is not None:
        path = tmp_path / "space.yaml"
        path.write_text(space)
        argv += ["--space", str(path)]
    code = (run or sweep.main)(argv + list(args))
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), out


def checks(capsys, tmp_path, *args, data_root=None, space=None):
    """:func:`cli`, without Ray: the command's checks and its plan, as a dry run shows it."""
    return cli(capsys, tmp_path, *args, data_root=data_root, space=space,
               run=lambda argv: sweep_checks(*argv)[0])


def assert_one_line(code, lines, *fragments, tmp_path=None):
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    assert lines[0].startswith("python -m tune_food.sweep: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if tmp_path is not None:
        assert not (tmp_path / "results" / "s").exists()


@pytest.fixture
def root(tmp_path):
    """A data root with ``ds``: 3 train / 2 test real images per class (symlinks)."""
    make_subset(str(tmp_path / "root" / "ds"), {"train": 3, "test": 2})
    return tmp_path / "root"


def good(dataset="ds", extra=""):
    return SPACE.format(data=dataset, extra=extra)


# 1. data root and dataset layout ---------------------------------------------------

def test_data_root_missing(capsys, tmp_path):
    code, lines, _ = checks(capsys, tmp_path, data_root=tmp_path / "nowhere", space=good())
    assert_one_line(code, lines, "nowhere", "does not exist", "--data-dir", tmp_path=tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_dataset_without_a_split(capsys, tmp_path, root, split):
    shutil.rmtree(root / "ds" / split)
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, f"has no {split}/ folder", tmp_path=tmp_path)


def test_unknown_dataset_lists_what_is_there(capsys, tmp_path, root):
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good("dss"))
    assert_one_line(code, lines, "'dss' not found", "folders there: ds", tmp_path=tmp_path)


# 2. classes -------------------------------------------------------------------------

def test_class_folders_differ(capsys, tmp_path, root):
    os.rename(root / "ds" / "test" / "sushi", root / "ds" / "test" / "ramen")
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "class folders differ", "only in train ['sushi']",
                    "only in test ['ramen']", tmp_path=tmp_path)


def test_empty_class_folder(capsys, tmp_path, root):
    for f in (root / "ds" / "train" / "steak").iterdir():
        f.unlink()
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "train/steak has no images", tmp_path=tmp_path)


def test_single_class(capsys, tmp_path, root):
    for split in ("train", "test"):
        for cls in ("steak", "sushi"):
            shutil.rmtree(root / "ds" / split / cls)
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "single class (pizza)", "at least two", tmp_path=tmp_path)


def test_images_directly_in_split_folder(capsys, tmp_path, root):
    src = next((root / "ds" / "train" / "pizza").iterdir())
    shutil.copy(src, root / "ds" / "train" / "loose.jpg")
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "lie directly in", "loose.jpg", "folder named after its class",
                    tmp_path=tmp_path)


# 3. bad images: all reported together; --skip-bad-images ------------------------------

def _break_images(root) -> list[str]:
    real = os.path.realpath(next((root / "ds" / "train" / "pizza").iterdir()))
    data = open(real, "rb").read()
    zero = root / "ds" / "train" / "pizza" / "zero.jpg"
    zero.write_bytes(b"")
    truncated = root / "ds" / "train" / "steak" / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = root / "ds" / "test" / "sushi" / "notes.jpg"
    text.write_text("this is not a JPEG")
    return [str(zero), str(truncated), str(text)]


def test_bad_images_are_reported_together(capsys, tmp_path, root):
    bad = _break_images(root)
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "3 images", "cannot be decoded", "--skip-bad-images",
                    "empty file (0 bytes)", "truncated", tmp_path=tmp_path)
    for path in bad:
        assert path in lines[0]


def test_skip_bad_images_dry_run_counts_them(capsys, tmp_path, root):
    _break_images(root)
    code, lines, out = checks(capsys, tmp_path, "--skip-bad-images", "--dry-run",
                           data_root=root, space=good())
    assert code == 0 and lines == []
    assert "skipping 3 image(s) that cannot be decoded" in out


@pytest.mark.slow
def test_skip_bad_images_sweep_records_them(tmp_path, root, shared_cache):
    bad = _break_images(root)
    space = tmp_path / "space.yaml"
    space.write_text(good())
    proc = run_sweep("--grid", "--space", str(space), "--data-dir", str(root),
                     "--results-dir", str(tmp_path / "results"), "--name", "s",
                     "--cache-dir", shared_cache, "--skip-bad-images")
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = json.load(open(tmp_path / "results" / "s" / "sweep.json"))
    # relative to the data root: a sweep folder names nothing absolute
    assert sorted(s["path"] for s in state["skipped_bad_images"]) == \
        sorted(os.path.relpath(b, root) for b in bad)
    board = pd.read_csv(tmp_path / "results" / "s" / "leaderboard.csv")
    assert board["test_images"].tolist() == [6]  # the text file named .jpg is left out


def test_non_images_and_hidden_folders_are_ignored(root):
    (root / "ds" / "train" / "pizza" / "README.txt").write_text("notes")
    (root / "ds" / "train" / "pizza" / ".DS_Store").write_bytes(b"\0\1")
    (root / "ds" / "train" / ".ipynb_checkpoints").mkdir()
    (root / "ds" / "test" / ".ipynb_checkpoints").mkdir()
    info = validate_image_folder(str(root / "ds"))
    assert info.classes == ["pizza", "steak", "sushi"] and len(info.train.samples) == 9
    from tune_food.data.splits import split_samples

    classes, samples = split_samples(str(root / "ds" / "train"))
    assert classes == info.classes and len(samples) == 9


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA", "1"])
def test_any_pillow_mode_becomes_rgb(tmp_path, mode):
    photo = Image.open(os.path.join(shared_dataset(), "test", "pizza",
                                    sorted(os.listdir(os.path.join(shared_dataset(), "test",
                                                                   "pizza")))[0]))
    img = photo.convert(mode) if mode != "I;16" else Image.fromarray(
        (np.asarray(photo.convert("L"), dtype=np.uint16) * 256).astype("<u2"))
    assert img.mode == mode
    (tmp_path / "split" / "pizza").mkdir(parents=True)
    path = tmp_path / "split" / "pizza" / ("x.png" if mode != "CMYK" else "x.jpg")
    img.save(path)
    rgb = rgb_loader(str(path))
    assert rgb.mode == "RGB" and rgb.size == photo.size
    if mode == "I;16":  # 16-bit grey scaled to 8 bits, not clipped to white
        assert 20 < np.asarray(rgb).mean() < 235
    from tune_food.models.registry import get_transform

    x, label = ImageSplit(str(tmp_path / "split"), get_transform("efficientnet_lite0"))[0]
    assert tuple(x.shape) == (3, 224, 224) and label == 0


# 4. search space --------------------------------------------------------------------

@pytest.mark.parametrize("text,fragments", [
    ("parameters:\n  model: [efficientnet_lite0\n", ["YAML syntax error at line"]),
    (good(extra="  learning_rate: 0.1\n"), ["parameters.learning_rate: unknown parameter"]),
    (good().replace("efficientnet_lite0", "efficientnet_lite9"),
     ["parameters.model: 'efficientnet_lite9' is not allowed", "efficientnet_b0"]),
    (good(extra="  lr: 0\n"), ["parameters.lr: 0 is not allowed", "a number > 0"]),
    (good(extra="  lr: -0.1\n"), ["parameters.lr: -0.1 is not allowed"]),
    (good().replace("epochs: 1", "epochs: 0"), ["parameters.epochs: 0 is not allowed"]),
    (good().replace("batch_size: 8", "batch_size: 0"), ["parameters.batch_size: 0"]),
    (good(extra="  dropout: 1\n"), ["parameters.dropout: 1 is not allowed", "[0, 1)"]),
    (good(extra="  val_fraction: 0.9\n"), ["cannot hold out val_fraction=0.9"]),
    (good(extra="  lr: {loguniform: [0.001, 0.1]}\n"), ["--grid needs constants", "--search"]),
    (good(extra="  lr: .inf\n"), ["parameters.lr: inf is not allowed"]),
    (good(extra="  epochs: 2\n"), ["key 'epochs' is given twice"]),
    (good(extra="  val_fraction: 0.99\n"), ["cannot hold out val_fraction=0.99", "e.g. 0.1 to 0.5"]),
])
def test_bad_space(capsys, tmp_path, root, text, fragments):
    code, lines, _ = checks(capsys, tmp_path, data_root=root, space=text)
    assert_one_line(code, lines, *fragments, tmp_path=tmp_path)
    if "YAML" in fragments[0] or "parameters." in fragments[0]:
        assert str(tmp_path / "space.yaml") in lines[0]


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    from tune_food.sweep.spaces import load_space

    path = tmp_path / "s.yaml"
    path.write_text(good(extra="  lr: 1e-3\n  weight_decay: 5E-5\n"))
    space = load_space(str(path))
    assert space.param_space["lr"] == 0.001 and space.param_space["weight_decay"] == 5e-5


def test_space_file_not_found(capsys, tmp_path, root):
    code, lines, _ = cli(capsys, tmp_path, "--space", str(tmp_path / "nope.yaml"), data_root=root)
    assert_one_line(code, lines, "nope.yaml not found", "--space", tmp_path=tmp_path)


# 5. resources -------------------------------------------------------------------------

def test_more_gpus_than_any_node(capsys, tmp_path, root):
    code, lines, _ = cli(capsys, tmp_path, "--gpus-per-trial", "4", data_root=root, space=good())
    assert_one_line(code, lines, "no node of this machine can run a trial with 1 CPUs and 4 GPUs",
                    "0 GPUs", tmp_path=tmp_path)


@pytest.mark.parametrize("flag,value,fragment", [
    ("--cpus-per-trial", "0", "--cpus-per-trial must be > 0"),
    ("--cpus-per-trial", "64", "no node of this machine can run a trial with 64 CPUs"),
    ("--max-concurrent", "-1", "--max-concurrent must be >= 0"),
    ("--num-samples", "0", "--num-samples must be >= 1"),
    ("--name", "a/b", "must be a plain, non-empty folder name"),
    ("--name", "", "must be a plain, non-empty folder name"),
    ("--num-samples", "2", "--num-samples applies to --search only"),
    ("--num-samples", "1", "--num-samples applies to --search only"),
])
def test_bad_flags(capsys, tmp_path, root, flag, value, fragment):
    code, lines, _ = cli(capsys, tmp_path, flag, value, data_root=root, space=good())
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines


def test_grid_and_search_together(capsys, tmp_path, root):
    code, lines, _ = cli(capsys, tmp_path, "--grid", "--search", "optuna", data_root=root,
                         space=good())
    assert_one_line(code, lines, "--grid and --search exclude each other", tmp_path=tmp_path)


@pytest.mark.parametrize("flag", ["--results-dir", "--cache-dir", "--data-dir"])
def test_a_file_where_a_folder_belongs(capsys, tmp_path, root, flag):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = [flag, str(afile)] if flag != "--data-dir" else []
    code, lines, _ = checks(capsys, tmp_path, *args, "--dry-run", space=good(),
                         data_root=afile if flag == "--data-dir" else root)
    assert code == 2 and len(lines) == 1 and "is a file, not a folder" in lines[0], lines


@pytest.mark.parametrize("flag", ["--results-dir", "--cache-dir"])
def test_a_folder_that_cannot_be_made_where_permissions_say_it_could(capsys, tmp_path, root,
                                                                    flag):
    """/proc passes a permission check (for root) but refuses new folders: the checks
    (a dry run included) try making one instead of trusting os.access."""
    code, lines, _ = checks(capsys, tmp_path, flag, "/proc/tune_food_nope", "--dry-run",
                         space=good(), data_root=root)
    assert code == 2 and len(lines) == 1, lines
    assert f"{flag} /proc/tune_food_nope cannot be created: making a folder in /proc" in lines[0]


def test_argparse_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exited:
        sweep.main(["--grid", "--cpus-per-trial", "two"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tune_food.sweep: error: ")
    assert "invalid float value: 'two'" in lines[0]


def test_missing_torchvision_weights_offline(capsys, tmp_path, root, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, lines, _ = checks(capsys, tmp_path, data_root=root,
                         space=good().replace("efficientnet_lite0", "efficientnet_b1"))
    assert_one_line(code, lines, "efficientnet_b1", "cannot reach",
                    str(tmp_path / "torch" / "hub" / "checkpoints"), tmp_path=tmp_path)


# 6. resume --------------------------------------------------------------------------

def test_resume_unknown_sweep(capsys, tmp_path):
    code, lines, _ = cli(capsys, tmp_path, "--resume")
    assert_one_line(code, lines, "no sweep named 's'", "--name")


def test_existing_sweep_name_is_not_overwritten(capsys, tmp_path, root):
    (tmp_path / "results" / "s").mkdir(parents=True)
    code, lines, _ = cli(capsys, tmp_path, data_root=root, space=good())
    assert_one_line(code, lines, "exists already", "--resume")


# 7. atomic writes -------------------------------------------------------------------

class Exploding:
    def __str__(self):
        raise RuntimeError("disk full (simulated)")


def test_csv_writes_are_atomic(tmp_path):
    path = tmp_path / "leaderboard.csv"
    good_df = pd.DataFrame({"rank": [1, 2], "test_acc": [0.9, 0.8]})
    write_csv_atomic(good_df, str(path))
    before = path.read_bytes()
    bad_df = pd.DataFrame({"rank": range(50_000), "x": ["ok"] * 49_999 + [Exploding()]})
    with pytest.raises(RuntimeError, match="disk full"):
        bad_df.to_csv(tmp_path / "naive.csv", index=False)
    assert (tmp_path / "naive.csv").stat().st_size > 0  # a plain write leaves half a file
    with pytest.raises(RuntimeError, match="disk full"):
        write_csv_atomic(bad_df, str(path))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["leaderboard.csv", "naive.csv"]


@pytest.mark.slow   # a dry run as a program: it starts Ray
def test_output_piped_to_head_ends_quietly(default_grid_root):
    """`sweep ... | head -2` closes the pipe early: no BrokenPipeError traceback."""
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.run(f"{sys.executable} -m tune_food.sweep --grid --dry-run --data-dir "
                          f"{default_grid_root} | head -2", shell=True,
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
