"""One vendor SDK client per adapter: built on first use, under a lock, closed with the adapter.

Why one piece: every remote adapter needs the same three things from its client. It must not exist
before the first call, so ``import cloudderm`` loads no SDK and an adapter pickles as its settings. It
must be built once even when the runner's threads all ask at the same moment. And it must be closed,
with its connection pool, when the adapter is. The VLM base class and the service adapters share this
instead of each keeping a ``_client_obj`` and a lock of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LazyClient"]


class LazyClient:
    """Holds the client ``build()`` makes; ``get()`` builds it once, ``close()`` drops and closes it."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def close(self) -> None:
        """Close the client if one was built (its ``close()``, when it has one); a later ``get()`` builds
        a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()
