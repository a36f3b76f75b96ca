"""Builds what the app tests need: tiny local models, a config with a refused and a canary-carrying
provider, a small finished compare run, and a running ``cloudderm app`` process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "images"
CANARY = "cd-canary-7f3a9e1b5c2d4e6f"
FAKE = "cloudderm.testing.fakes:FakeClassifier"


def write_models(folder: Path) -> tuple[Path, Path]:
    """A tiny untrained MobileNetV2 (ImageNet-style labels: out of domain) and a tiny skin ViT."""
    from cloudderm.emulate.models import save_mobilenet_v2, save_vit

    mobilenet, vit = folder / "mobilenet", folder / "vit"
    if not (mobilenet / "config.json").is_file():
        save_mobilenet_v2(mobilenet, image_size=64, depth_multiplier=0.35)
    if not (vit / "config.json").is_file():
        save_vit(vit, image_size=32, patch_size=16, hidden_size=32, num_layers=1, num_heads=2)
    return mobilenet, vit


def write_config(folder: Path, mobilenet: Path, vit: Path) -> Path:
    config = folder / "app.yaml"
    config.write_text(
        f"""version: 1
policy:
  allowed_regions: [local]
  mode: enforce
providers:
  imagenet-mobilenet: {{adapter: huggingface, model: "{mobilenet}"}}
  skin-vit: {{adapter: huggingface, model: "{vit}"}}
  us-only-fake: {{adapter: "{FAKE}", region: us-east-1}}
  canary-azure:
    adapter: azureml
    scoring_uri: "http://127.0.0.1:9/score"
    api_key: "${{CD_APP_CANARY}}"
    region: local
    timeout_s: 2
    max_retries: 0
""",
        encoding="utf-8",
    )
    return config


def write_run(folder: Path) -> Path:
    """A finished two-provider compare of the bundled examples (fake providers that disagree)."""
    config = folder / "run.yaml"
    config.write_text(
        f"version: 1\nproviders:\n  fake-a: {{adapter: '{FAKE}', seed: a}}\n"
        f"  fake-b: {{adapter: '{FAKE}', seed: a, labels: [akiec, bcc, bkl, df, mel, vasc, nv]}}\n",
        encoding="utf-8",
    )
    out = folder / "run"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudderm",
            "compare",
            "-c",
            str(config),
            "-o",
            str(out),
            "--no-progress",
            "--labels",
            str(REPO / "examples" / "labels.csv"),
            str(EXAMPLES),
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
        timeout=300,
    )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen
    log: Path
    start_s: float

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_app(config: Path, results: Path, log: Path, timeout_s: float = 180) -> RunningApp:
    """``cloudderm app`` as a user starts it, on loopback; returns once it answers HTTP."""
    port = free_port()
    env = {**os.environ, "CD_APP_CANARY": CANARY, "HF_HUB_OFFLINE": "1"}
    begin = time.perf_counter()
    handle = log.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudderm",
            "app",
            "-c",
            str(config),
            "--results",
            str(results),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cloudderm app exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return RunningApp(url, process, log, time.perf_counter() - begin)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"cloudderm app did not answer within {timeout_s} s: {log.read_text()[-3000:]}")
