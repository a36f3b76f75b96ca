"""Label synonyms, triage buckets and out-of-domain detection."""

from __future__ import annotations

import pytest

from cloudderm.taxonomy import HAM10000, get_taxonomy, normalise_label

MARMAL88 = {
    "benign_keratosis-like_lesions": "bkl",
    "basal_cell_carcinoma": "bcc",
    "actinic_keratoses": "akiec",
    "vascular_lesions": "vasc",
    "melanocytic_Nevi": "nv",
    "melanoma": "mel",
    "dermatofibroma": "df",
}


@pytest.mark.parametrize(("label", "code"), MARMAL88.items())
def test_marmal88_names(label: str, code: str) -> None:
    assert HAM10000.canonical(label) == code


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("Melanocytic nevi", "nv"),
        ("nevus", "nv"),
        ("Seborrheic Keratosis", "bkl"),
        ("solar lentigo", "bkl"),
        ("Basal cell carcinoma", "bcc"),
        ("MEL", "mel"),
        ("akiec", "akiec"),
        ("Vascular lesions", "vasc"),
        ("Actinic keratoses and intraepithelial carcinoma / Bowen's disease", "akiec"),
    ],
)
def test_ham_isic_and_dermamnist_names(label: str, code: str) -> None:
    assert HAM10000.canonical(label) == code


def test_imagenet_label_is_out_of_domain() -> None:
    assert HAM10000.canonical("coffee bean") is None
    assert HAM10000.triage(None) is None
    assert HAM10000.covers(["tabby cat", "coffee bean", "nevus"]) == pytest.approx(1 / 3)


def test_triage() -> None:
    assert {c for c in HAM10000.codes if HAM10000.triage(c) == "concerning"} == {"mel", "bcc", "akiec"}
    assert {c for c in HAM10000.codes if HAM10000.triage(c) == "benign"} == {"nv", "bkl", "df", "vasc"}


def test_matching_ignores_case_spaces_hyphens_underscores() -> None:
    assert normalise_label(" Benign_Keratosis-like  lesions ") == "benignkeratosislikelesions"


def test_user_synonyms_and_validation() -> None:
    tax = get_taxonomy("ham10000", {"mole": "nv"})
    assert tax.canonical("MOLE") == "nv" and HAM10000.canonical("mole") is None
    with pytest.raises(ValueError, match="not one of"):
        get_taxonomy("ham10000", {"freckle": "xyz"})
    with pytest.raises(ValueError, match="unknown taxonomy"):
        get_taxonomy("isic2019")


def test_map_top_remembers_per_taxonomy_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """map_top derives a label once per taxonomy: the same answers every time, a user's label map never
    leaks into another taxonomy's memo, and past the bound labels are still mapped, just not kept."""
    import cloudderm.taxonomy as taxonomy_module
    from cloudderm.taxonomy import OUT_OF_DOMAIN_WARNING, TopMapping

    monkeypatch.setattr(taxonomy_module, "TOP_MEMO_SIZE", 3)
    base = get_taxonomy("ham10000")
    mapped = get_taxonomy("ham10000", {"mole": "nv"})
    fresh = TopMapping(None, None, OUT_OF_DOMAIN_WARNING.format(label="mole", taxonomy="ham10000"))
    for _ in range(2):
        assert base.map_top("mole") == fresh
        assert mapped.map_top("mole") == TopMapping("nv", "benign", None)
        assert base.map_top("Melanoma") == TopMapping("mel", "concerning", None)
        assert base.map_top(None) == TopMapping(None, None, None)
    labels = ["a", "b", "c", "d", "nevus", "melanoma"]
    answers = [mapped.map_top(label) for label in labels]
    assert [mapped.map_top(label) for label in labels] == answers
    assert answers[-2:] == [TopMapping("nv", "benign", None), TopMapping("mel", "concerning", None)]
    assert len(mapped._top_memo) == 3  # type: ignore[attr-defined]
