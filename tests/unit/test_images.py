"""Image preparation on a corpus the tests generate, and on the real images in ../shared/data."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from cloudderm.errors import InvalidImageError
from cloudderm.images import PreparedImage, prepare
from tests.conftest import make_jpeg


def has_metadata(data: bytes) -> bool:
    """True when encoded bytes still carry EXIF, XMP, comments or PNG text chunks."""
    img = Image.open(io.BytesIO(data))
    if img.info.get("exif") or img.getexif():
        return True
    markers = (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"tEXt", b"iTXt", b"zTXt", b"eXIf")
    if any(marker in data for marker in markers):
        return True
    return img.format == "JPEG" and b"\xff\xfe" in data[: data.find(b"\xff\xda")]


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def pixels(prepared: PreparedImage) -> np.ndarray:
    return np.asarray(prepared.to_pil())


# ---- refusals ---------------------------------------------------------------------------------------
def test_zero_bytes_is_refused_naming_the_source(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError) as info:
        prepare(empty)
    assert str(empty) in str(info.value) and "zero bytes" in str(info.value)


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image at all")
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        prepare(text)


def test_missing_file() -> None:
    with pytest.raises(InvalidImageError, match="no such file"):
        prepare("/nonexistent/lesion.jpg")


def test_truncated_jpeg_is_refused() -> None:
    data = make_jpeg((120, 80, 60), (256, 256))
    with pytest.raises(InvalidImageError, match="truncated"):
        prepare(data[: len(data) // 2])


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares an enormous image (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * width
    idat = zlib.compress(row * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_png_bomb_over_the_pixel_limit_is_refused() -> None:
    with pytest.raises(InvalidImageError, match="exceeds the limit"):
        prepare(_png_bomb(20_000, 20_000))


def test_pixel_limit_is_configurable() -> None:
    data = make_jpeg((10, 20, 30), (100, 100))
    with pytest.raises(InvalidImageError, match="10,000 pixels exceeds the limit of 5,000"):
        prepare(data, max_pixels=5_000)


def test_unsupported_format_is_refused() -> None:
    data = encode(Image.new("RGB", (8, 8)), "PPM")
    with pytest.raises(InvalidImageError, match="unsupported image format PPM"):
        prepare(data)


def test_cannot_fit_byte_limit() -> None:
    noisy = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    with pytest.raises(InvalidImageError, match="cannot be encoded within 100 bytes"):
        prepare(noisy, max_bytes=100)


# ---- conversions -----------------------------------------------------------------------------------
def test_cmyk_jpeg_becomes_rgb() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    out = prepare(encode(cmyk, "JPEG", quality=95))
    px = pixels(out)[16, 16]
    assert px[0] > 200 and px[1] < 60 and px[2] < 60


def test_16_bit_png_is_scaled_to_8_bit() -> None:
    arr = np.full((20, 20), 65535 // 2, dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = prepare(encode(img, "PNG"))
    assert out.media_type == "image/png"
    value = pixels(out)[10, 10]
    assert abs(int(value[0]) - 127) <= 1 and value[0] == value[1] == value[2]


def test_palette_gif_becomes_rgb() -> None:
    img = Image.new("P", (16, 16))
    img.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    out = prepare(encode(img, "GIF"))
    assert tuple(pixels(out)[8, 8]) == (0, 0, 255)


def test_animated_gif_uses_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c).convert("P") for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    px = pixels(prepare(buf.getvalue()))[8, 8]
    assert px[0] > 200 and px[1] < 50


def test_rgba_png_is_composited_on_white() -> None:
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (255, 0, 0, 255))
    out = pixels(prepare(encode(img, "PNG")))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[0, 0]) == (255, 0, 0)


def test_la_png_is_composited_on_white() -> None:
    img = Image.new("LA", (10, 10), (0, 0))
    out = pixels(prepare(encode(img, "PNG")))
    assert tuple(out[5, 5]) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF"])
def test_other_formats_decode(fmt: str) -> None:
    img = Image.new("RGB", (12, 12), (10, 200, 30))
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    out = pixels(prepare(encode(img, fmt, **kwargs)))
    assert tuple(out[6, 6]) == (10, 200, 30)


def test_numpy_and_pil_inputs() -> None:
    arr = np.zeros((5, 7, 3), dtype=np.uint8)
    arr[..., 1] = 255
    from_array = prepare(arr)
    assert (from_array.width, from_array.height) == (7, 5)
    assert tuple(pixels(from_array)[2, 3]) == (0, 255, 0)
    gray_float = prepare(np.full((4, 4), 0.5, dtype=np.float32))
    assert abs(int(pixels(gray_float)[0, 0, 0]) - 127) <= 1
    with pytest.raises(InvalidImageError, match="array shape"):
        prepare(np.zeros((2, 2, 5), dtype=np.uint8))
    pil = Image.new("RGB", (9, 3), (1, 2, 3))
    assert (prepare(pil).width, prepare(pil).height) == (9, 3)


# ---- orientation and metadata ----------------------------------------------------------------------
def _rotated_jpeg_with_gps() -> bytes:
    """A 40x20 image stored sideways with EXIF Orientation=6 (display rotated 90° clockwise) and GPS."""
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    for y in range(20):
        for x in range(10):
            img.putpixel((x, y), (255, 0, 0))  # red band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    exif[0x010E] = "patient-name-canary"
    return encode(img, "JPEG", quality=95, exif=exif.tobytes(), comment=b"comment-canary")


def test_exif_orientation_applied_and_metadata_stripped() -> None:
    data = _rotated_jpeg_with_gps()
    assert has_metadata(data)
    out = prepare(data)
    assert (out.width, out.height) == (20, 40)
    top = pixels(out)[2, 10]
    assert top[0] > 200 and top[2] < 60  # the red band is now on top
    assert not has_metadata(out.data)
    assert b"patient-name-canary" not in out.data and b"comment-canary" not in out.data


def test_png_text_chunks_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "text-chunk-canary")
    info.add_itxt("Description", "itxt-canary")
    data = encode(Image.new("RGB", (8, 8), (5, 5, 5)), "PNG", pnginfo=info)
    out = prepare(data)
    assert b"canary" not in out.data and not has_metadata(out.data)


def test_input_file_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(_rotated_jpeg_with_gps())
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    prepare(path, max_side=10)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


# ---- size limits -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    y, x = np.mgrid[0:4000, 0:6000]
    arr = np.stack([(x / 6000 * 255), (y / 4000 * 255), ((x + y) % 256)], axis=-1).astype(np.uint8)
    return encode(Image.fromarray(arr), "JPEG", quality=90)


def test_large_jpeg_fits_side_and_bytes(big_jpeg: bytes) -> None:
    out = prepare(big_jpeg, max_side=1024, max_bytes=200_000)
    assert max(out.width, out.height) <= 1024
    assert out.size_bytes <= 200_000
    assert abs(out.width / out.height - 1.5) < 0.01


def test_draft_decodes_at_the_smallest_scale_that_covers_the_target(
    big_jpeg: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """6000x4000 to a 1024 side becomes 1024x683: decoding at 1/4 (1500x1000) covers it, 1/8 would not."""
    from PIL import JpegImagePlugin

    decoded: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):  # type: ignore[no-untyped-def]
        result = real_draft(self, mode, size)
        decoded.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = prepare(big_jpeg, max_side=1024)
    assert decoded == [(1500, 1000)]
    assert (out.width, out.height) == (1024, 683)


def test_byte_limit_downscales(big_jpeg: bytes) -> None:
    out = prepare(big_jpeg, max_bytes=150_000)
    assert out.size_bytes <= 150_000 and out.width < 6000


def test_same_input_same_bytes_and_hash() -> None:
    data = make_jpeg((30, 60, 90))
    a, b = prepare(data), prepare(data)
    assert a.data == b.data and a.sha256 == b.sha256 == hashlib.sha256(a.data).hexdigest()
    assert prepare(a) is a  # already prepared and within limits: returned as is


# ---- real images -----------------------------------------------------------------------------------
def test_real_images_prepare_without_metadata(shared_data: Path) -> None:
    files = sorted((shared_data / "images").iterdir()) + sorted((shared_data / "ood").iterdir())
    assert files
    for path in files:
        out = prepare(path, max_bytes=1_500_000)
        assert out.size_bytes <= 1_500_000, path
        assert not has_metadata(out.data), path
        assert out.to_pil().mode == "RGB"


def test_real_exif_orientation_image(shared_data: Path) -> None:
    path = shared_data / "images" / "image_with_exif_including_orientation.jpg"
    with Image.open(path) as raw:
        stored = raw.size
        orientation = raw.getexif().get(0x0112)
    out = prepare(path)
    assert orientation == 6
    assert (out.width, out.height) == (stored[1], stored[0])


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 5, 3), (4, 0), (0, 0, 4)])
def test_empty_array_is_invalid_image_error(shape) -> None:
    """Issue #12 item 15: an array without pixels is the documented InvalidImageError, not ValueError."""
    import numpy as np

    from cloudderm.testing.fakes import FakeClassifier

    with pytest.raises(InvalidImageError, match="no pixels"):
        FakeClassifier("fake").classify(np.zeros(shape, np.uint8))


