"""Ground-truth labels: reading a labels CSV, mapping labels onto the taxonomy, reporting what did not map.

Why a report instead of silently dropping rows: a comparison whose denominator quietly shrank (a typo in a
label, a file that is not there) overstates or understates every metric. Every row that could not be used
is counted with a few examples, and the counts travel into ``summary.json`` and the printed report.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudderm.errors import DatasetError
from cloudderm.taxonomy import Taxonomy

__all__ = [
    "IMAGE_COLUMNS",
    "LABEL_COLUMNS",
    "DatasetError",
    "Entry",
    "LabelReport",
    "LabelsTable",
    "read_labels_csv",
]

# Column names tried in order; path-like columns first so a file with both ``file`` and ``image_id``
# (the shared MANIFEST.csv) matches on the more specific one.
IMAGE_COLUMNS = (
    "image",
    "file",
    "filename",
    "file_name",
    "image_path",
    "path",
    "image_name",
    "image_id",
    "isic_id",
)
LABEL_COLUMNS = ("label", "dx", "diagnosis")
EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Entry:
    """One image of a dataset without its pixels: where it is, its truth and its metadata values."""

    index: int
    key: str
    truth_raw: str | None
    truth: str | None
    meta: tuple[str | None, ...]


@dataclass
class LabelReport:
    """Everything about the labels that a reader of the results must know."""

    labelled: int = 0
    unlabelled: int = 0
    unknown: Counter = field(default_factory=Counter)
    missing: int = 0
    missing_examples: list[str] = field(default_factory=list)
    ignored: int = 0
    ignored_examples: list[str] = field(default_factory=list)
    ambiguous: int = 0
    ambiguous_examples: list[str] = field(default_factory=list)
    duplicates: int = 0
    not_listed: int = 0

    def note_label(self, raw: str | None, code: str | None) -> None:
        """Count one image's label: mapped, unlabelled, or outside the taxonomy."""
        if raw is None:
            self.unlabelled += 1
        elif code is None:
            self.unknown[raw] += 1
        else:
            self.labelled += 1

    def note_missing(self, ref: str) -> None:
        self.missing += 1
        if len(self.missing_examples) < EXAMPLES:
            self.missing_examples.append(ref)

    def note_ignored(self, ref: str) -> None:
        self.ignored += 1
        if len(self.ignored_examples) < EXAMPLES:
            self.ignored_examples.append(ref)

    def note_ambiguous(self, ref: str) -> None:
        self.ambiguous += 1
        if len(self.ambiguous_examples) < EXAMPLES:
            self.ambiguous_examples.append(ref)

    @property
    def unknown_count(self) -> int:
        return sum(self.unknown.values())

    def as_dict(self) -> dict:
        """The JSON form carried into ``summary.json["dataset"]``."""
        return {
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "unknown_labels": {
                "count": self.unknown_count,
                "examples": [label for label, _ in self.unknown.most_common(EXAMPLES)],
                "by_label": dict(self.unknown.most_common(20)),
            },
            "rows_without_image": {"count": self.missing, "examples": list(self.missing_examples)},
            "rows_naming_non_images": {"count": self.ignored, "examples": list(self.ignored_examples)},
            "rows_ambiguous": {"count": self.ambiguous, "examples": list(self.ambiguous_examples)},
            "duplicate_rows": self.duplicates,
            "images_not_in_labels": self.not_listed,
        }

    def problems(self) -> list[str]:
        """One human sentence per problem, for the terminal."""
        out: list[str] = []
        if self.unknown:
            shown = ", ".join(repr(x) for x, _ in self.unknown.most_common(EXAMPLES))
            out.append(
                f"{self.unknown_count} image(s) have labels outside the taxonomy ({shown}); they count as "
                "unlabelled in the metrics (map them with `labels:` in the config)"
            )
        if self.missing:
            out.append(
                f"{self.missing} labels row(s) name an image that is not in the dataset "
                f"(e.g. {', '.join(self.missing_examples)})"
            )
        if self.ambiguous:
            out.append(
                f"{self.ambiguous} labels row(s) match several files; use relative paths "
                f"(e.g. {', '.join(self.ambiguous_examples)})"
            )
        if self.duplicates:
            out.append(
                f"{self.duplicates} labels row(s) repeat an image already listed; the first one is used"
            )
        if self.not_listed:
            out.append(
                f"{self.not_listed} image(s) in the folder are not in the labels file and are left out"
            )
        return out


