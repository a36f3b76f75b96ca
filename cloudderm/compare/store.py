"""``OUT/results.sqlite``: the resumable record of every answer, written as each one arrives.

Why SQLite in WAL mode with a commit per result: a comparison can run for hours against paid endpoints. If
it is interrupted (Ctrl-C, ``kill -9``, a reboot of a laptop), everything already answered must survive
and must never be paid for again. A committed WAL transaction survives the process dying; with
``synchronous=NORMAL`` only an operating-system crash could lose the last few commits.

A result is keyed by *(provider config hash, image SHA-256)*: the hash of everything that decides the
answer (adapter, model, endpoint, label map...) and of the exact bytes sent. Renaming a provider or
changing its concurrency keeps its results; pointing it at another endpoint starts afresh. An answer is
*final* when it is ``ok`` or a permanent error (4xx, malformed answer, unreadable image); retryable
failures and breaker skips are recorded too, but are sent again on the next run.

The table ``run_items`` lists the images of the current run (key, truth, metadata, hash) so the export
to ``predictions.jsonl`` is a join, streamed row by row, never a list in memory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretBytes, SecretStr

from cloudderm.redact import scrub_text

if TYPE_CHECKING:
    from cloudderm.classifier import AdapterSettings

__all__ = ["NOT_HASHED_FIELDS", "OPERATIONAL_FIELDS", "ResultStore", "config_hash", "public_settings"]

SCHEMA_VERSION = 1
OPERATIONAL_FIELDS = frozenset({"timeout_s", "max_retries", "concurrency", "requests_per_second"})
# How answers are read, never what is sent: changing these re-maps or re-prices stored answers, no re-send.
INTERPRETATION_FIELDS = frozenset({"label_map", "model_card", "pricing"})
NOT_HASHED_FIELDS = OPERATIONAL_FIELDS | INTERPRETATION_FIELDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS providers (
    config_hash TEXT PRIMARY KEY, name TEXT NOT NULL, adapter TEXT NOT NULL, model TEXT,
    settings TEXT NOT NULL, first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    config_hash TEXT NOT NULL, sha256 TEXT NOT NULL, provider TEXT NOT NULL, status TEXT NOT NULL,
    final INTEGER NOT NULL, attempts INTEGER NOT NULL, record TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (config_hash, sha256)
);
CREATE TABLE IF NOT EXISTS prepared (
    fingerprint TEXT NOT NULL, limits TEXT NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (fingerprint, limits)
);
CREATE TABLE IF NOT EXISTS run_items (
    seq INTEGER PRIMARY KEY, image TEXT NOT NULL, sha256 TEXT NOT NULL, truth TEXT, truth_raw TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS run_items_sha ON run_items (sha256);
"""


