"""What a cassette may keep of an HTTP exchange: pure functions, no vcrpy, no I/O.

Why these rules: cassettes are checked into git, so they must never hold a credential or a pixel. Requests
sent to a classifier carry patient photos (raw or base64 in JSON), signatures that change on every call
(SigV4, OAuth) and keys; responses carry the labels and scores that replay must reproduce exactly. So a
request keeps its method, URL (minus secret query parameters), harmless headers and a *description* of its
body (SHA-256, length and, for JSON, the structure with every base64 blob replaced by its hash); a response
is kept whole except for secret headers and secret-named JSON fields. Token exchanges (OAuth, STS, instance
metadata) are not kept at all: they are nothing but secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from cloudderm.redact import (  # the rules live in the core; cassettes reuse them
    REDACTED,
    is_secret_header,
    is_secret_name,
    keep_headers,
    public_query,
    redact_uri,
)

__all__ = [
    "REDACTED",
    "body_bytes",
    "canonical_json",
    "describe_body",
    "image_type",
    "is_secret_header",
    "is_secret_name",
    "is_token_exchange",
    "keep_headers",
    "redact_json",
    "redact_response_body",
    "redact_uri",
    "request_key",
]

# Hosts whose every request is a credential exchange: OAuth, STS, SSO and instance-metadata services.
TOKEN_HOSTS = frozenset(
    {
        "oauth2.googleapis.com",
        "accounts.google.com",
        "sts.googleapis.com",
        "iamcredentials.googleapis.com",
        "metadata.google.internal",
        "metadata",
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.microsoft.com",
        "login.windows.net",
        "169.254.169.254",
        "169.254.170.2",
        "fd00:ec2::254",
    }
)
_TOKEN_HOST_PATTERNS = (
    re.compile(r"^sts(-fips)?(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$"),
    re.compile(r"^portal\.sso(-fips)?\.[a-z0-9-]+\.amazonaws\.com$"),
    re.compile(r"^oidc\.[a-z0-9-]+\.amazonaws\.com$"),
    re.compile(r"^cognito-identity(-fips)?\.[a-z0-9-]+\.amazonaws\.com$"),
)
_TOKEN_PATHS = re.compile(
    r"(/oauth2(/v2\.0)?/token|/oauth2/v1/token|/metadata/identity/oauth2/token|/latest/api/token"
    r"|/latest/meta-data/iam/security-credentials|/computeMetadata/v1/instance/service-accounts"
    r"|:generateAccessToken|:generateIdToken|/v1/token$)",
    re.IGNORECASE,
)
_TOKEN_BODY = re.compile(
    rb"(^|&)(grant_type=|Action=(AssumeRole|AssumeRoleWithWebIdentity|AssumeRoleWithSAML|GetSessionToken"
    rb"|GetFederationToken|GetCallerIdentity)(&|$))"
)
_JSON_GRANT = re.compile(rb'"(grant_type|grantType|subject_token|subjectToken)"\s*:')

_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$|^[A-Za-z0-9_-]+={0,2}$")
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,", re.IGNORECASE)
# Under this many characters a base64-looking string is an id, not a payload; images are far longer.
MIN_BLOB_CHARS = 100
MIN_IMAGE_CHARS = 16

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def request_key(method: str, uri: str) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """What a request is matched on besides its body: method, host without scheme or port, path, query.

    The port is left out so a cassette recorded against a loopback server on an ephemeral port replays
    whatever port the test picks; real endpoints always use the scheme's default port.
    """
    parts = urlsplit(uri)
    path = unquote(parts.path) or "/"
    return method.upper(), (parts.hostname or "").lower(), path, tuple(public_query(parts.query))


def body_bytes(body: Any) -> bytes:
    """A vcrpy request body (bytes, str, list of chunks or None) as one bytes object."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, Iterable):
        return b"".join(c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in body)
    raise TypeError(f"cannot read a request body of type {type(body).__name__}")


def is_token_exchange(method: str, uri: str, body: bytes) -> bool:
    """OAuth, STS, SSO or metadata-service credential traffic, which a cassette must never contain."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if host in TOKEN_HOSTS or any(p.match(host) for p in _TOKEN_HOST_PATTERNS):
        return True
    if _TOKEN_PATHS.search(parts.path):
        return True
    head = body[:4096]
    return bool(_TOKEN_BODY.search(head) or _JSON_GRANT.search(head))


def image_type(data: bytes) -> str | None:
    """The image media type from the magic number, or None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _decode_base64(text: str) -> bytes | None:
    if not _BASE64.match(text):
        return None
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _blob_marker(text: str) -> str | None:
    """``<image/jpeg sha256:HEX len=N>`` for a base64 image or long blob; None for ordinary text."""
    stripped = _DATA_URL.sub("", text, count=1)
    if len(stripped) < MIN_IMAGE_CHARS:
        return None
    data = _decode_base64(stripped)
    if data is None:
        return None
    kind = image_type(data)
    if kind is None and len(stripped) < MIN_BLOB_CHARS:
        return None
    return f"<{kind or 'base64'} sha256:{hashlib.sha256(data).hexdigest()} len={len(data)}>"


def redact_json(value: Any, *, hash_blobs: bool = True) -> Any:
    """A copy with secret-named fields redacted and (optionally) base64 blobs replaced by their hash."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            secret = is_secret_name(str(name))
            out[name] = _redact_all_strings(item) if secret else redact_json(item, hash_blobs=hash_blobs)
        return out
    if isinstance(value, list):
        return [redact_json(item, hash_blobs=hash_blobs) for item in value]
    if isinstance(value, str) and hash_blobs:
        return _blob_marker(value) or value
    return value


def _redact_all_strings(value: Any) -> Any:
    if isinstance(value, str):
        return REDACTED
    if isinstance(value, dict):
        return {k: _redact_all_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all_strings(v) for v in value]
    return value


def _load_json(data: bytes) -> tuple[bool, Any]:
    if not data or data.lstrip()[:1] not in (b"{", b"["):
        return False, None
    try:
        return True, json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def describe_body(data: bytes) -> dict[str, Any]:
    """What a cassette stores of a request body: its hash and length, never its bytes.

    A JSON body is hashed in canonical form (sorted keys, no whitespace): SDKs serialise maps such as
    Vertex AI's ``parameters`` in an order that changes from one process to the next, and that must not
    turn a replay into a miss. It also keeps its structure (parameters stay readable) with every base64
    blob replaced by ``<media-type sha256:HEX len=N>``. A raw image body says which kind of image it was.
    """
    ok, parsed = _load_json(data)
    hashed = canonical_json(parsed) if ok else data
    info: dict[str, Any] = {"sha256": hashlib.sha256(hashed).hexdigest(), "length": len(data)}
    if ok:
        info["hash_of"] = "canonical-json"
    kind = image_type(data)
    if kind:
        info["media_type"] = kind
    if ok:
        info["json"] = redact_json(parsed)
    return info


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def redact_response_body(data: bytes) -> bytes:
    """A JSON response with secret-named fields redacted; anything else unchanged, byte for byte.

    Only a body that actually held a secret field is re-serialised, so replay returns the recorded bytes.
    """
    ok, parsed = _load_json(data)
    if not ok:
        return data
    redacted = redact_json(parsed, hash_blobs=False)
    if redacted == parsed:
        return data
    return json.dumps(redacted, separators=(",", ":")).encode("utf-8")
