"""The five managed-service adapters against their loopback emulators: conformance, faults, facts.

Each emulator speaks the service's wire format and is backed by a deterministic local model
(``FakeClassifier``): HAM10000 codes for the custom-model services, generic labels for the two label
detection services (Cloud Vision, Rekognition DetectLabels), which must show as out-of-domain.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest

from cloudderm.config import parse_config
from cloudderm.emulate import EmulatedEndpoint, Emulator, FaultPlan
from cloudderm.emulate.rekognition import custom_labels_arn
from cloudderm.errors import ConfigError, ProviderError, ProviderHTTPError, ProviderThrottled
from cloudderm.factory import build_classifier
from cloudderm.testing.conformance import ClassifierConformance
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.conftest import isolate_aws, make_jpeg
from tests.hub_offline import hub_registry_offline  # noqa: F401  (autouse fixture)

GENERIC = ["skin", "close-up", "hand", "flesh", "pattern"]
TENSOR = {"name": "image", "datatype": "UINT8", "layout": "NHWC", "size": [224, 224]}


def custom_labels(emu: Emulator, project: str) -> dict:
    """Rekognition settings for a Custom Labels model: project ``project`` of the emulator."""
    return {
        **emu.config("rekognition", project),
        "project_version_arn": custom_labels_arn(emu.region, project),
    }


def backends() -> dict[str, FakeClassifier]:
    return {
        "derm": FakeClassifier("derm-model"),
        "generic": FakeClassifier("generic-model", FakeSettings(model="generic", labels=GENERIC)),
    }


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    endpoints = {
        **backends(),
        "stopped": EmulatedEndpoint(FakeClassifier("s"), faults=FaultPlan.parse("503=1.0")),
    }
    with Emulator(endpoints) as emu:
        yield emu


@pytest.fixture
def aws_env(tmp_path) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws(mp, tmp_path, "emulator", "emulator")
        yield


def build(name: str, config: dict):  # type: ignore[no-untyped-def]
    """A classifier built the way ``cloudderm.load`` builds one: config parsed, policy and card applied."""
    return build_classifier(name, parse_config({"providers": {name: config}}, env={}))


class _Base(ClassifierConformance):
    @pytest.fixture
    def batch_tolerance(self) -> float:
        return 0.0  # the emulator runs the same deterministic fake per image, batched or not


class TestCustomVision(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("cv", emulator.config("custom-vision", "derm")) as clf:
            yield clf

    @pytest.fixture
    def secret_values(self, emulator) -> list[str]:
        return [emulator.azure_key("derm")]

    def test_nostore_by_default_and_scores_match_backend(self, classifier, emulator) -> None:
        assert classifier.url.endswith("/image/nostore")
        prediction = classifier.classify(make_jpeg((10, 20, 30)))
        assert prediction.provider_details["image_stored"] is False
        assert prediction.canonical is not None and not any("out-of-domain" in w for w in prediction.warnings)
        assert abs(sum(ls.score for ls in prediction.labels) - 1.0) < 1e-6
        assert classifier.image_limits().max_bytes == 4 * 1024 * 1024

    def test_wrong_key_is_401_with_a_fix(self, emulator) -> None:
        config = {**emulator.config("custom-vision", "derm"), "prediction_key": "wrong-key-123"}
        with build("cv", config) as clf, pytest.raises(ProviderHTTPError) as info:
            clf.classify(make_jpeg((1, 2, 3)))
        assert info.value.status == 401 and "Prediction resource's key" in str(info.value)
        assert "wrong-key-123" not in str(info.value)

    def test_plain_http_only_on_loopback(self) -> None:
        with pytest.raises(ConfigError, match="loopback"):
            build(
                "cv",
                {
                    "adapter": "custom-vision",
                    "endpoint": "http://example.com",
                    "project_id": "p",
                    "published_name": "n",
                    "prediction_key": "k",
                },
            )


class TestCloudVision(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("gv", emulator.config("cloud-vision", "generic")) as clf:
            yield clf

    def test_generic_labels_are_out_of_domain_and_visible(self, classifier) -> None:
        prediction = classifier.classify(make_jpeg((200, 150, 120)))
        assert prediction.canonical is None
        assert {ls.label for ls in prediction.labels} == set(GENERIC)
        assert any("out-of-domain" in w for w in prediction.warnings)
        assert any("multi-label" in w for w in prediction.warnings)
        assert classifier.governance.model.label_domain == "out-of-domain"

    def test_batches_at_most_16_per_request(self, classifier, emulator) -> None:
        before = emulator.endpoint_stats("cloud-vision", "generic").requests
        images = [make_jpeg((i, 2 * i, 3 * i)) for i in range(20)]
        assert len(classifier.classify_batch(images)) == 20
        assert emulator.endpoint_stats("cloud-vision", "generic").requests - before == 2

    def test_throttling_carries_retry_after(self) -> None:
        plan = FaultPlan.parse("429=1.0", seed=1)
        with Emulator(backends(), faults=plan) as emu:
            clf = build("gv", emu.config("cloud-vision", "generic"))
            with clf, pytest.raises(ProviderThrottled) as info:
                clf.classify(make_jpeg((5, 5, 5)))
        assert info.value.retryable and info.value.retry_after is not None


@pytest.mark.usefixtures("aws_env")
class TestRekognitionLabels(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("rk", emulator.config("rekognition", "generic")) as clf:
            yield clf

    def test_percentages_become_independent_scores(self, classifier) -> None:
        prediction = classifier.classify(make_jpeg((90, 80, 70)))
        assert all(0 <= ls.score <= 1 for ls in prediction.labels)
        assert any("multi-label" in w for w in prediction.warnings) and prediction.canonical is None
        assert prediction.provider_details["confidence_scale"] == "percent/100"


@pytest.mark.usefixtures("aws_env")
class TestRekognitionCustomLabels(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("rkc", custom_labels(emulator, "derm")) as clf:
            yield clf

    def test_custom_labels_map_to_the_taxonomy(self, classifier) -> None:
        prediction = classifier.classify(make_jpeg((90, 80, 70)))
        assert prediction.canonical is not None
        assert classifier.region == "eu-west-2" and classifier.image_limits().max_bytes == 4 * 1024 * 1024 - 1

    def test_not_running_model_names_the_start_command(self, emulator) -> None:
        config = custom_labels(emulator, "stopped")  # fault 503 on Custom Labels: the model is not RUNNING
        with build("rkc", config) as clf, pytest.raises(ProviderError) as info:
            clf.classify(make_jpeg((1, 1, 1)))
        assert not info.value.retryable
        command = "aws rekognition start-project-version --project-version-arn arn:aws:rekognition:"
        assert command in str(info.value)


class TestHFInference(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        config = {**emulator.config("hf-inference", "derm"), "top_k": 7, "token": "hf_emulatortoken"}
        with build("hfi", config) as clf:
            yield clf

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["hf_emulatortoken"]

    def test_default_top5_is_a_partial_distribution(self, emulator) -> None:
        with build("hfi", emulator.config("hf-inference", "derm")) as clf:
            prediction = clf.classify(make_jpeg((40, 50, 60)))
        assert len(prediction.labels) == 5
        assert prediction.provider_details["truncated_labels"] is True
        assert any("partial distribution" in w for w in prediction.warnings)

    def test_unknown_model_is_404(self, emulator) -> None:
        config = {
            **emulator.config("hf-inference", "derm"),
            "endpoint_url": f"{emulator.base_url}/hf-inference/models/x",
        }
        with build("hfi", config) as clf, pytest.raises(ProviderHTTPError) as info:
            clf.classify(make_jpeg((1, 2, 3)))
        assert info.value.status == 404


class TestKServeBytes(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("ks", {**emulator.config("kserve", "derm"), "batch_size": 4}) as clf:
            yield clf

    def test_scores_are_the_backend_distribution(self, classifier) -> None:
        image = make_jpeg((12, 34, 56))
        expected = dict(FakeClassifier("x").scores_for(classifier.prepare(image).sha256))
        prediction = classifier.classify(image)
        assert {ls.label: ls.score for ls in prediction.labels} == pytest.approx(expected, abs=1e-6)


class TestKServeTensor(_Base):
    @pytest.fixture
    def classifier(self, emulator):
        with build("kst", {**emulator.config("kserve", "derm"), "input": TENSOR}) as clf:
            yield clf

    def test_labels_are_required_and_the_model_is_named(self, emulator) -> None:
        config = {k: v for k, v in emulator.config("kserve", "derm").items() if k != "labels"}
        with pytest.raises(ConfigError, match="labels"):
            build("ks", config)
        clf = build("ks", {**emulator.config("kserve", "derm"), "model_name": "nope"})
        with clf, pytest.raises(ProviderHTTPError, match="no model 'nope'"):
            clf.classify(make_jpeg((1, 2, 3)))


def test_adapters_are_picklable_and_build_from_settings_alone(emulator) -> None:
    configs = {
        "cv": emulator.config("custom-vision", "derm"),
        "gv": emulator.config("cloud-vision", "generic"),
        "rk": emulator.config("rekognition", "generic"),
        "hfi": emulator.config("hf-inference", "derm"),
        "ks": emulator.config("kserve", "derm"),
    }
    for name, config in configs.items():
        clf = build(name, config)
        clf.warm_up()
        copy = pickle.loads(pickle.dumps(clf))
        assert copy.model_id == clf.model_id and copy.settings == clf.settings
        clf.close()


def test_malformed_kserve_answer_is_a_response_format_error() -> None:
    from cloudderm.errors import ResponseFormatError

    plan = FaultPlan.parse("malformed=1.0", seed=3)
    with Emulator({"derm": EmulatedEndpoint(backend=FakeClassifier("d"), faults=plan)}) as emu:
        clf = build("ks", emu.config("kserve", "derm"))
        with clf, pytest.raises(ResponseFormatError, match="not valid JSON"):
            clf.classify(make_jpeg((1, 2, 3)))


def test_price_queries_come_from_settings_alone(emulator) -> None:
    from cloudderm.factory import pricing_target
    from cloudderm.pricing.resolve import resolve

    config = parse_config(
        {
            "providers": {
                "gv": emulator.config("cloud-vision", "generic"),
                "ks-local": emulator.config("kserve", "derm"),
                "ks-remote": {**emulator.config("kserve", "derm"), "url": "https://derm.example.com"},
                "cv": emulator.config("custom-vision", "derm"),
                "rk": emulator.config("rekognition", "generic"),
            }
        },
        env={},
    )
    resolved = {name: resolve(pricing_target(name, config.provider(name))) for name in config.providers}
    vision = resolved["gv"].model
    assert vision is not None and vision.cost_per_call(1) is not None  # the sourced LABEL_DETECTION tiers
    assert resolved["ks-local"].model is not None and resolved["ks-remote"].model is None
    for name in ("ks-remote", "cv", "rk"):  # unknown, with the fix, never a guess
        assert resolved[name].model is None and f"providers.{name}.pricing" in resolved[name].reason


def test_missing_credentials_are_configuration_errors(emulator, tmp_path, monkeypatch) -> None:
    """No AWS keys / no Google ADC: a ConfigError naming the fix (exit 2), never a retryable fault."""
    isolate_aws(monkeypatch, tmp_path, "x", "y")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with (
        build("rk", emulator.config("rekognition", "generic")) as clf,
        pytest.raises(ConfigError, match="aws configure"),
    ):
        clf.classify(make_jpeg((1, 2, 3)))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    config = {k: v for k, v in emulator.config("cloud-vision", "generic").items() if k != "anonymous"}
    with build("gv", config) as clf, pytest.raises(ConfigError, match="Application Default Credentials"):
        clf.warm_up()


def test_cloud_vision_packs_requests_under_the_byte_limit(emulator) -> None:
    from cloudderm.adapters.cloud_vision import MAX_REQUEST_BYTES, request_bytes
    from cloudderm.images import PreparedImage

    def image(n: int, i: int) -> PreparedImage:
        return PreparedImage(bytes(n), "image/jpeg", 1, 1, f"{i:064x}", f"img{i}")

    clf = build("gv", emulator.config("cloud-vision", "generic"))
    big = [image(3 * 1024 * 1024, i) for i in range(3)]  # two of them base64-encoded exceed 8 MB
    assert [len(g) for g in clf.plan_batches(big)] == [1, 1, 1]
    small = [image(1000, i) for i in range(40)]
    groups = clf.plan_batches(small)
    assert [len(g) for g in groups] == [16, 16, 8]
    assert all(request_bytes([i.size_bytes for i in g]) <= MAX_REQUEST_BYTES for g in groups)


def test_each_service_protocol_is_registered_with_a_banner_and_a_snippet(emulator) -> None:
    import requests

    from cloudderm.emulate import get_protocol

    providers = emulator.providers(["derm"])
    for protocol in ("custom-vision", "cloud-vision", "rekognition", "hf-inference", "kserve"):
        assert providers[f"derm-{protocol}"]["adapter"] == protocol
        assert emulator.base_url in get_protocol(protocol).banner(emulator, "derm")
    metadata = requests.get(f"{emulator.base_url}/v2/models/derm", timeout=10).json()
    assert metadata["outputs"][0]["shape"] == [-1, len(providers["derm-kserve"]["labels"])]
