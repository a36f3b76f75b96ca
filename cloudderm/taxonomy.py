"""Canonical label sets, the synonyms that map each vendor's label text onto them, and triage buckets.

Providers name the same lesion differently ("melanocytic_Nevi", "nevus", "NV", "Melanocytic nevi"), so
comparisons run on canonical codes. A label that maps to nothing (an ImageNet class such as "coffee
bean") is *out of domain*: the prediction keeps its raw labels, gets ``canonical=None`` and a warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["HAM10000", "Taxonomy", "get_taxonomy", "normalise_label"]

_SEPARATORS = re.compile(r"[\s_\-]+")


OUT_OF_DOMAIN_WARNING = (
    "out-of-domain: the model's top label {label!r} is not a skin-lesion class in the {taxonomy} taxonomy"
)
_OUT_OF_DOMAIN_PREFIX = OUT_OF_DOMAIN_WARNING.split("{", 1)[0]


IN_DOMAIN_SHARE = 0.5  # more than this share of a model's labels map: its label set is in the domain
# map_top remembers this many distinct top labels per taxonomy; past it, the rest are derived on each call.
TOP_MEMO_SIZE = 4096


class TopMapping(NamedTuple):
    """What the taxonomy makes of an answer's top label."""

    canonical: str | None
    triage: str | None
    warning: str | None


def is_out_of_domain_warning(text: str) -> bool:
    """Whether a warning is the per-answer out-of-domain one (derived, so re-derived on export)."""
    return text.startswith(_OUT_OF_DOMAIN_PREFIX)


def normalise_label(label: str) -> str:
    """Case-, space-, hyphen- and underscore-insensitive key for matching label text."""
    return _SEPARATORS.sub("", label.strip().lower())


@dataclass(frozen=True)
class Taxonomy:
    """A canonical label set with synonyms and a triage mapping (concerning vs benign)."""

    name: str
    codes: tuple[str, ...]
    long_names: Mapping[str, str]
    concerning: frozenset[str]
    synonyms: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        index: dict[str, str] = {}
        for code in self.codes:
            index[normalise_label(code)] = code
            index[normalise_label(self.long_names[code])] = code
        for text, code in self.synonyms.items():
            self._check_code(code, text)
            index[normalise_label(text)] = code
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_top_memo", {})

    def _check_code(self, code: str, text: str) -> None:
        if code not in self.codes:
            raise ValueError(
                f"synonym {text!r} maps to {code!r}, which is not one of {', '.join(self.codes)}"
            )

    def canonical(self, label: str | None) -> str | None:
        """The canonical code for a provider's label text, or None when it is outside the taxonomy."""
        if label is None:
            return None
        return self._index.get(normalise_label(label))  # type: ignore[attr-defined]

    def triage(self, code: str | None) -> str | None:
        """'concerning' or 'benign' for a canonical code; None for None."""
        if code is None:
            return None
        return "concerning" if code in self.concerning else "benign"

    def with_synonyms(self, extra: Mapping[str, str]) -> Taxonomy:
        """A copy that also understands the user's own label mappings (from config)."""
        if not extra:
            return self
        return Taxonomy(
            name=self.name,
            codes=self.codes,
            long_names=self.long_names,
            concerning=self.concerning,
            synonyms={**self.synonyms, **extra},
        )

    def map_top(self, top_label: str | None) -> TopMapping:
        """Canonical code, triage and out-of-domain warning of an answer whose top label is ``top_label``.

        The one place these are derived (docs/architecture.md, "who owns which fact"): ``Classifier`` for a
        direct call and ``compare/export.py`` for stored answers, from the raw label with the current map.
        ``None`` (no label: an abstention) gives no code and no warning.
        """
        if top_label is None:
            return TopMapping(None, None, None)
        # Every answer of a model names a top label out of the same few, and the mapping of a label text
        # depends on nothing but this (immutable) taxonomy: derive it once per label, not once per answer.
        # Bounded, because a generative model's free text can name ever new labels.
        memo: dict[str, TopMapping] = self._top_memo  # type: ignore[attr-defined]
        found = memo.get(top_label)
        if found is None:
            found = self._derive_top(top_label)
            if len(memo) < TOP_MEMO_SIZE:
                memo[top_label] = found
        return found

    def _derive_top(self, top_label: str) -> TopMapping:
        """What ``map_top`` answers for a label it has not seen yet."""
        code = self.canonical(top_label)
        warning = (
            None if code is not None else OUT_OF_DOMAIN_WARNING.format(label=top_label, taxonomy=self.name)
        )
        return TopMapping(code, self.triage(code), warning)

    def label_domain(self, labels: list[str]) -> str:
        """Whether a model's label set is in this taxonomy's domain: the one rule (docs/architecture.md).

        'in-domain' when more than half of the labels map to a code, 'out-of-domain' otherwise, 'unknown'
        when the labels are not known. Only ``governance/cards.py`` calls it, for the governance card.
        """
        if not labels:
            return "unknown"
        return "in-domain" if self.covers(labels) > IN_DOMAIN_SHARE else "out-of-domain"

    def covers(self, labels: list[str]) -> float:
        """Share of ``labels`` that map into the taxonomy (1.0 = an in-domain label set)."""
        if not labels:
            return 0.0
        return sum(self.canonical(label) is not None for label in labels) / len(labels)


