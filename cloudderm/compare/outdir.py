"""The output folder of a comparison: usable, and ours alone, checked before any model loads.

Why before: a bad ``-o`` (an existing file, a read-only folder) used to surface only after every model
had loaded and the first answers were in, as a ``sqlite3`` or ``OSError`` traceback. And two runs into
one folder at once would interleave their answers and misreport each other's as interrupted. So the
folder is created and probed first, and held with an exclusive lock naming the running process.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO

from cloudderm.errors import ConfigError

__all__ = ["LOCK_NAME", "OutputFolder"]

LOCK_NAME = ".cloudderm.lock"


class OutputFolder:
    """Context manager: a writable output folder, locked for this process until exit.

    Raises (on enter):
        ConfigError: the path is a file, cannot be created or written, or another run holds it (exit 2).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._lock: IO[str] | None = None

    def acquire(self) -> OutputFolder:
        """Check and lock the folder now (``with`` does it too; a held folder is not locked twice)."""
        if self._lock is None:
            check_writable(self.path)
            self._lock = _acquire(self.path / LOCK_NAME)
        return self

    def __enter__(self) -> OutputFolder:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            _release(lock)


def check_writable(path: Path, flag: str = "-o") -> None:
    """Create ``path`` if needed and prove a file can be written there (``flag`` names the option)."""
    where = {"field": "out" if flag == "-o" else flag.lstrip("-")}
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output folder {path} is an existing file: choose another {flag}", **where)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"cannot create output folder {path}: {e.strerror or e}; choose a writable {flag}", **where
        ) from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(
            f"output folder {path} is not writable: {e.strerror or e}; choose a writable {flag}", **where
        ) from None


def _acquire(lock_path: Path) -> IO[str]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks in the standard library; run unlocked
        return open(lock_path, "a+", encoding="utf-8")
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held until _release
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise ConfigError(
            f"output folder {lock_path.parent} is in use by another cloudderm run (PID {holder}); "
            "wait for it to finish or choose another -o",
            field="out",
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _release(handle: IO[str]) -> None:
    try:
        handle.seek(0)
        handle.truncate()
    finally:
        handle.close()  # closing drops the flock
