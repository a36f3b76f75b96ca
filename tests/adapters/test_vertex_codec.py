"""Vertex AI wire format as pure functions: decoding real and documented answers, sizing requests.

The byte budget is checked against the body the real REST transport serialises for the same instances,
so batching can never build a request larger than the service accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudderm.adapters.vertex_codec import (
    DecodeSpec,
    MalformedResponse,
    RequestBudget,
    decode_response,
    encode_instance,
    response_to_payload,
)

RESOURCE = "projects/derm-proj/locations/europe-west2/endpoints/1234567890"
ALT_QUERY = {"$alt": "json;enum-encoding=int"}


# ---- decoding: the real response and documented shapes -------------------------------------------------
def test_decodes_real_automl_response(provider_payloads: Path) -> None:
    payload = json.loads((provider_payloads / "vertex_automl_ic_predict_response.json").read_text())
    [raw] = decode_response(payload, 1, DecodeSpec())
    assert raw.labels == [("apple", 0.999999285)]
    assert raw.model == "projects/864499401284/locations/us-central1/models/116743945614000128@1"
    assert raw.details["deployedModelId"] == "2683525253354749952"
    assert raw.details["modelDisplayName"] == "untitled_1671069571418"
    assert not raw.warnings and "truncated_labels" not in raw.details

    # The sender asked for confidenceThreshold 0.5 / maxPredictions 5: with the label set known, the single
    # label returned is flagged as a partial distribution.
    spec = DecodeSpec(labels=("apple", "banana", "cherry"), confidence_threshold=0.5, max_predictions=5)
    [raw] = decode_response(payload, 1, spec)
    assert raw.details["truncated_labels"] is True
    assert "1 of the model's 3 labels" in raw.warnings[0]
    assert "confidenceThreshold 0.5" in raw.warnings[0] and "maxPredictions 5" in raw.warnings[0]


def test_decodes_documented_automl_batch() -> None:
    payload = {
        "predictions": [
            {"ids": ["1", "2", "3"], "displayNames": ["mel", "nv", "bkl"], "confidences": [0.7, 0.2, 0.1]},
            {"ids": ["2", "1", "3"], "displayNames": ["nv", "mel", "bkl"], "confidences": [0.6, 0.3, 0.1]},
        ],
        "deployedModelId": "42",
        "model": "projects/1/locations/europe-west2/models/9",
    }
    first, second = decode_response(payload, 2, DecodeSpec(labels=("mel", "nv", "bkl")))
    assert first.labels == [("mel", 0.7), ("nv", 0.2), ("bkl", 0.1)]
    assert second.labels[0] == ("nv", 0.6)
    assert first.model == "projects/1/locations/europe-west2/models/9"
    assert first.details == {"deployedModelId": "42", "model": "projects/1/locations/europe-west2/models/9"}
    assert not first.warnings and not first.scores_independent


def test_partial_distribution_without_known_labels_is_flagged() -> None:
    payload = {"predictions": [{"displayNames": ["mel", "nv"], "confidences": [0.5, 0.3]}]}
    [raw] = decode_response(payload, 1, DecodeSpec(confidence_threshold=0.25))
    assert raw.details["truncated_labels"] is True
    assert "sum to 0.800" in raw.warnings[0]


def test_no_label_above_threshold() -> None:
    payload = {"predictions": [{"ids": [], "displayNames": [], "confidences": []}]}
    [raw] = decode_response(payload, 1, DecodeSpec(confidence_threshold=0.9))
    assert raw.labels == [] and raw.details["truncated_labels"] is True
    assert "no label returned" in raw.warnings[0]


def test_custom_format_shapes() -> None:
    mapping = {"predictions": [{"classes": ["mel", "nv"], "scores": [0.9, 0.1]}]}
    spec = DecodeSpec(response_format="custom", labels_field="classes", scores_field="scores")
    assert decode_response(mapping, 1, spec)[0].labels == [("mel", 0.9), ("nv", 0.1)]

    bare = {"predictions": [[0.25, 0.75]]}
    spec = DecodeSpec(response_format="custom", labels=("benign", "malignant"))
    assert decode_response(bare, 1, spec)[0].labels == [("benign", 0.25), ("malignant", 0.75)]

    scores_only = {"predictions": [{"probabilities": [0.4, 0.6]}]}
    spec = DecodeSpec(response_format="custom", labels=("a", "b"), scores_field="probabilities")
    assert decode_response(scores_only, 1, spec)[0].labels == [("a", 0.4), ("b", 0.6)]

    multi = {"predictions": [{"displayNames": ["a", "b"], "confidences": [0.9, 0.8]}]}
    [raw] = decode_response(multi, 1, DecodeSpec(response_format="custom", multi_label=True))
    assert raw.scores_independent and not raw.warnings


@pytest.mark.parametrize(
    ("payload", "n", "spec", "needle"),
    [
        ([], 1, DecodeSpec(), "JSON object"),
        ({"deployedModelId": "1"}, 1, DecodeSpec(), "no 'predictions'"),
        ({"predictions": []}, 1, DecodeSpec(), "0 predictions for 1 instances"),
        ({"predictions": [{"displayNames": ["a"]}]}, 1, DecodeSpec(), "missing 'confidences'"),
        ({"predictions": [{"displayNames": ["a"], "confidences": [0.1, 0.2]}]}, 1, DecodeSpec(), "1 labels"),
        (
            {"predictions": [{"displayNames": ["a"], "confidences": ["high"]}]},
            1,
            DecodeSpec(),
            "not a finite",
        ),
        ({"predictions": [{"displayNames": ["a"], "confidences": [True]}]}, 1, DecodeSpec(), "not a finite"),
        (
            {"predictions": [{"displayNames": [""], "confidences": [0.5]}]},
            1,
            DecodeSpec(),
            "non-empty string",
        ),
        ({"predictions": [[0.5, 0.5]]}, 1, DecodeSpec(), "expected an object"),
        ({"predictions": [[0.5, 0.5]]}, 1, DecodeSpec(response_format="custom"), "labels configured"),
        ({"predictions": [{"x": 1}]}, 1, DecodeSpec(response_format="custom"), "missing 'confidences'"),
    ],
)
def test_malformed_answers_are_rejected(payload, n, spec, needle) -> None:
    with pytest.raises(MalformedResponse, match=needle):
        decode_response(payload, n, spec)


def test_proto_plus_response_converts_to_plain_json() -> None:
    from google.cloud.aiplatform_v1.types import PredictResponse

    response = PredictResponse()
    response.predictions.extend([{"displayNames": ["mel"], "confidences": [0.9], "ids": ["1"]}])
    response.deployed_model_id = "77"
    payload = response_to_payload(response)
    assert payload == {
        "predictions": [{"displayNames": ["mel"], "confidences": [0.9], "ids": ["1"]}],
        "deployedModelId": "77",
    }
    assert type(payload["predictions"][0]) is dict and type(payload["predictions"][0]["confidences"]) is list


# ---- request encoding and the byte budget --------------------------------------------------------------
def transport_body(instances: list[dict], parameters: dict | None) -> str:
    """The exact JSON body the REST transport would send for these instances."""
    from google.api_core import rest_helpers
    from google.cloud.aiplatform_v1.services.prediction_service.transports.rest_base import (
        _BasePredictionServiceRestTransport as Base,
    )
    from google.cloud.aiplatform_v1.types import PredictRequest

    request = PredictRequest()
    request.endpoint = RESOURCE
    request.instances.extend(instances)
    if parameters is not None:
        request.parameters = parameters
    _, body, query = rest_helpers.transcode_request(
        Base._BasePredict._get_http_options(), request, rest_numeric_enums=True
    )
    assert query == ALT_QUERY
    return body


@pytest.mark.parametrize("b64_object", [False, True])
@pytest.mark.parametrize("parameters", [None, {"confidenceThreshold": 0.0, "maxPredictions": 7}])
def test_budget_never_undercounts_the_transport_body(b64_object, parameters) -> None:
    budget = RequestBudget.build(
        limit=10**7,
        parameters=parameters,
        instance_key="image_bytes",
        b64_object=b64_object,
        max_instances=99,
    )
    for sizes in ([0], [1], [2, 3, 4], [1000, 12345, 7], [5] * 40):
        instances = [encode_instance(b"\xff" * n, "image_bytes", b64_object) for n in sizes]
        actual = len(transport_body(instances, parameters).encode())
        estimate = budget.request_bytes(sizes)
        assert actual <= estimate <= actual + 80, (sizes, actual, estimate)


def test_encode_instance_shapes() -> None:
    assert encode_instance(b"abc") == {"content": "YWJj"}
    assert encode_instance(b"abc", "image_bytes", True) == {"image_bytes": {"b64": "YWJj"}}
