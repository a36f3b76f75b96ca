"""Shared set-up for end-to-end tests that drive the real adapters against the loopback emulators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cloudderm.testing.emulators import FAKE_AWS_ENV
from tests.conftest import isolate_aws


@contextmanager
def emulator_aws_env(tmp: Path) -> Iterator[None]:
    """boto3 signs with throwaway keys; the user's AWS files, profile and instance role stay out of it."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_aws(mp, tmp, FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"], FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"])
        yield
