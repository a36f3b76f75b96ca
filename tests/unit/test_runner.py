"""The compare runner with fake providers: identical bytes, concurrency, retries, breaker, resume, memory."""

from __future__ import annotations

import _thread
import gc
import hashlib
import random
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from cloudderm.classifier import ImageLimits
from cloudderm.compare import runner as runner_module
from cloudderm.compare.datasets import DatasetItem, open_dataset
from cloudderm.compare.pacing import CircuitBreaker, RateLimiter
from cloudderm.compare.runner import ProviderPlan, Runner
from cloudderm.compare.store import ResultStore, config_hash
from cloudderm.errors import ProviderHTTPError, ProviderThrottled, ResponseFormatError
from cloudderm.images import PreparedImage, prepare
from cloudderm.retry import RetryPolicy
from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.conftest import make_jpeg


def jpeg(i: int, size: tuple[int, int] = (16, 12)) -> bytes:
    return make_jpeg(((i * 37) % 256, (i * 91) % 256, (i * 53) % 256), size)


def items(n: int, size: tuple[int, int] = (16, 12)) -> list[DatasetItem]:
    return [
        DatasetItem(
            key=f"img{i:03d}.jpg",
            truth=None,
            truth_raw=None,
            metadata={"i": str(i)},
            loader=lambda d=jpeg(i, size): d,
        )
        for i in range(n)
    ]


class RecordingFake(FakeClassifier):
    """Keeps every image it was sent (bytes included) and can declare limits."""

    def __init__(
        self, name: str, settings: FakeSettings | None = None, limits: ImageLimits | None = None
    ) -> None:
        super().__init__(name, settings or FakeSettings(seed=name))
        self.limits = limits or ImageLimits()
        self.received: list[PreparedImage] = []

    def image_limits(self) -> ImageLimits:
        return self.limits

    def _infer(self, images: Sequence[PreparedImage]):
        with self._lock:
            self.received.extend(images)
        return super()._infer(images)


def plan(clf: FakeClassifier, concurrency: int = 1, rps: float | None = None) -> ProviderPlan:
    return ProviderPlan(
        clf.name, clf, config_hash(clf.settings), concurrency=concurrency, requests_per_second=rps
    )


@pytest.fixture
def store(tmp_path: Path):
    with ResultStore(tmp_path / "results.sqlite") as s:
        yield s


def statuses(store: ResultStore, clf: FakeClassifier, shas) -> Counter:
    chash = config_hash(clf.settings)
    return Counter(store.result(chash, sha)["status"] for sha in shas)


def test_every_provider_gets_identical_bytes_prepared_once_to_the_strictest_limits(store) -> None:
    a = RecordingFake("a", limits=ImageLimits(max_side=40))
    b = RecordingFake("b", FakeSettings(seed="b", batch_size=3), limits=ImageLimits(max_bytes=3000))
    runner = Runner([plan(a, 2), plan(b, 1)], store, queue_size=10)

    def hold_first_call_until_three_queued(image, attempt):
        if len(b.calls) == 1:
            for _ in range(1000):
                if runner.lanes[1].queue.qsize() >= 3:
                    break
                threading.Event().wait(0.01)
        return None

    b.fault = hold_first_call_until_three_queued
    outcome = runner.run(items(10, size=(120, 90)), 10)
    assert not outcome.interrupted and outcome.images == 10
    by_sha_a = {img.sha256: img.data for img in a.received}
    by_sha_b = {img.sha256: img.data for img in b.received}
    assert set(by_sha_a) == set(by_sha_b) and len(by_sha_a) == 10
    for sha, data in by_sha_a.items():
        assert by_sha_b[sha] == data and hashlib.sha256(data).hexdigest() == sha
    assert all(max(img.width, img.height) <= 40 and img.size_bytes <= 3000 for img in a.received)
    assert len(b.calls[1]) == 3 and all(len(c) <= 3 for c in b.calls)  # batched up to max_batch_size
    assert outcome.providers["a"].ok == outcome.providers["b"].ok == 10
    assert statuses(store, a, by_sha_a) == Counter(ok=10)


