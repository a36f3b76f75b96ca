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
