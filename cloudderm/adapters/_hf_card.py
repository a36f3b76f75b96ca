"""Governance facts for a local transformers model, read from its files without loading any weights.

The card (``README.md``) says what the model is for and under which licence; ``config.json`` holds its
labels (``id2label``), which tell whether the model speaks the taxonomy at all — an ImageNet model's
"coffee mug" is out of domain for dermatology. Both are small text files read from the model folder or
from the local Hugging Face cache (``try_to_load_from_cache`` never touches the network), so this is
safe offline and cheap enough for ``cloudderm providers``. What cannot be found stays unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudderm.facts import ModelFacts
from cloudderm.governance.modelcard import parse_model_card
from cloudderm.taxonomy import Taxonomy

__all__ = ["labels_from_config", "read_model_facts"]

_CARD_KEYS = (
    "license",
    "training_data",
    "intended_use",
    "out_of_scope_uses",
    "known_biases",
    "prohibited_uses",
)


def read_model_facts(
    model: str, revision: str | None, taxonomy: Taxonomy, *, model_id: str | None = None
) -> ModelFacts:
    """Facts from the card and config of ``model`` (a folder or a hub id in the local cache).

    The provider's ``model_card:`` setting is applied on top, and the label domain worked out, by
    ``cloudderm.governance.cards.build_card`` (never here: docs/architecture.md, "who owns which fact").
    ``taxonomy`` is accepted for callers of the old signature and not used.
    """
    card_path, config_path, origin = _locate(model, revision)
    facts: dict[str, Any] = {}
    if card_path is not None:
        text = _read_text(card_path)
        if text is not None:
            parsed = parse_model_card(text)
            facts.update({key: parsed[key] for key in _CARD_KEYS})  # type: ignore[literal-required]
    labels = labels_from_config(_read_json(config_path)) if config_path is not None else []
    facts["labels"] = labels
    sources = [str(p) for p in (card_path, config_path) if p is not None]
    facts["source"] = f"{origin}: {', '.join(sources)}" if sources else None
    return ModelFacts(model_id=model_id or model, **facts)


def labels_from_config(config: Mapping[str, Any]) -> list[str]:
    """Class names in index order from a config.json mapping (``id2label`` keys are strings there)."""
    id2label = config.get("id2label")
    if not isinstance(id2label, Mapping):
        return []
    try:
        ordered = sorted(id2label.items(), key=lambda item: int(item[0]))
    except (TypeError, ValueError):
        return []
    return [str(label) for _, label in ordered]


def _locate(model: str, revision: str | None) -> tuple[Path | None, Path | None, str]:
    """(README.md, config.json, where) from the folder, else from the hub cache; missing files are None."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _existing(folder / "README.md"), _existing(folder / "config.json"), "model folder"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None, None, "hub cache"

    def cached(filename: str) -> Path | None:
        try:
            found = try_to_load_from_cache(model, filename, revision=revision)
        except Exception:  # invalid repo id, unreadable cache: the fact is simply unknown
            return None
        return Path(found) if isinstance(found, str) else None

    return cached("README.md"), cached("config.json"), "hub cache"


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
