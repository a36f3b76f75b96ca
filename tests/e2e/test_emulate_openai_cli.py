"""`cloudderm emulate --protocol openai --backend NAME` serves a configured classifier to the adapter."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

pytest.importorskip("openai")

from cloudderm.adapters.openai_vlm import OpenAIClassifier, OpenAISettings
from cloudderm.cli import main
from cloudderm.testing.fakes import FakeClassifier


def test_emulate_openai_serves_the_backend(tmp_path, sample_images) -> None:
    config = tmp_path / "cloudderm.yaml"
    config.write_text(
        "providers:\n  derm:\n    adapter: cloudderm.testing.fakes:FakeClassifier\n    seed: s1\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "cloudderm", "emulate", "--protocol", "openai", "-c", str(config)]
    proc = subprocess.Popen(
        [*command, "--backend", "derm", "--faults", "refusal=0.25", "--seed", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = []
        for line in proc.stdout:  # type: ignore[union-attr]
            banner.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(banner)
        base_url = re.search(r"base_url: (http://127\.0\.0\.1:\d+/v1)", text)
        assert base_url, text
        settings = OpenAISettings(model="derm", base_url=base_url.group(1))  # the endpoint name is the model
        with OpenAIClassifier("vlm", settings) as clf:
            predictions = clf.classify_batch(sample_images)
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "stopped: 3 requests" in rest
    outcomes = {p.outcome for p in predictions}
    assert outcomes <= {"answered", "abstained"} and "answered" in outcomes
    backend = FakeClassifier("derm", FakeClassifier.Settings(seed="s1"))
    for image, prediction in zip(sample_images, predictions):
        if prediction.outcome == "answered":
            assert prediction.canonical == backend.classify(clf.prepare(image)).canonical


def test_emulate_openai_rejects_unknown_faults() -> None:
    assert main(["emulate", "--protocol", "openai", "--faults", "teapot=1"]) == 2
