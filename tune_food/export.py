"""Ship a trained trial as a web demo that runs without tune_food and without PyTorch:
``python -m tune_food.export``.

::

    python -m tune_food.export results/<name> --out pizza-demo            # rank 1
    python -m tune_food.export results/<name> --trial NAME --out DIR [--force]
    cd pizza-demo && pip install -r requirements.txt && python app.py

The folder (ready for a Hugging Face Space):

* ``model.onnx``: backbone, head and softmax in one ONNX graph
  (:func:`tune_food.models.deploy.export_onnx`), run by ONNX Runtime;
* ``model.json``: the class names, the preprocessing steps of the weights
  (:func:`tune_food.models.registry.preprocessing`) and the ONNX Runtime threads
  ``cpu_ms`` was measured with, which ``app.py`` uses too;
* ``app.py`` and ``preprocess.py``: the Gradio page and the Pillow + NumPy
  preprocessing (:mod:`tune_food.demo`, copied as they are);
* ``requirements.txt``: gradio, onnxruntime, numpy and pillow pinned to the versions
  this export was made and tested with, each checked installable on this Python (its
  ``Requires-Python``);
* ``examples/``: one test photo per class;
* ``README.md``: the Space's front matter (``python_version``: this Python's
  major.minor, which the pins need) and a model card (hyperparameters, data, test
  accuracy with its interval, the McNemar standing, ``cpu_ms``, the sweep, the limits,
  where the example photos come from).

Before the folder is written, the ONNX model's probabilities on the example photos are
checked against the PyTorch classifier's (to 1e-4). The folder is built beside
``--out`` and renamed into place: a failure leaves nothing behind. ``--force`` replaces
only an earlier export (a folder with its ``model.json``), never the sweep exported nor
a folder holding it (:func:`tune_food.common.files.check_replaceable`).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from typing import Sequence

from tune_food.common.cliargs import Parser, cli_call, exit_program, path_arg, quiet_broken_pipe
from tune_food.common.errors import SweepError
from tune_food.common.files import Replaceable, atomic_folder, check_replaceable
from tune_food.models.figures import CPU_MS, MODEL_MB
from tune_food.sweepdir.columns import P_VS_BEST, RANK, RANKED_BY, TIED_WITH_BEST, TRIAL_ID

PROG = "python -m tune_food.export"
DEMO_FILES = ("app.py", "preprocess.py")      # of tune_food/demo, copied as they are
MODEL_JSON, EXAMPLES_DIR = "model.json", "examples"
MODEL_JSON_KEYS = ("trial", "classes", "preprocessing")   # how --force knows an export
REQUIREMENTS_FILE, README_FILE = "requirements.txt", "README.md"
# what an export folder holds at its top (model.onnx: models.deploy.ONNX_FILE), and what
# running its app.py adds there (Python's bytecode cache, Gradio's folders): --force
# replaces a folder holding nothing else
DEMO_ENTRIES = ("model.onnx", *DEMO_FILES, MODEL_JSON, EXAMPLES_DIR, REQUIREMENTS_FILE,
                README_FILE, "__pycache__", ".gradio", "flagged")
REQUIREMENTS = ("gradio", "onnxruntime", "numpy", "pillow")   # what app.py imports
AGREE = 1e-4   # ONNX Runtime against PyTorch, probabilities (float32 reassociation: ~1e-6)


def build_parser() -> Parser:
    """The command line of :func:`main`."""
    parser = Parser(prog=PROG, description="Export a trial of a sweep as a self-contained "
                    "web demo (ONNX model, Gradio app, model card).")
    parser.add_argument("sweep", type=path_arg, help="the sweep folder, results/<name>")
    parser.add_argument("--trial", metavar="NAME", help="the trial to export, by name or id "
                        "(default: rank 1; the sweep's summary names the fastest trial tied "
                        "with the best)")
    parser.add_argument("--out", metavar="DIR", type=path_arg, required=True,
                        help="the folder to create")
    parser.add_argument("--force", action="store_true", help="replace --out if it is an "
                        "earlier export (a folder with its model.json)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (0, or 2 after one line on stderr)."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        folder = export(args.sweep, args.out, args.trial, args.force)
        with open(os.path.join(folder, MODEL_JSON)) as fh:
            card = json.load(fh)
        print(f"exported trial {card['trial']} of {args.sweep} to {folder} (model.onnx "
              f"{card[MODEL_MB]:.1f} MB, {card[CPU_MS]:.1f} ms per photo on one CPU thread)")
        print(f"try it: cd {folder} && pip install -r requirements.txt && python app.py")
        return 0

    return cli_call(PROG, args.debug, body, imports=("torch", "onnxruntime", "onnxscript"))


def replaceable(sweep_dir: str) -> Replaceable:
    """What ``--force`` may replace: an earlier export (its ``model.json``), never
    ``sweep_dir`` nor a folder holding it."""
    return Replaceable(MODEL_JSON, MODEL_JSON_KEYS, PROG,
                       keep={sweep_dir: "the sweep this export reads"}, entries=DEMO_ENTRIES)


def check_out(out: str, force: bool, sweep_dir: str) -> None:
    """Refuse an ``--out`` that exists (without ``force``; with it, one that is not an
    earlier export: :func:`replaceable`) or whose parent folder cannot be written.

    Raises:
        SweepError: the reason, in one line.
        OutputError: ``force`` on a folder that is not an earlier export.
    """
    if os.path.lexists(out) and not force:
        raise SweepError(f"--out {out} exists; choose a new folder, or pass --force to "
                         "replace it if it is an earlier export")
    check_replaceable(out, replaceable(sweep_dir))
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        what = "is not a folder" if os.path.lexists(parent) else "does not exist"
        raise SweepError(f"--out {out}: its parent {parent} {what}")
    try:   # the one sure test of writing there (root passes os.access on a read-only /proc)
        os.rmdir(tempfile.mkdtemp(prefix=".tune_food-check-", dir=parent))
    except OSError as exc:
        raise SweepError(f"--out {out}: cannot write into {parent} "
                         f"({exc.strerror or type(exc).__name__})") from None


def export(sweep_dir: str, out: str, trial: str | None = None, force: bool = False) -> str:
    """Write the demo folder of ``trial`` (None: rank 1) of ``sweep_dir`` to ``out``.

    Returns:
        the absolute ``out``.

    Raises:
        SweepError: not a sweep folder, no such trial, an unranked trial or one without
            a checkpoint (:func:`tune_food.inference.checkpoints.trial_checkpoint`), ``out`` refused
            (:func:`check_out`), no test photo of a class, an exported model that
            disagrees with PyTorch, or a pin this Python cannot install
            (:func:`requirements`).
        OutputError: ``force`` and ``out`` is not an earlier export
            (:func:`tune_food.common.files.check_replaceable`); nothing is touched.
        WeightsError: the backbone's pretrained weights are missing.
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.inference.checkpoints import trial_checkpoint
    from tune_food.sweepdir.state import check_sweep_folder, read_state

    check_out(out, force, sweep_dir)
    check_sweep_folder(sweep_dir)
    state = read_state(sweep_dir)
    chosen = trial_checkpoint(sweep_dir, trial)
    pins = requirements()
    return atomic_folder(out, lambda folder: _write_folder(folder, sweep_dir, state, chosen,
                                                           pins),
                         replace=replaceable(sweep_dir) if force else None)


