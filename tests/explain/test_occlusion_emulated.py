"""Black-box occlusion through the real SageMaker and Azure ML adapters against the loopback emulators.

The emulated endpoints are backed by QuadrantNet, whose answer depends only on the top-left quadrant, so
the occlusion map made from the wire answers must land there. The emulator counts what actually arrived:
the calls made must equal the calls announced before the first one, and a rerun must send nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("boto3")
pytest.importorskip("azure.core")

from cloudderm.cli import main
from cloudderm.emulate import Emulator
from tests.e2e.emulator_support import emulator_aws_env
from tests.explain.models import NetClassifier, quadrant_share, textured_image

GRID = 4
PER_MAP = GRID * GRID + 1 + 2  # tiles, the baseline, the deletion check's two masked images


@pytest.fixture
def setup(tmp_path: Path):
    image = tmp_path / "lesion.png"
    image.write_bytes(textured_image())
    with Emulator(backends={"quad": NetClassifier("backend")}) as emu, emulator_aws_env(tmp_path):
        config = tmp_path / "cloudderm.yaml"
        providers = {"sm": emu.sagemaker_config("quad"), "az": emu.azureml_config("quad")}
        config.write_text(yaml.safe_dump({"version": 1, "providers": providers}), encoding="utf-8")
        yield emu, config, image, tmp_path / "out"


def _received(emu: Emulator) -> int:
    return emu.endpoint_stats("sagemaker", "quad").requests + emu.endpoint_stats("azureml", "quad").requests


def test_calls_made_equal_calls_announced_and_a_rerun_sends_nothing(setup, capsys) -> None:
    emu, config, image, out = setup
    args = ["explain", str(image), "-c", str(config), "-o", str(out), "--grid", str(GRID)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "explain.json").read_text())
    calls = report["calls"]
    assert f"total: {calls['announced']} provider calls" in printed
    assert calls["made"] == calls["announced"] == _received(emu), (
        "the emulator saw exactly what was announced"
    )
    assert calls["images_sent"] == 2 * PER_MAP and calls["cached"] == 0
    by_provider = {e["provider"]: e for e in report["explanations"]}
    assert by_provider["sm"]["calls"] == PER_MAP, "SageMaker: one image per request"
    assert by_provider["az"]["calls"] < PER_MAP, "Azure ML packs several images per request"
    for entry in report["explanations"]:
        assert entry["method"] == "occlusion" and entry["images_sent"] == PER_MAP
        assert entry["parameters"]["grid"] == GRID and entry["deletion"] is not None
        saliency = np.load(out / entry["files"]["map"])
        assert quadrant_share(saliency) > 0.9
    received = _received(emu)
    assert main(args) == 0
    assert "total: 0 provider calls" in capsys.readouterr().out
    again = json.loads((out / "explain.json").read_text())
    assert again["calls"] == {"announced": 0, "made": 0, "images_sent": 0, "cached": 2 * PER_MAP}
    assert _received(emu) == received, "the rerun answered from results.sqlite"
    assert [e["target"] for e in again["explanations"]] == [e["target"] for e in report["explanations"]]


def test_over_budget_is_refused_before_any_call(setup, capsys) -> None:
    emu, config, image, out = setup
    base = ["explain", str(image), "-c", str(config), "-o", str(out), "-p", "sm"]
    assert main([*base, "--grid", "16"]) == 2, "16x16 + 3 = 259 calls, over the default budget of 200"
    err = capsys.readouterr().err
    assert "259" in err and "--max-calls" in err
    assert main([*base, "--grid", str(GRID), "--max-calls", str(PER_MAP - 1)]) == 2
    assert _received(emu) == 0, "refusals happen before any byte is sent"
    assert main([*base, "--grid", str(GRID), "--max-calls", str(PER_MAP)]) == 0
    assert _received(emu) == PER_MAP


def test_policy_still_applies(setup, tmp_path: Path) -> None:
    emu, config, image, out = setup
    data = yaml.safe_load(config.read_text())
    data["policy"] = {"allowed_regions": ["us-east-1"]}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["explain", str(image), "-c", str(config), "-o", str(out), "--yes"]) == 3
    assert _received(emu) == 0
