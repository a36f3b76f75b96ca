"""Reports: self-contained, escaped HTML with plots and thumbnails; Markdown tables; terminal; run diff."""

from __future__ import annotations

import base64
import csv
import io
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from cloudderm.compare.summary import build_summary
from cloudderm.errors import ConfigError
from cloudderm.report import check_baseline, render_terminal, write_reports
from cloudderm.report.thumbs import thumbnail_uri
from cloudderm.taxonomy import HAM10000
from tests.conftest import make_jpeg
from tests.unit._records import record, sample_providers, sample_records, write_jsonl

RISKS = [
    {
        "risk": "out-of-domain model",
        "severity": "high",
        "provider": "B",
        "detail": "ImageNet labels",
        "mitigation": "drop it",
    },
    {
        "risk": "small subgroups",
        "severity": "medium",
        "provider": None,
        "detail": "< 30",
        "mitigation": "more",
    },
    {
        "risk": "unknown price",
        "severity": "low",
        "provider": "C",
        "detail": "no catalog",
        "mitigation": "ask",
    },
]
ENDPOINT_BASIS = "always-on endpoint, 1 × ml.m5.xlarge instance"
COST = {
    "pricing_as_of": "2025-01-15",
    "volume_per_month": 10_000,
    "providers": {
        "A": {"kind": "local", "assumptions": ["no hourly_usd set"]},
        "B": {
            "kind": "always-on",
            "utilisation": 7.010131199651918e-05,
            "assumptions": {"instance": "ml.m5.xlarge", "utilisation": "24x7"},
            "sources": ["https://aws.amazon.com/sagemaker/pricing/"],
        },
    },
}


class _Doc(HTMLParser):
    """Collects tags, attributes, table rows (class + cell texts) and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[tuple[str, list[str]]] = []  # body rows only (header rows are left out)
        self.text: list[str] = []
        self._row: list[str] | None = None
        self._row_class = ""
        self._cell: list[str] | None = None
        self._header = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row, self._row_class, self._header = [], dict(attrs).get("class") or "", False
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._header = self._header or tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if not self._header:
                self.rows.append((self._row_class, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Doc:
    doc = _Doc()
    doc.feed(html)
    doc.close()
    return doc


def _make_images(root: Path) -> Path:
    root.mkdir()
    for i in range(1, 7):
        (root / f"i{i}.jpg").write_bytes(make_jpeg((40 * i, 90, 80), (120, 90), gps=True))
    return root


@pytest.fixture
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip matplotlib where a test is about something else: each plot takes a noticeable moment."""
    monkeypatch.setattr("cloudderm.report.plots.available", lambda: False)


@pytest.fixture
def images_root(tmp_path: Path) -> Path:
    return _make_images(tmp_path / "images")


def _summary(jsonl: Path, providers: dict | None = None) -> dict:
    s = build_summary(
        jsonl,
        providers=providers or sample_providers(),
        dataset={"path": "images/"},
        subgroups=["sex"],
        taxonomy=HAM10000,
        n_boot=200,
    )
    s["risks"] = RISKS
    s["cost"] = COST
    s["volume"] = {"images_per_month": 10_000, "assumed": True}
    projected = {"A": (0.0, 0.0, "local model, machine not priced"), "B": (16.6375, 166.375, ENDPOINT_BASIS)}
    for name, (per_1k, monthly, basis) in projected.items():
        if name in s["providers"]:
            s["providers"][name]["cost_usd"]["projected"] = {
                "per_1k": per_1k,
                "monthly": monthly,
                "volume": 10_000,
                "basis": basis,
            }
    return s


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict[str, Path]]:
    """One full report (plots included) shared by the read-only tests below: plots take a while."""
    base = tmp_path_factory.mktemp("report")
    out = base / "out"
    out.mkdir()
    jsonl = write_jsonl(out / "predictions.jsonl", sample_records())
    summary = _summary(jsonl)
    paths = write_reports(out, summary, jsonl, images_root=_make_images(base / "images"))
    return out, summary, paths


