"""Issue #12: a newcomer's bad inputs end in a clean message and the documented exit code, and a secret
planted in a URL never reaches an output. Each test names the item it guards.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from cloudderm.cli import main
from cloudderm.compare.outdir import LOCK_NAME, OutputFolder
from tests.conftest import make_jpeg

FAKE = "cloudderm.testing.fakes:FakeClassifier"
CANARY = "CANARY0SECRET0b7e1"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.jpg").write_bytes(make_jpeg((40 * i, 90, 160), (16, 12)))
    return folder


@pytest.fixture
def logged_config(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    config = tmp_path / "c.yaml"
    config.write_text(f'providers:\n  alpha: {{adapter: "{FAKE}", call_log: "{log}"}}\n')
    return config, log


def _compare(dataset: Path, config: Path, out: Path, *extra: str) -> int:
    return main(["compare", str(dataset), "-c", str(config), "-o", str(out), "--no-progress", *extra])


@pytest.mark.parametrize("case", ["existing-file", "inside-a-file", "read-only"])
def test_unusable_output_folder_is_exit_2_before_any_call(
    case: str, dataset: Path, logged_config, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Item 3: ``-o`` that is a file, below a file, or read-only: exit 2, nothing loaded or sent."""
    config, log = logged_config
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    out = {"existing-file": blocker, "inside-a-file": blocker / "sub", "read-only": tmp_path / "ro"}[case]
    if case == "read-only":  # root ignores mode bits, so the refusal the OS would give is simulated
        import tempfile

        def refuse(*args, **kwargs):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert _compare(dataset, config, out) == 2
    err = capsys.readouterr().err
    assert str(out) in err.replace("\n", "") and "-o" in err and "Traceback" not in err
    assert not log.exists()


def test_missing_baseline_is_exit_2_before_any_call(dataset: Path, logged_config, tmp_path, capsys) -> None:
    """Item 8: ``--baseline`` naming a folder that does not exist fails before the run."""
    config, log = logged_config
    assert _compare(dataset, config, tmp_path / "out", "--baseline", str(tmp_path / "nope")) == 2
    assert "--baseline" in capsys.readouterr().err and not log.exists()


def test_busy_output_folder_is_exit_2_naming_the_pid(dataset: Path, logged_config, tmp_path, capsys):
    """Item 12: the output folder is locked; a second compare exits 2 and names the running PID."""
    config, log = logged_config
    out = tmp_path / "out"
    with OutputFolder(out):  # stands for a first run holding the folder
        assert (out / LOCK_NAME).read_text() == str(os.getpid())
        assert _compare(dataset, config, out) == 2
        assert f"PID {os.getpid()}" in capsys.readouterr().err and not log.exists()
    assert _compare(dataset, config, out) == 0  # released: the folder is usable again


