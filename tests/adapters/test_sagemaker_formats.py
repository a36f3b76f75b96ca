"""SageMaker wire formats as pure functions: real payloads from ../shared/data, documented bodies inline."""

from __future__ import annotations

import json
import re

import pytest

from cloudderm.adapters.sagemaker_formats import (
    MAX_PAYLOAD_BYTES,
    WIRE_FORMATS,
    decode_response,
    encode_request,
)
from cloudderm.errors import BODY_EXCERPT_CHARS, InvalidImageError, ResponseFormatError
from cloudderm.images import PreparedImage, prepare
from tests.conftest import make_jpeg

HAM = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def _fill_template(template: str, probabilities: list[float], labels: list[str]) -> str:
    """Turn an AWS doc template (``prob_0``, ``label_0``, ``...`` placeholders) into a concrete body."""
    text = re.sub(r",\s*\.\.\.", "", template)
    text = re.sub(r"prob_(\d+)", lambda m: repr(probabilities[int(m.group(1))]), text)
    text = re.sub(r"label_(\d+)", lambda m: json.dumps(labels[int(m.group(1))]), text)
    if labels:
        top = labels[max(range(len(probabilities)), key=probabilities.__getitem__)]
        text = re.sub(r'(?<!")predicted_label(?!")', json.dumps(top), text)
    return text


def _split_doc_template(path) -> tuple[str, str]:
    """The ``accept: ...`` header line and the body of a doc template file."""
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    assert header.startswith("accept: ")
    return header.removeprefix("accept: ").strip(), body.strip()


# ---- real and documented payloads from ../shared/data/providers ------------------------------------
def test_hf_toolkit_real_response_decodes_verbatim(provider_payloads) -> None:
    raw = (provider_payloads / "hf_sagemaker_toolkit_ic_response.json").read_bytes()
    expected = [(item["label"], item["score"]) for item in json.loads(raw)]
    decoded = decode_response(raw, "huggingface")
    assert decoded.labels == expected
    assert decoded.labels[0] == ("tiger, Panthera tigris", 0.8858247399330139)
    # 5 of ImageNet's 1000 classes: sums to 0.9965, so without a label list it reads as complete...
    assert "truncated_labels" not in decoded.details
    # ...and with the full label list it is recognised as the pipeline's top-5.
    decoded = decode_response(raw, "huggingface", [f"class-{i}" for i in range(1000)])
    assert decoded.details["truncated_labels"] is True
    assert "top 5" in decoded.warnings[0]


def test_jumpstart_spec_content_types_match_what_we_send(provider_payloads) -> None:
    spec = json.loads(
        (provider_payloads / "sagemaker_jumpstart_pytorch_ic_mobilenet_v2_spec.json").read_text()
    )
    predictor = spec["predictor_specs"]
    for name in ("jumpstart-verbose", "jumpstart"):
        assert WIRE_FORMATS[name].content_type in predictor["supported_content_types"]
        assert WIRE_FORMATS[name].accept in predictor["supported_accept_types"]
    assert WIRE_FORMATS["jumpstart-verbose"].accept == "application/json;verbose"
    assert WIRE_FORMATS["jumpstart"].accept == predictor["default_accept_type"]
    assert WIRE_FORMATS["jumpstart"].content_type == predictor["default_content_type"]


def test_jumpstart_verbose_doc_template(provider_payloads) -> None:
    accept, template = _split_doc_template(provider_payloads / "sagemaker_ic_tf_verbose_doc_template.txt")
    assert accept == WIRE_FORMATS["jumpstart-verbose"].accept
    body = _fill_template(template, [0.1, 0.7, 0.2], ["roses", "dandelion", "tulips"])
    decoded = decode_response(body.encode(), "jumpstart-verbose")
    assert decoded.labels == [("roses", 0.1), ("dandelion", 0.7), ("tulips", 0.2)]
    assert decoded.details["predicted_label"] == "dandelion"


def test_builtin_jsonlines_doc_template(provider_payloads) -> None:
    accept, template = _split_doc_template(
        provider_payloads / "sagemaker_builtin_ic_jsonlines_doc_template.txt"
    )
    assert accept == "application/jsonlines"
    body = _fill_template(template, [0.05, 0.15, 0.5, 0.3], [])
    decoded = decode_response(body.encode(), "builtin", ["a", "b", "c", "d"])
    assert decoded.labels == [("a", 0.05), ("b", 0.15), ("c", 0.5), ("d", 0.3)]


# ---- bodies written from the documented formats (no shared data needed) ----------------------------
def test_jumpstart_verbose_inline() -> None:
    body = {"probabilities": [0.6, 0.3, 0.1], "labels": ["mel", "nv", "bkl"], "predicted_label": "mel"}
    decoded = decode_response(json.dumps(body).encode(), "jumpstart-verbose")
    assert decoded.labels == [("mel", 0.6), ("nv", 0.3), ("bkl", 0.1)]
    assert decoded.details == {"predicted_label": "mel"}


def test_jumpstart_probabilities_only_take_config_labels() -> None:
    probs = [0.01, 0.02, 0.03, 0.04, 0.5, 0.3, 0.1]
    decoded = decode_response(json.dumps({"probabilities": probs}).encode(), "jumpstart", HAM)
    assert decoded.labels == list(zip(HAM, probs))


