"""One mapping of the OpenAI / Anthropic SDK exceptions to cloudderm's typed errors (``_sdk_errors.py``),
checked against the real exception classes of both SDKs."""

from __future__ import annotations

import pytest

from cloudderm.adapters._sdk_errors import map_sdk_error
from cloudderm.errors import ProviderHTTPError, ProviderThrottled, ProviderTimeout

httpx = pytest.importorskip("httpx")


def _status_error(sdk, status: int, body: dict, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    request = httpx.Request("POST", "https://api.example.test/v1/x")
    response = httpx.Response(status, headers=headers, json=body, request=request)
    return sdk.APIStatusError("Error", response=response, body=body)


@pytest.mark.parametrize(("module", "rid_header"), [("openai", "x-request-id"), ("anthropic", "request-id")])
def test_both_sdks_map_alike(module: str, rid_header: str) -> None:
    sdk = pytest.importorskip(module)
    common = {
        "provider": "p",
        "endpoint": "m",
        "where": "api.example.test",
        "timeout_s": 30.0,
        "key_hint": "check api_key",
        "request_id_headers": ("apim-request-id", rid_header),
    }
    throttled = map_sdk_error(
        sdk,
        _status_error(sdk, 429, {"error": {"message": "slow down"}}, {rid_header: "r-1", "retry-after": "7"}),
        **common,
    )
    assert isinstance(throttled, ProviderThrottled)
    assert (str(throttled.detail), throttled.retry_after, throttled.request_id) == (
        "HTTP 429: slow down",
        7.0,
        "r-1",
    )

    refused = map_sdk_error(sdk, _status_error(sdk, 401, {"message": "bad key"}, {}), **common)
    assert isinstance(refused, ProviderHTTPError) and refused.status == 401
    assert "bad key (check api_key)" in str(refused) and refused.request_id is None

    request = httpx.Request("POST", "https://api.example.test/v1/x")
    timeout = map_sdk_error(sdk, sdk.APITimeoutError(request=request), **common)
    assert isinstance(timeout, ProviderTimeout) and "within 30 s" in str(timeout)
    down = map_sdk_error(sdk, sdk.APIConnectionError(request=request), **common)
    assert down is not None and down.retryable and "cannot connect to api.example.test" in str(down)

    assert map_sdk_error(sdk, ValueError("not an API error"), **common) is None
