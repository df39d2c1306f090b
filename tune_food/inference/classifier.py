"""A trial's trained classifier, rebuilt from its checkpoint (the frozen backbone from
its pretrained weights with its own transform, the head from ``checkpoint.pt``), and
the top classes it gives images.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

from tune_food.common.errors import DataError, SweepError
from tune_food.data.images import check_image, rgb_loader
from tune_food.features.cachedir import cache_folder
from tune_food.models.registry import build_model, describe_transform
from tune_food.models.runtime import use_runtime
from tune_food.sweepdir.checkpoint import checkpoint_folder, read_checkpoint


def load_classifier(checkpoint_dir: str, device: str | torch.device = "cpu",
                    runtime: str | None = None, cache_dir: str | None = None):
    """Rebuild the trained classifier of a trial checkpoint.

    Args:
        checkpoint_dir: a trial's ``checkpoint_NNNNNN`` folder (or its ``checkpoint.pt``).
        device: where the model runs (``"cpu"``, ``"cuda:0"``...).
        runtime: the CPU backbone's runtime (None: ``$TUNE_FOOD_BACKBONE_RUNTIME``'s rule,
            :func:`tune_food.models.devices.requested_runtime`); ``"torch"`` keeps it in
            PyTorch (what ``export`` converts).
        cache_dir: the folder of converted backbones (None: the cache folder,
            :func:`tune_food.features.cachedir.cache_folder`).

    Returns:
        ``(model, classes)``: a :class:`~tune_food.models.registry.FrozenBackboneClassifier` in
        eval mode with the checkpoint's head, and the class names (index order). The model
        takes a float32 batch ``(N, 3, H, W)`` as ``model.transform`` makes each image
        (``H``, ``W``: the weights' crop, e.g. 224 pixels) and returns the logits
        ``(N, len(classes))``. On the CPU its backbone runs in
        :func:`tune_food.models.runtime.use_runtime`'s runtime (OpenVINO unless the
        runtime says ``torch``) with ``torch.get_num_threads()`` threads, the converted
        backbone kept in ``cache_dir``.

    Raises:
        SweepError: no such folder, the folder has no ``checkpoint.pt``, or the
            checkpoint's transform differs from the one the model registry builds now.
        WeightsError: the backbone's pretrained weights are missing.
    """
    checkpoint_dir = checkpoint_folder(checkpoint_dir)   # the file given for its folder
    saved = read_checkpoint(checkpoint_dir)
    meta = saved.meta
    model = build_model(meta["model"], len(meta["classes"]), meta["dropout"])
    if describe_transform(model.transform) != meta["transform"]:
        raise SweepError(f"the transform of {meta['model']} changed since {checkpoint_dir} was "
                         f"trained ({meta['transform']}); predictions would be off")
    model.head.load_state_dict(saved.head)
    use_runtime(model, device, runtime, cache_dir=cache_folder(cache_dir))
    return model.to(device).eval(), list(meta["classes"])


def classify(model, classes: list[str], images: Sequence[str], top_k: int = 3,
             batch_size: int = 32) -> list[dict]:
    """Top-k classes of each image.

    Args:
        model, classes: what :func:`load_classifier` returns.
        images: image file paths (any format Pillow decodes; EXIF orientation applied).
        top_k: classes per image (clipped to 1 ... ``len(classes)``).
        batch_size: images per forward pass; up to one batch, each image is decoded
            once, more are checked first and decoded batch by batch (memory: one batch).

    Returns:
        One dict per image, in order: ``{"image": path, "predictions": [{"class": name,
        "probability": p}, ...]}``, ``p`` the softmax probability (0 ... 1), highest first.

    Raises:
        DataError: images that are missing, folders or cannot be decoded (all listed);
            nothing is classified then.
    """
    # up to one batch (the web page's case) each image is decoded once, here
    once = len(images) <= batch_size
    decoded: dict[str, torch.Tensor] = {}

    def problem(path: str) -> str | None:
        if os.path.isdir(path):
            return "a folder, not an image"
        if not os.path.isfile(path):
            return "not found"
        if not once or os.path.getsize(path) == 0:
            return check_image(path)
        try:
            decoded[path] = model.transform(rgb_loader(path))
        except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...)
            return f"{type(exc).__name__}: {exc}"
        return None

    problems = [(p, r) for p in images if (r := problem(p))]
    if problems:
        raise DataError(f"{len(problems)} image(s) cannot be read: "
                        + "; ".join(f"{p} ({r})" for p, r in problems))
    device = next(model.head.parameters()).device
    k = max(1, min(top_k, len(classes)))
    out = []
    for i in range(0, len(images), batch_size):
        chunk = images[i:i + batch_size]
        x = torch.stack([decoded[p] if p in decoded else model.transform(rgb_loader(p))
                         for p in chunk]).to(device)
        with torch.inference_mode():
            values, indices = model(x).softmax(dim=1).cpu().topk(k, dim=1)
        for path, vs, ix in zip(chunk, values.tolist(), indices.tolist()):
            out.append({"image": path, "predictions": [{"class": classes[j], "probability": v}
                                                       for v, j in zip(vs, ix)]})
    return out
