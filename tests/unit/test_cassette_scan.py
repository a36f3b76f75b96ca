"""CI gate: the cassettes checked into tests/cassettes hold no secret and no image data.

`make test` runs this, so a leaky recording cannot be merged. Same check by hand:
``python -m cloudderm.testing.scan tests/cassettes``.
"""

from __future__ import annotations

import yaml

from cloudderm.testing.scan import scan_cassettes
from tests.conftest import REPO_ROOT

CASSETTES = REPO_ROOT / "tests" / "cassettes"


def test_checked_in_cassettes_hold_no_secrets_or_images() -> None:
    scanned = scan_cassettes(CASSETTES)
    assert scanned, f"no cassettes under {CASSETTES}"


def test_checked_in_cassettes_keep_request_bodies_as_hashes_only() -> None:
    for path in sorted(CASSETTES.rglob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        assert document["format"] == "cloudderm-cassette/1", path
        for interaction in document["interactions"]:
            body = interaction["request"]["body"]
            assert set(body) <= {"sha256", "length", "hash_of", "media_type", "json"}, path
            assert len(body["sha256"]) == 64, path
