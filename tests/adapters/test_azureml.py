"""The ``azureml`` adapter: wire decoders on real and documented payloads, and the whole call through
azure-core's pipeline with ``responses`` standing in for the endpoint (no network, no credentials)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
import responses
import yaml
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError
from azure.core.pipeline.transport import RequestsTransport

from cloudderm.adapters import _azureml_wire as wire
from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings
from cloudderm.classifier import INDEPENDENT_SCORES_WARNING
from cloudderm.config import parse_config
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
)
from cloudderm.factory import build_classifier
from cloudderm.images import prepare
from cloudderm.retry import RetryPolicy, call_with_retries
from cloudderm.testing import ClassifierConformance
from tests.conftest import make_jpeg
from tests.prediction_reference import prediction_before

URI = "https://derm.uksouth.inference.ml.azure.com/score"
KEY = "k3y-S3CRET-abcdef0123456789"
TOKEN = "entra-T0KEN-zyxw9876"
HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]

# Microsoft Learn, reference-automl-images-schema, "Data schema for online scoring" (verbatim values).
DOC_MULTICLASS = [
    {
        "probs": [2.098e-06, 4.783e-08, 0.999, 8.637e-06],
        "labels": ["can", "carton", "milk_bottle", "water_bottle"],
    }
]
DOC_MULTILABEL = [
    {"probs": [0.997, 0.960, 0.982, 0.025], "labels": ["can", "carton", "milk_bottle", "water_bottle"]}
]


class RecordingTransport(RequestsTransport):
    """The real requests transport (so ``responses`` sees it); records retry sleeps instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, duration: float) -> None:
        self.slept.append(duration)


class FakeCredential:
    """Stands in for DefaultAzureCredential: hands out a token and records the scopes asked for."""

    def __init__(self, error: Exception | None = None) -> None:
        self.scopes: list[tuple[str, ...]] = []
        self.error = error

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(TOKEN, int(time.time()) + 3600)


def scores_for(b64: str) -> list[float]:
    """A deterministic distribution per image, so batched and single answers agree."""
    digest = hashlib.sha256(b64.encode()).digest()
    raw = [1 + digest[i] for i in range(len(HAM))]
    return [v / sum(raw) for v in raw]


def automl_endpoint(request) -> tuple[int, dict, str]:
    data = json.loads(request.body)["input_data"]["data"]
    body = [{"probs": scores_for(b64), "labels": HAM} for b64 in data]
    return 200, {"x-request-id": f"req-{len(data)}"}, json.dumps(body)


def transformers_endpoint(request) -> tuple[int, dict, str]:
    data = json.loads(request.body)["input_data"]
    body = [[{"label": lbl, "score": s} for lbl, s in zip(HAM, scores_for(b64))] for b64 in data]
    return 200, {}, json.dumps(body)


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        yield rs


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


def make(transport, **overrides) -> AzureMLClassifier:
    values = {"scoring_uri": URI, "api_key": KEY, "deployment": "blue", "max_retries": 2, "timeout_s": 5.0}
    values.update(overrides)
    return AzureMLClassifier("azure-automl", AzureMLSettings(**values), transport=transport)


# ---- conformance ---------------------------------------------------------------------------------
class TestAzureMLConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, mock, transport):
        mock.add_callback(responses.POST, URI, callback=automl_endpoint)
        clf = make(transport, batch_size=2)
        yield clf
        clf.close()

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [KEY]


# ---- decoders on shared payloads -----------------------------------------------------------------
def test_decodes_shared_doc_sample(provider_payloads):
    body = (provider_payloads / "azureml_automl_ic_response.json").read_bytes()
    [labels] = wire.decode_response(body, 1, "automl")
    assert dict(labels) == {
        "can": 2.098e-06,
        "carton": 4.783e-08,
        "milk_bottle": 0.999,
        "water_bottle": 8.637e-06,
    }