# ---- byte limits: estimate, one decode, quality search ---------------------------------------------
@pytest.fixture(scope="module")
def camera_like() -> bytes:
    """A 3000x2000 noisy photo-like JPEG with EXIF: textured enough that quality moves its size."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:2000, 0:3000]
    base = np.stack([x / 3000 * 200, y / 2000 * 200, (x * y) % 97 + 60], axis=-1)
    noisy = np.clip(base + rng.integers(-12, 13, size=base.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "TestCamera"
    return encode(Image.fromarray(noisy), "JPEG", quality=92, exif=exif.tobytes())


def test_byte_limit_is_met_deterministically_without_metadata(camera_like: bytes) -> None:
    limit = len(camera_like) // 3
    a, b = prepare(camera_like, max_bytes=limit), prepare(camera_like, max_bytes=limit)
    assert a.data == b.data and a.size_bytes <= limit
    assert not has_metadata(a.data)
    assert abs(a.width / a.height - 1.5) < 0.01


def test_byte_limit_decodes_once_at_a_reduced_scale(
    camera_like: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit of ~1/4 of the input's bytes asks for ~1/2 of each side: the draft decode, not a full one."""
    from PIL import JpegImagePlugin

    decoded: list[tuple[int, int]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):  # type: ignore[no-untyped-def]
        result = real_draft(self, mode, size)
        decoded.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = prepare(camera_like, max_bytes=len(camera_like) // 4)
    assert decoded == [(1500, 1000)]
    assert out.size_bytes <= len(camera_like) // 4 and max(out.width, out.height) <= 1500


def test_small_overshoot_lowers_quality_not_pixels(camera_like: bytes) -> None:
    """Just over the limit at the default quality: the same pixels at a lower quality, not fewer pixels."""
    full = prepare(camera_like)
    out = prepare(full.data, max_bytes=int(full.size_bytes * 0.8))
    assert (out.width, out.height) == (full.width, full.height)
    assert out.size_bytes <= full.size_bytes * 0.8


def test_limits_far_below_the_quality_floor_shrink_the_image(camera_like: bytes) -> None:
    out = prepare(camera_like, max_bytes=40_000)
    assert out.size_bytes <= 40_000 and out.width < 1500


def test_a_pil_input_is_not_modified() -> None:
    img = Image.new("RGB", (64, 48), (10, 200, 30))
    img.info["comment"] = b"keep me"
    out = prepare(img)
    assert img.info["comment"] == b"keep me" and img.size == (64, 48)
    assert not has_metadata(out.data)


def test_png_over_the_limit_becomes_jpeg() -> None:
    noisy = (np.random.default_rng(3).random((400, 600, 3)) * 255).astype(np.uint8)
    png = encode(Image.fromarray(noisy), "PNG")
    out = prepare(png, max_bytes=len(png) // 3)
    assert out.media_type == "image/jpeg" and out.size_bytes <= len(png) // 3
