"""Untrained stand-ins for the two seed models, built from configs and saved like hub checkpoints.

Tests, benchmarks and the offline demo need real transformers models without downloading any: these
builders write a folder (``config.json``, ``model.safetensors``, ``preprocessor_config.json`` and a
``README.md`` model card) that the ``huggingface`` adapter and ``transformers.pipeline`` load like a
hub checkpoint. Architectures, label sets and preprocessing mirror the seed models
(``google/mobilenet_v2_1.0_224``: ImageNet-style labels, resize 256 then crop 224;
``Anwarkh1/Skin_Cancer-Image_Classification``: a ViT with the 7 marmal88/skin_cancer labels); sizes
are parameters so tests can build tiny ones. The weights are random: outputs show the pipeline, never a
model's skill. BatchNorm statistics are calibrated on random inputs so activations stay in a normal range
(untouched random MobileNets produce denormal floats, which are slow and numerically meaningless).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "IMAGENET_STYLE_LABELS",
    "MARMAL88_LABELS",
    "MOBILENET_V2_CARD",
    "SKIN_VIT_CARD",
    "save_mobilenet_v2",
    "save_vit",
]

# id2label of Anwarkh1/Skin_Cancer-Image_Classification, in its index order (config.json on the hub).
MARMAL88_LABELS = (
    "benign_keratosis-like_lesions",
    "basal_cell_carcinoma",
    "actinic_keratoses",
    "vascular_lesions",
    "melanocytic_Nevi",
    "melanoma",
    "dermatofibroma",
)
IMAGENET_STYLE_LABELS = (
    "tench, Tinca tinca",
    "goldfish, Carassius auratus",
    "coffee mug",
    "espresso",
    "teapot",
)

MOBILENET_V2_CARD = """---
license: other
tags:
- vision
- image-classification
datasets:
- imagenet-1k
---

# MobileNet V2 (untrained stand-in)

Random weights in the shape of google/mobilenet_v2_1.0_224, written by cloudderm for tests and demos.

## Intended uses & limitations

Use the raw model for image classification into ImageNet classes, or look on the model hub for a
version fine-tuned on the task you care about.

### How to use

Load it with AutoImageProcessor and AutoModelForImageClassification.
"""

SKIN_VIT_CARD = """---
license: apache-2.0
---

# Skin lesion ViT (untrained stand-in)

Random weights with the labels of Anwarkh1/Skin_Cancer-Image_Classification, written by cloudderm.

## Dataset

- Source: [marmal88 skin cancer](https://huggingface.co/datasets/marmal88/skin_cancer)
- Classes: the seven HAM10000 diagnostic categories

## Training

None: the weights are random, so predictions carry no information about the image.
"""


def _processor_class(name: str) -> Any:
    """The PIL-backed processor class where transformers has one (no torchvision needed), else ``name``."""
    import transformers

    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


def _write_card(path: Path, card: str | None) -> None:
    if card is not None:
        (path / "README.md").write_text(card, encoding="utf-8")


def _calibrate_batchnorm(model: Any, image_size: int, seed: int) -> None:
    """Give BatchNorm layers running statistics of real activations, as training would."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(pixel_values=torch.randn(4, 3, image_size, image_size, generator=generator))
    model.eval()


def save_mobilenet_v2(
    path: str | Path,
    *,
    labels: Sequence[str] = IMAGENET_STYLE_LABELS,
    image_size: int = 224,
    depth_multiplier: float = 1.0,
    seed: int = 0,
    card: str | None = MOBILENET_V2_CARD,
) -> Path:
    """Save an untrained MobileNetV2 image classifier (resize shortest edge, centre crop) to ``path``."""
    import torch
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = MobileNetV2Config(
        image_size=image_size,
        depth_multiplier=depth_multiplier,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = MobileNetV2ForImageClassification(config)
    _calibrate_batchnorm(model, image_size, seed)
    model.save_pretrained(out)
    shortest_edge = round(image_size * 256 / 224)
    processor = _processor_class("MobileNetV2ImageProcessor")(
        size={"shortest_edge": shortest_edge}, crop_size={"height": image_size, "width": image_size}
    )
    processor.save_pretrained(out)
    _write_card(out, card)
    return out


def save_vit(
    path: str | Path,
    *,
    labels: Sequence[str] = MARMAL88_LABELS,
    image_size: int = 224,
    patch_size: int = 16,
    hidden_size: int = 384,
    num_layers: int = 12,
    num_heads: int = 6,
    seed: int = 0,
    problem_type: str | None = None,
    card: str | None = SKIN_VIT_CARD,
) -> Path:
    """Save an untrained ViT image classifier (resize to a square, mean/std 0.5) to ``path``."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 4,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
    )
    ViTForImageClassification(config).eval().save_pretrained(out)
    processor = _processor_class("ViTImageProcessor")(size={"height": image_size, "width": image_size})
    processor.save_pretrained(out)
    _write_card(out, card)
    return out
