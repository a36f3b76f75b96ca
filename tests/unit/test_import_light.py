"""``import cloudderm`` must stay light: no cloud SDK, no torch, no transformers."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "boto3", "botocore", "azure", "google", "onnxruntime", "matplotlib")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


def _added_by(code: str) -> set[str]:
    """Top-level packages the code loads beyond a bare interpreter (site .pth files pre-load some)."""
    return _modules_after(code) - _modules_after("pass")


def test_import_cloudderm_loads_no_heavy_sdk() -> None:
    loaded = _added_by("import cloudderm")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_public_api_and_cli_parser_load_no_heavy_sdk() -> None:
    code = (
        "import cloudderm\n"
        "from cloudderm import load, load_config, Classifier, Prediction, LabelScore, prepare\n"
        "from cloudderm.cli import build_parser\nbuild_parser()\n"
        "import cloudderm.registry, cloudderm.config, cloudderm.factory\n"
    )
    loaded = _added_by(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
