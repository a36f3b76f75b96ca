"""Datasets stored as tables of images: parquet / arrow (Hugging Face layout) and DermaMNIST ``.npz``.

Both stream: the label and metadata columns are read once up front (small), then images are read a few
rows at a time, in order, while the comparison runs. pyarrow is optional (``pip install
"cloudderm[datasets]"``); ``.npz`` needs only NumPy and is read member by member from the zip, row by row,
so even the 224-pixel MedMNIST files are never loaded whole.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloudderm.compare.dataset import Dataset
from cloudderm.compare.labels import (
    LABEL_COLUMNS,
    DatasetError,
    Entry,
    LabelReport,
    LabelsTable,
    format_value,
    map_label,
)
from cloudderm.errors import InvalidImageError, MissingDependencyError
from cloudderm.taxonomy import Taxonomy

__all__ = ["DERMAMNIST_CLASSES", "NpzDataset", "TableDataset"]

DERMAMNIST_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
ROWS_PER_READ = 16
Source = tuple[Callable[[], Any], "str | None"]
RawRow = tuple[int, str, "str | None", tuple]


def _select(
    rows: Iterable[RawRow],
    columns: list[str],
    table: LabelsTable | None,
    taxonomy: Taxonomy,
    report: LabelReport,
) -> tuple[list[Entry], list[str]]:
    """Entries for every row, or only the rows a labels CSV names (its labels and columns win)."""
    if table is None:
        entries = []
        for index, key, raw, meta in rows:
            code = map_label(raw, taxonomy)
            report.note_label(raw, code)
            entries.append(Entry(index, key, raw, code, meta))
        return entries, columns
    wanted: dict[str, tuple[str | None, tuple]] = {}
    for ref, raw, meta in table:
        if ref in wanted:
            report.duplicates += 1
        else:
            wanted[ref] = (raw, meta)
    extra = [c for c in table.meta_columns if c not in columns]
    extra_idx = [table.meta_columns.index(c) for c in extra]
    entries = []
    found: set[str] = set()
    for index, key, raw, meta in rows:
        if key not in wanted or key in found:
            if key not in wanted:
                report.not_listed += 1
            continue
        found.add(key)
        table_raw, table_meta = wanted[key]
        label = table_raw if table.label_column is not None else raw
        code = map_label(label, taxonomy)
        report.note_label(label, code)
        entries.append(Entry(index, key, label, code, (*meta, *(table_meta[i] for i in extra_idx))))
    for ref in wanted:
        if ref not in found:
            report.note_missing(ref)
    return entries, [*columns, *extra]


def _no_image(key: str) -> Callable[[], Any]:
    def fail() -> Any:
        raise InvalidImageError(key, "the row holds no image data")

    return fail


class TableDataset(Dataset):
    """Parquet or Arrow IPC files with an image column (bytes, or a struct ``{"bytes", "path"}``)."""

    format = "table"

    def __init__(
        self,
        root: Path,
        files: Sequence[Path],
        table: LabelsTable | None,
        taxonomy: Taxonomy,
        split: str | None,
    ) -> None:
        try:
            import pyarrow  # noqa: F401
        except ImportError as e:
            from cloudderm.errors import install_hint

            raise MissingDependencyError(
                install_hint("datasets", "pyarrow to read parquet/arrow datasets")
            ) from e
        self.files = _pick_split(root, list(files), split)
        first = self._schema(self.files[0])
        self.image_column = _image_column(first, self.files[0])
        names = [n for n in first.names if n != self.image_column]
        lowered = [n.lower() for n in names]
        self.label_column = next((names[lowered.index(c)] for c in LABEL_COLUMNS if c in lowered), None)
        self.id_column = next((n for n in names if n.lower() in ("image_id", "isic_id", "id")), None)
        meta_columns = [n for n in names if n != self.label_column]
        report = LabelReport()
        entries, columns = _select(self._raw_rows(root, meta_columns), meta_columns, table, taxonomy, report)
        super().__init__(
            root,
            entries,
            columns,
            report,
            labels_path=table.path if table else None,
            split=split,
        )
        self.format = "parquet" if self.files[0].suffix.lower() == ".parquet" else "arrow"

    @staticmethod
    def _schema(path: Path) -> Any:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(path)
        with _open_ipc(path) as reader:
            return reader.schema

    def _batches(self, path: Path, columns: list[str]) -> Iterator[Any]:
        """Record batches of only ``columns``, at most ROWS_PER_READ rows each."""
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            with pq.ParquetFile(path) as pf:
                yield from pf.iter_batches(batch_size=ROWS_PER_READ, columns=columns)
            return
        with _open_ipc(path) as reader:
            for batch in reader:
                selected = batch.select(columns)
                for offset in range(0, selected.num_rows, ROWS_PER_READ):
                    yield selected.slice(offset, ROWS_PER_READ)

    def _raw_rows(self, root: Path, meta_columns: list[str]) -> Iterator[RawRow]:
        wanted = [c for c in (self.label_column, *meta_columns) if c is not None]
        index = 0
        for path in self.files:
            name = path.relative_to(root).with_suffix("").as_posix() if path != root else path.stem
            for batch in self._batches(path, wanted):
                data = batch.to_pydict()
                for row in range(batch.num_rows):
                    raw = format_value(data[self.label_column][row]) if self.label_column else None
                    ident = format_value(data[self.id_column][row]) if self.id_column else None
                    meta = tuple(format_value(data[c][row]) for c in meta_columns)
                    yield index, ident or f"{name}#{index}", raw, meta
                    index += 1

    def _sources(self, entries: Sequence[Entry]) -> Iterator[Source]:
        pending = iter(entries)
        target = next(pending, None)
        index = 0
        for path in self.files:
            stat = path.stat()
            for batch in self._batches(path, [self.image_column]):
                values = batch.column(0).to_pylist()
                for value in values:
                    if target is not None and target.index == index:
                        fingerprint = f"{path}:{stat.st_size}:{stat.st_mtime_ns}#{index}"
                        yield _image_loader(value, path.parent, target.key), fingerprint
                        target = next(pending, None)
                    index += 1
                if target is None:
                    return


def _image_loader(value: Any, base: Path, key: str) -> Callable[[], Any]:
    if isinstance(value, dict):
        data, rel = value.get("bytes"), value.get("path")
        if data:
            return lambda: data
        if rel:
            path = Path(rel) if Path(rel).is_absolute() else base / rel
            return lambda: path
        return _no_image(key)
    if isinstance(value, (bytes, bytearray)) and value:
        return lambda: bytes(value)
    return _no_image(key)


def _image_column(schema: Any, path: Path) -> str:
    import pyarrow as pa

    if "image" in schema.names:
        return "image"
    for field in schema:
        t = field.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return field.name
        if pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields)):
            return field.name
    raise DatasetError(
        "no image column: expected 'image' or a binary / {bytes, path} column "
        f"(columns: {', '.join(schema.names)})",
        file=str(path),
    )


class _open_ipc:
    """Arrow IPC file or stream (``datasets.save_to_disk`` writes streams), memory-mapped."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        import pyarrow as pa

        self.source = pa.memory_map(str(self.path))
        try:
            return pa.ipc.open_file(self.source)
        except pa.ArrowInvalid:
            self.source.seek(0)
            try:
                return pa.ipc.open_stream(self.source)
            except pa.ArrowInvalid as e:
                self.source.close()
                raise DatasetError(f"not an Arrow IPC file or stream ({e})", file=str(self.path)) from None

    def __exit__(self, *exc: object) -> None:
        self.source.close()


