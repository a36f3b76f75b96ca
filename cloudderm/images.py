"""Turn any image input into the exact bytes every provider will receive.

Why one function: a fair comparison needs *identical* bytes for every provider, and privacy needs every
byte that leaves the machine to be free of metadata (EXIF incl. GPS, XMP, text chunks, comments). So each
image is decoded once, oriented, converted to 8-bit RGB, fitted to the strictest size limits, and
re-encoded from pixels alone; the SHA-256 of those bytes identifies the image everywhere downstream.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from cloudderm.core import ImageContext
from cloudderm.errors import InvalidImageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_MAX_PIXELS", "ImageLike", "PreparedImage", "prepare"]

ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, "Image.Image", "np.ndarray"]

DEFAULT_MAX_PIXELS = 100_000_000
JPEG_QUALITY = 95
QUALITY_FLOOR = 85  # below this, byte limits are met by fewer pixels rather than coarser ones
BYTE_ESTIMATE_SLACK = 0.85
EXIF_ORIENTATION = 0x0112
SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"}


@dataclass(frozen=True)
class PreparedImage:
    """Metadata-free, RGB, size-fitted image bytes ready to send, with their identity."""

    data: bytes
    media_type: str
    width: int
    height: int
    sha256: str
    source: str
    context: ImageContext | None = field(default=None, compare=False)  # not part of the image's identity

    def with_context(self, context: ImageContext | None) -> PreparedImage:
        """The same bytes carrying ``context`` (the patient/lesion facts adapters may read)."""
        return self if context is self.context else replace(self, context=context)

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def to_pil(self) -> Image.Image:
        """Decode the prepared bytes (for local models that need pixels)."""
        with Image.open(io.BytesIO(self.data)) as img:
            return img.convert("RGB")


def prepare(
    image: ImageLike | PreparedImage,
    *,
    max_bytes: int | None = None,
    max_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: str | None = None,
) -> PreparedImage:
    """Decode, orient, convert to RGB, strip metadata and fit limits.

    Args:
        image: a path, raw bytes, a PIL image or an HxW / HxWxC numpy array (or an already prepared
            image, returned as is when it already fits the limits).
        max_bytes: the encoded result must not exceed this many bytes (downscaled until it does).
        max_side: the longer side must not exceed this many pixels.
        max_pixels: refuse inputs with more pixels than this (decompression-bomb guard).
        source: a name for error messages; defaults to the path or a description of the input.

    Raises:
        InvalidImageError: naming the source and the reason (empty, not an image, truncated, too many
            pixels, unsupported format, or cannot fit ``max_bytes``).
    """
    if isinstance(image, PreparedImage):
        if _fits(image, max_bytes, max_side):
            return image
        refitted = prepare(
            image.data,
            max_bytes=max_bytes,
            max_side=max_side,
            max_pixels=max_pixels,
            source=source or image.source,
        )
        return refitted.with_context(image.context)
    name = source or _describe(image)
    pil, fmt, wanted = _open(image, name, max_pixels, max_side=max_side, max_bytes=max_bytes)
    try:
        rgb = _to_rgb(pil, name)
    finally:
        if pil is not image and pil is not rgb:
            pil.close()
    owned = rgb is not image
    target = _fitted(rgb.size, wanted) if wanted and max(rgb.size) > wanted else rgb.size
    if target != rgb.size:
        rgb, owned = _resize(rgb, target), True
    return fit_encoding(rgb, _output_format(fmt), max_bytes, name, owned=owned)


def _fits(img: PreparedImage, max_bytes: int | None, max_side: int | None) -> bool:
    return (max_bytes is None or img.size_bytes <= max_bytes) and (
        max_side is None or max(img.width, img.height) <= max_side
    )


def _describe(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} bytes>"
    if isinstance(image, Image.Image):
        return f"<PIL image {image.mode} {image.size[0]}x{image.size[1]}>"
    shape = getattr(image, "shape", None)
    if shape is not None:
        return f"<array {tuple(shape)}>"
    return f"<{type(image).__name__}>"


def _open(
    image: Any, name: str, max_pixels: int, *, max_side: int | None, max_bytes: int | None
) -> tuple[Image.Image, str, int | None]:
    """Open the input as a PIL image without writing to it; map every failure to InvalidImageError.

    Returns the image, its format and the longer side it should be resized to (None: keep its size).
    JPEGs are decoded at the smallest DCT scale (``Image.draft``: 1/2, 1/4, 1/8) that still covers that
    side, which costs a fraction of a full decode and leaves far fewer pixels to resample.
    """
    if isinstance(image, Image.Image):
        _check_pixels(image, name, max_pixels)
        return image, image.format or "PNG", max_side
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return _from_array(image, name), "PNG", max_side
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InvalidImageError(name, "no such file")
        data = path.read_bytes()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        raise InvalidImageError(name, f"unsupported input type {type(image).__name__}")
    if not data:
        raise InvalidImageError(name, "empty input (zero bytes)")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        pil = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImageError(name, "not a recognised image format") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if pil.format not in SUPPORTED_FORMATS:
        raise InvalidImageError(name, f"unsupported image format {pil.format}")
    _check_pixels(pil, name, max_pixels)
    wanted = max_side
    if pil.format in ("JPEG", "MPO"):
        wanted, draft_side = _jpeg_plan(pil.size, max_side, max_bytes, len(data))
        if draft_side and max(pil.size) >= 2 * draft_side:
            pil.draft("RGB", _fitted(pil.size, draft_side))
    try:
        pil.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidImageError(name, f"truncated or corrupt image data ({e})") from None
    return pil, pil.format, wanted


def _jpeg_plan(
    size: tuple[int, int], max_side: int | None, max_bytes: int | None, encoded: int
) -> tuple[int | None, int | None]:
    """The longer side to resize a JPEG to, and the side its draft decode must cover, before decoding.

    ``max_side`` is a hard cap. ``max_bytes`` becomes a side through an estimate: the re-encoded image
    takes about as many bits per pixel as the input did, so ``sqrt(max_bytes / input bytes)`` of each
    side fits. Being an estimate, it has a tolerance either way (``BYTE_ESTIMATE_SLACK``): a DCT scale a
    little under it is decoded rather than the next one up (4x the pixels), and an image a little over
    it is not resampled; the quality search in ``fit_encoding`` closes such small gaps for one encode.
    """
    longest = max(size)
    byte_side = None
    if max_bytes is not None and encoded > max_bytes:
        byte_side = max(16, int(longest * math.sqrt(max_bytes / encoded)))
    if byte_side is None:
        return max_side, max_side
    resize_over = int(byte_side / BYTE_ESTIMATE_SLACK)
    draft_side = int(byte_side * BYTE_ESTIMATE_SLACK)
    if max_side is not None and max_side <= resize_over:
        return max_side, max_side
    wanted = byte_side if longest > resize_over else None
    return wanted, min(draft_side, max_side) if max_side else draft_side


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size ``size`` shrinks to under ``max_side``, aspect kept.

    ``draft`` picks the smallest DCT scale whose result still covers the requested box in *both* sides, so
    asking for the square ``(max_side, max_side)`` would keep a 6000x4000 photo at 1/2 (3000x2000) when 1/4
    (1500x1000) already covers the 1024x683 it becomes: twice the decoding and four times the resampling.
    """
    w, h = size
    scale = max_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def _check_pixels(pil: Image.Image, name: str, max_pixels: int) -> None:
    w, h = pil.size
    if w * h > max_pixels:
        raise InvalidImageError(name, f"{w}x{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,}")
    if w == 0 or h == 0:
        raise InvalidImageError(name, "image has no pixels")


