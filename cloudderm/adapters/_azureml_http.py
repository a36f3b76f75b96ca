"""The azure-core pipeline the ``azureml`` adapter scores through; imported only when the first call is made.

Why azure-core and not bare ``requests``: its pipeline gives the Azure-standard retry policy (Retry-After
honoured, exponential backoff), Entra bearer-token handling with caching and refresh, and request ids,
while its ``RequestsTransport`` keeps every byte on ``requests`` so tests (``responses``) and cassettes
see the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline import Pipeline, PipelineResponse
from azure.core.pipeline.policies import (
    AzureKeyCredentialPolicy,
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RequestIdPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest

from cloudderm.adapters._azureml_wire import is_transient
from cloudderm.adapters._http import ca_bundle, pin_environment

__all__ = ["ENTRA_SCOPE", "RETRY_METHODS", "AzureError", "ScoringRetryPolicy", "build_pipeline", "post"]

ENTRA_SCOPE = "https://ml.azure.com/.default"
RETRY_METHODS = frozenset({"POST"})
BACKOFF_FACTOR_S = 0.5
BACKOFF_MAX_S = 30


class ScoringRetryPolicy(RetryPolicy):
    """azure-core's ``RetryPolicy`` narrowed to what is worth repeating for a scoring call.

    azure-core retries any status >= 400 that carries ``Retry-After`` (a 401 or a model's 424 included) and,
    for POST, only 500/503/504 otherwise. Scoring is an idempotent read, so here every transient status
    (408, 429, 500, 502, 503, 504, and a 424 whose model status is one of those) is retried, with or without
    ``Retry-After``, and nothing else is. The sleep is still azure-core's: ``Retry-After`` (or
    ``retry-after-ms``) when the server sent it, exponential backoff otherwise.
    """

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse) -> bool:
        http = response.http_response
        return bool(settings["total"]) and is_transient(http.status_code, http.headers)


def _pooled_transport(url: str, pool_size: int) -> RequestsTransport:
    """A RequestsTransport over a session pinned to the environment once, pooled for the concurrency."""
    session = pin_environment(requests.Session(), url, pool_size=pool_size)
    # azure-core passes its own ``verify`` on every request, overriding the session's: give it the bundle.
    return RequestsTransport(session=session, session_owner=True, connection_verify=ca_bundle())


def build_pipeline(
    *,
    url: str,
    api_key: str | None,
    credential: Any,
    max_retries: int,
    pool_size: int,
    transport: HttpTransport | None = None,
    headers: Mapping[str, str] | None = None,
    user_agent: str = "cloudderm",
) -> tuple[Pipeline, HttpTransport]:
    """The scoring pipeline: request id, headers, user agent, retry, then auth (so each retry re-signs).

    Key auth sends ``Authorization: Bearer <key>``; Entra auth asks ``credential`` for a token with scope
    ``https://ml.azure.com/.default`` (audience https://ml.azure.com) and refuses non-HTTPS URLs.
    """
    transport = transport or _pooled_transport(url, pool_size)
    if api_key is not None:
        auth: Any = AzureKeyCredentialPolicy(AzureKeyCredential(api_key), "Authorization", prefix="Bearer")
    else:
        auth = BearerTokenCredentialPolicy(credential, ENTRA_SCOPE)
    policies = [
        RequestIdPolicy(),
        HeadersPolicy(dict(headers or {})),
        UserAgentPolicy(sdk_moniker=user_agent),
        ScoringRetryPolicy(
            retry_total=max_retries,
            retry_connect=max_retries,
            retry_read=max_retries,
            retry_status=max_retries,
            retry_backoff_factor=BACKOFF_FACTOR_S,
            retry_backoff_max=BACKOFF_MAX_S,
        ),
        auth,
    ]
    return Pipeline(transport=transport, policies=policies), transport


def post(
    pipeline: Pipeline, uri: str, body: bytes, *, connection_timeout: float, read_timeout: float
) -> tuple[HttpRequest, PipelineResponse]:
    """POST one scoring body through ``pipeline`` and read the whole answer; azure-core errors escape.

    It lives here, where azure-core is imported once with this module, so the adapter's per-call path runs
    no ``from azure.core... import`` statements (each one is a module lookup, and a Python-level
    ``_handle_fromlist`` call for a package, on every call).
    """
    request = HttpRequest("POST", uri, content=body)
    response = pipeline.run(
        request,
        connection_timeout=connection_timeout,
        read_timeout=read_timeout,
        retry_on_methods=RETRY_METHODS,
    )
    response.http_response.read()
    return request, response
