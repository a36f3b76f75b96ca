"""Azure ML adapter end to end through cassettes: record against the Azure ML emulator, replay offline.

The emulator speaks the AutoML image-classification scoring protocol (one ``{"probs", "labels"}`` item per
image), backed by a model whose scores are a hash of each image's bytes. The adapter sends its key as
``Authorization: Bearer``; the cassette must not hold it, nor any image byte (JSON bodies keep only
hashes of the base64 images).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest

from cloudderm.testing import cassette
from cloudderm.testing.errors import CassetteMiss
from tests.conftest import REPO_ROOT, make_jpeg
from tests.e2e.emulator_support import expected_top, hash_emulator
from tests.e2e.loopback import loopback_only

pytest.importorskip("azure.core")
from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings

pytestmark = pytest.mark.usefixtures(loopback_only.__name__)

IMAGES = [REPO_ROOT / "examples" / "images" / name for name in ("ISIC_0000000.jpg", "ISIC_0000213.jpg")]
CLOSED_PORT = "http://127.0.0.1:9"
AZURE_KEY = "AzCanaryKeyAzureML0123456789abcd"


def classifier(base_url: str, **overrides: object) -> AzureMLClassifier:
    values: dict = {
        "scoring_uri": f"{base_url}/score",
        "api_key": AZURE_KEY,
        "deployment": "blue",
        "region": "uksouth",
        "batch_size": 2,
        "instance_type": "Standard_DS3_v2",
        **overrides,
    }
    return AzureMLClassifier("azure-automl", AzureMLSettings(**values))


def comparable(predictions) -> list[dict]:  # type: ignore[no-untyped-def]
    return [p.model_dump(exclude={"latency_ms"}) for p in predictions]


def expected_tops(clf: AzureMLClassifier, images: list) -> list[str]:
    return [expected_top(clf.prepare(image).sha256) for image in images]


def emulator():  # type: ignore[no-untyped-def]
    """One endpoint, reached at ``/score`` with the test's key and the ``blue`` deployment."""
    return hash_emulator("derm", "azureml", azure_key=AZURE_KEY, azure_deployment="blue")


@pytest.mark.cloudderm_cassette("automl_score")
def test_azureml_replays_the_checked_in_cassette(cloudderm_cassette) -> None:
    """Replays tests/cassettes/test_recorded_azureml/automl_score.yaml (--cloudderm-record=all)."""
    with contextlib.ExitStack() as stack:
        base = CLOSED_PORT
        if cloudderm_cassette.recording:
            base = stack.enter_context(emulator()).base_url
        with classifier(base) as clf:
            predictions = clf.classify_batch(IMAGES)
            tops = expected_tops(clf, IMAGES)
    assert [p.top.label for p in predictions] == tops
    assert cloudderm_cassette.recording or cloudderm_cassette.play_count == 1


def test_azureml_record_then_replay_gives_identical_predictions(tmp_path, monkeypatch) -> None:
    path = tmp_path / "azureml.yaml"
    images = [make_jpeg((200, 120, 90)), make_jpeg((90, 60, 40), gps=True), make_jpeg((10, 200, 10))]
    with emulator() as server, cassette(path, mode="record") as recording:
        url = server.base_url
        with classifier(url) as clf:
            recorded = clf.classify_batch(images)
        seen = server.endpoint_stats("azureml", "derm")
    assert seen.auth_failures == 0 and seen.deployments == {"blue": 2}  # the key and deployment were sent
    assert recording.interactions == seen.requests == 2  # batch_size 2: two requests for three images

    connects: list = []
    real_connect = __import__("socket").socket.connect
    monkeypatch.setattr(
        "socket.socket.connect", lambda sock, addr, *a: connects.append(addr) or real_connect(sock, addr, *a)
    )
    # The server is stopped; its URL is reused so the predictions' model (host:port/deployment) agree.
    with cassette(path) as replay, classifier(url) as clf:
        replayed = clf.classify_batch(images)
        tops = expected_tops(clf, images)
    assert comparable(replayed) == comparable(recorded)
    assert [p.top.label for p in replayed] == tops
    assert replay.play_count == 2 and connects == [] and replay.blocked == []

    text = path.read_text()
    assert AZURE_KEY not in text and "authorization" not in text.lower() and "CanaryCamera" not in text
    for image in images:
        prepared = clf.prepare(image).data
        assert base64.b64encode(prepared).decode()[:40] not in text
        assert f"sha256:{hashlib.sha256(prepared).hexdigest()} len={len(prepared)}" in text


def test_azureml_other_images_are_a_miss(tmp_path) -> None:
    path = tmp_path / "azureml.yaml"
    with emulator() as server, cassette(path, mode="record"), classifier(server.base_url) as clf:
        clf.classify(make_jpeg((1, 2, 3)))
    with cassette(path), classifier(CLOSED_PORT, max_retries=0) as clf:
        clf.classify(make_jpeg((1, 2, 3)))
    with (
        pytest.raises(CassetteMiss, match=r"POST 127\.0\.0\.1/score") as info,
        cassette(path),
        classifier(CLOSED_PORT, max_retries=0) as clf,
    ):
        clf.classify(make_jpeg((3, 2, 1)))
    assert info.value.cassette == str(path)
