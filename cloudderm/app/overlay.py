"""The saliency overlay on a provider card, when the ``explain`` extra is installed.

Only for providers whose image never leaves the machine (local models: Grad-CAM or attention rollout,
no extra provider calls); a remote provider would need occlusion, hundreds of paid calls, so the app
never asks for it. The map is drawn over the prepared image in memory and embedded as a data URI.
"""

from __future__ import annotations

import base64
import importlib.util
import io
from html import escape
from typing import Any

from cloudderm.classifier import Classifier
from cloudderm.images import PreparedImage

__all__ = ["explain_available", "overlay_html"]

SIDE = 224


def explain_available() -> bool:
    """Whether ``cloudderm.explain`` and captum are importable (the ``explain`` extra)."""
    return importlib.util.find_spec("cloudderm.explain") is not None and (
        importlib.util.find_spec("captum") is not None
    )


def overlay_html(classifier: Classifier, image: PreparedImage) -> str:
    """An ``<img>`` of the map over the image, or a short note saying why there is none."""
    if classifier.service_facts().data_leaves_machine:
        return _note("Saliency: not drawn for remote providers (it would need many calls).")
    try:
        explanation = classifier.explain(image, max_calls=0)
    except Exception as e:  # a map is a nice-to-have: its failure never hides the answer
        return _note(f"Saliency unavailable: {type(e).__name__}: {e}")
    flags = "; ".join(explanation.flags)
    note = f" <b>Distrust this map:</b> {escape(flags)}" if flags else ""
    return (
        f'<div class="cd-overlay"><img alt="saliency for {escape(explanation.target_label)}" '
        f'src="data:image/png;base64,{_blend(image, explanation.saliency)}" width="{SIDE}"/>'
        f"<p>Saliency ({escape(explanation.method)}) for <i>{escape(explanation.target_label)}</i>: "
        f"where the model looked, not why; not evidence of a diagnosis.{note}</p></div>"
    )


def _note(text: str) -> str:
    return f'<p class="cd-overlay-note">{escape(text)}</p>'


def _blend(image: PreparedImage, saliency: Any) -> str:
    import numpy as np
    from PIL import Image

    base = image.to_pil()
    heat = np.clip(np.asarray(saliency, dtype=np.float32), 0.0, 1.0)
    mask = Image.fromarray((heat * 255).astype(np.uint8)).resize(base.size)
    red = Image.new("RGB", base.size, (255, 0, 0))
    blended = Image.composite(red, base, mask.point(lambda v: int(v * 0.6)))
    blended.thumbnail((SIDE, SIDE))
    buffer = io.BytesIO()
    blended.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