def test_decodes_shared_real_multilabel_response(provider_payloads):
    body = (provider_payloads / "azureml_automl_ic_multilabel_response_real.json").read_bytes()
    [labels] = wire.decode_response(body, 1, "automl")
    assert [label for label, _ in labels] == ["can", "carton", "milk_bottle", "water_bottle"]
    assert sum(score for _, score in labels) == pytest.approx(2.0676, abs=1e-3)


def test_request_matches_shared_template(provider_payloads):
    template = json.loads((provider_payloads / "azureml_automl_ic_request_template.json").read_text())
    ours = json.loads(wire.encode_request([b"\xff\xd8jpeg"], "automl"))
    assert ours.keys() == template.keys()
    assert ours["input_data"].keys() == template["input_data"].keys()
    assert ours["input_data"]["columns"] == template["input_data"]["columns"] == ["image"]
    assert base64.b64decode(ours["input_data"]["data"][0]) == b"\xff\xd8jpeg"


@pytest.mark.parametrize("response_format", ["automl", "transformers"])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_request_body_is_byte_for_byte_the_json_encoding(response_format, count):
    images = [bytes(range(i, 256)) * (i + 1) for i in range(count)]
    data = [base64.b64encode(image).decode("ascii") for image in images]
    payload = (
        {"input_data": data}
        if response_format == "transformers"
        else {"input_data": {"columns": ["image"], "data": data}}
    )
    assert wire.encode_request(images, response_format) == json.dumps(payload).encode("utf-8")


