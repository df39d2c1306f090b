"""The images a sweep's trials were scored on, found from its ``sweep.json``: the web
page shows them, ``export`` takes its example photos from them, the deployment figures
are measured with one (:func:`first_test_photo`)."""

from __future__ import annotations

import os

from tune_food.common.errors import DataError
from tune_food.data.splits import split_samples
from tune_food.sweepdir.record import SweepState
from tune_food.sweepdir.state import data_root, peek_state
from tune_food.train.hparams import split_dirs


def dataset_folders(state: SweepState) -> dict[str, str]:
    """Dataset name -> absolute folder on this machine, for the datasets ``sweep.json``
    records (relative to the data root :func:`tune_food.sweepdir.state.data_root` finds;
    older sweeps: absolute); datasets that cannot be located are left out."""
    root = data_root(state)   # sweep.json names datasets relative to it (older: absolute)
    return {n: os.path.join(root or "", d["path"])
            for n, d in state.datasets.items()
            if isinstance(d, dict) and d.get("path") and (root or os.path.isabs(d["path"]))}


def first_trial_config(state: SweepState) -> dict:
    """``data`` and ``test_data`` of a sweep's first trial, from its search space (of a
    ``grid_search`` or ``choice``: the first value)."""
    params = state.space.get("parameters") or {}
    config = {}
    for key in ("data", "test_data"):
        value = params.get(key)
        if isinstance(value, dict):  # grid_search / choice: the first value
            value = next(iter(value.values()), [None])
            value = value[0] if isinstance(value, list) and value else None
        config[key] = value
    return config


def test_images(exp_dir: str, config: dict | None = None) -> list[str]:
    """The test-split images of a sweep (of the trial with ``config``; default: the
    first trial's), sorted, from the dataset folders recorded in ``sweep.json``: the
    test set the trial was scored on (several ``test_data`` folders united, each
    distinct image once: :class:`tune_food.data.splits.ImageSplit`).

    Returns ``[]`` when the folders are not there (another machine's sweep).
    """

    state = peek_state(exp_dir)
    if state is None:
        return []
    datasets = dataset_folders(state)
    if config is None:
        config = first_trial_config(state)
    if not config.get("data"):
        return []
    try:   # one test folder, or several united (each distinct image once), as trials see it
        _, samples = split_samples(split_dirs(config, datasets)[1])
    except (ValueError, KeyError, DataError):
        return []
    return sorted(p for p, _ in samples)


def first_test_photo(config: dict, datasets: dict[str, str]) -> tuple[str, int]:
    """``(path, number of classes)``: the first image (sorted) of the test split a trial
    with ``config`` (``data``, ``test_data``) is scored on; ``datasets``: dataset name
    -> folder (:func:`dataset_folders`, or a sweep plan's).

    Raises:
        DataError: the split cannot be read, or holds no image.
        ValueError: a dataset ``datasets`` does not hold.
    """
    classes, samples = split_samples(split_dirs(config, datasets)[1])
    if not samples:
        raise DataError(f"the test split of {config.get('test_data') or config.get('data')} "
                        "holds no image")
    return sorted(p for p, _ in samples)[0], len(classes)
