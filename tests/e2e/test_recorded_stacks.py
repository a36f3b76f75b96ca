"""The recorder sees every transport the cloud adapters use, and keeps no secret and no pixel.

Each test records against a loopback server (moto's ThreadedMotoServer for boto3, a local HTTP server for
azure-core and google-auth), stops the server, then replays with the network blocked. Canary credentials
and a JPEG carrying GPS EXIF are sent while recording; the cassette must hold none of them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from cloudderm.testing import cassette
from cloudderm.testing.errors import CassetteMiss
from cloudderm.testing.scan import find_leaks
from tests.conftest import make_jpeg
from tests.e2e.emulator_support import hash_emulator
from tests.e2e.loopback import (
    REGION,
    Loopback,
    Seen,
    json_reply,
    loopback_only,
    moto_server,
    queue_sagemaker_results,
)

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
pytest.importorskip("azure.core")
pytest.importorskip("google.auth")
pytestmark = pytest.mark.usefixtures(loopback_only.__name__)

AWS_KEY_ID = "AKIAZ7CANARY0000001Q"
AWS_SECRET = "cAnArY/sEcReT+aws0123456789abcdefGHIJKLm"
AWS_SESSION_TOKEN = "IQoJb3JpZ2luX2VjECanary" + "Zm9vYmFy" * 12
AZURE_KEY = "AzCanaryKey0123456789abcdefghijk"
BEARER_JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYW5hcnktdXNlciJ9.c2lnbmF0dXJlLWNhbmFyeQ"
SAS_SIG = "sv0CanarySASsignature0123456789abcdef%3D"
CLIENT_SECRET = "canary-client-secret-0123456789"
COOKIE = "session=canary-cookie-0123456789"


def gps_jpeg() -> bytes:
    return make_jpeg((90, 60, 40), gps=True)


def canaries(image: bytes) -> list[str]:
    """Every string that must never appear in a cassette, including encoded forms."""
    b64 = base64.b64encode(image).decode()
    return [
        AWS_KEY_ID,
        AWS_SECRET,
        quote(AWS_SECRET, safe=""),
        AWS_SESSION_TOKEN[:24],
        AZURE_KEY,
        BEARER_JWT.split(".")[0],
        BEARER_JWT.split(".")[1],
        SAS_SIG[:20],
        CLIENT_SECRET,
        "canary-cookie",
        "CanaryCamera",
        b64[:32],
        b64[-32:],
        "/9j/",
    ]


@pytest.fixture
def aws_canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", AWS_SESSION_TOKEN)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


def runtime_client(url: str):  # type: ignore[no-untyped-def]
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=url, config=config)


def invoke(client, image: bytes) -> tuple[dict, str]:  # type: ignore[no-untyped-def]
    reply = client.invoke_endpoint(
        EndpointName="jumpstart-ic-mnv2",
        Body=image,
        ContentType="application/x-image",
        Accept="application/json;verbose",
    )
    return json.loads(reply["Body"].read()), reply["InvokedProductionVariant"]


JUMPSTART = {"probabilities": [0.1, 0.7, 0.2], "labels": ["nv", "mel", "bkl"], "predicted_label": "mel"}


@contextlib.contextmanager
def no_connect(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Count real socket connects (any family) made inside the block."""
    calls: list = []
    original = socket.socket.connect

    def counting(sock, address, *args):  # type: ignore[no-untyped-def]
        calls.append(address)
        return original(sock, address, *args)

    monkeypatch.setattr(socket.socket, "connect", counting)
    yield calls
    monkeypatch.setattr(socket.socket, "connect", original)


# ---- boto3 / botocore (urllib3) ---------------------------------------------------------------------------
def test_boto3_invoke_endpoint_records_then_replays_offline(tmp_path, monkeypatch, aws_canaries) -> None:
    path = tmp_path / "sagemaker.yaml"
    image = gps_jpeg()
    with moto_server() as url:
        queue_sagemaker_results(url, [JUMPSTART])
        client = runtime_client(url)
        with cassette(path, mode="record") as recording:
            recorded = invoke(client, image)
        assert recording.interactions == 1
    # server stopped: only the cassette can answer now
    with no_connect(monkeypatch) as connects, cassette(path) as replay:
        replayed = invoke(runtime_client(url), image)
        again = invoke(runtime_client("http://127.0.0.1:9"), image)
    assert recorded == replayed == again == (JUMPSTART, "AllTraffic")
    assert replay.play_count == 2 and connects == [] and replay.blocked == []

    text = path.read_text()
    assert all(canary not in text for canary in canaries(image))
    for dropped in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):
        assert dropped.lower() not in text.lower()
    assert "media_type: image/jpeg" in text and f"length: {len(image)}" in text


