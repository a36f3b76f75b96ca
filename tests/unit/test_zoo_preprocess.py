"""The zoo models' preprocessing and metadata, checked against TensorFlow 2.17.0's own outputs.

The hashes come from tests/fixtures/zoo (see PROVENANCE.md): TF's decoded uint8 array and resized float32
tensor for each file. Equality of SHA-256 means bit-exact, which is what the model parity relies on.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cloudderm.models.cards import SKLESION_AGE_MEAN, SKLESION_SITES, sklesion_site
from cloudderm.models.metadata import UNKNOWN_METADATA, context_fields, sklesion_metadata

pytest.importorskip("simplejpeg", reason='needs the zoo extra: pip install "cloudderm[zoo]"')

from cloudderm.models.preprocess import decode_like_tf, effnet_tensor, tf_resize_bilinear

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zoo"


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize(
    "name",
    sorted(json.loads((FIXTURES / "decode" / "decode_reference.json").read_text())["cases"]),
)
def test_edge_case_files_decode_and_resize_bit_exact_like_tf(name: str) -> None:
    expected = json.loads((FIXTURES / "decode" / "decode_reference.json").read_text())["cases"][name]
    pixels = decode_like_tf((FIXTURES / "decode" / name).read_bytes())
    assert list(pixels.shape) == expected["shape"] and pixels.dtype == np.uint8
    assert _sha(pixels) == expected["decoded_sha256"], f"{name}: decoded pixels differ from TF"
    assert _sha(tf_resize_bilinear(pixels, 254, 254)) == expected["tensor_sha256"]


def test_shared_images_decode_and_resize_bit_exact_like_tf(shared_data: Path) -> None:
    ref = np.load(FIXTURES / "sklesion_reference.npz")
    mismatched = []
    for name, decoded, tensor in zip(ref["names"], ref["decoded_sha256"], ref["tensor_sha256"]):
        pixels = decode_like_tf((shared_data / str(name)).read_bytes())
        if _sha(pixels) != decoded or _sha(tf_resize_bilinear(pixels, 254, 254)) != tensor:
            mismatched.append(str(name))
    assert not mismatched, f"not bit-exact with TF: {mismatched}"
    assert len(ref["names"]) == 41


def test_resize_to_the_same_size_is_the_identity() -> None:
    pixels = np.random.RandomState(0).randint(0, 256, size=(7, 9, 3)).astype(np.uint8)
    assert np.array_equal(tf_resize_bilinear(pixels, 7, 9), pixels.astype(np.float32))


def test_effnet_tensor_is_centre_cropped_and_scaled() -> None:
    raw = (FIXTURES / "decode" / "sub444.jpg").read_bytes()
    tensor = effnet_tensor(raw)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32
    assert tensor.min() >= -127 / 128 - 1e-6 and tensor.max() <= 128 / 128 + 1e-6


def test_unknown_metadata_is_the_packages_vector() -> None:
    expected = [0, 0, 1, 0, 0, 0, 0, 1, SKLESION_AGE_MEAN / 90.0, 1]
    np.testing.assert_allclose(UNKNOWN_METADATA, np.array(expected, np.float32))
    np.testing.assert_array_equal(sklesion_metadata(None, "weird", "acral"), UNKNOWN_METADATA)


def test_known_metadata_matches_the_reference_cases() -> None:
    ref = np.load(FIXTURES / "sklesion_reference.npz")
    built = [
        sklesion_metadata(45, "female", "trunk"),
        sklesion_metadata(80, "male", "face"),
        sklesion_metadata(70, "M", "neck"),
        sklesion_metadata(30.0, "female", "upper extremity"),
        sklesion_metadata(None, None, "lower_extremity"),
    ]
    np.testing.assert_allclose(np.stack(built), ref["meta_case_vectors"], atol=1e-7)


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        *[(s, "arm") for s in ("upper extremity", "arm", "forearm", "hand", "UPPER_EXTREMITY")],
        *[(s, "head-or-neck") for s in ("face", "scalp", "ear", "neck", "nose", "lip")],
        *[(s, "leg-or-genital") for s in ("lower extremity", "thigh", "leg", "foot", "genital")],
        *[(s, "trunk") for s in ("trunk", "back", "chest", "abdomen")],
        *[(s, "unknown") for s in ("acral", "unknown", "", None, "elbow?")],
    ],
)
def test_site_mapping_table(site: str | None, expected: str) -> None:
    assert sklesion_site(site) == expected


def test_site_table_only_names_sklesions_locations() -> None:
    assert set(SKLESION_SITES.values()) == {"arm", "head-or-neck", "leg-or-genital", "trunk"}


def test_context_is_read_from_objects_dicts_and_absence() -> None:
    assert context_fields(SimpleNamespace(data=b"")) == (None, None, None)
    assert context_fields(SimpleNamespace(context={"age": 3, "sex": "male", "site": "ear"})) == (
        3,
        "male",
        "ear",
    )
    ctx = SimpleNamespace(age=40.0, sex="female", site="back")
    assert context_fields(SimpleNamespace(context=ctx)) == (40.0, "female", "back")
