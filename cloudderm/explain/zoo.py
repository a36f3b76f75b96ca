"""The built-in models (``zoo`` adapter) as ``TorchTarget``s, rebuilt in PyTorch whatever the runtime.

The zoo runs ONNX by default, which has no gradients; ``explain`` builds the torch rebuild on its own
(``cloudderm.models.export.build_torch``, the same module ``runtime: torch`` uses). Per model:

* ``sklesion-xception``: a Keras Xception rebuilt layer by layer; input (N, 254, 254, 3) 0..255
  channels-last, plus the 10-value metadata vector (explained with the "unknown" vector, so the map shows
  the image's part); output probabilities. Grad-CAM reads the last separable convolution of block 14;
  the randomisation check resets the head (the Dense/BatchNorm layers after the backbone) and block 14.
* ``efficientnet-lite0``: ImageNet EfficientNet-Lite0, centre-cropped input; Grad-CAM on the head
  convolution; randomised: the classifier and the last block.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cloudderm.explain.torch_target import TorchTarget, last_conv_name

if TYPE_CHECKING:
    from cloudderm.adapters.zoo import ZooClassifier

__all__ = ["zoo_target"]


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _with_metadata(graph: Any, metadata: np.ndarray) -> Any:
    import torch

    class ImageOnly(torch.nn.Module):
        """``model(pixels)`` for captum: the metadata input fixed to one vector."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            self.register_buffer("metadata", torch.from_numpy(np.asarray(metadata, dtype=np.float32))[None])

        def forward(self, pixels: Any) -> Any:
            return self.inner(pixels, self.metadata.expand(pixels.shape[0], -1))

    return ImageOnly(graph).eval()


def _sklesion(clf: ZooClassifier, graph: Any) -> TorchTarget:
    from cloudderm.models.metadata import UNKNOWN_METADATA
    from cloudderm.models.preprocess import sklesion_tensor

    model = _with_metadata(graph, UNKNOWN_METADATA)
    conv = last_conv_name(model)
    assert conv is not None
    backbone_key = conv.split(".")[2]  # inner.mods.<backbone>.mods.<layer>...
    block = conv.split(".")[4].split("_")[0]  # e.g. "block14"
    backbone = model.inner.mods[backbone_key]
    top = [f"inner.mods.{key}" for key in model.inner.mods if key != backbone_key]
    top += [f"inner.mods.{backbone_key}.mods.{key}" for key in backbone.mods if key.split("_")[0] == block]
    size = clf.card.input_size
    return TorchTarget(
        model=model,
        labels=list(clf.labels),
        preprocess=lambda image: sklesion_tensor(_png(image), size),
        kind="cnn",
        gradcam_layer=conv,
        top_layers=top,
        outputs="probabilities",
        channels_last=True,
        details={"metadata": "unknown (the image's contribution alone)"},
    )


def _effnet(clf: ZooClassifier, model: Any) -> TorchTarget:
    from cloudderm.models.preprocess import CROP_PADDING, effnet_tensor

    size = clf.card.input_size

    def box(width: int, height: int) -> tuple[float, float, float, float]:
        side = max(1, int(size / (size + CROP_PADDING) * min(height, width)))
        top, left = ((height - side) + 1) // 2, ((width - side) + 1) // 2
        return left, top, left + side, top + side

    blocks = getattr(model, "_blocks", None)
    top = ["_fc", "_conv_head", "_bn1"]
    if blocks is not None and len(blocks):
        top.append(f"_blocks.{len(blocks) - 1}")
    return TorchTarget(
        model=model,
        labels=list(clf.labels),
        preprocess=lambda image: effnet_tensor(_png(image), size),
        kind="cnn",
        gradcam_layer=last_conv_name(model),
        top_layers=[name for name in top if _has(model, name)],
        input_box=box,
    )


def _has(model: Any, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def zoo_target(clf: ZooClassifier) -> TorchTarget:
    """Build the model's PyTorch rebuild (fetched weights required) as a gradient target."""
    from cloudderm.models.export import build_torch
    from cloudderm.models.store import require, weights_path

    require(clf.card)
    model = build_torch(clf.card, weights_path(clf.card)).float().eval()
    if clf.card.name == "sklesion-xception":
        return _sklesion(clf, model)
    return _effnet(clf, model)
