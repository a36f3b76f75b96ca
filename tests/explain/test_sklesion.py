"""The real skin-lesion model (built-in ``sklesion-xception``): Grad-CAM passes the randomisation check.

Needs the model zoo (``cloudderm.adapters.zoo``) and the fetched weights; skips naming the fetch command
otherwise. Measured when written: Spearman 0.04 / 0.11 / -0.29 on ISIC_0000000/1/2 (threshold 0.5).
"""

from __future__ import annotations

import pytest

from tests.conftest import REPO_ROOT

pytest.importorskip("captum")
zoo = pytest.importorskip("cloudderm.adapters.zoo", reason="the model zoo is not in this checkout")
pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def sklesion():
    from cloudderm.models.store import is_ready

    clf = zoo.ZooClassifier("sklesion", zoo.ZooSettings(model="sklesion-xception"))
    if not is_ready(clf.card):
        pytest.skip("sklesion-xception is not cached: run `cloudderm models fetch sklesion-xception`")
    return clf


@pytest.mark.slow
def test_gradcam_on_the_real_model_decorrelates_from_its_randomised_copy(sklesion) -> None:
    image = REPO_ROOT / "examples" / "images" / "ISIC_0000000.jpg"
    exp = sklesion.explain(image, sanity=True)
    assert exp.method == "gradcam" and "block14" in exp.parameters["layer"]
    assert exp.target_canonical is not None, "the model answers in the HAM10000 taxonomy"
    assert exp.sanity["spearman"] < 0.5 and exp.sanity["flag"] is None
    assert any("block14" in name for name in exp.sanity["randomised_layers"])
    assert exp.deletion["drop_top"] > exp.deletion["drop_random"]
