"""pytest plugin (entry point ``pytest11: cloudderm``): per-test cassettes and the record switch.

Mark a test and its HTTP traffic is replayed from ``tests/cassettes/<module>/<name>.yaml`` (the name
defaults to the test's; a parametrized test adds ``-<parameter id>``)::

    @pytest.mark.cloudderm_cassette("automl_batch")
    def test_vertex(cloudderm_cassette):
        ...

``--cloudderm-record`` picks the mode for every marked test: ``none`` (default: replay only, network
blocked, a missing cassette is an error), ``once`` (record the cassettes that do not exist yet, replay the
rest) or ``all`` (re-record everything against the real endpoints). The ``cloudderm_cassette`` fixture
gives the test the active :class:`~cloudderm.testing.cassettes.Recording` (``.recording`` is True while
recording, so a test can start a local server or read real credentials only then); it is None for an
unmarked test. A test that fails while recording leaves the old cassette untouched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
RECORD_OPTIONS = {"none": "replay", "once": "auto", "all": "record"}
MARKER = "cloudderm_cassette"
DEFAULT_DIR = "tests/cassettes"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudderm", "cloudderm recorded HTTP fixtures")
    group.addoption(
        "--cloudderm-record",
        action="store",
        dest="cloudderm_record",
        default="none",
        choices=sorted(RECORD_OPTIONS),
        help="cassettes of @pytest.mark.cloudderm_cassette tests: none = replay only, network blocked "
        "(default); once = record missing cassettes; all = re-record every cassette",
    )
    parser.addini(
        "cloudderm_cassette_dir",
        help=f"directory of cassettes, relative to the rootdir (default {DEFAULT_DIR})",
        default=DEFAULT_DIR,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name=None): replay this test's HTTP traffic from <cassette dir>/<module>/<name>.yaml "
        "(record with --cloudderm-record=once|all)",
    )


def cassette_path(config: pytest.Config, item: pytest.Item, name: str) -> Path:
    """Where a marked test's cassette lives: ``<rootdir>/<cassette dir>/<test module>/<name>.yaml``.

    A parametrized test gets one cassette per parameter set (``<name>-<id>.yaml``), so recording one case
    never overwrites another's.
    """
    callspec = getattr(item, "callspec", None)
    if callspec is not None:
        name = f"{name}-{callspec.id}"
    root = Path(str(config.rootpath)) / str(config.getini("cloudderm_cassette_dir"))
    return root / Path(str(item.path)).stem / f"{_SAFE.sub('_', name)}.yaml"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def cloudderm_record_mode(request: pytest.FixtureRequest) -> str:
    """The ``--cloudderm-record`` value: none, once or all."""
    return str(request.config.getoption("cloudderm_record"))


@pytest.fixture(autouse=True)
def cloudderm_cassette(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The active cassette of a ``@pytest.mark.cloudderm_cassette`` test (None for unmarked tests)."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        yield None
        return
    from cloudderm.testing.cassettes import cassette

    name = marker.args[0] if marker.args else marker.kwargs.get("name")
    name = name or getattr(request.node, "originalname", request.node.name)
    path = cassette_path(request.config, request.node, str(name))
    mode = RECORD_OPTIONS[str(request.config.getoption("cloudderm_record"))]
    with cassette(path, mode=mode) as recording:  # type: ignore[arg-type]
        yield recording
        if request.node.stash.get(_FAILED, False):
            recording.discard()
