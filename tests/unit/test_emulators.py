"""The emulators speak each provider's wire format: checked with plain HTTP, boto3 and the Vertex REST client.

Every request goes to 127.0.0.1 only. Expected scores come from the backing FakeClassifier itself, so a
test fails if the emulator reorders, drops or invents a score.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan
from cloudderm.emulate.vertex import VERTEX_MAX_REQUEST_BYTES
from cloudderm.images import prepare
from cloudderm.testing.fakes import HAM_CODES, FakeClassifier
from tests.conftest import make_jpeg
from tests.unit.emulator_http import automl_body, b64, post

IMG = make_jpeg((200, 120, 90))


def expected_scores(fake: FakeClassifier, data: bytes) -> list[float]:
    """What the backend answers for these (clean RGB JPEG) upload bytes, in model label order.

    The backend scores the very bytes that arrived, so its answer is keyed by their own hash.
    """
    return [score for _, score in fake.scores_for(hashlib.sha256(data).hexdigest())]


@pytest.fixture
def fake() -> FakeClassifier:
    return FakeClassifier("fake")


@pytest.fixture
def emu(fake: FakeClassifier):
    endpoints = {
        "jsv": EmulatedEndpoint(fake, sagemaker_format="jumpstart-verbose"),
        "js": EmulatedEndpoint(fake, sagemaker_format="jumpstart"),
        "bi": EmulatedEndpoint(fake, sagemaker_format="builtin"),
        "hf": EmulatedEndpoint(
            fake, sagemaker_format="huggingface", azure_flavor="transformers", azure_key="k2"
        ),
    }
    with Emulator(endpoints) as emulator:
        yield emulator


@pytest.fixture
def sm(emu: Emulator):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=emu.sagemaker_url,
        region_name="eu-west-2",
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


# ---- SageMaker -----------------------------------------------------------------------------------------
def test_sagemaker_jumpstart_verbose_body_and_headers(sm, fake: FakeClassifier) -> None:
    response = sm.invoke_endpoint(
        EndpointName="jsv", Body=IMG, ContentType="application/x-image", Accept="application/json;verbose"
    )
    body = json.loads(response["Body"].read())
    assert set(body) == {"probabilities", "labels", "predicted_label"}
    assert body["labels"] == HAM_CODES
    assert body["probabilities"] == pytest.approx(expected_scores(fake, IMG))
    assert body["predicted_label"] == HAM_CODES[max(range(7), key=lambda i: body["probabilities"][i])]
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert len(response["ResponseMetadata"]["RequestId"]) == 36


def test_sagemaker_jumpstart_plain_json_has_probabilities_only(sm, fake: FakeClassifier) -> None:
    response = sm.invoke_endpoint(
        EndpointName="js", Body=IMG, ContentType="application/x-image", Accept="application/json"
    )
    body = json.loads(response["Body"].read())
    assert list(body) == ["probabilities"]
    assert body["probabilities"] == pytest.approx(expected_scores(fake, IMG))


def test_sagemaker_jumpstart_refuses_other_content_types_as_a_model_error(sm) -> None:
    with pytest.raises(sm.exceptions.ModelError) as info:
        sm.invoke_endpoint(EndpointName="jsv", Body=IMG, ContentType="image/jpeg")
    assert info.value.response["OriginalStatusCode"] == 415
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424


def test_sagemaker_builtin_json_and_jsonlines(sm, fake: FakeClassifier) -> None:
    plain = sm.invoke_endpoint(
        EndpointName="bi", Body=IMG, ContentType="image/jpeg", Accept="application/json"
    )
    assert json.loads(plain["Body"].read()) == pytest.approx(expected_scores(fake, IMG))
    lines = sm.invoke_endpoint(
        EndpointName="bi", Body=IMG, ContentType="application/x-image", Accept="application/jsonlines"
    )
    assert lines["ContentType"] == "application/jsonlines"
    record = json.loads(lines["Body"].read().decode().strip())
    assert list(record) == ["prediction"]
    assert record["prediction"] == pytest.approx(expected_scores(fake, IMG))


def test_sagemaker_huggingface_toolkit_top5_and_x_image_rejected(sm, fake: FakeClassifier) -> None:
    response = sm.invoke_endpoint(EndpointName="hf", Body=IMG, ContentType="image/jpeg")
    body = json.loads(response["Body"].read())
    ranked = sorted(zip(HAM_CODES, expected_scores(fake, IMG)), key=lambda ls: ls[1], reverse=True)[:5]
    assert [item["label"] for item in body] == [label for label, _ in ranked]
    assert [item["score"] for item in body] == pytest.approx([score for _, score in ranked])
    assert all(set(item) == {"label", "score"} for item in body)
    with pytest.raises(sm.exceptions.ModelError) as info:
        sm.invoke_endpoint(EndpointName="hf", Body=IMG, ContentType="application/x-image")
    error = info.value.response
    assert error["OriginalStatusCode"] == 400
    assert "application/x-image" in error["OriginalMessage"]
    assert error["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/hf")
    assert error["Error"]["Code"] == "ModelError"


def test_sagemaker_unknown_endpoint_is_a_validation_error(sm) -> None:
    with pytest.raises(sm.exceptions.ValidationError, match="Endpoint nope of account"):
        sm.invoke_endpoint(EndpointName="nope", Body=IMG, ContentType="application/x-image")


@pytest.mark.parametrize(
    ("kind", "throttle", "code", "status"),
    [
        ("429", "ThrottlingException", "ThrottlingException", 400),
        ("429", "ModelNotReadyException", "ModelNotReadyException", 429),
        ("503", "ThrottlingException", "ServiceUnavailable", 503),
        ("424", "ThrottlingException", "ModelError", 424),
    ],
)
def test_sagemaker_injected_faults_parse_to_the_right_boto3_codes(
    fake: FakeClassifier, kind: str, throttle: str, code: str, status: int
) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config
    from botocore.exceptions import ClientError

    endpoint = EmulatedEndpoint(fake, sagemaker_throttle=throttle)
    with Emulator({"e": endpoint}, faults=FaultPlan(rates={kind: 1.0}, retry_after_s=2)) as emu:
        client = boto3.client(
            "sagemaker-runtime",
            endpoint_url=emu.sagemaker_url,
            region_name="eu-west-2",
            aws_access_key_id="a",
            aws_secret_access_key="b",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(EndpointName="e", Body=IMG, ContentType="application/x-image")
    response = info.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["ResponseMetadata"]["RequestId"]
    if kind == "429":
        assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "2"
    if code == "ModelError":
        assert response["OriginalStatusCode"] == 500


def test_sagemaker_accepts_any_signature(emu: Emulator, fake: FakeClassifier) -> None:
    status, headers, body = post(
        f"{emu.sagemaker_url}/endpoints/js/invocations",
        IMG,
        {
            "Content-Type": "application/x-image",
            "Authorization": "AWS4-HMAC-SHA256 Credential=nobody/garbage",
        },
    )
    assert status == 200
    assert json.loads(body)["probabilities"] == pytest.approx(expected_scores(fake, IMG))
    assert headers["x-amzn-RequestId"]


# ---- Azure ML --------------------------------------------------------------------------------------------
def test_azure_automl_one_item_per_image(emu: Emulator, fake: FakeClassifier) -> None:
    other = make_jpeg((20, 40, 200), (40, 40))
    status, headers, body = post(
        emu.azure_scoring_uri("jsv"),
        automl_body(IMG, other),
        {
            "Authorization": "Bearer emulator-key",
            "Content-Type": "application/json",
            "azureml-model-deployment": "blue",
        },
    )
    assert status == 200
    items = json.loads(body)
    assert [set(item) for item in items] == [{"probs", "labels"}] * 2
    assert items[0]["labels"] == HAM_CODES
    assert items[0]["probs"] == pytest.approx(expected_scores(fake, IMG))
    assert items[1]["probs"] == pytest.approx(expected_scores(fake, other))
    assert headers["x-ms-request-id"]
    assert headers["azureml-model-deployment"] == "blue"
    assert emu.endpoint_stats("azureml", "jsv").deployments == {"blue": 1}


def test_azure_catalog_rows_with_index_are_accepted(emu: Emulator, fake: FakeClassifier) -> None:
    wrapped = base64.encodebytes(IMG).decode()  # the catalog sample encodes with line breaks
    body = json.dumps({"input_data": {"columns": ["image"], "index": [0], "data": [[wrapped]]}}).encode()
    status, _, answer = post(emu.azure_scoring_uri("jsv"), body, {"Authorization": "Bearer emulator-key"})
    assert status == 200
    assert json.loads(answer)[0]["probs"] == pytest.approx(expected_scores(fake, IMG))


def test_azure_transformers_flavor_ranked_lists(emu: Emulator, fake: FakeClassifier) -> None:
    body = json.dumps({"input_data": [b64(IMG)]}).encode()
    status, _, answer = post(emu.azure_scoring_uri("hf"), body, {"Authorization": "Bearer k2"})
    assert status == 200
    (ranked,) = json.loads(answer)
    best = sorted(expected_scores(fake, IMG), reverse=True)[:5]
    assert [item["score"] for item in ranked] == pytest.approx(best)
    assert all(set(item) == {"label", "score"} for item in ranked)


@pytest.mark.parametrize("auth", [None, "Bearer wrong", "emulator-key", "Basic emulator-key"])
def test_azure_key_is_checked(emu: Emulator, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    status, _, _ = post(emu.azure_scoring_uri("jsv"), automl_body(IMG), headers)
    assert status == 401
    assert emu.endpoint_stats("azureml", "jsv").auth_failures == 1


def test_azure_bare_score_path_routes_by_key_and_unknown_deployment_is_404(emu: Emulator) -> None:
    status, _, _ = post(f"{emu.base_url}/score", automl_body(IMG), {"Authorization": "Bearer emulator-key"})
    assert status == 404  # three endpoints share that key: ambiguous, as with no endpoint at all
    status, _, answer = post(
        f"{emu.base_url}/score",
        json.dumps({"input_data": [b64(IMG)]}).encode(),
        {"Authorization": "Bearer k2"},
    )
    assert status == 200 and isinstance(json.loads(answer)[0], list)
    status, _, _ = post(
        emu.azure_scoring_uri("jsv"),
        automl_body(IMG),
        {"Authorization": "Bearer emulator-key", "azureml-model-deployment": "green"},
    )
    assert status == 404


@pytest.mark.parametrize(
    "body", [b"not json", b'{"input_data": {"columns": ["text"], "data": ["x"]}}', b"{}"]
)
def test_azure_bad_bodies_are_400(emu: Emulator, body: bytes) -> None:
    status, _, answer = post(emu.azure_scoring_uri("jsv"), body, {"Authorization": "Bearer emulator-key"})
    assert status == 400
    assert json.loads(answer)["message"]


def test_azure_faults_carry_the_documented_headers(fake: FakeClassifier) -> None:
    plans = {
        "azureml/a": FaultPlan(rates={"424": 1.0}),
        "azureml/b": FaultPlan(rates={"429": 1.0}, retry_after_s=3),
    }
    with Emulator({"a": fake, "b": fake}, faults=plans) as emu:
        status, headers, _ = post(
            emu.azure_scoring_uri("a"), automl_body(IMG), {"Authorization": "Bearer emulator-key"}
        )
        assert status == 424
        assert headers["ms-azureml-model-error-statuscode"] == "500"
        assert headers["ms-azureml-model-error-reason"]
        status, headers, _ = post(
            emu.azure_scoring_uri("b"), automl_body(IMG), {"Authorization": "Bearer emulator-key"}
        )
        assert status == 429
        assert headers["Retry-After"] == "3"


# ---- Vertex AI -------------------------------------------------------------------------------------------
def vertex_url(emu: Emulator, name: str, query: str = "") -> str:
    return f"{emu.vertex_api_endpoint}/v1/projects/p1/locations/europe-west2/endpoints/{name}:predict{query}"


def test_vertex_predictions_ranked_thresholded_and_capped(emu: Emulator, fake: FakeClassifier) -> None:
    scores = dict(zip(HAM_CODES, expected_scores(fake, IMG)))
    threshold = sorted(scores.values())[2]  # keeps five labels
    body = json.dumps(
        {
            "instances": [{"content": b64(IMG)}],
            "parameters": {"confidenceThreshold": threshold, "maxPredictions": 4},
        }
    )
    status, _, answer = post(vertex_url(emu, "js", "?$alt=json;enum-encoding=int"), body.encode())
    assert status == 200
    payload = json.loads(answer)
    assert set(payload) == {"predictions", "deployedModelId", "model", "modelDisplayName", "modelVersionId"}
    (prediction,) = payload["predictions"]
    expected = sorted((s, lbl) for lbl, s in scores.items() if s >= threshold)[::-1][:4]
    assert prediction["displayNames"] == [lbl for _, lbl in expected]
    assert prediction["confidences"] == pytest.approx([s for s, _ in expected])
    assert len(prediction["ids"]) == 4 and all(i.isdigit() for i in prediction["ids"])
    assert payload["model"].startswith("projects/p1/locations/europe-west2/models/")
    assert payload["deployedModelId"].isdigit()
    assert payload["modelDisplayName"] == fake.model_id


def test_vertex_defaults_return_every_label_up_to_ten(emu: Emulator) -> None:
    body = json.dumps({"instances": [{"content": b64(IMG)}, {"content": b64(IMG)}]}).encode()
    status, _, answer = post(vertex_url(emu, "js"), body)
    predictions = json.loads(answer)["predictions"]
    assert status == 200 and len(predictions) == 2
    assert sorted(predictions[0]["displayNames"]) == HAM_CODES


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{", 400),
        (b'{"instances": []}', 400),
        (b'{"instances": [{"bytes": "x"}]}', 400),
        (b"x" * (VERTEX_MAX_REQUEST_BYTES + 1), 400),
    ],
)
def test_vertex_errors_use_the_google_shape(emu: Emulator, body: bytes, status: int) -> None:
    code, _, answer = post(vertex_url(emu, "js"), body)
    error = json.loads(answer)["error"]
    assert code == status == error["code"]
    assert error["status"] == "INVALID_ARGUMENT" and error["message"]


def test_vertex_unknown_endpoint_is_not_found(emu: Emulator) -> None:
    code, _, answer = post(
        vertex_url(emu, "missing"), json.dumps({"instances": [{"content": b64(IMG)}]}).encode()
    )
    assert code == 404 and json.loads(answer)["error"]["status"] == "NOT_FOUND"


def test_vertex_rest_client_talks_to_the_emulator(fake: FakeClassifier) -> None:
    aiplatform = pytest.importorskip("google.cloud.aiplatform_v1")
    from google.api_core import exceptions
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials

    with Emulator(
        {"skin": fake, "busy": EmulatedEndpoint(fake, faults=FaultPlan(rates={"429": 1.0}))}
    ) as emu:
        client = aiplatform.PredictionServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=emu.vertex_api_endpoint),
        )
        response = client.predict(
            endpoint=emu.vertex_endpoint_path("skin"),
            instances=[{"content": b64(IMG)}],
            parameters={"maxPredictions": 3},
        )
        (prediction,) = [dict(p) for p in response.predictions]
        assert list(prediction["confidences"]) == pytest.approx(
            sorted(expected_scores(fake, IMG), reverse=True)[:3]
        )
        assert response.model_display_name == fake.model_id
        with pytest.raises(exceptions.TooManyRequests):
            client.predict(endpoint=emu.vertex_endpoint_path("busy"), instances=[{"content": b64(IMG)}])
        with pytest.raises(exceptions.NotFound):
            client.predict(
                endpoint=emu.vertex_endpoint_path("skin").replace("/skin", "/nope"),
                instances=[{"content": b64(IMG)}],
            )


# ---- routing, snippets, real payload shapes --------------------------------------------------------------
def test_an_upload_cut_off_midway_is_not_a_request(emu: Emulator, fake: FakeClassifier) -> None:
    """A client killed mid-upload (SIGKILL in the resume tests) sent no image: nothing scored or counted."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(emu.sagemaker_url)
    head = (
        "POST /endpoints/jsv/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-image\r\n"
        f"Content-Length: {len(IMG)}\r\n\r\n"
    ).encode()
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(head + IMG[: len(IMG) // 2])
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1024) == b""  # closed without an answer
    assert emu.endpoint_stats("sagemaker", "jsv").per_image == {}
    status, _, _ = post(
        emu.sagemaker_url + "/endpoints/jsv/invocations", IMG, {"Content-Type": "application/x-image"}
    )
    assert status == 200 and sum(emu.endpoint_stats("sagemaker", "jsv").per_image.values()) == 1


def test_unknown_routes_and_methods(emu: Emulator) -> None:
    assert post(f"{emu.base_url}/elsewhere", b"")[0] == 404
    request = urllib.request.Request(f"{emu.base_url}/endpoints/js/invocations", method="GET")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405


def test_config_snippets_name_the_running_emulator(emu: Emulator) -> None:
    import yaml

    providers = yaml.safe_load(emu.providers_yaml(["hf"]))["providers"]
    assert providers["hf-sagemaker"] == {
        "adapter": "sagemaker",
        "endpoint_name": "hf",
        "region": "eu-west-2",
        "endpoint_url": emu.base_url,
        "response_format": "huggingface",
    }
    assert providers["hf-azureml"]["scoring_uri"] == f"{emu.base_url}/azureml/hf/score"
    assert providers["hf-azureml"]["api_key"] == "k2"
    assert providers["hf-azureml"]["response_format"] == "transformers"
    assert emu.azureml_config("js")["response_format"] == "automl"
    assert "labels" not in emu.sagemaker_config("jsv")
    for probability_only in ("js", "bi"):
        assert emu.sagemaker_config(probability_only)["labels"] == HAM_CODES
    assert providers["hf-vertex"]["endpoint_url"] == emu.base_url
    assert providers["hf-vertex"]["anonymous"] is True
    assert set(emu.fake_aws_env()) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
    with pytest.raises(KeyError, match="emulated: bi, hf, js, jsv"):
        emu.azure_scoring_uri("nope")


def shape(value: Any) -> Any:
    """The structure of a JSON value: key sets and element types, not values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__ if not isinstance(value, int) or isinstance(value, bool) else "float"


def test_answers_have_the_shape_of_real_provider_payloads(emu: Emulator, provider_payloads: Path) -> None:
    def real(name: str) -> Any:
        return json.loads((provider_payloads / name).read_text())

    _, _, azure = post(
        emu.azure_scoring_uri("jsv"), automl_body(IMG), {"Authorization": "Bearer emulator-key"}
    )
    assert shape(json.loads(azure)) == shape(real("azureml_automl_ic_response.json"))
    _, _, vertex = post(vertex_url(emu, "js"), json.dumps({"instances": [{"content": b64(IMG)}]}).encode())
    assert shape(json.loads(vertex)) == shape(real("vertex_automl_ic_predict_response.json"))
    _, _, hf = post(f"{emu.sagemaker_url}/endpoints/hf/invocations", IMG, {"Content-Type": "image/png"})
    # the PNG content type is accepted by the toolkit even though these bytes are a JPEG: Pillow sniffs
    assert shape(json.loads(hf)) == shape(real("hf_sagemaker_toolkit_ic_response.json"))
    assert len(json.loads(hf)) == len(real("hf_sagemaker_toolkit_ic_response.json"))
    spec = real("sagemaker_jumpstart_pytorch_ic_mobilenet_v2_spec.json")["predictor_specs"]
    for accept in spec["supported_accept_types"]:
        for content_type in spec["supported_content_types"]:
            status, _, _ = post(
                f"{emu.sagemaker_url}/endpoints/jsv/invocations",
                IMG,
                {"Content-Type": content_type, "Accept": accept},
            )
            assert status == 200


def test_backend_scores_the_uploaded_bytes_unchanged(emu: Emulator, fake: FakeClassifier) -> None:
    """A clean upload reaches the model byte for byte (as a container would decode it); an upload with an
    EXIF orientation tag is prepared first, so the model sees it upright."""
    from PIL import Image

    clean = prepare(make_jpeg((10, 200, 30), (40, 30))).data
    post(f"{emu.sagemaker_url}/endpoints/js/invocations", clean, {"Content-Type": "application/x-image"})
    assert fake.per_image[hashlib.sha256(clean).hexdigest()] == 1

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 200)).save(buf, format="JPEG", exif=exif.tobytes())
    rotated = buf.getvalue()
    status, _, _ = post(
        f"{emu.sagemaker_url}/endpoints/js/invocations", rotated, {"Content-Type": "application/x-image"}
    )
    assert status == 200
    upright = prepare(rotated)
    assert (upright.width, upright.height) == (30, 40)
    assert fake.per_image[upright.sha256] == 1 and fake.per_image[hashlib.sha256(rotated).hexdigest()] == 0


def test_server_backlog_takes_a_burst_of_connections_before_accepting() -> None:
    """The runner opens 16+ connections at once; socketserver's default backlog (5) would drop SYNs."""
    import socket

    from cloudderm.emulate.server import EmulatorServer

    server = EmulatorServer(None)  # type: ignore[arg-type]  # listening, nothing accepted yet
    clients = []
    try:
        for _ in range(48):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            clients.append(client)
        assert len(clients) == 48
    finally:
        for client in clients:
            client.close()
        server.server_close()
