"""Image preprocessing for local transformers models: the model's own processor, or a proven-equal fast path.

Why a fast path: for small CNNs such as MobileNetV2 the transformers image processor (decode, resize,
crop, then rescale and normalise in float64 NumPy, image by image) costs about as much CPU as the model.
The fast path does the same geometry with the same PIL calls and replaces the arithmetic by a per-channel
lookup table that is *computed by the processor itself* on every possible 8-bit value, so its output is
the processor's output. It is only used for processors whose steps it understands, and only after a probe
at load time shows equality (:func:`build_preprocessor`); otherwise the processor runs unchanged.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["FastPreprocessor", "Preprocessor", "build_preprocessor", "decode_rgb", "probe_images"]

log = logging.getLogger(__name__)

EQUALITY_TOLERANCE = 1e-6
_KNOWN_FLAGS = {
    "do_resize",
    "do_center_crop",
    "do_rescale",
    "do_normalize",
    "do_convert_rgb",
    "do_reduce_labels",
}


def decode_rgb(data: bytes) -> Image.Image:
    """Decode prepared image bytes to an RGB PIL image (prepared images are already RGB)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


def probe_images() -> list[Image.Image]:
    """Deterministic probe images covering landscape, portrait, square, upscaling and odd sizes."""
    rng = np.random.default_rng(20240601)
    probes = []
    for width, height in ((301, 203), (203, 301), (257, 257), (19, 13), (640, 479)):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], axis=-1)
        noise = rng.integers(-40, 41, size=base.shape)
        probes.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB"))
    return probes


def _is_set(value: Any) -> bool:
    return bool(value) and not callable(value)


def _field(size: Any, key: str) -> Any:
    if size is None:
        return None
    if isinstance(size, dict):
        return size.get(key)
    return getattr(size, key, None)


class FastPreprocessor:
    """The processor's resize / centre-crop / rescale / normalise, done with PIL and a lookup table.

    Build it with :meth:`from_processor`, which returns None for processors it does not understand.
    """

    def __init__(
        self,
        *,
        resize_to: Callable[[int, int], tuple[int, int]] | None,
        resample: int,
        crop: tuple[int, int] | None,
        lut: np.ndarray,
    ) -> None:
        self._resize_to = resize_to
        self._resample = resample
        self._crop = crop
        self._lut = lut  # (3, 256) float32: output value per channel for each 8-bit input value

    @classmethod
    def from_processor(cls, processor: Any) -> FastPreprocessor | None:
        """A fast equivalent of ``processor``, or None when it uses steps this class does not replicate."""
        flags = {k for k in dir(processor) if k.startswith("do_") and _is_set(getattr(processor, k, None))}
        if flags - _KNOWN_FLAGS:
            return None
        resize_to = None
        if getattr(processor, "do_resize", False):
            resize_to = cls._resize_rule(getattr(processor, "size", None))
            if resize_to is None:
                return None
        resample = getattr(processor, "resample", None)
        resample = int(Image.Resampling.BILINEAR if resample is None else resample)
        crop = None
        if getattr(processor, "do_center_crop", False):
            crop_size = getattr(processor, "crop_size", None)
            crop_h, crop_w = _field(crop_size, "height"), _field(crop_size, "width")
            if not (crop_h and crop_w):
                return None
            crop = (int(crop_h), int(crop_w))
        lut = cls._lookup_table(processor)
        if lut is None:
            return None
        return cls(resize_to=resize_to, resample=resample, crop=crop, lut=lut)

    @staticmethod
    def _resize_rule(size: Any) -> Callable[[int, int], tuple[int, int]] | None:
        """(width, height) -> target (width, height), as the processor computes it."""
        shortest, longest = _field(size, "shortest_edge"), _field(size, "longest_edge")
        height, width = _field(size, "height"), _field(size, "width")
        if shortest and not longest and not (height or width):
            edge = int(shortest)

            def shortest_edge(w: int, h: int) -> tuple[int, int]:
                if w <= h:
                    return edge, int(edge * h / w)
                return int(edge * w / h), edge

            return shortest_edge
        if height and width and not (shortest or longest):
            return lambda w, h: (int(width), int(height))
        return None

    @staticmethod
    def _lookup_table(processor: Any) -> np.ndarray | None:
        """Run the processor's own rescale/normalise on every 8-bit value (geometry switched off)."""
        ramp = np.repeat(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), 3, axis=2)
        try:
            ramp_image = Image.fromarray(ramp, "RGB")
            out = processor(images=ramp_image, do_resize=False, do_center_crop=False, return_tensors="np")
            out = out["pixel_values"]
        except Exception as e:  # any processor quirk just means: no fast path
            log.debug("no fast preprocessing: lookup table failed (%s)", e)
            return None
        out = np.asarray(out)
        if out.shape != (1, 3, 16, 16):
            return None
        return np.ascontiguousarray(out[0].reshape(3, 256), dtype=np.float32)

    def __call__(self, image: Image.Image) -> np.ndarray | None:
        """(3, H, W) float32 pixel values, or None when this image needs the processor (crop > image)."""
        if self._resize_to is not None:
            target = self._resize_to(*image.size)
            if target != image.size:
                image = image.resize(target, self._resample)
        pixels = np.asarray(image)
        if self._crop is not None:
            crop_h, crop_w = self._crop
            height, width = pixels.shape[:2]
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            if top < 0 or left < 0:
                return None
            pixels = pixels[top : top + crop_h, left : left + crop_w]
        out = np.empty((3, *pixels.shape[:2]), dtype=np.float32)
        for channel in range(3):
            np.take(self._lut[channel], pixels[:, :, channel], out=out[channel])
        return out


