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
from typing import Any

from cloudderm.facts import ModelFacts
from cloudderm.governance.modelcard import parse_model_card

__all__ = ["CARD_FILES", "FACT_KEYS", "download", "read_facts", "version_source"]

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
    model_uri: str | None,
    info: Mapping[str, Any],
    *,
    model_id: str,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
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
        registry = _registry_entry(model_uri, tracking_uri, registry_uri)
        folder = registry.pop("source", None) if registry else model_uri
        card = _read_card(str(folder), tracking_uri) if folder else None
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


def _read_card(folder: str, tracking_uri: str | None) -> tuple[str, str] | None:
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
            path = download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
        except Exception:  # absent: the next name, then no card
            continue
        if os.path.isfile(path):
            return Path(path).read_text(encoding="utf-8", errors="replace"), f"model card {uri}"
    return None


def _client(tracking_uri: str | None, registry_uri: str | None) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)


def _model_version(client: Any, model_uri: str) -> tuple[str, Any]:
    """(registered name, ModelVersion) of ``models:/name/version``, ``models:/name@alias`` or a stage."""
    ref = model_uri[len("models:/") :].strip("/")
    name, _, alias = ref.partition("@")
    if alias:
        return name, client.get_model_version_by_alias(name, alias)
    name, _, version = ref.partition("/")
    if version.isdigit():
        return name, client.get_model_version(name, version)
    found = client.get_latest_versions(name, stages=[version] if version else None)  # a stage: the newest
    if not found:
        raise LookupError(f"no version of {name!r} in stage {version!r}")
    return name, found[0]


def version_source(model_uri: str, tracking_uri: str | None, registry_uri: str | None) -> str:
    """The artifact location of a ``models:/`` URI's version, resolved with explicit servers."""
    client = _client(tracking_uri, registry_uri)
    name, mv = _model_version(client, model_uri)
    return client.get_model_version_download_uri(name, mv.version)


def download(artifact_uri: str, tracking_uri: str | None) -> str:
    """A local copy of a model folder (a local path is returned as it is)."""
    from mlflow.artifacts import download_artifacts

    local = artifact_uri[len("file://") :] if artifact_uri.startswith("file://") else artifact_uri
    if "://" not in local and ":/" not in local and os.path.isdir(local):
        return local
    return download_artifacts(artifact_uri=artifact_uri, tracking_uri=tracking_uri)


def _registry_entry(
    model_uri: str, tracking_uri: str | None, registry_uri: str | None
) -> dict[str, Any] | None:
    """For ``models:/name/version`` or ``models:/name@alias``: the version's source and the descriptions
    and tags of the registered model and the version; None for other URIs or when the registry fails."""
    if not model_uri.startswith("models:/"):
        return None
    client = _client(tracking_uri, registry_uri)
    try:
        name, mv = _model_version(client, model_uri)
        model = client.get_registered_model(name)
    except Exception:
        return None
    entries = [
        (f"registered model {name!r}", model.description or "", dict(model.tags or {})),
        (f"model version {name}/{mv.version}", mv.description or "", dict(mv.tags or {})),
    ]
    try:
        source = client.get_model_version_download_uri(name, mv.version)
    except Exception:
        source = mv.source
    return {"entries": entries, "source": source}
