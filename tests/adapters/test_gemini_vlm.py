"""The ``gemini`` adapter through google-genai on a loopback server with the real generateContent bodies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

pytest.importorskip("google.genai")

from cloudderm.adapters.gemini_vlm import GeminiClassifier, GeminiSettings
from cloudderm.errors import ProviderHTTPError, ProviderThrottled
from tests.adapters.vlm_support import Canned, canned_server

KEY = "AIza-test-not-a-real-key-0123456789"


def _recorded(provider_payloads: Path, name: str) -> dict:
    return json.loads((provider_payloads / "vlm" / name).read_text())


def _classify(body: dict, image: bytes, status: int = 200, **overrides):
    app = Canned(body, status)
    with canned_server(app) as url:
        settings = GeminiSettings(model="gemini-2.0-flash", endpoint_url=url, api_key=KEY, **overrides)
        with GeminiClassifier("gemini", settings) as clf:
            return clf.classify(image), app, clf


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("gemini_generatecontent-inlinedata-image_response.json", (3367, 9)),
        ("vertex_generatecontent-filedata-image_response.json", None),  # same envelope, Vertex-recorded
    ],
)
def test_recorded_envelopes_decode(provider_payloads, sample_images, name, tokens) -> None:
    body = _recorded(provider_payloads, name)
    prediction, app, _ = _classify(body, sample_images[0])
    assert prediction.outcome == "unparseable"  # "The fruit in the image is a kiwi." is never a label
    if tokens:
        assert (prediction.usage.input_tokens, prediction.usage.output_tokens) == tokens
        assert prediction.request_id == body["responseId"]
    assert app.targets[0].endswith("/models/gemini-2.0-flash:generateContent")
    assert KEY in " ".join(app.request_headers[0].values())  # the key travels in a header, not the URL
    assert KEY not in app.targets[0]


def test_request_matches_the_recorded_inline_data_part(provider_payloads, sample_images) -> None:
    recorded = _recorded(provider_payloads, "gemini_generatecontent-inlinedata-image_request.json")
    body = _recorded(provider_payloads, "gemini_generatecontent-inlinedata-image_response.json")
    _, app, clf = _classify(body, sample_images[0])
    sent_parts = app.requests[0]["contents"][0]["parts"]
    recorded_parts = recorded["contents"][0]["parts"]
    sent_inline = next(p["inlineData"] for p in sent_parts if "inlineData" in p)
    recorded_inline = next(p["inlineData"] for p in recorded_parts if "inlineData" in p)

    # proto JSON accepts both spellings; this SDK writes mime_type where the recording has mimeType
    def keys(part: dict) -> set[str]:
        return {k.replace("_", "").lower() for k in part}

    assert keys(sent_inline) == keys(recorded_inline) == {"mimetype", "data"}
    data = sent_inline["data"]  # the SDK writes URL-safe base64 without padding (proto JSON accepts both)
    assert base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)) == clf.prepare(sample_images[0]).data
    config = app.requests[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"]["label"]["enum"][0] == "akiec"


def test_dermatology_answer_inside_the_real_envelope(provider_payloads, sample_images) -> None:
    """Only ``candidates[0].content.parts[0].text`` of the recorded response was changed."""
    body = _recorded(provider_payloads, "gemini_generatecontent-inlinedata-image_response.json")
    body["candidates"][0]["content"]["parts"][0]["text"] = '{"label": "df", "confidence": 0.3}'
    prediction, _, _ = _classify(body, sample_images[0])
    assert (prediction.outcome, prediction.canonical, prediction.top.score) == ("answered", "df", 0.3)
    assert prediction.cost_usd == pytest.approx((3367 * 0.1 + 9 * 0.4) / 1e6, rel=1e-12)


def test_safety_finish_reason_is_an_abstention(provider_payloads, sample_images) -> None:
    """Only finishReason and the part text of the recorded response were changed."""
    body = _recorded(provider_payloads, "gemini_generatecontent-inlinedata-image_response.json")
    body["candidates"][0]["finishReason"] = "SAFETY"
    body["candidates"][0]["content"]["parts"][0]["text"] = ""
    prediction, _, _ = _classify(body, sample_images[0])
    assert prediction.outcome == "abstained" and "SAFETY" in prediction.reason


def test_errors_are_typed(sample_images) -> None:
    quota = {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}
    with pytest.raises(ProviderThrottled):
        _classify(quota, sample_images[0], status=429)
    bad = {"error": {"code": 400, "message": "Invalid image.", "status": "INVALID_ARGUMENT"}}
    with pytest.raises(ProviderHTTPError) as info:
        _classify(bad, sample_images[0], status=400)
    assert not info.value.retryable


def test_vertex_and_key_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        GeminiSettings(model="gemini-2.0-flash", api_key="k", project="p", location="europe-west4")
    with pytest.raises(ValueError, match="both project and location"):
        GeminiSettings(model="gemini-2.0-flash", project="p")
    vertex = GeminiClassifier(
        "g", GeminiSettings(model="gemini-2.0-flash", project="p", location="europe-west4")
    )
    assert vertex.service_facts().region == "europe-west4" and vertex.vertex
    assert vertex.service_facts().vendor == "gcp"
    api = GeminiClassifier("g", GeminiSettings(model="gemini-2.0-flash", api_key="k"))
    assert api.service_facts().vendor == "google" and api.governance.baa_available is None  # not Google Cloud
