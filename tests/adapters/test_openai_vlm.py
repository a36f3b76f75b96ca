"""The ``openai`` adapter through the official SDK on loopback servers: the emulator and real envelopes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

from cloudderm.adapters.openai_vlm import OpenAIClassifier, OpenAISettings
from cloudderm.cli import EXIT_POLICY, main
from cloudderm.compare.store import config_hash
from cloudderm.core import ImageContext
from cloudderm.errors import PolicyViolation, ProviderThrottled
from cloudderm.governance.cards import GENERAL_PURPOSE_WARNING
from cloudderm.governance.policy import enforce_policy
from cloudderm.images import prepare
from cloudderm.retry import RetryPolicy
from cloudderm.testing.conformance import ClassifierConformance
from cloudderm.testing.fakes import FakeClassifier
from tests.adapters.vlm_support import Canned, OpenAIEmulated, canned_server
from tests.conftest import make_jpeg

KEY = "sk-test-emulator-0123456789"


def _classifier(base_url: str, **overrides: Any) -> OpenAIClassifier:
    settings = OpenAISettings(model="gpt-4o", base_url=base_url, api_key=KEY, **overrides)
    return OpenAIClassifier("gpt4o", settings)


@pytest.fixture
def emulator():
    backend = FakeClassifier("fake")
    with OpenAIEmulated(backend) as emu:
        yield emu


class TestOpenAIConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self, emulator):
        with _classifier(emulator.base_url) as clf:
            yield clf

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [KEY]


def test_answer_is_the_backend_label_with_stated_confidence(emulator, sample_images) -> None:
    with _classifier(emulator.base_url) as clf:
        prediction = clf.classify(sample_images[0])
        sent = clf.prepare(sample_images[0])  # what went on the wire; the emulator classifies those bytes
    expected = FakeClassifier("fake").classify(sent)
    assert prediction.outcome == "answered"
    assert prediction.canonical == expected.canonical
    assert prediction.top.score == pytest.approx(expected.top.score, abs=5e-5)  # emulator rounds to 4 places
    assert prediction.provider_details["score_source"] == "stated-confidence"
    assert prediction.usage.input_tokens > 85 and prediction.usage.output_tokens > 0
    assert prediction.cost_usd is not None  # gpt-4o is priced per token in the catalog
    expected_cost = (prediction.usage.input_tokens * 2.5 + prediction.usage.output_tokens * 10) / 1e6
    assert prediction.cost_usd == pytest.approx(expected_cost, rel=1e-12)


def test_governance_card_of_a_general_purpose_provider() -> None:
    clf = OpenAIClassifier("gpt4o", OpenAISettings(model="gpt-4o"))  # api.openai.com: facts are sourced
    card = clf.governance
    assert card.service.general_purpose_model and card.service.data_leaves_machine
    assert card.training_use.source == "https://developers.openai.com/api/docs/guides/your-data"
    assert "30 days" in card.data_retention.value
    assert "no medical intended use" in card.model.intended_use
    assert GENERAL_PURPOSE_WARNING in card.warnings
    compatible = OpenAIClassifier("vllm", OpenAISettings(model="qwen", base_url="https://vllm.example/v1"))
    assert compatible.governance.training_use is None  # unknown, never borrowed from OpenAI


def test_monthly_cost_uses_measured_tokens(emulator, sample_images) -> None:
    with _classifier(emulator.base_url) as clf:
        assert clf.pricing.monthly_cost(10_000).monthly_usd is None  # nothing measured yet: unknown
        predictions = clf.classify_batch(sample_images)
        estimate = clf.pricing.monthly_cost(10_000)
    mean = sum(p.cost_usd for p in predictions) / len(predictions)
    assert estimate.kind == "per-token"
    assert estimate.per_1k_usd == pytest.approx(mean * 1000, rel=1e-9)
    assert estimate.monthly_usd == pytest.approx(mean * 10_000, rel=1e-9)
    assert "measured mean" in estimate.assumptions[0]


def test_the_image_sent_is_prepared_and_metadata_free(emulator) -> None:
    with _classifier(emulator.base_url) as clf:
        clf.classify(make_jpeg((200, 30, 30), gps=True))
    assert emulator.stats.requests == 1
    assert emulator.stats.metadata_seen is False


def test_request_body_follows_the_recorded_shape(provider_payloads: Path, sample_images) -> None:
    recorded = json.loads((provider_payloads / "vlm" / "openai_chat-image-base64_request.json").read_text())
    clf = _classifier("http://127.0.0.1:9/v1")
    body = clf.request_body(prepare(sample_images[0]))
    recorded_parts = [p["type"] for p in recorded["messages"][0]["content"]]
    assert [p["type"] for p in body["messages"][0]["content"]] == recorded_parts == ["text", "image_url"]
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/")
    assert body["response_format"]["json_schema"]["strict"] is True


@pytest.mark.parametrize(
    ("fault", "outcome", "reason_part"),
    [
        ("refusal", "abstained", "refusal: I'm sorry"),
        ("content_filter", "abstained", "violence=high"),
        ("filter400", "abstained", "sexual=medium"),
        ("malformed", "unparseable", '{"label": "mel", "confid'),
    ],
)
def test_injected_faults_become_outcomes_not_errors(sample_images, fault, outcome, reason_part) -> None:
    with OpenAIEmulated(FakeClassifier("fake"), f"{fault}=1") as emu, _classifier(emu.base_url) as clf:
        prediction = clf.classify(sample_images[0])
    assert prediction.outcome == outcome
    assert reason_part in prediction.reason
    assert prediction.labels == [] and prediction.canonical is None
    assert not any("out-of-domain" in w for w in prediction.warnings)


def test_429_is_retryable_and_retried(sample_images) -> None:
    with (
        OpenAIEmulated(FakeClassifier("fake"), "429=1", retry_after_s=7) as emu,
        _classifier(emu.base_url) as clf,
        pytest.raises(ProviderThrottled) as info,
    ):
        clf.classify_prepared([prepare(sample_images[0])])
    assert info.value.retryable and info.value.retry_after == 7
    with OpenAIEmulated(FakeClassifier("fake"), "429=0.5", seed="3", retry_after_s=0) as emu:
        settings = OpenAISettings(model="gpt-4o", base_url=emu.base_url, api_key=KEY)
        clf = OpenAIClassifier("gpt4o", settings, retry_policy=RetryPolicy(max_retries=8, base_delay_s=0))
        with clf:
            predictions = clf.classify_batch(sample_images)
        assert all(p.outcome == "answered" for p in predictions)
        assert emu.stats.faults["429"] > 0


def test_self_consistency_votes(sample_images) -> None:
    with OpenAIEmulated(FakeClassifier("fake"), "refusal=0.5", seed="1") as emu:
        # the same body repeats per sample; the emulator decides faults per arrival, so votes can differ
        clf = _classifier(emu.base_url, samples=4, temperature=0.7)
        with clf:
            prediction = clf.classify(sample_images[1])
    details = prediction.provider_details
    assert details["score_source"] == "vote-share" and details["samples"] == 4
    answered = details["outcomes"].count("answered")
    if answered:
        assert prediction.top.score == pytest.approx(answered / 4)
    else:
        assert prediction.outcome == "abstained"
    assert prediction.usage.input_tokens > 4 * 85  # four calls' tokens summed


def test_prompt_enters_the_config_hash(tmp_path) -> None:
    template = tmp_path / "p.txt"
    template.write_text("Classes:\n{labels}\nJSON.", encoding="utf-8")
    settings = OpenAISettings(model="gpt-4o", base_url="http://127.0.0.1:9/v1", prompt=str(template))
    first = OpenAIClassifier("a", settings)
    template.write_text("Classes:\n{labels}\nJSON only, please.", encoding="utf-8")
    second = OpenAIClassifier("a", settings)
    assert config_hash(settings, first.hash_extras()) != config_hash(settings, second.hash_extras())
    assert "sha256" not in str(settings.model_dump())  # identity comes from the rendered text, not the path


def test_policy_refuses_general_purpose_models_before_any_byte(tmp_path, emulator, sample_images) -> None:
    from cloudderm.config import Policy

    clf = _classifier(emulator.base_url)
    with pytest.raises(PolicyViolation, match="general-purpose"):
        enforce_policy(clf, Policy(allow_general_purpose_models=False))
    image = tmp_path / "a.jpg"
    image.write_bytes(sample_images[0])
    config = tmp_path / "cloudderm.yaml"
    config.write_text(
        "policy:\n  allow_general_purpose_models: false\nproviders:\n  gpt4o:\n    adapter: openai\n"
        f"    model: gpt-4o\n    base_url: {emulator.base_url}\n    api_key: {KEY}\n",
        encoding="utf-8",
    )
    assert main(["classify", "-c", str(config), str(image)]) == EXIT_POLICY
    assert emulator.stats.requests == 0


def test_samples_with_temperature_zero_is_a_usage_error(tmp_path, sample_images) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(sample_images[0])
    config = tmp_path / "cloudderm.yaml"
    config.write_text(
        "providers:\n  gpt4o:\n    adapter: openai\n    model: gpt-4o\n    samples: 3\n", encoding="utf-8"
    )
    assert main(["classify", "-c", str(config), str(image)]) == 2


# ---- the recorded envelopes, served on loopback and decoded through the SDK -----------------------------
def _serve(body: dict[str, Any], sample: bytes, **overrides: Any):
    app = Canned(body)
    with canned_server(app) as url, _classifier(f"{url}/v1", **overrides) as clf:
        return clf.classify(sample), app


RESPONSES = {
    "openai_chat-image-base64_response.json": (1119, 10),
    "openai_chat-image-url_response.json": (269, 23),
    "openai_chat-image-spec-example_response.json": None,
    "openai_chat-json-schema-textonly_response.json": None,
    "openai_chat-logprobs-textonly-spec-example_response.json": None,
    "azure_chat-image-doc-sample_response.json": (1156, 80),
    "azure_chat-textonly_response.json": None,
    "huggingface_router-chat-image-base64_response.json": (448, 38),
    "tgi_chat-image-url-qwen2.5-vl_response.json": None,
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_every_recorded_chat_envelope_decodes(provider_payloads: Path, sample_images, name) -> None:
    body = json.loads((provider_payloads / "vlm" / name).read_text())
    prediction, _ = _serve(body, sample_images[0])
    # These recordings answer other questions (a kiwi, a tuxedo, Mexico City): prose is never a label.
    assert prediction.outcome in ("unparseable", "abstained")
    assert prediction.labels == []
    assert prediction.model == body["model"]
    tokens = RESPONSES[name]
    if tokens is not None:
        assert (prediction.usage.input_tokens, prediction.usage.output_tokens) == tokens
    if name.startswith("azure_"):
        assert prediction.provider_details["prompt_filter_results"] == body["prompt_filter_results"]
        assert (
            prediction.provider_details["content_filter_results"]
            == body["choices"][0]["content_filter_results"]
        )


def test_dermatology_answer_inside_the_real_azure_envelope(provider_payloads: Path, sample_images) -> None:
    """Only ``choices[0].message.content`` of the Azure doc sample was changed (to a JSON answer)."""
    body = json.loads((provider_payloads / "vlm" / "azure_chat-image-doc-sample_response.json").read_text())
    body["choices"][0]["message"]["content"] = '{"label": "bcc", "confidence": 0.64}'
    prediction, app = _serve(body, sample_images[0])
    assert (prediction.outcome, prediction.canonical, prediction.top.score) == ("answered", "bcc", 0.64)
    assert prediction.request_id == body["id"]
    sent = app.requests[0]["messages"][0]["content"][1]["image_url"]["url"]
    assert sent.startswith("data:image/jpeg;base64,")


def test_logprobs_score_inside_the_real_logprobs_envelope(provider_payloads: Path, sample_images) -> None:
    """Only the content string and its token list in the spec's logprobs example were changed."""
    path = provider_payloads / "vlm" / "openai_chat-logprobs-textonly-spec-example_response.json"
    body = json.loads(path.read_text())
    tokens = [("nv", -0.105)]
    body["choices"][0]["message"]["content"] = "nv"
    body["choices"][0]["logprobs"]["content"] = [
        {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []} for t, lp in tokens
    ]
    prediction, app = _serve(body, sample_images[0], logprobs=True, response_format="text")
    assert app.requests[0]["logprobs"] is True and "response_format" not in app.requests[0]
    assert prediction.provider_details["score_source"] == "logprobs"
    assert prediction.top.score == pytest.approx(0.9003245, abs=1e-6)  # exp(-0.105)


