"""SageMaker faults and configuration: every SDK failure becomes the right typed cloudderm error.

Service errors are crafted as the service sends them (status, ``x-amzn-ErrorType``, JSON body,
``x-amzn-RequestId``) and returned by a botocore ``before-send`` hook, so real botocore parses them and
nothing is sent. Credentials and region come from a faked environment (``sagemaker_support.aws_env``).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("boto3")

from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from cloudderm.adapters.sagemaker import SageMakerClassifier
from cloudderm.config import parse_config
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    PolicyViolation,
    ProviderAuthError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
)
from cloudderm.factory import build_classifier
from cloudderm.retry import RetryPolicy
from tests.adapters.sagemaker_support import (
    FAKE_SECRET,
    REGION,
    answer_with,
    aws_env,  # noqa: F401  (autouse: the fake AWS environment)
    aws_response,
    deterministic_verbose,
    make,
)
from tests.conftest import make_jpeg


# ---- faults, crafted as the service sends them -----------------------------------------------------
def _error(code: str, status: int, body: dict[str, Any], **headers: str) -> Callable[[Any], AWSResponse]:
    def handler(request: Any) -> AWSResponse:
        return aws_response(
            request, status, body, **{"x-amzn-RequestId": f"rid-{code}", "x-amzn-ErrorType": code, **headers}
        )

    return handler


MODEL_ERROR_400 = {
    "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
    "Message": 'Received client error (400) from primary with message "cannot identify image file".',
    "OriginalStatusCode": 400,
    "OriginalMessage": "cannot identify image file",
    "LogStreamArn": "arn:aws:logs:eu-west-2:123456789012:log-group:/aws/sagemaker/Endpoints/derm-ep",
}


@pytest.mark.parametrize(
    ("code", "status", "body", "expected", "retryable"),
    [
        ("ThrottlingException", 400, {"message": "Rate exceeded"}, ProviderThrottled, True),
        ("ModelNotReadyException", 429, {"Message": "Model is loading"}, ProviderThrottled, True),
        ("ModelError", 424, MODEL_ERROR_400, ProviderHTTPError, False),
        (
            "ValidationError",
            400,
            {"message": "Endpoint derm-ep of account 1 not found."},
            ProviderHTTPError,
            False,
        ),
        ("InternalFailure", 500, {"message": "internal failure"}, ProviderHTTPError, True),
        ("ServiceUnavailable", 503, {"message": "unavailable"}, ProviderHTTPError, True),
        ("AccessDeniedException", 403, {"message": "not authorized"}, ProviderHTTPError, False),
    ],
)
def test_service_errors_map_to_typed_errors(code, status, body, expected, retryable) -> None:
    clf = make()
    seen = answer_with(clf, _error(code, status, body))
    with pytest.raises(expected) as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    error = caught.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.request_id == f"rid-{code}"
    assert error.provider == "sm" and error.endpoint == "derm-ep"
    for text in ("derm-ep", REGION, f"rid-{code}", code):
        assert text in str(error)
    if isinstance(error, ProviderHTTPError):
        assert error.status == status
    assert len(seen) == 1, "botocore must not retry: the runner owns retries"


def test_model_error_keeps_the_containers_status_and_message() -> None:
    clf = make()
    answer_with(clf, _error("ModelError", 424, MODEL_ERROR_400))
    with pytest.raises(ProviderHTTPError) as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    error = caught.value
    assert error.status == 424
    assert error.original_status_code == 400
    assert error.original_message == "cannot identify image file"
    assert error.log_stream_arn.endswith("/aws/sagemaker/Endpoints/derm-ep")
    assert "answered 400: cannot identify image file" in str(error)


def test_model_error_from_a_failing_container_is_retryable() -> None:
    clf = make()
    body = {**MODEL_ERROR_400, "OriginalStatusCode": 503, "OriginalMessage": "worker died"}
    answer_with(clf, _error("ModelError", 424, body))
    with pytest.raises(ProviderHTTPError) as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    assert caught.value.retryable and caught.value.original_status_code == 503


def test_throttling_carries_retry_after() -> None:
    clf = make()
    answer_with(clf, _error("ThrottlingException", 400, {"message": "slow down"}, **{"Retry-After": "3"}))
    with pytest.raises(ProviderThrottled) as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    assert caught.value.retry_after == 3.0


def test_rejected_credentials_are_a_provider_auth_error() -> None:
    """Rejected during a run: a final provider failure for that image, not a config error or a bug."""
    clf = make()
    answer_with(clf, _error("UnrecognizedClientException", 403, {"message": "The security token is invalid"}))
    with pytest.raises(ProviderAuthError, match="rejected the credentials") as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    assert (caught.value.status, caught.value.retryable) == (403, False)
    assert "rid-UnrecognizedClientException" in str(caught.value) and REGION in str(caught.value)
    assert FAKE_SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            ReadTimeoutError(endpoint_url="https://runtime.sagemaker.eu-west-2.amazonaws.com/x"),
            ProviderTimeout,
        ),
        (
            EndpointConnectionError(endpoint_url="https://runtime.sagemaker.eu-west-2.amazonaws.com/x"),
            ProviderError,
        ),
    ],
)
def test_transport_failures_are_retryable(raised, expected) -> None:
    clf = make(timeout_s=5)

    def handler(request: Any) -> AWSResponse:
        raise raised

    seen = answer_with(clf, handler)
    with pytest.raises(expected) as caught:
        clf.classify(make_jpeg((9, 9, 9)))
    assert type(caught.value) is expected and caught.value.retryable
    assert "derm-ep" in str(caught.value) and REGION in str(caught.value)
    assert len(seen) == 1


def test_classify_retries_per_policy_then_succeeds() -> None:
    clf = make()
    clf.retry_policy = RetryPolicy(max_retries=2, base_delay_s=0.0)
    answers = iter(
        [_error("ServiceUnavailable", 503, {"message": "x"}), _error("ThrottlingException", 400, {})]
    )

    def handler(request: Any) -> AWSResponse:
        return next(answers, deterministic_verbose)(request)

    seen = answer_with(clf, handler)
    prediction = clf.classify(make_jpeg((7, 7, 7)))
    assert len(seen) == 3
    assert prediction.request_id.startswith("req-")


def test_concurrent_calls_share_one_client_and_stay_in_order() -> None:
    clf = make(concurrency=4)
    answer_with(clf, deterministic_verbose)
    images = [make_jpeg((i * 20, 255 - i * 20, 90)) for i in range(8)]
    expected = [p.labels for p in clf.classify_batch(images)]
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        results[i] = clf.classify(images[i]).labels

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(images))] == expected


def test_no_credentials_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    clf = make()  # building needs no credentials
    with pytest.raises(ConfigError, match="NoCredentialsError") as caught:
        clf.classify(make_jpeg((5, 5, 5)))
    message = str(caught.value)
    assert "derm-ep" in message and REGION in message and "aws sso login" in message


def test_no_region_is_a_config_error_naming_the_fix() -> None:
    clf = make(region=None)
    assert clf.service_facts().region is None
    with pytest.raises(ConfigError, match="set `region:`") as caught:
        clf.classify(make_jpeg((5, 5, 5)))
    assert caught.value.field == "region" and "derm-ep" in str(caught.value)


def test_region_and_profile_come_from_the_boto3_chain(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert make(region=None).service_facts().region == "eu-west-1"
    (tmp_path / "aws-config").write_text("[profile derm]\nregion = eu-central-1\n")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert make(region=None, profile="derm").region == "eu-central-1"


def test_unknown_profile_is_a_config_error() -> None:
    clf = make(profile="no-such-profile")
    assert clf.service_facts().region == REGION
    with pytest.raises(ConfigError, match="no-such-profile") as caught:
        clf.classify(make_jpeg((5, 5, 5)))
    assert caught.value.field == "profile"


def test_client_is_lazy_shared_and_configured() -> None:
    clf = make(concurrency=12, timeout_s=42)
    assert clf._client is None, "constructing must not create a client"
    clients: list[Any] = []
    threads = [threading.Thread(target=lambda: clients.append(clf.client)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in clients}) == 1
    config = clf.client.meta.config
    assert config.max_pool_connections == 12
    assert config.read_timeout == 42
    assert config.retries["total_max_attempts"] == 1
    assert clf.client.meta.region_name == REGION
    clf.close()
    assert clf._client is None


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(MissingDependencyError) as caught:
        make().client  # noqa: B018
    assert str(caught.value) == 'Install boto3 to use the SageMaker adapter: pip install "cloudderm[aws]"'


def test_importing_the_adapter_does_not_import_boto3() -> None:
    code = "import sys, cloudderm.adapters.sagemaker; print(sorted({'boto3', 'botocore'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"response_format": "jumpstart"}, "labels"),
        ({"response_format": "builtin", "labels": ["a", "a"]}, "labels"),
        ({"endpoint_name": "bad_name!"}, "endpoint_name"),
        ({"endpoint_url": "runtime.sagemaker.eu-west-2.amazonaws.com"}, "endpoint_url"),
        ({"response_format": "tensorflow"}, "response_format"),
        ({"instance_count": 0}, "instance_count"),
        ({"model_card": {"label_domain": "sideways"}}, "model_card"),
    ],
)
def test_config_mistakes_name_the_field(overrides: dict[str, Any], field: str) -> None:
    provider = {"adapter": "sagemaker", "endpoint_name": "derm-ep", "region": REGION, **overrides}
    with pytest.raises(ConfigError) as caught:
        config = parse_config({"providers": {"sm": provider}}, source="test.yaml")
        build_classifier("sm", config)
    assert caught.value.provider == "sm"
    assert field in str(caught.value)


def test_built_from_config_with_policy_and_card() -> None:
    raw = {
        "defaults": {"concurrency": 6, "timeout_s": 20},
        "policy": {"allowed_regions": [REGION]},
        "providers": {
            "jumpstart-mobilenet": {
                "adapter": "sagemaker",
                "endpoint_name": "jumpstart-ic-mnv2",
                "region": REGION,
                "instance_type": "ml.m5.xlarge",
                "model_card": {"intended_use": "research", "prohibited_uses": ["medical-diagnosis"]},
            },
            "elsewhere": {"adapter": "sagemaker", "endpoint_name": "ep", "region": "us-east-1"},
        },
    }
    config = parse_config(raw, source="test.yaml")
    clf = build_classifier("jumpstart-mobilenet", config)
    assert isinstance(clf, SageMakerClassifier)
    assert (clf.settings.instance_type, clf.settings.instance_count, clf.timeout_s) == ("ml.m5.xlarge", 1, 20)
    card = clf.governance
    assert card.service.region == REGION and card.model.prohibited_uses == ["medical-diagnosis"]
    assert clf.client.meta.config.max_pool_connections == 6
    with pytest.raises(PolicyViolation, match="us-east-1"):
        build_classifier("elsewhere", config)