@dataclass
class LabelsTable:
    """A parsed labels CSV: which column names images, which holds labels, and every other column."""

    path: Path
    image_column: str
    label_column: str | None
    meta_columns: list[str]
    rows: list[tuple[str, str | None, tuple[str | None, ...]]]

    def __iter__(self) -> Iterator[tuple[str, str | None, tuple[str | None, ...]]]:
        return iter(self.rows)


NOT_UTF8_FIX = "not UTF-8: re-save as UTF-8 (CSV UTF-8 in Excel)"


def decode_text_file(path: Path) -> str:
    """The text of a labels/metadata file: UTF-8 (with or without BOM) or UTF-16 with a BOM.

    Excel writes "CSV UTF-8" with a BOM and "Unicode text" as UTF-16 with a BOM, both read here; a
    legacy code page (Latin-1, Windows-1252) or a binary file cannot be decoded without guessing, so
    it is a DatasetError (exit 2) that says how to re-save it.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"cannot read the file: {e.strerror or e}", file=str(path)) from None
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise DatasetError(f"{NOT_UTF8_FIX} (undecodable byte at offset {e.start})", file=str(path)) from None
    if "\x00" in text:
        raise DatasetError(f"{NOT_UTF8_FIX} (it holds NUL bytes: is it a binary file?)", file=str(path))
    return text


def _rows(reader: Any, path: Path) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as e:
        raise DatasetError(f"not a readable CSV: {e}", file=str(path)) from None


def read_labels_csv(path: str | Path) -> LabelsTable:
    """Read a labels CSV (comma, or tab for ``.tsv``); every column but image and label is metadata.

    Raises:
        DatasetError: the file is missing or has no column that names images.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"labels file not found: {path}")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with io.StringIO(decode_text_file(path), newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DatasetError("the labels file is empty", file=str(path)) from None
        except csv.Error as e:
            raise DatasetError(f"not a readable CSV: {e}", file=str(path)) from None
        image_col = _pick(header, IMAGE_COLUMNS)
        if image_col is None:
            raise DatasetError(
                f"no column naming images; expected one of {', '.join(IMAGE_COLUMNS)} "
                f"(found: {', '.join(header) or 'none'})",
                file=str(path),
            )
        label_col = _pick(header, LABEL_COLUMNS)
        meta_idx = [i for i, h in enumerate(header) if i not in (image_col, label_col) and h]
        rows = []
        for values in _rows(reader, path):
            if not any(v.strip() for v in values):
                continue
            values = values + [""] * (len(header) - len(values))
            ref = values[image_col].strip()
            label = values[label_col].strip() if label_col is not None else ""
            rows.append((ref, label or None, tuple(values[i].strip() or None for i in meta_idx)))
    return LabelsTable(
        path=path,
        image_column=header[image_col],
        label_column=header[label_col] if label_col is not None else None,
        meta_columns=[header[i] for i in meta_idx],
        rows=rows,
    )


def _pick(header: Sequence[str], candidates: Sequence[str]) -> int | None:
    lowered = [h.lower() for h in header]
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    return None


def map_label(raw: str | None, taxonomy: Taxonomy) -> str | None:
    """The canonical code of a ground-truth label, or None (unlabelled, or outside the taxonomy)."""
    if raw is None or not str(raw).strip():
        return None
    return taxonomy.canonical(str(raw))


def format_value(value: object) -> str | None:
    """Metadata as text for grouping: integral floats lose their ``.0`` (age 80.0 -> "80"), NaN is None."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    return text or None
