"""docs/recording.md works as written: its config and test file, its record and replay commands.

The documented ``cloudderm.yaml`` is used with the endpoints pointed at loopback stand-ins (moto for
SageMaker, local servers for Azure ML and Vertex AI); the documented test file runs unchanged in a separate
pytest process, first with ``--cloudderm-record=once``, then, servers stopped, with the documented dummy
credentials and no flag.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.e2e.emulator_support import hash_emulator
from tests.e2e.loopback import moto_server, queue_sagemaker_results
from tests.unit.test_pytest_plugin import plugin_args

pytest.importorskip("moto")
pytest.importorskip("google.cloud.aiplatform_v1")
pytest.importorskip("azure.core")

DOC = REPO_ROOT / "docs" / "recording.md"
AZURE_KEY = "AzCanaryKeyDocs0123456789abcdefg"
JUMPSTART = {"probabilities": [0.2, 0.8], "labels": ["nv", "mel"], "predicted_label": "mel"}


def block(text: str, language: str, first_line: str) -> str:
    """The fenced code block of ``language`` whose first line starts with ``first_line``."""
    pattern = re.compile(rf"```{language}\n({re.escape(first_line)}.*?)```", re.DOTALL)
    match = pattern.search(text)
    assert match, f"{DOC} has no {language} block starting with {first_line!r}"
    return match.group(1)


def documented_env(text: str) -> dict[str, str]:
    """The VAR=value assignments of the documented replay command."""
    command = block(text, "bash", "AWS_ACCESS_KEY_ID=replay ")
    return dict(re.findall(r"([A-Z_]+)=(\S+)", command))


def run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AZURE", "GOOGLE_"))}
    full_env.update(env, PYTHONPATH=str(REPO_ROOT), AWS_EC2_METADATA_DISABLED="true")
    full_env["AWS_CONFIG_FILE"] = full_env["AWS_SHARED_CREDENTIALS_FILE"] = str(project / "no-aws-files")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), *args]
    return subprocess.run(command, cwd=project, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_documented_record_and_replay_commands(tmp_path: Path) -> None:
    text = DOC.read_text()
    config = yaml.safe_load(
        block(text, "yaml", "# cloudderm.yaml: the same file you use for real comparisons")
    )
    test_file = block(text, "python", "# tests/test_my_endpoints.py")
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_my_endpoints.py").write_text(test_file)
    shutil.copytree(REPO_ROOT / "examples" / "images", project / "examples" / "images")
    providers = config["providers"]

    with (
        moto_server() as aws,
        hash_emulator("my-azure", "azureml", azure_key=AZURE_KEY, azure_deployment="blue") as azure,
        hash_emulator(providers["my-vertex"]["endpoint_id"], "vertex") as vertex,
    ):
        queue_sagemaker_results(aws, [JUMPSTART, JUMPSTART])
        providers["my-sagemaker"]["endpoint_url"] = aws
        providers["my-azure"]["scoring_uri"] = f"{azure.base_url}/score"
        providers["my-vertex"]["endpoint_url"] = vertex.base_url
        (project / "cloudderm.yaml").write_text(yaml.safe_dump(config))
        secrets = {
            "AWS_ACCESS_KEY_ID": "AKIAZ7CANARY0000003Q",
            "AWS_SECRET_ACCESS_KEY": "cAnArY/docs+secret0123456789abcdefGHIJKL",
            "AZUREML_API_KEY": AZURE_KEY,
            "CLOUDDERM_ANONYMOUS": "true",  # no Google ADC offline; a real recording would use it
        }
        recorded = run(project, secrets, "tests/test_my_endpoints.py", "--cloudderm-record=once")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    cassettes = project / "tests" / "cassettes" / "test_my_endpoints"
    names = sorted(p.name for p in cassettes.iterdir())
    assert names == ["endpoint-my-azure.yaml", "endpoint-my-sagemaker.yaml", "endpoint-my-vertex.yaml"]
    stored = "".join(p.read_text() for p in cassettes.iterdir())
    assert all(value not in stored for value in secrets.values() if value != "true")

    scan = subprocess.run(
        [sys.executable, "-m", "cloudderm.testing.scan", "tests/cassettes"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
    )
    assert scan.returncode == 0, scan.stdout

    replay_env = documented_env(text)
    assert replay_env["CLOUDDERM_ANONYMOUS"] == "true"
    replayed = run(project, replay_env, "tests/test_my_endpoints.py")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "3 passed" in replayed.stdout