def test_boto3_different_image_is_a_miss_and_never_connects(tmp_path, monkeypatch, aws_canaries) -> None:
    path = tmp_path / "sagemaker.yaml"
    image, other = gps_jpeg(), make_jpeg((10, 200, 10))
    with moto_server() as url:
        queue_sagemaker_results(url, [JUMPSTART])
        with cassette(path, mode="record"):
            invoke(runtime_client(url), image)
    with no_connect(monkeypatch) as connects, pytest.raises(CassetteMiss) as info, cassette(path) as replay:
        assert invoke(runtime_client(url), image)[0] == JUMPSTART
        invoke(runtime_client(url), other)
    miss = info.value
    from cloudderm.testing.cassettes import body_sha256

    assert (miss.method, miss.host, miss.path) == (
        "POST",
        "127.0.0.1",
        "/endpoints/jumpstart-ic-mnv2/invocations",
    )
    assert miss.body_sha256 == body_sha256(other) and miss.cassette == str(path)
    message = str(miss)
    assert str(path) in message and body_sha256(other) in message and body_sha256(image) in message
    assert "POST 127.0.0.1/endpoints/jumpstart-ic-mnv2/invocations" in message
    assert connects == [] and replay.blocked == []


def test_sts_calls_are_never_recorded(tmp_path, monkeypatch, aws_canaries) -> None:
    path = tmp_path / "sts.yaml"
    with moto_server() as url:
        queue_sagemaker_results(url, [JUMPSTART])
        sts = boto3.client("sts", region_name=REGION, endpoint_url=url)
        with cassette(path, mode="record") as recording:
            creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/derm", RoleSessionName="canary")
            invoke(runtime_client(url), gps_jpeg())
    assert recording.interactions == 1
    text = path.read_text()
    assert "AssumeRole" not in text and creds["Credentials"]["AccessKeyId"] not in text
    assert creds["Credentials"]["SessionToken"][:20] not in text


# ---- azure-core RequestsTransport (requests) --------------------------------------------------------------
def azure_score(url: str, image: bytes, **headers: str) -> tuple[int, object]:
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import HeadersPolicy, RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    body = {"input_data": {"columns": ["image"], "data": [base64.b64encode(image).decode()]}}
    policies = [HeadersPolicy(headers), RetryPolicy(retry_total=0)]
    with PipelineClient(base_url=url, policies=policies, transport=RequestsTransport()) as client:
        request = HttpRequest("POST", f"{url}/score", json=body)
        response = client.send_request(request)
        return response.status_code, response.json()


def test_azure_core_records_then_replays_offline(tmp_path, monkeypatch) -> None:
    path = tmp_path / "azureml.yaml"
    image = gps_jpeg()
    auth = {"Authorization": f"Bearer {AZURE_KEY}", "azureml-model-deployment": "blue"}
    with hash_emulator("derm", "azureml", azure_key=AZURE_KEY, azure_deployment="blue") as server:
        url = server.base_url
        with cassette(path, mode="record"):
            recorded = azure_score(url, image, **auth)
        seen = server.endpoint_stats("azureml", "derm")
        assert (seen.requests, seen.auth_failures) == (1, 0)  # the key was sent, and accepted
    with no_connect(monkeypatch) as connects, cassette(path) as replay:
        replayed = azure_score(url, image, **auth)
    assert recorded == replayed and recorded[0] == 200 and replay.play_count == 1 and connects == []
    text = path.read_text()
    assert all(canary not in text for canary in canaries(image))
    b64_hash = __import__("hashlib").sha256(image).hexdigest()
    assert f"<image/jpeg sha256:{b64_hash} len={len(image)}>" in text
    assert "azureml-model-deployment" in text  # harmless headers stay readable