def _write_folder(folder: str, sweep_dir: str, state, chosen, pins: str) -> None:
    """Everything of the demo folder, written into ``folder``."""
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    import importlib.resources

    import pandas as pd

    from tune_food.inference.classifier import load_classifier
    from tune_food.models.deploy import ONNX_FILE, THREADS, export_onnx, measure
    from tune_food.models.registry import preprocessing
    from tune_food.sweepdir.layout import LEADERBOARD_FILE, TRIAL_CONFIG_FILE

    board = pd.read_csv(os.path.join(sweep_dir, LEADERBOARD_FILE))
    row = board[board[TRIAL_ID].astype(str) == chosen.trial_id].iloc[0]
    model, classes = load_classifier(chosen.path, runtime="torch")
    # the trial's configuration as Ray Tune saved it in the trial folder
    with open(os.path.join(os.path.dirname(chosen.path), TRIAL_CONFIG_FILE)) as fh:
        config = json.load(fh)
    examples = _copy_examples(folder, sweep_dir, config, classes)
    onnx_path = export_onnx(model, os.path.join(folder, ONNX_FILE))
    steps = preprocessing(model.model_name)
    _check_agreement(model, classes, onnx_path, steps, examples)
    for name in DEMO_FILES:
        source = importlib.resources.files("tune_food.demo").joinpath(name)
        with open(os.path.join(folder, name), "w") as fh:
            fh.write(source.read_text())
    card = {"title": f"{', '.join(classes)} classifier", "trial": chosen.trial_name,
            TRIAL_ID: chosen.trial_id, "sweep": state.name, "model": model.model_name,
            "classes": classes, "preprocessing": steps, "epoch": chosen.epoch,
            MODEL_MB: round(os.path.getsize(onnx_path) / 1e6, 3),
            CPU_MS: round(measure(onnx_path, steps, examples[0]), 3), "threads": THREADS}
    with open(os.path.join(folder, MODEL_JSON), "w") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    with open(os.path.join(folder, REQUIREMENTS_FILE), "w") as fh:
        fh.write(pins)
    with open(os.path.join(folder, README_FILE), "w") as fh:
        fh.write(model_card(card, row, config, state))


