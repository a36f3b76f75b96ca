"""Wire codecs of the managed vision services, on the real and documented payloads (no SDK, no network).

Payloads: ``../shared/data/providers/`` (see its SOURCES.md; skipped cleanly when absent) and
``tests/fixtures/providers/`` (the DetectLabels example, with its provenance in SOURCES.md there).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from cloudderm.adapters import cloud_vision, custom_vision, hf_inference, kserve_codec, rekognition
from cloudderm.adapters._http_faults import error_for_status, retry_after_from
from cloudderm.errors import ProviderHTTPError, ProviderThrottled, ProviderTimeout
from tests.conftest import REPO_ROOT, make_jpeg

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "providers"


# ---- Azure Custom Vision -----------------------------------------------------------------------------
def test_custom_vision_decodes_the_spec_example(provider_payloads: Path) -> None:
    example = json.loads(
        (provider_payloads / "azure_customvision_classify_image_nostore_example.json").read_text()
    )
    labels, details = custom_vision.decode_response(example["responses"]["200"]["body"])
    assert labels == [("Hemlock", 0.05149666), ("Japanese Cherry", 0.000193528482)]
    assert details == {
        "id": "951098b2-9b69-427b-bddb-d5cb618874e3",
        "iteration": "fe1e83c4-6f50-4899-9544-6bb08cf0e15a",
        "project": "64b822c5-8082-4b36-a426-27225f4aa18c",
    }
    params = example["parameters"]
    url = custom_vision.predict_url(
        params["Endpoint"], params["projectId"], params["publishedName"], store_image=False
    )
    assert url == (
        "https://westus.api.cognitive.microsoft.com/customvision/v3.1/Prediction/"
        "64b822c5-8082-4b36-a426-27225f4aa18c/classify/iterations/MyModel1/image/nostore"
    )
    assert custom_vision.region_from_endpoint(params["Endpoint"]) == "westus"


def test_custom_vision_stored_url_and_errors() -> None:
    url = custom_vision.predict_url("https://x.cognitiveservices.azure.com/", "p", "it 1", store_image=True)
    assert url.endswith("/classify/iterations/it%201/image")
    assert custom_vision.region_from_endpoint("https://x.cognitiveservices.azure.com") is None
    assert custom_vision.decode_error(b'{"code": "NotFound", "message": "Iteration not found"}') == (
        "NotFound",
        "Iteration not found",
    )
    assert custom_vision.decode_error(b"<html>bad gateway</html>") == (None, "<html>bad gateway</html>")
    for bad in ({}, {"predictions": [{"tagName": "a"}]}, {"predictions": [{"probability": 0.1}]}, []):
        with pytest.raises(custom_vision.MalformedResponse):
            custom_vision.decode_response(bad)


# ---- Google Cloud Vision ------------------------------------------------------------------------------
def test_cloud_vision_decodes_the_client_fixture(provider_payloads: Path) -> None:
    payload = json.loads((provider_payloads / "google_vision_label_detection_response.json").read_text())
    [(labels, details)] = cloud_vision.decode_response(payload, 1)
    assert labels == [("automobile", 0.9776855), ("vehicle", 0.947987), ("truck", 0.88429511)]
    assert details["mids"]["truck"] == "/m/07r04"
    with pytest.raises(cloud_vision.MalformedResponse, match="1 responses for 2 images"):
        cloud_vision.decode_response(payload, 2)


def test_cloud_vision_request_and_per_image_errors() -> None:
    body = cloud_vision.encode_request([b"abc", b"de"], 50)
    assert body["requests"][0] == {
        "image": {"content": base64.b64encode(b"abc").decode()},
        "features": [{"type": "LABEL_DETECTION", "maxResults": 50}],
    }
    assert len(body["requests"]) == 2
    assert len(json.dumps(body)) <= cloud_vision.request_bytes([3, 2])
    payload = {"responses": [{}, {"error": {"code": 3, "message": "Bad image data."}}]}
    with pytest.raises(cloud_vision.ImageError) as info:
        cloud_vision.decode_response(payload, 2)
    assert info.value.index == 1 and info.value.message == "Bad image data."
    assert cloud_vision.decode_response({"responses": [{}]}, 1) == [([], {})]  # no label found
    error = b'{"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}'
    assert cloud_vision.decode_error(error) == "RESOURCE_EXHAUSTED: Quota exceeded"


# ---- AWS Rekognition ------------------------------------------------------------------------------------
def test_rekognition_custom_labels_real_cli_output(provider_payloads: Path) -> None:
    payload = json.loads(
        (provider_payloads / "rekognition_detect_custom_labels_classification_cli_output.json").read_text()
    )
    labels, details = rekognition.decode_response(payload, custom=True)
    assert labels == [("LeafBlast", pytest.approx(0.999990005493164, abs=1e-15))]
    assert details["confidence_scale"] == "percent/100"
    with pytest.raises(rekognition.MalformedResponse, match="'Labels'"):
        rekognition.decode_response(payload, custom=False)


def test_rekognition_detect_labels_documented_example() -> None:
    payload = json.loads((FIXTURES / "rekognition_detect_labels_botocore_example.json").read_text())
    labels, _ = rekognition.decode_response(payload, custom=False)
    assert labels == [("People", 0.9925072479248047), ("Person", 0.9925074005126953)]
    # One label of the AWS CLI example (aws/aws-cli awscli/examples/rekognition/detect-labels.rst): parents.
    cli_item = {
        "Instances": [],
        "Confidence": 99.15271759033203,
        "Parents": [{"Name": "Vehicle"}, {"Name": "Transportation"}],
        "Name": "Automobile",
    }
    labels, details = rekognition.decode_response(
        {"Labels": [cli_item], "LabelModelVersion": "2.0"}, custom=False
    )
    assert details["parents"] == {"Automobile": ["Vehicle", "Transportation"]}
    assert details["label_model_version"] == "2.0"
    with pytest.raises(rekognition.MalformedResponse, match=r"0\.\.100"):
        rekognition.decode_response({"Labels": [{"Name": "x", "Confidence": 120}]}, custom=False)


def test_rekognition_error_codes() -> None:
    arn = "arn:aws:rekognition:us-east-1:123456789012:project/derm/version/derm.1/1700000000000"
    error = rekognition.error_for_code("ResourceNotReadyException", "not ready", 400, arn=arn)
    assert not error.retryable
    assert f"aws rekognition start-project-version --project-version-arn {arn}" in str(error)
    assert "inference hour" in str(error)
    throttled = rekognition.error_for_code("ThrottlingException", "slow down", 400, arn=None, retry_after=2.0)
    assert isinstance(throttled, ProviderThrottled) and throttled.retry_after == 2.0
    denied = rekognition.error_for_code("AccessDeniedException", "no", 400, arn=None)
    assert isinstance(denied, ProviderHTTPError) and "rekognition:DetectLabels" in str(denied)
    assert rekognition.error_for_code("InternalServerError", "boom", 500, arn=None).retryable


# ---- Hugging Face Inference -----------------------------------------------------------------------------
def test_hf_inference_decodes_the_real_cassette_body(provider_payloads: Path) -> None:
    payload = json.loads((provider_payloads / "hf_inference_image_classification_response.json").read_text())
    labels = hf_inference.decode_response(payload)
    assert labels[0] == ("brassiere, bra, bandeau", 0.11767438799142838)
    assert [name for name, _ in labels][2] == "cowboy hat, ten-gallon hat"
    assert len(labels) == 5 and hf_inference.is_partial(labels)  # the service's default top 5
    assert not hf_inference.is_partial([("a", 0.7), ("b", 0.3)])
    with pytest.raises(hf_inference.MalformedResponse):
        hf_inference.decode_response({"error": "Model is loading"})


# ---- KServe v2 / Open Inference Protocol ----------------------------------------------------------------
def test_kserve_spec_response_sample_is_reported_not_crashed(provider_payloads: Path) -> None:
    """The spec's own response sample lacks a comma after ``"id" : "42"``: the decoder says so."""
    text = (provider_payloads / "kserve_v2_infer_response_example.txt").read_bytes()
    with pytest.raises(
        kserve_codec.MalformedResponse, match="not valid JSON: Expecting ',' delimiter: line 3"
    ):
        kserve_codec.decode_response(text, 1, ["a", "b"])
    # With the missing comma restored, the sample is a [3, 2] FP32 tensor: three rows of two scores.
    fixed = text.replace(b'"42"\n', b'"42",\n')
    rows, meta = kserve_codec.decode_response(fixed, 3, ["x", "y"])
    assert rows == [[("x", 1.0), ("y", 1.1)], [("x", 2.0), ("y", 2.1)], [("x", 3.0), ("y", 3.1)]]
    assert meta == {"id": "42"}
    with pytest.raises(kserve_codec.MalformedResponse, match=r"shape \[3, 2\]; expected \[1, 3\]"):
        kserve_codec.decode_response(fixed, 1, ["x", "y", "z"])
    with pytest.raises(kserve_codec.MalformedResponse, match="no output tensor named 'probs'"):
        kserve_codec.decode_response(fixed, 3, ["x", "y"], output="probs")


