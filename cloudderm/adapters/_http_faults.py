"""HTTP statuses and transport failures -> the cloudderm error tree, for the plain-``requests`` adapters.

Custom Vision, Cloud Vision (REST) and KServe v2 speak plain HTTP/JSON; each adapter decodes its own error
body (a pure function in its module) and hands the status, headers and the decoded message here, so 401/403,
429 with ``Retry-After``, 413 and 5xx mean the same thing whichever service said them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from cloudderm.errors import ProviderError, ProviderHTTPError, ProviderThrottled, ProviderTimeout
from cloudderm.redact import mask_values

__all__ = ["error_for_status", "retry_after_from", "transport_error"]

MESSAGE_CHARS = 200


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None when absent or unparseable."""
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    try:
        value = float(lowered.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    message: str,
    *,
    provider: str | None,
    endpoint: str | None,
    auth_hint: str,
    size_hint: str | None = None,
    not_found_hint: str | None = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
) -> ProviderError:
    """The typed error for a non-2xx answer; ``message`` is what the service said (already decoded).

    401/403 carry ``auth_hint`` (how to fix the credential) and never quote the body; 429 is
    ``ProviderThrottled`` with the server's ``Retry-After``; 408/504 are timeouts; 413 (and a 400 the
    adapter recognised as a size refusal) names the size limit; 5xx are retryable.
    """
    where: dict[str, Any] = {"provider": provider, "endpoint": endpoint, "request_id": request_id}
    said = mask_values(message, secrets)[:MESSAGE_CHARS].strip()
    quoted = f"; the service said: {said!r}" if said else ""
    if status in (401, 403):
        meaning = "unauthorized" if status == 401 else "forbidden"
        return ProviderHTTPError(f"{meaning}: {auth_hint}", status=status, **where)
    if status == 429:
        return ProviderThrottled(
            f"HTTP 429: throttled or quota exhausted{quoted}",
            retry_after=retry_after_from(headers),
            **where,
        )
    if status in (408, 504):
        return ProviderTimeout(f"HTTP {status}: the service timed out{quoted}", **where)
    if status == 413 and size_hint:
        return ProviderHTTPError(f"payload too large: {size_hint}{quoted}", status=status, **where)
    if status == 404 and not_found_hint:
        return ProviderHTTPError(f"not found: {not_found_hint}{quoted}", status=status, **where)
    meaning = "server error" if status >= 500 else "request refused"
    return ProviderHTTPError(f"{meaning}{quoted}", status=status, **where)


def transport_error(error: Exception, *, provider: str, endpoint: str, timeout_s: float) -> ProviderError:
    """A ``requests`` connection or timeout failure as a retryable ProviderError (idempotent reads)."""
    import requests

    where = {"provider": provider, "endpoint": endpoint}
    if isinstance(error, requests.exceptions.Timeout):
        return ProviderTimeout(f"no answer within {timeout_s:g} s (timeout_s)", **where)
    return ProviderError(f"cannot reach the service: {type(error).__name__}", retryable=True, **where)
