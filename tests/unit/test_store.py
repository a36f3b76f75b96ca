"""The resumable store: commit per result, final answers kept, secrets never stored, export join."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

from pydantic import Field, SecretStr

from cloudderm.compare.export import PREDICTION_KEYS, ExportTarget, export_predictions
from cloudderm.compare.store import ResultStore, config_hash, public_settings
from cloudderm.taxonomy import HAM10000
from cloudderm.testing.fakes import FakeSettings


class KeyedSettings(FakeSettings):
    api_key: SecretStr
    nested: dict = Field(default_factory=dict)


def _ok(label: str = "melanoma") -> dict:
    return {"model": "m", "labels": [{"label": label, "score": 0.9}], "latency_ms": 5.0, "error": None}


def test_wal_and_commit_per_result_visible_to_another_connection(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "results.sqlite")
    other = sqlite3.connect(tmp_path / "results.sqlite")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for i in range(3):
        store.put("h", f"sha{i}", "p", "ok", final=True, attempts=1, record=_ok())
        # committed immediately: another process reading the file sees each row as soon as it is put
        assert other.execute("SELECT COUNT(*) FROM results").fetchone()[0] == i + 1
    other.close()
    store.close()


def test_final_answers_are_not_replaced_by_non_final_ones(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.put("h", "s", "p", "error", final=False, attempts=3, record={"error": "503"})
        assert store.finished("s", ["h"]) == set()
        store.put("h", "s", "p", "ok", final=True, attempts=1, record=_ok())
        assert store.finished("s", ["h", "other"]) == {"h"}
        store.put("h", "s", "p", "skipped", final=False, attempts=0, record={"error": "breaker"})
        assert store.result("h", "s")["status"] == "ok"


def test_resume_keeps_rows_and_no_resume_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.put("h", "s", "p", "ok", final=True, attempts=1, record=_ok())
    with ResultStore(path, resume=True) as store:
        assert store.finished("s", ["h"]) == {"h"}
    with ResultStore(path, resume=False) as store:
        assert store.finished("s", ["h"]) == set()
        assert store.count_results() == 0


def test_writes_after_close_are_ignored(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.sqlite")
    store.close()
    assert store.put("h", "s", "p", "ok", final=True, attempts=1, record=_ok()) is False


def test_config_hash_is_stable_ignores_pacing_and_secrets_but_not_the_model() -> None:
    a = KeyedSettings(model="m1", api_key=SecretStr("sk-live-SECRET-1"), concurrency=2)
    b = KeyedSettings(model="m1", api_key=SecretStr("sk-live-SECRET-2"), concurrency=16, timeout_s=5)
    c = KeyedSettings(model="m2", api_key=SecretStr("sk-live-SECRET-1"))
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert config_hash(a) == config_hash(KeyedSettings(model="m1", api_key=SecretStr("x"), concurrency=2))
    assert "api_key" not in public_settings(a)
    assert "SECRET" not in json.dumps(public_settings(a))


def test_secret_never_reaches_the_database_file(tmp_path: Path) -> None:
    settings = KeyedSettings(model="m1", api_key=SecretStr("sk-live-TOPSECRET"), nested={"a": 1})
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.register_provider(config_hash(settings), "p", settings, "m1")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"TOPSECRET" not in raw
    rows = sqlite3.connect(path).execute("SELECT settings FROM providers").fetchall()
    assert json.loads(rows[0][0])["model"] == "m1"


def test_add_item_reports_duplicate_bytes(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.begin_run()
        assert store.add_item(0, "a.jpg", "s1", "mel", "melanoma", {}) is True
        assert store.add_item(1, "copy-of-a.jpg", "s1", "mel", "melanoma", {}) is False
        assert store.add_item(2, "b.jpg", "s2", None, None, {}) is True
        store.begin_run()  # a new run lists its own images
        assert store.add_item(0, "a.jpg", "s1", None, None, {}) is True


def test_prepared_cache_is_per_limits(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.sqlite") as store:
        store.remember_prepared("f:1:2", "bytes=None;side=None", "s1")
        assert store.prepared_sha("f:1:2", "bytes=None;side=None") == "s1"
        assert store.prepared_sha("f:1:2", "bytes=1000;side=None") is None


def test_export_joins_run_items_with_answers_in_dataset_order(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.begin_run()
        store.add_item(1, "b.jpg", "s2", None, None, {"sex": "male"})
        store.add_item(0, "a.jpg", "s1", "mel", "melanoma", {"sex": None})
        store.add_item(2, "dup-of-a.jpg", "s1", "mel", "melanoma", {"sex": "female"})
        store.put("h1", "s1", "alpha", "ok", final=True, attempts=2, record=_ok("melanocytic_Nevi"))
        store.put(
            "h1",
            "s2",
            "alpha",
            "error",
            final=True,
            attempts=1,
            record={"error": "HTTP 400", "error_type": "X"},
        )
        store.put("h2", "s1", "beta", "ok", final=True, attempts=1, record=_ok("coffee bean"))
        out = tmp_path / "predictions.jsonl"
        counts = export_predictions(
            store, out, [ExportTarget("alpha", "h1", HAM10000), ExportTarget("beta", "h2", HAM10000)]
        )
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["image"], r["provider"]) for r in lines] == [
        ("a.jpg", "alpha"),
        ("a.jpg", "beta"),
        ("b.jpg", "alpha"),
        ("b.jpg", "beta"),
        ("dup-of-a.jpg", "alpha"),
        ("dup-of-a.jpg", "beta"),
    ]
    assert all(tuple(r) == PREDICTION_KEYS for r in lines)
    first = lines[0]
    assert first["canonical"] == "nv" and first["triage"] == "benign"  # mapped at export time
    assert first["truth"] == "mel" and first["truth_raw"] == "melanoma" and first["attempts"] == 2
    assert lines[1]["canonical"] is None  # out of domain stays None
    assert (
        lines[2]["status"] == "error" and lines[2]["labels"] == [] and lines[2]["metadata"] == {"sex": "male"}
    )
    assert lines[3]["status"] == "skipped" and "interrupted" in lines[3]["error"]  # never answered
    assert counts == {"alpha": Counter(ok=2, error=1), "beta": Counter(ok=2, skipped=1)}
    assert not (tmp_path / "predictions.jsonl.tmp").exists()
