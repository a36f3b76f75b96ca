"""What one explanation is: a saliency map for one image x provider, with how it was made and checked.

One owner for the record written to ``explain.json`` (``Explanation.record``) so the CLI, the Python API and
the comparison report all describe a map the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = ["METHODS", "Explanation", "Method"]

Method = Literal["gradcam", "integrated-gradients", "rollout", "occlusion"]
METHODS: tuple[str, ...] = ("gradcam", "integrated-gradients", "rollout", "occlusion")


@dataclass
class Explanation:
    """A saliency map (float32, the prepared image's height x width, 0..1) and its provenance.

    ``calls`` counts provider requests made for this map (perturbed images for occlusion, the deletion
    check's masked images; a batching adapter sends several images per request), ``images_sent`` the
    images in them, ``cached_calls`` the images answered from the results store instead; ``cost_usd`` is
    None when the provider has no sourced price. ``sanity``, ``deletion`` and ``focus`` are the checks'
    figures (see ``cloudderm.explain.checks``); None when not run.
    """

    provider: str
    image: str
    image_sha256: str
    method: str
    parameters: dict[str, Any]
    target_label: str
    target_canonical: str | None
    target_score: float
    saliency: np.ndarray
    calls: int = 0
    images_sent: int = 0
    cached_calls: int = 0
    cost_usd: float | None = 0.0
    sanity: dict[str, Any] | None = None
    deletion: dict[str, Any] | None = None
    focus: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        """Every reason a reader should distrust this map, from the checks."""
        out = []
        for check in (self.sanity, self.deletion, self.focus):
            if check and check.get("flag"):
                out.append(str(check["flag"]))
        return out

    def record(self) -> dict[str, Any]:
        """The JSON-ready description (everything but the pixels)."""
        return {
            "provider": self.provider,
            "image": self.image,
            "image_sha256": self.image_sha256,
            "method": self.method,
            "parameters": self.parameters,
            "target": {
                "label": self.target_label,
                "canonical": self.target_canonical,
                "score": round(self.target_score, 6),
            },
            "map_shape": list(self.saliency.shape),
            "calls": self.calls,
            "images_sent": self.images_sent,
            "cached_calls": self.cached_calls,
            "cost_usd": self.cost_usd,
            "sanity": self.sanity,
            "deletion": self.deletion,
            "focus": self.focus,
            "flags": self.flags,
            "warnings": self.warnings,
            "files": self.files,
        }
