"""The one place that imports Gradio, with the install hint when it is missing."""

from __future__ import annotations

from typing import Any

from cloudderm.errors import MissingDependencyError


def import_gradio() -> Any:
    """``gradio``, or a MissingDependencyError that says which extra installs it."""
    try:
        import gradio
    except ImportError as e:
        raise MissingDependencyError('The web app needs Gradio: pip install "cloudderm[app]"') from e
    return gradio
