"""What the Classifier base guarantees for every adapter: normalisation, warnings, batching, retries."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest

from cloudderm.classifier import Classifier, ImageLimits, RawResult
from cloudderm.errors import ProviderHTTPError, ProviderThrottled, ResponseFormatError
from cloudderm.facts import ServiceFacts
from cloudderm.images import PreparedImage
from cloudderm.retry import RetryPolicy, call_with_retries
from cloudderm.testing.fakes import FakeClassifier, FakeSettings


class Scripted(Classifier):
    """Returns whatever the test scripted, to exercise the base class's normalisation."""

    adapter = "scripted"

    def __init__(self, results: list[RawResult], batch: int = 1) -> None:
        super().__init__("scripted", FakeSettings())
        self.results = results
        self.max_batch_size = batch
        self.batches: list[int] = []

    @property
    def model_id(self) -> str:
        return "scripted-model"

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(service="test", vendor="local", region="local", data_leaves_machine=False)

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        self.batches.append(len(images))
        return [self.results[i % len(self.results)] for i in range(len(images))]


def test_labels_sorted_and_mapped(sample_images) -> None:
    clf = Scripted([RawResult(labels=[("nevus", 0.2), ("melanoma", 0.8)], request_id="r1")])
    p = clf.classify(sample_images[0])
    assert [ls.label for ls in p.labels] == ["melanoma", "nevus"]
    assert (p.canonical, p.triage, p.request_id, p.model) == ("mel", "concerning", "r1", "scripted-model")
    assert p.warnings == []


def test_out_of_domain_warning(sample_images) -> None:
    p = Scripted([RawResult(labels=[("coffee bean", 0.9), ("nevus", 0.1)])]).classify(sample_images[0])
    assert p.canonical is None and p.triage is None
    assert any("out-of-domain" in w and "coffee bean" in w for w in p.warnings)


def test_not_normalised_and_independent_warnings(sample_images) -> None:
    p = Scripted([RawResult(labels=[("nevus", 0.9), ("melanoma", 0.9)])]).classify(sample_images[0])
    assert any("not normalised" in w for w in p.warnings)
    p = Scripted([RawResult(labels=[("nevus", 0.9), ("melanoma", 0.9)], scores_independent=True)]).classify(
        sample_images[0]
    )
    assert any("independent" in w for w in p.warnings) and not any("not normalised" in w for w in p.warnings)
    truncated = RawResult(labels=[("nevus", 0.6)], details={"truncated_labels": True})
    assert not any("not normalised" in w for w in Scripted([truncated]).classify(sample_images[0]).warnings)


def test_standing_warnings_on_every_prediction(sample_images) -> None:
    clf = Scripted([RawResult(labels=[("nevus", 1.0)])])
    clf.standing_warnings.append("model card prohibits medical diagnosis use")
    for p in clf.classify_batch(sample_images):
        assert "model card prohibits medical diagnosis use" in p.warnings


def test_batches_respect_max_batch_size(sample_images) -> None:
    clf = Scripted([RawResult(labels=[("nevus", 1.0)])], batch=2)
    predictions = clf.classify_batch(sample_images)
    assert clf.batches == [2, 1]
    assert len(predictions) == 3 and predictions[0].provider_details["batch_size"] == 2


def test_result_count_mismatch_is_format_error(sample_images) -> None:
    class Short(Scripted):
        def _infer(self, images):  # type: ignore[no-untyped-def]
            return []

    with pytest.raises(ResponseFormatError, match="0 results for 1 images"):
        Short([]).classify(sample_images[0])


def test_score_range_enforced(sample_images) -> None:
    with pytest.raises(ValueError):
        Scripted([RawResult(labels=[("nevus", 1.5)])]).classify(sample_images[0])


def test_limits_merge() -> None:
    merged = ImageLimits(max_bytes=100).merge(ImageLimits(max_bytes=50, max_side=10))
    assert merged == ImageLimits(max_bytes=50, max_side=10)


def test_classify_retries_retryable_only(sample_images, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda s: None)
    clf = FakeClassifier("f", FakeSettings(max_retries=3))
    clf.fault = lambda image, attempt: ProviderThrottled("slow down") if attempt <= 2 else None
    assert clf.classify(sample_images[0]).provider == "f"
    assert clf.per_image[clf.calls[0][0]] == 3
    clf4 = FakeClassifier("g", FakeSettings(max_retries=3))
    clf4.fault = lambda image, attempt: ProviderHTTPError("bad request", status=400)
    with pytest.raises(ProviderHTTPError):
        clf4.classify(sample_images[0])
    assert len(clf4.calls) == 1


def test_retry_policy_honours_retry_after_and_caps() -> None:
    sleeps: list[float] = []
    attempts = {"n": 0}

    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ProviderThrottled("429", retry_after=7.0)
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(max_retries=5, max_delay_s=30), sleep=sleeps.append) == "ok"
    assert sleeps == [7.0, 7.0]
    policy = RetryPolicy(max_retries=1, base_delay_s=1, max_delay_s=2)
    assert 0 <= policy.delay(10, ProviderThrottled("x")) <= 2
    with pytest.raises(ProviderThrottled):
        call_with_retries(lambda: (_ for _ in ()).throw(ProviderThrottled("x")), policy, sleep=lambda s: None)


