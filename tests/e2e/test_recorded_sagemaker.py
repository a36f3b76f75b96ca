"""SageMaker adapter end to end through cassettes: record against moto's server, replay offline.

moto serves queued JumpStart ``application/json;verbose`` answers, encoded by the SageMaker emulator's own
wire functions with scores from each sent image's hash (``emulator_support.hash_backend``), so replayed
predictions can be checked against an independent expectation. Credentials are canaries
from the environment; the recorded cassette must hold none of them (SigV4 headers are never stored).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator

import pytest

from cloudderm.emulate.sagemaker import sagemaker_success
from cloudderm.testing import cassette
from cloudderm.testing.cassettes import Recording
from cloudderm.testing.errors import CassetteMiss
from tests.conftest import REPO_ROOT, isolate_aws, make_jpeg
from tests.e2e.emulator_support import hash_backend
from tests.e2e.loopback import REGION, loopback_only, moto_server, queue_sagemaker_results

pytest.importorskip("moto")
pytest.importorskip("boto3")
from cloudderm.adapters.sagemaker import SageMakerClassifier, SageMakerSettings

pytestmark = pytest.mark.usefixtures(loopback_only.__name__, "aws_canaries")

IMAGES = [REPO_ROOT / "examples" / "images" / name for name in ("ISIC_0000000.jpg", "ISIC_0000213.jpg")]
CLOSED_PORT = "http://127.0.0.1:9"
AWS_KEY_ID = "AKIAZ7CANARY0000002Q"
AWS_SECRET = "cAnArY/sEcReT+sagemaker0123456789abcdEF"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjECanarySageMaker" + "QUJD" * 20


@pytest.fixture
def aws_canaries(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    isolate_aws(monkeypatch, tmp_path, AWS_KEY_ID, AWS_SECRET, AWS_SESSION_TOKEN)


def classifier(endpoint_url: str, **overrides: object) -> SageMakerClassifier:
    settings = SageMakerSettings(
        **overrides,  # type: ignore[arg-type]
        endpoint_name="jumpstart-ic-derm",
        region=REGION,
        endpoint_url=endpoint_url,
        response_format="jumpstart-verbose",
        instance_type="ml.m5.xlarge",
    )
    return SageMakerClassifier("jumpstart-derm", settings)


def verbose_answer(data: bytes) -> dict:
    """The JumpStart verbose body for these bytes, in the emulator's encoding of that format."""
    scores = hash_backend().scores_for(hashlib.sha256(data).hexdigest())
    return json.loads(sagemaker_success("jumpstart-verbose", "application/json;verbose", scores).body)


def comparable(predictions) -> list[dict]:  # type: ignore[no-untyped-def]
    return [p.model_dump(exclude={"latency_ms"}) for p in predictions]


@contextlib.contextmanager
def served(clf: SageMakerClassifier, images: list, recording: Recording | None = None) -> Iterator[str]:
    """A moto server answering ``images`` (sent one by one, in order) the way the expectation says.

    Queueing the answers is test setup, not provider traffic: it is kept out of the cassette.
    """
    with moto_server() as url:
        with recording.unrecorded() if recording else contextlib.nullcontext():
            queue_sagemaker_results(url, [verbose_answer(clf.prepare(image).data) for image in images])
        yield url


def expected_tops(clf: SageMakerClassifier, images: list) -> list[str]:
    return [verbose_answer(clf.prepare(image).data)["predicted_label"] for image in images]


@pytest.mark.cloudderm_cassette("jumpstart_verbose")
def test_sagemaker_replays_the_checked_in_cassette(cloudderm_cassette) -> None:
    """Replays tests/cassettes/test_recorded_sagemaker/jumpstart_verbose.yaml (--cloudderm-record=all)."""
    probe = classifier(CLOSED_PORT)
    with contextlib.ExitStack() as stack:
        endpoint = CLOSED_PORT
        if cloudderm_cassette.recording:
            endpoint = stack.enter_context(served(probe, IMAGES, cloudderm_cassette))
        with classifier(endpoint) as clf:
            predictions = clf.classify_batch(IMAGES)
    assert [p.top.label for p in predictions] == expected_tops(probe, IMAGES)
    assert all(p.request_id and p.provider_details["invoked_variant"] == "AllTraffic" for p in predictions)
    assert cloudderm_cassette.recording or cloudderm_cassette.play_count == len(IMAGES)


def test_sagemaker_record_then_replay_gives_identical_predictions(tmp_path, monkeypatch) -> None:
    path = tmp_path / "sagemaker.yaml"
    images = [make_jpeg((200, 120, 90)), make_jpeg((90, 60, 40), gps=True), make_jpeg((10, 200, 10))]
    probe = classifier(CLOSED_PORT)
    with served(probe, images) as url, cassette(path, mode="record") as recording, classifier(url) as clf:
        recorded = clf.classify_batch(images)
    assert recording.interactions == 3

    connects: list = []
    real_connect = __import__("socket").socket.connect
    monkeypatch.setattr(
        "socket.socket.connect", lambda sock, addr, *a: connects.append(addr) or real_connect(sock, addr, *a)
    )
    with cassette(path) as replay, classifier(CLOSED_PORT) as clf:
        replayed = clf.classify_batch(images)
        again = clf.classify(images[1])
    assert comparable(replayed) == comparable(recorded)
    assert again.labels == recorded[1].labels and again.request_id == recorded[1].request_id
    assert [p.top.label for p in replayed] == expected_tops(probe, images)
    assert replay.play_count == 4 and connects == [] and replay.blocked == []

    text = path.read_text()
    for secret in (AWS_KEY_ID, AWS_SECRET, AWS_SESSION_TOKEN[:24], "CanaryCamera"):
        assert secret not in text
    assert "authorization" not in text.lower() and "x-amz-" not in text.lower()

    with (
        pytest.raises(CassetteMiss, match="jumpstart-ic-derm/invocations"),
        cassette(path),
        classifier(CLOSED_PORT, max_retries=0) as clf,
    ):
        clf.classify(make_jpeg((1, 2, 3)))
