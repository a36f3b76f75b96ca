"""The fake provider passes the conformance suite (which also proves the suite itself runs)."""

from __future__ import annotations

import pytest

from cloudderm.testing import ClassifierConformance
from cloudderm.testing.fakes import FakeClassifier, FakeSettings


class TestFakeConformance(ClassifierConformance):
    @pytest.fixture
    def classifier(self) -> FakeClassifier:
        return FakeClassifier("fake", FakeSettings(batch_size=2))
