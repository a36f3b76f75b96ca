"""Map arithmetic shared by every method: normalise to 0..1, resize to the prepared image, overlay.

Every method's raw attribution ends here, so a map from Grad-CAM on a local CNN and one from occlusion on a
cloud endpoint have the same shape, range and colouring and can sit side by side.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["normalise", "overlay_png", "place_in_box", "rank", "resize_map", "spearman"]


def normalise(raw: np.ndarray) -> np.ndarray:
    """Min-max scale to 0..1 float32; a constant map becomes all zeros, never NaN."""
    a = np.nan_to_num(np.asarray(raw, dtype=np.float64))
    if a.size == 0:
        return a.astype(np.float32)
    low, high = float(a.min()), float(a.max())
    span = high - low
    if span <= 0:
        return np.zeros(a.shape, dtype=np.float32)
    return ((a - low) / span).astype(np.float32)


def resize_map(saliency: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of a 2-D map to ``height x width`` (float32, range kept)."""
    img = Image.fromarray(np.asarray(saliency, dtype=np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def place_in_box(
    saliency: np.ndarray, box: tuple[float, float, float, float], width: int, height: int
) -> np.ndarray:
    """Put a map computed on a crop back into the full image: resized into ``box``, zero outside.

    Models that centre-crop see only part of the prepared image; the parts they never saw get no saliency.
    """
    left, top, right, bottom = (round(v) for v in box)
    left, top = max(0, left), max(0, top)
    right, bottom = min(width, max(right, left + 1)), min(height, max(bottom, top + 1))
    out = np.zeros((height, width), dtype=np.float32)
    out[top:bottom, left:right] = resize_map(saliency, right - left, bottom - top)
    return out


def rank(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's coefficient needs."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    _uniques, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    starts = ends - counts
    return ((starts + ends - 1) / 2.0)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps of the same shape (0.0 when either is constant)."""
    ra, rb = rank(a), rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0


def overlay_png(image: Image.Image, saliency: np.ndarray, *, alpha: float = 0.45) -> bytes:
    """The image with the map blended on top in the 'jet' colours (red = most salient), as PNG bytes."""
    from matplotlib import colormaps

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    heat = colormaps["jet"](np.clip(saliency, 0.0, 1.0))[..., :3]
    weight = alpha * (0.25 + 0.75 * np.clip(saliency, 0.0, 1.0))[..., None]
    blended = (1.0 - weight) * rgb + weight * heat
    buf = io.BytesIO()
    Image.fromarray((blended * 255.0 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
