"""Small, metadata-free thumbnails for the disagreement table, inlined as data URIs.

Why through ``images.prepare``: it decodes, orients and re-encodes from pixels alone, so no EXIF (GPS,
camera, dates) from a clinical photo ends up inside a report that may be shared.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cloudderm.errors import InvalidImageError

__all__ = ["THUMB_SIDE", "thumbnail_uri"]

THUMB_SIDE = 96


def thumbnail_uri(images_root: Path | None, image: str, *, side: int = THUMB_SIDE) -> str | None:
    """A ``data:`` URI of the image downscaled to ``side`` pixels, or None when it cannot be found.

    Only files inside ``images_root`` are read: a record naming ``../../etc/...`` gets no thumbnail.
    """
    if images_root is None or not image:
        return None
    from cloudderm.images import prepare

    root = Path(images_root).resolve()
    path = (root / image).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        prepared = prepare(path, max_side=side)
    except InvalidImageError:
        return None
    return f"data:{prepared.media_type};base64," + base64.b64encode(prepared.data).decode("ascii")
