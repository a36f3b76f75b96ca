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


def test_mask_values_hides_known_secret_values_given_as_secretstr_or_str():
    from pydantic import SecretStr

    from cloudderm.redact import VALUE_MASK, mask_values

    text = "invalid key abc123XYZ for tok-456 (abc123XYZ)"
    masked = mask_values(text, [SecretStr("abc123XYZ"), "tok-456", None, ""])
    assert "abc123XYZ" not in masked and "tok-456" not in masked
    assert masked == f"invalid key {VALUE_MASK} for {VALUE_MASK} ({VALUE_MASK})"
    assert mask_values("", ["x"]) == ""
    assert mask_values("nothing secret", []) == "nothing secret"


def test_mask_values_masks_a_longer_secret_before_its_prefix():
    from cloudderm.redact import mask_values

    assert mask_values("key=abcdef", ["abc", "abcdef"]) == "key=***"


def test_mlflow_tracking_failure_message_masks_mlflow_credentials(monkeypatch):
    import cloudderm.compare.mlflow_tracking as tracking

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:hunter2pw@localhost:5000")

    def boom(out, experiment=None):
        raise RuntimeError("server rejected s3cr3t-token from user:hunter2pw")

    monkeypatch.setattr(tracking, "log_comparison", boom)
    said = []
    assert tracking.log_comparison_safely("out", warn=said.append) is None
    assert "s3cr3t-token" not in said[0] and "hunter2pw" not in said[0] and "***" in said[0]
