"""Shared set-up for end-to-end tests that drive the real adapters against the loopback emulators."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cloudderm.testing.emulators import FAKE_AWS_ENV

HIDDEN_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
)


@contextmanager
def emulator_aws_env(tmp: Path) -> Iterator[None]:
    """boto3 signs with throwaway keys; the user's AWS files, profile and instance role stay out of it."""
    with pytest.MonkeyPatch.context() as mp:
        for var in HIDDEN_AWS_VARS:
            mp.delenv(var, raising=False)
        for var, value in FAKE_AWS_ENV.items():
            mp.setenv(var, value)
        missing = tmp / "no-aws-files"
        mp.setenv("AWS_CONFIG_FILE", str(missing))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield
