"""``cloudderm app``: a small web app for stakeholders (Gradio, in the ``[app]`` extra).

Two tabs: *Classify* sends one image to the chosen providers and shows one card per provider (warnings
before numbers, governance card, "not a diagnosis" banner); *Results* browses a finished or running
``compare`` output folder read-only. Gradio is imported only when the app is built, so ``import cloudderm``
and ``cloudderm --help`` never load it.

Modules: ``providers`` (which providers can be used and why not), ``uploads`` (caps, metadata stripping,
the app's temp folder), ``render`` (cards as escaped HTML), ``results`` (reading an output folder without
its lock), ``ui`` (the Gradio Blocks), ``server`` (binding, authentication, launch).
"""

from __future__ import annotations

__all__ = ["build_app", "launch"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name == "build_app":
        from cloudderm.app.ui import build_app

        return build_app
    if name == "launch":
        from cloudderm.app.server import launch

        return launch
    raise AttributeError(name)