def test_base64_is_the_same_with_or_without_pybase64(monkeypatch, sample_images):
    """The body is byte for byte the same whichever base64 encoder the adapter found (pybase64 or binascii),
    for every length modulo 3, empty input and real JPEGs."""
    import binascii
    import functools

    images = [bytes(range(n % 256)) * (n // 256 + 1) for n in range(0, 70)] + list(sample_images)
    fast = [wire.encode_request([image], "automl") for image in images] + [
        wire.encode_request(images, "automl")
    ]
    monkeypatch.setattr(wire, "_b64encode", functools.partial(binascii.b2a_base64, newline=False))
    slow = [wire.encode_request([image], "automl") for image in images] + [
        wire.encode_request(images, "automl")
    ]
    assert fast == slow


# ---- decoders on inline documented bodies --------------------------------------------------------
@pytest.mark.parametrize("doc", [DOC_MULTICLASS, DOC_MULTILABEL])
def test_decodes_documented_automl_bodies(doc):
    [labels] = wire.decode_response(json.dumps(doc), 1, "automl")
    assert labels == list(zip(doc[0]["labels"], doc[0]["probs"]))


def test_decodes_one_item_per_image_in_order():
    body = json.dumps(
        [{"probs": [0.2, 0.8], "labels": ["nv", "mel"]}, {"probs": [0.7, 0.3], "labels": ["nv", "mel"]}]
    )
    assert wire.decode_response(body, 2, "automl") == [
        [("nv", 0.2), ("mel", 0.8)],
        [("nv", 0.7), ("mel", 0.3)],
    ]


def test_decodes_double_encoded_json():
    assert wire.decode_response(json.dumps(json.dumps(DOC_MULTICLASS)), 1, "automl")[0][2] == (
        "milk_bottle",
        0.999,
    )


def test_decodes_transformers_batches_and_single_flat_list():
    per_image = [
        [{"label": "mel", "score": 0.6}, {"label": "nv", "score": 0.4}],
        [{"label": "nv", "score": 1.0}],
    ]
    assert wire.decode_response(json.dumps(per_image), 2, "transformers") == [
        [("mel", 0.6), ("nv", 0.4)],
        [("nv", 1.0)],
    ]
    assert wire.decode_response(json.dumps(per_image[0]), 1, "transformers") == [[("mel", 0.6), ("nv", 0.4)]]


@pytest.mark.parametrize(
    ("body", "fmt", "expected", "fragment"),
    [
        ("<html>502 Bad Gateway</html>", "automl", 1, "not JSON"),
        ('{"probs": [1.0], "labels": ["nv"]}', "automl", 1, "JSON list"),
        (json.dumps(DOC_MULTICLASS), "automl", 2, "1 results for 2 images"),
        ('[{"label": "nv", "score": 1}]', "automl", 1, "lacks 'probs'"),
        ('[{"probs": [0.5], "labels": ["nv", "mel"]}]', "automl", 1, "equal, non-empty"),
        ('[{"probs": [true], "labels": ["nv"]}]', "automl", 1, "finite numbers"),
        ('[{"probs": [NaN], "labels": ["nv"]}]', "automl", 1, "finite numbers"),
        ('[{"probs": [0.5], "labels": [3]}]', "automl", 1, "labels must be text"),
        ('{"predictions": []}', "transformers", 1, "JSON list"),
        ('[[{"label": "nv"}]]', "transformers", 1, "numeric 'score'"),
        ("[[]]", "transformers", 1, "non-empty list"),
        ('[[{"label": "nv", "score": 1}]]', "transformers", 2, "1 results for 2 images"),
    ],
)
def test_malformed_bodies_raise_response_format_error(body, fmt, expected, fragment):
    with pytest.raises(ResponseFormatError) as info:
        wire.decode_response(body, expected, fmt)
    assert fragment in str(info.value)
    assert "body starts" in str(info.value)
    assert info.value.retryable is False


# ---- the fast paths answer exactly what the slow ones did ----------------------------------------
RECORDED = Path(__file__).parent.parent / "cassettes" / "test_recorded_azureml" / "automl_score.yaml"


def _real_bodies(provider_payloads: Path) -> dict[str, tuple[bytes, str, str]]:
    """name -> (body, response_format, task): Microsoft's documented and real AutoML answers, the
    recorded two-image answer, and the real multiclass answer as a transformers top-k list."""
    recorded = yaml.safe_load(RECORDED.read_text())["interactions"][0]["response"]["body"]
    doc = json.loads((provider_payloads / "azureml_automl_ic_response.json").read_text())[0]
    top = sorted(zip(doc["labels"], doc["probs"]), key=lambda pair: pair[1], reverse=True)[:3]
    return {
        "doc multiclass": (
            (provider_payloads / "azureml_automl_ic_response.json").read_bytes(),
            "automl",
            "multiclass",
        ),
        "real multilabel": (
            (provider_payloads / "azureml_automl_ic_multilabel_response_real.json").read_bytes(),
            "automl",
            "multilabel",
        ),
        "recorded, two images": (recorded.encode(), "automl", "multiclass"),
        "transformers top 3": (
            json.dumps([[{"label": label, "score": score} for label, score in top]]).encode(),
            "transformers",
            "multiclass",
        ),
    }


@pytest.mark.parametrize(
    "name", ["doc multiclass", "real multilabel", "recorded, two images", "transformers top 3"]
)
def test_real_answers_decode_and_finish_as_the_slow_path_did(
    mock, transport, provider_payloads, sample_images, name
):
    """decode_response's C-level check and _finish's one validation pass give the same pairs and the same
    Prediction (model_dump) as the per-value loop and the two-pass _finish, on real Azure ML answers."""
    body, response_format, task = _real_bodies(provider_payloads)[name]
    mock.add(
        responses.POST, URI, body=body, headers={"x-request-id": "req-real"}, content_type="application/json"
    )
    clf = make(transport, response_format=response_format, task=task, batch_size=2)
    parsed = json.loads(body)
    limit = clf.image_limits().max_bytes
    images = [prepare(image, max_bytes=limit) for image in sample_images[: len(parsed)]]
    raws = clf._infer(images)
    if response_format == "automl":
        assert [raw.labels for raw in raws] == [
            [(label, float(prob)) for label, prob in zip(item["labels"], item["probs"])] for item in parsed
        ]
    for image, raw in zip(images, raws):
        assert all(type(label) is str and type(score) is float for label, score in raw.labels)
        for _ in range(2):  # the second time, the taxonomy answers from what it remembered
            want = prediction_before(clf, image, raw, 3.0, len(images)).model_dump()
            assert clf._finish(image, raw, 3.0, len(images)).model_dump() == want
    for image, raw, got in zip(images, raws, clf.classify_prepared(images)):
        want = prediction_before(clf, image, raw, got.latency_ms, len(images))
        assert got.model_dump() == want.model_dump()
        assert got.request_id == "req-real" and got.provider_details["deployment"] == "blue"


# ---- small wire helpers --------------------------------------------------------------------------
def test_region_and_endpoint_from_scoring_uri():
    assert wire.region_from_uri(URI) == "uksouth"
    assert wire.endpoint_from_uri(
        "https://gep-aipoc-endpoint.swedencentral.inference.ml.azure.com/score"
    ) == ("gep-aipoc-endpoint")
    assert wire.region_from_uri("http://127.0.0.1:8080/score") is None


def test_request_id_prefers_x_request_id_over_deprecated_header():
    assert wire.request_id_from({"X-Request-Id": "new", "x-ms-request-id": "old"}) == "new"
    assert wire.request_id_from({"x-ms-request-id": "old"}) == "old"
    assert wire.request_id_from({}) is None


def test_retry_after_in_seconds_http_date_and_milliseconds():
    assert wire.retry_after_from({"Retry-After": "7"}) == 7.0
    assert wire.retry_after_from({"retry-after-ms": "250"}) == 0.25
    assert wire.retry_after_from({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert wire.retry_after_from({"Retry-After": "soon"}) is None


def test_transient_statuses_and_model_errors():
    assert all(wire.is_transient(s, {}) for s in (408, 429, 500, 502, 503, 504))
    assert not any(wire.is_transient(s, {}) for s in (400, 401, 403, 404, 413, 424))
    assert wire.is_transient(424, {"ms-azureml-model-error-statuscode": "503"})
    assert not wire.is_transient(424, {"ms-azureml-model-error-statuscode": "400"})


def test_split_requests_by_count_and_by_size():
    assert wire.split_requests([10] * 5, batch_size=2, response_format="automl") == [
        range(0, 2),
        range(2, 4),
        range(4, 5),
    ]
    big = 600_000  # base64 ~800 kB: two would exceed 1.5 MB
    groups = wire.split_requests([big, big, 10, 10], batch_size=8, response_format="automl")
    assert groups == [range(0, 1), range(1, 4)]
    for group in groups:
        body = wire.encode_request([b"x" * [big, big, 10, 10][i] for i in group], "automl")
        assert len(body) <= wire.MAX_REQUEST_BYTES


# ---- the call: key path --------------------------------------------------------------------------
def test_key_auth_request_on_the_wire(mock, transport, sample_images):
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    clf = make(transport)
    prediction = clf.classify(sample_images[1])
    sent = mock.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["azureml-model-deployment"] == "blue"
    assert sent.headers["Content-Type"] == "application/json"
    body = json.loads(sent.body)
    assert body["input_data"]["columns"] == ["image"]
    prepared = prepare(sample_images[1], max_bytes=clf.image_limits().max_bytes)
    assert base64.b64decode(body["input_data"]["data"][0]) == prepared.data
    assert b"CanaryCamera" not in prepared.data  # EXIF (with GPS) never leaves the machine
    assert prediction.request_id == "req-1"
    assert prediction.model == "derm/blue"
    assert prediction.provider_details == {"deployment": "blue", "http_attempts": 1}
    expected = dict(zip(HAM, scores_for(body["input_data"]["data"][0])))
    assert {ls.label: ls.score for ls in prediction.labels} == pytest.approx(expected)


def test_batches_split_into_requests_of_batch_size_in_order(mock, transport):
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    clf = make(transport, batch_size=2)
    images = [make_jpeg((40 * i, 90, 200 - 30 * i)) for i in range(5)]
    predictions = clf.classify_batch(images)
    sizes = [len(json.loads(c.request.body)["input_data"]["data"]) for c in mock.calls]
    assert sizes == [2, 2, 1]
    sent = [b64 for c in mock.calls for b64 in json.loads(c.request.body)["input_data"]["data"]]
    for prediction, b64 in zip(predictions, sent):
        assert prediction.image_sha256 == hashlib.sha256(base64.b64decode(b64)).hexdigest()
        assert {ls.label: ls.score for ls in prediction.labels} == pytest.approx(
            dict(zip(HAM, scores_for(b64)))
        )


def test_transformers_format_on_the_wire(mock, transport, sample_images):
    mock.add_callback(responses.POST, URI, callback=transformers_endpoint)
    clf = make(transport, response_format="transformers", batch_size=3)
    predictions = clf.classify_batch(sample_images)
    body = json.loads(mock.calls[0].request.body)
    assert isinstance(body["input_data"], list) and len(body["input_data"]) == 3
    assert [p.top.score for p in predictions] == [max(scores_for(b64)) for b64 in body["input_data"]]


def test_transformers_top5_answer_is_marked_truncated_not_unnormalised(mock, transport, sample_images):
    """A transformers pipeline answers its top 5 of 7 classes: say so, and do not call it unnormalised."""

    def top5(request) -> tuple[int, dict, str]:
        (b64,) = json.loads(request.body)["input_data"]
        ranked = sorted(zip(HAM, scores_for(b64)), key=lambda ls: ls[1], reverse=True)[:5]
        return 200, {}, json.dumps([[{"label": lbl, "score": s} for lbl, s in ranked]])

    mock.add_callback(responses.POST, URI, callback=top5)
    prediction = make(transport, response_format="transformers").classify(sample_images[0])
    assert len(prediction.labels) == 5 and prediction.provider_details["truncated_labels"] is True
    assert any(w.startswith("only 5 labels returned") for w in prediction.warnings)
    assert not any("not normalised" in w for w in prediction.warnings)

    mock.reset()
    mock.add_callback(responses.POST, URI, callback=transformers_endpoint)
    whole = make(transport, response_format="transformers").classify(sample_images[0])
    assert len(whole.labels) == 7 and "truncated_labels" not in whole.provider_details
    assert not any(w.startswith("only") for w in whole.warnings)


def test_deployment_that_answered_is_recorded(mock, transport, sample_images):
    mock.add(responses.POST, URI, json=DOC_MULTICLASS, headers={"Azureml-Model-Deployment": "green"})
    prediction = make(transport).classify(sample_images[0])
    assert prediction.provider_details["deployment"] == "green"


def test_multilabel_task_marks_scores_independent(mock, transport, sample_images):
    mock.add(responses.POST, URI, json=DOC_MULTILABEL)
    prediction = make(transport, task="multilabel").classify(sample_images[0])
    assert INDEPENDENT_SCORES_WARNING in prediction.warnings
    assert not any("not normalised" in w for w in prediction.warnings)


# ---- the call: Entra path ------------------------------------------------------------------------
def test_entra_auth_uses_ml_audience_token(mock, transport, sample_images):
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    credential = FakeCredential()
    settings = AzureMLSettings(scoring_uri=URI, auth="entra", max_retries=0)
    clf = AzureMLClassifier("entra", settings, credential=credential, transport=transport)
    clf.classify(sample_images[0])
    clf.classify(sample_images[2])
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert credential.scopes == [("https://ml.azure.com/.default",)]  # cached for the second call


def test_entra_credential_failure_is_a_named_provider_error(mock, transport, sample_images):
    credential = FakeCredential(ClientAuthenticationError("AzureCliCredential: Please run 'az login'"))
    clf = AzureMLClassifier(
        "entra", AzureMLSettings(scoring_uri=URI, auth="entra"), credential=credential, transport=transport
    )
    with pytest.raises(ProviderError) as info:
        clf.classify(sample_images[0])
    assert "Entra token" in str(info.value) and "az login" in str(info.value)
    assert "entra" in str(info.value) and URI in str(info.value)
    assert len(mock.calls) == 0


# ---- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "headers", "error_type", "fragment", "transient"),
    [
        (400, {}, ProviderHTTPError, "request refused", False),
        (401, {}, ProviderHTTPError, "primary or secondary key", False),
        (403, {}, ProviderHTTPError, "network access", False),
        (404, {}, ProviderHTTPError, "positive traffic", False),
        (408, {}, ProviderTimeout, "request_timeout_ms", True),
        (413, {}, ProviderHTTPError, "payload too large", False),
        (
            424,
            {"ms-azureml-model-error-statuscode": "400", "ms-azureml-model-error-reason": "model_error"},
            ProviderHTTPError,
            "model container answered 400 (reason model_error)",
            False,
        ),
        (424, {"ms-azureml-model-error-statuscode": "503"}, ProviderHTTPError, "answered 503", True),
        (429, {}, ProviderThrottled, "too many requests", True),
        (500, {}, ProviderHTTPError, "server error", True),
        (502, {}, ProviderHTTPError, "server error", True),
        (503, {}, ProviderHTTPError, "server error", True),
        (504, {}, ProviderHTTPError, "server error", True),
    ],
)
def test_every_error_status(mock, transport, sample_images, status, headers, error_type, fragment, transient):
    mock.add(
        responses.POST,
        URI,
        status=status,
        headers={"x-request-id": "rid-9", **headers},
        body=f"failure while using key {KEY}",
    )
    clf = make(transport, max_retries=2)
    with pytest.raises(error_type) as info:
        clf.classify(sample_images[0])
    error = info.value
    assert fragment in str(error)
    assert "azure-automl" in str(error) and URI in str(error) and "rid-9" in str(error)
    assert KEY not in str(error)
    assert error.retryable is False  # the pipeline already retried: the runner must not multiply
    assert len(mock.calls) == (3 if transient else 1)
    if transient:
        assert "after 3 attempts" in str(error)
    if isinstance(error, ProviderHTTPError):
        assert error.status == status


def test_entra_403_hints_at_the_scoring_role(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=403)
    clf = AzureMLClassifier(
        "entra",
        AzureMLSettings(scoring_uri=URI, auth="entra"),
        credential=FakeCredential(),
        transport=transport,
    )
    with pytest.raises(ProviderHTTPError, match=r"onlineEndpoints/score/action"):
        clf.classify(sample_images[0])


def test_retry_after_is_honoured(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=429, headers={"Retry-After": "7"})
    mock.add(responses.POST, URI, status=503, headers={"retry-after-ms": "250"})
    mock.add(responses.POST, URI, json=DOC_MULTICLASS)
    prediction = make(transport, max_retries=2).classify(sample_images[0])
    assert transport.slept == [7.0, 0.25]
    assert prediction.provider_details["http_attempts"] == 3


def test_exponential_backoff_without_retry_after(mock, transport, sample_images):
    for _ in range(3):
        mock.add(responses.POST, URI, status=503)
    mock.add(responses.POST, URI, json=DOC_MULTICLASS)
    make(transport, max_retries=3).classify(sample_images[0])
    assert transport.slept == [1.0, 2.0]  # azure-core: no wait before the first retry, then 0.5 * 2**n


def test_throttled_error_carries_retry_after_when_retries_run_out(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=429, headers={"Retry-After": "3"})
    with pytest.raises(ProviderThrottled) as info:
        make(transport, max_retries=0).classify(sample_images[0])
    assert info.value.retry_after == 3.0
    assert len(mock.calls) == 1 and transport.slept == []


def test_runner_style_retries_do_not_multiply_attempts(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=503)
    clf = AzureMLClassifier(
        "azure-automl",
        AzureMLSettings(scoring_uri=URI, api_key=KEY, max_retries=2),
        transport=transport,
        retry_policy=RetryPolicy(max_retries=2),
    )
    runner_sleeps: list[float] = []
    prepared = [clf.prepare(sample_images[0])]
    with pytest.raises(ProviderHTTPError):
        call_with_retries(
            lambda: clf.classify_prepared(prepared), clf.retry_policy, sleep=runner_sleeps.append
        )
    with pytest.raises(ProviderHTTPError):
        clf.classify(sample_images[0])
    assert len(mock.calls) == 6  # 3 attempts per call, not 9
    assert runner_sleeps == []


def test_malformed_body_names_provider_endpoint_and_request_id(mock, transport, sample_images):
    mock.add(responses.POST, URI, body="Internal error: worker died", headers={"x-request-id": "rid-7"})
    with pytest.raises(ResponseFormatError) as info:
        make(transport).classify(sample_images[0])
    text = str(info.value)
    assert "not JSON" in text and "worker died" in text and "azure-automl" in text and "rid-7" in text


def test_wrong_result_count_is_a_format_error(mock, transport, sample_images):
    mock.add(responses.POST, URI, json=DOC_MULTICLASS)
    with pytest.raises(ResponseFormatError, match="1 results for 3 images"):
        make(transport, batch_size=3).classify_batch(sample_images)


@pytest.mark.parametrize(
    ("raised", "error_type", "fragment"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), ProviderTimeout, "within 5 s"),
        (requests.exceptions.ConnectTimeout("connect timed out"), ProviderTimeout, "within 5 s"),
        (requests.exceptions.ConnectionError("Name or service not known"), ProviderError, "could not send"),
    ],
)
def test_transport_failures_are_retried_then_mapped(
    mock, transport, sample_images, raised, error_type, fragment
):
    mock.add(responses.POST, URI, body=raised)
    with pytest.raises(error_type, match=fragment) as info:
        make(transport, max_retries=1).classify(sample_images[0])
    assert info.value.retryable is False
    assert len(mock.calls) == 2


# ---- discovery -----------------------------------------------------------------------------------
class FakeEndpoints:
    def __init__(self) -> None:
        self.gets: list[str] = []
        self.key_gets: list[str] = []

    def get(self, name: str):
        time.sleep(0.01)  # widen the race the lock must win
        self.gets.append(name)
        return SimpleNamespace(name=name, scoring_uri=URI, auth_mode="key")

    def get_keys(self, name: str):
        self.key_gets.append(name)
        return SimpleNamespace(primary_key=KEY, secondary_key="other")


DISCOVERY = {"subscription_id": "sub", "resource_group": "rg", "workspace": "ws", "endpoint_name": "derm"}


def test_discovery_through_an_ml_client_happens_once(mock, transport):
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    ml_client = SimpleNamespace(online_endpoints=FakeEndpoints())
    clf = AzureMLClassifier("found", AzureMLSettings(**DISCOVERY), ml_client=ml_client, transport=transport)
    assert clf.model_id == "derm" and clf.region is None  # nothing fetched before the first call
    images = [make_jpeg((10 * i, 50, 90)) for i in range(6)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        predictions = list(pool.map(clf.classify, images))
    assert len(predictions) == 6
    assert ml_client.online_endpoints.gets == ["derm"]
    assert ml_client.online_endpoints.key_gets == ["derm"]
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"
    assert clf.region == "uksouth"


def test_discovered_key_is_scrubbed_from_errors(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=400, body=f"bad request for {KEY}")
    ml_client = SimpleNamespace(online_endpoints=FakeEndpoints())
    clf = AzureMLClassifier("found", AzureMLSettings(**DISCOVERY), ml_client=ml_client, transport=transport)
    with pytest.raises(ProviderHTTPError) as info:
        clf.classify(sample_images[0])
    assert KEY not in str(info.value) and "***" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("azure.ai") is not None, reason="azure-ai-ml is installed here")
def test_discovery_without_azure_ai_ml_names_the_extra(transport, sample_images):
    clf = AzureMLClassifier("found", AzureMLSettings(**DISCOVERY, auth="entra"), credential=FakeCredential())
    with pytest.raises(MissingDependencyError, match=r'pip install "cloudderm\[azure-ml\]"'):
        clf.classify(sample_images[0])


# ---- settings, config and governance -------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"api_key": KEY}, "scoring_uri"),
        ({"scoring_uri": URI}, "api_key"),
        ({"scoring_uri": "http://derm.uksouth.inference.ml.azure.com/score", "api_key": KEY}, "scoring_uri"),
        ({"scoring_uri": "http://127.0.0.1:8080/score", "auth": "entra"}, "scoring_uri"),
        ({"scoring_uri": URI, "auth": "entra", "api_key": KEY}, "api_key"),
        ({"subscription_id": "s", "workspace": "w", "endpoint_name": "e"}, "scoring_uri"),
    ],
)
def test_invalid_settings_are_config_errors(values, field):
    with pytest.raises(ConfigError) as info:
        AzureMLClassifier("bad", AzureMLSettings(**values))
    assert info.value.field == field and info.value.provider == "bad"
    assert KEY not in str(info.value)


