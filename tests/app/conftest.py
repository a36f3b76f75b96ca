"""Fixtures of the app tests: one running ``cloudderm app`` (module scope) and a real Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.app_support import REPO, RunningApp, start_app, write_config, write_models, write_run

ARTEFACTS = REPO / "out" / "app-screenshots"  # /out/ is ignored by git; CI keeps it as an artefact


@pytest.fixture(scope="session")
def app_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("gradio", reason='the app tests need the [app] extra: pip install "cloudderm[app]"')
    folder = tmp_path_factory.mktemp("app")
    mobilenet, vit = write_models(folder)
    return {"config": write_config(folder, mobilenet, vit), "run": write_run(folder), "folder": folder}


@pytest.fixture(scope="session")
def running_app(app_files: dict[str, Path]) -> Iterator[RunningApp]:
    app = start_app(app_files["config"], app_files["run"], app_files["folder"] / "app.log")
    yield app
    app.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """The system Chromium (Debian's ``chromium`` package) driven by pip Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip(
            "BROWSER TESTS SKIPPED: no system Chromium. Install it as root: "
            "apt-get update && apt-get install -y chromium (.ci/run does this)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, running_app: RunningApp) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(running_app.url)
    yield page
    context.close()


def screenshot(page: object, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
