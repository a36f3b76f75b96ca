"""The results a comparison writes, as typed models: one ``predictions.jsonl`` line and ``summary.json``.

Their one definition. ``compare/export.py`` writes ``PredictionRecord`` lines (its keys, in this order),
``compare/summary.py`` builds a dict of the ``Summary`` shape, and ``report/`` reads both through this
module, never through ``compare/``. The models accept extra keys (a newer writer, a plugin's additions) so
an older reader never breaks on them; the keys named here are the contract. See docs/architecture.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cloudderm.core import Outcome
from cloudderm.errors import CloudDermError

__all__ = [
    "RECORD_KEYS",
    "CostSummary",
    "LabelScoreRecord",
    "PredictionRecord",
    "ProjectedCost",
    "ProviderSummary",
    "Summary",
    "image_key",
    "iter_records",
    "iter_records_at",
    "read_records_at",
]

Status = Literal["ok", "error", "skipped"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class LabelScoreRecord(_Open):
    label: str
    score: float


class PredictionRecord(_Open):
    """One line of ``predictions.jsonl``: one image x one provider of the current run.

    ``labels`` are the provider's own, as stored; ``canonical``, ``triage`` and the out-of-domain warning
    were derived on export with the provider's current taxonomy. ``outcome`` is None unless ``status`` is
    "ok".
    """

    image: str | None = None
    sha256: str | None = None
    provider: str
    model: str | None = None
    status: Status
    labels: list[LabelScoreRecord] = Field(default_factory=list)
    canonical: str | None = None
    triage: str | None = None
    truth: str | None = None
    truth_raw: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    request_id: str | None = None
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    attempts: int = 0
    metadata: dict[str, Any] = Field(default_factory=dict)
    outcome: Outcome | None = None
    reason: str | None = None
    usage: dict[str, Any] | None = None


RECORD_KEYS: tuple[str, ...] = tuple(PredictionRecord.model_fields)


class ProjectedCost(_Open):
    """A monthly projection at a stated volume (``basis`` says how it was priced)."""

    per_1k: float | None = None
    monthly: float | None = None
    volume: int | None = None
    basis: str | None = None


class CostSummary(_Open):
    """``cost_usd`` of a provider: measured total and per 1,000 (None when unknown), and a projection."""

    total: float | None = None
    per_1k: float | None = None
    n_priced: int | None = None
    projected: ProjectedCost | None = None


class ProviderSummary(_Open):
    """One provider's figures in ``summary.json``; ``flags`` are its governance flags (their one owner)."""

    adapter: str | None = None
    model: str | None = None
    n: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    n_scored: int | None = None
    accuracy: Any = None
    out_of_domain_rate: float | None = None
    outcomes: dict[str, int] = Field(default_factory=dict)
    latency_ms: dict[str, Any] = Field(default_factory=dict)
    cost_usd: CostSummary = Field(default_factory=CostSummary)
    warnings: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)


class Summary(_Open):
    """``summary.json``: the disclaimer, the taxonomy, every provider's figures and what they rest on."""

    schema_version: int | None = None
    disclaimer: str | None = None
    taxonomy: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, ProviderSummary] = Field(default_factory=dict)
    agreement: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    pricing_as_of: str | None = None
    governance: dict[str, Any] = Field(default_factory=dict)


# ---- reading predictions.jsonl ---------------------------------------------------------------------------
def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-blank line of a predictions.jsonl file.

    Raises:
        CloudDermError: naming the file and line when a line is not a JSON object.
    """
    for _, record in iter_records_at(path):
        yield record


def iter_records_at(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(byte offset, record)``, so a later pass can re-read chosen lines by offset."""
    offset = 0
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            start, offset = offset, offset + len(line)
            if line.strip():
                yield start, _parse(line, path, lineno)


def read_records_at(path: Path, offsets: Iterable[int]) -> Iterator[dict[str, Any]]:
    """The records starting at the given byte offsets (from :func:`iter_records_at`), in file order."""
    with open(path, "rb") as fh:
        for offset in sorted(set(offsets)):
            fh.seek(offset)
            yield _parse(fh.readline(), path, None)


def _parse(line: bytes, path: Path, lineno: int | None) -> dict[str, Any]:
    where = f"{path}:{lineno}" if lineno is not None else str(path)
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CloudDermError(
            f"{where}: not valid JSON ({e}); regenerate the file from results.sqlite by re-running the "
            "same compare command"
        ) from e
    if not isinstance(record, dict):
        raise CloudDermError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def image_key(record: Mapping[str, Any]) -> str:
    """How an image is identified across providers and runs: its dataset name, else its hash."""
    return str(record.get("image") or record.get("sha256") or "")