def _pick_split(root: Path, files: list[Path], split: str | None) -> list[Path]:
    if not files:
        raise DatasetError(f"no .parquet or .arrow files under {root}")
    if split is None:
        return files

    def split_of(path: Path) -> str:
        """``train/data-0.arrow`` (save_to_disk) -> train; ``data/train-0000-of-0002.parquet`` -> train."""
        rel = path.relative_to(root).parts if path != root else (path.name,)
        if len(rel) > 1 and rel[0] != "data":
            return rel[0]
        return path.name.split("-")[0]

    chosen = [f for f in files if split_of(f) == split]
    if not chosen:
        known = sorted({split_of(f) for f in files})
        raise DatasetError(f"no files for split {split!r} under {root}; splits found: {', '.join(known)}")
    return chosen


class NpzDataset(Dataset):
    """DermaMNIST / MedMNIST ``.npz``: ``{split}_images`` (N, H, W[, C]) and ``{split}_labels`` (N, 1)."""

    format = "npz"

    def __init__(self, path: Path, table: LabelsTable | None, taxonomy: Taxonomy, split: str | None) -> None:
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except zipfile.BadZipFile:
            raise DatasetError("not a valid .npz (zip) file", file=str(path)) from None
        splits = sorted(n[: -len("_images.npy")] for n in names if n.endswith("_images.npy"))
        if not splits:
            raise DatasetError("no '<split>_images' array (e.g. test_images)", file=str(path))
        split = split or ("test" if "test" in splits else splits[0])
        if split not in splits:
            raise DatasetError(f"no split {split!r}; splits: {', '.join(splits)}", file=str(path))
        self.member = f"{split}_images.npy"
        with zipfile.ZipFile(path) as zf, zf.open(self.member) as fh:
            self.shape, self.dtype = _npy_header(fh, path)
        labels = None
        if f"{split}_labels.npy" in names:
            with np.load(path, allow_pickle=False) as npz:
                labels = np.asarray(npz[f"{split}_labels"]).reshape(self.shape[0], -1)[:, 0]
        report = LabelReport()
        entries, columns = _select(self._raw_rows(split, labels), [], table, taxonomy, report)
        super().__init__(
            path, entries, columns, report, labels_path=table.path if table else None, split=split
        )

    def _raw_rows(self, split: str, labels: np.ndarray | None) -> Iterator[RawRow]:
        for i in range(self.shape[0]):
            raw = None
            if labels is not None:
                idx = int(labels[i])
                raw = DERMAMNIST_CLASSES[idx] if 0 <= idx < len(DERMAMNIST_CLASSES) else str(idx)
            yield i, f"{split}/{i:05d}", raw, ()

    def _sources(self, entries: Sequence[Entry]) -> Iterator[Source]:
        row_shape = self.shape[1:]
        row_bytes = int(np.prod(row_shape)) * self.dtype.itemsize
        stat = self.path.stat()
        pending = iter(entries)
        target = next(pending, None)
        with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
            _npy_header(fh, self.path)
            for index in range(self.shape[0]):
                if target is None:
                    return
                buf = fh.read(row_bytes)
                if len(buf) < row_bytes:
                    raise DatasetError(f"{self.member} ends early at row {index}", file=str(self.path))
                if target.index == index:
                    row = np.frombuffer(buf, dtype=self.dtype).reshape(row_shape)
                    yield (lambda r=row: r), f"{self.path}:{stat.st_size}:{stat.st_mtime_ns}#{target.key}"
                    target = next(pending, None)


def _npy_header(fh: Any, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` stream, leaving ``fh`` at the first data byte."""
    from numpy.lib import format as npy

    version = npy.read_magic(fh)
    read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read_header(fh)
    if fortran or dtype.hasobject or len(shape) < 3:
        raise DatasetError("images must be a C-ordered numeric array of shape (N, H, W[, C])", file=str(path))
    return tuple(shape), dtype
