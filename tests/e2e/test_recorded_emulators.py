"""All three cloud adapters recorded against the endpoint emulators, then replayed with the emulator gone.

The emulators speak the real SageMaker, Azure ML and Vertex AI wire protocols on 127.0.0.1, backed here by
the deterministic ``FakeClassifier``; the adapters are built from the emulator's own config snippet, the
way ``cloudderm emulate`` users build them. Replay must give identical predictions without a connection.
"""

from __future__ import annotations

import socket

import pytest

from cloudderm.config import parse_config
from cloudderm.factory import build_classifier
from cloudderm.testing import cassette
from cloudderm.testing.fakes import FakeClassifier
from tests.conftest import make_jpeg
from tests.e2e.loopback import loopback_only

pytest.importorskip("boto3")
pytest.importorskip("azure.core")
pytest.importorskip("google.cloud.aiplatform_v1")
from cloudderm.emulate import Emulator

pytestmark = pytest.mark.usefixtures(loopback_only.__name__)


def test_every_cloud_adapter_replays_what_it_recorded_from_the_emulators(tmp_path, monkeypatch) -> None:
    images = [
        make_jpeg((200, 120, 90)),
        make_jpeg((90, 60, 40), gps=True),
        make_jpeg((230, 200, 190), (80, 80)),
    ]
    backend = FakeClassifier("skin")
    with Emulator(backends={"skin": backend}) as emulator:
        for name, value in emulator.fake_aws_env().items():
            monkeypatch.setenv(name, value)
        config = parse_config({"providers": emulator.providers()})
        recorded = {}
        for provider in config.providers:
            with (
                cassette(tmp_path / f"{provider}.yaml", mode="record") as recording,
                build_classifier(provider, config) as clf,
            ):
                recorded[provider] = clf.classify_batch(images)
            protocol = provider.removeprefix("skin-")
            assert recording.interactions == emulator.endpoint_stats(protocol, "skin").requests >= 1, provider
    assert sorted(recorded) == ["skin-azureml", "skin-openai", "skin-sagemaker", "skin-vertex"]

    connects: list = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda s, a, *r: connects.append(a) or real_connect(s, a, *r)
    )
    for provider, expected in recorded.items():
        with cassette(tmp_path / f"{provider}.yaml") as replay, build_classifier(provider, config) as clf:
            replayed = clf.classify_batch(images)
        assert [p.model_dump(exclude={"latency_ms"}) for p in replayed] == [
            p.model_dump(exclude={"latency_ms"}) for p in expected
        ], provider
        assert replay.play_count >= 1 and replay.blocked == []
    assert connects == []
    # every provider saw the same prepared bytes: one hash per image across all of them
    assert len({p.image_sha256 for predictions in recorded.values() for p in predictions}) == len(images)