def test_loopback_http_is_allowed_for_emulators(mock, transport, sample_images):
    local = "http://127.0.0.1:5001/score"
    mock.add(responses.POST, local, json=DOC_MULTICLASS)
    clf = make(transport, scoring_uri=local)
    assert clf.classify(sample_images[0]).top.label == "milk_bottle"
    assert clf.region is None


def test_built_from_yaml_config_with_env_key_and_region_policy():
    config = parse_config(
        {
            "policy": {"allowed_regions": ["uksouth"]},
            "providers": {
                "azure-automl": {
                    "adapter": "azureml",
                    "scoring_uri": URI,
                    "api_key": "${AZUREML_API_KEY}",
                    "deployment": "blue",
                    "instance_type": "Standard_DS3_v2",
                    "instance_count": 2,
                }
            },
        },
        env={"AZUREML_API_KEY": KEY},
    )
    clf = build_classifier("azure-automl", config)
    assert isinstance(clf, AzureMLClassifier)
    assert clf.settings.instance_type == "Standard_DS3_v2" and clf.settings.instance_count == 2
    assert clf.settings.api_key.get_secret_value() == KEY
    assert KEY not in repr(clf.settings) and KEY not in str(clf.settings)
    card = clf.governance
    assert (card.service.vendor, card.service.region, card.service.data_leaves_machine) == (
        "azure",
        "uksouth",
        True,
    )


