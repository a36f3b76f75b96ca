"""The pytest plugin, run as a user would: a separate pytest process on a small project in a temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

DEMO = textwrap.dedent(
    """
    import pytest
    import requests

    from tests.e2e.loopback import Loopback, json_reply


    def fetch(recording, path):
        if recording.recording:
            with Loopback(lambda seen: json_reply({"path": seen.path})) as server:
                return requests.get(server.url + path).json()
        return requests.get("http://127.0.0.1:9" + path).json()


    @pytest.mark.cloudderm_cassette("hello")
    def test_named(cloudderm_cassette, cloudderm_record_mode):
        assert fetch(cloudderm_cassette, "/hello") == {"path": "/hello"}
        print("MODE", cloudderm_record_mode, cloudderm_cassette.mode)


    @pytest.mark.cloudderm_cassette
    def test_default_name(cloudderm_cassette):
        assert fetch(cloudderm_cassette, "/default") == {"path": "/default"}


    @pytest.mark.parametrize("which", ["a", "b/c"])
    @pytest.mark.cloudderm_cassette("per_case")
    def test_parametrized(cloudderm_cassette, which):
        assert fetch(cloudderm_cassette, "/" + which) == {"path": "/" + which}


    def test_unmarked(cloudderm_cassette):
        assert cloudderm_cassette is None
    """
)

FAILING = textwrap.dedent(
    """
    import pytest
    import requests

    from tests.e2e.loopback import Loopback, json_reply


    @pytest.mark.cloudderm_cassette("flaky")
    def test_fails_after_recording(cloudderm_cassette):
        with Loopback(lambda seen: json_reply({"new": True})) as server:
            requests.get(server.url + "/new")
        assert False, "the test failed"
    """
)


def plugin_args() -> list[str]:
    """Load the plugin explicitly unless the installed package already registers it (pytest11)."""
    installed = any(ep.name == "cloudderm" for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "cloudderm.testing.pytest_plugin"]


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("PYTEST_ADDOPTS", None)
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *plugin_args(), *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    (tmp_path / "test_demo.py").write_text(DEMO)
    return tmp_path


def test_record_once_then_replay_offline(project: Path) -> None:
    missing = run_pytest(project, "test_demo.py")
    assert missing.returncode == 1, missing.stdout
    assert "CassetteNotFound" in missing.stdout and "--cloudderm-record=once" in missing.stdout

    recorded = run_pytest(project, "--cloudderm-record=once", "test_demo.py")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "MODE once record" in recorded.stdout
    cassettes = project / "tests" / "cassettes" / "test_demo"
    assert sorted(p.name for p in cassettes.iterdir()) == [
        "hello.yaml",
        "per_case-a.yaml",
        "per_case-b_c.yaml",
        "test_default_name.yaml",
    ]

    replayed = run_pytest(project, "test_demo.py")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "MODE none replay" in replayed.stdout and "5 passed" in replayed.stdout


def test_a_test_failing_while_recording_keeps_the_old_cassette(project: Path) -> None:
    (project / "test_fail.py").write_text(FAILING)
    cassette = project / "tests" / "cassettes" / "test_fail" / "flaky.yaml"
    cassette.parent.mkdir(parents=True)
    cassette.write_text("format: cloudderm-cassette/1\ninteractions: []\n")
    result = run_pytest(project, "--cloudderm-record=all", "test_fail.py")
    assert result.returncode == 1 and "the test failed" in result.stdout
    assert cassette.read_text() == "format: cloudderm-cassette/1\ninteractions: []\n"


def test_cassette_dir_is_configurable_and_option_is_documented(project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\ncloudderm_cassette_dir = fixtures/http\n")
    assert run_pytest(project, "--cloudderm-record=once", "test_demo.py").returncode == 0
    assert (project / "fixtures" / "http" / "test_demo" / "hello.yaml").is_file()
    helptext = run_pytest(project, "--help").stdout
    assert "--cloudderm-record" in helptext and "cloudderm_cassette_dir" in helptext


@pytest.mark.skipif(tomllib is None, reason="tomllib needs Python 3.11")
def test_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"cloudderm": "cloudderm.testing.pytest_plugin"}
