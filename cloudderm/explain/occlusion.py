"""Black-box occlusion (Zeiler & Fergus 2014): grey out one patch at a time, watch the target score fall.

Works for any provider, since it needs only answers: a ``grid x grid`` tiling of the prepared image, each
tile filled with the image's mean colour in turn, plus the untouched image as the baseline, so
``grid**2 + 1`` images per explanation. The perturbed images are built from pixels and then prepared like
any other input, so they leave the machine without metadata. A tile's saliency is the score it takes
away (``max(0, baseline - occluded)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_GRID", "OcclusionPlan", "occlusion_plan"]

DEFAULT_GRID = 7


@dataclass(frozen=True)
class OcclusionPlan:
    """The perturbed images of one explanation and how their scores become a map."""

    grid: int
    tiles: list[tuple[int, int, int, int]]  # (top, left, bottom, right) in prepared-image pixels
    images: list[np.ndarray]  # the baseline first, then one per tile, (H, W, 3) uint8
    fill: tuple[int, int, int]

    @property
    def parameters(self) -> dict[str, object]:
        tile_h = self.tiles[0][2] - self.tiles[0][0]
        tile_w = self.tiles[0][3] - self.tiles[0][1]
        return {
            "grid": self.grid,
            "patch_px": [tile_w, tile_h],
            "stride_px": [tile_w, tile_h],
            "fill": "image mean colour",
            "calls_per_map": len(self.images),
            "missing_label_score": 0.0,
        }

    def saliency(self, scores: list[float]) -> np.ndarray:
        """The raw map from the baseline score and one score per tile, at the prepared image's size."""
        height, width = self.images[0].shape[:2]
        base = scores[0]
        out = np.zeros((height, width), dtype=np.float32)
        for (top, left, bottom, right), score in zip(self.tiles, scores[1:]):
            out[top:bottom, left:right] = max(0.0, base - score)
        return out


def occlusion_plan(pixels: np.ndarray, grid: int = DEFAULT_GRID) -> OcclusionPlan:
    """Tile ``pixels`` (H, W, 3 uint8) into ``grid x grid`` patches, each filled with the mean colour."""
    height, width = pixels.shape[:2]
    grid = max(1, min(grid, height, width))
    tile_h, tile_w = math.ceil(height / grid), math.ceil(width / grid)
    fill = tuple(round(v) for v in pixels.reshape(-1, 3).mean(axis=0))
    tiles, images = [], [pixels]
    for row in range(grid):
        for col in range(grid):
            top, left = row * tile_h, col * tile_w
            if top >= height or left >= width:
                continue
            bottom, right = min(height, top + tile_h), min(width, left + tile_w)
            occluded = pixels.copy()
            occluded[top:bottom, left:right] = fill
            tiles.append((top, left, bottom, right))
            images.append(occluded)
    return OcclusionPlan(grid, tiles, images, fill)  # type: ignore[arg-type]
