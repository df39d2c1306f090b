"""The model's preprocessing with Pillow and NumPy only (no PyTorch).

It reproduces the transform the pretrained weights define (torchvision's
``weights.transforms()``, timm's eval transform for the Lite models) step by step, as
torchvision applies it to a Pillow image: the EXIF orientation, RGB, the shorter side
resized to ``resize`` pixels (the longer one to ``int(resize * long / short)``) with the
weights' interpolation, the center ``crop x crop`` square, then ``(x / 255 - mean) / std``.
tune_food's tests check it equals the PyTorch transform to 1e-6 on real photos.
"""

import numpy as np
from PIL import Image, ImageOps

RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


def load_rgb(path):
    """The photo at ``path`` upright (EXIF orientation applied) as an RGB Pillow image."""
    with open(path, "rb") as fh:
        img = Image.open(fh)
        img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):   # 16/32-bit grey: scale to 8 bits
        img = img.point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


def to_input(img, steps):
    """``img`` (RGB Pillow image) -> the model's input, ``float32 [1, 3, crop, crop]``.

    ``steps``: ``{"resize", "crop", "interpolation", "mean", "std"}`` from model.json.
    """
    width, height = img.size
    short, long = min(width, height), max(width, height)
    new_long = int(steps["resize"] * long / short)
    size = (steps["resize"], new_long) if width <= height else (new_long, steps["resize"])
    img = img.resize(size, RESAMPLE[steps["interpolation"]])
    crop = steps["crop"]
    left = int(round((size[0] - crop) / 2.0))
    top = int(round((size[1] - crop) / 2.0))
    pixels = np.asarray(img.crop((left, top, left + crop, top + crop)), dtype=np.float32)
    mean = np.asarray(steps["mean"], dtype=np.float32)
    std = np.asarray(steps["std"], dtype=np.float32)
    x = (pixels / np.float32(255) - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])