def test_kserve_spec_request_sample_parses(provider_payloads: Path) -> None:
    body = (provider_payloads / "kserve_v2_infer_request_example.json").read_bytes()
    with pytest.raises(kserve_codec.MalformedResponse, match="exactly one input"):
        kserve_codec.parse_request(body)  # the sample has two inputs; an image model takes one
    one = json.loads(body)
    one["inputs"] = one["inputs"][:1]
    assert kserve_codec.parse_request(json.dumps(one).encode()) == (
        "input0",
        [2, 2],
        "UINT32",
        [1, 2, 3, 4],
        "output0",
    )


def test_kserve_tensor_encoding_follows_the_spec() -> None:
    image = make_jpeg((200, 100, 50), (40, 30))
    spec = kserve_codec.TensorSpec(
        name="pixel_values",
        datatype="FP32",
        layout="NCHW",
        size=(8, 6),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    body = kserve_codec.encode_tensor_request([image, image], spec, output="logits", request_id="r1")
    [tensor] = body["inputs"]
    assert (
        tensor["shape"] == [2, 3, 8, 6]
        and tensor["datatype"] == "FP32"
        and len(tensor["data"]) == 2 * 3 * 8 * 6
    )
    assert body["outputs"] == [{"name": "logits"}] and body["id"] == "r1"
    values = np.asarray(tensor["data"], dtype=np.float32).reshape(2, 3, 8, 6)
    # the centre pixel of a flat (200, 100, 50) image: (v / 255 - 0.5) / 0.5, JPEG-rounded (a few levels)
    expected = (np.array([200, 100, 50]) / 255.0 - 0.5) / 0.5
    assert np.allclose(values[0, :, 4, 3], expected, atol=8 / 255 / 0.5)
    uint8 = kserve_codec.TensorSpec(name="x", datatype="UINT8", layout="NHWC", size=(4, 4))
    [t] = kserve_codec.encode_tensor_request([image], uint8)["inputs"]
    assert t["shape"] == [1, 4, 4, 3] and all(isinstance(v, int) and 0 <= v <= 255 for v in t["data"])
    with pytest.raises(ValueError, match="UINT8 sends raw"):
        kserve_codec.TensorSpec(name="x", datatype="UINT8", mean=(0.4, 0.4, 0.4))
    raw = kserve_codec.encode_bytes_request([b"\x89PNG"], "image")["inputs"][0]
    assert raw == {
        "name": "image",
        "shape": [1],
        "datatype": "BYTES",
        "data": [base64.b64encode(b"\x89PNG").decode()],
    }
    assert kserve_codec.infer_path("derm", "2") == "/v2/models/derm/versions/2/infer"
    assert kserve_codec.decode_error(b'{"error": "model derm not ready"}') == "model derm not ready"


# ---- shared HTTP fault mapping -------------------------------------------------------------------------
def test_http_statuses_map_to_typed_errors() -> None:
    kwargs = {"provider": "p", "endpoint": "https://x", "auth_hint": "fix the key"}
    unauthorized = error_for_status(401, {}, "secret-abc leaked?", secrets=["secret-abc"], **kwargs)
    assert isinstance(unauthorized, ProviderHTTPError) and unauthorized.status == 401
    assert "fix the key" in str(unauthorized) and "secret-abc" not in str(unauthorized)
    throttled = error_for_status(429, {"Retry-After": "7"}, "slow", **kwargs)
    assert isinstance(throttled, ProviderThrottled) and throttled.retry_after == 7.0 and throttled.retryable
    assert isinstance(error_for_status(504, {}, "", **kwargs), ProviderTimeout)
    server = error_for_status(503, {}, "down", **kwargs)
    assert server.retryable and server.status == 503
    too_big = error_for_status(413, {}, "", size_hint="4 MB at most", **kwargs)
    assert "4 MB at most" in str(too_big) and not too_big.retryable
    assert retry_after_from({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
