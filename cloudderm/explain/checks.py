"""Faithfulness and plausibility figures for one map: deletion and lesion focus.

* Deletion: the target score's drop when the 20% most salient pixels are replaced by the image's mean
  colour, against the drop for 20% of pixels chosen at random (seeded). A map that explains the model
  takes away more score than chance; one that does not is flagged.
* Lesion focus: the share of saliency mass inside a lesion mask, in the border band and elsewhere. The
  mask is Otsu's threshold (1979) on the grey image, darker side = lesion, ignoring a band of 10% of the
  shorter side along the edges (dermoscopic vignettes and rulers live there). A map whose mass lies
  mostly outside the lesion is flagged as a possible shortcut (rulers, ink, hair, borders).

The model-randomisation check needs the model itself and lives in ``cloudderm.explain.api``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["DELETION_FRACTION", "deletion_images", "deletion_result", "focus", "lesion_mask", "otsu"]

DELETION_FRACTION = 0.2
BORDER_BAND = 0.1
FOCUS_FLAG_BELOW = 0.5


def deletion_images(
    pixels: np.ndarray, saliency: np.ndarray, *, fraction: float = DELETION_FRACTION, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The image with its top ``fraction`` salient pixels masked, and with as many random pixels masked."""
    flat = saliency.ravel()
    count = max(1, round(fraction * flat.size))
    fill = pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    top_idx = np.argsort(-flat, kind="stable")[:count]
    rand_idx = np.random.default_rng(seed).choice(flat.size, size=count, replace=False)
    masked = []
    for idx in (top_idx, rand_idx):
        out = pixels.reshape(-1, 3).copy()
        out[idx] = fill
        masked.append(out.reshape(pixels.shape))
    return masked[0], masked[1]


def deletion_result(base: float, top: float, random: float) -> dict[str, Any]:
    """The deletion figures and their flag (None when the salient pixels matter more than random ones)."""
    drop_top, drop_random = base - top, base - random
    flag = None
    if drop_top <= drop_random:
        flag = (
            f"deletion: masking the most salient {DELETION_FRACTION:.0%} of pixels lowers the score by "
            f"{drop_top:.3f}, no more than random pixels ({drop_random:.3f})"
        )
    return {
        "fraction": DELETION_FRACTION,
        "base_score": round(base, 6),
        "score_top_masked": round(top, 6),
        "score_random_masked": round(random, 6),
        "drop_top": round(drop_top, 6),
        "drop_random": round(drop_random, 6),
        "flag": flag,
    }


def run_deletion(
    pixels: np.ndarray,
    saliency: np.ndarray,
    base: float,
    score: Callable[[Sequence[np.ndarray]], list[float]],
) -> dict[str, Any]:
    top, random = score(list(deletion_images(pixels, saliency)))
    return deletion_result(base, top, random)


def otsu(gray: np.ndarray) -> float:
    """Otsu's threshold on 8-bit values: the cut maximising between-class variance."""
    hist = np.bincount(gray.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    levels = np.arange(256, dtype=np.float64)
    weight0 = np.cumsum(hist)
    weight1 = total - weight0
    mean0 = np.cumsum(hist * levels) / np.maximum(weight0, 1)
    mean1 = ((hist * levels).sum() - np.cumsum(hist * levels)) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(np.argmax(between))


def _border(shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    band = max(1, round(BORDER_BAND * min(height, width)))
    mask = np.zeros(shape, dtype=bool)
    mask[:band, :], mask[-band:, :], mask[:, :band], mask[:, -band:] = True, True, True, True
    return mask


def lesion_mask(pixels: np.ndarray) -> np.ndarray:
    """Darker-than-Otsu pixels away from the border band (True = lesion)."""
    luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gray = np.clip(np.rint(luma), 0, 255).astype(np.uint8)  # the threshold and the test see the same levels
    return (gray <= otsu(gray)) & ~_border(gray.shape)


def focus(pixels: np.ndarray, saliency: np.ndarray) -> dict[str, Any]:
    """Saliency mass in the lesion, the border band and the rest; flag when the lesion holds < 50%."""
    lesion = lesion_mask(pixels)
    border = _border(lesion.shape)
    background = ~lesion & ~border
    mass = float(saliency.sum())
    area = float(lesion.mean())
    reliable = 0.01 <= area <= 0.9
    if mass <= 0:
        shares = {"lesion": 0.0, "border": 0.0, "background": 0.0}
    else:
        shares = {
            "lesion": float(saliency[lesion].sum()) / mass,
            "border": float(saliency[border].sum()) / mass,
            "background": float(saliency[background].sum()) / mass,
        }
    flag = None
    if mass <= 0:
        note = "empty map: nothing in the image changed the target score"
        flag = "empty map: no region of the image moved the target score"
    elif not reliable:
        note = f"mask unreliable: the Otsu lesion mask covers {area:.0%} of the image"
    else:
        note = None
        if shares["lesion"] < FOCUS_FLAG_BELOW:
            flag = (
                f"possible shortcut: only {shares['lesion']:.0%} of the saliency lies inside the lesion mask "
                f"(border {shares['border']:.0%}, background {shares['background']:.0%})"
            )
    return {
        "lesion_share": round(shares["lesion"], 4),
        "border_share": round(shares["border"], 4),
        "background_share": round(shares["background"], 4),
        "lesion_area": round(area, 4),
        "enrichment": round(shares["lesion"] / area, 3) if area > 0 else None,
        "mask": "Otsu threshold on grey, darker side, 10% border band excluded",
        "note": note,
        "flag": flag,
    }