def test_azure_finish_reason_content_filter_in_real_envelope(provider_payloads: Path, sample_images) -> None:
    """Only finish_reason, content and one category's verdict of the real Azure recording were changed."""
    body = json.loads((provider_payloads / "vlm" / "azure_chat-textonly_response.json").read_text())
    choice = body["choices"][0]
    choice["finish_reason"], choice["message"]["content"] = "content_filter", None
    choice["content_filter_results"]["violence"] = {"filtered": True, "severity": "medium"}
    prediction, _ = _serve(body, sample_images[0])
    assert prediction.outcome == "abstained"
    assert prediction.reason == "content filter: violence=medium"


def test_azure_deployment_client_uses_the_deployment_path(sample_images) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "mel"}}
        ],
    }
    app = Canned(body)
    with canned_server(app) as url:
        settings = OpenAISettings(
            model="gpt-4o",
            azure_endpoint=url,
            azure_deployment="derm-gpt4o",
            api_version="2024-10-21",
            api_key=KEY,
        )
        with OpenAIClassifier("azure", settings) as clf:
            prediction = clf.classify(sample_images[0])
    assert app.targets == ["/openai/deployments/derm-gpt4o/chat/completions?api-version=2024-10-21"]
    assert app.request_headers[0].get("api-key") == KEY
    assert prediction.canonical == "mel"
    assert clf.service_facts().vendor == "azure"


