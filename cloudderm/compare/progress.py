"""Progress of a comparison: one rich bar per provider (done, errors, rate, ETA), or nothing.

The runner only calls ``advance``; whether that draws bars is decided here, so tests and non-terminal
runs (CI logs, pipes) get a silent reporter and the runner's code path is the same.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["NullProgress", "ProviderProgress", "RichProgress", "make_progress"]


class ProviderProgress:
    """Counts per provider; thread-safe. Subclasses draw them."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def start(self, providers: Sequence[str], total: int) -> None:
        self.counts = {
            name: {"done": 0, "ok": 0, "error": 0, "skipped": 0, "resumed": 0} for name in providers
        }

    def advance(self, provider: str, status: str, n: int = 1) -> None:
        """Count ``n`` images finished for ``provider`` with ``status`` (ok/error/skipped/resumed)."""
        with self._lock:
            c = self.counts[provider]
            c["done"] += n
            c[status] += n
        self._draw(provider)

    def _draw(self, provider: str) -> None:
        pass

    def __enter__(self) -> ProviderProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        pass


class NullProgress(ProviderProgress):
    """Counts without drawing (tests, pipes, ``progress=False``)."""


class RichProgress(ProviderProgress):
    """A live rich display with one bar per provider."""

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:5.1f}/s" if speed else "   -/s", style="cyan")

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[red]{task.fields[errors]} err[/] [yellow]{task.fields[skipped]} skip[/] "
                "[dim]{task.fields[resumed]} resumed[/]"
            ),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def start(self, providers: Sequence[str], total: int) -> None:
        super().start(providers, total)
        for name in providers:
            self._tasks[name] = self._progress.add_task(name, total=total, errors=0, skipped=0, resumed=0)
        self._progress.start()

    def advance(self, provider: str, status: str, n: int = 1) -> None:
        super().advance(provider, status, n)
        c = self.counts[provider]
        task_id = self._tasks[provider]
        if status == "resumed":
            # Answered in an earlier run: not work done now, so it leaves the total instead of
            # inflating the rate and shortening the ETA.
            total = self._progress.tasks[task_id].total or 0
            self._progress.update(task_id, total=max(0, total - n), resumed=c["resumed"])
            return
        self._progress.update(task_id, advance=n, errors=c["error"], skipped=c["skipped"])

    def stop(self) -> None:
        self._progress.stop()


def make_progress(enabled: bool | None, console: Any = None) -> ProviderProgress:
    """Bars when ``enabled``; when None, bars only if the console is an interactive terminal."""
    if enabled is None:
        enabled = bool(console is not None and console.is_terminal)
    return RichProgress(console) if enabled else NullProgress()
