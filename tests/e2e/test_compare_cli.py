"""``cloudderm compare`` and ``cloudderm dataset sample`` as a user runs them, including kill -9 and Ctrl-C.

Metrics and reports are replaced by ``tests.stub_reports`` (same signatures) so these tests exercise the
runner, store, export and CLI wiring whatever the state of the metrics and report modules.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from cloudderm.cli import main
from cloudderm.config import parse_config
from cloudderm.testing.fakes import FakeClassifier
from tests import stub_reports
from tests.conftest import REPO_ROOT, make_jpeg
from tests.e2e.process_support import wait_for_answers

FAKE = "cloudderm.testing.fakes:FakeClassifier"
KEYS = {
    "image", "sha256", "provider", "model", "status", "labels", "canonical", "triage", "truth", "truth_raw",
    "latency_ms", "cost_usd", "request_id", "warnings", "error", "error_type", "attempts", "metadata",
    "outcome", "reason", "usage",
}  # fmt: skip
LAUNCH = (
    "import sys; from tests.stub_reports import install; install(); "
    "from cloudderm.cli import main; sys.exit(main(sys.argv[1:]))"
)


def jpeg(i: int) -> bytes:
    return make_jpeg(((i * 37) % 256, (i * 91) % 256, (i * 53) % 256), (16, 12))


@pytest.fixture
def stubs(monkeypatch):
    stub_reports.install(monkeypatch)
    return stub_reports.CALLS


def make_dataset(root: Path, n: int, *, broken: bool = False) -> tuple[Path, Path]:
    images = root / "images"
    images.mkdir(parents=True)
    rows = ["image,label,sex"]
    codes = ["nv", "mel", "bkl", "bcc"]
    for i in range(n):
        (images / f"img{i:03d}.jpg").write_bytes(jpeg(i))
        rows.append(f"img{i:03d}.jpg,{codes[i % 4]},{'female' if i % 2 else 'male'}")
    if broken:
        (images / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
        rows.append("broken.jpg,nv,male")
    labels = root / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return images, labels


def write_config(
    path: Path, *, regions: str = "[local]", latency: float = 0.0, log: Path | None = None
) -> Path:
    extra = f", call_log: '{log}'" if log else ""
    path.write_text(
        f"""version: 1
defaults: {{concurrency: 2, max_retries: 1}}
policy: {{allowed_regions: {regions}}}
providers:
  alpha: {{adapter: "{FAKE}", model: alpha-model, latency_s: {latency}{extra}}}
  beta: {{adapter: "{FAKE}", model: beta-model, seed: b, batch_size: 2, latency_s: {latency}{extra}}}
