"""Price catalog schema, cost arithmetic on hand-worked examples, overrides, and unknown-stays-None."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from cloudderm.cli import main
from cloudderm.config import parse_config
from cloudderm.errors import ConfigError
from cloudderm.factory import build_classifier
from cloudderm.pricing import estimate, pricing_for
from cloudderm.pricing.catalog import Catalog, load_catalog, parse_catalog
from cloudderm.pricing.models import HOURS_PER_MONTH, tiered_cost
from cloudderm.pricing.resolve import PricingTarget, resolve
from cloudderm.pricing.section import cost_section

REPO_ROOT = Path(__file__).resolve().parents[2]

VERTEX = "tests.unit._govfakes:FakeVertex"
SAGEMAKER = "tests.unit._govfakes:FakeSageMaker"
AZUREML = "tests.unit._govfakes:FakeAzureML"
LOCAL = "cloudderm.testing.fakes:FakeClassifier"
VERTEX_PRICING_PAGE = "https://cloud.google.com/vertex-ai/pricing"
VISION_PRICING_PAGE = "https://cloud.google.com/vision/pricing"


def _clf(settings: dict, name: str = "p"):
    config = parse_config({"providers": {name: settings}})
    return build_classifier(name, config, check_policy=False)


# ---- the catalog ------------------------------------------------------------------------------------------
def test_every_shipped_entry_states_source_and_date_in_the_file_itself():
    raw = yaml.safe_load((REPO_ROOT / "cloudderm" / "pricing" / "catalog.yaml").read_text())
    assert raw["entries"], "the catalog is empty"
    for entry in raw["entries"]:
        assert entry.get("source", "").startswith("https://"), entry["id"]
        assert entry.get("as_of"), entry["id"]
        assert entry.get("currency") == "USD", entry["id"]
    catalog = load_catalog()
    for entry in catalog.entries:
        assert entry.as_of <= date.today()
        assert (entry.price is not None) == (entry.kind == "hourly")


def test_catalog_carries_the_rechecked_vertex_and_vision_figures():
    catalog = load_catalog()
    vertex = catalog.get("gcp-vertex-automl-image-classification-online")
    assert (vertex.price, vertex.unit, vertex.source) == (1.375, "node hour", VERTEX_PRICING_PAGE)
    vision = catalog.get("gcp-vision-label-detection")
    assert [(t.first_unit, t.last_unit, t.price_per_1k) for t in vision.tiers] == [
        (1, 1000, 0.0),
        (1001, 5_000_000, 1.50),
        (5_000_001, None, 1.00),
    ]


def _entry(**overrides):
    entry = {
        "id": "x",
        "vendor": "aws",
        "service": "sagemaker-realtime-inference",
        "operation": "hosting",
        "kind": "hourly",
        "unit": "instance hour",
        "sku": "ml.m5.xlarge",
        "price": 1.0,
        "region": "us-east-1",
        "as_of": "2026-01-01",
        "source": "https://example.test/pricing",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"source": None}, "source"),
        ({"as_of": None}, "as_of"),
        ({"source": "http://example.test/x"}, "https"),
        ({"price": None}, "price"),
        (
            {"kind": "per_1k_units", "price": None, "tiers": [{"first_unit": 2, "price_per_1k": 1}]},
            "contiguous",
        ),
        (
            {
                "kind": "per_1k_units",
                "price": None,
                "tiers": [{"first_unit": 1, "last_unit": 5, "price_per_1k": 1}],
            },
            "open-ended",
        ),
    ],
)
def test_catalog_schema_rejects_unsourced_undated_or_malformed_entries(change, complaint):
    with pytest.raises(ConfigError, match=complaint):
        parse_catalog({"as_of": "2026-01-01", "entries": [_entry(**change)]}, "test.yaml")


def test_catalog_is_not_read_at_import():
    code = (
        "import sys, cloudderm, cloudderm.pricing;"
        "from cloudderm.pricing.catalog import load_catalog;"
        "print(load_catalog.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


# ---- always-on endpoints: hand-worked ----------------------------------------------------------------------
def test_vertex_automl_node_hours_hand_worked():
    clf = _clf({"adapter": VERTEX, "location": "europe-west2"})
    assert clf.pricing.cost_per_call(1) is None  # an always-on endpoint has no per-call price
    est = estimate(clf, 100_000)
    assert est.kind == "always-on"
    assert est.monthly_usd == pytest.approx(1.375 * 730)  # 1,003.75
    assert est.per_1k_usd == pytest.approx(10.0375)  # 1,003.75 / 100
    assert est.as_of == "2026-11-23" and est.sources == [VERTEX_PRICING_PAGE]
    assert any("730 h/month" in a for a in est.assumptions)
    two = estimate(_clf({"adapter": VERTEX, "node_count": 2}), 100_000)
    assert (two.monthly_usd, two.instances) == (pytest.approx(2007.5), 2)


def test_always_on_scales_to_the_measured_throughput():
    clf = _clf({"adapter": VERTEX})
    # 2 images/s x 3,600 s x 730 h = 5,256,000 images/month per node; twice that needs 2 nodes.
    est = estimate(clf, 10_512_000, measured_images_per_second=2.0)
    assert est.instances == 2
    assert est.monthly_usd == pytest.approx(2 * 1.375 * HOURS_PER_MONTH)
    assert est.utilisation == pytest.approx(1.0)
    assert est.per_image_usd_at_throughput == pytest.approx(1.375 / (2.0 * 3600))
    half = estimate(clf, 2_628_000, measured_images_per_second=2.0)
    assert (half.instances, half.utilisation) == (1, pytest.approx(0.5))
    assert any("utilisation 50.0%" in a for a in half.assumptions)


def test_instance_hour_lookup_is_by_instance_type_and_region():
    catalog = Catalog.model_validate({"as_of": "2026-01-01", "entries": [_entry(price=0.5)]})
    clf = _clf(
        {"adapter": SAGEMAKER, "instance_type": "ml.m5.xlarge", "region": "us-east-1", "instance_count": 3}
    )
    found = resolve(PricingTarget.of(clf), catalog)
    assert found.model.monthly_cost(0).monthly_usd == pytest.approx(0.5 * 3 * 730)
    elsewhere = _clf({"adapter": SAGEMAKER, "instance_type": "ml.m5.xlarge", "region": "eu-west-2"})
    missing = resolve(PricingTarget.of(elsewhere), catalog)
    assert missing.model is None and "eu-west-2" in missing.reason


# ---- per-call services: hand-worked tiers -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("units", "usd"),
    [
        (0, 0.0),
        (500, 0.0),
        (1000, 0.0),
        (1001, 0.0015),
        (10_000, 13.50),
        (6_000_000, 4_999_000 * 0.0015 + 1_000),
    ],
)
def test_cloud_vision_label_detection_tiers(units, usd):
    tiers = load_catalog().get("gcp-vision-label-detection").tiers
    assert tiered_cost(units, tiers) == pytest.approx(usd)


def test_per_call_service_priced_from_a_catalog_entry_fills_prediction_cost(sample_images):
    clf = _clf({"adapter": LOCAL, "pricing": {"catalog_id": "gcp-vision-label-detection"}})
    assert clf.classify(sample_images[0]).cost_usd == pytest.approx(0.0015)
    est = estimate(clf, 10_000)
    assert (est.kind, est.monthly_usd, est.per_1k_usd) == (
        "per-call",
        pytest.approx(13.5),
        pytest.approx(1.35),
    )
    assert any("first 1,000 units/month" in a for a in est.assumptions)
    assert est.sources == [VISION_PRICING_PAGE]


# ---- overrides always win --------------------------------------------------------------------------------
def test_hourly_override_beats_the_catalog():
    clf = _clf({"adapter": VERTEX, "node_count": 2, "pricing": {"hourly_usd": 2.0, "note": "negotiated"}})
    est = estimate(clf, 1_000)
    assert est.monthly_usd == pytest.approx(2.0 * 2 * 730)
    assert est.sources == [] and any("override" in a for a in est.assumptions)
    assert any("negotiated" in a for a in est.assumptions)


def test_per_1k_and_monthly_overrides(sample_images):
    per_call = _clf({"adapter": SAGEMAKER, "pricing": {"per_1k_usd": 4.0, "free_units_per_month": 1000}})
    assert per_call.classify(sample_images[0]).cost_usd == pytest.approx(0.004)
    assert estimate(per_call, 3_000).monthly_usd == pytest.approx(8.0)  # 2,000 paid units x $0.004
    monthly = _clf({"adapter": AZUREML, "pricing": {"monthly_usd": 500}})
    assert estimate(monthly, 10_000).monthly_usd == pytest.approx(500)
    assert estimate(monthly, 10_000).per_1k_usd == pytest.approx(50)


@pytest.mark.parametrize(
    ("pricing", "field"),
    [
        ({"hourly_usd": 1, "per_1k_usd": 2}, "pricing"),
        ({"hourly": 1}, "pricing.hourly"),
        ({"hourly_usd": -1}, "pricing.hourly_usd"),
    ],
)
def test_bad_overrides_are_config_errors_naming_provider_and_field(pricing, field):
    with pytest.raises(ConfigError) as err:
        _clf({"adapter": VERTEX, "pricing": pricing}, name="vtx")  # at build time, before any call
    assert err.value.provider == "vtx" and err.value.field == field


def test_unknown_catalog_id_lists_the_known_ones():
    with pytest.raises(ConfigError, match="gcp-vision-label-detection"):
        _clf({"adapter": LOCAL, "pricing": {"catalog_id": "nope"}})


# ---- unknown stays None ------------------------------------------------------------------------------------
def test_unsourced_instance_price_stays_unknown(sample_images):
    clf = _clf({"adapter": SAGEMAKER, "instance_type": "ml.m5.xlarge", "region": "eu-west-2"}, name="sm")
    assert pricing_for(clf) is None
    assert clf.classify(sample_images[0]).cost_usd is None
    est = estimate(clf, 10_000)
    assert (est.kind, est.monthly_usd, est.per_1k_usd) == ("unknown", None, None)
    assert "ml.m5.xlarge in eu-west-2" in est.assumptions[0]
    assert "providers.sm.pricing.hourly_usd" in est.assumptions[0]


def test_missing_instance_type_and_unpriced_vertex_custom_say_why():
    assert "instance_type is not set" in estimate(_clf({"adapter": AZUREML}), 1).assumptions[0]
    custom = _clf({"adapter": VERTEX, "response_format": "custom", "machine_type": "n1-standard-4"})
    assert "n1-standard-4" in estimate(custom, 1).assumptions[0]


def test_local_models_are_zero_marked_local_unless_an_hourly_rate_is_given(sample_images):
    free = _clf({"adapter": LOCAL})
    assert free.classify(sample_images[0]).cost_usd == 0.0
    est = estimate(free, 1_000)
    assert (est.kind, est.monthly_usd) == ("local", 0.0)
    paid = estimate(_clf({"adapter": LOCAL, "pricing": {"hourly_usd": 0.5}}), 1_000)
    assert (paid.kind, paid.monthly_usd) == ("local", pytest.approx(365.0))


# ---- summary section and CLI -----------------------------------------------------------------------------
def test_cost_section_uses_measured_throughput_then_latency():
    clfs = [_clf({"adapter": VERTEX}, name="v1"), _clf({"adapter": VERTEX}, name="v2")]
    summary = {"providers": {"v1": {"images_per_second": 4.0}, "v2": {"latency_ms": {"p50": 500.0}}}}
    section = cost_section(clfs, summary, volume=1_000)
    assert section["v1"]["per_image_usd_at_throughput"] == pytest.approx(1.375 / (4 * 3600))
    assert section["v2"]["per_image_usd_at_throughput"] == pytest.approx(1.375 / (2 * 3600))
    assert any("median latency" in a for a in section["v2"]["assumptions"])
    assert set(section["v1"]) >= {"monthly_usd", "per_1k_usd", "assumptions", "as_of"}


def test_cost_section_from_config_settings_without_classifiers():
    config = parse_config({"providers": {"sm": {"adapter": SAGEMAKER, "instance_type": "ml.g4dn.xlarge"}}})
    section = cost_section(config, {}, volume=5)
    assert section["sm"]["monthly_usd"] is None and "ml.g4dn.xlarge" in section["sm"]["assumptions"][0]


def _write_config(tmp_path: Path, providers: dict) -> str:
    path = tmp_path / "cloudderm.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "providers": providers}))
    return str(path)


def test_cost_command_prints_dated_figures_and_unknowns(tmp_path, capsys):
    cfg = _write_config(
        tmp_path,
        {
            "vertex-automl": {"adapter": VERTEX, "location": "europe-west2"},
            "jumpstart": {"adapter": SAGEMAKER, "instance_type": "ml.m5.xlarge", "region": "eu-west-2"},
            "local": {"adapter": LOCAL},
        },
    )
    assert main(["cost", "-c", cfg, "--volume", "100000"]) == 0
    out = capsys.readouterr().out
    for text in ("1,003.75", "10.04", "unknown", "2026-11-23", "local"):
        assert text in out
    assert main(["cost", "-c", cfg, "--volume", "100000", "--json"]) == 0
    rows = {r["provider"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["jumpstart"]["monthly_usd"] is None and rows["vertex-automl"]["as_of"] == "2026-11-23"


def test_cost_command_rejects_negative_volume(tmp_path):
    cfg = _write_config(tmp_path, {"local": {"adapter": LOCAL}})
    assert main(["cost", "-c", cfg, "--volume", "-1"]) == 2
