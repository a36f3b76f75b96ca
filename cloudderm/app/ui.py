"""The Gradio Blocks: a Classify tab and a Results tab under a persistent "not a diagnosis" banner.

Event handlers are plain functions of this module's ``AppState`` so the logic is testable without a
browser; the named API ``/classify`` (for ``gradio_client`` and scripts) returns
``{"predictions": [...], "errors": [{"provider", "kind", "message"}]}``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudderm.app._gradio import import_gradio
from cloudderm.app.overlay import explain_available, overlay_html
from cloudderm.app.providers import ClassifyOutcome, ProviderPool
from cloudderm.app.render import banner_html, error_card, prediction_card, unavailable_html
from cloudderm.app.results import TABLE_FILTERS, load_run
from cloudderm.app.uploads import LIMITS_TEXT, prepare_upload
from cloudderm.errors import CloudDermError, InvalidImageError
from cloudderm.images import PreparedImage

__all__ = ["AppState", "build_app"]

THUMBNAIL_SIDE = 96
MAX_THUMBNAILS = 48
REFRESH_S = 5.0


@dataclass
class AppState:
    """What the handlers share: the provider pool, the example images, the results folder.

    ``pool`` may be a Future: providers are built and warmed up (SDK imports, model loads, credential
    look-ups) in the background while the server starts, and the page fills its provider list when ready.
    """

    pool_or_future: ProviderPool | Future[ProviderPool]
    examples: Path | None = None
    results: Path | None = None
    notice: str | None = None  # shown under the banner, e.g. "these are untrained stand-ins"
    _session_files: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pool(self) -> ProviderPool:
        if isinstance(self.pool_or_future, Future):
            return self.pool_or_future.result()
        return self.pool_or_future

    def example_files(self) -> list[str]:
        if self.examples is None:
            return []
        return sorted(
            p.name for p in self.examples.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )

    def classify(self, image_path: str | None, providers: Sequence[str] | None) -> ClassifyOutcome:
        """Prepare the image (caps, metadata stripped) once, then ask each chosen provider."""
        return self.classify_image(image_path, providers)[1]

    def classify_image(
        self, image_path: str | None, providers: Sequence[str] | None
    ) -> tuple[PreparedImage | None, ClassifyOutcome]:
        """``classify``, also returning the prepared image (for saliency overlays)."""
        names = list(providers or [])
        if not image_path:
            raise InvalidImageError("the upload", "no image was given")
        if not names:
            error = {"provider": "-", "kind": "usage", "message": "choose a provider"}
            return None, ClassifyOutcome(errors=[error])
        offered = [n for n in names if n in self.pool.usable]
        image = prepare_upload(image_path, self.pool.limits(offered))
        return image, self.pool.classify(image, names)

    def cards(
        self, outcome: ClassifyOutcome, image: PreparedImage | None = None, saliency: bool = False
    ) -> str:
        """One card per answer (with the saliency overlay when asked and possible), then the errors."""
        parts = []
        for p in outcome.predictions:
            classifier = self.pool.usable[p.provider]
            overlay = overlay_html(classifier, image) if saliency and image is not None else ""
            parts.append(prediction_card(p, classifier.governance, overlay))
        parts += [error_card(e) for e in outcome.errors]
        return "".join(parts)

    def remember(self, session: str | None, path: str | None) -> None:
        """An upload of this browser session, deleted when the session ends."""
        if session and path and self.examples is not None and Path(path).parent != self.examples:
            with self._lock:
                self._session_files.setdefault(session, set()).add(path)

    def forget_session(self, session: str | None) -> None:
        with self._lock:
            files = self._session_files.pop(session or "", set())
        for file in files:
            Path(file).unlink(missing_ok=True)


def build_app(state: AppState) -> Any:
    """The Gradio Blocks for ``state`` (not launched)."""
    gr = import_gradio()
    with gr.Blocks(title="cloudderm", delete_cache=(600, 3600)) as blocks:
        gr.HTML(banner_html(), elem_id="cd-banner")
        if state.notice:
            gr.Markdown(f"**Note:** {state.notice}", elem_id="cd-notice")
        with gr.Tab("Classify", id="classify"):
            offer = _classify_tab(gr, state)
        blocks.load(*offer, api_visibility="private")
        with gr.Tab("Results", id="results"):
            first_fill = _results_tab(gr, state)
        if first_fill is not None:
            blocks.load(*first_fill, api_visibility="private")
        blocks.unload(_on_unload(state))
    return blocks


def _classify_tab(gr: Any, state: AppState) -> tuple[Any, Any, Any]:
    """The tab's components; returns (fn, inputs, outputs) that offer the providers when a page opens."""
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(type="filepath", label="Image", sources=["upload"], elem_id="cd-image")
            gr.Markdown(f"Limits: {LIMITS_TEXT}", elem_id="cd-limits")
            example = gr.Dropdown(
                choices=state.example_files(),
                value=None,
                label="…or pick a bundled example",
                elem_id="cd-example",
            )
            providers = gr.CheckboxGroup(
                choices=[], label="Providers (checking which can be used…)", elem_id="cd-providers"
            )
            saliency = gr.Checkbox(
                value=False,
                visible=explain_available(),
                label="Saliency overlay (local models only; Grad-CAM or attention rollout)",
                elem_id="cd-saliency",
            )
            run = gr.Button("Classify", variant="primary", elem_id="cd-run")
            unavailable = gr.HTML(elem_id="cd-unavailable")
        with gr.Column(scale=2):
            cards = gr.HTML(elem_id="cd-cards")
            api_json = gr.JSON(visible=False)

    def pick(name: str | None) -> Any:
        if not name or state.examples is None or name not in state.example_files():
            return None
        return str(state.examples / name)

    def classify_ui(path: str | None, names: list[str], saliency: bool, request: gr.Request) -> str:
        state.remember(getattr(request, "session_hash", None), path)
        try:
            image, outcome = state.classify_image(path, names)
            return state.cards(outcome, image, saliency)
        except CloudDermError as e:
            return error_card({"provider": "upload", "kind": type(e).__name__, "message": str(e)})

    classify_ui.__annotations__["request"] = gr.Request  # Gradio injects it by the real class

    def classify_api(path: str | None, names: list[str]) -> dict[str, Any]:
        try:
            return state.classify(path, names).as_json()
        except CloudDermError as e:
            error = {"provider": "-", "kind": type(e).__name__, "message": str(e)}
            return {"predictions": [], "errors": [error]}

    def offer() -> tuple[Any, str]:
        pool = state.pool  # waits for the start-up checks
        box = gr.CheckboxGroup(choices=pool.names, value=pool.names, label="Providers")
        return box, unavailable_html(pool.unavailable)

    fill = (offer, None, [providers, unavailable])
    example.change(pick, inputs=example, outputs=image, api_visibility="private")
    run.click(classify_ui, inputs=[image, providers, saliency], outputs=cards, api_visibility="private")
    # The API takes any provider names (a refused or unknown one gets an error entry, not a 500).
    api_names = gr.JSON(visible=False, label="providers")
    hidden = gr.Button(visible=False)
    hidden.click(classify_api, inputs=[image, api_names], outputs=api_json, api_name="classify")
    return fill


