"""The policy refuses before any request; warn mode records instead; unknown HIPAA eligibility fails."""

from __future__ import annotations

import pytest
import yaml

import cloudderm
from cloudderm.cli import EXIT_POLICY, main
from cloudderm.config import parse_config
from cloudderm.errors import PolicyViolation
from cloudderm.factory import build_classifier
from cloudderm.governance.policy import policy_findings, with_policy_mode
from cloudderm.testing.fakes import FakeClassifier
from tests.conftest import make_jpeg

FAKE = "cloudderm.testing.fakes:FakeClassifier"
SAGEMAKER = "tests.unit._govfakes:FakeSageMaker"
VERTEX = "tests.unit._govfakes:FakeVertex"
DIAGNOSIS_CARD = {"prohibited_uses": ["Medical diagnosis"], "out_of_scope_uses": ["clinical triage"]}


@pytest.fixture
def fakes(monkeypatch) -> list[FakeClassifier]:
    """Every FakeClassifier built during the test, so the test can see whether any was ever called."""
    built: list[FakeClassifier] = []
    original = FakeClassifier.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(FakeClassifier, "__init__", spy)
    return built


def _config(policy: dict, **providers):
    return parse_config({"policy": policy, "providers": providers})


def test_region_refusal_happens_before_any_request(fakes):
    config = _config({"allowed_regions": ["eu-west-2"]}, us={"adapter": FAKE, "region": "us-east-1"})
    with pytest.raises(PolicyViolation) as err:
        build_classifier("us", config)
    assert (err.value.provider, err.value.rule) == ("us", "allowed_regions")
    assert "'us-east-1' is not in ['eu-west-2']" in err.value.fact
    assert (
        len(fakes) == 1 and fakes[0].calls == [] and fakes[0].closed
    )  # built, refused, closed, never called
    with pytest.raises(PolicyViolation):
        cloudderm.load("us", config=config)


def test_cli_classify_exits_3_and_sends_nothing(tmp_path, fakes, capsys):
    image = tmp_path / "lesion.jpg"
    image.write_bytes(make_jpeg((180, 120, 100)))
    cfg = tmp_path / "cloudderm.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "policy": {"allowed_regions": ["eu-west-2", "local"]},
                "providers": {
                    "ok": {"adapter": FAKE},
                    "offshore": {"adapter": FAKE, "region": "us-east-1"},
                },
            }
        )
    )
    assert main(["classify", str(image), "-c", str(cfg)]) == EXIT_POLICY
    assert "offshore" in capsys.readouterr().err
    assert fakes and all(f.calls == [] for f in fakes)  # not even the compliant provider sent a byte


def test_unknown_hipaa_eligibility_fails_closed_and_sourced_eligibility_passes(fakes):
    policy = {"require_hipaa_eligible": True}
    with pytest.raises(PolicyViolation) as err:
        build_classifier("vx", _config(policy, vx={"adapter": VERTEX}))
    assert err.value.rule == "require_hipaa_eligible" and "unknown fails closed" in err.value.fact
    build_classifier("sm", _config(policy, sm={"adapter": SAGEMAKER, "region": "eu-west-2"}))
    build_classifier("local", _config(policy, local={"adapter": FAKE}))  # images never leave the machine
    assert all(f.calls == [] for f in fakes)


def test_forbid_models_prohibited_for_refuses_a_card_prohibiting_diagnosis():
    config = _config(
        {"forbid_models_prohibited_for": ["medical-diagnosis"]},
        m={"adapter": FAKE, "model_card": DIAGNOSIS_CARD},
    )
    with pytest.raises(PolicyViolation) as err:
        build_classifier("m", config)
    assert err.value.rule == "forbid_models_prohibited_for" and "Medical diagnosis" in err.value.fact


@pytest.mark.parametrize(
    ("use", "word"), [("medical diagnosis", "prohibited"), ("Clinical_Triage", "out of scope")]
)
def test_intended_use_against_the_model_card(use, word):
    config = _config({"intended_use": use}, m={"adapter": FAKE, "model_card": DIAGNOSIS_CARD})
    with pytest.raises(PolicyViolation) as err:
        build_classifier("m", config)
    assert err.value.rule == "intended_use" and word in err.value.fact
    assert not policy_findings(
        build_classifier(
            "m", _config({"intended_use": "research"}, m={"adapter": FAKE, "model_card": DIAGNOSIS_CARD})
        ),
        parse_config({"policy": {"intended_use": "research"}}).policy,
    )


def test_enforce_names_the_other_findings_too():
    config = _config(
        {"allowed_regions": ["eu-west-2"], "forbid_models_prohibited_for": ["medical-diagnosis"]},
        m={"adapter": FAKE, "region": "us-east-1", "model_card": DIAGNOSIS_CARD},
    )
    with pytest.raises(PolicyViolation, match=r"and 1 more finding: forbid_models_prohibited_for"):
        build_classifier("m", config)


def test_warn_mode_records_on_every_prediction_and_still_runs(fakes, sample_images):
    config = _config(
        {
            "allowed_regions": ["eu-west-2"],
            "forbid_models_prohibited_for": ["medical-diagnosis"],
            "mode": "warn",
        },
        m={"adapter": FAKE, "region": "us-east-1", "model_card": DIAGNOSIS_CARD},
    )
    clf = build_classifier("m", config)
    warnings = clf.classify(sample_images[0]).warnings
    assert any(w.startswith("policy (allowed_regions) not met") for w in warnings)
    assert any(w.startswith("policy (forbid_models_prohibited_for) not met") for w in warnings)
    assert "model card prohibits medical diagnosis use" in warnings
    assert len(fakes[0].calls) == 1


def test_with_policy_mode_switches_enforce_to_warn():
    config = _config({"allowed_regions": ["eu-west-2"]}, us={"adapter": FAKE, "region": "us-east-1"})
    assert with_policy_mode(config, None) is config
    warned = with_policy_mode(config, "warn")
    assert warned.policy.mode == "warn" and config.policy.mode == "enforce"
    assert build_classifier("us", warned).standing_warnings