def space_python() -> str:
    """The Python the exported Space runs: this one's major.minor (``"3.11"``), the
    front matter's ``python_version``."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def requirements(python: str | None = None) -> str:
    """``requirements.txt``: :data:`REQUIREMENTS` pinned to the installed versions, each
    checked against its distribution's ``Requires-Python`` for ``python`` (default this
    Python, :func:`platform.python_version`; the Space runs its major.minor,
    :func:`space_python`).

    Returns:
        one ``name==version`` line per package.

    Raises:
        SweepError: a pin's ``Requires-Python`` excludes ``python`` (nothing is lowered
            silently: the message names the pin).
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    import importlib.metadata as md

    from packaging.specifiers import SpecifierSet

    python, lines = python or platform.python_version(), []
    for pkg in REQUIREMENTS:
        dist = md.distribution(pkg)
        needs = dist.metadata.get("Requires-Python")
        if needs and not SpecifierSet(needs).contains(python, prereleases=True):
            raise SweepError(f"{pkg}=={dist.version} needs Python {needs}, not {python}: the "
                             "exported Space could not install it; export with a Python it "
                             "supports, or install a version of it that supports this one")
        lines.append(f"{pkg}=={dist.version}\n")
    return "".join(lines)


def _copy_examples(folder: str, sweep_dir: str, config: dict, classes: list[str]) -> list[str]:
    """Copy the first test photo (sorted) of each class of the trial with ``config`` (the
    test split it was scored on) into ``folder/examples`` as
    ``<class>_<file name>``; return the copies' paths (class order).

    Raises:
        SweepError: the test photos are not on this machine, or a class has none.
    """
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.results.images import test_images

    photos = test_images(sweep_dir, config)
    os.makedirs(os.path.join(folder, EXAMPLES_DIR))
    copies = []
    for cls in classes:
        mine = [p for p in photos if os.path.basename(os.path.dirname(p)) == cls]
        if not mine:
            raise SweepError(f"no test photo of class {cls} found for the examples (are the "
                             "sweep's datasets on this machine? set TUNE_FOOD_DATA_DIR)")
        copies.append(os.path.join(folder, EXAMPLES_DIR, f"{cls}_{os.path.basename(mine[0])}"))
        shutil.copyfile(mine[0], copies[-1])
    return copies


def _check_agreement(model, classes: list[str], onnx_path: str, steps: dict,
                     photos: list[str]) -> None:
    """The ONNX model's probabilities equal the PyTorch classifier's (:data:`AGREE`) on
    ``photos``.

    Raises:
        SweepError: they differ (the export would ship another model).
    """
    import numpy as np  # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)

    from tune_food.demo.preprocess import load_rgb, to_input
    from tune_food.inference.classifier import classify
    from tune_food.models.deploy import onnx_session

    session = onnx_session(onnx_path)
    name = session.get_inputs()[0].name
    expected = classify(model, classes, photos, top_k=len(classes))
    for photo, want in zip(photos, expected):
        (got,) = session.run(None, {name: to_input(load_rgb(photo), steps)})
        ref = np.array([dict((p["class"], p["probability"]) for p in want["predictions"])[c]
                        for c in classes])
        if not np.allclose(got[0], ref, atol=AGREE, rtol=0):
            raise SweepError(f"the exported model disagrees with PyTorch on {photo} "
                             f"(max difference {np.abs(got[0] - ref).max():.2e}); not exported")


