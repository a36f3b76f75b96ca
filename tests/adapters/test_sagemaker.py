"""The SageMaker adapter end to end through real boto3: the conformance suite, a moto server, a slow socket.

Nothing here reaches AWS: calls go to moto on 127.0.0.1, to a local socket, or are answered by a botocore
``before-send`` hook before anything is sent (see ``sagemaker_support``). Credentials are fake; expectations
never include SigV4 headers.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("boto3")

from cloudderm.adapters.sagemaker import SageMakerClassifier
from cloudderm.errors import ProviderTimeout, ResponseFormatError
from cloudderm.testing import ClassifierConformance
from tests.adapters.sagemaker_support import (
    EVENT,
    FAKE_SECRET,
    HAM,
    REGION,
    answer_with,
    aws_env,  # noqa: F401  (autouse: the fake AWS environment)
    body_bytes,
    deterministic_verbose,
    make,
)
from tests.conftest import make_jpeg


# ---- the conformance suite, served offline by the before-send hook --------------------------------
class TestSageMakerConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self) -> Iterator[SageMakerClassifier]:
        clf = make("jumpstart-derm", response_format="jumpstart-verbose", concurrency=4)
        answer_with(clf, deterministic_verbose)
        yield clf
        clf.close()

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return [FAKE_SECRET]


# ---- end to end against a moto server on 127.0.0.1 -------------------------------------------------
@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A moto server on 127.0.0.1 (any free port) that accepts binary request bodies.

    moto 5's sagemaker-runtime decodes every request body as UTF-8 and answers 500 for JPEG or PNG bytes
    (a JPEG starts with 0xFF). The patch keeps the raw bytes and hands moto base64 text for the JSON key it
    caches results under; moto's own queueing and per-body caching are unchanged.
    """
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse
    from moto.server import ThreadedMotoServer

    original = SageMakerRuntimeResponse.invoke_endpoint

    def invoke_endpoint(self: Any) -> Any:
        if isinstance(self.body, bytes):
            self.body = base64.b64encode(self.body).decode("ascii")
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SageMakerRuntimeResponse, "use_raw_body", True)
        patch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()


def _post(url: str, payload: dict[str, Any] | None = None) -> None:
    data = json.dumps(payload or {}).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status in (200, 201)


@pytest.fixture
def moto(moto_url: str) -> Callable[..., None]:
    """Reset moto, and return a function that queues InvokeEndpoint results (served in call order)."""
    _post(f"{moto_url}/moto-api/reset")

    def queue(*bodies: Any, content_type: str = "application/json", variant: str = "AllTraffic") -> None:
        results = [
            {
                "Body": b if isinstance(b, str) else json.dumps(b),
                "ContentType": content_type,
                "InvokedProductionVariant": variant,
            }
            for b in bodies
        ]
        _post(
            f"{moto_url}/moto-api/static/sagemaker/endpoint-results", {"region": REGION, "results": results}
        )

    return queue


def record_sent(clf: SageMakerClassifier) -> tuple[list[dict[str, Any]], list[str]]:
    """Record what each call sends (selected headers only) and each response's x-amzn-RequestId."""
    sent: list[dict[str, Any]] = []
    request_ids: list[str] = []

    def before_send(request: Any, **_: Any) -> None:
        headers = {}
        for key in (
            "Content-Type",
            "Accept",
            "X-Amzn-SageMaker-Target-Variant",
            "X-Amzn-SageMaker-Inference-Component",
        ):
            value = request.headers.get(key)
            if value is not None:
                headers[key] = value.decode() if isinstance(value, bytes) else value
        sent.append({"url": request.url, "headers": headers, "body": body_bytes(request)})

    def after_call(http_response: Any, **_: Any) -> None:
        request_ids.append(http_response.headers.get("x-amzn-RequestId"))

    clf.client.meta.events.register(EVENT, before_send)
    clf.client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", after_call)
    return sent, request_ids


MOTO_CASES = [
    (
        "jumpstart-verbose",
        {"probabilities": [0.1, 0.7, 0.2], "labels": ["nv", "mel", "bkl"], "predicted_label": "mel"},
        None,
        ("application/x-image", "application/json;verbose"),
        ("mel", 0.7),
    ),
    (
        "jumpstart",
        {"probabilities": [0.05, 0.05, 0.1, 0.1, 0.1, 0.55, 0.05]},
        HAM,
        ("application/x-image", "application/json"),
        ("nv", 0.55),
    ),
    ("builtin", [0.25, 0.75], ["bkl", "bcc"], ("image/jpeg", "application/json"), ("bcc", 0.75)),
    (
        "huggingface",
        [{"label": "melanocytic_Nevi", "score": 0.81}, {"label": "melanoma", "score": 0.19}],
        None,
        ("image/jpeg", "application/json"),
        ("melanocytic_Nevi", 0.81),
    ),
]


