"""Which label a map explains: ``--target`` as a canonical code (``mel``) or a provider label; default top."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cloudderm.errors import ConfigError

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["resolve_target"]


def resolve_target(clf: Classifier, scores: Mapping[str, float], wanted: str | None) -> tuple[str, float]:
    """The provider label to explain and its score in ``scores`` (the unperturbed image's answer).

    A provider label matches exactly first; otherwise the highest-scoring label whose canonical code is
    ``wanted``. An unknown target is a ConfigError listing what the provider answered.
    """
    if not scores:
        raise ConfigError(f"{clf.name} returned no labels to explain", provider=clf.name, field="target")
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    if wanted is None:
        return ranked[0]
    if wanted in scores:
        return wanted, scores[wanted]
    for label, score in ranked:
        if clf.taxonomy.canonical(label) == wanted:
            return label, score
    shown = ", ".join(label for label, _ in ranked[:10])
    raise ConfigError(
        f"target {wanted!r} is neither a label of {clf.name} nor the canonical code of one it answered. "
        f"Fix: use one of: {shown}",
        provider=clf.name,
        field="target",
    )
