"""What every dataset reader produces: ``Dataset`` (entries known up front) and ``DatasetItem`` (one image).

The base lives apart from the readers (``datasets.py`` for folders, ``tabular.py`` for parquet/arrow and
``.npz``) so that ``open_dataset`` can pick a reader without the readers importing it back. See
docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudderm.compare.labels import Entry, LabelReport
from cloudderm.core import ImageContext

__all__ = ["Dataset", "DatasetItem"]


@dataclass(frozen=True)
class DatasetItem:
    """One image to classify. ``load()`` reads it (a path, bytes or array) only when called."""

    key: str
    truth: str | None
    truth_raw: str | None
    metadata: Mapping[str, str | None]
    loader: Callable[[], Any]
    fingerprint: str | None = None

    def load(self) -> Any:
        return self.loader()

    @property
    def context(self) -> ImageContext | None:
        """The patient/lesion context in this row's columns (age, sex/gender, site/localization/region)."""
        return ImageContext.from_metadata(self.metadata)


class Dataset:
    """Entries known up front plus a reader that streams their images in order.

    Subclasses implement ``_sources(entries)`` yielding ``(loader, fingerprint)`` for each entry, in
    order. ``fingerprint`` identifies the stored bytes (path, size, mtime, row) so a resumed run can
    skip re-reading images it has already finished.
    """

    format: str = "?"

    def __init__(
        self,
        path: Path,
        entries: list[Entry],
        columns: list[str],
        report: LabelReport,
        *,
        labels_path: Path | None = None,
        split: str | None = None,
        images_root: Path | None = None,
    ) -> None:
        self.path = path
        self.entries = entries
        self.columns = columns
        self.report = report
        self.labels_path = labels_path
        self.split = split
        self.images_root = images_root

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[DatasetItem]:
        for entry, (loader, fingerprint) in zip(self.entries, self._sources(self.entries)):
            yield DatasetItem(
                key=entry.key,
                truth=entry.truth,
                truth_raw=entry.truth_raw,
                metadata=dict(zip(self.columns, entry.meta)),
                loader=loader,
                fingerprint=fingerprint,
            )

    def _sources(self, entries: Sequence[Entry]) -> Iterator[tuple[Callable[[], Any], str | None]]:
        raise NotImplementedError

    def head(self, n: int | None) -> Dataset:
        """The first ``n`` images (``--limit``); the report still describes the whole source."""
        if n is None or n >= len(self.entries):
            return self
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.entries = self.entries[:n]
        return clone

    def describe(self) -> dict:
        """What ``summary.json["dataset"]`` records about where the images came from."""
        return {
            "path": str(self.path),
            "format": self.format,
            "labels_file": str(self.labels_path) if self.labels_path else None,
            "split": self.split,
            "n_entries": len(self.entries),
            "columns": list(self.columns),
            **self.report.as_dict(),
        }
