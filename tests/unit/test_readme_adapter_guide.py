"""The README's "Adding an adapter" example works as written: built from settings, priced from its own
query, classifies through a loopback server, pickles, and passes the shipped conformance suite."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from cloudderm.pricing.catalog import Catalog
from cloudderm.pricing.resolve import PricingTarget, resolve
from cloudderm.testing import ClassifierConformance
from tests.e2e.loopback import Loopback, Seen, json_reply

README = Path(__file__).resolve().parents[2] / "README.md"
MODULE = "readme_acme"


def load_example() -> types.ModuleType:
    text = README.read_text()
    match = re.search(r"```python\n# my_pkg/acme.py\n(.*?)```", text, re.S)
    assert match, "the README's worked adapter example is missing"
    module = types.ModuleType(MODULE)
    sys.modules[MODULE] = module  # importable by name, as a real package would be (pickle needs that)
    exec(compile(match.group(1), str(README), "exec"), module.__dict__)
    return module


def acme_server(seen: Seen):  # type: ignore[no-untyped-def]
    body = json.loads(seen.body)
    if seen.headers.get("Authorization") != "Bearer k-123":
        return json_reply({"error": "bad key"}, status=401)
    results = [{"predictions": [{"label": "melanoma", "score": 0.7}, {"label": "nevus", "score": 0.3}]}]
    return json_reply({"results": results * len(body["images"])}, **{"x-request-id": "r-1"})


@pytest.fixture(scope="module")
def acme() -> types.ModuleType:
    return load_example()


@pytest.fixture(scope="module")
def server():  # type: ignore[no-untyped-def]
    with Loopback(acme_server) as running:
        yield running


class TestReadmeAdapter(ClassifierConformance):
    @pytest.fixture
    def classifier(self, acme, server):  # type: ignore[no-untyped-def]
        settings = acme.AcmeSettings(api_key="k-123", endpoint_url=server.url)
        return acme.AcmeClassifier("acme-1", settings)

    @pytest.fixture
    def secret_values(self) -> list[str]:
        return ["k-123"]


def test_the_example_is_priced_from_its_own_catalog_row(acme) -> None:
    clf = acme.AcmeClassifier("acme-1", acme.AcmeSettings(api_key="k"))
    entry = {
        "id": "acme-vision-classify",
        "vendor": "acme",
        "service": "acme-vision",
        "operation": "classify",
        "kind": "per_1k_units",
        "unit": "1,000 images",
        "currency": "USD",
        "tiers": [{"first_unit": 1, "last_unit": None, "price_per_1k": 2.0}],
        "as_of": "2026-11-23",
        "source": "https://acme-vision.example/pricing",
    }
    catalog = Catalog.model_validate({"as_of": "2026-11-23", "entries": [entry]})
    resolution = resolve(PricingTarget.of(clf), catalog)
    assert resolution.model is not None and resolution.model.cost_per_call(1) == pytest.approx(0.002)


def test_a_rejected_key_is_a_provider_auth_error(acme, server) -> None:
    from cloudderm.errors import ProviderAuthError
    from cloudderm.testing.samples import sample_jpegs

    clf = acme.AcmeClassifier("acme-1", acme.AcmeSettings(api_key="wrong", endpoint_url=server.url))
    with pytest.raises(ProviderAuthError, match="renew ACME_API_KEY") as caught:
        clf.classify(sample_jpegs()[0])
    assert "wrong" not in str(caught.value)
