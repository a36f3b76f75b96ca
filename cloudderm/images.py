"""Turn any image input into the exact bytes every provider will receive.

Why one function: a fair comparison needs *identical* bytes for every provider, and privacy needs every
byte that leaves the machine to be free of metadata (EXIF incl. GPS, XMP, text chunks, comments). So each
image is decoded once, oriented, converted to 8-bit RGB, fitted to the strictest size limits, and
re-encoded from pixels alone; the SHA-256 of those bytes identifies the image everywhere downstream.
"""

from __future__ import annotations

import hashlib
import io
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
    pil, fmt = _open(image, name, max_pixels, draft_side=max_side)
    try:
        rgb = _to_rgb(pil, name)
    finally:
        if pil is not image:
            pil.close()
    if max_side and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _encode_within(rgb, fmt, max_bytes, name)


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
    image: Any, name: str, max_pixels: int, *, draft_side: int | None = None
) -> tuple[Image.Image, str]:
    """Open the input as a PIL image without writing to it; map every failure to InvalidImageError.

    When only a smaller image is needed, JPEGs are decoded at a reduced DCT scale (``Image.draft``), which
    is several times faster than decoding full size and downscaling afterwards.
    """
    if isinstance(image, Image.Image):
        _check_pixels(image, name, max_pixels)
        return image, image.format or "PNG"
    if hasattr(image, "shape") and hasattr(image, "dtype"):
        return _from_array(image, name), "PNG"
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
    if draft_side and pil.format in ("JPEG", "MPO") and max(pil.size) > 2 * draft_side:
        pil.draft("RGB", _fitted(pil.size, draft_side))
    try:
        pil.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidImageError(name, f"truncated or corrupt image data ({e})") from None
    return pil, pil.format


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
    oriented = ImageOps.exif_transpose(pil) or pil
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
    return oriented.convert("RGB")


def _encode(rgb: Image.Image, fmt: str) -> tuple[bytes, str]:
    """Encode pixels only: Pillow would otherwise carry ``info`` (JPEG comments, ICC, EXIF) into the file."""
    rgb.info = {}
    buf = io.BytesIO()
    if fmt == "PNG":
        rgb.save(buf, format="PNG", optimize=False)
        return buf.getvalue(), "image/png"
    rgb.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), "image/jpeg"


def _encode_within(rgb: Image.Image, source_fmt: str, max_bytes: int | None, name: str) -> PreparedImage:
    """Encode from pixels only (no metadata); downscale until ``max_bytes`` is met."""
    fmt = "PNG" if source_fmt in ("PNG", "GIF", "BMP", "TIFF") else "JPEG"
    data, media_type = _encode(rgb, fmt)
    current = rgb
    while max_bytes is not None and len(data) > max_bytes:
        if fmt == "PNG":
            fmt = "JPEG"
        else:
            w, h = current.size
            scale = max(0.5, min(0.9, (max_bytes / len(data)) ** 0.5))
            new = (max(1, int(w * scale)), max(1, int(h * scale)))
            if new == (w, h) or min(new) < 16:
                raise InvalidImageError(name, f"cannot be encoded within {max_bytes:,} bytes")
            current = current.resize(new, Image.Resampling.LANCZOS)
        data, media_type = _encode(current, fmt)
    return PreparedImage(
        data=data,
        media_type=media_type,
        width=current.size[0],
        height=current.size[1],
        sha256=hashlib.sha256(data).hexdigest(),
        source=name,
    )
