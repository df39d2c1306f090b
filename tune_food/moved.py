"""Where the package's modules were before they moved into folders (2026-12), so that what
older sweeps saved still loads.

Ray Tune pickles objects by their module path: a sweep's ``tuner.pkl`` names the
trainable (``tune_food.trainable.train_food``), the search algorithm
(``tune_food.search.RelocatableVariants``), the callbacks (``tune_food.tb``,
``tune_food.tracking``) and what they hold. ``--resume`` of a sweep started before the move
unpickles those names; :class:`MovedModules` (installed by ``tune_food/__init__.py``)
answers an old module name with the module that now holds its code, imported on first
use only. Nothing in the package imports an old name.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: old module -> new module (the modules that became packages, ``tune_food.data``,
#: ``models``, ``sweep`` and ``features``, forward their old attributes themselves)
MOVED = {
    "tune_food.errors": "tune_food.common.errors",
    "tune_food.files": "tune_food.common.files",
    "tune_food.progress": "tune_food.common.progress",
    "tune_food.environment": "tune_food.common.environment",
    "tune_food.cliargs": "tune_food.common.cliargs",
    "tune_food.stats": "tune_food.common.stats",
    "tune_food.datasets": "tune_food.data.datasets",
    "tune_food.images": "tune_food.data.images",
    "tune_food.imagesplit": "tune_food.data.splits",
    "tune_food.validation": "tune_food.data.validation",
    "tune_food.food101": "tune_food.data.food101",
    "tune_food.datacli": "tune_food.data.cli",
    "tune_food.devices": "tune_food.models.devices",
    "tune_food.layout": "tune_food.sweepdir.layout",
    "tune_food.state": "tune_food.sweepdir.state",
    "tune_food.trainable": "tune_food.train.trainable",
    "tune_food.engine": "tune_food.train.engine",
    "tune_food.hparams": "tune_food.train.hparams",
    "tune_food.outputs": "tune_food.results.outputs",
    "tune_food.leaderboard": "tune_food.results.leaderboard",
    "tune_food.tables": "tune_food.results.tables",
    "tune_food.plots": "tune_food.results.plots",
    "tune_food.tb": "tune_food.results.tb",
    "tune_food.tracking": "tune_food.results.tracking",
    "tune_food.cli": "tune_food.sweep.cli",
    "tune_food.options": "tune_food.sweep.options",
    "tune_food.plan": "tune_food.sweep.plan",
    "tune_food.cluster": "tune_food.sweep.cluster",
    "tune_food.search": "tune_food.sweep.search",
    "tune_food.launch": "tune_food.sweep.launch",
    "tune_food.ray_start": "tune_food.sweep.ray_start",
    "tune_food.spaces": "tune_food.sweep.spaces",
}

#: attributes of the modules that became packages -> the module that holds them now
MOVED_ATTRIBUTES = {
    "tune_food.features": {
        "FeatureStore": "tune_food.features.store", "STORE_FILE": "tune_food.features.store",
        "FeatureSet": "tune_food.features.extract", "feature_key": "tune_food.features.extract",
        "compute_feature_sets": "tune_food.features.tasks"},
    "tune_food.models": {
        "Family": "tune_food.models.registry", "ModelSpec": "tune_food.models.registry",
        "MODELS": "tune_food.models.registry",
        "FrozenBackboneClassifier": "tune_food.models.registry"},
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A meta path finder: an old module name (:data:`MOVED`) is the new module itself
    (``sys.modules`` holds the same module object under both names)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass   # the new module is imported (and executed) already


def install() -> None:
    """Put :class:`MovedModules` on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedModules) for f in sys.meta_path):
        sys.meta_path.append(MovedModules())


def forward(package: str, name: str):
    """The old attribute ``name`` of ``package`` (a module that became a package), from
    its new module (:data:`MOVED_ATTRIBUTES`), for that package's ``__getattr__``.

    Raises:
        AttributeError: ``name`` was never an attribute there.
    """
    home = MOVED_ATTRIBUTES.get(package, {}).get(name)
    if home is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
