"""Where the runner's CPU work and provider calls may run instead of its own threads.

Why a protocol: the runner (runner.py) owns the order of work, retries, the breaker and the one writer
of ``results.sqlite``; only *where* an image is prepared and *where* an adapter is called changes between
``compare --workers N`` (pool.py: spawn processes on this machine, local models only) and
``compare --engine ray`` (ray_engine.py: actors on a Ray cluster, every provider). Both hand the runner
the same objects back, so resume and exactly-once behave the same whichever runs the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cloudderm.images import PreparedImage
    from cloudderm.prediction import Prediction

__all__ = ["CallNotMade", "Executor"]


class CallNotMade(Exception):
    """The executor did not send this call because the run is stopping: nothing to record, nothing billed."""


class Executor(Protocol):
    """Runs preparation and some providers' calls out of the runner's process."""

    workers: int  # parallel preparers; the runner keeps at least this many preparing threads fed

    def runs(self, config_hash: str) -> bool:
        """Whether this provider's calls go through ``classify`` (else the runner calls the adapter)."""
        ...

    def paces(self, config_hash: str) -> bool:
        """Whether the executor enforces this provider's ``requests_per_second`` itself (cluster-wide)."""
        ...

    def prepare(
        self, data: bytes, *, max_bytes: int | None, max_side: int | None, source: str
    ) -> PreparedImage:
        """``cloudderm.images.prepare`` elsewhere; raises its typed ``InvalidImageError`` as it is."""
        ...

    def classify(self, config_hash: str, images: Sequence[PreparedImage]) -> list[Prediction]:
        """The provider's ``classify_prepared`` elsewhere; raises the adapter's typed errors as they are."""
        ...

    def stop(self) -> None:
        """The run is stopping: calls not yet sent are not sent (they raise ``CallNotMade``)."""
        ...

    def close(self) -> None: ...
