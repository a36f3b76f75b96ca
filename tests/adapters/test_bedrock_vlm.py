"""The ``bedrock`` adapter through boto3 Converse (SigV4) against a loopback server with the real envelope."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("boto3")

from cloudderm.adapters.bedrock_vlm import BedrockClassifier, BedrockSettings
from cloudderm.errors import ProviderHTTPError, ProviderThrottled
from tests.adapters.vlm_support import Canned, canned_server
from tests.conftest import isolate_aws

MODEL = "amazon.nova-pro-v1:0"


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch, tmp_path):
    isolate_aws(monkeypatch, tmp_path, "AKIAEXAMPLEBEDROCK00", "not-a-real-secret-key")


def _recorded(provider_payloads: Path, name: str) -> dict:
    return json.loads((provider_payloads / "vlm" / name).read_text())


def _classify(body: dict, image: bytes, status: int = 200, headers: dict | None = None):
    app = Canned(body, status, headers=headers)
    with canned_server(app) as url:
        settings = BedrockSettings(model=MODEL, region="us-east-1", endpoint_url=url)
        with BedrockClassifier("nova", settings) as clf:
            return clf.classify(image), app, clf


def test_recorded_converse_envelope_decodes(provider_payloads, sample_images) -> None:
    body = _recorded(provider_payloads, "bedrock_converse-image-bytes_response.json")
    prediction, app, clf = _classify(body, sample_images[0])
    assert prediction.outcome == "unparseable"  # the recording describes another image in prose
    assert (prediction.usage.input_tokens, prediction.usage.output_tokens) == (1839, 49)
    assert app.targets == ["/model/amazon.nova-pro-v1%3A0/converse"]
    assert "AWS4-HMAC-SHA256" in app.request_headers[0].get("authorization")  # SigV4-signed
    recorded = _recorded(provider_payloads, "bedrock_converse-image-bytes_request.json")
    sent = app.requests[0]
    recorded_image = next(b for b in recorded["messages"][0]["content"] if "image" in b)
    sent_image = next(b for b in sent["messages"][0]["content"] if "image" in b)
    assert set(sent_image["image"]) == set(recorded_image["image"]) == {"format", "source"}
    assert base64.b64decode(sent_image["image"]["source"]["bytes"]) == clf.prepare(sample_images[0]).data


def test_dermatology_answer_inside_the_real_envelope(provider_payloads, sample_images) -> None:
    """Only ``output.message.content[0].text`` of the recorded response was changed."""
    body = _recorded(provider_payloads, "bedrock_converse-image-bytes_response.json")
    body["output"]["message"]["content"][0]["text"] = '{"label": "bkl", "confidence": 0.4}'
    prediction, _, _ = _classify(body, sample_images[0])
    assert (prediction.outcome, prediction.canonical, prediction.top.score) == ("answered", "bkl", 0.4)
    assert prediction.cost_usd == pytest.approx((1839 * 0.8 + 49 * 3.2) / 1e6, rel=1e-12)


def test_content_filtered_stop_reason_is_an_abstention(provider_payloads, sample_images) -> None:
    """Only stopReason of the recorded response was changed."""
    body = _recorded(provider_payloads, "bedrock_converse-image-bytes_response.json")
    body["stopReason"] = "content_filtered"
    prediction, _, _ = _classify(body, sample_images[0])
    assert prediction.outcome == "abstained" and "content_filtered" in prediction.reason


def test_throttling_is_retryable_and_validation_is_not(sample_images) -> None:
    throttled = {"message": "Too many requests, please wait before trying again."}
    with pytest.raises(ProviderThrottled):
        _classify(throttled, sample_images[0], 429, {"x-amzn-ErrorType": "ThrottlingException"})
    invalid = {"message": "The model returned the following errors: bad image"}
    with pytest.raises(ProviderHTTPError) as info:
        _classify(invalid, sample_images[0], 400, {"x-amzn-ErrorType": "ValidationException"})
    assert not info.value.retryable and "ValidationException" in str(info.value)
