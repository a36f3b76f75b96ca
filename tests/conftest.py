"""Shared fixtures: generated sample images and the optional real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudderm.testing.samples import make_jpeg, sample_jpegs

__all__ = ["REPO_ROOT", "SHARED_DATA", "isolate_aws", "make_jpeg"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# MLflow's usage telemetry stays off in every test (docs/mlflow.md says how users turn it off).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# compare runs in this process unless a test asks for workers (docs/compare.md: users get cores up to 8).
os.environ.setdefault("CLOUDDERM_WORKERS", "1")


AWS_VARS_TO_HIDE = (
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


def isolate_aws(
    mp: pytest.MonkeyPatch, tmp: Path, key_id: str, secret: str, session_token: str | None = None
) -> None:
    """Give boto3 exactly these credentials: the user's AWS files, profile, region and role stay out.

    The config and credentials files point into ``tmp`` (absent unless a test writes ``tmp/aws-config``).
    """
    for var in AWS_VARS_TO_HIDE:
        mp.delenv(var, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(tmp / "aws-config"))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "aws-credentials"))
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    mp.setenv("AWS_ACCESS_KEY_ID", key_id)
    mp.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if session_token is not None:
        mp.setenv("AWS_SESSION_TOKEN", session_token)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data when present (real lesion photos and provider payloads); skip cleanly when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def provider_payloads(shared_data: Path) -> Path:
    return shared_data / "providers"


@pytest.fixture
def sample_images() -> list[bytes]:
    """Three distinct small JPEGs; the second carries EXIF GPS tags."""
    return sample_jpegs()