def public_settings(settings: AdapterSettings) -> dict[str, Any]:
    """A provider's settings with every secret field removed, for hashing and for the store."""

    def strip(value: Any) -> Any:
        if isinstance(value, (SecretStr, SecretBytes)):
            return _DROP
        if isinstance(value, BaseModel):
            value = {k: getattr(value, k) for k in type(value).model_fields}
        if isinstance(value, Mapping):
            out = {str(k): strip(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not _DROP}
        if isinstance(value, (list, tuple)):
            return [v for v in (strip(x) for x in value) if v is not _DROP]
        if isinstance(value, str):
            return scrub_text(value)  # a URL setting may carry a key (?code=, user:pass@)
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return scrub_text(str(value))

    fields = {k: getattr(settings, k) for k in type(settings).model_fields if k not in OPERATIONAL_FIELDS}
    return strip(fields)


_DROP = object()


def config_hash(settings: AdapterSettings, extras: Mapping[str, Any] | None = None) -> str:
    """Stable 16-hex-digit identity of what decides a provider's answers.

    It covers the settings that reach the wire; not secrets, pacing (``OPERATIONAL_FIELDS``) or how answers
    are read (``label_map``, ``model_card``, ``pricing``; the taxonomy is not a setting at all). ``extras``
    is what the classifier adds beyond its settings (``Classifier.hash_extras``: a generative model's
    rendered prompt), so editing a prompt file starts a new run instead of mixing answers.
    """
    wire = {k: v for k, v in public_settings(settings).items() if k not in INTERPRETATION_FIELDS}
    identity = {"class": type(settings).__module__ + "." + type(settings).__qualname__, **wire}
    if extras:
        identity["extras"] = dict(extras)
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """Thread-safe access to ``results.sqlite``; one connection, one lock, a commit per write."""

    def __init__(self, path: str | Path, *, resume: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not resume:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ---- lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection; later writes (a straggling worker after Ctrl-C) are ignored."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: Sequence[Any]) -> bool:
        with self._lock:
            if self._conn is None:
                return False
            self._conn.execute(sql, params)
            return True

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._conn is None:
                return []
            return self._conn.execute(sql, params).fetchall()

    # ---- providers and runs -------------------------------------------------------------------
    def register_provider(self, chash: str, name: str, settings: AdapterSettings, model: str | None) -> None:
        """Remember which settings a hash stands for (secrets never stored)."""
        self._write(
            "INSERT INTO providers VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(config_hash) DO UPDATE SET name = excluded.name",
            (
                chash,
                name,
                settings.adapter,
                model,
                json.dumps(public_settings(settings), sort_keys=True),
                time.time(),
            ),
        )

    def begin_run(self) -> None:
        """Forget the previous run's image list (results stay): this run lists its own images."""
        self._write("DELETE FROM run_items", ())

    def add_item(
        self,
        seq: int,
        image: str,
        sha256: str,
        truth: str | None,
        truth_raw: str | None,
        metadata: Mapping[str, Any],
    ) -> bool:
        """List an image in this run; False when the same bytes were already listed (a duplicate)."""
        with self._lock:
            if self._conn is None:
                return False
            seen = self._conn.execute(
                "SELECT 1 FROM run_items WHERE sha256 = ? LIMIT 1", (sha256,)
            ).fetchone()
            self._conn.execute(
                "INSERT OR REPLACE INTO run_items VALUES (?, ?, ?, ?, ?, ?)",
                (seq, image, sha256, truth, truth_raw, json.dumps(dict(metadata), ensure_ascii=False)),
            )
            return seen is None

    # ---- preparation cache ----------------------------------------------------------------------
    def prepared_sha(self, fingerprint: str, limits: str) -> str | None:
        rows = self._read(
            "SELECT sha256 FROM prepared WHERE fingerprint = ? AND limits = ?", (fingerprint, limits)
        )
        return rows[0][0] if rows else None

    def remember_prepared(self, fingerprint: str, limits: str, sha256: str) -> None:
        self._write("INSERT OR REPLACE INTO prepared VALUES (?, ?, ?)", (fingerprint, limits, sha256))

    # ---- results -------------------------------------------------------------------------------
    def finished(self, sha256: str, hashes: Sequence[str]) -> set[str]:
        """The config hashes among ``hashes`` that have a final answer for this image."""
        if not hashes:
            return set()
        marks = ",".join("?" * len(hashes))
        rows = self._read(
            f"SELECT config_hash FROM results WHERE sha256 = ? AND final = 1 AND config_hash IN ({marks})",
            (sha256, *hashes),
        )
        return {r[0] for r in rows}

    def put(
        self,
        chash: str,
        sha256: str,
        provider: str,
        status: str,
        *,
        final: bool,
        attempts: int,
        record: Mapping[str, Any],
    ) -> bool:
        """Record one answer (committed immediately). A final answer is never replaced by a non-final one."""
        return self._write(
            """INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(config_hash, sha256) DO UPDATE SET
                 provider=excluded.provider, status=excluded.status, final=excluded.final,
                 attempts=excluded.attempts, record=excluded.record, updated=excluded.updated
               WHERE results.final = 0 OR excluded.final = 1""",
            (
                chash,
                sha256,
                provider,
                status,
                int(final),
                attempts,
                json.dumps(record, ensure_ascii=False),
                time.time(),
            ),
        )

    def result(self, chash: str, sha256: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT status, final, attempts, record FROM results WHERE config_hash = ? AND sha256 = ?",
            (chash, sha256),
        )
        if not rows:
            return None
        status, final, attempts, record = rows[0]
        return {"status": status, "final": bool(final), "attempts": attempts, **json.loads(record)}

    def count_results(self) -> int:
        return self._read("SELECT COUNT(*) FROM results")[0][0] if self._conn else 0

    # ---- export -------------------------------------------------------------------------------
    def iter_run(
        self, providers: Sequence[tuple[str, str]]
    ) -> Iterator[tuple[dict[str, Any], str, dict | None]]:
        """For each image of this run (in dataset order) and provider ``(name, hash)``: the item, the
        provider name and its stored answer (None when never answered, e.g. after an interrupt).

        Reads through a separate connection in pages so workers may keep writing meanwhile.
        """
        reader = sqlite3.connect(self.path, timeout=30)
        try:
            last = -1
            while True:
                page = reader.execute(
                    "SELECT seq, image, sha256, truth, truth_raw, metadata FROM run_items WHERE seq > ? "
                    "ORDER BY seq LIMIT 256",
                    (last,),
                ).fetchall()
                if not page:
                    return
                for seq, image, sha, truth, truth_raw, metadata in page:
                    last = seq
                    item = {
                        "image": image,
                        "sha256": sha,
                        "truth": truth,
                        "truth_raw": truth_raw,
                        "metadata": json.loads(metadata),
                    }
                    for name, chash in providers:
                        row = reader.execute(
                            "SELECT status, final, attempts, record FROM results "
                            "WHERE config_hash = ? AND sha256 = ?",
                            (chash, sha),
                        ).fetchone()
                        answer = None
                        if row is not None:
                            status, final, attempts, record = row
                            answer = {
                                "status": status,
                                "final": bool(final),
                                "attempts": attempts,
                                **json.loads(record),
                            }
                        yield item, name, answer
        finally:
            reader.close()
