"""The cache folder: where the per-image feature store (:mod:`tune_food.features.store`)
and the backbones converted for OpenVINO (:mod:`tune_food.models.runtime`) are kept.

Its default is stated here once; the sweep (``--cache-dir``,
:attr:`tune_food.sweep.options.SweepOptions.feature_store_dir`) and inference
(:func:`tune_food.inference.classifier.load_classifier`) read it from here. Standard
library only: the sweep's parser imports it before anything heavy.
"""

from __future__ import annotations

import os

CACHE_DIR_ENV = "TUNE_FOOD_CACHE_DIR"   # the cache folder, else:
DEFAULT_CACHE_DIR = "~/.cache/tune_food/features"


def cache_folder(given: str | None = None) -> str:
    """The cache folder: ``given`` (a ``--cache-dir``), else ``$TUNE_FOOD_CACHE_DIR``,
    else :data:`DEFAULT_CACHE_DIR` with the user's home expanded.

    Returns:
        a path (not created here; it may not exist yet).
    """
    return given or os.environ.get(CACHE_DIR_ENV) or os.path.expanduser(DEFAULT_CACHE_DIR)
