"""A trial's checkpoint, the one format written by the trainable
(:func:`tune_food.train.trainable.save_checkpoint`) and read back by it on a resume, and
by :mod:`tune_food.inference` (``predict``, the web page, ``export``): a
``checkpoint_NNNNNN`` folder (Ray Tune's) holding

* ``checkpoint.pt``: ``{"head", "optimizer", "torch_rng", "loader_rng", ["cuda_rng"],
  "meta"}`` (``torch.save``; read with ``weights_only=True``); the backbone is not saved:
  it is rebuilt from its pretrained weights;
* ``meta.json``: the same ``meta`` for people and tools without torch: ``model``,
  ``classes``, ``dropout``, ``num_features``, ``transform`` (the weights' transform as
  :func:`tune_food.models.registry.describe_transform` says it), ``epoch``, ``metrics``,
  ``config`` (the trial's scalar hyperparameters);
* ``predictions.csv`` beside them (written by the trainable: per-image predictions of
  that epoch).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from tune_food.common.errors import SweepError
from tune_food.sweepdir.layout import CHECKPOINT_FILE, META_FILE


@dataclass
class Checkpoint:
    """What ``checkpoint.pt`` holds.

    Attributes:
        head: the head's ``state_dict``; optimizer: the optimizer's ``state_dict``.
        meta: see the module's docstring (``model``, ``classes``, ``epoch``, ...).
        torch_rng, loader_rng: the CPU's and the train loader's random states;
        cuda_rng: CUDA's (a trial on a GPU), else None.
    """

    head: dict[str, Any]
    optimizer: dict[str, Any]
    meta: dict[str, Any]
    torch_rng: torch.Tensor | None = None
    loader_rng: torch.Tensor | None = None
    cuda_rng: torch.Tensor | None = None

    @property
    def epoch(self) -> int:
        """The epochs done when it was written."""
        return int(self.meta["epoch"])


def write_checkpoint(directory: str, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint.pt`` and ``meta.json`` of ``checkpoint`` into ``directory``
    (Ray Tune's checkpoint folder, before it is reported)."""
    cuda = {} if checkpoint.cuda_rng is None else {"cuda_rng": checkpoint.cuda_rng}
    torch.save({"head": checkpoint.head, "optimizer": checkpoint.optimizer,
                "torch_rng": checkpoint.torch_rng, **cuda, "loader_rng": checkpoint.loader_rng,
                "meta": checkpoint.meta}, os.path.join(directory, CHECKPOINT_FILE))
    with open(os.path.join(directory, META_FILE), "w") as fh:
        json.dump(checkpoint.meta, fh, indent=2)


def checkpoint_folder(path: str) -> str:
    """The checkpoint folder ``path`` names: ``path`` itself, or the folder of the
    ``checkpoint.pt`` it names."""
    if os.path.basename(path) == CHECKPOINT_FILE and os.path.isfile(path):
        return os.path.dirname(path)
    return path


def read_checkpoint(directory: str, map_location: Any = "cpu") -> Checkpoint:
    """The checkpoint in the folder ``directory``, its tensors on ``map_location``.

    Raises:
        SweepError: ``directory`` does not exist, or holds no ``checkpoint.pt``.
    """
    if not os.path.exists(directory):
        raise SweepError(f"checkpoint {directory} not found; pass a trial's "
                         "checkpoint_NNNNNN folder, or --sweep results/<name>")
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        raise SweepError(f"{directory} is not a tune_food checkpoint (no {CHECKPOINT_FILE})")
    saved = torch.load(path, map_location=map_location, weights_only=True)
    return Checkpoint(head=saved["head"], optimizer=saved["optimizer"], meta=saved["meta"],
                      torch_rng=saved.get("torch_rng"), loader_rng=saved.get("loader_rng"),
                      cuda_rng=saved.get("cuda_rng"))
