"""Shared fixtures: generated sample images and the optional real data in ../shared/data."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (real lesion photos and provider payloads); skip cleanly when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def provider_payloads(shared_data: Path) -> Path:
    return shared_data / "providers"


def make_jpeg(color: tuple[int, int, int], size: tuple[int, int] = (64, 48), *, gps: bool = False) -> bytes:
    """A small JPEG of one colour with a gradient, optionally carrying EXIF GPS tags."""
    from PIL import Image

    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, 0), (x * 4 % 256, 0, 0))
    buf = io.BytesIO()
    kwargs = {}
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "CanaryCamera"  # Make
        gps_ifd = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
        exif[0x8825] = gps_ifd
        kwargs["exif"] = exif.tobytes()
    img.save(buf, format="JPEG", quality=90, **kwargs)
    return buf.getvalue()


@pytest.fixture
def sample_images() -> list[bytes]:
    """Three distinct small JPEGs; the second carries EXIF GPS tags."""
    return [
        make_jpeg((200, 120, 90)),
        make_jpeg((90, 60, 40), gps=True),
        make_jpeg((230, 200, 190), (80, 80)),
    ]
