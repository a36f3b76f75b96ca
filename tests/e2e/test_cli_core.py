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


def _config_with_call_log(tmp_path: Path, extra: str = "") -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    path = tmp_path / "logged.yaml"
    path.write_text(
        f"""providers:
  alpha: {{adapter: "{FAKE}", model: alpha-model, call_log: "{log}"}}
{extra}"""
    )
    return path, log


@pytest.mark.parametrize("kind", ["not-an-image", "missing", "empty-folder"])
def test_bad_input_file_is_exit_2_before_any_call(kind: str, tmp_path: Path, images, capsys) -> None:
    """Issue #12 item 9: a missing file or a non-image is a usage error (2), found before any call."""
    config, log = _config_with_call_log(tmp_path)
    bad = tmp_path / "broken.jpg"
    if kind == "not-an-image":
        bad.write_text("nope")
    elif kind == "empty-folder":
        bad.mkdir()
    assert main(["classify", images[0], str(bad), "-c", str(config), "--json"]) == 2
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "Traceback" not in err
    assert not log.exists(), "nothing may be sent when an input is bad"


def test_folder_is_expanded_like_compare(tmp_path: Path, images, config: Path, capsys) -> None:
    """Issue #12 item 9: a directory is every image under it, not 'no such file'."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for i, path in enumerate(images[:2]):
        (folder / ("sub" if i else ".") / f"p{i}.jpg").write_bytes(Path(path).read_bytes())
    assert main(["classify", str(folder), "-c", str(config), "-p", "alpha", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(Path(r["image"]).name for r in rows) == ["p0.jpg", "p1.jpg"]


def test_uncached_model_is_exit_2_as_in_compare(tmp_path: Path, images, capsys, monkeypatch) -> None:
    """Issue #12 item 9: an uncached HF model fails warm-up: exit 2 in classify, as in compare."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = tmp_path / "hf.yaml"
    config.write_text("providers:\n  hub: {adapter: huggingface, model: cloudderm-tests/not-in-any-cache}\n")
    assert main(["classify", images[0], "-c", str(config), "--json"]) == 2
    assert "not-in-any-cache" in capsys.readouterr().err
    assert main(["compare", str(Path(images[0]).parent), "-c", str(config), "-o", str(tmp_path / "o")]) == 2


def test_load_time_is_reported_apart_from_latency(config: Path, images, capsys, monkeypatch) -> None:
    """Issue #12 item 16: warm-up happens before the first timed call and is returned as ``load_ms``."""
    from cloudderm.testing.fakes import FakeClassifier

    events: list[str] = []
    infer = FakeClassifier._infer

    def slow_warm_up(self) -> None:
        import time

        events.append("warm_up")
        time.sleep(0.2)  # a lower bound only: load_ms cannot be under it

    def logged_infer(self, batch):
        events.append("call")
        return infer(self, batch)

    monkeypatch.setattr(FakeClassifier, "warm_up", slow_warm_up)
    monkeypatch.setattr(FakeClassifier, "_infer", logged_infer)
    assert main(["classify", images[0], "-c", str(config), "-p", "alpha", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert events == ["warm_up", "call"], "the model loads before, not inside, the timed call"
    assert row["load_ms"] >= 200
    assert main(["classify", images[0], "-c", str(config), "-p", "alpha"]) == 0
    assert "alpha: ready in" in capsys.readouterr().out


def test_missing_secret_needed_only_for_calls(tmp_path: Path, images, capsys, monkeypatch) -> None:
    """Issue #12 item 14: ``cost``/``providers`` read the config without its secrets; classify is exit 2."""
    monkeypatch.delenv("CANARY_UNSET_KEY", raising=False)
    monkeypatch.delenv("AZUREML_API_KEY", raising=False)
    example = Path(__file__).resolve().parents[2] / "examples" / "cloudderm.yaml"
    assert "${AZUREML_API_KEY}" in example.read_text()
    assert main(["providers", "-c", str(example)]) == 0
    assert main(["cost", "-c", str(example), "--volume", "10000"]) == 0
    config, log = _config_with_call_log(tmp_path)
    config.write_text(config.read_text().replace("model: alpha-model", 'model: "${CANARY_UNSET_KEY}"'))
    assert main(["providers", "-c", str(config)]) == 0
    capsys.readouterr()
    assert main(["classify", images[0], "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "CANARY_UNSET_KEY is not set" in err and not log.exists()
    assert main(["compare", str(Path(images[0]).parent), "-c", str(config), "-o", str(tmp_path / "o")]) == 2
    assert "CANARY_UNSET_KEY is not set" in capsys.readouterr().err and not log.exists()


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
