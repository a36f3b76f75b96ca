"""The one scrubber: what may be written of a URL, an error message or a settings mapping.

Why in the core: error texts, result stores, reports, logs and cassettes all quote URLs that a provider was
called at, and a URL can carry a credential (``?code=`` on Azure Functions, SAS ``sig=``, ``user:pass@``).
Each writer passes its text through here, so a rule added once (a new secret parameter name) protects every
output. Cassettes (:mod:`cloudderm.testing.redact`) build on the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "VALUE_MASK",
    "is_secret_header",
    "is_secret_name",
    "is_secret_query_name",
    "keep_headers",
    "mask_values",
    "public_query",
    "redact_uri",
    "scrub_mapping",
    "scrub_text",
    "scrub_url",
]

REDACTED = "<redacted>"
# What a known secret *value* becomes in a message (historic: tests and docs quote "***").
VALUE_MASK = "***"

SECRET_NAME_PARTS = ("key", "token", "secret", "password", "signature", "credential")
# Header names are a closed vocabulary, so a broader net costs nothing there (x-ms-authorization-auxiliary).
SECRET_HEADER_PARTS = (*SECRET_NAME_PARTS, "auth", "cookie", "session")
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "api-key",
        "ocp-apim-subscription-key",
        "prediction-key",
        "x-ms-client-principal",
    }
)
SECRET_HEADER_PREFIXES = ("x-amz-", "x-goog-")
# Query parameters that authenticate a URL without a secret-sounding name (Azure SAS, presigned URLs).
SECRET_QUERY_NAMES = frozenset({"sig", "se", "st", "sp", "sv", "skoid", "sktid", "code", "assertion"})


def is_secret_name(name: str) -> bool:
    """A header, JSON field or query parameter whose name says it carries a credential."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in SECRET_HEADERS
        or lowered.startswith(SECRET_HEADER_PREFIXES)
        or any(part in lowered for part in SECRET_HEADER_PARTS)
    )


def keep_headers(headers: Mapping[str, Any]) -> dict[str, list[str]]:
    """Headers as ``{name: [values]}`` without any that may authenticate or identify a session."""
    kept: dict[str, list[str]] = {}
    for name, value in headers.items():
        if is_secret_header(str(name)):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        kept[str(name)] = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
    return kept


def is_secret_query_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_QUERY_NAMES or lowered.startswith(SECRET_HEADER_PREFIXES) or is_secret_name(name)


def public_query(query: str) -> list[tuple[str, str]]:
    """Query parameters minus the secret ones, sorted: order never matters to a match."""
    return sorted((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if not is_secret_query_name(k))


def redact_uri(uri: str) -> str:
    """The URI without user info and secret query parameters (the rest stays readable and matchable)."""
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(public_query(parts.query)), ""))


def scrub_url(url: str) -> str:
    """``url`` with user info dropped and every secret query value replaced by ``<redacted>``.

    Unlike :func:`redact_uri` (which drops secret parameters so cassettes match across keys), the names
    stay, so a reader still sees that the URL was authenticated by, say, ``code=``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if not parts.query and netloc == parts.netloc:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(
        f"{quote(k, safe='')}={REDACTED if is_secret_query_name(k) else quote(v, safe='')}" for k, v in pairs
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:<redacted>|[^\s'\"<>()\[\]{}])+")  # idempotent
# ``key=value`` / ``key: value`` pairs in free text whose name says secret (``api_key=abc``, ``sig=...``).
_PAIR_IN_TEXT = re.compile(r"(?<![\w-])([A-Za-z_][\w.-]*)(=|:\s*)([^\s&'\",;)]+)")


def scrub_text(text: str) -> str:
    """Free text (an error message, a log line) with every URL scrubbed and secret-named pairs masked."""
    if not text:
        return text
    text = _URL_IN_TEXT.sub(lambda m: scrub_url(m.group(0)), text)

    def pair(match: re.Match[str]) -> str:
        name, sep, value = match.groups()
        if value == REDACTED or not (is_secret_name(name) or name.lower() in SECRET_QUERY_NAMES):
            return match.group(0)
        if sep != "=" and name.lower() in SECRET_NAME_PARTS:  # prose ("missing key: labels"), not a pair
            return match.group(0)
        return f"{name}{sep}{REDACTED}"

    return _PAIR_IN_TEXT.sub(pair, text)


def scrub_mapping(value: Any) -> Any:
    """JSON-like ``value`` with secret-named fields masked and every string scrubbed (:func:`scrub_text`)."""
    if isinstance(value, Mapping):
        return {k: _scrub_field(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_mapping(v) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def _scrub_field(name: Any, value: Any) -> Any:
    # Only string values are masked by name: ``input_tokens: 12`` is a count, not a credential.
    if isinstance(name, str) and isinstance(value, str) and is_secret_name(name):
        return REDACTED
    return scrub_mapping(value)


def mask_values(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every known secret *value* replaced by ``***``.

    The pattern rules above catch secrets by where they sit (a URL's ``sig=``, an ``api_key=`` pair); a server
    that echoes the key back in prose ("invalid key abc123") is only caught by value. ``secrets`` may hold
    pydantic ``SecretStr`` (how settings keep keys; read by duck typing so this module stays a leaf), plain
    strings (a key already read for a header) or None/empty (ignored).
    """
    if not text:
        return text
    values = []
    for held in secrets:
        reveal = getattr(held, "get_secret_value", None)
        value = reveal() if callable(reveal) else held
        if value:
            values.append(str(value))
    for value in sorted(values, key=len, reverse=True):  # a longer secret first: a prefix must not split it
        text = text.replace(value, VALUE_MASK)
    return text
