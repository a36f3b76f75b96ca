"""Shared set-up for end-to-end tests that drive the real adapters against the loopback emulators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from cloudderm.emulate import FAKE_AWS_ENV, EmulatedEndpoint, Emulator
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.conftest import isolate_aws


@contextmanager
def emulator_aws_env(tmp: Path) -> Iterator[None]:
    """boto3 signs with throwaway keys; the user's AWS files, profile and instance role stay out of it."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws(mp, tmp, FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"], FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        yield


# ---- hash-scored endpoints for the cassette tests ---------------------------------------------------------
HAM_LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


def hash_backend() -> FakeClassifier:
    """A backend whose scores are a pure function of the bytes received: replay can be checked exactly."""
    return FakeClassifier("hash", FakeSettings(model="ham10000-hash", labels=HAM_LABELS))


@contextmanager
def hash_emulator(name: str, protocol: str, **endpoint: Any) -> Iterator[Emulator]:
    """The real emulator serving one endpoint ``name`` through ``protocol``, scored by ``hash_backend``."""
    served = {name: EmulatedEndpoint(backend=hash_backend(), **endpoint)}
    with Emulator(served, protocols=[protocol]) as emu:
        yield emu


def expected_top(prepared_sha256: str) -> str:
    """The label the hash backend gives the bytes an adapter sent (identified by their SHA-256)."""
    scores = hash_backend().scores_for(prepared_sha256)
    return max(scores, key=lambda ls: ls[1])[0]
