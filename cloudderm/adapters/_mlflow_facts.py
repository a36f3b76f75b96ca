"""Governance facts of an MLflow model, read without loading it (no model code runs).

Sources, each overriding the one before where it says something:

1. the ``MLmodel`` file's ``metadata`` (``intended_use``, ``license``, ``training_data``,
   ``out_of_scope_uses``, ``prohibited_uses``, ``known_biases``, ``class_names``/``labels``);
2. a model card logged beside it (``model_card.md``, ``MODEL_CARD.md`` or ``README.md`` in the model's
   folder), parsed like a Hugging Face card;
3. for ``models:/`` URIs, the registered model's description (parsed the same way; its text is the
   intended use when it has no such section) and tags, then the version's description and tags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudderm.governance.card import ModelFacts
from cloudderm.governance.modelcard import parse_model_card

if TYPE_CHECKING:
    from cloudderm.taxonomy import Taxonomy

__all__ = ["CARD_FILES", "FACT_KEYS", "read_facts"]

CARD_FILES = ("model_card.md", "MODEL_CARD.md", "README.md")
FACT_KEYS = (
    "intended_use",
    "license",
    "training_data",
    "out_of_scope_uses",
    "prohibited_uses",
    "known_biases",
)
_LIST_KEYS = {"training_data", "out_of_scope_uses", "prohibited_uses"}
_MAX_TEXT = 1000


def read_facts(
    model_uri: str | None, info: Mapping[str, Any], taxonomy: Taxonomy, *, model_id: str
) -> ModelFacts:
    """The model's facts from every source that exists; absent ones stay unknown, never guessed."""
    facts: dict[str, Any] = {}
    sources: list[str] = []
    metadata = dict(info.get("metadata") or {})
    if _merge(facts, metadata):
        sources.append("MLmodel metadata")
    labels = next(
        (metadata[k] for k in ("class_names", "labels", "classes") if isinstance(metadata.get(k), list)), []
    )
    if model_uri:
        registry = _registry_entry(model_uri)
        folder = registry.pop("source", None) if registry else model_uri
        card = _read_card(str(folder)) if folder else None
        if card is not None:
            text, where = card
            if _merge(facts, {k: v for k, v in parse_model_card(text).items() if k in FACT_KEYS}):
                sources.append(where)
        for where, description, tags in registry.get("entries", []) if registry else []:
            parsed = (
                {k: v for k, v in parse_model_card(description).items() if k in FACT_KEYS}
                if description
                else {}
            )
            if description and not parsed.get("intended_use"):
                parsed["intended_use"] = description.strip()[:_MAX_TEXT]
            if _merge(facts, parsed) | _merge(facts, tags):
                sources.append(where)
    return ModelFacts(
        model_id=model_id,
        labels=[str(v) for v in labels],
        source="; ".join(sources) or None,
        **facts,
    )


def _merge(into: dict[str, Any], raw: Mapping[str, Any]) -> bool:
    """Copy the known fact keys that carry a value; True when anything was copied."""
    copied = False
    for key in FACT_KEYS:
        value = raw.get(key)
        if value in (None, "", []):
            continue
        if key in _LIST_KEYS:
            value = (
                [s.strip() for s in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
            )
        else:
            value = str(value)[:_MAX_TEXT]
        into[key] = value
        copied = True
    return copied


def _read_card(folder: str) -> tuple[str, str] | None:
    """A model card beside the model: read from a local folder, or downloaded (one small file) otherwise."""
    local = folder[len("file://") :] if folder.startswith("file://") else folder
    if "://" not in local and ":/" not in local:
        for name in CARD_FILES:
            path = Path(local) / name
            if path.is_file():
                return path.read_text(encoding="utf-8", errors="replace"), f"model card {path}"
        return None
    from mlflow.artifacts import download_artifacts

    for name in CARD_FILES:
        uri = f"{folder.rstrip('/')}/{name}"
        try:
            path = download_artifacts(artifact_uri=uri)
        except Exception:  # absent: the next name, then no card
            continue
        if os.path.isfile(path):
            return Path(path).read_text(encoding="utf-8", errors="replace"), f"model card {uri}"
    return None


def _registry_entry(model_uri: str) -> dict[str, Any] | None:
    """For ``models:/name/version`` or ``models:/name@alias``: the version's source and the descriptions
    and tags of the registered model and the version; None for other URIs or when the registry fails."""
    if not model_uri.startswith("models:/"):
        return None
    ref = model_uri[len("models:/") :].strip("/")
    name, _, alias = ref.partition("@")
    version = None
    if not alias:
        name, _, version = ref.partition("/")
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        model = client.get_registered_model(name)
        if alias:
            mv = client.get_model_version_by_alias(name, alias)
        elif version and version.isdigit():
            mv = client.get_model_version(name, version)
        else:  # a stage such as models:/name/Production: the newest version in it
            found = client.get_latest_versions(name, stages=[version] if version else None)
            mv = found[0] if found else None
    except Exception:
        return None
    entries = [(f"registered model {name!r}", model.description or "", dict(model.tags or {}))]
    source = None
    if mv is not None:
        entries.append((f"model version {name}/{mv.version}", mv.description or "", dict(mv.tags or {})))
        try:
            source = client.get_model_version_download_uri(name, mv.version)
        except Exception:
            source = mv.source
    return {"entries": entries, "source": source}