def test_secret_in_a_url_never_reaches_an_output(dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Item 4: a key in ``scoring_uri`` is scrubbed from classify --json, jsonl, sqlite and reports."""
    monkeypatch.setenv("CANARY_KEY", CANARY)
    config = tmp_path / "az.yaml"
    config.write_text(
        "providers:\n  az:\n    adapter: azureml\n    api_key: k\n    max_retries: 0\n"
        '    scoring_uri: "http://user:pw@127.0.0.1:9/score?code=${CANARY_KEY}&v=1"\n'
    )
    assert main(["classify", str(dataset / "img0.jpg"), "-c", str(config), "--json"]) == 1
    printed = capsys.readouterr()
    assert "code=<redacted>" in printed.out and CANARY not in printed.out + printed.err
    out = tmp_path / "out"
    assert _compare(dataset, config, out) == 1
    printed = capsys.readouterr()
    assert CANARY not in printed.out + printed.err
    for path in out.iterdir():
        assert CANARY.encode() not in path.read_bytes(), f"{path.name} holds the secret"
    with sqlite3.connect(out / "results.sqlite") as db:
        dumped = "\n".join(db.iterdump())
    assert CANARY not in dumped and "pw@" not in dumped
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows and all("code=<redacted>" in row["error"] for row in rows)


def test_azureml_keeps_secrets_only_as_secretstr() -> None:
    """Item 4: ``vars(clf)`` never shows a raw key."""
    from cloudderm.adapters.azureml import AzureMLClassifier

    clf = AzureMLClassifier(
        "az",
        AzureMLClassifier.Settings(adapter="azureml", scoring_uri="http://127.0.0.1:9/score", api_key=CANARY),
    )
    assert CANARY not in repr(vars(clf))


def test_one_cost_figure_per_meaning_and_cost_command_agrees(dataset: Path, tmp_path: Path, capsys) -> None:
    """Item 5: measured per call vs projected at your volume, labelled; ``cloudderm cost`` agrees."""
    config = tmp_path / "priced.yaml"
    config.write_text(
        f'providers:\n  ep: {{adapter: "{FAKE}", pricing: {{hourly_usd: 1.375}}}}\n'  # billed per hour
    )
    out = tmp_path / "out"
    assert _compare(dataset, config, out) == 0
    summary = json.loads((out / "summary.json").read_text())
    cost = summary["providers"]["ep"]["cost_usd"]
    assert set(cost["projected"]) == {"per_1k", "monthly", "volume", "basis"}
    assert cost["projected"]["per_1k"] == pytest.approx(100.375) and cost["projected"]["volume"] == 10_000
    assert "1 × machine" in cost["projected"]["basis"]
    assert "per_1k_usd" not in summary["cost"]["ep"], "the projection has one owner: cost_usd.projected"
    capsys.readouterr()
    assert main(["cost", "-c", str(config), "--json"]) == 0  # default volume: the one compare assumed
    (estimate,) = json.loads(capsys.readouterr().out)
    assert estimate["per_1k_usd"] == pytest.approx(cost["projected"]["per_1k"])
    assert estimate["monthly_usd"] == pytest.approx(cost["projected"]["monthly"])
    report = (out / "report.md").read_text()
    assert "$/1k measured" in report and "$/1k projected" in report and "$100.38" in report


LABELS = "image,label,site\nimg0.jpg,nv,Épaule\nimg1.jpg,mel,back\nimg2.jpg,bkl,back\n"


@pytest.mark.parametrize(
    ("encoding", "readable"),
    [("utf-8-sig", True), ("utf-16", True), ("latin-1", False), ("binary", False)],
)
@pytest.mark.parametrize("command", ["compare", "dataset sample"])
def test_labels_csv_encodings(encoding: str, readable: bool, command: str, dataset: Path, logged_config,
                              tmp_path: Path, capsys) -> None:  # fmt: skip
    """Item 2: UTF-8 with BOM and UTF-16 with BOM are read; anything else is exit 2 with the fix."""
    config, log = logged_config
    labels = tmp_path / "labels.csv"
    data = bytes(range(256)) * 4 if encoding == "binary" else LABELS.encode(encoding)
    labels.write_bytes(data)
    if command == "compare":
        argv = ["compare", str(dataset), "-c", str(config), "-o", str(tmp_path / "o"), "--no-progress"]
    else:
        argv = ["dataset", "sample", str(dataset), "--per-stratum", "1", "-o", str(tmp_path / "s.csv")]
    rc = main([*argv, "--labels", str(labels)])
    err = capsys.readouterr().err
    if readable:
        assert rc == 0, err
    else:
        assert rc == 2 and "not UTF-8: re-save as UTF-8 (CSV UTF-8 in Excel)" in err and not log.exists()
        assert "Traceback" not in err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_emulate_port_out_of_range_is_exit_2(port: str, capsys) -> None:
    """Item 13: a bad ``--port`` is a usage error."""
    with pytest.raises(SystemExit) as info:
        main(["emulate", "--port", port])
    assert info.value.code == 2 and "port" in capsys.readouterr().err


def test_emulate_port_in_use_is_exit_2(capsys) -> None:
    """Item 13: a port another process holds is exit 2 naming it, never an OSError traceback."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["emulate", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err


def test_first_error_of_each_kind_is_in_every_report(dataset: Path, tmp_path: Path, capsys) -> None:
    """Item 7: the reason for a failure (the 401 and its hint) is in the terminal, Markdown and HTML."""
    config = tmp_path / "az.yaml"
    config.write_text(
        "providers:\n  az:\n    adapter: azureml\n    api_key: k\n    max_retries: 0\n"
        '    scoring_uri: "http://127.0.0.1:9/score"\n'
    )
    out = tmp_path / "out"
    assert main(["compare", str(dataset), "-c", str(config), "-o", str(out), "--no-progress"]) == 1
    terminal = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    (kind, first), *_ = summary["providers"]["az"]["first_errors"].items()
    assert "could not send the request" in first
    for text in (
        terminal.replace("\n", " "),
        (out / "report.md").read_text(),
        (out / "report.html").read_text(),
    ):
        assert f"first {kind}:" in text and "could not send the request" in text


def test_resume_says_how_many_answers_it_reused(dataset: Path, logged_config, tmp_path, capsys) -> None:
    """Item 18: a resumed run prints how many stored answers it reused."""
    config, _ = logged_config
    out = tmp_path / "out"
    assert _compare(dataset, config, out) == 0
    assert "reused" not in capsys.readouterr().out
    assert _compare(dataset, config, out) == 0
    assert "resumed: 3 stored answer(s) reused, not sent again" in capsys.readouterr().out


def test_no_progress_silences_library_bars(dataset: Path, logged_config, tmp_path, monkeypatch) -> None:
    """Item 18: transformers' "Loading weights" bars obey --no-progress."""
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    config, _ = logged_config
    assert _compare(dataset, config, tmp_path / "out") == 0
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    if "transformers" in __import__("sys").modules:
        from transformers.utils import logging as hf_logging

        assert not hf_logging.is_progress_bar_enabled()
        hf_logging.enable_progress_bar()


def test_baseline_over_other_images_says_so_at_the_top(dataset: Path, logged_config, tmp_path, capsys):
    """Item 18: a diff against a baseline run on a different image set says so before any number."""
    config, _ = logged_config
    assert _compare(dataset, config, tmp_path / "old") == 0
    (dataset / "extra.jpg").write_bytes(make_jpeg((1, 2, 3), (16, 12)))
    capsys.readouterr()
    assert _compare(dataset, config, tmp_path / "new", "--baseline", str(tmp_path / "old")) == 0
    terminal = capsys.readouterr().out
    note = "different image sets: 1 image(s) only in this run, 0 only in the baseline, 3 in both"
    assert note in terminal.replace("\n", " ") or note in terminal
    for report in ("report.md", "report.html"):
        assert note in (tmp_path / "new" / report).read_text()


def test_vertex_without_google_credentials_is_exit_2_in_compare_and_classify(
    dataset: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """Item 1: the error raised at warm-up goes through the adapter's mapping: a clean message, exit 2."""
    pytest.importorskip("google.cloud.aiplatform_v1")
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(**kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    config = tmp_path / "vertex.yaml"
    config.write_text(
        "providers:\n  vx: {adapter: vertex, project: p, location: europe-west2, endpoint_id: '123'}\n"
    )
    assert _compare(dataset, config, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "no Google credentials" in err and "gcloud auth application-default login" in err
    assert "Traceback" not in err
    assert main(["classify", str(dataset / "img0.jpg"), "-c", str(config)]) == 2
    assert "no Google credentials" in capsys.readouterr().err
