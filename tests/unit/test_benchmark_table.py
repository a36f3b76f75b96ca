"""The README's benchmark table is what the scripts recorded (benchmarks/results.json), never hand-edited."""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def readme_table():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        yield importlib.import_module("readme_table")
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))


def test_readme_table_matches_the_recorded_results(readme_table) -> None:  # type: ignore[no-untyped-def]
    results = json.loads((REPO_ROOT / "benchmarks" / "results.json").read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    between = readme.split(readme_table.START, 1)[1].split(readme_table.END, 1)[0]
    assert between.strip() == readme_table.render(results).strip(), "run: python benchmarks/readme_table.py"


def test_render_shows_goals_and_hides_figures_of_older_code(readme_table) -> None:  # type: ignore[no-untyped-def]
    common = {"unit": "x", "sign": "<=", "command": "python benchmarks/b.py", "date": "d", "load": "l"}
    results = {
        "a": {**common, "label": "fast path", "value": 0.48, "goal": 0.5, "met": True, "detail": "93 ms"},
        "a_before": {**common, "label": "fast path", "value": 3.9, "goal": 0.5, "met": False, "code": "old"},
    }
    table = readme_table.render(results)
    assert "| fast path | **0.48x** | ≤ 0.5x | met | 93 ms |" in table
    assert "3.9" not in table


def test_render_never_rounds_a_missed_figure_onto_its_goal(readme_table) -> None:  # type: ignore[no-untyped-def]
    common = {"unit": "x", "sign": "<=", "command": "python benchmarks/b.py", "date": "d", "load": "l"}
    results = {
        "missed": {**common, "label": "on the line", "value": 1.1534, "goal": 1.15, "met": False},
        "met": {**common, "label": "under", "value": 1.0471, "goal": 1.15, "met": True},
    }
    table = readme_table.render(results)
    assert "| on the line | **1.153x** | ≤ 1.15x | missed |" in table
    assert "| under | **1.05x** | ≤ 1.15x | met |" in table
