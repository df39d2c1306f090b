"""A trial's hyperparameters: the table of every parameter a trial's ``config`` may hold
(:data:`PARAMS`: its check, what it allows, its default: the one place defaults are
stated), and the rules that read a config without running it (:func:`split_dirs`,
:func:`is_cacheable`). The search space (:mod:`tune_food.sweep.spaces`), the plan, the
trainable and the outputs all read them; nothing here imports torch or Ray.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

from tune_food.models.registry import MODELS


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_dataset_name(v: Any) -> bool:
    return isinstance(v, str) and bool(v) and "/" not in v


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Param:
    """A known hyperparameter: its check, what the check allows, and its default."""

    check: Callable[[Any], bool]
    allowed: str
    default: Any = None
    required: bool = False


#: the samplers a search space's YAML may give a parameter (``sweep.spaces`` reads them;
#: ``results.importance`` maps the ranges to Optuna's distributions): one owner of the words
SAMPLERS = ("grid_search", "choice", "loguniform", "uniform", "randint")
LOG_SAMPLERS, FLOAT_SAMPLERS, INT_SAMPLERS = ("loguniform",), ("uniform",), ("randint",)

PARAMS: dict[str, Param] = {
    "model": Param(lambda v: v in MODELS, "one of " + ", ".join(MODELS), required=True),
    "data": Param(lambda v: isinstance(v, str) and bool(v) and "/" not in v,
                  "a dataset folder name under the data root", required=True),
    "test_data": Param(lambda v: v is None or is_dataset_name(v) or (
                           isinstance(v, list) and len(v) >= 1 and all(map(is_dataset_name, v))
                           and len(set(v)) == len(v)),
                       "a dataset folder name whose test/ split tests every trial, a list of "
                       "them (their test splits united, each distinct image once), or null "
                       "(each dataset's own test/)"),
    "epochs": Param(lambda v: is_int(v) and v >= 1, "an integer >= 1", 5),
    "lr": Param(lambda v: is_number(v) and v > 0, "a number > 0", 1e-3),
    "batch_size": Param(lambda v: is_int(v) and v >= 1, "an integer >= 1", 32),
    "seed": Param(lambda v: is_int(v) and v >= 0, "an integer >= 0", 42),
    "dropout": Param(lambda v: v is None or (is_number(v) and 0 <= v < 1),
                     "a number in [0, 1), or null for the model's default", None),
    "weight_decay": Param(lambda v: is_number(v) and v >= 0, "a number >= 0", 0.0),
    "label_smoothing": Param(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", 0.0),
    "val_fraction": Param(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", 0.0),
    "augment": Param(lambda v: isinstance(v, bool), "true or false (random train-time "
                     "augmentation; disables the feature cache)", False),
}



def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every optional hyperparameter it leaves out set to its default
    in :data:`PARAMS` (the one place defaults are stated). ``dropout`` None stays None:
    the model's own default (:func:`tune_food.models.registry.head_dropout`)."""
    return {**{k: p.default for k, p in PARAMS.items() if not p.required}, **config}


def split_dirs(config: dict[str, Any], datasets: dict[str, str] | None):
    """Absolute ``(train split, test split)`` folders of a trial.

    ``datasets`` maps dataset names to absolute folders (the sweep resolves them in the
    driver); without it ``config["data"]`` and ``config["test_data"]`` must be absolute
    dataset folders themselves. A ``test_data`` list gives a tuple of test folders,
    united by :class:`tune_food.data.splits.ImageSplit`.

    Raises:
        ValueError: a dataset that is neither in ``datasets`` nor an absolute path.
    """
    def resolve(name: str) -> str:
        if datasets and name in datasets:
            return datasets[name]
        if os.path.isabs(name):
            return name
        raise ValueError(f"dataset {name!r} was not resolved by the sweep and is not an "
                         "absolute path")

    train_root = resolve(config["data"])
    test = config.get("test_data") or config["data"]
    if isinstance(test, (list, tuple)):
        tests = tuple(os.path.join(resolve(t), "test") for t in test)
        return os.path.join(train_root, "train"), tests[0] if len(tests) == 1 else tests
    return os.path.join(train_root, "train"), os.path.join(resolve(test), "test")


def is_cacheable(config: dict[str, Any]) -> bool:
    """True when training on cached features is exact for ``config``: the feature cache
    is not switched off and there is no random train-time augmentation."""
    return config.get("feature_cache", "auto") != "off" and not config.get("augment", False)
