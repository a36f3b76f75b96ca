"""The contracts every adapter and consumer codes against (docs/architecture.md, "Contracts").

Per-image context, usage, outcome, vendor + price_query, endpoint_url and picklable adapters.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path

import pytest

from cloudderm.classifier import Classifier, ImageContext, PriceQuery, RawResult, Usage
from cloudderm.config import load_config
from cloudderm.factory import pricing_target
from cloudderm.facts import ServiceFacts
from cloudderm.images import PreparedImage, prepare
from cloudderm.pricing import estimate, pricing_for
from cloudderm.pricing.resolve import PricingTarget, resolve
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.conftest import make_jpeg

FAKE = "cloudderm.testing.fakes:FakeClassifier"


class Scripted(Classifier):
    """Answers what the test scripted and keeps the contexts it was handed."""

    adapter = "scripted"
    vendor = "local"

    def __init__(self, results: list[RawResult]) -> None:
        super().__init__("scripted", FakeSettings())
        self.results = results
        self.seen: list[ImageContext | None] = []

    @property
    def model_id(self) -> str:
        return "scripted-model"

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(service="test", vendor="local", region="local", data_leaves_machine=False)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        self.seen.extend(image.context for image in images)
        return [self.results[i % len(self.results)] for i in range(len(images))]


# ---- per-image context ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"age": "55", "sex": "female", "site": "back"}, ImageContext(55.0, "female", "back")),  # labels.csv
        ({"age": "80.0", "sex": "male", "localization": "scalp"}, ImageContext(80.0, "male", "scalp")),
        ({"age": "61", "gender": "FEMALE", "region": "FACE"}, ImageContext(61.0, "female", "FACE")),  # PAD
        ({"age": "", "sex": "unknown", "localization": "unknown"}, ImageContext(None, "unknown", "unknown")),
        ({"age": "n/a", "gender": "F"}, ImageContext(None, "female", None)),
        ({"dx": "mel"}, None),
    ],
)
def test_context_is_read_from_each_datasets_columns(columns, expected) -> None:
    assert ImageContext.from_metadata(columns) == expected


def test_context_rejects_impossible_values_and_coerces_mappings() -> None:
    with pytest.raises(ValueError, match="age"):
        ImageContext(age=-3)
    with pytest.raises(ValueError, match="sex"):
        ImageContext(sex="f")  # type: ignore[arg-type]
    assert ImageContext.of({"age": 40, "sex": "M"}) == ImageContext(40.0, "male", None)
    assert ImageContext.of({}) is None and ImageContext.of(None) is None


def test_classify_passes_context_to_the_adapter_and_batch_accepts_pairs(sample_images) -> None:
    clf = Scripted([RawResult(labels=[("nevus", 1.0)])])
    clf.classify(sample_images[0], context={"age": 30, "sex": "female", "site": "arm"})
    clf.classify(sample_images[0])
    clf.classify_batch([sample_images[1], (sample_images[2], ImageContext(site="back"))])
    assert clf.seen == [ImageContext(30.0, "female", "arm"), None, None, ImageContext(site="back")]


def test_context_is_not_part_of_the_image_identity(sample_images) -> None:
    plain = prepare(sample_images[0])
    with_context = plain.with_context(ImageContext(age=50))
    assert with_context == plain and with_context.sha256 == plain.sha256
    assert prepare(with_context, max_side=16).context == ImageContext(age=50)  # re-fitting keeps it


def test_compare_sends_each_rows_context(tmp_path: Path) -> None:
    from cloudderm.compare import run_compare

    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"i{i}.jpg").write_bytes(make_jpeg((40 * i, 90, 200 - 30 * i)))
    (tmp_path / "labels.csv").write_text(
        "image,label,age,sex,site\ni0.jpg,nv,55,female,back\ni1.jpg,mel,,M,\ni2.jpg,bkl,,,\n"
    )
    log = tmp_path / "contexts.jsonl"
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\nproviders:\n  fake: {{adapter: '{FAKE}', context_log: '{log}'}}\n")
    run_compare(
        images, config=str(config), labels=tmp_path / "labels.csv", out=tmp_path / "out", progress=False
    )
    sent = [json.loads(line)["context"] for line in log.read_text().splitlines()]
    assert sorted(sent, key=str) == sorted(
        [{"age": 55.0, "sex": "female", "site": "back"}, {"age": None, "sex": "male", "site": None}, None],
        key=str,
    )


# ---- outcome and usage ---------------------------------------------------------------------------------
def test_abstention_has_no_label_no_canonical_and_no_out_of_domain_warning(sample_images) -> None:
    reason = "I cannot diagnose skin conditions. " * 10
    clf = Scripted([RawResult(labels=[], outcome="abstained", reason=reason)])
    prediction = clf.classify(sample_images[0])
    assert (prediction.outcome, prediction.labels, prediction.canonical, prediction.top) == (
        "abstained",
        [],
        None,
        None,
    )
    assert len(prediction.reason or "") <= 200 and prediction.reason.startswith("I cannot diagnose")
    assert not any("out-of-domain" in w for w in prediction.warnings)
    assert "abstained" in str(prediction)


def test_classifiers_answer_and_usage_reaches_the_prediction(sample_images) -> None:
    usage = Usage(input_tokens=812, output_tokens=40)
    prediction = Scripted([RawResult(labels=[("mel", 0.7), ("nv", 0.3)], usage=usage)]).classify(
        sample_images[0]
    )
    assert (prediction.outcome, prediction.reason, prediction.usage) == ("answered", None, usage)
    assert prediction.model_dump(mode="json")["usage"] == {
        "input_tokens": 812,
        "output_tokens": 40,
        "billed_units": None,
    }


def test_summary_counts_outcomes_and_abstentions_are_not_out_of_domain(tmp_path: Path) -> None:
    from cloudderm.compare.summary import build_summary
    from cloudderm.taxonomy import HAM10000
    from tests.unit._records import record

    rows = [
        record("i1", "V", label="mel", canonical="mel", score=0.9, truth="mel") | {"outcome": "answered"},
        record("i2", "V", truth="mel") | {"outcome": "abstained", "reason": "refused"},
        record("i3", "V", label="coffee", score=0.9, truth="nv") | {"outcome": "answered"},
        record("i4", "V", truth="nv"),  # an older file without the key: answered
    ]
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = build_summary(path, taxonomy=HAM10000, providers={"V": {}}, dataset={}, subgroups=[])
    entry = summary["providers"]["V"]
    assert entry["outcomes"] == {"answered": 3, "abstained": 1, "unparseable": 0}
    assert entry["out_of_domain_rate"] == pytest.approx(2 / 4)  # coffee and the label-less old line
    assert any("abstained x1" in w for w in entry["warnings"])


# ---- vendor and price_query ------------------------------------------------------------------------------
class AcmeVision(FakeClassifier):
    """A provider pricing has never heard of: it declares its vendor and catalog entry."""

    adapter = "acme"
    vendor = "acme"

    def price_query(self) -> PriceQuery:
        return PriceQuery(entry_ids=("gcp-vision-label-detection",))


def test_a_new_provider_is_priced_from_its_own_query_without_touching_pricing() -> None:
    clf = AcmeVision("acme-1", FakeSettings())
    assert pricing_for(clf) is not None and pricing_for(clf).cost_per_call(1) is not None
    target = PricingTarget.of(clf)
    assert (target.vendor, target.query.entry_ids) == ("acme", ("gcp-vision-label-detection",))


def test_unknown_vendor_without_a_query_stays_unknown_with_the_fix() -> None:
    class Mystery(FakeClassifier):
        adapter = "mystery"
        vendor = "mystery-co"

    est = estimate(Mystery("m", FakeSettings()), 1000)
    assert est.kind == "unknown" and "providers.m.pricing" in est.assumptions[0]


def test_price_query_from_settings_alone() -> None:
    from cloudderm.adapters.sagemaker import SageMakerSettings

    settings = SageMakerSettings(endpoint_name="ep", instance_type="ml.g5.xlarge", region="us-east-1")
    target = pricing_target("sm", settings)
    assert (target.vendor, target.query.sku, target.query.region) == ("aws", "ml.g5.xlarge", "us-east-1")
    assert resolve(target).model is not None or "ml.g5.xlarge" in (resolve(target).reason or "")


def test_pricing_knows_no_adapter_name() -> None:
    source = (Path(__file__).resolve().parents[2] / "cloudderm" / "pricing" / "resolve.py").read_text()
    for name in ("sagemaker", "azureml", "vertex", "huggingface", "fake"):
        assert f'"{name}"' not in source


# ---- endpoint_url ----------------------------------------------------------------------------------------
def test_vertex_api_endpoint_is_a_deprecated_alias_of_endpoint_url() -> None:
    from cloudderm.adapters.vertex import VertexSettings

    base = {"project": "p", "location": "europe-west2", "endpoint_id": "1"}
    with pytest.warns(DeprecationWarning, match="endpoint_url"):
        old = VertexSettings(**base, api_endpoint="http://127.0.0.1:8080")
    assert old.endpoint_url == old.api_endpoint == "http://127.0.0.1:8080"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert VertexSettings(**base, endpoint_url="http://127.0.0.1:8080").endpoint_url == old.endpoint_url
    with pytest.raises(ValueError, match="endpoint_url only"):
        VertexSettings(**base, api_endpoint="a.example", endpoint_url="b.example")


def test_azureml_endpoint_url_redirects_the_scoring_uri() -> None:
    from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings

    settings = AzureMLSettings(
        scoring_uri="https://skin.westeurope.inference.ml.azure.com/score",
        api_key="k",
        endpoint_url="http://127.0.0.1:9000",
    )
    clf = AzureMLClassifier("az", settings)
    assert clf._scoring_uri == "http://127.0.0.1:9000/score"
    assert clf.service_facts().data_leaves_machine is False
    alone = AzureMLClassifier("az", AzureMLSettings(api_key="k", endpoint_url="http://localhost:9000"))
    assert alone._scoring_uri == "http://localhost:9000/score"


def test_every_remote_adapter_has_endpoint_url() -> None:
    from cloudderm.adapters.azureml import AzureMLSettings
    from cloudderm.adapters.sagemaker import SageMakerSettings
    from cloudderm.adapters.vertex import VertexSettings

    for settings in (AzureMLSettings, SageMakerSettings, VertexSettings):
        assert "endpoint_url" in settings.model_fields, settings.__name__


# ---- picklable adapters ----------------------------------------------------------------------------------
def _remote_adapters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Classifier]:
    from cloudderm.adapters.azureml import AzureMLClassifier, AzureMLSettings
    from cloudderm.adapters.sagemaker import SageMakerClassifier, SageMakerSettings
    from cloudderm.adapters.vertex import VertexClassifier, VertexSettings
    from tests.conftest import isolate_aws

    isolate_aws(monkeypatch, tmp_path, "AKIDEXAMPLE", "secret")
    return [
        FakeClassifier("fake", FakeSettings(seed="s")),
        SageMakerClassifier(
            "sm", SageMakerSettings(endpoint_name="ep", region="eu-west-2", endpoint_url="http://127.0.0.1:1")
        ),
        AzureMLClassifier("az", AzureMLSettings(scoring_uri="http://127.0.0.1:1/score", api_key="k")),
        VertexClassifier(
            "vx",
            VertexSettings(
                project="p",
                location="europe-west2",
                endpoint_id="1",
                anonymous=True,
                endpoint_url="127.0.0.1:1",
            ),
        ),
    ]


def test_adapters_pickle_before_and_after_warm_up(monkeypatch, tmp_path, sample_images) -> None:
    for clf in _remote_adapters(monkeypatch, tmp_path):
        clf.standing_warnings = ["a standing warning"]
        for stage in ("built", "warm"):
            if stage == "warm":
                try:
                    clf.warm_up()
                except ImportError:  # the adapter's SDK is not installed here: "built" was checked
                    continue
            copy = pickle.loads(pickle.dumps(clf))
            assert type(copy) is type(clf), stage
            assert (copy.name, copy.settings, copy.model_id) == (clf.name, clf.settings, clf.model_id)
            assert copy.standing_warnings == ["a standing warning"]
            assert copy.taxonomy.canonical("melanoma") == "mel"
        clf.close()


def test_a_pickled_fake_answers_like_the_original(sample_images) -> None:
    clf = FakeClassifier("fake", FakeSettings(seed="x"))
    before = clf.classify(sample_images[0])
    copy = pickle.loads(pickle.dumps(clf))
    after = copy.classify(sample_images[0])
    assert [(ls.label, ls.score) for ls in after.labels] == [(ls.label, ls.score) for ls in before.labels]


def test_demo_config_adapters_pickle(tmp_path: Path) -> None:
    """Built from a config file, the way the runner and a process pool get them."""
    from cloudderm.factory import build_classifier

    config = tmp_path / "c.yaml"
    config.write_text(
        f"version: 1\nproviders:\n  a: {{adapter: '{FAKE}', label_map: {{mole: nv}}}}\n"
        "  b: {adapter: sagemaker, endpoint_name: ep, region: eu-west-2}\n"
    )
    cfg = load_config(config)
    for name in ("a", "b"):
        clf = build_classifier(name, cfg)
        copy = pickle.loads(pickle.dumps(clf))
        assert copy.taxonomy.canonical("mole") == clf.taxonomy.canonical("mole")
        assert copy.standing_warnings == clf.standing_warnings


# ---- config hash: interpretation settings re-map stored answers without re-sending ------------------------
def test_label_map_change_remaps_stored_answers_without_resending(tmp_path: Path) -> None:
    from cloudderm.compare import run_compare

    images = tmp_path / "images"
    images.mkdir()
    for i in range(4):
        (images / f"i{i}.jpg").write_bytes(make_jpeg((60 * i, 90, 30 + 40 * i)))
    calls = tmp_path / "calls.log"

    def run(extra: str) -> list[dict]:
        config = tmp_path / "c.yaml"
        config.write_text(
            "version: 1\nproviders:\n"
            f"  f: {{adapter: '{FAKE}', labels: [mole, spot], call_log: '{calls}'{extra}}}\n"
        )
        run_compare(images, config=str(config), out=tmp_path / "out", progress=False)
        lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    before = run("")
    sent = len(calls.read_text().splitlines())
    assert sent == 4 and all(r["canonical"] is None for r in before)
    assert all(any("out-of-domain" in w for w in r["warnings"]) for r in before)

    after = run(", label_map: {mole: nv, spot: bkl}, model_card: {intended_use: research}")
    assert len(calls.read_text().splitlines()) == sent, "a label-map change must not re-send anything"
    assert {r["canonical"] for r in after} <= {"nv", "bkl"} and all(r["canonical"] for r in after)
    assert not any("out-of-domain" in w for r in after for w in r["warnings"])
    assert [r["labels"] for r in after] == [r["labels"] for r in before]


def test_config_hash_covers_the_wire_settings_and_extras_only() -> None:
    from cloudderm.compare.store import config_hash

    base = FakeSettings(model="m")
    same = FakeSettings(
        model="m", label_map={"a": "nv"}, model_card={"license": "mit"}, pricing={"hourly_usd": 1}
    )
    assert config_hash(base) == config_hash(same) == config_hash(FakeSettings(model="m", timeout_s=3))
    assert config_hash(base) != config_hash(FakeSettings(model="other"))
    assert config_hash(base) != config_hash(base, {"prompt": "Which lesion is this?"})


# ---- typed results --------------------------------------------------------------------------------------
def test_exported_lines_and_the_summary_have_the_typed_results_shape(tmp_path: Path) -> None:
    from cloudderm.compare import run_compare
    from cloudderm.results import RECORD_KEYS, PredictionRecord, Summary, iter_records

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        (images / f"i{i}.jpg").write_bytes(make_jpeg((70 * i, 50, 90)))
    config = tmp_path / "c.yaml"
    config.write_text(f"version: 1\nproviders:\n  f: {{adapter: '{FAKE}'}}\n")
    summary = run_compare(images, config=str(config), out=tmp_path / "out", progress=False)
    lines = list(iter_records(tmp_path / "out" / "predictions.jsonl"))
    assert lines and all(tuple(line) == RECORD_KEYS for line in lines)
    assert all(PredictionRecord.model_validate(line).outcome == "answered" for line in lines)
    typed = Summary.model_validate(summary)
    assert typed.providers["f"].ok == 2 and typed.providers["f"].outcomes["answered"] == 2
    assert typed.providers["f"].cost_usd.projected is None or typed.providers["f"].cost_usd.projected.basis
