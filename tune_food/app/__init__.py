"""The web page of a sweep: ``python -m tune_food.app [results/<name>]`` (Gradio).

::

    python -m tune_food.app                      # the newest sweep under ./results
    python -m tune_food.app results/grid-run1 --port 7861
    python -m tune_food.app --host 0.0.0.0 --auth me:secret

Three pages, all built on the sweep folder's own files and on the functions the CLIs use
(nothing here re-implements the leaderboard or the classifier):

* **Classify**: drop photos (or pick test images of the sweep); each gets its top classes
  from :func:`tune_food.inference.classifier.classify` with the classifier of the chosen
  trial (:func:`tune_food.inference.classifier.load_classifier`, loaded once per trial and
  kept), the time
  per image in ms, and which trial and checkpoint answered.
* **Leaderboard**: ``leaderboard.csv`` as a table, the plots, and per trial its
  hyperparameters, curves (``progress.csv``), the test images it gets wrong and its
  confusion matrix. While the sweep runs, the page rebuilds every few seconds from the
  trial folders with :func:`tune_food.results.outputs.build_outputs`, the code the sweep and
  ``python -m tune_food.report`` write their outputs with.
* **Sweeps**: the sweeps under the results folder with their status and best result;
  start one (a space file of ``search_spaces/`` and a few flags) as a background
  ``python -m tune_food.sweep`` process in its own session, watch its output, stop it
  (SIGINT: the sweep ends "interrupted") and resume it (``--resume``).

Offline: Gradio's analytics are switched off and the theme uses the system's fonts, so no
request leaves the machine. Uploads above :data:`MAX_FILE_SIZE` are refused by Gradio.

Modules, each one job (Gradio is imported only when the page is built):

* :mod:`.folders`: reading sweep folders (sweeps, boards, test images, predictions).
* :mod:`.launcher`: starting, stopping and resuming sweep processes; the sweeps table.
* :mod:`.boards`: the boards the page's requests share, read again when files change.
* :mod:`.classify`, :mod:`.leaderboard_page` (+ :mod:`.figures`), :mod:`.sweeps_page`:
  the three pages, each its layout and event handlers.
* :mod:`.page`: the ``Blocks`` of the three pages and their events (:func:`build_app`).
* :mod:`.cli`: ``python -m tune_food.app`` (flags, checks, serving).
"""

import importlib
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

# Where each public name lives; imported on first use (PEP 562), so that
# ``python -m tune_food.app --help`` loads neither pandas nor gradio.
_HOME = {"MAX_IMAGES": "classify", "Classifiers": "classify", "classify_images": "classify",
         "MAX_FILE_SIZE": "cli", "PROG": "cli", "main": "cli", "wait_until_serving": "cli",
         "Board": "folders", "checkpointed": "folders", "display_board": "folders",
         "load_board": "folders",
         "Launcher": "launcher", "AppConfig": "page",
         "build_app": "page"}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'tune_food.app' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
