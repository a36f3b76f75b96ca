"""Vertex AI adapter end to end through cassettes: record against the Vertex emulator, replay offline.

The emulator speaks the documented AutoML ``:predict`` protocol, backed by a model whose scores are a
hash of each image's bytes, so replayed predictions can be checked against an independent expectation.
The adapter runs with ``anonymous: true`` and ``endpoint_url`` pointing at the server; cassettes ignore
the port, so the replay uses a closed one.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloudderm.testing import cassette
from cloudderm.testing.errors import CassetteMiss
from tests.conftest import REPO_ROOT, make_jpeg
from tests.e2e.emulator_support import HAM_LABELS, hash_emulator
from tests.e2e.emulator_support import expected_top as hash_top
from tests.e2e.loopback import loopback_only

pytest.importorskip("google.cloud.aiplatform_v1")
from cloudderm.adapters.vertex import VertexClassifier, VertexSettings

pytestmark = pytest.mark.usefixtures(loopback_only.__name__)

IMAGES = [REPO_ROOT / "examples" / "images" / name for name in ("ISIC_0000000.jpg", "ISIC_0000213.jpg")]
CLOSED_PORT = "http://127.0.0.1:9"
ENDPOINT_ID = "1234567890"


def classifier(endpoint: str) -> VertexClassifier:
    settings = VertexSettings(
        project="derm-proj",
        location="europe-west2",
        endpoint_id=ENDPOINT_ID,
        endpoint_url=endpoint,
        anonymous=True,
        labels=HAM_LABELS,
    )
    return VertexClassifier("vertex-automl", settings)


def comparable(predictions) -> list[dict]:  # type: ignore[no-untyped-def]
    return [p.model_dump(exclude={"latency_ms"}) for p in predictions]


def expected_top(clf: VertexClassifier, image: Path | bytes) -> str:
    """The label the emulated endpoint gives the bytes the adapter sends for this image."""
    return hash_top(clf.prepare(image).sha256)


def emulator():  # type: ignore[no-untyped-def]
    return hash_emulator(ENDPOINT_ID, "vertex")


@pytest.mark.cloudderm_cassette("automl")
def test_vertex_replays_the_checked_in_cassette(cloudderm_cassette) -> None:
    """Replays tests/cassettes/test_recorded_vertex/automl.yaml (re-record: --cloudderm-record=all)."""
    with contextlib.ExitStack() as stack:
        endpoint = CLOSED_PORT
        if cloudderm_cassette.recording:
            endpoint = stack.enter_context(emulator()).base_url
        with classifier(endpoint) as clf:
            batch = clf.classify_batch(IMAGES)
            single = clf.classify(IMAGES[0])
            tops = [expected_top(clf, image) for image in IMAGES]
    assert [p.top.label for p in batch] == tops
    assert single.labels == batch[0].labels and single.image_sha256 == batch[0].image_sha256
    deployed = {p.provider_details.get("deployedModelId") for p in batch}
    assert len(deployed) == 1 and deployed.pop().isdigit()
    assert cloudderm_cassette.recording or cloudderm_cassette.play_count == 2


def test_vertex_record_then_replay_gives_identical_predictions(tmp_path, monkeypatch) -> None:
    """Threads record concurrently (as the compare runner does); every call is kept and replayed."""
    path = tmp_path / "vertex.yaml"
    images = [make_jpeg((20 * i, 120, 255 - 20 * i)) for i in range(6)]
    with (
        emulator() as server,
        cassette(path, mode="record") as recording,
        classifier(server.base_url) as clf,
        ThreadPoolExecutor(4) as pool,
    ):
        recorded = list(pool.map(clf.classify, images))
    assert recording.interactions == server.endpoint_stats("vertex", ENDPOINT_ID).requests == 6

    connects: list = []
    real_connect = __import__("socket").socket.connect
    monkeypatch.setattr(
        "socket.socket.connect", lambda sock, addr, *a: connects.append(addr) or real_connect(sock, addr, *a)
    )
    with cassette(path) as replay, classifier(CLOSED_PORT) as clf, ThreadPoolExecutor(4) as pool:
        replayed = list(pool.map(clf.classify, images))
    assert comparable(replayed) == comparable(recorded)
    assert replay.play_count == 6 and connects == [] and replay.blocked == []
    assert [p.top.label for p in replayed] == [expected_top(clf, image) for image in images]


def test_vertex_unrecorded_image_names_cassette_and_request(tmp_path) -> None:
    path = tmp_path / "vertex.yaml"
    with emulator() as server, cassette(path, mode="record"), classifier(server.base_url) as clf:
        clf.classify(make_jpeg((1, 2, 3)))
    with pytest.raises(CassetteMiss) as info, cassette(path), classifier(CLOSED_PORT) as clf:
        clf.classify(make_jpeg((1, 2, 3)))
        clf.classify(make_jpeg((3, 2, 1)))
    message = str(info.value)
    assert str(path) in message and "POST 127.0.0.1/v1/projects/derm-proj/locations/europe-west2/" in message
    assert info.value.path.endswith("endpoints/1234567890:predict") and len(info.value.body_sha256) == 64
