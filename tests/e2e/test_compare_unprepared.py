"""An image the executor cannot prepare (a Ray preparer that kept dying) is reported, never silently lost.

Nothing is stored for it, so the same command run again sends it; the first run exits 1 and says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudderm.cli import main
from cloudderm.errors import ProviderError
from cloudderm.images import prepare
from tests.e2e.test_compare_cli import _calls, make_dataset, read_jsonl, write_config

BROKEN_SHARD = "img001.jpg"


class ShardDown:
    """An executor whose preparation fails for one image as a dead Ray preparer does; calls stay local."""

    workers = 1

    def runs(self, config_hash: str) -> bool:
        return False

    def paces(self, config_hash: str) -> bool:
        return False

    def prepare(self, data: bytes, *, max_bytes, max_side, source: str):  # type: ignore[no-untyped-def]
        if source == BROKEN_SHARD:
            raise ProviderError("Ray preparer failed: ActorDiedError: the worker died", retryable=True)
        return prepare(data, max_bytes=max_bytes, max_side=max_side, source=source)

    def classify(self, config_hash, images):  # type: ignore[no-untyped-def]
        raise AssertionError("not used: runs() is False")

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> ShardDown:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_an_unprepared_image_is_exit_1_with_the_resume_command_and_the_rerun_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from tests import stub_reports

    stub_reports.install(monkeypatch)
    n = 4
    images, labels = make_dataset(tmp_path, n)
    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "c.yaml", log=log)
    out = tmp_path / "out"
    args = [
        "compare",
        str(images),
        "-c",
        str(config),
        "--labels",
        str(labels),
        "-o",
        str(out),
        "--no-progress",
    ]

    with monkeypatch.context() as mp:
        mp.setattr("cloudderm.compare.api._executor", lambda *a, **k: ShardDown())
        assert main(args) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "1 image(s) could not be prepared and were not sent" in err and BROKEN_SHARD in err
    assert "Run the same command again to retry them: cloudderm compare" in err
    assert {r["image"] for r in read_jsonl(out / "predictions.jsonl")} == {
        f"img{i:03d}.jpg" for i in range(n)
    } - {BROKEN_SHARD}
    first = _calls(log)

    assert main(args) == 0  # the cluster is back: only the missing image is sent
    calls = _calls(log)
    assert sum(calls.values()) - sum(first.values()) == 2  # one image, two providers
    assert {r["image"] for r in read_jsonl(out / "predictions.jsonl")} == {
        f"img{i:03d}.jpg" for i in range(n)
    }
