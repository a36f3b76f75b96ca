"""The conformance suite every adapter's tests mix in, cloudderm's own and third-party plugins' alike.

Usage (needs pytest)::

    from cloudderm.testing import ClassifierConformance

    class TestMyAdapter(ClassifierConformance):
        @pytest.fixture
        def classifier(self, ...):  # a ready Classifier whose calls are served offline
            ...

Optional fixture overrides: ``secret_values`` (strings that must never appear in reprs, errors or
predictions), ``batch_tolerance`` (max score difference between batched and one-by-one results; ground it
in the arithmetic: CPU kernels differ by batch size) and ``sample_images`` (three small JPEGs by default,
the second with EXIF GPS tags). The contracts checked are listed in docs/architecture.md ("Contracts").
"""

from __future__ import annotations

import pickle

import pytest

from cloudderm.classifier import Classifier
from cloudderm.core import ImageContext, PriceQuery
from cloudderm.facts import GovernanceCard
from cloudderm.images import prepare
from cloudderm.prediction import Prediction
from cloudderm.testing.samples import sample_jpegs

__all__ = ["ClassifierConformance"]


class ClassifierConformance:
    """Behaviour every Classifier must show, whatever provider sits behind it."""

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return []

    @pytest.fixture
    def batch_tolerance(self) -> float:
        return 1e-5

    @pytest.fixture
    def sample_images(self) -> list[bytes]:
        return sample_jpegs()

    def test_is_a_classifier(self, classifier: Classifier) -> None:
        assert isinstance(classifier, Classifier)
        assert classifier.name
        assert isinstance(classifier.adapter, str) and classifier.adapter
        assert classifier.model_id
        assert isinstance(type(classifier).vendor, str) and type(classifier).vendor
        assert isinstance(classifier.price_query(), PriceQuery)

    def test_classify_returns_normalised_prediction(self, classifier: Classifier, sample_images) -> None:
        prediction = classifier.classify(sample_images[0])
        assert isinstance(prediction, Prediction)
        assert prediction.provider == classifier.name
        assert prediction.adapter == classifier.adapter
        assert prediction.labels, "a prediction must carry at least one label"
        scores = [ls.score for ls in prediction.labels]
        assert scores == sorted(scores, reverse=True)
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert prediction.latency_ms >= 0.0
        assert prediction.top == prediction.labels[0]
        assert prediction.outcome == "answered", "classifiers always answer (only generative models abstain)"
        limits = classifier.image_limits()
        expected = prepare(sample_images[0], max_bytes=limits.max_bytes, max_side=limits.max_side)
        assert prediction.image_sha256 == expected.sha256

    def test_taxonomy_fields_are_consistent(self, classifier: Classifier, sample_images) -> None:
        prediction = classifier.classify(sample_images[0])
        assert prediction.canonical == classifier.taxonomy.canonical(prediction.top.label)
        assert prediction.triage == classifier.taxonomy.triage(prediction.canonical)
        if prediction.canonical is None:
            assert any("out-of-domain" in w for w in prediction.warnings)

    def test_batch_matches_one_by_one_in_order(
        self, classifier: Classifier, sample_images, batch_tolerance
    ) -> None:
        batch = classifier.classify_batch(sample_images)
        assert len(batch) == len(sample_images)
        singles = [classifier.classify(image) for image in sample_images]
        for b, s in zip(batch, singles):
            assert b.image_sha256 == s.image_sha256
            assert [ls.label for ls in b.labels][:1] == [ls.label for ls in s.labels][:1]
            by_label = {ls.label: ls.score for ls in s.labels}
            for ls in b.labels:
                assert abs(ls.score - by_label[ls.label]) <= batch_tolerance

    def test_classify_prepared_accepts_shared_bytes(self, classifier: Classifier, sample_images) -> None:
        limits = classifier.image_limits()
        prepared = [
            prepare(i, max_bytes=limits.max_bytes, max_side=limits.max_side) for i in sample_images[:2]
        ]
        predictions = classifier.classify_prepared(prepared)
        assert [p.image_sha256 for p in predictions] == [p.sha256 for p in prepared]

    def test_governance_card(self, classifier: Classifier) -> None:
        card = classifier.governance
        assert isinstance(card, GovernanceCard)
        assert card.provider == classifier.name
        assert card.adapter == classifier.adapter
        assert card.service.service
        assert isinstance(card.service.data_leaves_machine, bool)

    def test_no_secret_in_repr_or_output(self, classifier: Classifier, sample_images, secret_values) -> None:
        prediction = classifier.classify(sample_images[0])
        texts = [
            repr(classifier),
            str(classifier.settings),
            repr(classifier.settings),
            prediction.model_dump_json(),
            classifier.governance.model_dump_json(),
        ]
        for secret in secret_values:
            for text in texts:
                assert secret not in text

    def test_warm_up_is_idempotent_and_classify_still_works(
        self, classifier: Classifier, sample_images
    ) -> None:
        classifier.warm_up()
        classifier.warm_up()
        assert classifier.classify(sample_images[0]).labels

    def test_context_manager_closes(self, classifier: Classifier) -> None:
        with classifier as entered:
            assert entered is classifier

    def test_accepts_a_per_image_context(self, classifier: Classifier, sample_images) -> None:
        context = ImageContext(age=55.0, sex="female", site="back")
        prediction = classifier.classify(sample_images[0], context=context)
        assert prediction.labels or prediction.outcome != "answered"
        (paired,) = classifier.classify_batch([(sample_images[0], {"age": 55, "sex": "F", "site": "back"})])
        assert paired.image_sha256 == prediction.image_sha256

    def test_pickles_as_settings(self, classifier: Classifier) -> None:
        """Process pools and Ray ship adapters to workers: rebuilt from settings, clients made lazily."""
        copy = pickle.loads(pickle.dumps(classifier))
        assert type(copy) is type(classifier)
        assert (copy.name, copy.settings, copy.model_id) == (
            classifier.name,
            classifier.settings,
            classifier.model_id,
        )
