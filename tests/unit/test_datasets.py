"""Dataset readers on generated files (CSV variants, HAM10000 layout, parquet/arrow, npz) and shared data."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from cloudderm.compare.datasets import DatasetError, FolderDataset, open_dataset
from cloudderm.compare.sampling import stratified_sample, write_sample_csv
from cloudderm.errors import InvalidImageError
from cloudderm.images import prepare
from tests.conftest import make_jpeg


def jpeg(i: int) -> bytes:
    return make_jpeg(((i * 37) % 256, (i * 91) % 256, (i * 53) % 256), (12, 10))


def write_csv(path: Path, header: list[str], rows: list[list[object]], delimiter: str = ",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    (root / ".cache").mkdir()
    for name in ("a.jpg", "b.JPG", "sub/c.png", "sub/d.jpeg"):
        (root / name).write_bytes(jpeg(len(name)))
    (root / ".cache" / "hidden.jpg").write_bytes(jpeg(9))
    (root / "notes.txt").write_text("not an image")
    return root


# ---- folders and labels CSVs ------------------------------------------------------------------------
def test_folder_without_labels_is_recursive_sorted_and_lazy(folder: Path) -> None:
    ds = open_dataset(folder)
    assert [e.key for e in ds.entries] == ["a.jpg", "b.JPG", "sub/c.png", "sub/d.jpeg"]
    assert ds.report.unlabelled == 4 and ds.columns == []
    item = next(iter(ds))
    assert item.load() == folder / "a.jpg"  # a path: read only when the runner needs the bytes
    assert item.fingerprint.startswith(str(folder / "a.jpg"))


@pytest.mark.parametrize(
    ("header", "refs"),
    [
        (["image", "label", "sex"], ["a.jpg", "b.JPG", "sub/c.png"]),  # file names and relative path
        (["image_id", "dx", "sex"], ["a", "b", "c"]),  # HAM/ISIC-style ids = file stems
        (["file", "label", "sex"], ["imgs/a.jpg", "data/imgs/b.JPG", "imgs/sub/c.png"]),  # path suffixes
        (["Image", "Label", "sex"], ["./a.jpg", "B.jpg", "sub\\c.png"]),  # case, ./ and backslashes
    ],
)
def test_labels_csv_variants_match_images(folder: Path, tmp_path: Path, header, refs) -> None:
    labels = write_csv(
        tmp_path / "labels.csv",
        header,
        [[refs[0], "melanoma", "female"], [refs[1], "nv", ""], [refs[2], "Basal cell carcinoma", "male"]],
    )
    ds = open_dataset(folder, labels=labels)
    assert [(e.key, e.truth) for e in ds.entries] == [("a.jpg", "mel"), ("b.JPG", "nv"), ("sub/c.png", "bcc")]
    assert ds.columns == ["sex"]
    first = next(iter(ds))
    assert first.metadata == {"sex": "female"} and first.truth_raw == "melanoma"
    assert ds.entries[1].meta == (None,)  # empty cell = missing, not ""
    assert ds.report.not_listed == 1  # sub/d.jpeg is not in the labels file


def test_unknown_missing_ambiguous_duplicate_and_non_image_rows_are_reported(
    folder: Path, tmp_path: Path
) -> None:
    (folder / "sub" / "a.png").write_bytes(jpeg(3))  # stem "a" now names two files
    labels = write_csv(
        tmp_path / "labels.tsv",
        ["image", "label", "site"],
        [
            ["a.jpg", "SCC", "face"],
            ["b.JPG", "coffee bean", "arm"],
            ["a.jpg", "nv", "face"],
            ["a", "nv", ""],
            ["nowhere.jpg", "nv", ""],
            ["meta/a.json", "", ""],
            ["sub/c.png", "", "leg"],
            ["sub/d.jpeg", "vascular_lesions", "leg"],
        ],
        delimiter="\t",
    )
    ds = open_dataset(folder, labels=labels)
    report = ds.report
    assert [e.key for e in ds.entries] == ["a.jpg", "b.JPG", "sub/c.png", "sub/d.jpeg"]
    assert dict(report.unknown) == {"SCC": 1, "coffee bean": 1}
    assert report.labelled == 1 and report.unlabelled == 1
    assert report.duplicates == 1 and report.ambiguous == 1 and report.missing == 1 and report.ignored == 1
    summary = ds.describe()
    assert summary["unknown_labels"]["count"] == 2 and "SCC" in summary["unknown_labels"]["examples"]
    assert summary["rows_without_image"]["examples"] == ["nowhere.jpg"]
    problems = " ".join(report.problems())
    assert (
        "outside the taxonomy" in problems
        and "not in the dataset" in problems
        and "several files" in problems
    )
    unknown = ds.entries[0]
    assert unknown.truth is None and unknown.truth_raw == "SCC"  # kept, reported, never silently dropped


def test_labels_file_problems_are_clear_errors(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no column naming images"):
        open_dataset(folder, labels=write_csv(tmp_path / "x.csv", ["name", "label"], [["a.jpg", "nv"]]))
    with pytest.raises(DatasetError, match="no row of the labels file"):
        open_dataset(folder, labels=write_csv(tmp_path / "y.csv", ["image", "label"], [["zzz.jpg", "nv"]]))
    with pytest.raises(DatasetError, match="labels file not found"):
        open_dataset(folder, labels=tmp_path / "absent.csv")
    with pytest.raises(DatasetError, match="dataset not found"):
        open_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        open_dataset(tmp_path / "empty")


def test_ham10000_layout_is_detected(tmp_path: Path) -> None:
    root = tmp_path / "HAM10000"
    for part, ids in (("HAM10000_images_part_1", [24306, 24307]), ("HAM10000_images_part_2", [29306])):
        (root / part).mkdir(parents=True)
        for i in ids:
            (root / part / f"ISIC_00{i}.jpg").write_bytes(jpeg(i))
    write_csv(
        root / "HAM10000_metadata.csv",
        ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"],
        [
            ["HAM_0000118", "ISIC_0024306", "nv", "follow_up", "45.0", "male", "trunk"],
            ["HAM_0000118", "ISIC_0024307", "mel", "histo", "80.0", "female", "face"],
            ["HAM_0002730", "ISIC_0029306", "bkl", "histo", "", "unknown", "back"],
            ["HAM_0002731", "ISIC_0099999", "df", "histo", "50.0", "male", "back"],
        ],
    )
    ds = open_dataset(root)
    assert isinstance(ds, FolderDataset) and ds.labels_path.name == "HAM10000_metadata.csv"
    assert [(e.key, e.truth) for e in ds.entries] == [
        ("HAM10000_images_part_1/ISIC_0024306.jpg", "nv"),
        ("HAM10000_images_part_1/ISIC_0024307.jpg", "mel"),
        ("HAM10000_images_part_2/ISIC_0029306.jpg", "bkl"),
    ]
    assert ds.columns == ["lesion_id", "dx_type", "age", "sex", "localization"]
    assert ds.report.missing == 1


# ---- parquet / arrow --------------------------------------------------------------------------------
def _marmal88_table(n: int, *, struct: bool = True):
    pa = pytest.importorskip("pyarrow")
    names = ["melanocytic_Nevi", "melanoma", "benign_keratosis-like_lesions", "basal_cell_carcinoma"]
    images = [jpeg(i) for i in range(n)]
    column = [{"bytes": b, "path": None} for b in images] if struct else images
    return pa.table(
        {
            "image": column,
            "image_id": [f"ISIC_{i:07d}" for i in range(n)],
            "lesion_id": [f"HAM_{i:07d}" for i in range(n)],
            "dx": [names[i % 4] for i in range(n)],
            "dx_type": ["histo"] * n,
            "age": [float(40 + i) if i % 5 else None for i in range(n)],
            "sex": ["male" if i % 2 else "female" for i in range(n)],
            "localization": ["back"] * n,
        }
    ), images


def test_marmal88_parquet_layout_with_splits(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    table, images = _marmal88_table(40)
    root = tmp_path / "skin_cancer"
    (root / "data").mkdir(parents=True)
    pq.write_table(table.slice(0, 30), root / "data" / "train-00000-of-00001.parquet", row_group_size=8)
    pq.write_table(table.slice(30), root / "data" / "test-00000-of-00001.parquet")
    ds = open_dataset(root, split="test")
    assert ds.format == "parquet" and len(ds) == 10
    assert ds.columns == ["image_id", "lesion_id", "dx_type", "age", "sex", "localization"]
    items = list(ds)
    assert [i.key for i in items][:2] == ["ISIC_0000030", "ISIC_0000031"]
    assert [i.truth for i in items][:4] == ["bkl", "bcc", "nv", "mel"]
    assert (
        items[0].truth_raw == "benign_keratosis-like_lesions"
        and items[0].metadata["age"] is None
        and items[1].metadata["age"] == "71"
    )
    assert items[3].load() == images[33]
    everything = open_dataset(root)
    assert len(everything) == 40 and sum(1 for _ in everything) == 40
    with pytest.raises(DatasetError, match="splits found: test, train"):
        open_dataset(root, split="validation")


def test_parquet_with_binary_column_and_labels_selection(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    table, images = _marmal88_table(12, struct=False)
    path = tmp_path / "one.parquet"
    pq.write_table(table.rename_columns(["pixels", *table.column_names[1:]]), path)
    labels = write_csv(
        tmp_path / "pick.csv",
        ["image", "label", "fitzpatrick"],
        [["ISIC_0000005", "mel", "IV"], ["ISIC_0000002", "", "II"], ["ISIC_9", "nv", ""]],
    )
    ds = open_dataset(path, labels=labels)
    assert [(e.key, e.truth) for e in ds.entries] == [("ISIC_0000002", None), ("ISIC_0000005", "mel")]
    assert ds.columns[-1] == "fitzpatrick" and ds.report.missing == 1 and ds.report.not_listed == 10
    loaded = [item.load() for item in ds]
    assert loaded == [images[2], images[5]]


def test_arrow_stream_from_save_to_disk(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    table, images = _marmal88_table(20)
    (tmp_path / "ds" / "train").mkdir(parents=True)
    path = tmp_path / "ds" / "train" / "data-00000-of-00001.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=7)
    ds = open_dataset(tmp_path / "ds", split="train")
    assert ds.format == "arrow" and len(ds) == 20
    assert [item.load() for item in ds] == images


def test_row_without_image_bytes_is_a_per_image_error(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {"image": [{"bytes": jpeg(1), "path": None}, {"bytes": None, "path": None}], "dx": ["nv", "mel"]}
    )
    pq.write_table(table, tmp_path / "t.parquet")
    first, second = list(open_dataset(tmp_path / "t.parquet"))
    assert first.load() == jpeg(1)
    with pytest.raises(InvalidImageError, match="no image data"):
        second.load()


# ---- DermaMNIST npz -----------------------------------------------------------------------------------
@pytest.mark.parametrize("compressed", [False, True])
def test_dermamnist_npz_streams_rows_and_maps_class_indices(tmp_path: Path, compressed: bool) -> None:
    rng = np.random.default_rng(0)
    test_images = rng.integers(0, 255, (9, 28, 28, 3), dtype=np.uint8)
    test_labels = np.array([[0], [1], [2], [3], [4], [5], [6], [9], [4]], dtype=np.uint8)
    val_images = rng.integers(0, 255, (2, 28, 28, 3), dtype=np.uint8)
    save = np.savez_compressed if compressed else np.savez
    path = tmp_path / "dermamnist.npz"
    save(
        path,
        test_images=test_images,
        test_labels=test_labels,
        val_images=val_images,
        val_labels=np.zeros((2, 1)),
    )
    ds = open_dataset(path)
    assert ds.split == "test" and len(ds) == 9
    assert [e.truth for e in ds.entries] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc", None, "mel"]
    assert dict(ds.report.unknown) == {"9": 1}
    items = list(ds)
    assert items[3].key == "test/00003"
    assert np.array_equal(items[8].load(), test_images[8])
    assert prepare(items[0].load()).width == 28
    val = open_dataset(path, split="val")
    assert len(val) == 2 and [e.truth for e in val.entries] == ["akiec", "akiec"]
    with pytest.raises(DatasetError, match="splits: test, val"):
        open_dataset(path, split="train")


def test_npz_selection_by_labels_csv_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, test_images=np.zeros((4, 8, 8, 3), np.uint8), test_labels=np.array([[1], [2], [3], [4]]))
    labels = write_csv(tmp_path / "l.csv", ["image", "note"], [["test/00002", "x"]])
    ds = open_dataset(path, labels=labels)
    assert [(e.key, e.truth) for e in ds.entries] == [("test/00002", "df")] and ds.columns == ["note"]
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DatasetError, match=r"not a valid \.npz"):
        open_dataset(tmp_path / "bad.npz")
    np.savez(tmp_path / "flat.npz", test_images=np.zeros((3, 4)))
    with pytest.raises(DatasetError, match=r"shape \(N, H, W"):
        open_dataset(tmp_path / "flat.npz")


# ---- stratified sampling ------------------------------------------------------------------------------
def _sampling_folder(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "imgs"
    root.mkdir()
    rows = []
    plan = [
        ("nv", "female", 6),
        ("nv", "male", 5),
        ("mel", "female", 3),
        ("mel", "male", 1),
        ("SCC", "male", 2),
    ]
    n = 0
    for label, sex, count in plan:
        for _ in range(count):
            name = f"img{n:03d}.jpg"
            (root / name).write_bytes(jpeg(n))
            rows.append([name, label, sex, str(20 + n)])
            n += 1
    (root / "unlabelled.jpg").write_bytes(jpeg(99))
    rows.append(["unlabelled.jpg", "", "male", "50"])
    return root, write_csv(tmp_path / "labels.csv", ["image", "label", "sex", "age"], rows)


def test_stratified_sample_is_seeded_and_reports_thin_strata(tmp_path: Path) -> None:
    root, labels = _sampling_folder(tmp_path)
    ds = open_dataset(root, labels=labels)
    sample = stratified_sample(ds, 3, ["sex"], seed=7)
    assert [(s.values, s.available, s.selected) for s in sample.strata] == [
        (("SCC", "male"), 2, 2),
        (("mel", "female"), 3, 3),
        (("mel", "male"), 1, 1),
        (("nv", "female"), 6, 3),
        (("nv", "male"), 5, 3),
    ]
    assert [s.values for s in sample.short] == [("SCC", "male"), ("mel", "male")]
    assert sample.unlabelled == 1 and len(sample.entries) == 12
    assert [e.key for e in stratified_sample(ds, 3, ["sex"], seed=7).entries] == [
        e.key for e in sample.entries
    ]
    others = {tuple(e.key for e in stratified_sample(ds, 3, ["sex"], seed=s).entries) for s in range(8)}
    assert len(others) > 1  # the seed matters
    with pytest.raises(DatasetError, match="no metadata column 'site'"):
        stratified_sample(ds, 3, ["site"])


def test_sample_csv_round_trips_as_labels(tmp_path: Path) -> None:
    root, labels = _sampling_folder(tmp_path)
    ds = open_dataset(root, labels=labels)
    sample = stratified_sample(ds, 2, ["sex"], seed=1)
    out = write_sample_csv(ds, sample, tmp_path / "out" / "sample.csv")
    again = open_dataset(root, labels=out)
    assert [(e.key, e.truth, e.truth_raw) for e in again.entries] == [
        (e.key, e.truth, e.truth or e.truth_raw) for e in sample.entries
    ]
    assert again.columns == ["sex", "age"]
    assert next(iter(csv.reader(io.StringIO(out.read_text()))))[:2] == ["image", "label"]


# ---- the shared data, when present ---------------------------------------------------------------------
def test_shared_images_with_manifest(shared_data: Path) -> None:
    ds = open_dataset(shared_data / "images", labels=shared_data / "MANIFEST.csv")
    assert len(ds) == 36 and ds.report.labelled == 32 and ds.report.unlabelled == 4
    assert ds.report.ignored >= 1  # metadata/*.json rows name non-images
    assert ds.report.missing >= 1  # ood/ and nc/ rows are not under images/
    truths = {e.key: e.truth for e in ds.entries}
    assert truths["ISIC_0000002.jpg"] == "mel" and truths["PAT_46_881_939.png"] == "bcc"
    assert ds.columns[0] == "source_repo" and "license" in ds.columns


def test_shared_ham10000_metadata_matches_png_reencodings(shared_data: Path) -> None:
    ds = open_dataset(shared_data / "nc")
    assert len(ds) == 14 and ds.report.labelled == 14
    assert {e.truth for e in ds.entries} == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert "sex" in ds.columns and "localization" in ds.columns
    assert ds.report.missing > 10_000 - 20  # the other HAM10000 rows: reported, not an error
