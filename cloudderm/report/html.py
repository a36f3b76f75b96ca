"""report.html: one self-contained file — inline CSS, plots and thumbnails as data URIs, no scripts.

Why self-contained: the report is mailed around and opened offline; it must not fetch anything (no
tracking, no broken links later). Every piece of text from data (provider names, labels, metadata, card
facts) goes through :func:`html.escape`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path
from typing import Any

from cloudderm.report import plots
from cloudderm.report import tables as t
from cloudderm.report.common import (
    DISCLAIMER,
    NA,
    cards_by_provider,
    fact_text,
    flags,
    fmt_count,
    provider_names,
)
from cloudderm.report.details import Details
from cloudderm.report.explain_section import explain_html
from cloudderm.report.thumbs import thumbnail_uri

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1360px;
 color:#1d2330;padding:0 1rem;line-height:1.4}
h1{margin-bottom:.2rem} h2{margin-top:2.2rem;border-bottom:1px solid #d8dde6;padding-bottom:.2rem}
.disclaimer{background:#fde8e8;border:3px solid #c0262d;color:#6b0f14;padding:1rem 1.2rem;font-size:1.1rem;
 border-radius:6px;margin:1rem 0}
.disclaimer strong{font-size:1.25rem;display:block;margin-bottom:.3rem}
.flaglist{background:#fff4e5;border-left:6px solid #c0262d;padding:.6rem 1rem}
.table-scroll{overflow-x:auto;max-width:100%;margin:.6rem 0}
table{border-collapse:collapse;margin:0;font-size:.88rem}
td.num,th.num{text-align:right;white-space:nowrap}
th,td{border:1px solid #d8dde6;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f2f4f8} tr.flagged td{background:#fff0f0}
tr.flagged td:first-child{border-left:5px solid #c0262d}
.flag{color:#c0262d;font-weight:700}
.note{color:#5a6272;font-size:.85rem}
.panels{display:flex;flex-wrap:wrap;gap:1rem}
.panel{border:1px solid #d8dde6;border-radius:6px;padding:.8rem;flex:1 1 520px;display:flex;gap:1rem;
 min-width:0;flex-wrap:wrap}
.panel.flagged{border:3px solid #c0262d}
.panel .numbers,.panel .card{flex:1}
.panel dl{display:grid;grid-template-columns:auto 1fr;gap:.1rem .6rem;margin:0}
.panel dt{color:#5a6272} .panel dd{margin:0}
figure{display:inline-block;margin:.5rem 1rem .5rem 0} figcaption{font-size:.8rem;color:#5a6272}
img.thumb{width:64px;height:auto;border-radius:3px;display:block}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _table(table: t.TextTable, cell: Callable[[int, int, str], str] | None = None, level: int = 2) -> str:
    """A TextTable as escaped HTML; ``cell(row, col, text)`` may return trusted markup for a cell."""
    parts = [f"<h{level}>{_e(table.title)}</h{level}>"]
    if table.note:
        parts.append(f'<p class="note">{_e(table.note)}</p>')
    if table.headers and table.rows:
        # The wrapper scrolls a wide table inside the page, so the page itself never scrolls sideways.
        parts.append(
            '<div class="table-scroll"><table><thead><tr>'
            + "".join(f"<th>{_e(h)}</th>" for h in table.headers)
            + "</tr></thead>"
        )
        parts.append("<tbody>")
        for r, (cells, flagged) in enumerate(zip(table.rows, table.flagged)):
            css = ' class="flagged"' if flagged else ""
            tds = "".join(
                f"<td{_num_class(v)}>{cell(r, c, v) if cell else _e(v)}</td>" for c, v in enumerate(cells)
            )
            parts.append(f"<tr{css}>{tds}</tr>")
        parts.append("</tbody></table></div>")
    elif table.headers:
        parts.append('<p class="note">No rows.</p>')
    return "\n".join(parts)


_NUMBER = re.compile(r"^[$+\-−]?[\d,.]+(%|\s?ms|\s?s)?$")


def _num_class(text: str) -> str:
    """Right-align figures ("$1,003.75", "81.5%", "120 ms") so their digits line up."""
    return ' class="num"' if _NUMBER.match(str(text).strip()) else ""


def _figure(uri: str | None, caption: str) -> str:
    if not uri:
        return ""
    return f'<figure><img src="{_e(uri)}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _panels(summary: Mapping[str, Any]) -> str:
    """Each provider's key numbers beside its intended use, governance facts and warnings."""
    cards = cards_by_provider(summary)
    out = ['<h2>Providers: numbers beside intended use</h2><div class="panels">']
    for name in provider_names(summary):
        p = summary["providers"][name]
        found = flags(summary, name)
        numbers = t.summary_table({**summary, "providers": {name: p}})
        facts = "".join(
            f"<dt>{_e(h)}</dt><dd>{_e(v)}</dd>" for h, v in list(zip(numbers.headers, numbers.rows[0]))[1:]
        )
        card = cards.get(name) or {}
        model = card.get("model") or {}
        service = card.get("service") or {}
        gov = [
            ("intended use", fact_text(model.get("intended_use"))),
            ("prohibited uses", fact_text(model.get("prohibited_uses"))),
            ("out of scope", fact_text(model.get("out_of_scope_uses"))),
            ("label domain", model.get("label_domain") or "unknown"),
            ("licence", fact_text(model.get("license"))),
            ("training data", fact_text(model.get("training_data"))),
            ("known biases", fact_text(model.get("known_biases"))),
            ("service", fact_text(service.get("service"))),
            ("region", fact_text(service.get("region") or p.get("region"))),
            ("data leaves machine", fact_text(service.get("data_leaves_machine"))),
        ]
        gov_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in gov)
        warnings = [
            *(p.get("warnings") or []),
            *(f"on {c} answers: {w}" for w, c in (p.get("prediction_warnings") or {}).items()),
        ]
        flag_html = "".join(f'<p class="flag">⚠ {_e(f)}</p>' for f in found)
        warn_html = "".join(f"<li>{_e(w)}</li>" for w in warnings) or "<li>none</li>"
        css = "panel flagged" if found else "panel"
        out.append(
            f'<section class="{css}"><div class="numbers"><h3>{_e(name)}</h3>{flag_html}'
            f"<dl>{facts}</dl></div>"
            f'<div class="card"><h4>intended use and governance</h4><dl>{gov_html}</dl>'
            f"<h4>warnings</h4><ul>{warn_html}</ul></div></section>"
        )
    out.append("</div>")
    return "\n".join(out)


