"""Cassette machinery: what is stored, how requests match, the modes, and that replay never connects.

Exercised with plain ``requests`` against a loopback server; the adapters' own stacks (boto3, azure-core,
google-auth) are covered in tests/e2e/test_recorded_*.py.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket

import pytest
import requests
import yaml

from cloudderm.testing import cassette
from cloudderm.testing.cassettes import body_sha256
from cloudderm.testing.errors import (
    CassetteError,
    CassetteLeak,
    CassetteMiss,
    CassetteNotFound,
    NetworkBlocked,
)
from cloudderm.testing.redact import (
    REDACTED,
    describe_body,
    is_token_exchange,
    keep_headers,
    redact_response_body,
    redact_uri,
    request_key,
)
from tests.conftest import make_jpeg
from tests.e2e.loopback import Loopback, Seen, json_reply, loopback_only

pytestmark = pytest.mark.usefixtures(loopback_only.__name__)


def echo(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    return json_reply({"path": seen.path, "sha": hashlib.sha256(seen.body).hexdigest()[:12]})


# ---- what is stored ---------------------------------------------------------------------------------------
def test_raw_image_body_is_only_hashed() -> None:
    image = make_jpeg((10, 20, 30), gps=True)
    info = describe_body(image)
    assert info == {
        "sha256": hashlib.sha256(image).hexdigest(),
        "length": len(image),
        "media_type": "image/jpeg",
    }


def test_json_body_keeps_structure_with_images_hashed_and_secrets_redacted() -> None:
    image = make_jpeg((10, 20, 30))
    b64 = base64.b64encode(image).decode()
    body = {
        "input_data": {"columns": ["image"], "data": [b64, f"data:image/jpeg;base64,{b64}"]},
        "parameters": {"maxPredictions": 3},
        "api_key": "abc123abc123abc123",
        "auth": {"client_secret": "s3cr3t-value", "retries": 2},
        "long_blob": base64.b64encode(bytes(range(256))).decode(),
    }
    info = describe_body(json.dumps(body).encode())
    stored = info["json"]
    marker = f"<image/jpeg sha256:{hashlib.sha256(image).hexdigest()} len={len(image)}>"
    assert stored["input_data"] == {"columns": ["image"], "data": [marker, marker]}
    assert stored["parameters"] == {"maxPredictions": 3}
    assert stored["api_key"] == REDACTED and stored["auth"]["client_secret"] == REDACTED
    assert stored["auth"]["retries"] == 2
    assert stored["long_blob"].startswith("<base64 sha256:") and stored["long_blob"].endswith("len=256>")
    assert b64[:20] not in json.dumps(info)


def test_json_bodies_match_whatever_the_key_order_or_spacing() -> None:
    a = b'{"instances": [{"content": "eA=="}], "parameters": {"maxPredictions": 7, "confidenceThreshold": 0}}'
    b = b'{"parameters":{"confidenceThreshold":0,"maxPredictions":7},"instances":[{"content":"eA=="}]}'
    assert describe_body(a)["sha256"] == describe_body(b)["sha256"] == body_sha256(a)
    assert describe_body(a)["sha256"] != describe_body(a.replace(b"7", b"8"))["sha256"]
    assert describe_body(b"not json")["sha256"] == hashlib.sha256(b"not json").hexdigest()


def test_secret_headers_are_dropped_and_harmless_ones_kept() -> None:
    headers = {
        "Authorization": "Bearer x",
        "X-Amz-Security-Token": "t",
        "X-Amz-Date": "20260101T000000Z",
        "x-goog-api-client": "gl-python",
        "api-key": "k",
        "Ocp-Apim-Subscription-Key": "k",
        "Prediction-Key": "k",
        "Cookie": "a=b",
        "Set-Cookie": "a=b",
        "X-Custom-Token": "t",
        "x-ms-client-secret": "s",
        "Content-Type": "application/json",
        "azureml-model-deployment": "blue",
        "x-amzn-RequestId": "req-1",
    }
    assert keep_headers(headers) == {
        "Content-Type": ["application/json"],
        "azureml-model-deployment": ["blue"],
        "x-amzn-RequestId": ["req-1"],
    }


def test_uri_loses_credentials_and_matching_ignores_scheme_port_and_query_order() -> None:
    uri = "https://user:pw@Host.example:8443/a%3Ab?z=1&api-version=2&sig=SECRET&X-Amz-Signature=S&code=C"
    assert redact_uri(uri) == "https://Host.example:8443/a%3Ab?api-version=2&z=1"
    assert request_key("post", uri) == ("POST", "host.example", "/a:b", (("api-version", "2"), ("z", "1")))
    assert request_key("POST", "http://host.example/a:b?api-version=2&z=1") == request_key("POST", uri)
    assert request_key("POST", "http://host.example/a:b?z=2&api-version=2") != request_key("POST", uri)


@pytest.mark.parametrize(
    ("uri", "body"),
    [
        ("https://oauth2.googleapis.com/token", b"grant_type=x"),
        ("https://login.microsoftonline.com/tenant/oauth2/v2.0/token", b"client_id=a"),
        ("https://sts.amazonaws.com/", b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15"),
        ("https://sts.eu-west-2.amazonaws.com/", b""),
        ("http://169.254.169.254/latest/api/token", b""),
        ("http://169.254.169.254/metadata/identity/oauth2/token?resource=x", b""),
        ("http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token", b""),
        ("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a:generateAccessToken", b"{}"),
        ("http://127.0.0.1:5000/", b"Action=AssumeRole&RoleArn=x"),
        ("http://127.0.0.1:5000/custom", b"grant_type=client_credentials&client_id=a"),
        (
            "https://idp.example/exchange",
            b'{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange"}',
        ),
    ],
)
def test_token_exchanges_are_recognised(uri: str, body: bytes) -> None:
    assert is_token_exchange("POST", uri, body)


@pytest.mark.parametrize(
    ("uri", "body"),
    [
        (
            "https://europe-west2-aiplatform.googleapis.com/v1/projects/p/locations/l/endpoints/1:predict",
            b"{}",
        ),
        ("https://runtime.sagemaker.eu-west-2.amazonaws.com/endpoints/ep/invocations", b"\xff\xd8\xff"),
        ("https://derm.uksouth.inference.ml.azure.com/score", b'{"input_data": {}}'),
    ],
)
def test_inference_calls_are_not_token_exchanges(uri: str, body: bytes) -> None:
    assert not is_token_exchange("POST", uri, body)


def test_response_bodies_are_kept_byte_for_byte_unless_a_secret_field_is_redacted() -> None:
    plain = b'{"predictions": [{"labels": ["mel"]}],  "keep":  "spacing"}'
    assert redact_response_body(plain) is plain
    secret = redact_response_body(b'{"access_token": "ya29.x", "expires_in": 3599}')
    assert json.loads(secret) == {"access_token": REDACTED, "expires_in": 3599}


def test_stored_response_has_secret_fields_redacted_and_length_fixed(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    reply = {"labels": ["nv"], "session_token": "tok-0123456789"}
    server = Loopback(lambda seen: json_reply(reply, **{"Set-Cookie": "sid=abc"}))
    with server, cassette(path, mode="record"):
        assert requests.get(server.url).json() == reply
    document = yaml.safe_load(path.read_text())
    response = document["interactions"][0]["response"]
    assert json.loads(response["body"]) == {"labels": ["nv"], "session_token": REDACTED}
    assert response["headers"]["Content-Length"] == [str(len(response["body"].encode()))]
    assert "Set-Cookie" not in response["headers"]
    with cassette(path):
        assert requests.get(server.url).json()["session_token"] == REDACTED


def test_compressed_responses_are_stored_decoded(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    payload = json.dumps({"probs": [0.25, 0.75]}).encode()

    def gzipped(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip.compress(payload)

    with Loopback(gzipped) as server, cassette(path, mode="record"):
        assert requests.get(server.url).content == payload
    response = yaml.safe_load(path.read_text())["interactions"][0]["response"]
    assert response["body"] == '{"probs": [0.25, 0.75]}'
    assert "content-encoding" not in {name.lower() for name in response["headers"]}
    with cassette(path):
        assert requests.get(server.url).content == payload


# ---- modes ------------------------------------------------------------------------------------------------
def test_replay_of_a_missing_cassette_says_how_to_record(tmp_path) -> None:
    with pytest.raises(CassetteNotFound, match="--cloudderm-record=once"), cassette(tmp_path / "none.yaml"):
        pass


def test_unknown_mode_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="replay, record, auto"), cassette(tmp_path / "c.yaml", mode="once"):  # type: ignore[arg-type]
        pass


def test_a_failed_recording_leaves_the_old_cassette_alone(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server:
        with cassette(path, mode="record"):
            requests.get(f"{server.url}/first")
        before = path.read_text()
        with pytest.raises(RuntimeError), cassette(path, mode="record"):
            requests.get(f"{server.url}/second")
            raise RuntimeError("test failed")
        assert path.read_text() == before
        with cassette(path, mode="record") as recording:
            requests.get(f"{server.url}/second")
            recording.discard()
        assert path.read_text() == before


def test_record_replaces_the_whole_cassette(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server:
        with cassette(path, mode="record"):
            requests.get(f"{server.url}/old")
        with cassette(path, mode="record"):
            requests.get(f"{server.url}/new")
    text = path.read_text()
    assert "/new" in text and "/old" not in text


def test_auto_records_once_then_replays(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server, cassette(path, mode="auto") as first:
        recorded = requests.get(f"{server.url}/x").json()
    assert first.recording and path.is_file()
    with cassette(path, mode="auto") as second:
        assert requests.get(f"{server.url}/x").json() == recorded
    assert not second.recording and second.play_count == 1


def test_answers_to_one_request_play_in_order_then_the_last_repeats(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    counter = iter(range(100))

    def counting(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        n = next(counter)
        return json_reply({"n": n}, 429 if n == 0 else 200)

    with Loopback(counting) as server:
        with cassette(path, mode="record") as recording:
            recorded = [requests.post(f"{server.url}/p", data=b"same").status_code for _ in range(2)]
        assert recording.interactions == 2 and recorded == [429, 200]
    with cassette(path):
        replies = [requests.post(f"{server.url}/p", data=b"same") for _ in range(4)]
    assert [r.status_code for r in replies] == [429, 200, 200, 200]
    assert [r.json()["n"] for r in replies] == [0, 1, 1, 1]


# ---- replay never reaches the network ---------------------------------------------------------------------
def test_unmatched_request_names_cassette_and_request_and_opens_no_socket(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server, cassette(path, mode="record"):
        requests.post(f"{server.url}/score?b=2&a=1", data=b"image-one")
    connects: list = []
    real = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda s, a, *r: connects.append(a) or real(s, a, *r))
    with pytest.raises(CassetteMiss) as info, cassette(path) as replay:
        assert requests.post(f"{server.url}/score?a=1&b=2", data=b"image-one").ok
        requests.post(f"{server.url}/score?a=1&b=2", data=b"image-two")
    miss = info.value
    assert (miss.cassette, miss.method, miss.host, miss.path) == (str(path), "POST", "127.0.0.1", "/score")
    assert miss.body_sha256 == hashlib.sha256(b"image-two").hexdigest()
    assert f"POST 127.0.0.1/score?a=1&b=2 body sha256:{miss.body_sha256} (9 bytes)" in str(miss)
    assert hashlib.sha256(b"image-one").hexdigest() in str(miss)
    assert connects == [] and replay.blocked == []


def test_a_miss_swallowed_by_the_code_under_test_still_fails_the_block(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server, cassette(path, mode="record"):
        requests.get(f"{server.url}/known")
    with pytest.raises(CassetteMiss, match="/unknown"), cassette(path):
        try:
            requests.get(f"{server.url}/unknown")
        except Exception:
            pass


def test_direct_socket_connections_are_blocked_during_replay(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    with Loopback(echo) as server, cassette(path, mode="record"):
        requests.get(server.url)
    port = int(server.url.rsplit(":", 1)[1])
    original = socket.socket.connect
    with (
        pytest.raises(NetworkBlocked),
        cassette(path) as replay,
        socket.socket() as raw,
        pytest.raises(NetworkBlocked, match="blocked"),
    ):
        raw.connect(("127.0.0.1", port))
    assert replay.blocked == [repr(("127.0.0.1", port))]
    assert socket.socket.connect is original


def test_a_recording_that_would_leak_image_data_is_not_written(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    image_b64 = base64.b64encode(make_jpeg((5, 5, 5))).decode()
    with Loopback(lambda seen: json_reply({"echo": image_b64})) as server:
        with pytest.raises(CassetteLeak, match="jpeg") as info, cassette(path, mode="record"):
            requests.get(server.url)
        assert not path.exists() and info.value.findings
        with cassette(path, mode="record", scan=False):
            requests.get(server.url)
    assert path.exists()


def test_a_foreign_cassette_file_is_refused(tmp_path) -> None:
    path = tmp_path / "vcr.yaml"
    path.write_text("interactions: []\nversion: 1\n")
    with pytest.raises(CassetteError, match="cloudderm-cassette/1"), cassette(path):
        pass


# ---- packaging --------------------------------------------------------------------------------------------
def test_cassette_without_vcrpy_names_the_extra(monkeypatch) -> None:
    import sys

    import cloudderm.testing
    from cloudderm.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "vcr", None)
    with pytest.raises(MissingDependencyError, match=r"cloudderm\[test\]"):
        cloudderm.testing.cassette  # noqa: B018


def test_the_scanner_needs_neither_vcrpy_nor_an_http_library() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    code = (
        "import sys, cloudderm.testing.scan as s; "
        "print(sorted(m for m in ('vcr', 'requests', 'urllib3', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
