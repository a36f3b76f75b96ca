"""Which endpoints count as this machine (images do not leave it; plain http is allowed)."""

from __future__ import annotations

import pytest

from cloudderm.adapters._net import is_loopback


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:5000/score", "127.0.0.1:8080", "localhost", "::1", "http://[::1]:80/x", "127.0.0.2"],
)
def test_loopback(target: str) -> None:
    assert is_loopback(target)


@pytest.mark.parametrize(
    "target",
    [
        "https://derm.uksouth.inference.ml.azure.com/score",
        "europe-west2-aiplatform.googleapis.com",
        "http://10.0.0.1:8080",
        "",
        None,
    ],
)
def test_not_loopback(target: str | None) -> None:
    assert not is_loopback(target)
