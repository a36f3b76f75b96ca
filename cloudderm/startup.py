"""Getting providers ready before the first call: secrets, SDK clients and model loads, timed apart.

Why one place: ``classify`` and ``compare`` must agree on what a problem found before any call means
(exit 2, see ``docs/exit-codes.md``), and neither may count a model load as the first image's latency.
A failure while warming up goes through the adapter's own error mapping where it has one; anything
else becomes a ``ConfigError`` naming the provider, because no image has been sent yet.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cloudderm.config import require_env
from cloudderm.errors import CloudDermError, ConfigError
from cloudderm.redact import scrub_text

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = ["start_providers"]


def start_providers(classifiers: Sequence[Classifier]) -> dict[str, float]:
    """Check each provider's secrets are set and warm it up; returns each one's load time in ms.

    Raises:
        ConfigError: a ``${VAR}`` the provider needs is unset, credentials are missing, a model is not
            cached, or warm-up failed in a way the adapter does not map (exit 2: nothing was sent).
        MissingDependencyError: the provider's SDK is not installed (exit 2).
        ProviderError: the adapter mapped a warm-up fault to a provider failure.
    """
    load_ms: dict[str, float] = {}
    for clf in classifiers:
        require_env(clf.name, clf.settings)
        started = time.perf_counter()
        try:
            clf.warm_up()
        except CloudDermError:
            raise
        except Exception as e:  # an SDK's own exception: clean message, exit 2, never a traceback
            detail = scrub_text(f"{type(e).__name__}: {e}")[:300]
            raise ConfigError(f"cannot start the provider: {detail}", provider=clf.name) from e
        load_ms[clf.name] = (time.perf_counter() - started) * 1000.0
    return load_ms