@pytest.mark.parametrize("body", ["[0.2, 0.8]", '{"prediction": [0.2, 0.8]}\n'])
def test_builtin_bare_list_and_jsonlines(body: str) -> None:
    assert decode_response(body.encode(), "builtin", ["nv", "mel"]).labels == [("nv", 0.2), ("mel", 0.8)]


def test_huggingface_inline_full_and_truncated() -> None:
    full = [{"label": name, "score": 1 / 7} for name in HAM]
    decoded = decode_response(json.dumps(full).encode(), "huggingface", HAM)
    assert [name for name, _ in decoded.labels] == HAM
    assert not decoded.warnings and "truncated_labels" not in decoded.details
    top5 = [{"label": "melanoma", "score": 0.5}, {"label": "nevus", "score": 0.2}] + [
        {"label": f"x{i}", "score": 0.05} for i in range(3)
    ]
    decoded = decode_response(json.dumps(top5).encode(), "huggingface")
    assert decoded.details["truncated_labels"] is True
    assert decoded.labels[0] == ("melanoma", 0.5)


@pytest.mark.parametrize(
    ("response_format", "body", "labels", "fragment"),
    [
        (
            "jumpstart-verbose",
            {"probabilities": [0.5, 0.5], "labels": ["a"]},
            None,
            "2 probabilities but 1 labels",
        ),
        ("jumpstart", {"probabilities": [0.5, 0.5]}, ["a", "b", "c"], "2 probabilities but 3 labels"),
        ("builtin", [0.2, 0.3, 0.5], ["a", "b"], "3 probabilities but 2 labels"),
        ("jumpstart-verbose", {"probabilities": [0.5, 0.5]}, None, "'probabilities' and 'labels'"),
        ("jumpstart-verbose", [0.5, 0.5], None, "'probabilities' and 'labels'"),
        ("jumpstart", [0.5, 0.5], ["a", "b"], "'probabilities'"),
        ("builtin", {"predictions": [0.5, 0.5]}, ["a", "b"], "built-in"),
        ("huggingface", {"label": "a", "score": 1.0}, None, "Hugging Face"),
        ("huggingface", [{"label": "a"}], None, "item 0"),
        ("huggingface", [{"label": "a", "score": "high"}], None, "not a number"),
        (
            "jumpstart-verbose",
            {"probabilities": [3.2, -1.0], "labels": ["a", "b"]},
            None,
            "not a probability",
        ),
        ("jumpstart-verbose", {"probabilities": [0.5, 0.5], "labels": ["a", "a"]}, None, "appears twice"),
        ("builtin", [], ["a"], "non-empty"),
        ("builtin", [True, 0.0], ["a", "b"], "not a number"),
    ],
)
def test_wrong_shapes_raise_response_format_error(response_format, body, labels, fragment) -> None:
    with pytest.raises(ResponseFormatError, match=re.escape(fragment)) as caught:
        decode_response(json.dumps(body).encode(), response_format, labels)
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [(b"", "empty"), (b"\xff\xfe\x00", "not UTF-8"), (b"<html>" + b"x" * 1000 + b"</html>", "not JSON")],
)
def test_unparseable_bodies_quote_at_most_200_chars(raw: bytes, fragment: str) -> None:
    with pytest.raises(ResponseFormatError, match=fragment) as caught:
        decode_response(raw, "jumpstart-verbose")
    if len(raw) > BODY_EXCERPT_CHARS:
        quoted = str(caught.value).split("body starts: ", 1)[1]
        assert quoted.startswith("'<html>xxx")
        assert quoted.count("x") == BODY_EXCERPT_CHARS - len("<html>")


def test_probability_only_formats_need_labels() -> None:
    with pytest.raises(ValueError, match="class labels"):
        decode_response(b"[0.5, 0.5]", "builtin")


# ---- request encoding ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response_format", "content_type", "accept"),
    [
        ("jumpstart-verbose", "application/x-image", "application/json;verbose"),
        ("jumpstart", "application/x-image", "application/json"),
        ("builtin", "image/jpeg", "application/json"),
        ("huggingface", "image/jpeg", "application/json"),
    ],
)
def test_encode_request_headers(response_format: str, content_type: str, accept: str) -> None:
    image = prepare(make_jpeg((10, 20, 30)))
    params = encode_request(image, response_format, endpoint_name="ep-1")
    assert params == {
        "EndpointName": "ep-1",
        "Body": image.data,
        "ContentType": content_type,
        "Accept": accept,
    }


def test_encode_request_png_and_routing_headers() -> None:
    image = prepare(make_jpeg((10, 20, 30)))
    png = PreparedImage(image.data, "image/png", image.width, image.height, image.sha256, "x.png")
    params = encode_request(
        png, "huggingface", endpoint_name="ep", target_variant="blue", inference_component="ic-1"
    )
    assert params["ContentType"] == "image/png"
    assert params["TargetVariant"] == "blue" and params["InferenceComponentName"] == "ic-1"


def test_encode_request_refuses_oversized_body() -> None:
    big = PreparedImage(b"\0" * (MAX_PAYLOAD_BYTES + 1), "image/jpeg", 1, 1, "0" * 64, "big.jpg")
    with pytest.raises(InvalidImageError, match="6,291,456"):
        encode_request(big, "jumpstart-verbose", endpoint_name="ep")
    exact = PreparedImage(b"\0" * MAX_PAYLOAD_BYTES, "image/jpeg", 1, 1, "0" * 64, "ok.jpg")
    assert len(encode_request(exact, "jumpstart-verbose", endpoint_name="ep")["Body"]) == MAX_PAYLOAD_BYTES
