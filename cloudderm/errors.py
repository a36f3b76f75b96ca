"""The cloudderm error tree.

Every failure a user can act on is one of these, so callers can catch by meaning rather than by SDK::

    CloudDermError                       base of everything cloudderm raises on purpose
    ├── ConfigError                      bad or missing configuration (names file, provider, field)
    │   ├── MissingCredentialsError      no credentials for a provider (the vendor's fix in the message)
    │   └── DatasetError                 a dataset or labels file cannot be used as given (names the file)
    ├── MissingDependencyError           an optional SDK is not installed (also an ImportError)
    ├── InvalidImageError                an input image cannot be used (names the source and reason)
    ├── PolicyViolation                  the governance policy forbids a provider (raised before any call)
    ├── CompareInterrupted               a comparison stopped early (Ctrl-C); a re-run resumes
    └── ProviderError                    the provider failed to answer usefully
        ├── ProviderHTTPError            an HTTP status from the provider (status, request_id)
        │   └── ProviderAuthError        credentials rejected during the run (401/403, expired)
        ├── ProviderThrottled            429 / throttling / model not ready: retry later
        ├── ProviderTimeout              no answer in time (also a TimeoutError)
        └── ResponseFormatError          an answer that is not the shape we were promised

``ProviderError.retryable`` tells the runner whether sending the same request again is safe and useful;
``retry_after`` carries the provider's own hint in seconds when it gave one. Messages never contain
secret values: adapters build them from endpoint names, regions and request ids only. A missing
credential is a ``ConfigError`` found before any call; credentials the provider *rejects* during a run are a
``ProviderAuthError`` (not retryable), recorded per image like any provider failure. ``install_hint`` is the
one wording of the fix for a missing SDK. See docs/architecture.md ("Errors").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "CloudDermError",
    "CompareInterrupted",
    "ConfigError",
    "DatasetError",
    "InvalidImageError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "PolicyViolation",
    "ProviderAuthError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderThrottled",
    "ProviderTimeout",
    "ResponseFormatError",
    "config_error_from",
    "install_hint",
    "unset_variable_error",
]

BODY_EXCERPT_CHARS = 200


class CloudDermError(Exception):
    """Base class: catch this to handle every deliberate cloudderm failure."""


class ConfigError(CloudDermError):
    """The configuration cannot be used; the message says where (file, provider, field) and the fix."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        provider: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.provider = provider
        self.field = field
        where = []
        if file:
            where.append(f"file {file}")
        if provider:
            where.append(f"provider {provider!r}")
        if field:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class MissingCredentialsError(ConfigError):
    """No credentials for a provider (unset key variable, no Application Default Credentials...).

    A ConfigError, so exit 2: it is found while warming up, before any image is sent.
    """


def unset_variable_error(
    var: str, source: str | None, provider: str | None, field: str | None
) -> ConfigError:
    """The error for a ``${VAR}`` that is still unset when a provider is about to be called."""
    return ConfigError(
        f"environment variable {var} is not set (export {var}=... or use ${{{var}:-default}})",
        file=source,
        provider=provider,
        field=field,
    )


class DatasetError(ConfigError):
    """A dataset or labels file cannot be used as given (exit code 2); names the file and the fix."""


class MissingDependencyError(CloudDermError, ImportError):
    """An optional SDK is missing; the message holds the exact ``pip install`` that fixes it."""


def install_hint(extra: str, what: str) -> str:
    """The one-line fix users see when an optional SDK is missing."""
    return f'Install {what}: pip install "cloudderm[{extra}]"'


