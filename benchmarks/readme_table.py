"""Write the README's benchmark table from ``benchmarks/results.json``, between its markers.

Run: ``python benchmarks/readme_table.py`` (``make bench`` runs it last). Every benchmark script records
its figures there (``_common.verdict(..., key=...)``) with the command, date and load average, so the
table is always what the scripts measured, never typed by hand; ``docs/benchmarks.md`` explains them.
A figure recorded from an older checkout (``CLOUDDERM_BENCH_CODE``: it names that ``code``) is shown
only through the ratio that compares against it.
"""

from __future__ import annotations

import sys
from typing import Any

from _common import ROOT, load_results

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
README = ROOT / "README.md"


def render(results: dict[str, Any]) -> str:
    rows = [
        "| figure | measured | goal | verdict | detail | command (date, load) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results.values():
        if "code" in r or "goal" not in r:  # a figure of an older checkout, or one without a goal
            continue
        unit = r.get("unit", "")
        measured = f"**{_shown(r)}{unit}**"
        goal = f"{r['sign'].replace('<=', '≤').replace('>=', '≥')} {r['goal']:g}{unit}"
        verdict = "met" if r["met"] else "missed"
        rows.append(
            f"| {r['label']} | {measured} | {goal} | {verdict} | {r.get('detail', '')} "
            f"| `{r['command']}` ({r['date']}, {r['load']}) |"
        )
    return "\n".join(rows)


def _shown(r: dict[str, Any]) -> str:
    """The value to 3 significant digits, or more where 3 would round a missed figure onto its goal."""
    value = r["value"]
    if value >= 100:
        return f"{value:,.0f}"
    for digits in range(3, 8):
        text = f"{value:.{digits}g}"
        shown = float(text)
        if (shown >= r["goal"] if r["sign"] == ">=" else shown <= r["goal"]) == r["met"]:
            return text
    return text


def main() -> int:
    text = README.read_text()
    if START not in text or END not in text:
        print(f"README.md lacks the markers {START} ... {END}", file=sys.stderr)
        return 2
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{render(load_results())}\n{END}{tail}")
    print(f"README.md: benchmark table rewritten from {len(load_results())} recorded figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
