"""The real cloud adapters against the loopback emulators: built independently from the documented wire
formats, they must agree end to end.

Each adapter is built through ``parse_config``/``cloudderm.load`` from the emulator's own config snippets and
classifies real prepared images (the repository's example photos, a generated JPEG carrying EXIF GPS, and the
shared EXIF-oriented photo when present). The emulated endpoints are backed by a ``FakeClassifier`` whose
scores are a pure function of the bytes it receives, so every answer can be checked exactly: what the adapter
returns must be what the backend scored for the bytes the adapter sent, cut only where the format documents a
cut (the Hugging Face formats' top 5). Injected faults must surface as the right typed errors, retried faults
must be retried, and no upload may carry the EXIF/GPS the source image had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloudderm
from cloudderm.classifier import NOT_NORMALISED_WARNING, Classifier
from cloudderm.config import parse_config
from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan, find_metadata
from cloudderm.errors import (
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
)
from cloudderm.factory import build_classifier
from cloudderm.images import PreparedImage
from cloudderm.retry import RetryPolicy
from cloudderm.testing.fakes import HAM_CODES, FakeClassifier
from tests.conftest import REPO_ROOT, SHARED_DATA, make_jpeg
from tests.e2e.emulator_support import emulator_aws_env

pytest.importorskip("boto3")
pytest.importorskip("azure.core")
pytest.importorskip("google.cloud.aiplatform_v1")

EXAMPLES = REPO_ROOT / "examples" / "images"
EXIF_PHOTO = SHARED_DATA / "images" / "image_with_exif_including_orientation.jpg"

# provider name -> (emulated endpoint, protocol, how many labels the format answers)
ADAPTERS: dict[str, tuple[str, str, int]] = {
    "sm-jumpstart-verbose": ("jsv", "sagemaker", 7),
    "sm-jumpstart": ("js", "sagemaker", 7),
    "sm-builtin": ("bi", "sagemaker", 7),
    "sm-huggingface": ("hf", "sagemaker", 5),
    "az-automl": ("jsv", "azureml", 7),
    "az-transformers": ("hf", "azureml", 5),
    "vx-automl": ("jsv", "vertex", 7),
}


def _images() -> list[tuple[str, Any]]:
    """(name, input) pairs: real photos (JPEG and PNG), a GPS-tagged JPEG, the EXIF photo when present."""
    examples = sorted(EXAMPLES.glob("*.jpg"))[:2] + sorted(EXAMPLES.glob("*.png"))[:1]
    images: list[tuple[str, Any]] = [(p.name, p) for p in examples]
    images.append(("gps.jpg", make_jpeg((150, 90, 70), (96, 72), gps=True)))
    if EXIF_PHOTO.is_file():
        images.append((EXIF_PHOTO.name, EXIF_PHOTO))
    return images


IMAGES = _images()


def _raw(source: Any) -> bytes:
    return source.read_bytes() if isinstance(source, Path) else source


@pytest.fixture(scope="module")
def backend() -> FakeClassifier:
    return FakeClassifier("backend")


@pytest.fixture(scope="module")
def emu(backend: FakeClassifier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    endpoints = {
        "jsv": EmulatedEndpoint(backend, sagemaker_format="jumpstart-verbose"),
        "js": EmulatedEndpoint(backend, sagemaker_format="jumpstart"),
        "bi": EmulatedEndpoint(backend, sagemaker_format="builtin"),
        "hf": EmulatedEndpoint(backend, sagemaker_format="huggingface", azure_flavor="transformers"),
    }
    with emulator_aws_env(tmp_path_factory.mktemp("aws")), Emulator(endpoints) as emulator:
        yield emulator


def _snippet(emu: Emulator, name: str, **overrides: Any) -> dict[str, Any]:
    endpoint, protocol, _ = ADAPTERS[name]
    return {**getattr(emu, f"{protocol}_config")(endpoint), **overrides}


@pytest.fixture(scope="module")
def classifiers(emu: Emulator) -> Iterator[dict[str, Classifier]]:
    config = parse_config({"providers": {name: _snippet(emu, name) for name in ADAPTERS}})
    built = {name: build_classifier(name, config) for name in ADAPTERS}
    yield built
    for clf in built.values():
        clf.close()


# ---- answers equal the backend's scores ---------------------------------------------------------------
@pytest.mark.parametrize("name", list(ADAPTERS))
def test_answers_are_the_backends_scores(
    name: str, classifiers: dict[str, Classifier], backend: FakeClassifier
) -> None:
    clf = classifiers[name]
    _, _, returned = ADAPTERS[name]
    for image_name, source in IMAGES:
        prepared = clf.prepare(source)
        prediction = clf.classify(prepared)
        assert prediction.image_sha256 == prepared.sha256, image_name
        expected = sorted(backend.scores_for(prepared.sha256), key=lambda ls: ls[1], reverse=True)
        got = [(ls.label, ls.score) for ls in prediction.labels]
        assert [lbl for lbl, _ in got] == [lbl for lbl, _ in expected[:returned]], image_name
        assert [s for _, s in got] == pytest.approx([s for _, s in expected[:returned]], abs=1e-9)
        assert prediction.canonical == expected[0][0]
        assert prediction.provider == name and prediction.adapter == clf.adapter
        if clf.adapter != "vertex":  # a Vertex PredictResponse carries no request id
            assert prediction.request_id, f"{name} lost the request id"
        truncated = returned < len(HAM_CODES)
        assert bool(prediction.provider_details.get("truncated_labels")) is truncated, image_name
        assert any(w.startswith("only 5 labels returned") for w in prediction.warnings) is truncated
        assert not any("not normalised" in w for w in prediction.warnings), prediction.warnings


def test_batches_come_back_in_order(classifiers: dict[str, Classifier], backend: FakeClassifier) -> None:
    """Azure and Vertex pack several images per request; each answer must stay with its own image."""
    sources = [source for _, source in IMAGES]
    for name in ("az-automl", "vx-automl", "az-transformers"):
        clf = classifiers[name]
        prepared = [clf.prepare(source) for source in sources]
        predictions = clf.classify_batch(prepared)
        for image, prediction in zip(prepared, predictions, strict=True):
            best = max(backend.scores_for(image.sha256), key=lambda ls: ls[1])
            assert prediction.image_sha256 == image.sha256
            assert (prediction.top.label, prediction.top.score) == (best[0], pytest.approx(best[1]))


def test_loaded_from_the_emulators_yaml(emu: Emulator, backend: FakeClassifier, tmp_path: Path) -> None:
    """The snippet printed by ``cloudderm emulate`` works as pasted into cloudderm.yaml."""
    config = tmp_path / "cloudderm.yaml"
    config.write_text(emu.providers_yaml(["js", "hf"]), encoding="utf-8")
    for name in ("js-sagemaker", "js-azureml", "js-vertex", "hf-sagemaker", "hf-azureml", "hf-vertex"):
        with cloudderm.load(name, config=config) as clf:
            prepared = clf.prepare(EXAMPLES / "ISIC_0000000.jpg")
            best = max(backend.scores_for(prepared.sha256), key=lambda ls: ls[1])
            assert clf.classify(prepared).top.label == best[0], name
            assert clf.service_facts().data_leaves_machine is False, f"{name}: the emulator is loopback"


# ---- nothing private leaves the machine -----------------------------------------------------------------
def test_no_upload_carries_exif_or_gps(emu: Emulator, classifiers: dict[str, Classifier]) -> None:
    gps_source = dict(IMAGES)["gps.jpg"]
    assert "exif-gps" in find_metadata(gps_source), "precondition: the source image carries GPS"
    sent: dict[str, set[str]] = {}
    for name, clf in classifiers.items():
        endpoint, protocol, _ = ADAPTERS[name]
        for _, source in IMAGES:
            sent.setdefault(f"{protocol}/{endpoint}", set()).add(clf.classify(source).image_sha256)
    for key, hashes in sent.items():
        stats = emu.endpoint_stats(*key.split("/"))
        assert hashes <= set(stats.per_image), f"{key} did not receive what the adapter reports sending"
        assert not stats.metadata_seen and not stats.gps_seen, (key, stats.metadata)
    for _, source in IMAGES:
        assert _sha(_raw(source)) not in {sha for h in sent.values() for sha in h}


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# ---- injected faults become typed errors ----------------------------------------------------------------
FAULTS: dict[str, dict[str, tuple[type[ProviderError], int | None]]] = {
    "429": {
        "sagemaker": (ProviderThrottled, None),
        "azureml": (ProviderThrottled, None),
        "vertex": (ProviderThrottled, None),
    },
    "503": {
        "sagemaker": (ProviderHTTPError, 503),
        "azureml": (ProviderHTTPError, 503),
        "vertex": (ProviderHTTPError, 503),
    },
    "424": {
        "sagemaker": (ProviderHTTPError, 424),
        "azureml": (ProviderHTTPError, 424),
        "vertex": (ProviderHTTPError, 500),
    },
    "timeout": {
        "sagemaker": (ProviderTimeout, None),
        "azureml": (ProviderTimeout, None),
        "vertex": (ProviderTimeout, None),
    },
    "malformed": {
        "sagemaker": (ResponseFormatError, None),
        "azureml": (ResponseFormatError, None),
        "vertex": (ResponseFormatError, None),
    },
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One endpoint per fault kind, every request faulted; timeouts hold just past the client's timeout."""
    backend = FakeClassifier("backend")
    endpoints = {
        kind: EmulatedEndpoint(
            backend,
            faults=FaultPlan(rates={kind: 1.0}, retry_after_s=0.25, timeout_hold_s=2.5),
        )
        for kind in FAULTS
    }
    with emulator_aws_env(tmp_path_factory.mktemp("aws")), Emulator(endpoints) as emulator:
        yield emulator