def test_concurrency_limit_is_reached_and_never_exceeded(store) -> None:
    wide = FakeClassifier("wide", FakeSettings(seed="w", latency_s=0.01))
    narrow = FakeClassifier("narrow", FakeSettings(seed="n", latency_s=0.01))
    barrier = threading.Barrier(3, timeout=20)
    first_calls = Counter()
    lock = threading.Lock()

    def meet(image, attempt):
        with lock:
            first_calls["n"] += 1
            mine = first_calls["n"]
        if mine <= 3:
            barrier.wait()  # only passes if three calls are in flight at once
        return None

    wide.fault = meet
    outcome = Runner([plan(wide, 3), plan(narrow, 1)], store, prepare_workers=2).run(items(24), 24)
    assert outcome.providers["wide"].ok == 24 and outcome.providers["narrow"].ok == 24
    assert wide.max_in_flight == 3
    assert narrow.max_in_flight == 1


def test_retries_only_retryable_errors_and_honours_retry_after(store) -> None:
    clf = FakeClassifier("p", FakeSettings(seed="p"))
    clf.retry_policy = RetryPolicy(max_retries=2, base_delay_s=0.1, rng=random.Random(1))
    data = items(5)
    throttled, bad_request, down, fine, buggy = (prepare(item.load()).sha256 for item in data)

    def fault(image, attempt):
        if image.sha256 == throttled and attempt <= 2:
            return ProviderThrottled("slow down", provider="p", retry_after=2.5)
        if image.sha256 == bad_request:
            return ProviderHTTPError("bad image", status=400, provider="p")
        if image.sha256 == down:
            return ProviderHTTPError("unavailable", status=503, provider="p")
        if image.sha256 == buggy:
            return KeyError("probabilities")  # an adapter bug, not a provider answer
        return None

    clf.fault = fault
    sleeps: list[float] = []
    Runner([plan(clf)], store, sleep=sleeps.append, breaker_threshold=0).run(data, 5)
    assert clf.per_image[throttled] == 3  # two throttles, then answered
    assert clf.per_image[bad_request] == 1  # 4xx: never retried
    assert clf.per_image[down] == 3  # 5xx: retried max_retries times
    assert clf.per_image[fine] == 1
    assert sleeps.count(2.5) == 2, sleeps  # Retry-After wins over the shorter jittered backoff
    assert all(s <= 0.1 * 2 for s in sleeps if s != 2.5)
    chash = config_hash(clf.settings)
    assert (
        store.result(chash, throttled)["status"] == "ok" and store.result(chash, throttled)["attempts"] == 3
    )
    assert store.result(chash, bad_request)["final"] is True  # permanent: never sent again
    assert store.result(chash, bad_request)["error_type"] == "ProviderHTTPError"
    assert store.result(chash, down)["final"] is False  # retryable: sent again on the next run
    assert store.result(chash, down)["attempts"] == 3
    assert clf.per_image[buggy] == 1
    assert (
        store.result(chash, buggy)["error_type"] == "KeyError"
        and store.result(chash, buggy)["final"] is False
    )


def test_one_bad_image_does_not_fail_its_batch(store) -> None:
    clf = FakeClassifier("batcher", FakeSettings(seed="x", batch_size=4, latency_s=0.005))
    data = items(8)
    poison = prepare(data[2].load()).sha256
    clf.fault = lambda image, attempt: (
        ResponseFormatError("bad", provider="batcher") if image.sha256 == poison else None
    )
    outcome = Runner([plan(clf)], store, breaker_threshold=0, queue_size=8).run(data, 8)
    assert outcome.providers["batcher"].ok == 7 and outcome.providers["batcher"].errors == 1


