"""A local PyTorch model seen the way gradient methods need it: pixels in, logits out, plus where to look.

Adapters that can hand out their model implement ``explain_target() -> TorchTarget`` (the ``huggingface``
adapter does; a built-in zoo model with ``runtime: torch`` does the same). Everything else is explained
from the outside, by occlusion. The target names its layers by dotted path so a deep copy with randomised
top layers (the sanity check) finds the same layers again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

__all__ = ["TorchTarget", "last_conv_name", "randomised"]


@dataclass
class TorchTarget:
    """A torch ``nn.Module`` mapping (N, 3, H, W) float32 pixels to (N, C) logits, and how to use it.

    Attributes:
        model: the module (in eval mode, float32, on the CPU or the adapter's device).
        labels: class names in logit order, as the provider reports them.
        preprocess: one decoded RGB image -> its (3, H, W) model input, exactly as the adapter prepares it.
        kind: ``"cnn"`` (Grad-CAM on ``gradcam_layer``) or ``"vit"`` (attention rollout).
        gradcam_layer: dotted name of the layer Grad-CAM reads (the last convolution).
        top_layers: dotted names of the classifier head and the last block (randomised by the sanity check).
        input_box: prepared-image (width, height) -> the (left, top, right, bottom) region the model sees
            (a centre crop sees less than the whole image); default: the whole image.
        attentions: pixels -> per-layer attention tensors (N, heads, T, T), for rollout.
        multi_label: scores are per-label sigmoids rather than a softmax.
        outputs: ``"probabilities"`` when the module ends in its own softmax (then used as is).
        channels_last: the input is (N, H, W, C) (a Keras-built model) rather than (N, C, H, W).
    """

    model: Any
    labels: list[str]
    preprocess: Callable[[Image.Image], np.ndarray]
    kind: Literal["cnn", "vit"] = "cnn"
    gradcam_layer: str | None = None
    top_layers: Sequence[str] = ()
    input_box: Callable[[int, int], tuple[float, float, float, float]] | None = None
    attentions: Callable[[Any, Any], Sequence[Any]] | None = None
    multi_label: bool = False
    outputs: Literal["logits", "probabilities"] = "logits"
    channels_last: bool = False
    device: str = "cpu"
    details: dict[str, Any] = field(default_factory=dict)

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        return self.input_box(width, height) if self.input_box else (0.0, 0.0, float(width), float(height))

    def tensor(self, image: Image.Image) -> Any:
        """The (1, 3, H, W) float32 input tensor of one image."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.preprocess(image)))[None].to(self.device)

    def scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, C) probabilities, softmax or sigmoid as the adapter reports them."""
        import torch

        batch = torch.cat([self.tensor(img) for img in images])
        with torch.no_grad():
            logits = self.model(batch).float()
        if self.outputs == "probabilities":
            return logits.cpu().numpy()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return probs.cpu().numpy()

    def module(self, name: str) -> Any:
        return self.model.get_submodule(name)


def last_conv_name(model: Any) -> str | None:
    """The dotted name of the last ``Conv2d`` in registration order (the last convolutional block's)."""
    import torch

    name = None
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            name = path
    return name


def randomised(target: TorchTarget, *, seed: int = 0) -> TorchTarget:
    """A deep copy whose top layers (head + last block) are re-initialised: Adebayo et al.'s cascade cut.

    Every sub-module with ``reset_parameters`` is reset with a fixed seed (PyTorch's own initialisers, the
    ones an untrained model starts from); parameters of modules without one are redrawn N(0, 0.02).
    """
    import torch

    clone = copy.deepcopy(target.model)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for name in target.top_layers:
            top = clone.get_submodule(name)
            for module in top.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
                    continue
                for param in module.parameters(recurse=False):
                    with torch.no_grad():
                        param.normal_(0.0, 0.02)
    finally:
        torch.random.set_rng_state(generator_state)
    clone.eval()
    attentions = target.attentions
    return replace(target, model=clone, attentions=attentions)
