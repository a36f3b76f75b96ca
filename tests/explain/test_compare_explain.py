"""``compare --explain N``: the most-disagreed images explained for every provider, in all three reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("captum")

from cloudderm.cli import main
from tests.conftest import REPO_ROOT

CONFIG = """version: 1
providers:
  quad:
    adapter: tests.explain.models:NetClassifier
  fake:
    adapter: cloudderm.testing.fakes:FakeClassifier
"""


@pytest.fixture
def run(tmp_path: Path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("ISIC_0000000.jpg", "ISIC_0000001.jpg", "PAT_79_120_532.png"):  # shrunk: faster to perturb
        with Image.open(REPO_ROOT / "examples" / "images" / name) as img:
            img.thumbnail((160, 160))
            img.save(images / name)
    config = tmp_path / "cloudderm.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return ["compare", str(images), "-c", str(config), "-o", str(tmp_path / "out"), "--no-progress"]


def test_compare_explains_the_most_disagreed_images_in_every_report(run, tmp_path: Path, capsys) -> None:
    assert main([*run, "--explain", "2"]) == 0
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    section = summary["explain"]
    assert len(section["images"]) == 2
    for image in section["images"]:
        methods = {e["provider"]: e["method"] for e in image["explanations"]}
        assert methods == {"quad": "gradcam", "fake": "occlusion"}
        for entry in image["explanations"]:
            assert (out / "explain" / entry["files"]["overlay"]).is_file()
            assert entry["focus"] is not None and entry["deletion"] is not None
    assert section["calls"]["made"] == section["calls"]["announced"] == 2 * (7 * 7 + 1 + 2)
    html = (out / "report.html").read_text()
    assert "Where the models look" in html and html.count('alt="saliency overlay"') == 4
    assert "lesion focus" in html and "deletion" in html
    markdown = (out / "report.md").read_text()
    first = section["images"][0]["explanations"][0]["files"]["overlay"]
    assert f"(explain/{first})" in markdown
    printed = capsys.readouterr().out
    assert "explanations (research output" in printed and "104 provider calls made (104 announced)" in printed


def test_compare_explain_respects_the_call_budget(run, tmp_path: Path) -> None:
    assert main([*run, "--explain", "2", "--max-calls", "10"]) == 2
    assert not (tmp_path / "out" / "explain" / "explain.json").exists()
    assert main([*run, "--explain", "2", "--max-calls", "104"]) == 0
    assert main([*run, "--explain", "2", "--max-calls", "1"]) == 0, "a rerun needs no call, so fits any cap"
    calls = json.loads((tmp_path / "out" / "summary.json").read_text())["explain"]["calls"]
    assert calls == {"announced": 0, "made": 0}