def _results_tab(gr: Any, state: AppState) -> tuple[Any, Any, Any] | None:
    """The tab's components; returns (fn, inputs, outputs) for filling it when a page opens."""
    if state.results is None:
        gr.Markdown(
            "Start the app with `--results DIR` (a `cloudderm compare` output folder) to browse a run."
        )
        return None
    gr.Markdown(f"Results folder (read-only): `{state.results}`", elem_id="cd-results-folder")
    status = gr.Markdown(elem_id="cd-results-status")
    which = gr.Radio(list(TABLE_FILTERS), value="all", label="Show", elem_id="cd-filter")
    table = gr.Dataframe(interactive=False, label="Images × providers", elem_id="cd-table")
    metrics = gr.Dataframe(interactive=False, label="Summary metrics", elem_id="cd-metrics")
    thumbs = gr.Gallery(label="Thumbnails (shown rows)", columns=8, height=240, elem_id="cd-thumbs")
    plots = gr.Gallery(label="Report plots", columns=3, elem_id="cd-plots")

    def refresh(filter_name: str) -> tuple[Any, ...]:
        try:
            run = load_run(state.results)  # type: ignore[arg-type]
        except CloudDermError as e:
            return f"**Cannot read the folder:** {e}", None, None, [], []
        headers, rows = run.table(filter_name)
        mheaders, mrows = run.metrics()
        note = "run in progress: refreshing every few seconds" if run.live else "finished run"
        text = f"{len(rows)} image(s) shown · {len(run.rows)} answers · {note}"
        return (
            text,
            {"headers": headers, "data": rows},
            {"headers": mheaders, "data": mrows},
            _thumbnails(run, [r[0] for r in rows]),
            [_load(p) for p in run.plots()],
        )

    outputs = [status, table, metrics, thumbs, plots]
    which.change(refresh, inputs=which, outputs=outputs, api_visibility="private")
    timer = gr.Timer(REFRESH_S)
    timer.tick(refresh, inputs=which, outputs=outputs, api_visibility="private")
    return refresh, which, outputs


def _thumbnails(run: Any, images: list[str]) -> list[tuple[Any, str]]:
    out = []
    for name in images[:MAX_THUMBNAILS]:
        file = run.image_file(name)
        if file is not None:
            img = _load(file)
            img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            out.append((img, name))
    return out


def _load(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


def _on_unload(state: AppState) -> Any:
    gr = import_gradio()

    def unload(request: gr.Request) -> None:
        state.forget_session(getattr(request, "session_hash", None))

    unload.__annotations__["request"] = gr.Request
    return unload
