"""The risk register lists each planted risk, for the right provider, and nothing for a clean provider."""

from __future__ import annotations

from cloudderm.config import Policy, parse_config
from cloudderm.factory import build_classifier
from cloudderm.governance.risk import risk_register
from cloudderm.pricing.section import cost_section

SAGEMAKER = "tests.unit._govfakes:FakeSageMaker"
FAKE = "cloudderm.testing.fakes:FakeClassifier"
POLICY = {"allowed_regions": ["eu-west-2", "local"], "intended_use": "triage"}


def _cards_and_costs():
    config = parse_config(
        {
            "policy": POLICY,
            "providers": {
                "clean": {"adapter": FAKE},
                "mobilenet": {
                    "adapter": SAGEMAKER,
                    "region": "us-east-1",
                    "instance_type": "ml.m5.xlarge",
                    "model_card": {
                        "training_data": ["imagenet-1k"],
                        "prohibited_uses": ["medical-diagnosis"],
                        "out_of_scope_uses": ["triage"],
                    },
                },
            },
        }
    )
    clfs = {name: build_classifier(name, config, check_policy=False) for name in config.providers}
    cards = {name: c.governance.model_dump(mode="json") for name, c in clfs.items()}
    return config, cards, cost_section(clfs, {}, volume=10_000)


def _summary(cost):
    good = {"n": 120, "balanced_accuracy": 0.80}
    return {
        "providers": {
            "clean": {
                "ok": 200,
                "out_of_domain_rate": 0.0,
                "subgroups": {"sex": {"f": good, "m": dict(good)}},
            },
            "mobilenet": {
                "ok": 200,
                "out_of_domain_rate": 0.97,
                "subgroups": {
                    "fitzpatrick": {
                        "I-II": {"n": 150, "balanced_accuracy": 0.81},
                        "V-VI": {"n": 12, "balanced_accuracy": 0.52},
                    }
                },
            },
        },
        "dataset": {
            "class_counts": {"nv": 500, "mel": 60, "bcc": 40, "akiec": 35, "bkl": 45, "df": 5, "vasc": 0}
        },
        "cost": cost,
    }


def _find(risks, risk, provider):
    return [r for r in risks if r["risk"] == risk and r["provider"] == provider]


def test_each_planted_risk_is_listed():
    config, cards, cost = _cards_and_costs()
    risks = risk_register(_summary(cost), cards, config.policy)
    assert {tuple(sorted(r)) for r in risks} == {("detail", "mitigation", "provider", "risk", "severity")}
    assert _find(risks, "out-of-domain model", "mobilenet")[0]["severity"] == "high"
    prohibited = _find(risks, "prohibited intended use", "mobilenet")
    assert any("medical-diagnosis" in r["detail"] for r in prohibited)
    assert any("'triage' is listed as out of scope" in r["detail"] for r in prohibited)
    gap = _find(risks, "subgroup performance gap", "mobilenet")[0]
    assert gap["severity"] == "high" and "gap 0.29" in gap["detail"] and "V-VI" in gap["detail"]
    assert "fewer than 30 images" in gap["detail"]
    small = _find(risks, "small subgroup", None)
    assert [r["detail"].split(" has ")[0] for r in small] == ["fitzpatrick=V-VI"]
    region = _find(risks, "region outside policy", "mobilenet")[0]
    assert "us-east-1" in region["detail"] and region["severity"] == "high"
    assert "ml.m5.xlarge" in _find(risks, "unknown price", "mobilenet")[0]["detail"]
    facts = _find(risks, "unknown vendor facts", "mobilenet")[0]["detail"]
    assert "baa_available" in facts and "data_retention" in facts and "hipaa_eligible" not in facts
    imbalance = " | ".join(r["detail"] for r in _find(risks, "class imbalance", None))
    assert "no labelled images of: vasc" in imbalance
    assert "nv has 500 images, df only 5 (ratio 100.0 > 10)" in imbalance
    assert "fewer than 30 labelled images of: df" in imbalance


def test_a_clean_local_provider_raises_no_risk_and_order_is_by_severity():
    config, cards, cost = _cards_and_costs()
    risks = risk_register(_summary(cost), cards, config.policy)
    assert [r for r in risks if r["provider"] == "clean"] == []
    order = {"high": 0, "medium": 1, "low": 2}
    assert [order[r["severity"]] for r in risks] == sorted(order[r["severity"]] for r in risks)


def test_thresholds_policy_dict_and_label_counts_fallback():
    _, cards, cost = _cards_and_costs()
    summary = _summary(cost)
    summary["dataset"] = {"label_counts": {"nv": 50, "mel": 40}}
    risks = risk_register(summary, cards, dict(POLICY), subgroup_gap=0.5, min_subgroup_n=5)
    assert not _find(risks, "subgroup performance gap", "mobilenet")
    assert not _find(risks, "small subgroup", None)
    assert not _find(risks, "class imbalance", None)
    assert _find(risks, "region outside policy", "mobilenet")


def test_unknown_hipaa_is_high_when_the_policy_requires_it():
    cards = {
        "vx": {
            "service": {
                "service": "Vertex AI endpoint",
                "vendor": "gcp",
                "region": "europe-west2",
                "data_leaves_machine": True,
            },
            "model": {},
        }
    }
    summary = {"providers": {"vx": {"ok": 3, "cost_usd": {"total": None}}}}
    risks = risk_register(summary, cards, Policy(require_hipaa_eligible=True))
    assert _find(risks, "unknown vendor facts", "vx")[0]["severity"] == "high"
    assert _find(risks, "unknown price", "vx")
    assert _find(risks, "personal data sent to a processor", "vx")[0]["severity"] == "low"


def test_groups_of_a_handful_of_images_do_not_make_a_gap() -> None:
    summary = {
        "providers": {
            "p": {
                "subgroups": {
                    "site": {
                        "face": {"n": 40, "balanced_accuracy": 0.8},
                        "ear": {"n": 1, "balanced_accuracy": 0.0},
                    }
                }
            }
        },
        "dataset": {},
    }
    risks = risk_register(summary, {})
    assert not [r for r in risks if r["risk"] == "subgroup performance gap"]
    assert any(r["risk"] == "small subgroup" and "site=ear" in r["detail"] for r in risks)


def test_small_subgroup_counts_are_the_subgroup_tables_scored_counts() -> None:
    """Issue #12 item 6: the register counts scored images (``n_scored``), as the subgroup table does."""
    summary = {
        "providers": {
            "p": {
                "subgroups": {
                    "sex": {
                        "female": {"n": 18, "n_scored": 17, "balanced_accuracy": 0.8},
                        "male": {"n": 16, "n_scored": 14, "balanced_accuracy": 0.7},
                        "unknown": {"n": 1, "n_scored": 0, "balanced_accuracy": None},
                    }
                }
            }
        },
        "dataset": {},
    }
    details = [r["detail"] for r in risk_register(summary, {}) if r["risk"] == "small subgroup"]
    assert any("sex=female has 17 scored" in d for d in details), details
    assert any("sex=male has 14 scored" in d for d in details)
    assert any("sex=unknown has 0 scored" in d for d in details)
