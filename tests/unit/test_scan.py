"""The cassette scanner: every kind of secret and image data planted by hand is caught; clean text is not."""

from __future__ import annotations

import base64
import io
import json
import random

import pytest
import yaml

from cloudderm.testing.errors import CassetteLeak
from cloudderm.testing.scan import find_leaks, find_leaks_in_text, main, scan_cassettes
from tests.conftest import make_jpeg

DIGEST = "9d12082d0f27ca7ac81eac21ead98544ed2ef24adb41c07cf28589127eacf0d0"
AZURE_STORAGE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def cassette_text(*, request_headers=None, response_headers=None, body="", uri_query="") -> str:  # type: ignore[no-untyped-def]
    """A well-formed cassette whose interesting parts the test chooses."""
    document = {
        "format": "cloudderm-cassette/1",
        "interactions": [
            {
                "request": {
                    "method": "POST",
                    "uri": "https://europe-west2-aiplatform.googleapis.com/v1/projects/derm-proj/locations/"
                    f"europe-west2/endpoints/1234567890:predict{uri_query}",
                    "headers": {"Content-Type": ["application/json"], **(request_headers or {})},
                    "body": {
                        "sha256": DIGEST,
                        "length": 1234,
                        "hash_of": "canonical-json",
                        "json": {
                            "instances": [{"content": f"<image/jpeg sha256:{DIGEST} len=97649>"}],
                            "parameters": {"maxPredictions": 7, "confidenceThreshold": 0.0},
                        },
                    },
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {
                        "Content-Type": ["application/json"],
                        "x-amzn-RequestId": ["xXzQmMvfuVKWIU5cPjqPxurBrJOl5bFDqg9FxXcwYX9oDok3EGgh"],
                        "x-ms-request-id": ["6f1b0c2e-1d0c-4d5e-9a43-2f0b7c9d1e11"],
                        **(response_headers or {}),
                    },
                    "body": body
                    or json.dumps(
                        {
                            "predictions": [{"displayNames": ["mel", "nv"], "confidences": [0.7, 0.3]}],
                            "deployedModelId": "2683525253354749952",
                            "model": "projects/864499401284/locations/europe-west2/models/116743945614000128",
                        }
                    ),
                },
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False, width=110)


def kinds(text: str) -> set[str]:
    return {finding.kind for finding in find_leaks_in_text(text, "planted.yaml")}


JPEG = make_jpeg((90, 60, 40), gps=True)
PNG_BYTES = None


def png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def random_b64(n: int) -> str:
    return base64.b64encode(random.Random(n).randbytes(n)).decode()


def test_a_clean_cassette_has_no_findings() -> None:
    assert find_leaks_in_text(cassette_text()) == []


def test_ids_hashes_paths_and_redaction_markers_are_not_findings() -> None:
    body = json.dumps(
        {
            "name": "projects/myproject123456/locations/uscentral1/endpoints/123456789012345/deployedModels",
            "path": "/".join(["segmentNumber" + str(i) for i in range(12)]),
            "digest": "sha256:" + "ab" * 32,
            "access_token": "<redacted>",
            "max_tokens": 100,
            "token_type": "Bearer",
            "note": "Authorization: Bearer <redacted>",
        }
    )
    assert find_leaks_in_text(cassette_text(body=body)) == []


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        (
            {"request_headers": {"X-Amz-Credential": ["AKIAZ7CANARY0000001Q/20260101/eu-west-2"]}},
            "aws-access-key-id",
        ),
        (
            {"body": "aws_secret_access_key = cAnArY/sEcReT+aws0123456789abcdefGHIJKLm"},
            "aws-secret-access-key",
        ),
        (
            {"body": '{"Credentials": {"SessionToken": "IQoJb3JpZ2luX2VjEOr//////////wEaCWV1LXdlc3QtMiJH"}}'},
            "aws-session-token",
        ),
        ({"request_headers": {"Authorization": ["Bearer AzCanaryKey0123456789abcdefghijk"]}}, "bearer-token"),
        ({"body": "Basic dXNlcjpwYXNzd29yZDEyMw=="}, "basic-credentials"),
        ({"body": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjYW5hcnkifQ.c2ln"}, "jwt"),
        ({"body": "AIzaSyD-canary_0123456789abcdefghijklmno"}, "google-api-key"),
        ({"body": "ya29.a0AfH6SMBcanary0123456789"}, "google-oauth-token"),
        ({"body": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"}, "private-key"),
        (
            {"body": "DefaultEndpointsProtocol=https;AccountName=derm;AccountKey=Zm9vYmFyYmF6cXV4cXV1eA==;"},
            "azure-key",
        ),
        (
            {"body": AZURE_STORAGE_KEY},
            "azure-key",
        ),
        ({"request_headers": {"api-key": ["AzCanaryKey0123456789abcdefghijk"]}}, "secret-field"),
        (
            {"request_headers": {"Ocp-Apim-Subscription-Key": ["0123456789abcdef0123456789abcdef"]}},
            "secret-field",
        ),
        ({"body": '{"api_key": "AzCanaryKey0123456789abcdefghijk"}'}, "azure-key"),
        ({"body": '{"result": {"client_secret": "hunter2-hunter2"}}'}, "secret-field"),
        ({"uri_query": "?sv=2022-11-02&sig=abcdefghijklmnopqrstuvwxyz0123%3D"}, "azure-sas-signature"),
    ],
)
def test_each_kind_of_secret_is_caught(planted: dict, kind: str) -> None:
    assert kind in kinds(cassette_text(**planted))


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (base64.b64encode(JPEG).decode(), "jpeg-base64"),
        (json.dumps({"content": base64.b64encode(JPEG).decode()}).replace("/", "\\/"), "jpeg-base64"),
        (base64.urlsafe_b64encode(JPEG).decode(), "jpeg-base64"),
        (base64.b64encode(png()).decode(), "png-base64"),
        (base64.b64encode(b"Exif\x00\x00MM\x00*").decode(), "exif-base64"),
        (JPEG.decode("latin-1"), "jpeg-bytes"),
        (random_b64(300), "base64-run"),
    ],
)
def test_image_data_in_text_is_caught(body: str, kind: str) -> None:
    assert kind in kinds(cassette_text(body=body))


def test_binary_bodies_are_decoded_and_checked() -> None:
    document = yaml.safe_load(cassette_text())
    document["interactions"][0]["response"]["body"] = JPEG
    found = kinds(yaml.safe_dump(document))
    assert "image/jpeg (binary)" in found
    document["interactions"][0]["response"]["body"] = random.Random(1).randbytes(200)
    assert "binary-data" in kinds(yaml.safe_dump(document))


def test_findings_never_print_the_value(tmp_path) -> None:
    text = cassette_text(request_headers={"api-key": ["AzCanaryKey0123456789abcdefghijk"]})
    findings = find_leaks_in_text(text, "x.yaml")
    assert findings and all("AzCanaryKey0123456789" not in str(f) for f in findings)
    assert all(str(f).startswith("x.yaml:") for f in findings)


def test_directory_scan_reports_files_and_image_files(tmp_path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "clean.yaml").write_text(cassette_text())
    assert find_leaks(tmp_path) == [] and scan_cassettes(tmp_path) == [tmp_path / "ok" / "clean.yaml"]
    (tmp_path / "ok" / "photo.jpg").write_bytes(JPEG)
    (tmp_path / "leaky.yaml").write_text(cassette_text(body="Bearer AzCanaryKey0123456789abcdefghijk"))
    files = {f.file.rsplit("/", 1)[-1] for f in find_leaks(tmp_path)}
    assert files == {"photo.jpg", "leaky.yaml"}
    with pytest.raises(CassetteLeak) as info:
        scan_cassettes(tmp_path)
    assert len(info.value.findings) >= 2 and "leaky.yaml" in str(info.value)


def test_command_line_exit_codes(tmp_path, capsys) -> None:
    clean = tmp_path / "clean.yaml"
    clean.write_text(cassette_text())
    assert main([str(clean)]) == 0 and "no secrets" in capsys.readouterr().out
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(cassette_text(body="AKIAZ7CANARY0000001Q"))
    assert main([str(tmp_path)]) == 1 and "aws-access-key-id" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2
