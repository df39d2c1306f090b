"""Workaround: Ray Tune (2.60) hands out a moved sweep's new trials in its old folder.

A sweep folder may be moved or copied and then resumed (``--resume``; docs/architecture.md,
decision 7). ``Tuner.restore`` relocates the trials it had created (ray-project/ray#40647),
but the search algorithm is restored from its own saved state, which holds the original
experiment folder: every trial it creates after the restore (a grid's combinations not yet
started, Optuna's next suggestions) is placed in the *old* folder, or fails when that
folder is gone. No upstream issue covers the search algorithm's new trials (the Ray
tracker was searched on 2026-12-07; #40647, #29920 and #31669 fix the restored trials).

:func:`place_new_trials` records where the sweep is now, before ``fit``, and the search
algorithms of :func:`tune_food.sweep.search.make_search` are these subclasses, whose
``next_trial`` moves each new trial there through Ray's ``Trial.set_storage``. The
location is class-wide because Ray Tune restores the search algorithm from its pickle, not
from an object this process made. ``tests/test_resume.py`` checks that plain Ray still
misplaces the trials (the test fails once Ray fixes it: then delete this module).
"""

from __future__ import annotations

import copy

from ray.tune.search import BasicVariantGenerator, SearchGenerator


class Relocatable:
    """Mixin for Ray Tune search algorithms: every trial they hand out is placed in the
    experiment folder where the sweep is now (set by :func:`place_new_trials`), whatever
    folder their saved state remembers."""

    #: ``(storage_fs_path, experiment_dir_name)`` of the running sweep, or None (a URI)
    location: tuple[str, str] | None = None

    def next_trial(self):
        trial = super().next_trial()
        where = Relocatable.location
        if trial is not None and where is not None and \
                (trial.storage.storage_fs_path, trial.storage.experiment_dir_name) != where:
            storage = copy.copy(trial.storage)
            storage.storage_fs_path, storage.experiment_dir_name = where
            trial.set_storage(storage)   # Ray's public setter: moves checkpoints too
        return trial


class RelocatableVariants(Relocatable, BasicVariantGenerator):
    """Ray Tune's ``BasicVariantGenerator`` (grid and random search), relocatable."""


class RelocatableSearchGenerator(Relocatable, SearchGenerator):
    """Ray Tune's ``SearchGenerator`` (around a ``Searcher`` such as Optuna), relocatable."""


def place_new_trials(storage_path: str | None, experiment_dir_name: str) -> None:
    """Trials the search algorithm creates from now on go to
    ``<storage_path>/<experiment_dir_name>`` (None: leave them where Ray puts them, as for
    a storage URI, where the folder's place is the URI itself)."""
    Relocatable.location = None if storage_path is None else (storage_path, experiment_dir_name)