def test_every_canary_kind_is_kept_out(tmp_path, monkeypatch, aws_canaries) -> None:
    """Secrets in headers, query, JSON request fields, response fields and cookies; a GPS photo."""
    path = tmp_path / "canaries.yaml"
    image = gps_jpeg()

    def leaky(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        payload = {"result": "ok", "access_token": BEARER_JWT, "refresh_token": CLIENT_SECRET}
        return json_reply(payload, **{"Set-Cookie": COOKIE, "x-ms-request-id": "r-1"})

    with moto_server() as aws_url, Loopback(leaky) as azure:
        queue_sagemaker_results(aws_url, [JUMPSTART])
        with cassette(path, mode="record"):
            invoke(runtime_client(aws_url), image)
            azure_score(
                azure.url + f"/?api-version=2024-01-01&sig={SAS_SIG}&code={CLIENT_SECRET}",
                image,
                **{
                    "Authorization": f"Bearer {BEARER_JWT}",
                    "api-key": AZURE_KEY,
                    "Ocp-Apim-Subscription-Key": AZURE_KEY,
                    "Prediction-Key": AZURE_KEY,
                    "Cookie": COOKIE,
                    "x-goog-api-key": AZURE_KEY,
                },
            )
            import requests

            requests.post(
                f"{azure.url}/score",
                json={"client_secret": CLIENT_SECRET, "password": CLIENT_SECRET, "image": image.hex()},
                headers={"X-Custom-Token": AZURE_KEY},
            )
    text = path.read_text()
    leaked = [canary for canary in canaries(image) if canary in text]
    assert leaked == []
    assert image.hex()[:40] not in text  # a hex-encoded image is still only hashed with the body
    assert find_leaks(path) == []
    assert "api-version" in text and "sig=" not in text and "<redacted>" in text


# ---- google-auth AuthorizedSession (requests), with a real OAuth token exchange ----------------------------
def service_account_info(token_uri: str) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "derm-proj",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": pem,
        "client_email": "canary@derm-proj.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


GOOGLE_TOKEN = "ya29.c.canary-access-token-0123456789abcdefghijklmnop"


def google_service(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    if seen.path.endswith("/token"):
        return json_reply({"access_token": GOOGLE_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
    digest = __import__("hashlib").sha256(seen.body).hexdigest()
    return json_reply({"predictions": [{"request_sha256": digest}]})  # the answer's shape is not under test


def predict_with(session, url: str, image: bytes) -> dict:  # type: ignore[no-untyped-def]
    body = {"instances": [{"content": base64.b64encode(image).decode()}], "parameters": {"maxPredictions": 3}}
    reply = session.post(
        f"{url}/v1/projects/derm-proj/locations/europe-west2/endpoints/42:predict", json=body
    )
    reply.raise_for_status()
    return reply.json()


def test_oauth_token_exchange_is_never_recorded(tmp_path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    path = tmp_path / "vertex-oauth.yaml"
    image = gps_jpeg()
    scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    with Loopback(google_service) as server:
        info = service_account_info(f"{server.url}/token")
        creds = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        with cassette(path, mode="record") as recording:
            recorded = predict_with(AuthorizedSession(creds), server.url, image)
        assert server.seen[0].path == "/token"
        sent = {k.lower(): v for k, v in server.seen[-1].headers.items()}
        assert sent["authorization"] == f"Bearer {GOOGLE_TOKEN}"
    assert recording.interactions == 1
    text = path.read_text()
    assert GOOGLE_TOKEN not in text and "assertion" not in text and "BEGIN PRIVATE KEY" not in text
    assert "grant_type" not in text and find_leaks(path) == []

    fresh = service_account.Credentials.from_service_account_info(info, scopes=scopes)
    with pytest.raises(CassetteMiss, match="credential exchange"), cassette(path):
        predict_with(AuthorizedSession(fresh), server.url, image)
    with cassette(path) as replay:
        assert predict_with(AuthorizedSession(AnonymousCredentials()), server.url, image) == recorded
    assert replay.play_count == 1


def test_recorded_cassettes_survive_a_round_trip_through_yaml(tmp_path: Path) -> None:
    """Bodies with quotes, newlines, unicode and trailing spaces replay byte for byte."""
    import requests

    tricky = '{"note": "line1\\nline2  ", "name": "naïve \\"quoted\\" ✓", "tab": "\\t"}\n  '

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/json"}, tricky.encode()

    path = tmp_path / "tricky.yaml"
    with Loopback(answer) as server, cassette(path, mode="record"):
        recorded = requests.get(f"{server.url}/x").content
    with cassette(path):
        assert requests.get(f"{server.url}/x").content == recorded == tricky.encode()
