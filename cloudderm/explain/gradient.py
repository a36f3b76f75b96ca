"""Gradient and attention methods on a ``TorchTarget``: Grad-CAM, integrated gradients, attention rollout.

Grad-CAM and integrated gradients are captum's (``LayerGradCam``, ``IntegratedGradients``), not
re-derived here. captum has no attention rollout, so that one is the short method of Abnar & Zuidema
(2020, "Quantifying Attention Flow in Transformers", https://arxiv.org/abs/2005.00928): average the heads,
add the identity for the residual path, renormalise rows, multiply through the layers, read the class
token's row over the patches. Rollout is class-agnostic by construction; the record says so.

Each function returns a raw 2-D map over the model's input (not yet normalised or placed in the image).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloudderm.errors import ConfigError, MissingDependencyError, install_hint
from cloudderm.explain.torch_target import TorchTarget

__all__ = ["DEFAULT_IG_STEPS", "gradcam", "integrated_gradients", "rollout"]

DEFAULT_IG_STEPS = 32


def _captum() -> Any:
    try:
        import captum.attr as attr
    except ImportError as e:
        raise MissingDependencyError(install_hint("explain", "captum for gradient explanations")) from e
    return attr


def gradcam(target: TorchTarget, pixels: Any, index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Grad-CAM (Selvaraju et al. 2017) on the last convolutional layer, ReLU'd, at the layer's resolution."""
    if target.gradcam_layer is None:
        raise ConfigError(
            "Grad-CAM needs a convolutional layer and this model has none. "
            "Fix: use --method rollout (transformers) or integrated-gradients",
            field="method",
        )
    attr = _captum()
    layer = target.module(target.gradcam_layer)
    cam = attr.LayerGradCam(target.model, layer).attribute(pixels, target=index, relu_attributions=True)
    raw = cam.detach().float().cpu().numpy()[0].sum(axis=0)
    return raw, {"layer": target.gradcam_layer, "relu": True, "library": "captum.attr.LayerGradCam"}


def integrated_gradients(
    target: TorchTarget, pixels: Any, index: int, *, steps: int = DEFAULT_IG_STEPS
) -> tuple[np.ndarray, dict[str, Any]]:
    """Integrated gradients (Sundararajan et al. 2017) from an all-zero input (the normalised mean image).

    The map is the absolute attribution summed over colour channels, at the model's input resolution.
    """
    import torch

    attr = _captum()
    baseline = torch.zeros_like(pixels)
    ig = attr.IntegratedGradients(target.model).attribute(
        pixels, baselines=baseline, target=index, n_steps=steps, internal_batch_size=min(steps, 16)
    )
    raw = ig.detach().float().abs().sum(dim=-1 if target.channels_last else 1).cpu().numpy()[0]
    return raw, {
        "steps": steps,
        "baseline": "zeros (the normalised mean image)",
        "library": "captum.attr.IntegratedGradients",
    }


def rollout(target: TorchTarget, pixels: Any, index: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Attention rollout (Abnar & Zuidema 2020) from the class token over the patch grid."""
    import torch

    if target.attentions is None:
        raise ConfigError(
            "attention rollout needs a transformer that returns attentions. Fix: use --method gradcam "
            "(CNNs) or integrated-gradients",
            field="method",
        )
    with torch.no_grad():
        layers = [a.float() for a in target.attentions(target.model, pixels)]
    tokens = layers[0].shape[-1]
    joint = torch.eye(tokens).expand(layers[0].shape[0], tokens, tokens)
    for attention in layers:
        mixed = 0.5 * attention.mean(dim=1) + 0.5 * torch.eye(tokens)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        joint = mixed @ joint
    grid = round((tokens - 1) ** 0.5)
    patches = joint[0, 0, tokens - grid * grid :]
    raw = patches.reshape(grid, grid).cpu().numpy()
    return raw, {
        "head_fusion": "mean",
        "residual": 0.5,
        "class_agnostic": True,
        "reference": "Abnar & Zuidema 2020, arXiv:2005.00928",
    }


GRADIENT_METHODS = {"gradcam": gradcam, "integrated-gradients": integrated_gradients, "rollout": rollout}
