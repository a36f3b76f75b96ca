"""Build each zoo model in torch from its extracted weights, and export it to ONNX once.

The ONNX export uses the TorchScript exporter (``dynamo=False``): the default dynamo exporter needs
``onnxscript``, which this project does not install. Inputs and outputs are named so the runtime does not
guess: sklesion takes ``image`` (N, 254, 254, 3) float 0..255 and ``metadata`` (N, 10) and returns
``probs``; EfficientNet-Lite0 takes ``image`` (N, 3, 224, 224) and returns ``logits``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cloudderm.models.cards import ModelCard

__all__ = ["build_torch", "export_onnx", "imagenet_labels"]


def imagenet_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (package data, header line skipped)."""
    text = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8")
    return [line for line in text.splitlines()[1:] if line.strip()]


def build_torch(card: ModelCard, weights: Path) -> Any:
    """The model as a ``torch.nn.Module`` in eval mode."""
    if card.name == "sklesion-xception":
        from cloudderm.models.sklesion_net import build_sklesion

        return build_sklesion(weights.read_bytes())
    if card.name == "efficientnet-lite0":
        return _efficientnet(weights)
    raise KeyError(card.name)


def _efficientnet(weights: Path) -> Any:
    import contextlib
    import io

    import torch
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the library prints on load
        model.load_state_dict(state, strict=True)
    # Lite models use ReLU6 (set from relu_fn); never call set_swish(), which would replace it with Swish.
    return model.eval()


def export_onnx(card: ModelCard, weights: Path, target: Path) -> None:
    """Write ``target`` (atomically) from the torch rebuild; input names as in the module docstring."""
    import warnings

    import torch

    model = build_torch(card, weights)
    size = card.input_size
    if card.name == "sklesion-xception":
        example: tuple[Any, ...] = (torch.zeros(1, size, size, 3), torch.zeros(1, 10))
        inputs, outputs = ["image", "metadata"], ["probs"]
    else:
        example = (torch.zeros(1, 3, size, size),)
        inputs, outputs = ["image"], ["logits"]
    axes = {name: {0: "batch"} for name in [*inputs, *outputs]}
    partial = target.with_name(target.name + ".partial")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic on fixed-size inputs
        torch.onnx.export(
            model,
            example,
            str(partial),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, target)