class Preprocessor:
    """Turns prepared image bytes into the model's float32 (N, 3, H, W) input."""

    def __init__(self, processor: Any, fast: FastPreprocessor | None) -> None:
        self.processor = processor
        self.fast = fast

    @property
    def kind(self) -> str:
        """'fast' when the proven-equal fast path is active, else 'processor'."""
        return "fast" if self.fast is not None else "processor"

    def with_processor(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The model's own image processor, unchanged."""
        out = self.processor(images=list(images), return_tensors="np")["pixel_values"]
        return np.asarray(out, dtype=np.float32)

    def image(self, image: Image.Image) -> np.ndarray:
        """Pixel values of one decoded RGB image, shape (3, H, W)."""
        values = self.fast(image) if self.fast is not None else None
        return values if values is not None else self.with_processor([image])[0]

    def encoded(self, data: bytes) -> np.ndarray:
        """Pixel values of one encoded image, shape (3, H, W)."""
        return self.image(decode_rgb(data))

    def batch(self, blobs: Sequence[bytes], pool: Executor | None = None) -> np.ndarray:
        """Pixel values for every encoded image, in order, shape (N, 3, H, W).

        With a pool, images are decoded and resized in parallel: PIL releases the GIL for both.
        """
        if pool is not None and len(blobs) > 1:
            return np.stack(list(pool.map(self.encoded, blobs)))
        return np.stack([self.encoded(b) for b in blobs])


def build_preprocessor(processor: Any) -> Preprocessor:
    """A Preprocessor using the fast path only when it reproduces ``processor`` on the probe images."""
    fast = FastPreprocessor.from_processor(processor)
    if fast is not None:
        for probe in probe_images():
            mine = fast(probe)
            if mine is None:
                continue
            theirs = np.asarray(processor(images=[probe], return_tensors="np")["pixel_values"])[0]
            if mine.shape != theirs.shape or not np.allclose(mine, theirs, rtol=0, atol=EQUALITY_TOLERANCE):
                log.debug("no fast path: %s differs on probe %s", type(processor).__name__, probe.size)
                fast = None
                break
    return Preprocessor(processor, fast)
