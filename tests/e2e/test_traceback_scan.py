"""Every CLI command over a corpus of bad inputs: a clean message and a documented exit code, never a Python
traceback (issue #12, "Done when"). The command list comes from the argparse tree, so a command added later
(``models``, ``explain``, ``app``...) is scanned without touching this file; each command's options are
found the same way and each gets the bad values that fit its kind (a path, a folder, a number, a choice).

Runs in-process (fast): ``main()`` is called with the bad argv and stdout/stderr are captured. A command
that accepts a value and starts serving (``emulate``) or working for long is interrupted by an alarm, as a
user's Ctrl-C would, which must also end cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudderm.cli import build_parser, main
from tests.conftest import make_jpeg

FAKE = "cloudderm.testing.fakes:FakeClassifier"
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3, 130}
ALARM_S = 1  # a command still serving after this was given a value it accepts: stop it (SIGTERM)
OUTPUT_DESTS = {"out", "output", "cache_dir"}  # folders/files the command writes
FOLDER_DESTS = {"dataset", "images", "baseline"}  # folders (or files) the command reads


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
    for action in subs:
        for name, sub in action.choices.items():
            yield from _commands(sub, (*path, name))


def _parser_for(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


COMMANDS = sorted(_commands(build_parser()))


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, str]:
    """Bad inputs of every kind, and a working config and image folder to reach deep into each command."""
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.jpg").write_bytes(make_jpeg((120, 60, 30), (16, 12)))
    config = tmp_path / "ok.yaml"
    config.write_text(f'providers:\n  alpha: {{adapter: "{FAKE}"}}\n')
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "latin1.csv").write_bytes("image,label,site\na.jpg,nv,Épaule\n".encode("latin-1"))
    (tmp_path / "broken.yaml").write_text("providers: [unclosed\n")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff truncated")
    (tmp_path / "emptydir").mkdir()
    (tmp_path / "afile").write_text("x")
    return {
        "good_images": str(good),
        "good_image": str(good / "a.jpg"),
        "good_config": str(config),
        "missing": str(tmp_path / "does-not-exist"),
        "empty_file": str(tmp_path / "empty.txt"),
        "binary": str(tmp_path / "binary.bin"),
        "latin1": str(tmp_path / "latin1.csv"),
        "broken_yaml": str(tmp_path / "broken.yaml"),
        "bad_image": str(tmp_path / "bad.jpg"),
        "empty_dir": str(tmp_path / "emptydir"),
        "a_file": str(tmp_path / "afile"),
        "inside_a_file": str(tmp_path / "afile" / "sub"),
    }


def _bad_values(action: argparse.Action, c: dict[str, str]) -> list[str]:
    if action.choices:
        return ["not-a-choice"]
    kind = getattr(action.type, "__name__", None)
    if kind is not None and kind != "str":  # int, float, positive_int, port_number...
        return ["-1", "abc", "1e999"]
    if action.dest in OUTPUT_DESTS:
        return [c["a_file"], c["inside_a_file"]]
    if action.dest in FOLDER_DESTS:
        return [c["missing"], c["empty_dir"], c["binary"], c["bad_image"], c["latin1"]]
    if action.dest in ("config", "labels"):
        return [c["missing"], c["empty_dir"], c["binary"], c["latin1"], c["broken_yaml"], c["empty_file"]]
    return ["${UNSET_CLOUDDERM_VAR}", "[/bold] a=b=c,,="]


def _base(parser: argparse.ArgumentParser, c: dict[str, str], skip: argparse.Action) -> list[str]:
    """Working values for every other required argument, and a working config, so the bad one is reached."""
    argv: list[str] = []
    for action in parser._actions:
        if action is skip or isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings and action.required:
            argv.append(c["good_image"] if action.dest == "images" else c["good_images"])
        elif action.option_strings and action.required:
            value = "1" if getattr(action.type, "__name__", "") in ("int", "positive_int") else None
            argv += [action.option_strings[0], value or str(Path(c["a_file"]).parent / "sample-out.csv")]
        elif action.dest == "config":
            argv += [action.option_strings[0], c["good_config"]]
    return argv


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    def terminate(*_: object) -> None:  # a server (emulate) handles SIGTERM itself and stops cleanly
        signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGALRM, terminate), signal.signal(signal.SIGTERM, interrupt)
    signal.alarm(ALARM_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse's usage errors
                code = e.code if isinstance(e.code, int) else 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    return int(code), out.getvalue() + err.getvalue()


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_traceback_on_bad_input(command: tuple[str, ...], corpus, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # default output folders land in the test's folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")
    parser = _parser_for(command)
    cases: list[list[str]] = [[*command, "--no-such-flag"]]
    if any(a.required for a in parser._actions):  # without them it is a usage error; else a valid run
        cases.append([*command])
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.nargs == 0:
            continue
        base = _base(parser, corpus, action)
        for value in _bad_values(action, corpus):
            if action.option_strings:
                cases.append([*command, *base, action.option_strings[0], value])
            else:
                cases.append([*command, value, *base])
    problems = []
    for argv in cases:
        code, output = _run(argv)
        if "Traceback (most recent call last)" in output or "internal error" in output:
            problems.append(f"{argv}: traceback\n{output[-1500:]}")
        elif code not in DOCUMENTED_EXIT_CODES:
            problems.append(f"{argv}: undocumented exit code {code}")
    assert not problems, "\n\n".join(problems)