def config_error_from(
    error: Any,
    *,
    file: str | None = None,
    provider: str | None = None,
    prefix: str | None = None,
    all_errors: bool = False,
    what: str | None = None,
) -> ConfigError:
    """A pydantic ``ValidationError`` as a ``ConfigError`` naming the field (``prefix.loc``) and the fix.

    One wording everywhere: an unknown key says "unknown field (check the spelling)"; by default only the
    first problem is reported (the one to fix first), ``all_errors`` joins them all; ``what`` names the
    thing being read ("invalid price catalog"). Input values are never quoted, so a mistyped secret cannot
    reach the message. The one copy of this conversion (docs/architecture.md).
    """
    items = error.errors(include_input=False, include_url=False)

    def where(item: Any) -> str:
        loc = ".".join(str(p) for p in item["loc"])
        return ".".join(part for part in (prefix, loc) if part)

    def describe(item: Any) -> str:
        return "unknown field (check the spelling)" if item["type"] == "extra_forbidden" else str(item["msg"])

    lead = f"{what}: " if what else ""
    if all_errors and (len(items) > 1 or what):
        message = "; ".join(f"{where(i) or '(top level)'}: {describe(i)}" for i in items)
        return ConfigError(lead + message, file=file, provider=provider, field=prefix)
    first = items[0]
    return ConfigError(lead + describe(first), file=file, provider=provider, field=where(first) or None)


class InvalidImageError(CloudDermError, ValueError):
    """An input image cannot be prepared; names the source (path or description) and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class PolicyViolation(CloudDermError):
    """The configured governance policy forbids using a provider; raised before any byte is sent."""

    def __init__(self, provider: str, rule: str, fact: str) -> None:
        self.provider = provider
        self.rule = rule
        self.fact = fact
        super().__init__(f"provider {provider!r} violates policy rule {rule!r}: {fact}")


class ProviderError(CloudDermError):
    """A provider call failed. Carries where it failed and whether a retry is safe."""

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        endpoint: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.provider = provider
        self.endpoint = endpoint
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.detail = message
        super().__init__(self._compose(message))

    def _compose(self, message: str) -> str:
        parts = []
        if self.provider:
            parts.append(f"provider {self.provider!r}")
        if self.endpoint:
            parts.append(f"endpoint {self.endpoint}")
        prefix = f"[{', '.join(parts)}] " if parts else ""
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        from cloudderm.redact import scrub_text  # an endpoint URL or a quoted server reply may hold a key

        return scrub_text(f"{prefix}{message}{suffix}")


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status. 5xx are retryable by default, 4xx are not."""

    def __init__(self, message: str, *, status: int, retryable: bool | None = None, **kwargs) -> None:
        self.status = status
        if retryable is None:
            retryable = status >= 500
        super().__init__(f"HTTP {status}: {message}", retryable=retryable, **kwargs)


class ProviderAuthError(ProviderHTTPError):
    """The provider rejected the credentials during the run (HTTP 401/403, an expired or invalid key).

    Not retryable: the same request would be refused again. The message says which credentials and how to
    renew them; it never contains them.
    """

    def __init__(self, message: str, *, status: int = 401, **kwargs) -> None:
        kwargs.setdefault("retryable", False)
        super().__init__(message, status=status, **kwargs)


class ProviderThrottled(ProviderError):
    """The provider asked us to slow down (429, ThrottlingException, model not ready). Retryable."""

    default_retryable = True


class ProviderTimeout(ProviderError, TimeoutError):
    """No answer within the timeout. Retryable: inference calls are idempotent reads."""

    default_retryable = True


class ResponseFormatError(ProviderError):
    """The answer does not match the declared response format. Not retryable: it would not change."""

    def __init__(self, message: str, *, body: str | bytes | None = None, **kwargs) -> None:
        if body is not None:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            excerpt = text[:BODY_EXCERPT_CHARS] + ("…" if len(text) > BODY_EXCERPT_CHARS else "")
            message = f"{message}; body starts: {excerpt!r}"
        super().__init__(message, **kwargs)


class CompareInterrupted(CloudDermError):
    """The run stopped early (Ctrl-C); every answer received is in the store and a re-run resumes.

    ``outcome`` is the runner's ``RunOutcome`` (counts per provider) and ``out`` the output folder.
    """

    def __init__(self, message: str, outcome: Any, out: Path) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.out = out