def _disagreements(summary: Mapping[str, Any], details: Details, images_root: Path | None) -> str:
    table = t.disagreement_table(summary, details)

    def cell(r: int, c: int, text: str) -> str:
        if c != 0:
            return _e(text)
        uri = thumbnail_uri(images_root, details.disagreements[r].key)
        img = f'<img class="thumb" src="{_e(uri)}" alt="thumbnail">' if uri else ""
        return f"{img}{_e(text)}"

    return _table(table, cell)


def render_html(summary: Mapping[str, Any], details: Details, *, images_root: Path | None) -> str:
    """The whole report.html text."""
    dataset = summary.get("dataset") or {}
    flagged = [(n, flags(summary, n)) for n in provider_names(summary)]
    flagged = [(n, f) for n, f in flagged if f]
    body = [
        '<div class="disclaimer" role="alert"><strong>NOT A DIAGNOSIS</strong>' + _e(DISCLAIMER) + "</div>",
        "<ul>"
        f"<li>dataset: {_e(dataset.get('path') or dataset.get('name') or NA)} — "
        f"{_e(fmt_count(dataset.get('n_images')))} images, "
        f"{_e(fmt_count(dataset.get('n_labelled')))} labelled</li>"
        f"<li>taxonomy: {_e((summary.get('taxonomy') or {}).get('name') or NA)}</li>"
        f"<li>prices as of: {_e(summary.get('pricing_as_of') or 'unknown (no dated catalog entry)')}</li>"
        "<li>metric definitions: docs/reports.md in the cloudderm repository</li></ul>",
    ]
    for notice in summary.get("notices") or []:  # run-wide notices, e.g. the demo's untrained models
        body.append(f'<div class="disclaimer" role="alert"><strong>{_e(notice)}</strong></div>')
    if flagged:
        items = "".join(f"<li><b>{_e(n)}</b>: {_e('; '.join(f))}</li>" for n, f in flagged)
        body.append(f'<div class="flaglist"><b>Governance flags</b><ul>{items}</ul></div>')
    body.append(_table(t.summary_table(summary)))
    body.append(_panels(summary))
    body.append(_plots(summary, details))
    body.append(_table(t.sensitivity_table(summary)))
    if summary.get("agreement"):
        body.append(_table(t.agreement_table(summary)))
    for table in t.subgroup_tables(summary):
        column = table.key or ""
        body.append(_table(table))
        if plots.available():
            body.append(_figure(plots.subgroup_gaps(summary, column), f"subgroup gaps by {column}"))
    for table in t.diff_tables(summary):
        body.append(_table(table))
    body.append(_disagreements(summary, details, images_root))
    body.append(explain_html(summary))  # only when the run was given --explain N
    body.append(_confusions(summary))
    for builder in (t.cost_table, t.governance_table, t.risk_table):
        table = builder(summary)
        if table is not None:
            body.append(_table(table))
    body.append('<div class="disclaimer"><strong>NOT A DIAGNOSIS</strong>' + _e(DISCLAIMER) + "</div>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>cloudderm comparison report</title>"
        f"<style>{_CSS}</style></head><body><h1>cloudderm comparison report</h1>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


def _plots(summary: Mapping[str, Any], details: Details) -> str:
    if not plots.available():
        return (
            '<h2>Plots</h2><p class="note">Plots need matplotlib: pip install "cloudderm[report]". '
            "The tables in this report carry the same numbers.</p>"
        )
    parts = ["<h2>Plots</h2>"]
    uri, left_out = plots.accuracy_vs_cost(summary)
    parts.append(_figure(uri, "balanced accuracy vs cost per 1,000 images"))
    if left_out:
        parts.append(f'<p class="note">Not on the accuracy-vs-cost plot: {_e(", ".join(left_out))}.</p>')
    parts.append(_figure(plots.latency(summary, details.latencies), "latency distribution per provider"))
    parts.append(_figure(plots.calibration(summary), "reliability diagram (top-label confidence)"))
    return "\n".join(parts)


def _confusions(summary: Mapping[str, Any]) -> str:
    tables = t.confusion_tables(summary)
    if not tables:
        return ""
    parts = ['<h2>Confusion matrices</h2><p class="note">Rows: true label; columns: predicted label.</p>']
    if plots.available():
        parts.append(
            _figure(plots.confusions(summary), "confusion matrices (shade: share of the true class)")
        )
        parts.append("<details><summary>confusion matrices as tables</summary>")
        parts += [_table(table, level=3) for table in tables]
        parts.append("</details>")
    else:
        parts += [_table(table, level=3) for table in tables]
    return "\n".join(parts)
