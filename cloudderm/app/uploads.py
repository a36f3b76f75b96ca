"""Uploaded images: size and pixel caps, metadata stripped before any provider sees them.

Gradio writes each upload into its cache folder; the app points that folder (``GRADIO_TEMP_DIR``) at its
own temp folder, which ``AppTempDir`` removes when the app stops, and the Blocks delete old session files
(``delete_cache``). Nothing else is written: the prepared image (re-encoded, EXIF/GPS gone) lives in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cloudderm.classifier import ImageLimits
from cloudderm.errors import InvalidImageError
from cloudderm.images import PreparedImage, prepare

__all__ = ["LIMITS_TEXT", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "AppTempDir", "prepare_upload"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_PIXELS = 100_000_000
LIMITS_TEXT = (
    "JPEG, PNG, WebP, BMP or TIFF; at most 20 MB and 100 megapixels. "
    "Metadata is removed before any provider sees the image."
)


def prepare_upload(path: str | os.PathLike, limits: ImageLimits) -> PreparedImage:
    """The upload at ``path`` checked against the caps and prepared (decoded, oriented, metadata stripped).

    Raises:
        InvalidImageError: too large, too many pixels, or not an image (the message says which).
    """
    file = Path(path)
    size = file.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise InvalidImageError(
            "the upload", f"{size / 1e6:.1f} MB is over the app's limit of {MAX_UPLOAD_BYTES // 2**20} MB"
        )
    return prepare(
        file,
        max_bytes=limits.max_bytes,
        max_side=limits.max_side,
        max_pixels=MAX_UPLOAD_PIXELS,
        source="the upload",
    )


class AppTempDir:
    """The app's own temp folder: Gradio's upload cache goes here, and it is removed on ``cleanup``."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="cloudderm-app-"))
        os.environ["GRADIO_TEMP_DIR"] = str(self.path)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