@pytest.mark.parametrize(
    ("response_format", "body", "labels", "wire", "top"), MOTO_CASES, ids=[c[0] for c in MOTO_CASES]
)
def test_each_format_end_to_end_against_moto(
    moto, moto_url, response_format, body, labels, wire, top
) -> None:
    moto(body, variant="blue")
    clf = make(response_format=response_format, labels=labels, endpoint_url=moto_url, target_variant="blue")
    sent, request_ids = record_sent(clf)
    image = make_jpeg((120, 80, 60))
    prediction = clf.classify(image)

    assert (prediction.top.label, prediction.top.score) == top
    assert prediction.adapter == "sagemaker" and prediction.model == "derm-ep"
    assert prediction.request_id and prediction.request_id == request_ids[0]
    assert prediction.provider_details["invoked_variant"] == "blue"
    assert prediction.provider_details["response_format"] == response_format
    assert prediction.provider_details["region"] == REGION
    assert len(sent) == 1
    assert sent[0]["url"] == f"{moto_url}/endpoints/derm-ep/invocations"
    assert sent[0]["headers"] == {
        "Content-Type": wire[0],
        "Accept": wire[1],
        "X-Amzn-SageMaker-Target-Variant": "blue",
    }
    assert sent[0]["body"] == clf.prepare(image).data
    clf.close()


def test_batch_against_moto_keeps_order_and_inference_component(moto, moto_url) -> None:
    bodies = [
        {"probabilities": [0.9, 0.1], "labels": ["mel", "nv"]},
        {"probabilities": [0.2, 0.8], "labels": ["mel", "nv"]},
        {"probabilities": [0.6, 0.4], "labels": ["bcc", "nv"]},
    ]
    moto(*bodies)
    clf = make(endpoint_url=moto_url, inference_component="derm-ic-1")
    sent, _ = record_sent(clf)
    images = [make_jpeg((200, 10, 10)), make_jpeg((10, 200, 10)), make_jpeg((10, 10, 200))]
    predictions = clf.classify_batch(images)
    assert [p.top.label for p in predictions] == ["mel", "nv", "bcc"]
    assert [p.canonical for p in predictions] == ["mel", "nv", "bcc"]
    assert {s["headers"]["X-Amzn-SageMaker-Inference-Component"] for s in sent} == {"derm-ic-1"}
    assert predictions[0].model == "derm-ep/derm-ic-1"
    assert len({p.request_id for p in predictions}) == 3


def test_label_length_mismatch_from_moto_is_a_response_format_error(moto, moto_url) -> None:
    moto({"probabilities": [0.5, 0.3, 0.2], "labels": ["mel", "nv"]})
    clf = make(endpoint_url=moto_url)
    _, request_ids = record_sent(clf)
    with pytest.raises(ResponseFormatError, match="3 probabilities but 2 labels") as caught:
        clf.classify(make_jpeg((1, 2, 3)))
    error = caught.value
    assert error.request_id == request_ids[0]
    assert "derm-ep" in str(error) and REGION in str(error) and request_ids[0] in str(error)
    assert not error.retryable


def test_wrong_format_body_from_moto_quotes_at_most_200_chars(moto, moto_url) -> None:
    page = "<html><body>" + "Service error page. " * 50 + "</body></html>"
    moto(page, content_type="text/html")
    clf = make(response_format="builtin", labels=["a", "b"], endpoint_url=moto_url)
    with pytest.raises(ResponseFormatError, match="not JSON") as caught:
        clf.classify(make_jpeg((4, 5, 6)))
    quoted = str(caught.value).split("body starts: ", 1)[1]
    assert quoted.startswith("'<html><body>Service error page.")
    assert page[:200] in quoted and page[:201] not in quoted


def test_loopback_endpoint_keeps_data_on_the_machine(moto_url) -> None:
    assert make(endpoint_url=moto_url).service_facts().data_leaves_machine is False
    facts = make().service_facts()
    assert facts.data_leaves_machine is True
    assert (facts.service, facts.vendor, facts.region) == ("SageMaker real-time endpoint", "aws", REGION)


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.release.wait(5)  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_real_read_timeout_becomes_provider_timeout() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        clf = make(endpoint_url=f"http://127.0.0.1:{server.server_address[1]}", timeout_s=0.3)
        with pytest.raises(ProviderTimeout, match=r"within 0\.3 s \(read timeout\)"):
            clf.classify(make_jpeg((3, 3, 3)))
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()


# ---- configuration, credentials, region ------------------------------------------------------------
