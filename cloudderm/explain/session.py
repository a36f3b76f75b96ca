"""One explain run, as the CLI and ``compare --explain`` drive it: announce, check budget, map, write.

The order is the point: every call is counted and printed (with the catalog's estimated cost) before the
first is made, the budget refusal happens before any byte is sent, and each finished map is written at once
so an interrupted run keeps what it made (and its paid answers stay in the results store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudderm.errors import CloudDermError, ConfigError, MissingDependencyError
from cloudderm.explain.output import write_maps, write_run

if TYPE_CHECKING:
    from rich.console import Console

    from cloudderm.classifier import Classifier
    from cloudderm.explain.api import Budget, Explainer
    from cloudderm.explain.types import Explanation
    from cloudderm.images import PreparedImage

__all__ = ["ExplainRun", "focus_table", "run_explanations"]


@dataclass
class ExplainRun:
    """What a run made: the explanations, the pairs that failed, and what was announced."""

    explanations: list[Explanation] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    announced_calls: int = 0
    json_path: Path | None = None


def run_explanations(
    explainer: Explainer,
    images: Sequence[tuple[str, PreparedImage]],
    classifiers: Sequence[Classifier],
    out: Path,
    *,
    max_calls: int | None,
    yes: bool,
    console: Console | None = None,
) -> ExplainRun:
    """Explain every image for every classifier into ``out``; raises CallBudgetExceeded before any call.

    A provider failure is recorded and the run goes on (exit 1). A usage or environment problem (an
    unknown target, a missing credential or SDK) is recorded too, and raised once ``explain.json`` is
    written (exit 2).
    """
    from rich.progress import Progress

    stems = _unique_stems([stem for stem, _ in images])
    stem_of = {image.sha256: stem for (_, image), stem in zip(images, stems)}
    budget: Budget = explainer.plan([(image, clf) for _, image in images for clf in classifiers])
    if console is not None:
        for line in budget.lines():
            console.print(f"[bold]explain:[/] {line}")
    budget.check(max_calls, yes)
    run = ExplainRun(announced_calls=budget.calls)
    with Progress(console=console, disable=console is None, transient=True) as progress:
        task = progress.add_task("explaining", total=len(budget.pairs))
        usage_error: CloudDermError | None = None
        for pair in budget.pairs:
            try:
                exp = explainer.explain(pair)
            except CloudDermError as e:
                if isinstance(e, (ConfigError, MissingDependencyError)) and usage_error is None:
                    usage_error = e  # a bad target or a missing credential: exit 2 once the record is written
                run.errors.append(
                    {
                        "image": pair.image.source,
                        "provider": pair.clf.name,
                        "method": pair.method,
                        "error": str(e),
                    }
                )
            else:
                write_maps(exp, pair.image.to_pil(), out, stem_of[pair.image.sha256])
                run.explanations.append(exp)
            progress.advance(task)
    options = {
        "method": explainer.options.method,
        "target": explainer.options.target,
        "sanity": explainer.options.sanity,
        "deletion": explainer.options.deletion,
        "grid": explainer.options.grid,
        "max_calls": max_calls,
    }
    run.json_path = write_run(
        out, run.explanations, run.errors, announced_calls=budget.calls, options=options
    )
    if console is not None:
        console.print(focus_table(run.explanations))
        for error in run.errors:
            console.print(f"[red]{error['provider']} on {error['image']}: {error['error']}[/]")
        made = sum(e.calls for e in run.explanations)
        console.print(f"[dim]{made} provider calls made ({budget.calls} announced); wrote {run.json_path}[/]")
    if usage_error is not None:
        raise usage_error
    return run


def _unique_stems(stems: list[str]) -> list[str]:
    """Image stems, with ``-2``, ``-3``... added where two images share one (so no file is overwritten)."""
    seen: dict[str, int] = {}
    out = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def focus_table(explanations: Sequence[Explanation]):  # type: ignore[no-untyped-def]
    """The terminal's view: per map, the target, lesion focus, deletion and sanity figures and flags."""
    from rich.table import Table

    table = Table(title="explanations (research output: not a diagnosis)")
    for column in (
        "image",
        "provider",
        "method",
        "target",
        "lesion focus",
        "deletion top/random",
        "sanity ρ",
        "flags",
    ):
        table.add_column(column, overflow="fold")
    for exp in explanations:
        focus = exp.focus or {}
        deletion = exp.deletion or {}
        sanity = exp.sanity or {}
        table.add_row(
            Path(exp.image).name,
            exp.provider,
            exp.method,
            f"{exp.target_label} {exp.target_score:.2f}",
            f"{focus.get('lesion_share', 0):.0%} (border {focus.get('border_share', 0):.0%})"
            if focus
            else "-",
            f"{deletion['drop_top']:+.3f} / {deletion['drop_random']:+.3f}" if deletion else "-",
            f"{sanity['spearman']:.2f}" if "spearman" in sanity else "-",
            "[yellow]" + ", ".join(flag.split(":", 1)[0] for flag in exp.flags) + "[/]" if exp.flags else "",
        )
    return table