def test_circuit_breaker_skips_the_rest_and_a_rerun_retries_them(tmp_path: Path) -> None:
    data = items(10)
    dead = FakeClassifier("dead", FakeSettings(seed="d"))
    dead.fault = lambda image, attempt: ProviderHTTPError("down", status=502, provider="dead")
    healthy = FakeClassifier("healthy", FakeSettings(seed="h"))
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(dead), plan(healthy)], store, breaker_threshold=3).run(data, 10)
        stats = outcome.providers["dead"]
        assert len(dead.calls) == 3 and stats.errors == 3 and stats.skipped == 7
        assert "circuit breaker open after 3 consecutive failures" in stats.breaker
        assert outcome.providers["healthy"].ok == 10
        sent = [store.result(config_hash(dead.settings), s) for s in dead.per_image]
        assert [r["status"] for r in sent] == ["error"] * 3
    revived = FakeClassifier("dead", FakeSettings(seed="d"))
    healthy2 = FakeClassifier("healthy", FakeSettings(seed="h"))
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(revived), plan(healthy2)], store, breaker_threshold=3).run(data, 10)
    assert outcome.providers["dead"].ok == 10 and len(revived.calls) == 10  # errors and skips re-sent
    assert healthy2.calls == [] and outcome.providers["healthy"].reused == 10  # answered: never re-sent


def test_ctrl_c_keeps_answers_and_resume_repeats_no_answered_call(tmp_path: Path) -> None:
    data = items(30)
    a = FakeClassifier("a", FakeSettings(seed="a", latency_s=0.005))
    b = FakeClassifier("b", FakeSettings(seed="b", latency_s=0.005, batch_size=2))
    sent = Counter()
    lock = threading.Lock()

    def interrupt_after_eight(image, attempt):
        with lock:
            sent["n"] += 1
            if sent["n"] == 8:
                _thread.interrupt_main()  # the same KeyboardInterrupt a Ctrl-C raises
        return None

    a.fault = interrupt_after_eight
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(a, 2), plan(b, 2)], store).run(data, 30)
        assert outcome.interrupted
        answered = {
            clf.name: {
                s for s in clf.per_image if (r := store.result(config_hash(clf.settings), s)) and r["final"]
            }
            for clf in (a, b)
        }
    assert 0 < len(answered["a"]) < 30
    a2 = FakeClassifier("a", FakeSettings(seed="a", latency_s=0.005))
    b2 = FakeClassifier("b", FakeSettings(seed="b", latency_s=0.005, batch_size=2))
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(a2, 2), plan(b2, 2)], store).run(data, 30)
        assert not outcome.interrupted
        for first, second in ((a, a2), (b, b2)):
            assert not set(second.per_image) & answered[first.name], "an answered pair was sent again"
            all_shas = set(first.per_image) | set(second.per_image)
            assert len(all_shas) == 30
            assert statuses(store, second, all_shas) == Counter(ok=30)
            assert outcome.providers[first.name].reused == len(answered[first.name])


def test_stop_from_another_thread_finishes_in_flight_calls(store) -> None:
    clf = FakeClassifier("p", FakeSettings(seed="p", latency_s=0.01))
    runner = Runner([plan(clf, 2)], store)
    clf.fault = lambda image, attempt: runner.stop() if len(clf.calls) >= 5 else None
    outcome = runner.run(items(40), 40)
    assert outcome.interrupted
    assert outcome.providers["p"].ok == sum(clf.per_image.values())  # everything sent was recorded
    assert outcome.providers["p"].ok < 40


def test_unreadable_images_become_per_image_errors_once(tmp_path: Path) -> None:
    good = items(2)
    broken = [
        DatasetItem("garbage.jpg", None, None, {}, lambda: b"this is not an image"),
        DatasetItem("gone.jpg", None, None, {}, lambda: tmp_path / "does-not-exist.jpg"),
        DatasetItem("explodes.jpg", None, None, {}, lambda: 1 / 0),
    ]
    clf = FakeClassifier("p", FakeSettings(seed="p"))
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(clf)], store).run([*good, *broken], 5)
        assert outcome.invalid_images == 3 and outcome.providers["p"].errors == 3
        assert len(clf.calls) == 2
        rows = list(store.iter_run([("p", config_hash(clf.settings))]))
    errors = {item["image"]: answer for item, _, answer in rows if answer["status"] == "error"}
    assert set(errors) == {"garbage.jpg", "gone.jpg", "explodes.jpg"}
    assert all(a["error_type"] == "InvalidImageError" and a["final"] for a in errors.values())
    assert "not a recognised image" in errors["garbage.jpg"]["error"]
    assert "cannot read" in errors["gone.jpg"]["error"]
    assert "ZeroDivisionError" in errors["explodes.jpg"]["error"]
    with ResultStore(tmp_path / "r.sqlite") as store:
        again = Runner([plan(clf)], store).run([*good, *broken], 5)
    assert again.providers["p"].reused == 5 and len(clf.calls) == 2


