"""Keep huggingface_hub from phoning home in tests.

``huggingface_hub`` (2.x) fetches an "agent harness" registry from ``huggingface.co/api/agent-harnesses``
the first time it builds request headers. The hub is unreachable here, and under a cassette that lookup is
an unrecorded request, so tests that use ``InferenceClient`` start with the library's own empty registry.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def hub_registry_offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    try:
        from huggingface_hub.utils import _detect_agent
    except ImportError:  # the hf-inference extra is not installed: nothing to keep offline
        yield
        return
    if hasattr(_detect_agent, "_registry") and hasattr(_detect_agent, "_EMPTY_REGISTRY"):
        monkeypatch.setattr(_detect_agent, "_registry", _detect_agent._EMPTY_REGISTRY)
    yield
