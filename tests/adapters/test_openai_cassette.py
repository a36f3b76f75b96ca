"""The cassette recorder covers the httpx2-based SDKs (openai): threaded record, then offline replay."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("openai")

from cloudderm.adapters.openai_vlm import OpenAIClassifier, OpenAISettings
from cloudderm.testing.cassettes import cassette
from cloudderm.testing.fakes import FakeClassifier
from tests.adapters.vlm_support import OpenAIEmulated
from tests.conftest import make_jpeg

KEY = "sk-cassette-secret-0123456789abcdef"


def _classify_all(base_url: str, images: list[bytes]) -> list:
    settings = OpenAISettings(model="gpt-4o", base_url=base_url, api_key=KEY)
    with OpenAIClassifier("gpt4o", settings) as clf, ThreadPoolExecutor(4) as pool:
        return list(pool.map(clf.classify, images))


def test_threaded_record_then_replay_without_the_server(tmp_path) -> None:
    images = [make_jpeg((i * 40 % 256, 90, 200 - i * 20)) for i in range(8)]
    path = tmp_path / "openai.yaml"
    with OpenAIEmulated(FakeClassifier("backend")) as emu:
        base_url = emu.base_url
        with cassette(path, mode="record") as recording:
            recorded = _classify_all(base_url, images)
        assert recording.interactions == len(images) == emu.stats.requests
    text = path.read_text(encoding="utf-8")
    assert KEY not in text and "authorization" not in text.lower()
    assert ";base64," not in text  # the image never lands in the cassette, only its hash
    with cassette(path, mode="replay") as replay:  # the emulator is gone: only the cassette can answer
        replayed = _classify_all(base_url, images)
    assert replay.play_count == len(images)
    assert [(p.canonical, p.top.score, p.usage) for p in replayed] == [
        (p.canonical, p.top.score, p.usage) for p in recorded
    ]