def test_image_context_reaches_the_prompt(emulator, sample_images) -> None:
    with _classifier(emulator.base_url) as clf:
        prepared = clf.prepare(sample_images[0])
        plain = clf.request_body(prepared)["messages"][0]["content"][0]["text"]
        with_context = clf.prepare(sample_images[0]).with_context(
            ImageContext(age=55, sex="female", site="back")
        )
        text = clf.request_body(with_context)["messages"][0]["content"][0]["text"]
        prediction = clf.classify(sample_images[0], context={"age": 55, "sex": "F", "site": "back"})
    assert plain == clf.prompt.text
    assert text.endswith("age 55 years, sex female, lesion site back.\n")
    assert prediction.outcome == "answered"


def test_pickles_and_the_copy_answers_the_same(emulator, sample_images) -> None:
    import pickle

    with _classifier(emulator.base_url) as clf:
        clf.warm_up()
        first = clf.classify(sample_images[2])
        clone = pickle.loads(pickle.dumps(clf))
    with clone:
        again = clone.classify(sample_images[2])
    assert (again.canonical, again.top.score, again.usage) == (first.canonical, first.top.score, first.usage)


def test_azure_without_a_key_uses_entra_id(monkeypatch, sample_images) -> None:
    """No api_key and no AZURE_OPENAI_API_KEY: a bearer token from DefaultAzureCredential is sent instead."""
    pytest.importorskip("azure.identity")
    import azure.identity

    class FakeCredential:
        def get_token(self, *scopes, **kwargs):  # type: ignore[no-untyped-def]
            from azure.core.credentials import AccessToken

            assert scopes == ("https://cognitiveservices.azure.com/.default",)
            return AccessToken("entra-token-for-test", 4102444800)

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", FakeCredential)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "nv"}}],
    }
    app = Canned(body)
    with canned_server(app) as url:
        settings = OpenAISettings(
            model="gpt-4o", azure_endpoint=url, azure_deployment="d", api_version="2024-10-21"
        )
        with OpenAIClassifier("azure", settings) as clf:
            prediction = clf.classify(sample_images[0])
    assert prediction.canonical == "nv"
    assert app.request_headers[0].get("authorization") == "Bearer entra-token-for-test"
    assert app.request_headers[0].get("api-key") is None
