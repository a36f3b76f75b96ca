"""The CLI's classify and providers commands, run as a user would (in-process and as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cloudderm.cli import main

FAKE = "cloudderm.testing.fakes:FakeClassifier"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cloudderm.yaml"
    path.write_text(
        f"""version: 1
policy: {{allowed_regions: [local, eu-west-2]}}
providers:
  alpha: {{adapter: "{FAKE}", model: alpha-model}}
  beta: {{adapter: "{FAKE}", model: beta-model, seed: b}}
"""
    )
    return path


@pytest.fixture
def images(tmp_path: Path, sample_images) -> list[str]:
    paths = []
    for i, data in enumerate(sample_images):
        path = tmp_path / f"img{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def test_classify_json_has_every_image_and_provider(config: Path, images, capsys) -> None:
    assert main(["classify", *images, "-c", str(config), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["image"], r["provider"]) for r in rows} == {(i, p) for i in images for p in ("alpha", "beta")}
    per_image = {}
    for r in rows:
        per_image.setdefault(r["image"], set()).add(r["image_sha256"])
    assert all(len(hashes) == 1 for hashes in per_image.values()), "every provider got identical bytes"


def test_classify_table_and_provider_filter(config: Path, images, capsys) -> None:
    assert main(["classify", images[0], "-c", str(config), "-p", "beta"]) == 0
    out = capsys.readouterr().out
    assert "beta" in out and "alpha" not in out and "not a diagnosis" in out


def test_bad_image_exits_1_and_names_file(config: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_text("nope")
    assert main(["classify", str(bad), "-c", str(config), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert all("broken.jpg" in r["error"] and "not a recognised image" in r["error"] for r in rows)


def test_unknown_provider_is_usage_error(config: Path, images, capsys) -> None:
    assert main(["classify", images[0], "-c", str(config), "-p", "gamma"]) == 2
    assert "unknown provider(s) gamma" in capsys.readouterr().err


def test_policy_refusal_exit_3_before_any_call(tmp_path: Path, images, capsys) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text(f"policy: {{allowed_regions: [eu-west-2]}}\nproviders:\n  alpha: {{adapter: '{FAKE}'}}\n")
    assert main(["classify", images[0], "-c", str(path)]) == 3
    assert "allowed_regions" in capsys.readouterr().err


def test_policy_warn_records_violation_on_every_prediction(tmp_path: Path, images, capsys) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text(f"policy: {{allowed_regions: [eu-west-2]}}\nproviders:\n  alpha: {{adapter: '{FAKE}'}}\n")
    assert main(["classify", *images, "-c", str(path), "--policy", "warn", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(any("allowed_regions" in w for w in r["warnings"]) for r in rows)


def test_providers_lists_cards(config: Path, capsys) -> None:
    assert main(["providers", "-c", str(config), "--json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert [c["provider"] for c in cards] == ["alpha", "beta"]
    assert cards[0]["service"]["data_leaves_machine"] is False


def test_console_script_runs(config: Path, images) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cloudderm", "classify", images[0], "-c", str(config), "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["provider"] == "alpha"


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "classify" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-3", "abc"])
def test_counts_must_be_positive_whole_numbers(value: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "images", "--limit", value])
    assert info.value.code == 2
    assert "--limit" in capsys.readouterr().err
