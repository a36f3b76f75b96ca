"""The five managed-service adapters through the recording machinery: recorded once against their loopback
emulators (``--cloudderm-record=all``), replayed offline from ``tests/cassettes/test_recorded_services/``.

Each cassette keeps no secret (Prediction-Key, bearer tokens, SigV4 signatures) and no pixel: the checked-in
cassettes are scanned by tests/unit/test_cassette_scan.py, and the record-then-replay test below scans what it
wrote. Replay runs against a closed port, so a request that is not in the cassette cannot reach anything.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudderm.config import parse_config
from cloudderm.factory import build_classifier
from cloudderm.testing import cassette
from cloudderm.testing.fakes import HAM_CODES, FakeClassifier, FakeSettings
from cloudderm.testing.scan import find_leaks
from tests.conftest import isolate_aws, make_jpeg
from tests.e2e.loopback import loopback_only
from tests.hub_offline import hub_registry_offline  # noqa: F401  (autouse fixture)

pytest.importorskip("boto3")
pytest.importorskip("huggingface_hub")
pytest.importorskip("google.auth")
from cloudderm.emulate import Emulator

pytestmark = pytest.mark.usefixtures(loopback_only.__name__)

CLOSED_PORT = "http://127.0.0.1:9"
KEY = "emulator-key"  # the emulated Custom Vision Prediction-Key (EmulatedEndpoint.azure_key default)
HF_TOKEN = "hf_cassettetesttoken0000"
GENERIC = ["skin", "close-up", "hand", "flesh", "pattern"]
ARN = "arn:aws:rekognition:eu-west-2:000000000000:project/derm/version/derm.1/1"
IMAGES = [make_jpeg((200, 120, 90)), make_jpeg((90, 60, 40), gps=True)]


def configs(base: str) -> dict[str, dict[str, Any]]:
    """The providers, pointed at ``base`` (the emulator while recording, a closed port on replay)."""
    return {
        "custom-vision": {
            "adapter": "custom-vision",
            "endpoint": "https://emulated.cognitiveservices.azure.com",
            "endpoint_url": base,
            "project_id": "00000000-0000-4000-8000-000000000000",
            "published_name": "derm",
            "prediction_key": KEY,
        },
        "cloud-vision": {
            "adapter": "cloud-vision",
            "endpoint_url": f"{base}/cloud-vision/generic",
            "anonymous": True,
        },
        "rekognition": {
            "adapter": "rekognition",
            "region": "eu-west-2",
            "endpoint_url": f"{base}/rekognition/generic",
        },
        "rekognition-custom": {
            "adapter": "rekognition",
            "endpoint_url": f"{base}/rekognition/derm",
            "project_version_arn": ARN,
        },
        "hf-inference": {
            "adapter": "hf-inference",
            "model": "derm",
            "endpoint_url": f"{base}/hf-inference/models/derm",
            "token": HF_TOKEN,
        },
        "kserve": {"adapter": "kserve", "url": base, "model_name": "derm", "labels": list(HAM_CODES)},
    }


@contextlib.contextmanager
def served(recording: bool) -> Iterator[str]:
    if not recording:
        yield CLOSED_PORT
        return
    backends = {
        "derm": FakeClassifier("derm-backend"),
        "generic": FakeClassifier("generic-backend", FakeSettings(model="generic", labels=GENERIC)),
    }
    with Emulator(backends) as emulator:
        yield emulator.base_url


@pytest.fixture
def aws_env(tmp_path: Path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws(mp, tmp_path, "AKIAEMULATOREXAMPLE0", "emulator-secret-key")
        yield


def classify(provider: str, base: str) -> list:
    config = parse_config({"providers": configs(base)}, env={})
    with build_classifier(provider, config) as clf:
        return clf.classify_batch(IMAGES)


@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize("provider", list(configs(CLOSED_PORT)))
@pytest.mark.cloudderm_cassette("service")
def test_service_replays_its_checked_in_cassette(provider: str, cloudderm_cassette) -> None:
    with served(cloudderm_cassette.recording) as base:
        predictions = classify(provider, base)
    assert len(predictions) == len(IMAGES) and all(p.labels for p in predictions)
    expected = FakeClassifier("x") if provider not in ("cloud-vision", "rekognition") else None
    for prediction in predictions:
        if expected is None:
            assert prediction.canonical is None and {ls.label for ls in prediction.labels} <= set(GENERIC)
        else:
            scores = dict(expected.scores_for(prediction.image_sha256))
            top = max(scores, key=scores.__getitem__)
            assert prediction.labels[0].label == top
    assert cloudderm_cassette.recording or cloudderm_cassette.play_count >= 1


@pytest.mark.usefixtures("aws_env")
def test_recording_keeps_no_secret_and_no_pixel_and_replays_identically(tmp_path: Path, monkeypatch) -> None:
    recorded = {}
    with served(True) as base:
        for provider in configs(base):
            with cassette(tmp_path / f"{provider}.yaml", mode="record") as recording:
                recorded[provider] = classify(provider, base)
            assert recording.interactions >= 1, provider
    assert find_leaks(tmp_path) == []
    texts = "\n".join(p.read_text() for p in tmp_path.glob("*.yaml"))
    for secret in (KEY, HF_TOKEN, "emulator-secret-key"):
        assert secret not in texts
    connects: list = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket, "connect", lambda s, a, *r: connects.append(a) or real_connect(s, a, *r)
    )
    for provider, expected in recorded.items():
        with cassette(tmp_path / f"{provider}.yaml") as replay:
            replayed = classify(provider, CLOSED_PORT)
        assert [p.model_dump(exclude={"latency_ms"}) for p in replayed] == [
            p.model_dump(exclude={"latency_ms"}) for p in expected
        ], provider
        assert replay.blocked == []
    assert connects == []