def model_card(card: dict, row, config: dict, state) -> str:
    """``README.md``: the front matter a Hugging Face Space reads (Gradio, ``app.py``)
    and the model card: what the model is, how it was chosen, what it costs, its limits
    and where the example photos come from. ``state``: the sweep's
    :class:`~tune_food.sweepdir.record.SweepState`."""
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    import importlib.metadata as md

    import pandas as pd

    classes = ", ".join(card["classes"])
    varied = ", ".join(f"{k}={v}" for k, v in sorted(config.items())
                       if k not in ("model", "data", "test_data", "feature_cache")
                       and v is not None)
    acc = (f"{row['test_acc']:.3f} (95 % Wilson interval {row['test_acc_ci_low']:.3f} to "
           f"{row['test_acc_ci_high']:.3f}; {int(row['test_correct'])} of "
           f"{int(row['test_images'])} test photos)")
    tied = row.get(TIED_WITH_BEST)
    standing = (f"rank {int(row[RANK])} by {row.get(RANKED_BY, state.metric)}; "
                + ("the best trial" if int(row[RANK]) == 1 else
                   f"statistically tied with the best (exact McNemar p = {row[P_VS_BEST]:.3g})"
                   if tied is True or tied == "True" else
                   f"worse than the best (exact McNemar p = {row[P_VS_BEST]:.3g})"
                   if pd.notna(row.get(P_VS_BEST)) else "not compared with the best"))
    test = config.get("test_data") or config.get("data")
    lines = [
        "---", f"title: {card['title']}", "emoji: 🍽️", "colorFrom: yellow", "colorTo: red",
        "sdk: gradio", f"sdk_version: {md.version('gradio')}",
        f'python_version: "{space_python()}"', "app_file: app.py",
        "pinned: false", "---", "", f"# {card['title']}", "",
        f"Upload a photo and get the probability of each class ({classes}). "
        f"Run it: `pip install -r requirements.txt && python app.py`, then open "
        "http://127.0.0.1:7860.", "", "## Model card", "", "| | |", "|---|---|",
        f"| model | `{card['model']}` pretrained on ImageNet, frozen, with a new head "
        f"(dropout + linear, {len(card['classes'])} classes) |",
        f"| parameters | {int(row['total_params']):,} (backbone included) |",
        f"| hyperparameters | {varied} |",
        f"| data | trained on `{config.get('data')}` (train split), scored on `{test}` "
        "(test split) |",
        f"| test accuracy | {acc} |", f"| standing | {standing} |",
        f"| cpu_ms | {card[CPU_MS]:.1f} ms per photo end to end (decode, preprocessing, "
        f"model), batch 1, ONNX Runtime with intra_op_num_threads = inter_op_num_threads = "
        f"{card['threads']} (as `app.py` runs it), on the machine that exported it |",
        f"| model.onnx | {card[MODEL_MB]:.1f} MB |",
        f"| from | trial `{card['trial']}` (epoch {card['epoch']}) of sweep "
        f"`{card['sweep']}`, made with tune_food |", "",
        "## Limits", "",
        f"- It knows only {classes}: every photo gets one of them, a photo of something "
        "else included; a high probability does not mean the photo shows one of them.",
        f"- Its accuracy was measured on {int(row['test_images'])} test photos of the same "
        "source as its training photos; photos from elsewhere (other cameras, light, "
        "dishes) may fare worse.",
        "- The preprocessing (`preprocess.py`) reproduces the pretrained weights' own "
        "transform; change it and the model sees other inputs.", "",
        "## Example photos", "",
        "`examples/` holds one test photo per class, taken from:", *_dataset_terms(state), ""]
    return "\n".join(lines)


def _dataset_terms(state) -> list[str]:
    """Where each of the sweep's datasets comes from and under what terms."""
    # lazy: --help speed: 0.06 s, not the ~3 s of torch and pandas (measured)
    from tune_food.data.datasets import DATASETS

    lines = []
    for name in sorted(state.datasets):
        known = DATASETS.get(name)
        terms = known.terms if known is not None and known.terms else (
            "a dataset of the sweep's own; check the terms its photos were published "
            "under before you publish them")
        lines.append(f"- `{name}`: {terms}.")
    return lines


if __name__ == "__main__":
    quiet_broken_pipe()
    exit_program(main())
