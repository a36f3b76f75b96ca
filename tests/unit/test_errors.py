"""The error tree: inheritance, retryability defaults and message content."""

from __future__ import annotations

from cloudderm import errors as e


def test_tree() -> None:
    assert issubclass(e.ConfigError, e.CloudDermError)
    assert issubclass(e.MissingDependencyError, ImportError)
    assert issubclass(e.InvalidImageError, ValueError)
    assert issubclass(e.ProviderTimeout, TimeoutError) and issubclass(e.ProviderTimeout, e.ProviderError)
    for cls in (e.ProviderHTTPError, e.ProviderThrottled, e.ResponseFormatError):
        assert issubclass(cls, e.ProviderError)


def test_retryable_defaults() -> None:
    assert e.ProviderHTTPError("x", status=503).retryable
    assert not e.ProviderHTTPError("x", status=400).retryable
    assert e.ProviderThrottled("x").retryable and e.ProviderTimeout("x").retryable
    assert not e.ResponseFormatError("x").retryable


def test_messages_name_provider_endpoint_request_id() -> None:
    err = e.ProviderHTTPError("model error", status=424, provider="jump", endpoint="ep-1", request_id="req-9")
    assert str(err) == "[provider 'jump', endpoint ep-1] HTTP 424: model error (request id req-9)"
    assert err.status == 424


def test_response_format_error_quotes_at_most_200_chars() -> None:
    err = e.ResponseFormatError("not JSON", body="x" * 500)
    assert "x" * 200 in str(err) and "x" * 201 not in str(err)


def test_policy_and_image_errors() -> None:
    assert "rule 'allowed_regions'" in str(e.PolicyViolation("p", "allowed_regions", "us-east-1"))
    err = e.InvalidImageError("a.jpg", "empty")
    assert (err.source, err.reason, str(err)) == ("a.jpg", "empty", "a.jpg: empty")