def test_duplicate_images_are_sent_once(store) -> None:
    data = items(3)
    twin = DatasetItem("copy.jpg", None, None, {}, data[0].loader)
    clf = FakeClassifier("p", FakeSettings(seed="p"))
    outcome = Runner([plan(clf)], store).run([*data, twin], 4)
    assert len(clf.calls) == 3 and outcome.providers["p"].reused == 1
    assert len(list(store.iter_run([("p", config_hash(clf.settings))]))) == 4


def test_folder_resume_skips_decoding_answered_images(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.jpg").write_bytes(jpeg(i))
    clf = FakeClassifier("p", FakeSettings(seed="p"))
    with ResultStore(tmp_path / "r.sqlite") as store:
        Runner([plan(clf)], store).run(iter(open_dataset(folder)), 6)
    prepared = Counter()
    real = runner_module.prepare
    monkeypatch.setattr(runner_module, "prepare", lambda *a, **k: prepared.update(["x"]) or real(*a, **k))
    (folder / "6.jpg").write_bytes(jpeg(6))
    with ResultStore(tmp_path / "r.sqlite") as store:
        outcome = Runner([plan(clf)], store).run(iter(open_dataset(folder)), 7)
    assert prepared["x"] == 1  # only the new image was decoded
    assert outcome.providers["p"].reused == 6 and len(clf.calls) == 7


def test_requests_per_second_paces_every_attempt(store) -> None:
    clf = FakeClassifier("p", FakeSettings(seed="p"))
    waits: list[float] = []
    Runner([plan(clf, concurrency=3, rps=2.0)], store, sleep=waits.append).run(items(6), 6)
    assert len(clf.calls) == 6
    assert len(waits) >= 4 and max(waits) > 1.0  # slots 0.5 s apart, reserved ahead across threads


def test_memory_is_bounded_no_image_or_result_kept(tmp_path: Path, monkeypatch) -> None:
    alive = Counter()
    lock = threading.Lock()
    real = runner_module.prepare

    def tracked(*args, **kwargs):
        image = real(*args, **kwargs)
        with lock:
            alive["now"] += 1
            alive["peak"] = max(alive["peak"], alive["now"])

        def gone() -> None:
            with lock:
                alive["now"] -= 1

        weakref.finalize(image, gone)
        return image

    monkeypatch.setattr(runner_module, "prepare", tracked)
    clf = FakeClassifier("slow", FakeSettings(seed="s", latency_s=0.002))
    with ResultStore(tmp_path / "r.sqlite") as store:
        runner = Runner([plan(clf, 1)], store, prepare_workers=1, queue_size=4)
        outcome = runner.run(items(150), 150)
    assert outcome.providers["slow"].ok == 150
    # queue (4) + one in the worker + one in the preparer + one being built: independent of 150
    assert alive["peak"] <= 8, alive
    del runner
    gc.collect()
    assert alive["now"] == 0  # nothing holds on to images (or predictions) after the run


def test_rate_limiter_spaces_slots_with_a_fake_clock() -> None:
    waits: list[float] = []
    limiter = RateLimiter(4.0, clock=lambda: 100.0, sleep=waits.append)
    for _ in range(4):
        limiter.acquire()
    assert waits == [0.25, 0.5, 0.75]


def test_breaker_resets_on_success() -> None:
    breaker = CircuitBreaker(2)
    assert breaker.failure(RuntimeError("x")) is False
    breaker.success()
    assert breaker.failure(RuntimeError("x")) is False
    assert breaker.failure(RuntimeError("boom")) is True and breaker.is_open and "boom" in breaker.reason
    assert CircuitBreaker(0).failure(RuntimeError("x")) is False