def test_writes_the_three_files_without_touching_the_summary(run: tuple) -> None:
    out, summary, paths = run
    assert paths == {
        "summary": out / "summary.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    assert json.loads(paths["summary"].read_text()) == json.loads(json.dumps(summary))
    assert "baseline_diff" not in summary


def test_html_is_self_contained_with_plots_and_thumbnails(run: tuple) -> None:
    html = run[2]["html"].read_text(encoding="utf-8")
    doc = _parse(html)
    urls = [v for _, attrs in doc.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert urls, "expected embedded images"
    assert all(u.startswith("data:") for u in urls), [u[:40] for u in urls if not u.startswith("data:")]
    assert not any(tag in ("script", "link", "iframe", "object") for tag, _ in doc.tags)
    assert "http://" not in html.split("<body>")[0] and "@import" not in html
    pngs = [u for u in urls if u.startswith("data:image/png;base64,")]
    # accuracy vs cost, latency, calibration, subgroup gaps, confusion matrices
    assert len(pngs) == 5
    Image.open(io.BytesIO(base64.b64decode(pngs[0].split(",", 1)[1]))).verify()
    thumbs = [u for u in urls if u.startswith("data:image/jpeg;base64,")]
    assert len(thumbs) == 5  # one per disagreement row (i1, i2, i4, i5, i6)
    for uri in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
            assert max(img.size) <= 96
            assert not img.getexif()  # source photos carry GPS EXIF; the report must not


def test_html_shows_disclaimer_cards_risks_cost_and_intended_use(run: tuple) -> None:
    text = " ".join(_parse(run[2]["html"].read_text(encoding="utf-8")).text)
    assert text.count("NOT A DIAGNOSIS") >= 2
    assert "not a diagnosis" in text
    for heading in ("Governance cards", "Risk register", "Cost estimates", "Agreement between providers"):
        assert heading in text
    assert "general image classification" in text  # B's intended use, beside its numbers
    assert "as of 2025-01-10" in text  # dated fact on the card
    assert "ml.m5.xlarge" in text and "prices as of 2025-01-15" in text
    assert "Per-image disagreements" in text and "i5.jpg" in text


def test_flagged_provider_is_flagged_on_every_row(run: tuple) -> None:
    doc = _parse(run[2]["html"].read_text(encoding="utf-8"))
    b_rows = [(css, cells) for css, cells in doc.rows if any(c.startswith("B ⚠") for c in cells)]
    # comparison 1, sensitivity 1, agreement 2, subgroup 3 (F, M, missing), cost 1, risk 1
    assert len(b_rows) == 9
    # the disagreement rows carry B's answers in a column headed by its flagged name
    disagreement_rows = [css for css, cells in doc.rows if cells and cells[0].endswith(".jpg")]
    assert len(disagreement_rows) == 5 and all("flagged" in css for css in disagreement_rows)
    assert all("flagged" in css for css, _ in b_rows)
    assert all(
        "PROHIBITED for medical use" in next(c for c in cells if c.startswith("B ⚠")) for _, cells in b_rows
    )
    # B's name never appears bare in a table cell
    assert not [cells for _, cells in doc.rows if "B" in cells]
    # A is not flagged
    # A's own rows are not flagged (its agreement row with B is, because B's numbers are in it)
    a_rows = [
        css for css, cells in doc.rows if cells and cells[0] == "A" and not any("⚠" in c for c in cells)
    ]
    assert a_rows and not any("flagged" in css for css in a_rows)
    md = run[2]["markdown"].read_text(encoding="utf-8")
    assert "| B |" not in md and "| B ⚠ PROHIBITED for medical use; OUT-OF-DOMAIN model |" in md


def test_markdown_has_the_tables(run: tuple) -> None:
    md = run[2]["markdown"].read_text(encoding="utf-8")
    assert md.startswith("# cloudderm comparison report")
    assert "**NOT A DIAGNOSIS.**" in md
    assert (
        "| provider | model | images | answered | errors | answer rate | accuracy | acc. answered |"
        " balanced acc. |" in md
    )
    assert "|---|---|" in md
    for heading in (
        "## Per-class sensitivity",
        "## Agreement between providers",
        "## Subgroup: sex",
        "## Confusion matrices",
        "## Per-image disagreements",
        "## Cost estimates",
        "## Governance cards",
        "## Risk register",
        "## Intended use and warnings",
    ):
        assert heading in md, heading
    assert "| A | derm-vit | 6 | 6 | 0 | 100.0% | 60.0% | 60.0% | 50.0% | 0.433 |" in md
    assert "| high | out-of-domain model |" in md
    assert md.index("| high |") < md.index("| medium |") < md.index("| low |")
    assert "n/a" in md  # C's triage specificity is unknown, shown as n/a and never as 0


def test_terminal_renders_side_by_side(run: tuple) -> None:
    console = Console(record=True, width=160)
    render_terminal(run[1], console)
    text = console.export_text()
    assert "NOT A DIAGNOSIS" in text
    assert "balanced accuracy" in text and "Cohen's kappa" in text
    header = next(line for line in text.splitlines() if " A " in line and " C " in line)
    assert header.index(" A ") < header.index(" C ")
    assert "PROHIBITED for medical use" in text
    assert "50.0%" in text and "n/a" in text
    assert "Prices as of 2025-02-01" in text


def test_all_text_is_escaped(tmp_path: Path, images_root: Path) -> None:
    evil = '<script>alert("x")</script>'
    rows = [
        record(
            "i1",
            evil,
            label="mel",
            canonical="mel",
            score=0.9,
            truth="mel",
            metadata={"sex": '<img src="http://x/y">'},
        ),
        record(
            "i1",
            "[red]rich[/red] $x$",
            label="nv",
            canonical="nv",
            score=0.8,
            truth="mel",
            metadata={"sex": "F"},
        ),
    ]
    jsonl = write_jsonl(tmp_path / "predictions.jsonl", rows)
    summary = build_summary(
        jsonl, providers={}, dataset={"path": "a|b"}, subgroups=["sex"], taxonomy=HAM10000
    )
    paths = write_reports(tmp_path / "out", summary, jsonl, images_root=images_root)
    html = paths["html"].read_text(encoding="utf-8")
    doc = _parse(html)
    assert not any(tag == "script" for tag, _ in doc.tags)
    assert not [a for t, a in doc.tags if t == "img" and not str(a.get("src", "")).startswith("data:")]
    assert evil in " ".join(doc.text)  # shown as text, not run
    md = paths["markdown"].read_text(encoding="utf-8")
    # Markdown escapes (a \\< renders as <, never opens a tag), readable raw: no &lt; (#12 item 10)
    assert "<script>" not in md and "\\<script\\>" in md and "&lt;" not in md
    assert "a\\|b" in md  # a pipe in a value cannot split a table cell
    console = Console(record=True, width=200)
    render_terminal(summary, console)
    assert "[red]rich[/red] $x$" in console.export_text()
    assert "data:image/png" in html  # a "$" in a name does not break matplotlib (mathtext)


def test_without_matplotlib_the_report_degrades_to_tables(
    run: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, summary, _ = run
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    paths = write_reports(out / "noplots", summary, out / "predictions.jsonl", images_root=None)
    html = paths["html"].read_text(encoding="utf-8")
    assert "data:image/png" not in html
    assert "Plots need matplotlib" in html and "cloudderm[report]" in html
    assert "Confusion matrix: A" in html  # tables carry the numbers instead


def test_thumbnails_stay_inside_images_root(tmp_path: Path, images_root: Path) -> None:
    (tmp_path / "secret.jpg").write_bytes(make_jpeg((1, 2, 3)))
    assert thumbnail_uri(images_root, "../secret.jpg") is None
    assert thumbnail_uri(images_root, "missing.jpg") is None
    assert thumbnail_uri(None, "i1.jpg") is None
    assert thumbnail_uri(images_root, "i1.jpg").startswith("data:image/jpeg;base64,")


def _flipped_records() -> list[dict]:
    rows = sample_records()
    by = {(r["provider"], r["image"]): r for r in rows}
    by[("A", "i1.jpg")]["canonical"] = "nv"  # was mel (right) -> broke
    by[("A", "i2.jpg")]["canonical"] = "mel"  # was nv (wrong) -> fixed
    by[("B", "i3.jpg")]["canonical"] = None  # was nv (right) -> out-of-domain: broke
    c2 = by[("C", "i2.jpg")]
    c2.update(
        status="ok", canonical="mel", labels=[{"label": "mel", "score": 0.8}], latency_ms=90.0
    )  # error -> fixed
    return rows


def test_baseline_diff_lists_flipped_images(tmp_path: Path, images_root: Path, no_plots: None) -> None:
    old = tmp_path / "old"
    old.mkdir()
    old_jsonl = write_jsonl(old / "predictions.jsonl", sample_records())
    write_reports(old, _summary(old_jsonl), old_jsonl, images_root=None)
    new = tmp_path / "new"
    new.mkdir()
    new_jsonl = write_jsonl(new / "predictions.jsonl", _flipped_records())
    providers = sample_providers()
    providers["A"]["config_hash"] = "a2"
    summary = _summary(new_jsonl, providers)
    paths = write_reports(new, summary, new_jsonl, images_root=images_root, baseline_dir=old)
    diff = json.loads(paths["summary"].read_text())["baseline_diff"]
    assert diff["flipped_total"] == 4
    assert diff["flipped_by_provider"] == {
        "A": {"fixed": 1, "broke": 1, "changed": 0},
        "B": {"fixed": 0, "broke": 1, "changed": 0},
        "C": {"fixed": 1, "broke": 0, "changed": 0},
    }
    flips = {(f["provider"], f["image"]): (f["before"], f["after"], f["direction"]) for f in diff["flipped"]}
    assert flips[("A", "i1.jpg")] == ("mel", "nv", "broke")
    assert flips[("B", "i3.jpg")] == ("nv", "out-of-domain", "broke")
    assert flips[("C", "i2.jpg")] == ("error", "mel", "fixed")
    a = diff["providers"]["A"]
    assert a["config_changed"] is True
    # A: accuracy 3/5 -> 3/5 (one fixed, one broke) is unchanged; balanced accuracy too (mel still 1/2)
    assert "accuracy" not in a["changes"]
    # C answered one more image
    assert diff["providers"]["C"]["changes"]["ok"] == {"before": 2, "after": 3, "delta": 1}
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## Changes since" in md and "## Flipped images" in md
    assert "| i1.jpg | A | mel | mel | nv | broke |" in md
    html = paths["html"].read_text(encoding="utf-8")
    assert "Flipped images" in html and "provider settings changed" in html
    console = Console(record=True, width=160)
    render_terminal(json.loads(paths["summary"].read_text()), console)
    assert "changes since" in console.export_text()


def test_unreadable_baseline_becomes_a_note(tmp_path: Path, no_plots: None) -> None:
    jsonl = write_jsonl(tmp_path / "predictions.jsonl", sample_records())
    with pytest.raises(ConfigError, match=r"summary\.json not found"):
        check_baseline(tmp_path / "nowhere")
    paths = write_reports(
        tmp_path / "out", _summary(jsonl), jsonl, images_root=None, baseline_dir=tmp_path / "nowhere"
    )
    assert "baseline not compared" in paths["markdown"].read_text(encoding="utf-8")


def test_report_on_shared_lesion_photos(shared_data: Path, tmp_path: Path, no_plots: None) -> None:
    """Thumbnails from the real photos in ../shared/data/images, labels from its MANIFEST.csv."""
    with open(shared_data / "MANIFEST.csv", newline="", encoding="utf-8") as fh:
        manifest = [r for r in csv.DictReader(fh) if r["file"].startswith("images/") and r["label"]][:6]
    rows = []
    for i, item in enumerate(manifest):
        name = item["file"].removeprefix("images/")
        truth = HAM10000.canonical(item["label"])
        for provider, code in (("A", truth), ("B", "nv" if i % 2 else "mel")):
            rows.append(
                record("i1", provider, label=code, canonical=code, score=0.7, truth=truth, metadata={})
                | {"image": name, "sha256": item["sha256"]}
            )
    jsonl = write_jsonl(tmp_path / "predictions.jsonl", rows)
    summary = build_summary(jsonl, providers={}, dataset={}, subgroups=[], taxonomy=HAM10000)
    paths = write_reports(tmp_path / "out", summary, jsonl, images_root=shared_data / "images")
    doc = _parse(paths["html"].read_text(encoding="utf-8"))
    thumbs = [a["src"] for t, a in doc.tags if t == "img" and a.get("class") == "thumb"]
    assert thumbs and all(s.startswith("data:image/") for s in thumbs)
    for uri in thumbs:
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
            assert max(img.size) <= 96 and not img.getexif()


def test_collect_details_finds_disagreements_and_latencies(tmp_path: Path) -> None:
    from cloudderm.report.details import collect_details

    jsonl = write_jsonl(tmp_path / "predictions.jsonl", sample_records())
    details = collect_details(jsonl, ["A", "B", "C"])
    # answered by two or more: every image (A and B answer all six). Outcomes per image:
    # i1 mel/OOD/mel, i2 nv/OOD, i3 nv/nv (agree; C's error is no answer), i4 nv/OOD, i5 mel/OOD, i6 nv/OOD/nv
    assert details.n_compared == 6 and details.n_disagreements == 5
    # labelled first (i1, i2, i4, i5), then the unlabelled i6
    assert [r.key for r in details.disagreements] == ["i1.jpg", "i2.jpg", "i4.jpg", "i5.jpg", "i6.jpg"]
    i2 = details.disagreements[1]
    assert i2.truth == "mel" and i2.answers["A"].canonical == "nv" and i2.answers["C"].status == "error"
    assert i2.answers["B"].label == "coffee bean" and i2.answers["B"].outcome == "out-of-domain"
    assert details.latencies["A"].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    assert details.latencies["C"].tolist() == [100.0, 100.0]
    assert len(collect_details(jsonl, ["A", "B", "C"], limit=2).disagreements) == 2


def test_accuracy_vs_cost_uses_the_monthly_projection_when_present() -> None:
    from cloudderm.report.plots import accuracy_vs_cost

    summary = {
        "providers": {
            "endpoint": {
                "balanced_accuracy": 0.7,
                "cost_usd": {"total": None, "per_1k": None, "projected": {"per_1k": 36.5}},
            },
            "unpriced": {"balanced_accuracy": 0.6, "cost_usd": {"total": None, "per_1k": None}},
        },
        "volume": {"images_per_month": 10000},
    }
    image, left_out = accuracy_vs_cost(summary)
    assert image is not None and image.startswith("data:image/")
    assert left_out == ["unpriced (cost unknown)"]
    del summary["providers"]["endpoint"]["cost_usd"]["projected"]
    assert accuracy_vs_cost(summary) == (None, ["endpoint (cost unknown)", "unpriced (cost unknown)"])


# ---- layout (issue #12 items 10-11) ---------------------------------------------------------------------
def test_html_tables_scroll_inside_the_page_with_formatted_numbers_and_no_duplicate_columns(run) -> None:
    """Item 10: every table sits in a scrolling wrapper; money and rates are rounded; no column twice."""
    import re

    html = run[2]["html"].read_text(encoding="utf-8")
    tables = html.count("<table>")
    assert tables and html.count('<div class="table-scroll"><table>') == tables
    assert ".table-scroll{overflow-x:auto" in html
    for head in re.findall(r"<thead><tr>(.*?)</tr></thead>", html):
        headers = re.findall(r"<th>(.*?)</th>", head)
        assert len(headers) == len(set(headers)), headers
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert not [c for c in cells if re.search(r"\d\.\d{5,}|\de-\d", c)], "raw floats in a table cell"
    assert "7.010131199651918e-05" not in html and "0.0%" in html  # the planted raw utilisation
    assert re.search(r'<td class="num">\$16\.64</td>', html), "projected $/1k rounded and right-aligned"


def test_markdown_has_no_raw_entities_or_raw_floats(run) -> None:
    import re

    md = run[2]["markdown"].read_text(encoding="utf-8")
    assert "&lt;" not in md and "&gt;" not in md
    assert not re.search(r"\| [^|]*\de-\d[^|]* \|", md) and "7.010131199651918e-05" not in md
    header = next(line for line in md.splitlines() if line.startswith("| provider | pricing basis"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert len(cols) == len(set(cols))


def _capture_figures(monkeypatch) -> list:
    from cloudderm.report import plots

    figures: list = []
    real = plots._png

    def keep(fig):
        figures.append(fig)
        return real(fig)

    monkeypatch.setattr(plots, "_png", keep)
    return figures


def test_subgroup_bars_say_percent_and_labels_do_not_overlap(monkeypatch) -> None:
    """Item 11: bar annotations carry %, sit above the whiskers, and many subgroup names are rotated."""
    from cloudderm.report.plots import subgroup_gaps

    figures = _capture_figures(monkeypatch)
    values = {f"site-{i:02d}-long-name": {"balanced_accuracy": 0.5, "balanced_accuracy_ci": [0.3, 0.7]}
              for i in range(9)}  # fmt: skip
    summary = {"providers": {"a": {"subgroups": {"site": values}}, "b": {"subgroups": {"site": values}}}}
    assert subgroup_gaps(summary, "site") is not None
    (fig,) = figures
    ax = fig.axes[0]
    fig.canvas.draw()
    notes = [t for t in ax.texts]
    assert notes and all(t.get_text() == "50%" for t in notes)
    assert all(t.xy[1] >= 70 for t in notes), "a label sits above its whisker (70%), not on it"
    ticks = [t for t in ax.get_xticklabels() if t.get_text()]
    assert all(t.get_rotation() == 45 for t in ticks)
    # Parallel labels at 45 degrees clear each other when the gap across them exceeds a line of text.
    import itertools
    import math

    centres = [t.get_window_extent().x1 for t in ticks]  # right-aligned: each label ends at its tick
    line = ticks[0].get_fontsize() * fig.dpi / 72 * 1.2  # one line of text, in pixels
    gaps = [(b - a) * math.sin(math.radians(45)) for a, b in itertools.pairwise(centres)]
    assert min(gaps) > line, "tick labels overlap"


def test_point_labels_stay_inside_the_accuracy_vs_cost_axes(monkeypatch) -> None:
    """Item 11: the rightmost point's label is drawn to its left, inside the plot."""
    from cloudderm.report.plots import accuracy_vs_cost

    figures = _capture_figures(monkeypatch)
    providers = {
        name: {"balanced_accuracy": acc, "cost_usd": {"projected": {"per_1k": cost}}}
        for name, acc, cost in (("cheap", 0.6, 1.0), ("an-expensive-endpoint-with-a-long-name", 0.7, 100.0))
    }
    image, _ = accuracy_vs_cost({"providers": providers, "volume": {"images_per_month": 10_000}})
    assert image is not None
    (fig,) = figures
    ax = fig.axes[0]
    fig.canvas.draw()
    frame = ax.get_window_extent()
    for text in ax.texts:
        box = text.get_window_extent()
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()
