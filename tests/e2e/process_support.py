"""Helpers for tests that run ``cloudderm compare`` as a separate process and kill it midway."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path


def wait_for_answers(db: Path, proc: subprocess.Popen, at_least: int, timeout: float = 90.0) -> int:
    """Block until the run's store holds ``at_least`` answered pairs; fail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    done = conn.execute("SELECT COUNT(*) FROM results WHERE status = 'ok'").fetchone()[0]
            except sqlite3.OperationalError:  # the run is still creating its tables
                done = 0
            if done >= at_least:
                return done
        time.sleep(0.05)
    raise AssertionError("the compare process produced no answers in time")