def test_unknown_field_is_reported_by_name():
    with pytest.raises(ConfigError, match="scoring_url"):
        parse_config({"providers": {"a": {"adapter": "azureml", "scoring_url": URI, "api_key": "x"}}})


def test_model_card_from_config():
    clf = AzureMLClassifier(
        "carded",
        AzureMLSettings(
            scoring_uri=URI,
            api_key=KEY,
            model_card={"intended_use": "research", "prohibited_uses": ["medical-diagnosis"]},
        ),
    )
    facts = clf.governance.model
    assert facts.model_id == "derm" and facts.intended_use == "research"
    assert facts.prohibited_uses == ["medical-diagnosis"]


def test_large_image_is_prepared_to_fit_one_request(mock, transport):
    import io

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    make(transport).classify(buf.getvalue())
    assert len(mock.calls[0].request.body) <= wire.MAX_REQUEST_BYTES


def test_retry_after_on_a_non_transient_status_is_not_retried(mock, transport, sample_images):
    mock.add(responses.POST, URI, status=401, headers={"Retry-After": "1"})
    with pytest.raises(ProviderHTTPError):
        make(transport, max_retries=3).classify(sample_images[0])
    assert len(mock.calls) == 1 and transport.slept == []  # azure-core alone would retry this 401


def test_default_pooled_transport_and_reopen_after_close(mock, sample_images):
    mock.add_callback(responses.POST, URI, callback=automl_endpoint)
    clf = AzureMLClassifier("pooled", AzureMLSettings(scoring_uri=URI, api_key=KEY, concurrency=16))
    with clf:
        clf.classify(sample_images[0])
    assert clf._pipeline is None
    clf.classify(sample_images[1])
    clf.close()
    assert len(mock.calls) == 2
    assert all(c.request.headers["Authorization"] == f"Bearer {KEY}" for c in mock.calls)
