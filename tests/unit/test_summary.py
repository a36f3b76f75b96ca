"""build_summary on the hand-written scenario of tests/unit/_records.py: every number worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudderm.compare.summary import MISSING_VALUE, build_summary, governance_flags, iter_records
from cloudderm.errors import CloudDermError
from cloudderm.taxonomy import HAM10000
from tests.unit._records import record, sample_providers, sample_records, write_jsonl

DATASET = {"path": "images/", "labels": "labels.csv"}


@pytest.fixture
def summary(tmp_path: Path) -> dict:
    path = write_jsonl(tmp_path / "predictions.jsonl", sample_records())
    return build_summary(
        path, providers=sample_providers(), dataset=DATASET, subgroups=["sex"], taxonomy=HAM10000
    )


def test_top_level_keys_follow_design(summary: dict) -> None:
    assert {"providers", "agreement", "dataset", "pricing_as_of"} <= summary.keys()
    assert list(summary["providers"]) == ["A", "B", "C"]
    assert summary["pricing_as_of"] == "2025-02-01"  # the latest date among the providers
    assert summary["governance"]["B"]["model"]["prohibited_uses"] == ["medical-diagnosis"]
    assert "C" not in summary["governance"]  # no card given: nothing invented
    assert "not a diagnosis" in summary["disclaimer"]
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN anywhere


def test_dataset_counts(summary: dict) -> None:
    ds = summary["dataset"]
    assert ds["path"] == "images/"
    assert ds["n_images"] == 6 and ds["n_labelled"] == 5
    assert ds["label_counts"] == {"akiec": 0, "bcc": 0, "bkl": 1, "df": 0, "mel": 2, "nv": 2, "vasc": 0}
    assert ds["unmapped_labels"] == {"unknown-thing": 1}


def test_in_domain_provider_a(summary: dict) -> None:
    a = summary["providers"]["A"]
    assert (a["n"], a["ok"], a["errors"], a["skipped"], a["n_scored"]) == (6, 6, 0, 0, 5)
    assert a["adapter"] == "huggingface" and a["model"] == "derm-vit" and a["config_hash"] == "a1"
    # scored i1..i5: truth mel mel nv nv bkl, predicted mel nv nv nv mel -> 3 right of 5
    assert a["accuracy"] == pytest.approx(0.6)
    # sensitivity: mel 1/2, nv 2/2, bkl 0/1; classes without images are None
    assert a["sensitivity"] == {
        "akiec": None,
        "bcc": None,
        "bkl": 0.0,
        "df": None,
        "mel": 0.5,
        "nv": 1.0,
        "vasc": None,
    }
    assert a["melanoma_sensitivity"] == 0.5
    assert a["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    # F1: mel TP1 FP1(i5) FN1(i2) -> 0.5; nv TP2 FP1(i2) FN0 -> 0.8; bkl TP0 FN1 -> 0
    assert a["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # triage: concerning i1, i2 -> flagged i1 only = 1/2; benign i3, i4, i5 -> i5 called mel = 2/3
    assert a["triage_sensitivity"] == pytest.approx(0.5)
    assert a["triage_specificity"] == pytest.approx(2 / 3)
    # ECE over scored: each in its own bin: |1-.9| + |0-.6| + |1-.8| + |1-.7| + |0-.55| = 1.75, / 5
    assert a["ece"] == pytest.approx(0.35)
    assert a["out_of_domain_rate"] == 0.0
    # latency 100..600: p50 = 350; p95 rank 4.75 -> 500 + 75 = 575; p99 rank 4.95 -> 595
    assert a["latency_ms"] == {"p50": 350.0, "p95": pytest.approx(575.0), "p99": pytest.approx(595.0)}
    # 6 answers x $0.001 = $0.006 -> $1 per 1,000
    assert a["cost_usd"] == {"total": pytest.approx(0.006), "per_1k": pytest.approx(1.0), "n_priced": 6}
    conf = a["confusion"]
    assert conf["columns"][-1] == "out-of-domain"
    mel, nv, bkl = conf["rows"].index("mel"), conf["rows"].index("nv"), conf["rows"].index("bkl")
    assert conf["matrix"][mel][mel] == 1 and conf["matrix"][mel][nv] == 1
    assert conf["matrix"][nv][nv] == 2 and conf["matrix"][bkl][mel] == 1
    assert sum(map(sum, conf["matrix"])) == 5
    assert a["flags"] == []


def test_subgroups_with_intervals_and_small_group_warnings(summary: dict) -> None:
    sex = summary["providers"]["A"]["subgroups"]["sex"]
    assert set(sex) == {"F", "M", MISSING_VALUE}
    # F: i1, i3, i5 -> truth mel nv bkl, predicted mel nv mel: balanced (1 + 1 + 0) / 3; triage: i1 flagged
    f = sex["F"]
    assert (f["n"], f["n_scored"]) == (3, 3)
    assert f["balanced_accuracy"] == pytest.approx(2 / 3)
    assert f["triage_sensitivity"] == 1.0
    lo, hi = f["balanced_accuracy_ci"]
    assert 0.0 <= lo <= f["balanced_accuracy"] <= hi <= 1.0
    assert f["triage_sensitivity_ci"] == [1.0, 1.0]  # the only concerning image is always flagged
    # M: i2, i4 -> truth mel nv, predicted nv nv: balanced (0 + 1) / 2; triage 0 of 1
    m = sex["M"]
    assert m["balanced_accuracy"] == pytest.approx(0.5) and m["triage_sensitivity"] == 0.0
    assert m["triage_sensitivity_ci"] == [0.0, 0.0]
    # the unlabelled i6 has no sex: counted, never scored, metrics None (not 0)
    missing = sex[MISSING_VALUE]
    assert (missing["n"], missing["n_scored"], missing["balanced_accuracy"]) == (1, 0, None)
    assert missing["balanced_accuracy_ci"] is None
    assert all("< 30" in g["warning"] for g in sex.values() if g["n_scored"])
    # issue #12 item 18: an empty group says so, never "only 0 scored images"
    assert all(
        g["warning"] == "no scored images: no metric for this group"
        for g in sex.values()
        if not g["n_scored"]
    )
    gaps = summary["providers"]["A"]["subgroup_gaps"]["sex"]
    assert gaps["balanced_accuracy"]["gap"] == pytest.approx(2 / 3 - 0.5)
    assert (gaps["balanced_accuracy"]["lowest"], gaps["balanced_accuracy"]["highest"]) == ("M", "F")
    assert gaps["triage_sensitivity"]["gap"] == pytest.approx(1.0)
    assert any("subgroups under 30" in w for w in summary["providers"]["A"]["warnings"])


def test_bootstrap_is_seeded(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "p.jsonl", sample_records())
    kwargs = dict(providers=sample_providers(), dataset={}, subgroups=["sex"], taxonomy=HAM10000)
    first = build_summary(path, **kwargs)["providers"]["A"]["subgroups"]["sex"]["F"]
    again = build_summary(path, **kwargs)["providers"]["A"]["subgroups"]["sex"]["F"]
    assert first["balanced_accuracy_ci"] == again["balanced_accuracy_ci"]


def test_out_of_domain_provider_b_is_flagged(summary: dict) -> None:
    b = summary["providers"]["B"]
    # five of six answers are ImageNet labels; only i3 maps (nevus -> nv)
    assert b["out_of_domain_rate"] == pytest.approx(5 / 6)
    assert b["accuracy"] == pytest.approx(1 / 5)
    # sensitivity mel 0/2, nv 1/2, bkl 0/1 -> balanced 1/6; F1: nv TP1 FN1 -> 2/3, mel 0, bkl 0 -> 2/9
    assert b["balanced_accuracy"] == pytest.approx(1 / 6)
    assert b["macro_f1"] == pytest.approx(2 / 9)
    # triage: both melanomas got an out-of-domain answer -> 0; benign: only i3 cleared -> 1/3
    assert b["triage_sensitivity"] == 0.0
    assert b["triage_specificity"] == pytest.approx(1 / 3)
    assert b["cost_usd"] == {"total": None, "per_1k": None, "n_priced": 0}
    assert any("PROHIBITED" in f for f in b["flags"]) and any("OUT-OF-DOMAIN" in f for f in b["flags"])
    assert "model card prohibits medical-diagnosis" in b["warnings"]
    assert any("5 of 6 answers were outside" in w for w in b["warnings"])
    assert any("cost unknown for 6 of 6" in w for w in b["warnings"])
    assert sum(b["prediction_warnings"].values()) == 5


def test_flaky_provider_c_errors_and_skips(summary: dict) -> None:
    c = summary["providers"]["C"]
    assert (c["n"], c["ok"], c["errors"], c["skipped"], c["n_scored"]) == (6, 2, 2, 2, 1)
    assert c["error_types"] == {"ProviderTimeout": 1, "ProviderHTTPError": 1}
    # only i1 is labelled and answered (mel -> mel)
    assert c["accuracy"] == 1.0 and c["balanced_accuracy"] == 1.0 and c["triage_sensitivity"] == 1.0
    assert c["triage_specificity"] is None  # no benign image was answered: unknown, not 0
    assert c["ece"] == pytest.approx(0.3)  # |1 - 0.7|
    # $0.002 x 2 answers -> $0.004, $2 per 1,000
    assert c["cost_usd"]["total"] == pytest.approx(0.004) and c["cost_usd"]["per_1k"] == pytest.approx(2.0)
    assert any("2 of 6 images failed" in w for w in c["warnings"])
    assert c["model"] == "endpoint-1"


def test_agreement_and_kappa_between_providers(summary: dict) -> None:
    ag = summary["agreement"]
    assert set(ag) == {"A|B", "A|C", "B|C"}
    # A vs B on i1..i6: A mel nv nv nv mel nv, B OOD OOD nv OOD OOD OOD -> agree on i3 only = 1/6
    # pA: mel 2/6, nv 4/6; pB: OOD 5/6, nv 1/6 -> p_e = 4/36; kappa = (1/6 - 1/9) / (8/9) = 1/16
    assert ag["A|B"]["n"] == 6
    assert ag["A|B"]["agreement"] == pytest.approx(1 / 6)
    assert ag["A|B"]["kappa"] == pytest.approx(1 / 16)
    # A vs C over the two images both answered (i1 mel, i6 nv): full agreement, kappa 1
    assert ag["A|C"] == {"providers": ["A", "C"], "n": 2, "agreement": 1.0, "kappa": pytest.approx(1.0)}
    # B vs C: OOD vs mel, OOD vs nv -> 0; p_e = 0 -> kappa 0
    assert ag["B|C"] == {"providers": ["B", "C"], "n": 2, "agreement": 0.0, "kappa": pytest.approx(0.0)}


def test_metrics_are_null_without_labels(tmp_path: Path) -> None:
    rows = [
        record(f"i{i}", "A", label="nv", canonical="nv", score=0.8, truth=None, latency_ms=10.0 * i)
        for i in range(1, 5)
    ]
    rows.append(record("i5", "A", label="coffee bean", score=0.9, truth=None))
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    s = build_summary(path, providers={"A": {}}, dataset={}, subgroups=["sex"], taxonomy=HAM10000)
    a = s["providers"]["A"]
    for key in (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "melanoma_sensitivity",
        "triage_sensitivity",
        "triage_specificity",
        "ece",
        "confusion",
    ):
        assert a[key] is None, key
    assert set(a["sensitivity"].values()) == {None}
    # what needs no labels is still measured
    assert a["out_of_domain_rate"] == pytest.approx(1 / 5)
    assert a["latency_ms"]["p50"] == 30.0
    assert a["model"] == "model-A"  # taken from the lines when the runner gave none
    # no labels at all: no per-subgroup small-sample warnings (there is nothing to be noisy)
    assert all(g["warning"] is None for g in a["subgroups"]["sex"].values())
    assert s["dataset"]["n_labelled"] == 0


def test_provider_without_lines_still_appears(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "p.jsonl", [record("i1", "A", label="mel", canonical="mel", score=0.9, truth="mel")]
    )
    s = build_summary(
        path, providers={"A": {}, "Z": {"adapter": "vertex"}}, dataset={}, subgroups=[], taxonomy=HAM10000
    )
    z = s["providers"]["Z"]
    assert (z["n"], z["ok"], z["accuracy"], z["out_of_domain_rate"]) == (0, 0, None, None)
    assert s["agreement"]["A|Z"] == {"providers": ["A", "Z"], "n": 0, "agreement": None, "kappa": None}


def test_governance_flags() -> None:
    card = {"model": {"prohibited_uses": ["medical-diagnosis"], "label_domain": "out-of-domain"}}
    found = governance_flags(card, [], 1.0)
    assert len(found) == 2 and "medical-diagnosis" in found[0] and "100%" in found[1]
    assert governance_flags({"model": {"prohibited_uses": ["weapons"]}}, [], 0.0) == []
    assert governance_flags(None, [], 0.6) == ["OUT-OF-DOMAIN answers: 60% of answers outside the taxonomy"]
    assert governance_flags(None, ["intended use prohibited by card"], None) == [
        "PROHIBITED use per governance warning"
    ]
    assert governance_flags(None, [], None) == []


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"provider": "A"}\n\n{not json\n', encoding="utf-8")
    with pytest.raises(CloudDermError, match=r"p\.jsonl:3"):
        list(iter_records(path))