HAM10000 = Taxonomy(
    name="ham10000",
    codes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
    long_names={
        "akiec": "Actinic keratoses and intraepithelial carcinoma / Bowen's disease",
        "bcc": "basal cell carcinoma",
        "bkl": "benign keratosis-like lesions",
        "df": "dermatofibroma",
        "mel": "melanoma",
        "nv": "melanocytic nevi",
        "vasc": "vascular lesions",
    },
    concerning=frozenset({"mel", "bcc", "akiec"}),
    synonyms={
        # HAM10000 / DermaMNIST long names and common variants
        "actinic keratoses": "akiec",
        "actinic keratosis": "akiec",
        "actinic_keratoses": "akiec",
        "Actinic keratoses and intraepithelial carcinoma": "akiec",
        "intraepithelial carcinoma": "akiec",
        "bowen's disease": "akiec",
        "bowens disease": "akiec",
        "ACK": "akiec",
        "basal cell carcinoma": "bcc",
        "basal_cell_carcinoma": "bcc",
        "benign keratosis": "bkl",
        "benign keratosis-like lesions": "bkl",
        "benign_keratosis-like_lesions": "bkl",
        "seborrheic keratosis": "bkl",
        "seborrhoeic keratosis": "bkl",
        "solar lentigo": "bkl",
        "lentigo": "bkl",
        "lichen planus-like keratosis": "bkl",
        "lichenoid keratosis": "bkl",
        "SEK": "bkl",
        "pigmented benign keratosis": "bkl",
        "dermatofibroma": "df",
        "melanoma": "mel",
        "malignant melanoma": "mel",
        "MEL": "mel",
        "melanocytic nevi": "nv",
        "melanocytic_Nevi": "nv",
        "melanocytic nevus": "nv",
        "nevus": "nv",
        "naevus": "nv",
        "nevi": "nv",
        "NEV": "nv",
        "vascular lesions": "vasc",
        "vascular_lesions": "vasc",
        "vascular lesion": "vasc",
        "angioma": "vasc",
        "angiokeratoma": "vasc",
        "pyogenic granuloma": "vasc",
        "hemorrhage": "vasc",
        "BCC": "bcc",
    },
)

_TAXONOMIES = {HAM10000.name: HAM10000}


def get_taxonomy(name: str, extra_synonyms: Mapping[str, str] | None = None) -> Taxonomy:
    """Look up a taxonomy by name, optionally extended with user synonyms."""
    try:
        base = _TAXONOMIES[name]
    except KeyError:
        raise ValueError(f"unknown taxonomy {name!r}; known: {', '.join(sorted(_TAXONOMIES))}") from None
    return base.with_synonyms(extra_synonyms or {})