def _from_array(arr: Any, name: str) -> Image.Image:
    import numpy as np

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidImageError(name, f"array shape {a.shape} is not HxW, HxWx3 or HxWx4")
    if a.size == 0:  # Pillow would build a 0x0 image and fail later, with a ValueError, when saving it
        raise InvalidImageError(name, f"image has no pixels (array shape {a.shape})")
    if a.dtype.kind == "f":
        a = np.clip(a * 255.0 if a.max(initial=0) <= 1.0 else a, 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def _to_rgb(pil: Image.Image, name: str) -> Image.Image:
    """Apply EXIF orientation and convert any mode to 8-bit RGB (alpha composited on white)."""
    try:
        pil.seek(0)
    except (EOFError, AttributeError):
        pass
    # exif_transpose copies even an upright image: only call it when there is something to turn.
    turned = pil.getexif().get(EXIF_ORIENTATION, 1) in range(2, 9)
    oriented = (ImageOps.exif_transpose(pil) or pil) if turned else pil
    mode = oriented.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        a = np.asarray(oriented, dtype=np.uint32)
        peak = 65535 if a.max(initial=0) > 255 else 255
        oriented = Image.fromarray((a * 255 // peak).astype(np.uint8), "L")
        mode = "L"
    if mode == "P":
        oriented = oriented.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = oriented.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return oriented if mode == "RGB" else oriented.convert("RGB")


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """One LANCZOS resampling; ``reducing_gap=3`` box-reduces first where that is indistinguishable."""
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _output_format(source_fmt: str) -> str:
    """Lossless sources stay lossless (PNG) unless a byte limit forces JPEG; photos stay JPEG."""
    return "PNG" if source_fmt in ("PNG", "GIF", "BMP", "TIFF") else "JPEG"


def _save(img: Image.Image, fmt: str, quality: int = JPEG_QUALITY) -> bytes:
    """Encode pixels only: the caller has emptied ``info`` (Pillow would carry comments and ICC from it)."""
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG", optimize=False)
    else:
        img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def fit_encoding(
    rgb: Image.Image, fmt: str, max_bytes: int | None, name: str, *, owned: bool = True
) -> PreparedImage:
    """Encode ``rgb`` from its pixels alone, within ``max_bytes``: lower JPEG quality first, then size.

    Order of resort, each deterministic: the image as is (PNG, or JPEG at ``JPEG_QUALITY``); JPEG at the
    highest quality down to ``QUALITY_FLOOR`` that fits, picked by encoding a strip sample rather than the
    whole image at each quality; then one resampling from ``rgb`` to the size the byte count predicts.

    Args:
        owned: False when ``rgb`` is the caller's object: it is copied before its ``info`` is emptied.
    """
    if not owned:
        rgb = rgb.copy()
    rgb.info = {}  # JPEG comments, ICC profiles, EXIF, XMP and PNG text all travel through info
    data = _save(rgb, fmt)
    current = rgb
    if max_bytes is not None and len(data) > max_bytes and fmt == "PNG":
        fmt, data = "JPEG", _save(rgb, "JPEG")
    while max_bytes is not None and len(data) > max_bytes:
        fitted = _highest_quality_within(current, len(data), max_bytes)
        if fitted is not None:
            data = fitted
            break
        w, h = current.size
        scale = max(0.25, min(0.9, 0.95 * math.sqrt(max_bytes / len(data))))
        new = (max(1, int(w * scale)), max(1, int(h * scale)))
        if new == (w, h) or min(new) < 16:
            raise InvalidImageError(name, f"cannot be encoded within {max_bytes:,} bytes")
        current = _resize(rgb, new)  # always from the decoded pixels: one resampling, never a chain
        current.info = {}
        data = _save(current, fmt)
    return PreparedImage(
        data=data,
        media_type="image/png" if fmt == "PNG" else "image/jpeg",
        width=current.size[0],
        height=current.size[1],
        sha256=hashlib.sha256(data).hexdigest(),
        source=name,
    )


def _highest_quality_within(img: Image.Image, size_at_default: int, max_bytes: int) -> bytes | None:
    """The JPEG of ``img`` at the highest quality in [QUALITY_FLOOR, JPEG_QUALITY) that fits, or None.

    JPEG sizes at two qualities keep nearly the same ratio over any part of one image, so the sizes of a
    strip sample predict the whole image's; the full image is encoded only at the predicted quality (and
    at most twice more, lower, should the prediction fall short).
    """
    sample = _strip_sample(img)
    sample_default = len(_save(sample, "JPEG"))

    def predicted(quality: int) -> float:
        return size_at_default * len(_save(sample, "JPEG", quality)) / sample_default

    if predicted(QUALITY_FLOOR) > max_bytes:
        return None
    low, high, best = QUALITY_FLOOR, JPEG_QUALITY - 1, QUALITY_FLOOR
    while low <= high:
        middle = (low + high) // 2
        if predicted(middle) <= max_bytes * 0.98:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    for quality in (best, best - 2, best - 4):
        if quality < QUALITY_FLOOR:
            break
        data = _save(img, "JPEG", quality)
        if len(data) <= max_bytes:
            return data
    return None


def _strip_sample(img: Image.Image, strips: int = 8, height: int = 16) -> Image.Image:
    """``strips`` full-width bands of ``height`` rows spread over ``img`` (whole MCU rows), as one image."""
    w, h = img.size
    if h <= strips * height * 2:
        return img
    sample = Image.new("RGB", (w, strips * height))
    for i in range(strips):
        top = (i * (h - height) // (strips - 1)) // height * height
        sample.paste(img.crop((0, top, w, top + height)), (0, i * height))
    return sample
