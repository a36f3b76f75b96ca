"""Errors of the cassette machinery, importable without vcrpy (the scanner needs only these)."""

from __future__ import annotations

from typing import Any

from cloudderm.errors import CloudDermError

__all__ = ["CassetteError", "CassetteLeak", "CassetteMiss", "CassetteNotFound", "NetworkBlocked"]


class CassetteError(CloudDermError):
    """A cassette cannot be used as asked: missing, unmatched, or it would leak."""


class CassetteNotFound(CassetteError, FileNotFoundError):
    """Replay was asked for a cassette that has not been recorded."""


class CassetteLeak(CassetteError):
    """Cassette text holds something that looks like a secret or image data (``findings`` says what)."""

    def __init__(self, message: str, findings: list[Any] | None = None) -> None:
        super().__init__(message)
        self.findings = list(findings or [])


class CassetteMiss(CassetteError):
    """A replayed request has no recorded answer. Names the cassette and the request, never a secret.

    Deliberately not an ``OSError``: HTTP libraries turn those into retries and connection errors, which
    would bury the one message that says which request was not recorded.
    """

    def __init__(
        self, message: str, *, cassette: str, method: str, host: str, path: str, body_sha256: str
    ) -> None:
        super().__init__(message)
        self.cassette = cassette
        self.method = method
        self.host = host
        self.path = path
        self.body_sha256 = body_sha256


class NetworkBlocked(CassetteError):
    """Something tried to open a network connection while a cassette was replaying."""
