"""Find metadata that an uploaded image still carries, by walking its container format byte by byte.

Why not Pillow: Pillow normalises what it reads (it may drop unknown segments, or parse EXIF lazily), and
the question here is exactly what *bytes* left the machine. So JPEG segments, PNG chunks and WebP RIFF
chunks are walked directly; anything that can identify a person or place (EXIF, and GPS inside it, XMP,
IPTC, comments, PNG text chunks) is reported by name. ICC colour profiles are reported too, but they
describe colours, not people, so they do not count as privacy metadata.
"""

from __future__ import annotations

import struct

__all__ = ["PRIVACY_FINDINGS", "find_metadata"]

PRIVACY_FINDINGS = frozenset(
    {
        "exif",
        "exif-gps",
        "xmp",
        "iptc",
        "jpeg-comment",
        "png-text",
        "png-itxt",
        "png-ztxt",
        "png-exif",
        "png-time",
        "webp-exif",
        "webp-xmp",
    }
)

_GPS_IFD_TAG = 0x8825
_XMP_SIGNATURES = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_PNG_CHUNKS = {
    b"tEXt": "png-text",
    b"iTXt": "png-itxt",
    b"zTXt": "png-ztxt",
    b"eXIf": "png-exif",
    b"tIME": "png-time",
    b"iCCP": "icc-profile",
}


def find_metadata(data: bytes) -> list[str]:
    """Names of the metadata blocks found in JPEG, PNG or WebP bytes (empty for clean or other data).

    ``exif-gps`` is reported in addition to ``exif`` when the EXIF block links a GPS IFD.
    """
    if data[:2] == b"\xff\xd8":
        found = _scan_jpeg(data)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        found = _scan_png(data)
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        found = _scan_webp(data)
    else:
        return []
    return list(dict.fromkeys(found))


def _scan_jpeg(data: bytes) -> list[str]:
    found: list[str] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no more metadata segments
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        payload = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            found.append("exif")
            if _tiff_links_gps(payload[6:]):
                found.append("exif-gps")
        elif marker == 0xE1 and payload.startswith(_XMP_SIGNATURES):
            found.append("xmp")
        elif marker == 0xED:
            found.append("iptc")
        elif marker == 0xFE:
            found.append("jpeg-comment")
        elif marker == 0xE2 and payload.startswith(b"ICC_PROFILE\x00"):
            found.append("icc-profile")
        pos += 2 + length
    return found


def _tiff_links_gps(tiff: bytes) -> bool:
    """Whether IFD0 of a TIFF (EXIF) block has a GPS IFD pointer with at least one entry behind it."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return False
    endian = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack(endian + "I", tiff[4:8])
        (count,) = struct.unpack(endian + "H", tiff[ifd0 : ifd0 + 2])
        for i in range(count):
            entry = ifd0 + 2 + 12 * i
            tag, _type, _n, value = struct.unpack(endian + "HHII", tiff[entry : entry + 12])
            if tag == _GPS_IFD_TAG:
                (gps_entries,) = struct.unpack(endian + "H", tiff[value : value + 2])
                return gps_entries > 0
    except struct.error:
        return False
    return False


def _scan_png(data: bytes) -> list[str]:
    found: list[str] = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind in _PNG_CHUNKS:
            found.append(_PNG_CHUNKS[kind])
            if kind == b"eXIf" and _tiff_links_gps(data[pos + 8 : pos + 8 + length]):
                found.append("exif-gps")
        if kind == b"IEND":
            break
        pos += 12 + length
    return found


def _scan_webp(data: bytes) -> list[str]:
    found: list[str] = []
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos : pos + 8])
        if kind == b"EXIF":
            found.append("webp-exif")
            body = data[pos + 8 : pos + 8 + length]
            if _tiff_links_gps(body[6:] if body.startswith(b"Exif\x00\x00") else body):
                found.append("exif-gps")
        elif kind == b"XMP ":
            found.append("webp-xmp")
        elif kind == b"ICCP":
            found.append("icc-profile")
        pos += 8 + length + (length & 1)
    return found
