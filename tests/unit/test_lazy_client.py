"""The one lazily built SDK client an adapter holds (``adapters/_lazy_client.py``)."""

from __future__ import annotations

import threading
import time

from cloudderm.adapters._lazy_client import LazyClient


class Client:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_built_once_however_many_threads_ask_at_once() -> None:
    built: list[Client] = []

    def build() -> Client:
        time.sleep(0.05)  # slow enough that every thread arrives while the first is still building
        built.append(Client())
        return built[-1]

    lazy = LazyClient(build)
    seen: list[Client] = []
    threads = [threading.Thread(target=lambda: seen.append(lazy.get())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(c is built[0] for c in seen)


def test_close_closes_the_client_and_a_later_get_builds_a_new_one() -> None:
    lazy = LazyClient(Client)
    lazy.close()  # nothing built yet: nothing to close
    first = lazy.get()
    lazy.close()
    assert first.closed
    second = lazy.get()
    assert second is not first and not second.closed


def test_a_client_without_close_is_simply_dropped() -> None:
    lazy = LazyClient(object)
    lazy.get()
    lazy.close()
