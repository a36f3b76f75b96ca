"""Small generated test images: the same bytes in cloudderm's own tests and in plugin authors' suites.

Generated, not shipped: no photo of a person is needed to check that an adapter encodes, sends and decodes.
The second sample carries EXIF with GPS tags, so a suite can check that no metadata leaves the machine.
"""

from __future__ import annotations

import io

__all__ = ["make_jpeg", "sample_jpegs"]


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


def sample_jpegs() -> list[bytes]:
    """Three distinct small JPEGs; the second carries EXIF GPS tags."""
    return [
        make_jpeg((200, 120, 90)),
        make_jpeg((90, 60, 40), gps=True),
        make_jpeg((230, 200, 190), (80, 80)),
    ]
