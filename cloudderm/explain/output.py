"""Files of an explain run: ``<stem>.<provider>.<method>.npy`` and ``.png`` per map, one ``explain.json``.

The ``.npy`` is the map itself (float32, the prepared image's height x width, 0..1); the PNG is the prepared
image with the map blended on top. ``explain.json`` lists every image x provider pair of the run, with the
method, parameters, target, calls, cost and the checks' figures, or the error that stopped the pair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cloudderm.explain.maps import overlay_png

if TYPE_CHECKING:
    from PIL import Image

    from cloudderm.explain.types import Explanation

__all__ = ["EXPLAIN_JSON", "file_stem", "write_maps", "write_run"]

EXPLAIN_JSON = "explain.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(image_stem: str, provider: str, method: str) -> str:
    """``<image-stem>.<provider>.<method>`` with characters unsafe in file names replaced by ``_``."""
    return ".".join(_UNSAFE.sub("_", part) for part in (image_stem, provider, method))


def write_maps(exp: Explanation, image: Image.Image, out_dir: Path, image_stem: str) -> None:
    """Write the map (.npy) and the overlay (.png); their names go into ``exp.files``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(image_stem, exp.provider, exp.method)
    np.save(out_dir / f"{stem}.npy", exp.saliency.astype(np.float32))
    (out_dir / f"{stem}.png").write_bytes(overlay_png(image, exp.saliency))
    exp.files = {"map": f"{stem}.npy", "overlay": f"{stem}.png"}


def write_run(
    out_dir: Path,
    explanations: Sequence[Explanation],
    errors: Sequence[dict[str, Any]],
    *,
    announced_calls: int,
    options: dict[str, Any],
) -> Path:
    """Write ``explain.json``: the run's options, call totals and one entry per image x provider."""
    made = sum(e.calls for e in explanations)
    costs = [e.cost_usd for e in explanations]
    payload = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notice": "Research output only: a saliency map shows what a model responded to, not a diagnosis.",
        "options": options,
        "calls": {
            "announced": announced_calls,
            "made": made,
            "images_sent": sum(e.images_sent for e in explanations),
            "cached": sum(e.cached_calls for e in explanations),
        },
        "cost_usd": None if any(c is None for c in costs) else round(sum(costs), 8),  # type: ignore[arg-type]
        "explanations": [e.record() for e in explanations],
        "errors": list(errors),
    }
    path = out_dir / EXPLAIN_JSON
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