"""
    )
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_compare_writes_every_output_and_resumes(tmp_path: Path, stubs, capsys) -> None:
    images, labels = make_dataset(tmp_path, 6, broken=True)
    config = write_config(tmp_path / "cloudderm.yaml")
    out = tmp_path / "out"
    args = [
        "compare",
        str(images),
        "-c",
        str(config),
        "--labels",
        str(labels),
        "-o",
        str(out),
        "--subgroup",
        "sex",
    ]
    assert main(args) == 1  # finished, but broken.jpg could not be classified
    for name in ("results.sqlite", "predictions.jsonl", "summary.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    lines = read_jsonl(out / "predictions.jsonl")
    assert len(lines) == 7 * 2 and all(set(r) == KEYS for r in lines)
    broken = [r for r in lines if r["image"] == "broken.jpg"]
    assert {r["status"] for r in broken} == {"error"} and {r["error_type"] for r in broken} == {
        "InvalidImageError"
    }
    assert {r["truth"] for r in lines} == {"nv", "mel", "bkl", "bcc"}
    assert all(r["metadata"]["sex"] in ("male", "female") for r in lines)
    call = stubs["build_summary"][0]
    assert call["subgroups"] == ["sex"] and call["dataset"]["labels_file"] == str(labels)
    info = call["providers"]["alpha"]
    assert set(info) == {"adapter", "model", "region", "config_hash", "warnings", "governance"}
    assert (
        info["model"] == "alpha-model"
        and info["region"] == "local"
        and info["governance"]["provider"] == "alpha"
    )
    assert stubs["write_reports"][0]["images_root"] == images
    output = capsys.readouterr()
    assert "STUB-TABLE alpha n=7 ok=6" in output.out
    assert "1 error" in output.err

    assert main(args) == 1  # nothing left to send: everything comes from the store
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["calls"] == {"alpha": 0, "beta": 0}
    assert summary["run"]["reused"] == {"alpha": 7, "beta": 7}


def test_limit_provider_filter_baseline_and_volume(tmp_path: Path, stubs) -> None:
    images, labels = make_dataset(tmp_path, 5)
    config = write_config(tmp_path / "c.yaml")
    out = tmp_path / "out"
    code = main(
        ["compare", str(images), "-c", str(config), "-p", "beta", "--limit", "3", "-o", str(out),
         "--baseline", str(tmp_path / "old"), "--volume", "10000", "--no-progress", "--labels", str(labels)]
    )  # fmt: skip
    assert code == 0
    lines = read_jsonl(out / "predictions.jsonl")
    assert len(lines) == 3 and {r["provider"] for r in lines} == {"beta"}
    assert stubs["write_reports"][0]["baseline_dir"] == tmp_path / "old"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["volume"] == {"images_per_month": 10000, "assumed": False}
    assert set(summary["cost"]) == set(summary["providers"]) and isinstance(summary["risks"], list)


def test_no_resume_sends_everything_again(tmp_path: Path, stubs) -> None:
    images, _ = make_dataset(tmp_path, 3)
    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "c.yaml", log=log)
    args = ["compare", str(images), "-c", str(config), "-o", str(tmp_path / "out")]
    assert main(args) == 0 and main(args) == 0
    assert len(log.read_text().splitlines()) == 6
    assert main([*args, "--no-resume"]) == 0
    assert len(log.read_text().splitlines()) == 12


def test_usage_errors_exit_2(tmp_path: Path, stubs, capsys) -> None:
    images, labels = make_dataset(tmp_path, 2)
    config = write_config(tmp_path / "c.yaml")
    base = ["compare", str(images), "-c", str(config), "-o", str(tmp_path / "out")]
    assert main([*base, "--labels", str(labels), "--subgroup", "fitzpatrick"]) == 2
    assert "no metadata column 'fitzpatrick'" in capsys.readouterr().err
    assert main([*base, "-p", "gamma"]) == 2
    assert main(["compare", str(tmp_path / "nowhere"), "-c", str(config)]) == 2
    assert not (tmp_path / "out").exists()  # nothing started


def test_policy_refusal_happens_before_any_call(tmp_path: Path, stubs, capsys) -> None:
    images, _ = make_dataset(tmp_path, 3)
    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "c.yaml", regions="[eu-west-2]", log=log)
    out = tmp_path / "out"
    assert main(["compare", str(images), "-c", str(config), "-o", str(out)]) == 3
    assert "violates policy rule 'allowed_regions'" in capsys.readouterr().err
    assert not log.exists() and not (out / "results.sqlite").exists()
    assert main(["compare", str(images), "-c", str(config), "-o", str(out), "--policy", "warn"]) == 0
    warnings = stubs["build_summary"][0]["providers"]["alpha"]["warnings"]
    assert any("policy (allowed_regions) not met" in w for w in warnings)
    assert all(any("policy" in w for w in r["warnings"]) for r in read_jsonl(out / "predictions.jsonl"))


def _answered(db: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT p.name, r.sha256 FROM results r JOIN providers p USING (config_hash) WHERE r.final = 1"
        ).fetchall()
    return {(name, sha) for name, sha in rows}


def _calls(log: Path) -> Counter:
    return Counter(tuple(line.split()) for line in log.read_text().splitlines())


def _launch(args: list[str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killed_run_resumes_without_repeating_any_answered_call(tmp_path: Path, how: str) -> None:
    n = 60
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "c.yaml", latency=0.04, log=log)
    out = tmp_path / "out"
    args = [
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
    proc = _launch(args, tmp_path)
    wait_for_answers(out / "results.sqlite", proc, at_least=12)
    proc.send_signal(getattr(signal, how))
    _, stderr = proc.communicate(timeout=60)
    answered = _answered(out / "results.sqlite")
    before = _calls(log)
    if how == "SIGKILL":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert "To resume without repeating any call, run: cloudderm compare" in " ".join(stderr.split())
    assert 12 <= len(answered) < 2 * n
    assert all(before[pair] == 1 for pair in answered)

    again = _launch(args, tmp_path)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    calls = _calls(log)
    repeated = {pair: calls[pair] for pair in answered if calls[pair] != 1}
    assert not repeated, f"answered pairs sent again: {repeated}"
    assert len(calls) == 2 * n  # every (provider, image) pair was sent, answered ones exactly once
    in_flight_at_kill = [pair for pair, count in calls.items() if count > 1]
    assert len(in_flight_at_kill) <= 2 * 2 * 2  # at most concurrency x batch per provider were cut off
    lines = read_jsonl(out / "predictions.jsonl")
    assert len(lines) == 2 * n and {r["status"] for r in lines} == {"ok"}


def test_dataset_sample_command(tmp_path: Path, capsys) -> None:
    images, labels = make_dataset(tmp_path, 12)  # nv/bkl are all male, mel/bcc all female: 3 each
    out = tmp_path / "sample.csv"
    code = main(
        ["dataset", "sample", str(images), "--labels", str(labels), "--per-stratum", "2", "--by", "sex",
         "-o", str(out), "--seed", "3"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "coverage" in printed and "too few" not in printed
    rows = out.read_text().splitlines()
    assert rows[0] == "image,label,sex" and len(rows) - 1 == 4 * 2
    assert main(
        ["dataset", "sample", str(images), "--labels", str(labels), "--per-stratum", "4", "-o", str(out)]
    ) == 0  # fmt: skip
    printed = " ".join(capsys.readouterr().out.split())
    assert "too few: 3 < 4" in printed and "4 of 4 strata have fewer than 4 images" in printed
    assert main(["dataset", "sample", str(images), "--labels", str(labels), "--per-stratum", "2",
                 "--by", "site", "-o", str(out)]) == 2  # fmt: skip


def test_with_the_real_summary_and_reports(tmp_path: Path, shared_data: Path) -> None:
    pytest.importorskip("cloudderm.compare.summary")
    pytest.importorskip("cloudderm.report")
    config = write_config(tmp_path / "c.yaml")
    out = tmp_path / "out"
    code = main(
        ["compare", str(shared_data / "images"), "-c", str(config),
         "--labels", str(shared_data / "MANIFEST.csv"), "-o", str(out), "--limit", "8", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    for name in ("results.sqlite", "predictions.jsonl", "summary.json", "report.md", "report.html"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["providers"]) == {"alpha", "beta"}


class SlowStartFake(FakeClassifier):
    """A provider whose one-off setup is slow, to prove setup is not timed as an image's latency."""

    events: ClassVar[list[str]] = []

    def warm_up(self) -> None:
        SlowStartFake.events.append(f"warm_up:{self.name}")

    def _infer(self, images):  # type: ignore[no-untyped-def]
        SlowStartFake.events.append(f"infer:{self.name}")
        return super()._infer(images)


def test_providers_are_warmed_up_before_the_first_timed_image(tmp_path: Path, stubs) -> None:
    from cloudderm.compare import run_compare

    images, labels = make_dataset(tmp_path / "data", 3)
    target = f"{__name__}:SlowStartFake"
    config = parse_config({"providers": {"a": {"adapter": target}, "b": {"adapter": target}}})
    SlowStartFake.events.clear()
    run_compare(images, config=config, labels=labels, out=tmp_path / "out", progress=False)
    events = SlowStartFake.events
    assert events[:2] == ["warm_up:a", "warm_up:b"]
    assert all(e.startswith("infer:") for e in events[2:]) and len(events) > 2
