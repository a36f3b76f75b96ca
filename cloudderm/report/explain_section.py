"""The reports' "Where the models look" section: one overlay per provider in a row for each image that
``compare --explain N`` explained, with the lesion-focus, deletion and sanity figures beneath.

It reads ``summary["explain"]`` (written by ``cloudderm.explain.compare_hook``) and nothing else; a run
without ``--explain`` has no such key and gets no section. HTML overlays are inlined as small
metadata-free JPEG data URIs (the report stays one self-contained file); Markdown links the PNGs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["explain_html", "explain_markdown"]

OVERLAY_SIDE = 260
_INTRO = (
    "Saliency maps show what each model's answer responded to, never why a lesion is what it is; they are "
    "research output, not a diagnosis. Lesion focus: share of the map's mass inside an Otsu lesion mask "
    "(border = outer 10% band). Deletion: the target score's drop when the 20% most salient pixels are "
    "masked, against 20% random pixels. Sanity ρ: Spearman correlation with the map of a copy whose head "
    "and last block are randomised (Adebayo et al. 2018; Grad-CAM must stay under 0.5)."
)
_CSS = (
    "<style>.xrow{display:flex;flex-wrap:wrap;gap:.8rem;margin:.4rem 0 1.2rem}"
    ".xcell{border:1px solid #d8dde6;border-radius:6px;padding:.4rem;width:270px;font-size:.8rem}"
    ".xcell.flagged{border:3px solid #c0262d}.xcell img{width:100%;height:auto;display:block}"
    ".xcell dl{display:grid;grid-template-columns:auto 1fr;gap:0 .4rem;margin:.3rem 0 0}"
    ".xcell dt{color:#5a6272}.xcell dd{margin:0}</style>"
)


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _figures(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs for one map: target, focus, deletion, sanity, calls."""
    target = entry.get("target") or {}
    rows = [("target", f"{target.get('label')} ({target.get('score', 0):.2f})")]
    focus = entry.get("focus") or {}
    if focus:
        rows.append(
            (
                "lesion focus",
                f"{focus['lesion_share']:.0%} (border {focus['border_share']:.0%}, "
                f"elsewhere {focus['background_share']:.0%})",
            )
        )
    deletion = entry.get("deletion") or {}
    if deletion:
        rows.append(("deletion", f"top {deletion['drop_top']:+.3f} vs random {deletion['drop_random']:+.3f}"))
    sanity = entry.get("sanity") or {}
    if "spearman" in sanity:
        rows.append(("sanity ρ", f"{sanity['spearman']:.2f}"))
    rows.append(("calls", f"{entry.get('calls', 0)} ({entry.get('cached_calls', 0)} cached)"))
    return rows


def _overlay_uri(folder: Path, name: str | None) -> str | None:
    if not name:
        return None
    path = folder / name
    if not path.is_file():
        return None
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB")
        small.thumbnail((OVERLAY_SIDE, OVERLAY_SIDE))
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def explain_html(summary: Mapping[str, Any]) -> str:
    """The HTML section, or "" when the run explained nothing."""
    section = summary.get("explain")
    if not section:
        return ""
    folder = Path(section.get("dir") or ".")
    parts = [_CSS, "<h2>Where the models look (explanations)</h2>", f'<p class="note">{_e(_INTRO)}</p>']
    if section.get("note"):
        parts.append(f'<p class="note">{_e(section["note"])}</p>')
    for image in section.get("images") or []:
        parts.append(f'<h3>{_e(image["key"])}</h3><div class="xrow">')
        for entry in image.get("explanations") or []:
            flags = entry.get("flags") or []
            uri = _overlay_uri(folder, (entry.get("files") or {}).get("overlay"))
            img = f'<img src="{_e(uri)}" alt="saliency overlay">' if uri else "<p>(overlay missing)</p>"
            rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in _figures(entry))
            flag_html = "".join(f'<p class="flag">⚠ {_e(f)}</p>' for f in flags)
            css = "xcell flagged" if flags else "xcell"
            parts.append(
                f'<div class="{css}"><b>{_e(entry["provider"])}</b> · {_e(entry["method"])}{img}'
                f"<dl>{rows}</dl>{flag_html}</div>"
            )
        for error in image.get("errors") or []:
            parts.append(
                f'<div class="xcell flagged"><b>{_e(error["provider"])}</b>: {_e(error["error"])}</div>'
            )
        parts.append("</div>")
    return "\n".join(parts)


def explain_markdown(summary: Mapping[str, Any]) -> list[str]:
    """The Markdown section's lines (links to the PNG overlays), or [] when the run explained nothing."""
    from cloudderm.report.common import md_escape

    section = summary.get("explain")
    if not section:
        return []
    rel = section.get("relative_dir") or "explain"
    lines = ["## Where the models look (explanations)", "", md_escape(_INTRO), ""]
    if section.get("note"):
        lines += [md_escape(section["note"]), ""]
    for image in section.get("images") or []:
        lines += [
            f"### {md_escape(image['key'])}",
            "",
            "| provider | method | overlay | figures | flags |",
            "|---|---|---|---|---|",
        ]
        for entry in image.get("explanations") or []:
            overlay = (entry.get("files") or {}).get("overlay")
            link = f"[{md_escape(overlay)}]({rel}/{overlay})" if overlay else "-"
            figures = "; ".join(f"{k}: {v}" for k, v in _figures(entry))
            flags = "; ".join(entry.get("flags") or []) or "-"
            lines.append(
                f"| {md_escape(entry['provider'])} | {entry['method']} | {link} | {md_escape(figures)} | "
                f"{md_escape(flags)} |"
            )
        for error in image.get("errors") or []:
            lines.append(
                f"| {md_escape(error['provider'])} | - | - | error: {md_escape(error['error'])} | - |"
            )
        lines.append("")
    return lines
