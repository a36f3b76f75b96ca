"""Typed errors from the OpenAI and Anthropic Python SDKs, which share one exception design.

Why one copy: both SDKs raise ``APITimeoutError``, ``APIConnectionError`` and ``APIStatusError`` (with
``status_code``, a decoded ``body`` and the ``response`` headers), so mapping them to cloudderm's
``ProviderTimeout`` / ``ProviderError`` / ``ProviderThrottled`` / ``ProviderHTTPError`` is the same
logic; only the SDK module, the request-id header names and the hint for a refused key differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloudderm.errors import ProviderError, ProviderHTTPError, ProviderThrottled, ProviderTimeout

__all__ = ["error_message", "map_sdk_error", "request_id", "retry_after"]


def map_sdk_error(
    sdk: Any,
    error: BaseException,
    *,
    provider: str,
    endpoint: str,
    where: str,
    timeout_s: float,
    key_hint: str,
    request_id_headers: Sequence[str],
) -> ProviderError | None:
    """The cloudderm error for one SDK exception, or None when it is not one of the SDK's API errors.

    ``where`` names the server in messages (a host or URL, never a key); ``key_hint`` is appended to a
    401/403 message (which setting or variable holds the key).
    """
    context: dict[str, Any] = {"provider": provider, "endpoint": endpoint}
    if isinstance(error, sdk.APITimeoutError):
        return ProviderTimeout(f"no answer from {where} within {timeout_s:g} s (timeout_s)", **context)
    if isinstance(error, sdk.APIConnectionError):
        return ProviderError(f"cannot connect to {where}: {type(error).__name__}", retryable=True, **context)
    if isinstance(error, sdk.APIStatusError):
        status = error.status_code
        message = error_message(error)
        wait = retry_after(error)
        rid = request_id(error, request_id_headers)
        if status == 429:
            return ProviderThrottled(f"HTTP 429: {message}", retry_after=wait, request_id=rid, **context)
        if status in (401, 403):
            message += f" ({key_hint})"
        return ProviderHTTPError(message, status=status, retry_after=wait, request_id=rid, **context)
    return None


def error_message(error: Any) -> str:
    """The server's own message (``{"error": {"message": ...}}`` or ``{"message": ...}``), at most 300
    characters; the exception's name when the body says nothing."""
    body = error.body if isinstance(getattr(error, "body", None), dict) else {}
    inner = body.get("error", body)
    message = inner.get("message") if isinstance(inner, dict) else None
    return str(message or getattr(error, "message", "") or type(error).__name__)[:300]


def request_id(error: Any, headers: Sequence[str]) -> str | None:
    """The first of ``headers`` the error's response carries."""
    found = getattr(getattr(error, "response", None), "headers", None) or {}
    return next((found[name] for name in headers if found.get(name)), None)


def retry_after(error: Any) -> float | None:
    """``Retry-After`` in seconds, when the response gave a number."""
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
