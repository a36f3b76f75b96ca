"""Datasets for ``cloudderm compare``: a folder of images, a HAM10000 download, parquet/arrow, DermaMNIST.

Every reader turns its source into the same thing: an ordered list of ``Entry`` (key, truth, metadata —
small, known up front so counts, progress totals and stratified sampling need no pixels) and, when
iterated, one ``DatasetItem`` per entry whose ``load()`` reads that one image. Images stream from disk:
no reader ever holds more than a small batch of image bytes.

``open_dataset`` picks the reader from the path:

* a directory of images (recursive), labelled by ``--labels CSV`` or by a ``HAM10000_metadata.csv``
  found at its top level;
* ``.parquet`` / ``.arrow`` files, or a directory of them (the Hugging Face ``marmal88/skin_cancer``
  layout: an ``image`` column of bytes or ``{"bytes": ..., "path": ...}``, ``dx`` labels);
* a DermaMNIST ``.npz`` (``test_images`` / ``test_labels`` ...; class index -> akiec..vasc).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from cloudderm.compare.dataset import Dataset, DatasetItem
from cloudderm.compare.labels import (
    DatasetError,
    Entry,
    LabelReport,
    LabelsTable,
    map_label,
    read_labels_csv,
)
from cloudderm.taxonomy import HAM10000, Taxonomy

__all__ = [
    "IMAGE_EXTENSIONS",
    "Dataset",
    "DatasetError",
    "DatasetItem",
    "FolderDataset",
    "open_dataset",
    "scan_images",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
HAM_METADATA_NAMES = ("HAM10000_metadata.csv", "HAM10000_metadata")


class FolderDataset(Dataset):
    """Image files under a directory (recursive, hidden folders skipped), labelled by an optional CSV."""

    format = "folder"

    def __init__(self, root: Path, labels: LabelsTable | None, taxonomy: Taxonomy) -> None:
        files = scan_images(root)
        report = LabelReport()
        if labels is None:
            entries = [Entry(i, rel, None, None, ()) for i, rel in enumerate(files)]
            report.unlabelled = len(entries)
            columns: list[str] = []
        else:
            entries = _match_rows(labels, files, taxonomy, report)
            columns = list(labels.meta_columns)
            report.not_listed = len(files) - len(entries)
        super().__init__(
            root,
            entries,
            columns,
            report,
            labels_path=labels.path if labels else None,
            images_root=root,
        )

    def _sources(self, entries: Sequence[Entry]) -> Iterator[tuple[Callable[[], Any], str | None]]:
        for entry in entries:
            path = self.path / entry.key
            try:
                st = path.stat()
                fingerprint = f"{path}:{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                fingerprint = None
            yield (lambda p=path: p), fingerprint


def scan_images(root: Path) -> list[str]:
    """Relative POSIX paths of every image file under ``root``, sorted, skipping hidden names."""
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(rel.as_posix())
    return sorted(found)


class _FileIndex:
    """Finds the file a labels row means: relative path, path suffix, file name, then stem (id)."""

    def __init__(self, files: Sequence[str]) -> None:
        self.by_rel: dict[str, str] = {}
        self.by_name: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for rel in files:
            posix = PurePosixPath(rel)
            self.by_rel[rel.lower()] = rel
            self.by_name.setdefault(posix.name.lower(), []).append(rel)
            self.by_stem.setdefault(posix.stem.lower(), []).append(rel)

    def find(self, ref: str) -> tuple[str | None, str]:
        """``(relative path, "")`` or ``(None, why)`` with why in missing / ambiguous / not-image."""
        norm = ref.strip().replace("\\", "/")
        while norm.startswith("./"):
            norm = norm[2:]
        parts = PurePosixPath(norm).parts
        if not parts:
            return None, "missing"
        for i in range(len(parts)):
            hit = self.by_rel.get("/".join(parts[i:]).lower())
            if hit is not None:
                return hit, ""
        name = parts[-1].lower()
        suffix = PurePosixPath(name).suffix
        candidates: list[str] = []
        if suffix in IMAGE_EXTENSIONS:
            candidates = self.by_name.get(name) or self.by_stem.get(PurePosixPath(name).stem, [])
        else:
            candidates = self.by_stem.get(name, [])
        if len(candidates) == 1:
            return candidates[0], ""
        if len(candidates) > 1:
            return None, "ambiguous"
        if suffix and suffix not in IMAGE_EXTENSIONS and suffix[1:].isalpha():
            return None, "not-image"
        return None, "missing"


def _match_rows(
    labels: LabelsTable, files: Sequence[str], taxonomy: Taxonomy, report: LabelReport
) -> list[Entry]:
    index = _FileIndex(files)
    seen: set[str] = set()
    entries: list[Entry] = []
    for ref, raw, meta in labels:
        rel, why = index.find(ref)
        if rel is None:
            if why == "not-image":
                report.note_ignored(ref)
            elif why == "ambiguous":
                report.note_ambiguous(ref)
            else:
                report.note_missing(ref)
            continue
        if rel in seen:
            report.duplicates += 1
            continue
        seen.add(rel)
        code = map_label(raw, taxonomy)
        report.note_label(raw, code)
        entries.append(Entry(len(entries), rel, raw, code, meta))
    return entries


def open_dataset(
    path: str | Path,
    *,
    labels: str | Path | None = None,
    taxonomy: Taxonomy = HAM10000,
    split: str | None = None,
) -> Dataset:
    """Open a dataset by path, choosing the reader from what is there (see the module docstring).

    Args:
        path: a folder of images, a ``.parquet``/``.arrow`` file or folder of them, or a ``.npz``.
        labels: a labels CSV. For a folder it labels the images and selects which are used (rows whose
            image is missing are reported); for tabular and ``.npz`` datasets it selects rows by key.
        taxonomy: labels are mapped onto its codes; those that do not map are reported, not dropped.
        split: which split of a ``.npz`` (default ``test``) or of a multi-split parquet/arrow folder.

    Raises:
        DatasetError: the path does not exist, holds nothing readable, or a labels file is unusable.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    table = read_labels_csv(labels) if labels is not None else None
    if path.is_file() and path.suffix.lower() == ".npz":
        from cloudderm.compare.tabular import NpzDataset

        return NpzDataset(path, table, taxonomy, split)
    if path.is_file() and path.suffix.lower() in (".parquet", ".arrow"):
        from cloudderm.compare.tabular import TableDataset

        return TableDataset(path, [path], table, taxonomy, split)
    if path.is_file():
        raise DatasetError(
            f"{path} is a file; give a folder of images, a .parquet/.arrow file or folder, or a .npz"
        )
    tables = sorted(itertools.chain(path.rglob("*.parquet"), path.rglob("*.arrow")))
    if tables and not _has_images(path):
        from cloudderm.compare.tabular import TableDataset

        return TableDataset(path, tables, table, taxonomy, split)
    if table is None:
        ham = next((path / n for n in HAM_METADATA_NAMES if (path / n).is_file()), None)
        if ham is not None:
            table = read_labels_csv(ham)
    dataset = FolderDataset(path, table, taxonomy)
    if not dataset.entries and table is None:
        raise DatasetError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {path}")
    if not dataset.entries and table is not None:
        examples = ", ".join(dataset.report.missing_examples) or "none"
        raise DatasetError(
            f"no row of the labels file names an image under {path} (e.g. {examples}); the image column "
            f"{table.image_column!r} must hold a relative path, file name or file stem",
            file=str(table.path),
        )
    return dataset


def _has_images(root: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in root.rglob("*"))
