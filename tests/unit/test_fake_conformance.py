"""The fake provider passes the conformance suite (which also proves the suite itself runs)."""

from __future__ import annotations

import pytest

from cloudderm.testing.fakes import FakeClassifier, FakeSettings
from tests.adapters.conformance import ClassifierConformance


class TestFakeConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self) -> FakeClassifier:
        return FakeClassifier("fake", FakeSettings(batch_size=2))