@pytest.mark.parametrize("protocol", ["sagemaker", "azureml", "vertex"])
@pytest.mark.parametrize("kind", list(FAULTS))
def test_injected_faults_map_to_typed_errors(faulty: Emulator, kind: str, protocol: str) -> None:
    snippet = {**getattr(faulty, f"{protocol}_config")(kind), "timeout_s": 1.0, "max_retries": 0}
    expected_type, expected_status = FAULTS[kind][protocol]
    clf = build_classifier("faulty", parse_config({"providers": {"faulty": snippet}}))
    with clf, pytest.raises(expected_type) as caught:
        clf.classify(make_jpeg((30, 60, 90)))
    error = caught.value
    assert error.provider == "faulty" and error.endpoint
    if expected_status is not None:
        assert error.status == expected_status
    if kind == "429":
        assert error.retry_after == pytest.approx(0.25)
    if kind == "malformed":
        assert not error.retryable
    # Azure's pipeline already retried (max_retries times): what escapes it is final; the others leave the
    # transient faults to the runner.
    transient = kind in ("429", "503", "424", "timeout")
    assert error.retryable is (transient and protocol != "azureml")
    assert faulty.endpoint_stats(protocol, kind).faults[kind] >= 1


@pytest.mark.parametrize("protocol", ["sagemaker", "azureml", "vertex"])
@pytest.mark.parametrize("kind", ["429", "503", "timeout"])
def test_transient_faults_are_retried_to_success(kind: str, protocol: str, tmp_path: Path) -> None:
    """Every first attempt fails, the second is served: one retry (runner's or Azure's pipeline) suffices."""
    backend = FakeClassifier("backend")
    plan = FaultPlan(rates={kind: 1.0}, retry_after_s=0.01, timeout_hold_s=2.0, max_faults_per_request=1)
    image = make_jpeg((120, 30, 200), gps=True)
    with emulator_aws_env(tmp_path), Emulator({"ep": EmulatedEndpoint(backend, faults=plan)}) as emu:
        snippet = {**getattr(emu, f"{protocol}_config")("ep"), "timeout_s": 1.0, "max_retries": 2}
        with build_classifier("retrying", parse_config({"providers": {"retrying": snippet}})) as clf:
            clf.retry_policy = _fast(clf.retry_policy)
            prediction = clf.classify(image)
        stats = emu.endpoint_stats(protocol, "ep")
    assert stats.per_image[prediction.image_sha256] == 2 and stats.faults == {kind: 1}
    best = max(backend.scores_for(prediction.image_sha256), key=lambda ls: ls[1])
    assert prediction.top.label == best[0]
    assert not stats.gps_seen


def _fast(policy: RetryPolicy) -> RetryPolicy:
    """The same retry policy with millisecond backoff, so the test does not sleep."""
    return dataclasses.replace(policy, base_delay_s=0.001, max_delay_s=0.05)


def test_prepared_image_type_round_trips(classifiers: dict[str, Classifier]) -> None:
    """``classify`` accepts a PreparedImage as is: nothing is re-encoded between prepare and the wire."""
    clf = classifiers["sm-jumpstart"]
    prepared = clf.prepare(EXAMPLES / "ISIC_0000001.jpg")
    assert isinstance(prepared, PreparedImage)
    assert clf.prepare(prepared) is prepared
    assert NOT_NORMALISED_WARNING.split("{")[0] not in " ".join(clf.classify(prepared).warnings)
