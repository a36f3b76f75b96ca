"""The ``huggingface`` adapter's model as a ``TorchTarget``: loaded on its own, in float32 on the CPU.

Why a separate load: the adapter may run ONNX (no gradients) or half precision, and it keeps no handle on
the torch module. Gradients need the PyTorch model, so ``explain`` loads it here from the same folder or
hub revision, with ``attn_implementation="eager"`` so transformers return attention weights (the fused
SDPA kernel does not), and preprocesses through the adapter's own preprocessing path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloudderm.explain.torch_target import TorchTarget, last_conv_name

if TYPE_CHECKING:
    from cloudderm.adapters.huggingface import HuggingFaceClassifier

__all__ = ["hf_target"]


class _Logits:
    """Wraps a transformers classifier so ``model(pixels)`` returns logits (what captum calls)."""

    def __new__(cls, hf_model: Any) -> Any:
        import torch

        class Logits(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, pixel_values: Any) -> Any:
                return self.inner(pixel_values=pixel_values).logits

        return Logits(hf_model)


def _is_transformer(config: Any) -> bool:
    return getattr(config, "num_attention_heads", None) is not None


def _attentions(model: Any, pixels: Any) -> Any:
    return model.inner(pixel_values=pixels, output_attentions=True).attentions


def _last_module_list_item(model: Any) -> str | None:
    """The last element of the last ``ModuleList`` (the network's final block), by dotted name."""
    import torch

    found = None
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0:
            found = f"{path}.{len(module) - 1}"
    return found


def _top_layers(model: Any, conv: str | None) -> list[str]:
    """The classifier head plus the last block (and, for CNNs, the block holding the last convolution)."""
    head = "inner.classifier" if hasattr(model.inner, "classifier") else None
    layers = [head] if head else []
    block = _last_module_list_item(model)
    if block:
        layers.append(block)
    if conv and "." in conv:
        layers.append(conv.rsplit(".", 1)[0])
    return list(dict.fromkeys(layers))


def _crop_box(processor: Any) -> Any:
    """Where a shortest-edge resize + centre crop lands in the prepared image; None when the whole image."""
    size = getattr(processor, "size", None) or {}
    crop = getattr(processor, "crop_size", None) or {}
    if not (getattr(processor, "do_center_crop", False) and "shortest_edge" in size and crop):
        return None
    edge, crop_w, crop_h = int(size["shortest_edge"]), int(crop["width"]), int(crop["height"])

    def box(width: int, height: int) -> tuple[float, float, float, float]:
        scale = edge / min(width, height)
        w, h = crop_w / scale, crop_h / scale
        left, top = (width - w) / 2, (height - h) / 2
        return left, top, left + w, top + h

    return box


def hf_target(clf: HuggingFaceClassifier) -> TorchTarget:
    """Load the adapter's model for gradients (float32, CPU, eager attention)."""
    import transformers

    from cloudderm.adapters._hf_preprocess import build_preprocessor
    from cloudderm.adapters.huggingface import _labels

    source = clf._resolve_source()
    common = {"revision": clf.settings.revision, "local_files_only": clf.local_files_only}
    try:
        config = transformers.AutoConfig.from_pretrained(source, **common)
        processor = transformers.AutoImageProcessor.from_pretrained(source, **common)
        extra = {"attn_implementation": "eager"} if _is_transformer(config) else {}
        hf_model = transformers.AutoModelForImageClassification.from_pretrained(source, **common, **extra)
    except Exception as e:
        raise clf._load_error(e) from e
    model = _Logits(hf_model.float().eval()).eval()
    preprocessor = build_preprocessor(processor)
    transformer = _is_transformer(config)
    conv = None if transformer else last_conv_name(model)
    return TorchTarget(
        model=model,
        labels=_labels(config),
        preprocess=preprocessor.image,
        kind="vit" if transformer else "cnn",
        gradcam_layer=conv,
        top_layers=_top_layers(model, conv),
        input_box=_crop_box(processor),
        attentions=_attentions if transformer else None,
        multi_label=getattr(config, "problem_type", None) == "multi_label_classification",
        details={"model_type": getattr(config, "model_type", None)},
    )
