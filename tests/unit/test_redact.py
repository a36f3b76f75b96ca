"""The core scrubber (issue #12 item 4): one set of rules for errors, stores, reports, logs and cassettes."""

from __future__ import annotations

import pytest

from cloudderm.errors import ProviderError
from cloudderm.redact import REDACTED, scrub_mapping, scrub_text, scrub_url

CANARY = "CANARY-7f3a9"


@pytest.mark.parametrize(
    "url",
    [
        f"https://fn.azurewebsites.net/score?code={CANARY}",
        f"https://acct.blob.core.windows.net/c/x.jpg?sv=2024&sig={CANARY}",
        f"https://h.example/x?api_key={CANARY}&v=1",
        f"https://h.example/x?X-Amz-Signature={CANARY}",
        f"https://h.example/x?access_token={CANARY}",
        f"https://user:{CANARY}@h.example/score",
    ],
)
def test_secret_parts_of_urls_are_scrubbed_anywhere_in_text(url: str) -> None:
    text = f"HTTP 401 from {url} (request id r-1)"
    scrubbed = scrub_text(text)
    assert CANARY not in scrubbed and "h" in scrubbed and "request id r-1" in scrubbed
    assert scrub_text(scrubbed) == scrubbed, "scrubbing twice changes nothing"


def test_harmless_urls_and_names_stay_readable() -> None:
    assert scrub_url("http://127.0.0.1:8080/score") == "http://127.0.0.1:8080/score"
    assert scrub_url("https://h/x?v=2&code=1") == f"https://h/x?v=2&code={REDACTED}"
    assert scrub_text("label key: nevus") == "label key: nevus"


def test_mappings_mask_secret_named_strings_but_not_counts() -> None:
    value = {"api_key": CANARY, "usage": {"input_tokens": 12}, "uri": f"https://h/?code={CANARY}"}
    scrubbed = scrub_mapping(value)
    assert CANARY not in repr(scrubbed) and scrubbed["usage"] == {"input_tokens": 12}


def test_provider_errors_never_carry_a_url_secret() -> None:
    error = ProviderError("refused", provider="p", endpoint=f"https://fn.example/score?code={CANARY}")
    assert CANARY not in str(error) and "fn.example/score" in str(error)


def test_cassette_rules_come_from_the_core() -> None:
    import cloudderm.redact as core
    import cloudderm.testing.redact as cassettes

    assert cassettes.redact_uri is core.redact_uri and cassettes.is_secret_name is core.is_secret_name
