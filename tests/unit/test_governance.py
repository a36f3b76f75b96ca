"""Vendor facts schema, card building, model-card prohibitions and their warnings on every Prediction."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml

import cloudderm
from cloudderm.cli import main
from cloudderm.config import parse_config
from cloudderm.errors import ConfigError
from cloudderm.factory import build_classifier
from cloudderm.governance.cards import IMAGENET_WARNING, slug
from cloudderm.governance.facts import load_vendor_facts
from tests.unit._govfakes import MOBILENET_V2_INTENDED_USE, MOBILENET_V2_README

REPO_ROOT = Path(__file__).resolve().parents[2]
SAGEMAKER = "tests.unit._govfakes:FakeSageMaker"
VERTEX = "tests.unit._govfakes:FakeVertex"
AZUREML = "tests.unit._govfakes:FakeAzureML"
LOCAL_CARD = "tests.unit._govfakes:FakeLocalWithCard"
LOCAL = "cloudderm.testing.fakes:FakeClassifier"
PROHIBITS_DIAGNOSIS = "model card prohibits medical diagnosis use"


def _clf(settings: dict, name: str = "p", **config):
    return build_classifier(name, parse_config({"providers": {name: settings}, **config}), check_policy=False)


# ---- providers.yaml ------------------------------------------------------------------------------
def _facts_in(raw: dict):
    for vendor in raw["vendors"].values():
        for key in ("baa_available",):
            if vendor.get(key):
                yield vendor[key]
        yield from vendor.get("caveats", [])
        for service in (vendor.get("services") or {}).values():
            for key in ("hipaa_eligible", "certifications", "data_retention", "training_use"):
                if service.get(key):
                    yield service[key]


def test_every_vendor_fact_has_source_date_and_quote():
    raw = yaml.safe_load((REPO_ROOT / "cloudderm" / "governance" / "providers.yaml").read_text())
    facts = list(_facts_in(raw))
    assert len(facts) >= 5
    for fact in facts:
        assert fact["source"].startswith("https://") and fact["as_of"] and fact["quote"], fact
    loaded = load_vendor_facts()
    assert loaded.as_of <= date.today()
    assert set(loaded.vendors) >= {"aws", "azure", "gcp", "local"}


def test_vendor_facts_loader_rejects_an_unsourced_fact(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "as_of": "2026-01-01",
                "vendors": {"x": {"name": "X", "baa_available": {"value": True, "as_of": "2026-01-01"}}},
            }
        )
    )
    with pytest.raises(ConfigError, match="source"):
        load_vendor_facts(path)


# ---- cards ---------------------------------------------------------------------------------------
def test_sagemaker_card_carries_sourced_hipaa_and_training_use_and_unknown_baa():
    card = _clf({"adapter": SAGEMAKER, "region": "eu-west-2"}).governance
    assert card.hipaa_eligible.value is True
    assert (
        card.hipaa_eligible.source
        == "https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-compliance.html"
    )
    assert card.hipaa_eligible.as_of == "2026-11-23"
    assert "HIPAA" in card.certifications.value
    assert "does not use or share" in card.training_use.value
    assert card.baa_available is None and card.data_retention is None  # not sourced: unknown, not guessed


def test_vertex_and_azure_cards_have_vendor_baa_but_unknown_service_eligibility():
    for adapter, source in ((VERTEX, "cloud.google.com"), (AZUREML, "learn.microsoft.com")):
        card = _clf({"adapter": adapter}).governance
        assert card.baa_available.value is True and source in card.baa_available.source
        assert card.hipaa_eligible is None


def test_local_models_get_no_vendor_facts():
    card = _clf({"adapter": LOCAL}).governance
    assert not card.service.data_leaves_machine
    assert card.hipaa_eligible is None and card.baa_available is None


# ---- prohibitions and out-of-domain labels -------------------------------------------------------
MOBILENET_CARD = {
    "model_id": "google/mobilenet_v2_1.0_224",
    "intended_use": MOBILENET_V2_INTENDED_USE,
    "training_data": ["imagenet-1k"],
    "license": "other",
    "source": MOBILENET_V2_README,
}


def test_mobilenet_v2_seed_card_is_out_of_domain_and_every_prediction_says_so(sample_images):
    clf = _clf({"adapter": LOCAL_CARD, "card_facts": MOBILENET_CARD})
    card = clf.governance
    assert card.model.label_domain == "out-of-domain"
    assert card.warnings == [IMAGENET_WARNING]
    predictions = clf.classify_batch(sample_images)
    assert all(IMAGENET_WARNING in p.warnings for p in predictions)


def test_model_card_config_adds_the_prohibition_for_a_cloud_endpoint(sample_images):
    clf = _clf(
        {
            "adapter": SAGEMAKER,
            "model_card": {
                "intended_use": MOBILENET_V2_INTENDED_USE,
                "training_data": "imagenet-1k",
                "prohibited_uses": ["Medical diagnosis"],
            },
        },
        name="jumpstart",
    )
    card = clf.governance
    assert card.model.prohibited_uses == ["Medical diagnosis"]
    assert card.model.source == "config: providers.jumpstart.model_card"
    assert card.warnings == [PROHIBITS_DIAGNOSIS, IMAGENET_WARNING]
    assert {PROHIBITS_DIAGNOSIS, IMAGENET_WARNING} <= set(clf.classify(sample_images[0]).warnings)


def test_model_card_config_wins_over_the_adapters_card():
    clf = _clf(
        {
            "adapter": LOCAL_CARD,
            "card_facts": {**MOBILENET_CARD, "prohibited_uses": ["medical-diagnosis"]},
            "model_card": {"intended_use": "research comparison", "prohibited_uses": []},
        },
        name="m",
    )
    model = clf.governance.model
    assert model.intended_use == "research comparison" and model.prohibited_uses == []
    assert model.license == "other" and model.training_data == ["imagenet-1k"]  # untouched fields kept


def test_model_card_typo_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError) as err:
        _clf({"adapter": LOCAL, "model_card": {"intended_usage": "x"}}, name="typo")
    assert err.value.provider == "typo" and err.value.field == "model_card.intended_usage"


def test_label_domain_from_labels_and_fine_tuned_backbones_are_not_flagged():
    imagenet_labels = _clf(
        {"adapter": LOCAL_CARD, "card_facts": {"labels": ["tabby, tabby cat", "coffee bean"]}}
    )
    assert imagenet_labels.governance.model.label_domain == "out-of-domain"
    assert "outside the ham10000 taxonomy" in imagenet_labels.governance.warnings[0]
    lesions = _clf({"adapter": LOCAL_CARD, "card_facts": {"labels": ["melanocytic_Nevi", "Melanoma"]}})
    assert lesions.governance.model.label_domain == "in-domain" and lesions.governance.warnings == []
    fine_tuned = _clf(
        {"adapter": LOCAL_CARD, "card_facts": {"training_data": ["imagenet-21k", "marmal88/skin_cancer"]}}
    )
    assert fine_tuned.governance.model.label_domain == "unknown"


def test_cloudderm_load_attaches_warnings_once():
    config = parse_config({"providers": {"m": {"adapter": LOCAL_CARD, "card_facts": MOBILENET_CARD}}})
    clf = cloudderm.load("m", config=config)
    clf.governance  # noqa: B018 - building the card again must not duplicate warnings
    assert clf.standing_warnings == [IMAGENET_WARNING]


def test_slug_matches_use_names_loosely():
    assert (
        slug("Medical diagnosis")
        == slug("medical_diagnosis")
        == slug(" medical-DIAGNOSIS ")
        == "medical-diagnosis"
    )


# ---- `cloudderm providers` -----------------------------------------------------------------------
def test_providers_command_shows_cards_with_sources_and_pricing(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "sm": {
                        "adapter": SAGEMAKER,
                        "region": "eu-west-2",
                        "instance_type": "ml.m5.xlarge",
                        "model_card": {"prohibited_uses": ["medical-diagnosis"]},
                    },
                    "vx": {"adapter": VERTEX, "location": "europe-west2"},
                }
            }
        )
    )
    assert main(["providers", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    for text in (
        "HIPAA eligible",
        "certifications",
        "unknown",
        "medical-diagnosis",
        "$1,003.75/month",
        "2026-11-23",
    ):
        assert text in out
    assert main(["providers", "-c", str(cfg), "--json"]) == 0
    cards = {c["provider"]: c for c in json.loads(capsys.readouterr().out)}
    assert cards["sm"]["hipaa_eligible"]["source"].startswith("https://docs.aws.amazon.com/")
    assert cards["sm"]["pricing"].startswith("unknown: no sourced price for SageMaker")
    assert cards["vx"]["pricing"].startswith("$1.375/h")
    assert PROHIBITS_DIAGNOSIS in cards["sm"]["warnings"]
