"""Workaround: Ray Tune (2.60) hands out a moved sweep's new trials in its old folder.

A sweep folder may be moved or copied and then resumed (``--resume``; docs/architecture.md,
decision 7). ``Tuner.restore`` relocates the trials it had created (ray-project/ray#40647),
but the search algorithm is restored from its own saved state, which holds the original
experiment folder: every trial it creates after the restore (a grid's combinations not yet
started, Optuna's next suggestions) is placed in the *old* folder, or fails when that
folder is gone. No upstream issue covers the search algorithm's new trials (the Ray
tracker was searched on 2026-12-07; #40647, #29920 and #31669 fix the restored trials).

The search algorithms of :func:`tune_food.sweep.search.make_search` are these subclasses:
each holds the place where the sweep is now (its ``location``, given when it is made)
and its ``next_trial`` moves each new trial there through Ray's ``Trial.set_storage``.
A restored Tuner's search algorithm is not one this process made: Ray Tune unpickles it
from the sweep folder's ``tuner.pkl``; :func:`place_new_trials` gives it the location
before ``fit``. The location is no part of the algorithm's saved state (``get_state``),
so a restore never brings back the folder the sweep was in. ``tests/test_resume.py``
checks that plain Ray still misplaces the trials (the test fails once Ray fixes it: then
delete this module).
"""

from __future__ import annotations

import copy

from ray.tune.search import BasicVariantGenerator, SearchGenerator

#: ``(storage_fs_path, experiment_dir_name)``: the folder a sweep's trials go to
Location = tuple[str, str]


class Relocatable:
    """Mixin for Ray Tune search algorithms: every trial they hand out is placed in
    ``location``, the experiment folder where the sweep is now, whatever folder their
    saved state remembers (None, as for a storage URI, where the folder's place is the URI
    itself: where Ray puts them)."""

    def __init__(self, *args, location: Location | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.location = location

    def next_trial(self):
        trial = super().next_trial()
        where = getattr(self, "location", None)   # (pickled by an older tune_food: none)
        if trial is not None and where is not None and \
                (trial.storage.storage_fs_path, trial.storage.experiment_dir_name) != where:
            storage = copy.copy(trial.storage)
            storage.storage_fs_path, storage.experiment_dir_name = where
            trial.set_storage(storage)   # Ray's public setter: moves checkpoints too
        return trial

    def get_state(self):
        """Ray's saved state, without the location: where the sweep runs is not the
        algorithm's state (``BasicVariantGenerator`` saves its whole ``__dict__``, and
        its ``set_state`` would put the saved place back over the one given now)."""
        state = super().get_state()
        if isinstance(state, dict):
            state = {k: v for k, v in state.items() if k != "location"}
        return state


class RelocatableVariants(Relocatable, BasicVariantGenerator):
    """Ray Tune's ``BasicVariantGenerator`` (grid and random search), relocatable."""


class RelocatableSearchGenerator(Relocatable, SearchGenerator):
    """Ray Tune's ``SearchGenerator`` (around a ``Searcher`` such as Optuna), relocatable."""


def search_algorithm(tuner):
    """The search algorithm ``tuner`` (a ``tune.Tuner``, new or restored) runs, or None
    with Ray Client (the Tuner runs in a remote actor, out of reach). Ray Tune keeps no
    public handle on it; Ray 2.60's ``TunerInternal`` holds it (``tests/test_resume.py``
    fails when that changes)."""
    local = getattr(tuner, "_local_tuner", None)   # (none with Ray Client)
    return local._tune_config.search_alg if local is not None else None


def place_new_trials(tuner, location: Location | None) -> None:
    """The trials that ``tuner``'s search algorithm creates from now on go to
    ``location``. A new Tuner's algorithm was given it when it was made
    (:func:`tune_food.sweep.search.make_search`); a restored Tuner's was unpickled by Ray
    Tune from the sweep folder's ``tuner.pkl``, with the place it was made for. With Ray
    Client its new trials go where Ray puts them."""
    search_alg = search_algorithm(tuner)
    if isinstance(search_alg, Relocatable):
        search_alg.location = location
