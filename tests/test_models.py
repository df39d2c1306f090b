"""The model registry: frozen means frozen, Lite weights map correctly, heads have the
seed's sizes, transforms come from the weights, missing weights give a clear error."""

from __future__ import annotations

import glob
import os

import pytest
import torch
from conftest import shared_dataset
from PIL import Image

from tune_food.common.errors import WeightsError
from tune_food.models.registry import (
    MODELS,
    build_model,
    ensure_weights,
    get_transform,
    load_pretrained_network,
    weights_path,
)

PIZZA = 963  # ImageNet-1k class "pizza, pizza pie"


def _images(split: str, cls: str, n: int) -> list[str]:
    return sorted(glob.glob(os.path.join(shared_dataset(), split, cls, "*.jpg")))[:n]


def test_lite0_key_mapping_recognises_pizza():
    """With its own ImageNet head, the key-mapped Lite0 calls most real pizza photos
    ImageNet class 963 ("pizza"); a wrong mapping gives noise."""
    net = load_pretrained_network("efficientnet_lite0")
    tf = get_transform("efficientnet_lite0")
    files = _images("test", "pizza", 25)
    x = torch.stack([tf(Image.open(f).convert("RGB")) for f in files])
    with torch.no_grad():
        top1 = net(x).argmax(dim=1)
    hits = int((top1 == PIZZA).sum())
    assert hits >= 20, f"only {hits}/25 pizza photos classified as ImageNet pizza"


@pytest.mark.parametrize("name,expected", [("efficientnet_b0", 3843), ("efficientnet_b2", 4227),
                                           ("efficientnet_b4", 5379)])
def test_torchvision_head_sizes(use_torch_home, name, expected):
    model = build_model(name, num_classes=3)
    assert model.trainable_params == expected
    assert model.total_params == MODELS[name].backbone_params + expected
    assert [type(m).__name__ for m in model.head] == ["Dropout", "Linear"]
    assert model.head.dropout.p == MODELS[name].default_dropout


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_backbone_parameter_counts(name):
    """The static counts in the registry equal the real architectures' (built on the
    meta device: no weights needed)."""
    import timm
    import torchvision

    with torch.device("meta"):
        if name.startswith("efficientnet_b"):
            net = torchvision.models.get_model(name, weights=None).features
        else:
            net = timm.create_model(f"tf_{name}", pretrained=False, num_classes=0)
    assert sum(p.numel() for p in net.parameters()) == MODELS[name].backbone_params


def test_lite_head_size_and_dropout():
    model = build_model("efficientnet_lite2", num_classes=3, dropout=0.35)
    assert model.total_params == MODELS["efficientnet_lite2"].backbone_params + 3843
    assert model.trainable_params == 1280 * 3 + 3
    assert model.head.dropout.p == 0.35


def test_backbone_bit_identical_after_training_epoch():
    """A real training epoch on real images changes the head and nothing in the
    backbone: every parameter and buffer (BatchNorm running stats included) is
    bit-identical, and the backbone stays in eval mode while the model trains."""
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    files = [f for c in ("pizza", "steak", "sushi") for f in _images("train", c, 4)]
    labels = torch.tensor([i // 4 for i in range(len(files))])
    x = torch.stack([model.transform(Image.open(f).convert("RGB")) for f in files])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    assert model.training and model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    for xb, yb in zip(x.split(5), labels.split(5)):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    after = model.backbone.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == []
    assert any(not torch.equal(head_before[k], v) for k, v in model.head.state_dict().items())


def test_transforms_come_from_the_weights(use_torch_home):
    from torchvision import transforms as T

    lite2 = get_transform("efficientnet_lite2")
    text = repr(lite2)
    assert "size=292" in text and "(260, 260)" in text and "bicubic" in text  # crop_pct 0.89
    assert "0.5000" in text
    img = Image.open(_images("test", "sushi", 1)[0]).convert("RGB")
    assert tuple(lite2(img).shape) == (3, 260, 260)
    # B2's weights were trained on: resize to 288 (bicubic), central crop 288, ImageNet
    # mean / std (torchvision's model documentation). Stated here, not read from
    # torchvision, so the comparison is with the documented preprocessing, not with the
    # call the product makes.
    documented = T.Compose([T.Resize(288, interpolation=T.InterpolationMode.BICUBIC),
                            T.CenterCrop(288), T.ToTensor(),
                            T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    b2 = get_transform("efficientnet_b2")(img)
    assert tuple(b2.shape) == (3, 288, 288)
    assert torch.equal(b2, documented(img))


def test_missing_torchvision_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = weights_path("efficientnet_b3")
    assert path.startswith(str(tmp_path))
    with pytest.raises(WeightsError) as err:
        ensure_weights("efficientnet_b3", download=False)
    msg = str(err.value)
    assert path in msg and "efficientnet_b3" in msg and "https://" in msg


def test_corrupt_weights_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = weights_path("efficientnet_b0")
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as fh:
        fh.write(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read the weights"):
        build_model("efficientnet_b0", 3)


def test_unknown_model_lists_the_registry():
    with pytest.raises(WeightsError, match="efficientnet_lite0"):
        build_model("resnet50", 3)
