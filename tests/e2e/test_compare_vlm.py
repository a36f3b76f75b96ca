"""`compare` puts a VLM (openai adapter on the loopback emulator) beside a classifier in every report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai")
pytest.importorskip("cloudderm.report")

from cloudderm.cli import main
from cloudderm.testing.fakes import FakeClassifier
from tests.adapters.vlm_support import OpenAIEmulated
from tests.e2e.test_compare_cli import FAKE, make_dataset, read_jsonl


def test_vlm_beside_a_classifier_with_answer_rate_cost_and_card(tmp_path: Path) -> None:
    images, labels = make_dataset(tmp_path / "data", 12)
    with OpenAIEmulated(
        FakeClassifier("backend"), "refusal=0.2,content_filter=0.1,malformed=0.1", seed="7"
    ) as emu:
        config = tmp_path / "c.yaml"
        config.write_text(
            f"""version: 1
defaults: {{concurrency: 2, max_retries: 0}}
providers:
  classifier: {{adapter: "{FAKE}", model: derm-model}}
  gpt4o: {{adapter: openai, model: gpt-4o, base_url: "{emu.base_url}", api_key: sk-test-not-a-key}}
""",
            encoding="utf-8",
        )
        out = tmp_path / "out"
        code = main(
            [
                "compare",
                str(images),
                "-c",
                str(config),
                "--labels",
                str(labels),
                "-o",
                str(out),
                "--no-progress",
            ]
        )
    assert code == 0
    records = [r for r in read_jsonl(out / "predictions.jsonl") if r["provider"] == "gpt4o"]
    outcomes = [r["outcome"] for r in records]
    assert len(records) == 12 and "abstained" in outcomes and "answered" in outcomes
    summary = json.loads((out / "summary.json").read_text())
    vlm = summary["providers"]["gpt4o"]
    answered = outcomes.count("answered")
    assert vlm["answer_rate"] == pytest.approx(answered / 12)
    assert vlm["outcomes"]["abstained"] + vlm["outcomes"]["unparseable"] == 12 - answered
    hits = sum(1 for r in records if r["outcome"] == "answered" and r["canonical"] == r["truth"])
    assert vlm["accuracy"] == pytest.approx(hits / 12)  # abstentions count as wrong
    assert vlm["accuracy_answered"] == pytest.approx(hits / answered)  # among answered only
    assert summary["providers"]["classifier"]["answer_rate"] == 1.0
    costs = [r["cost_usd"] for r in records]
    assert all(c is not None and c > 0 for c in costs)  # every call billed from its own tokens
    assert vlm["cost_usd"]["total"] == pytest.approx(sum(costs), rel=1e-9)
    assert summary["cost"]["gpt4o"]["kind"] == "per-token"
    projected = vlm["cost_usd"]["projected"]  # cost per 1k and per month from the measured token counts
    assert projected["per_1k"] == pytest.approx(vlm["cost_usd"]["per_1k"], rel=1e-9)
    assert projected["monthly"] == pytest.approx(vlm["cost_usd"]["per_1k"] * projected["volume"] / 1000)
    markdown = (out / "report.md").read_text()
    assert "answer rate" in markdown and "acc. answered" in markdown
    assert "general-purpose" in markdown  # the governance card says where images went
    assert "acc. answered" in (out / "report.html").read_text()
