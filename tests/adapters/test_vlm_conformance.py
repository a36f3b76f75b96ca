"""The shipped conformance suite for the anthropic, gemini and bedrock adapters on loopback servers.

Each server answers with the vendor's recorded envelope in which only the answer text was changed (to
``{"label": "mel", "confidence": 0.7}``), so every call goes through the real SDK and its decoding.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudderm.testing.conformance import ClassifierConformance
from tests.adapters.vlm_support import Canned, canned_server
from tests.conftest import SHARED_DATA, isolate_aws

ANSWER = '{"label": "mel", "confidence": 0.7}'
VLM = SHARED_DATA / "providers" / "vlm"


def _envelope(name: str) -> dict:
    if not VLM.is_dir():
        pytest.skip("../shared/data is not present")
    return json.loads((VLM / name).read_text())


class TestAnthropicConformance(ClassifierConformance):
    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["sk-ant-conformance-0123456789"]

    @pytest.fixture
    def classifier(self):
        pytest.importorskip("anthropic")
        from cloudderm.adapters.anthropic_vlm import AnthropicClassifier, AnthropicSettings

        body = _envelope("anthropic_messages-image-base64_response.json")
        body["content"][0]["text"] = ANSWER
        with canned_server(Canned(body)) as url:
            settings = AnthropicSettings(
                model="claude-haiku-4-5", endpoint_url=url, api_key="sk-ant-conformance-0123456789"
            )
            with AnthropicClassifier("claude", settings) as clf:
                yield clf


class TestGeminiConformance(ClassifierConformance):
    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["AIza-conformance-0123456789"]

    @pytest.fixture
    def classifier(self):
        pytest.importorskip("google.genai")
        from cloudderm.adapters.gemini_vlm import GeminiClassifier, GeminiSettings

        body = _envelope("gemini_generatecontent-inlinedata-image_response.json")
        body["candidates"][0]["content"]["parts"][0]["text"] = ANSWER
        with canned_server(Canned(body)) as url:
            settings = GeminiSettings(
                model="gemini-2.0-flash", endpoint_url=url, api_key="AIza-conformance-0123456789"
            )
            with GeminiClassifier("gemini", settings) as clf:
                yield clf


class TestBedrockConformance(ClassifierConformance):
    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["conformance-secret-access-key"]

    @pytest.fixture
    def classifier(self, monkeypatch, tmp_path: Path):
        pytest.importorskip("boto3")
        from cloudderm.adapters.bedrock_vlm import BedrockClassifier, BedrockSettings

        isolate_aws(monkeypatch, tmp_path, "AKIACONFORMANCE00000", "conformance-secret-access-key")
        body = _envelope("bedrock_converse-image-bytes_response.json")
        body["output"]["message"]["content"][0]["text"] = ANSWER
        with canned_server(Canned(body)) as url:
            settings = BedrockSettings(model="amazon.nova-pro-v1:0", region="us-east-1", endpoint_url=url)
            with BedrockClassifier("nova", settings) as clf:
                yield clf