def test_settings_of_another_adapter_are_refused() -> None:
    from cloudderm.classifier import AdapterSettings
    from cloudderm.errors import ConfigError

    with pytest.raises(ConfigError, match="settings must be FakeSettings, not AdapterSettings"):
        FakeClassifier("f", AdapterSettings(adapter="fake"))


def test_label_scores_validate_in_one_pass_sorted_and_clamped() -> None:
    from pydantic import ValidationError

    from cloudderm.classifier import label_scores
    from cloudderm.prediction import LabelScore

    pairs = [("a", 0.2), ("b", 1.0000001), ("c", -1e-9), ("d", 0.5)]
    assert label_scores(pairs) == [
        LabelScore(label="b", score=1.0),
        LabelScore(label="d", score=0.5),
        LabelScore(label="a", score=0.2),
        LabelScore(label="c", score=0.0),
    ]
    with pytest.raises(ValidationError):
        label_scores([("a", 1.5)])


# ---- the one-pass _finish gives exactly what the two-pass one gave --------------------------------
FINISH_CASES = {
    "ham10000, unsorted": RawResult(labels=[("nv", 0.11), ("bkl", 0.2), ("mel", 0.69)], request_id="r"),
    "ties keep the provider's order": RawResult(
        labels=[("b", 0.25), ("a", 0.25), ("mel", 0.25), ("nv", 0.25)]
    ),
    "clamped noise": RawResult(labels=[("a", 0.2), ("b", 1.0000001), ("c", -1e-9), ("d", 0.5)]),
    "int scores and a non-text label": RawResult(labels=[(3, 0), ("melanoma", 1)]),  # type: ignore[list-item]
    "out of domain, not normalised": RawResult(labels=[("coffee bean", 0.9), ("nevus", 0.5)]),
    "independent scores": RawResult(labels=[("nevus", 0.9), ("melanoma", 0.9)], scores_independent=True),
    "truncated": RawResult(labels=[("nevus", 0.6)], details={"truncated_labels": True}, warnings=["w", "w"]),
    "batch size already in the details": RawResult(
        labels=[("mel", 1.0)], details={"batch_size": 8, "x": [1]}
    ),
    "abstained": RawResult(labels=[], outcome="abstained", reason="refused " * 60),
    "unparseable with labels": RawResult(labels=[("nv", 1.0)], outcome="unparseable", reason="?"),
    "imagenet-sized": RawResult(
        labels=[(f"class {i}", ((i * 7919) % 1000) / 1000 / 500) for i in range(1000)]
    ),
}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", FINISH_CASES)
def test_finish_equals_the_two_pass_reference(sample_images, case: str, batch: int) -> None:
    from cloudderm.images import prepare
    from tests.prediction_reference import prediction_before

    clf = Scripted([])
    clf.standing_warnings.append("w")
    image = prepare(sample_images[0])
    raw = FINISH_CASES[case]
    untouched = copy.deepcopy(raw)
    for _ in range(2):  # the second time, the taxonomy answers from what it remembered
        got = clf._finish(image, raw, 12.5, batch)
        want = prediction_before(clf, image, raw, 12.5, batch)
        assert got.model_dump() == want.model_dump()
        assert [type(ls.score) for ls in got.labels] == [float] * len(got.labels)
        assert got.provider_details is not raw.details and got.warnings is not raw.warnings
    assert raw == untouched  # the adapter's RawResult is read, never changed


def test_finish_still_refuses_out_of_range_scores(sample_images) -> None:
    from pydantic import ValidationError

    from cloudderm.images import prepare

    for labels in ([("nevus", 1.5)], [("nevus", float("nan"))], [("nevus", -0.1), ("mel", 0.5)]):
        with pytest.raises(ValidationError):
            Scripted([])._finish(prepare(sample_images[0]), RawResult(labels=labels), 1.0, 1)


def test_plan_batches_edges(sample_images) -> None:
    images = [object()] * 5
    clf = Scripted([], batch=2)
    assert clf.plan_batches([]) == []
    assert clf.plan_batches(images[:1]) == [images[:1]]
    assert clf.plan_batches(images[:2]) == [images[:2]]
    assert clf.plan_batches(images) == [images[:2], images[2:4], images[4:]]


def test_a_prediction_built_directly_sorts_its_labels_stably() -> None:
    from cloudderm.prediction import LabelScore, Prediction

    given = [("nv", 0.2), ("a", 0.4), ("b", 0.4), ("mel", 0.0)]
    for labels in (
        [{"label": k, "score": v} for k, v in given],
        [LabelScore(label=k, score=v) for k, v in given],
    ):
        p = Prediction(provider="p", adapter="a", model="m", image_sha256="0", labels=labels, latency_ms=1.0)
        assert [(ls.label, ls.score) for ls in p.labels] == [
            ("a", 0.4),
            ("b", 0.4),
            ("nv", 0.2),
            ("mel", 0.0),
        ]
        assert Prediction.model_validate_json(p.model_dump_json()) == p
