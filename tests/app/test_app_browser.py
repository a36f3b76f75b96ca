"""``cloudderm app`` in a real browser (system Chromium through Playwright) and through gradio_client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.app.app_support import CANARY, EXAMPLES
from tests.app.conftest import screenshot

pytestmark = pytest.mark.slow
IMAGE = EXAMPLES / "ISIC_0000000.jpg"
TIMEOUT_MS = 120_000


def test_classify_tab_shows_a_card_per_provider_warnings_first_and_the_refused_rule(page) -> None:
    assert "not a diagnosis" in page.locator("#cd-banner").inner_text().lower()
    assert "20 MB" in page.locator("#cd-limits").inner_text()
    page.locator("#cd-providers").get_by_text("skin-vit").wait_for(timeout=TIMEOUT_MS)  # start-up checks done
    page.locator("#cd-image input[type=file]").set_input_files(str(IMAGE))
    page.locator("#cd-image img").first.wait_for(timeout=TIMEOUT_MS)
    page.locator("#cd-run").click()
    for provider in ("imagenet-mobilenet", "skin-vit", "canary-azure"):
        page.locator(f'.cd-card[data-provider="{provider}"]').wait_for(timeout=TIMEOUT_MS)
    imagenet = page.locator('.cd-card[data-provider="imagenet-mobilenet"]')
    warning = imagenet.locator(".cd-warnings").inner_text().lower()
    assert "imagenet" in warning and "out-of-domain" in imagenet.inner_text().lower()
    html = imagenet.inner_html()
    assert html.index("cd-warnings") < html.index("cd-labels")  # warnings before the numbers
    refused = page.locator('.cd-unavailable[data-provider="us-only-fake"]').inner_text()
    assert "refused-by-policy" in refused and "region" in refused
    checkbox_labels = page.locator("#cd-providers").inner_text()
    assert "us-only-fake" not in checkbox_labels  # refused providers are not offered
    assert "connection" in page.locator('.cd-card[data-provider="canary-azure"]').inner_text().lower()
    assert CANARY not in page.content()
    screenshot(page, "classify-tab")


def _shown(page) -> int:
    """The "N image(s) shown" count of the results status, once it is there (not the progress timer)."""
    handle = page.wait_for_function(
        "() => { const m = document.querySelector('#cd-results-status').innerText"
        ".match(/(\\d+) image\\(s\\) shown/); return m && !m[0].includes('\\n') ? m[1] : null; }",
        timeout=TIMEOUT_MS,
    )
    return int(handle.json_value())


def _wait_for_change(page, before: int) -> int:
    page.wait_for_function(
        "(before) => { const m = document.querySelector('#cd-results-status').innerText"
        ".match(/(\\d+) image\\(s\\) shown/); return m && Number(m[1]) !== before; }",
        arg=before,
        timeout=TIMEOUT_MS,
    )
    return _shown(page)


def test_results_tab_filters_to_disagreements(page) -> None:
    page.get_by_role("tab", name="Results").click()
    status = page.locator("#cd-results-status")
    status.get_by_text("finished run").wait_for(timeout=TIMEOUT_MS)
    total = _shown(page)
    assert f"{2 * total} answers" in status.inner_text()  # every image, two providers
    assert "fake-a" in page.locator("#cd-table").inner_text()
    assert "accuracy" in page.locator("#cd-metrics").inner_text()
    page.locator("#cd-filter").get_by_text("only disagreements").click()
    disagreements = _wait_for_change(page, total)
    assert 0 < disagreements < total  # the two fakes agree on some images, not all
    screenshot(page, "results-tab-disagreements")
    page.locator("#cd-filter").get_by_text("all").first.click()
    assert _wait_for_change(page, disagreements) == total


def test_classify_api_through_gradio_client(running_app) -> None:
    from gradio_client import Client, handle_file

    client = Client(running_app.url, verbose=False)
    names = ["imagenet-mobilenet", "skin-vit", "canary-azure", "us-only-fake"]
    answer = client.predict(handle_file(str(IMAGE)), names, api_name="/classify")
    assert sorted(p["provider"] for p in answer["predictions"]) == ["imagenet-mobilenet", "skin-vit"]
    errors = {e["provider"]: e for e in answer["errors"]}
    assert errors["us-only-fake"]["kind"] == "not-offered"
    assert "refused-by-policy" in errors["us-only-fake"]["message"]
    assert set(errors["canary-azure"]) == {"provider", "kind", "message"}
    imagenet = next(p for p in answer["predictions"] if p["provider"] == "imagenet-mobilenet")
    assert imagenet["canonical"] is None and imagenet["warnings"]
    assert CANARY not in json.dumps(answer)
    assert CANARY not in json.dumps(client.view_api(print_info=False, return_format="dict"))


def test_the_server_does_not_serve_files_outside_its_folders(running_app) -> None:
    for path in ("gradio_api/file=/etc/passwd", "gradio_api/file=../../../../etc/passwd", "file=/etc/passwd"):
        try:
            with urllib.request.urlopen(running_app.url + path, timeout=10) as reply:
                body = reply.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            assert e.code in (403, 404), path
            continue
        assert "root:" not in body, path


def test_the_config_page_never_carries_the_canary(running_app) -> None:
    with urllib.request.urlopen(running_app.url + "config", timeout=10) as reply:
        assert CANARY not in reply.read().decode(errors="replace")
