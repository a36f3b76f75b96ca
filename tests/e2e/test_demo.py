"""``cloudderm demo`` end to end: offline, five outputs, and the untrained-weights warning where people look.

The demo runs for real (stand-in models built from configs, emulators on loopback, the real adapters and
reports) on a few of the bundled example images, with the hub forbidden (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cloudderm.cli import main
from cloudderm.demo import UNTRAINED_WARNING, find_examples
from cloudderm.errors import ConfigError
from tests.conftest import REPO_ROOT, make_jpeg
from tests.tolerances import assert_same_scores

OUTPUTS = ("results.sqlite", "predictions.jsonl", "summary.json", "report.md", "report.html")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Structure(HTMLParser):
    """Collects text and checks that every opened element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.seen: set[str] = set()
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.seen.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    pytest.importorskip("transformers")
    pytest.importorskip("cloudderm.emulate.models")
    pytest.importorskip("boto3")
    pytest.importorskip("azure.core")
    pytest.importorskip("google.cloud.aiplatform_v1")
    root = tmp_path_factory.mktemp("demo")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.chdir(REPO_ROOT)
        import io
        from contextlib import redirect_stdout

        printed = io.StringIO()
        with redirect_stdout(printed):
            code = main(
                ["demo", "-o", str(out), "--stand-ins", "--cache-dir", str(root / "models"),
                 "--limit", "5", "--no-progress"]
            )  # fmt: skip
    return code, out, printed.getvalue()


def test_demo_writes_all_five_outputs(demo_run: tuple[int, Path, str]) -> None:
    code, out, _ = demo_run
    assert code == 0
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    lines = (out / "predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 5 * 4 and {r["status"] for r in records} == {"ok"}


def test_html_report_parses_and_shows_the_warning(demo_run: tuple[int, Path, str]) -> None:
    _, out, _ = demo_run
    parser = _Structure()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed: {parser.stack}"
    assert {"html", "body", "table"} <= parser.seen
    assert UNTRAINED_WARNING in " ".join(" ".join(parser.text).split())
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert UNTRAINED_WARNING in markdown
    html = (out / "report.html").read_text(encoding="utf-8")
    banner = f"<strong>{UNTRAINED_WARNING.upper()}</strong>"
    assert banner in html and html.index(banner) < html.index("<table"), "the notice comes before any number"
    assert markdown.index(UNTRAINED_WARNING.upper()) < markdown.index("|"), "before any table"


def test_untrained_warning_is_in_the_summary_and_the_terminal(demo_run: tuple[int, Path, str]) -> None:
    _, out, printed = demo_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demo"]["untrained"] is True and summary["demo"]["warnings"] == [UNTRAINED_WARNING]
    assert set(summary["providers"]) == {
        "local-sklesion",
        "sagemaker-imagenet",
        "azureml-sklesion",
        "vertex-sklesion-meta",
    }
    for name, entry in summary["providers"].items():
        assert entry["warnings"][0] == UNTRAINED_WARNING, name
    assert "UNTRAINED STAND-IN MODELS" in printed and "untrained weights" in printed


def test_the_emulated_clouds_answer_exactly_like_the_local_model(demo_run: tuple[int, Path, str]) -> None:
    """Same model, same bytes: the local provider and the emulated Azure ML and Vertex AI endpoints agree on
    every image, and no upload carried metadata."""
    _, out, _ = demo_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demo"]["uploads_with_metadata"] is False
    pairs = {frozenset(key.split("|")): value for key, value in summary["agreement"].items()}
    for cloud in ("azureml-sklesion", "vertex-sklesion-meta"):  # stand-ins get no metadata
        assert pairs[frozenset({"local-sklesion", cloud})]["agreement"] == 1.0
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    by_image: dict[str, dict[str, list]] = {}
    for record in records:
        by_image.setdefault(record["sha256"], {})[record["provider"]] = record["labels"]
    for answers in by_image.values():
        local = {ls["label"]: ls["score"] for ls in answers["local-sklesion"]}
        for cloud in ("azureml-sklesion", "vertex-sklesion-meta"):
            remote = {ls["label"]: ls["score"] for ls in answers[cloud]}
            assert_same_scores(remote, local)  # another runtime and batch size behind the emulator


def test_find_examples_prefers_the_arguments(tmp_path: Path) -> None:
    images, labels = find_examples()
    assert images == REPO_ROOT / "examples" / "images" or images.name == "images"
    assert labels is not None and labels.name == "labels.csv"
    (tmp_path / "pics").mkdir()
    with pytest.raises(ConfigError, match="holds no images"):  # before any model loads (issue #12 scan)
        find_examples(tmp_path / "pics")
    (tmp_path / "pics" / "a.jpg").write_bytes(make_jpeg((10, 20, 30)))
    assert find_examples(tmp_path / "pics") == (tmp_path / "pics", None)
    with pytest.raises(ConfigError, match="is not a folder"):
        find_examples(tmp_path / "missing")
    with pytest.raises(ConfigError, match="does not exist"):
        find_examples(tmp_path / "pics", tmp_path / "nope.csv")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    """The demo on the built-in trained models, on six images (three dermoscopic, three smartphone)."""
    pytest.importorskip("boto3")
    pytest.importorskip("azure.core")
    pytest.importorskip("google.cloud.aiplatform_v1")
    from cloudderm.models.cards import CARDS
    from cloudderm.models.store import fetch_command, is_ready

    for card in CARDS.values():
        if not is_ready(card):
            pytest.skip(f"{card.name} is not in the model cache: run `{fetch_command(card)}`")
    root = tmp_path_factory.mktemp("trained")
    images = root / "images"
    images.mkdir()
    rows = (REPO_ROOT / "examples" / "labels.csv").read_text().splitlines()
    picked = [r for r in rows[1:] if r.startswith("ISIC")][:3] + [r for r in rows[1:] if r.startswith("PAT")][
        :3
    ]
    for row in picked:
        name = row.split(",")[0]
        (images / name).write_bytes((REPO_ROOT / "examples" / "images" / name).read_bytes())
    (root / "labels.csv").write_text("\n".join([rows[0], *picked]) + "\n")
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        import io
        from contextlib import redirect_stdout

        printed = io.StringIO()
        with redirect_stdout(printed):
            labels = str(root / "labels.csv")
            code = main(
                ["demo", "-o", str(out), "--images", str(images), "--labels", labels, "--no-progress"]
            )
    return code, out, printed.getvalue()


@pytest.mark.slow
def test_demo_on_trained_models_leads_with_findings(trained_run: tuple[int, Path, str]) -> None:
    code, out, printed = trained_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["demo"]["untrained"] is False and summary["demo"]["warnings"] == []
    assert "UNTRAINED" not in printed and UNTRAINED_WARNING not in (out / "report.md").read_text()
    assert {"local-sklesion", "sagemaker-imagenet", "azureml-sklesion", "vertex-sklesion-meta"} <= set(
        summary["providers"]
    )
    notices = summary["notices"]
    assert any(n.startswith("local-sklesion: accuracy") and "95% CI" in n for n in notices)
    assert any("EfficientNet-Lite0" in n and "out of domain on every lesion" in n for n in notices)
    assert summary["providers"]["sagemaker-imagenet"]["out_of_domain_rate"] == 1.0
    markdown = (out / "report.md").read_text()
    assert markdown.index("out of domain on every lesion") < markdown.index("|"), "findings before tables"
    pairs = {frozenset(key.split("|")): value for key, value in summary["agreement"].items()}
    assert pairs[frozenset({"local-sklesion", "azureml-sklesion"})]["agreement"] == 1.0  # same ONNX model
