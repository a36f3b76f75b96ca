"""Every recorded VLM payload in ../shared/data/providers/vlm is decoded by a test (this file lists where).

The chat-completions *requests* are sent, as recorded, to the ``openai`` emulator protocol: bodies with a
base64 image get an answer once their elided image data is put back (only the image data is changed);
bodies with an image URL or no image are refused with the OpenAI error shape, as the emulator documents.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("openai")

from cloudderm.adapters.openai_vlm import OpenAIClassifier, OpenAISettings
from cloudderm.emulate import Emulator
from cloudderm.images import prepare
from cloudderm.testing.fakes import FakeClassifier
from tests.conftest import make_jpeg
from tests.unit.emulator_http import post

COVERED = {
    "openai_chat-image-base64_request.json": "here; test_openai_vlm (request shape)",
    "openai_chat-image-url_request.json": "here",
    "openai_chat-image-spec-example_request.json": "here",
    "openai_chat-json-schema-textonly_request.json": "here (response_format shape)",
    "openai_chat-logprobs-textonly-spec-example_request.json": "here (logprobs flag)",
    "azure_chat-image-doc-sample_request.json": "here",
    "azure_chat-textonly_request.json": "here",
    "huggingface_router-chat-image-base64_request.json": "here",
    "tgi_chat-image-url-qwen2.5-vl_request.json": "here",
    "anthropic_messages-image-base64_request.json": "test_anthropic_vlm",
    "gemini_generatecontent-inlinedata-image_request.json": "test_gemini_vlm",
    "vertex_generatecontent-filedata-image_request.json": "here (generateContent shape)",
    "bedrock_converse-image-bytes_request.json": "test_bedrock_vlm",
    "tgi_paligemma-generate_request.json": "test_paligemma",
    "transformers_paligemma-answer-en_request.json": "test_paligemma",
    **{
        name: "test_openai_vlm (decoded through the SDK)"
        for name in (
            "openai_chat-image-base64_response.json",
            "openai_chat-image-url_response.json",
            "openai_chat-image-spec-example_response.json",
            "openai_chat-json-schema-textonly_response.json",
            "openai_chat-logprobs-textonly-spec-example_response.json",
            "azure_chat-image-doc-sample_response.json",
            "azure_chat-textonly_response.json",
            "huggingface_router-chat-image-base64_response.json",
            "tgi_chat-image-url-qwen2.5-vl_response.json",
        )
    },
    "anthropic_messages-image-base64_response.json": "test_anthropic_vlm",
    "gemini_generatecontent-inlinedata-image_response.json": "test_gemini_vlm",
    "vertex_generatecontent-filedata-image_response.json": "test_gemini_vlm",
    "bedrock_converse-image-bytes_response.json": "test_bedrock_vlm",
    "tgi_paligemma-generate_response.json": "test_paligemma",
    "transformers_paligemma-answer-en_response.json": "test_paligemma",
}
CHAT_REQUESTS = sorted(
    n for n, where in COVERED.items() if n.endswith("_request.json") and where.startswith("here")
)
ELIDED = re.compile(r"<base64 image elided: \d+ chars>")


def test_every_payload_has_a_test(provider_payloads: Path) -> None:
    present = {p.name for p in (provider_payloads / "vlm").glob("*.json")}
    assert present == set(COVERED), f"new or missing fixtures: {present ^ set(COVERED)}"


@pytest.fixture(scope="module")
def emulator():
    with Emulator({"fake": FakeClassifier("fake")}, protocols=["openai"]) as emu:
        yield emu


@pytest.mark.parametrize("name", [n for n in CHAT_REQUESTS if not n.startswith("vertex_")])
def test_recorded_chat_requests_through_the_emulator(provider_payloads, emulator, name) -> None:
    text = (provider_payloads / "vlm" / name).read_text()
    body = json.loads(text)
    has_base64 = bool(ELIDED.search(text))
    if has_base64:  # put an image back where the recording elided its data (nothing else changes)
        b64 = base64.b64encode(make_jpeg((120, 60, 40))).decode("ascii")
        body = json.loads(ELIDED.sub(b64, text))
    status, _, reply = post(f"{emulator.base_url}/v1/chat/completions", json.dumps(body).encode())
    answer = json.loads(reply)
    if has_base64:
        # the recorded model names no emulated endpoint; the emulator says so in OpenAI's error shape
        assert status == 404 and answer["error"]["code"] == "model_not_found"
        body["model"] = "fake"
        status, _, reply = post(f"{emulator.base_url}/v1/chat/completions", json.dumps(body).encode())
        answer = json.loads(reply)
        assert status == 200 and answer["object"] == "chat.completion"
        assert (
            json.loads(answer["choices"][0]["message"]["content"])["label"]
            in FakeClassifier.Settings().labels
        )
    else:
        body["model"] = "fake"
        status, _, reply = post(f"{emulator.base_url}/v1/chat/completions", json.dumps(body).encode())
        assert status == 400 and json.loads(reply)["error"]["type"] == "invalid_request_error"


def test_our_request_matches_the_recorded_structured_and_logprobs_shapes(
    provider_payloads, sample_images
) -> None:
    vlm = provider_payloads / "vlm"
    schema_request = json.loads((vlm / "openai_chat-json-schema-textonly_request.json").read_text())
    logprobs_request = json.loads(
        (vlm / "openai_chat-logprobs-textonly-spec-example_request.json").read_text()
    )
    image_request = json.loads((vlm / "openai_chat-image-spec-example_request.json").read_text())
    clf = OpenAIClassifier(
        "x", OpenAISettings(model="gpt-4o", base_url="http://127.0.0.1:9/v1", logprobs=True)
    )
    body = clf.request_body(prepare(sample_images[0]))
    recorded_format = schema_request["response_format"]
    assert body["response_format"]["type"] == recorded_format["type"] == "json_schema"
    assert set(body["response_format"]["json_schema"]) == set(recorded_format["json_schema"])
    assert body["logprobs"] is logprobs_request["logprobs"] is True
    recorded_parts = {
        p["type"] for m in image_request["messages"] for p in m["content"] if isinstance(p, dict)
    }
    assert {p["type"] for p in body["messages"][0]["content"]} == recorded_parts


def test_vertex_request_has_the_generate_content_shape(provider_payloads) -> None:
    request = json.loads(
        (provider_payloads / "vlm" / "vertex_generatecontent-filedata-image_request.json").read_text()
    )
    assert set(request) == {"contents", "generationConfig"}  # the same two keys our gemini requests send
    parts = request["contents"][0]["parts"]
    assert {"text"} in [set(p) for p in parts] and {"fileData"} in [set(p) for p in parts]
