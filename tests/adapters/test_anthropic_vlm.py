"""The ``anthropic`` adapter through the official SDK on loopback servers with real Messages envelopes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("anthropic")

from cloudderm.adapters.anthropic_vlm import AnthropicClassifier, AnthropicSettings
from cloudderm.errors import ConfigError, ProviderHTTPError, ProviderThrottled
from cloudderm.images import prepare
from tests.adapters.vlm_support import Canned, canned_server

KEY = "sk-ant-test-0123456789abcdef"


def _recorded(provider_payloads: Path, name: str) -> dict:
    return json.loads((provider_payloads / "vlm" / name).read_text())


def _classify(body: dict, image: bytes, status: int = 200, **overrides):
    app = Canned(body, status, headers={"retry-after": "3"} if status == 429 else None)
    with canned_server(app) as url:
        settings = AnthropicSettings(model="claude-haiku-4-5", endpoint_url=url, api_key=KEY, **overrides)
        with AnthropicClassifier("claude", settings) as clf:
            return clf.classify(image), app, clf


def test_recorded_envelope_decodes_and_prose_is_not_a_label(provider_payloads, sample_images) -> None:
    body = _recorded(provider_payloads, "anthropic_messages-image-base64_response.json")
    prediction, app, _ = _classify(body, sample_images[0])
    assert prediction.outcome == "unparseable" and "potato" in prediction.reason
    assert (prediction.usage.input_tokens, prediction.usage.output_tokens) == (276, 92)
    assert prediction.model == "claude-haiku-4-5-20251001"
    assert app.targets == ["/v1/messages"]
    assert KEY in " ".join(app.request_headers[0].values())  # sent as a header, never in the body


def test_request_matches_the_recorded_image_block(provider_payloads, sample_images) -> None:
    recorded = _recorded(provider_payloads, "anthropic_messages-image-base64_request.json")
    body = _recorded(provider_payloads, "anthropic_messages-image-base64_response.json")
    _, app, clf = _classify(body, sample_images[0])
    sent = app.requests[0]
    recorded_image = next(b for b in recorded["messages"][0]["content"] if b["type"] == "image")
    sent_image = next(b for b in sent["messages"][0]["content"] if b["type"] == "image")
    assert set(sent_image["source"]) == set(recorded_image["source"]) == {"type", "media_type", "data"}
    assert sent_image["source"]["type"] == "base64" and sent_image["source"]["media_type"] == "image/jpeg"
    import base64

    assert base64.b64decode(sent_image["source"]["data"]) == clf.prepare(sample_images[0]).data
    assert sent["output_config"]["format"]["schema"]["properties"]["label"]["enum"][-1] == "cannot_determine"


def test_dermatology_answer_inside_the_real_envelope(provider_payloads, sample_images) -> None:
    """Only ``content[0].text`` of the recorded response was changed (to a JSON answer)."""
    body = _recorded(provider_payloads, "anthropic_messages-image-base64_response.json")
    body["content"][0]["text"] = '{"label": "mel", "confidence": 0.55}'
    prediction, _, _ = _classify(body, sample_images[0])
    assert (prediction.outcome, prediction.canonical, prediction.top.score) == ("answered", "mel", 0.55)
    assert prediction.provider_details["score_source"] == "stated-confidence"
    expected = (276 * 1.0 + 92 * 5.0) / 1e6  # claude-haiku-4-5 at $1 / $5 per 1M tokens
    assert prediction.cost_usd == pytest.approx(expected, rel=1e-12)


def test_refusal_stop_reason_is_an_abstention(provider_payloads, sample_images) -> None:
    """Only stop_reason and the text of the recorded response were changed."""
    body = _recorded(provider_payloads, "anthropic_messages-image-base64_response.json")
    body["stop_reason"] = "refusal"
    body["content"][0]["text"] = "I can't help with that."
    prediction, _, _ = _classify(body, sample_images[0])
    assert prediction.outcome == "abstained" and "refusal" in prediction.reason
    assert prediction.labels == []


def test_errors_are_typed(sample_images) -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests exceeded"}}
    with pytest.raises(ProviderThrottled) as info:
        _classify(error, sample_images[0], status=429)
    assert info.value.retryable and info.value.retry_after == 3
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(ProviderHTTPError) as info:
        _classify(overloaded, sample_images[0], status=529)
    assert info.value.retryable and info.value.status == 529


def test_sampling_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="no temperature"):
        AnthropicSettings(model="claude-haiku-4-5", temperature=0.7, samples=3)


def test_missing_key_is_a_config_error(monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    clf = AnthropicClassifier("claude", AnthropicSettings(model="claude-haiku-4-5"))
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        clf.classify_prepared([prepare(_tiny_jpeg())])


def _tiny_jpeg() -> bytes:
    from tests.conftest import make_jpeg

    return make_jpeg((10, 20, 30))


def test_governance_card_is_sourced_or_unknown() -> None:
    card = AnthropicClassifier("claude", AnthropicSettings(model="claude-haiku-4-5")).governance
    assert card.service.general_purpose_model and card.service.vendor == "anthropic"
    assert card.training_use.source.startswith("https://privacy.claude.com/")
    assert card.data_retention is None  # not sourced: shown as unknown, never guessed
