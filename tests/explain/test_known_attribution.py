"""Maps checked against attributions known by construction, and the randomisation check on a trained model.

QuadrantNet's answer depends only on the image's top-left quadrant, so every faithful method must put its
mass there; the bound 0.9 leaves room for the last convolution's one-pixel reach across the quadrant's edge
(a 1-pixel ring around a 16x16 quadrant of a 32x32 input is at most 33/256 = 13% of its area, carrying
far less mass because only half its 3x3 taps see unmasked features).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("captum")

from cloudderm.explain.api import Explainer, ExplainOptions
from tests.explain.models import (
    NetClassifier,
    blob_image,
    quadrant_share,
    textured_image,
    torch_target,
    train_blob_net,
)


@pytest.mark.parametrize("method", ["gradcam", "integrated-gradients", "occlusion"])
def test_map_concentrates_in_the_quadrant_the_model_reads(method: str) -> None:
    clf = NetClassifier("quadrant")
    image = clf.prepare(textured_image())
    explainer = Explainer(ExplainOptions(method=method, grid=8))
    budget = explainer.plan([(image, clf)])
    exp = explainer.explain(budget.pairs[0])
    assert exp.saliency.shape == (image.height, image.width) and exp.saliency.dtype == np.float32
    assert exp.saliency.min() >= 0.0 and exp.saliency.max() == pytest.approx(1.0)
    assert quadrant_share(exp.saliency) > 0.9, "the bright decoy in the bottom-right must get no mass"
    assert exp.target_label == "mel" and exp.target_canonical == "mel"
    assert exp.deletion is not None and exp.deletion["drop_top"] > exp.deletion["drop_random"]
    if method == "occlusion":
        assert exp.calls == budget.calls == 8 * 8 + 1 + 2 == clf.sent
    else:
        assert exp.calls == budget.calls == 0 == clf.sent, "gradients need no provider call"


def test_auto_picks_gradcam_for_a_local_cnn_and_target_selects_the_class() -> None:
    clf = NetClassifier("quadrant")
    exp = clf.explain(textured_image(), target="nv")
    assert exp.method == "gradcam" and exp.target_label == "nv"


@pytest.fixture(scope="module")
def blob_classifier() -> NetClassifier:
    net = train_blob_net(steps=60)
    clf = NetClassifier("blob", net=net)
    clf.explain_target = lambda: torch_target(net)  # type: ignore[method-assign]
    return clf


def test_randomisation_separates_a_trained_model_from_its_randomised_copy(blob_classifier) -> None:
    """Adebayo et al.: Grad-CAM of the trained model must decorrelate (< 0.5) from the randomised one."""
    exp = blob_classifier.explain(blob_image(), method="gradcam", sanity=True)
    assert exp.target_label == "mel" and exp.target_score > 0.9, "precondition: the net learnt the blob"
    assert exp.sanity is not None and exp.sanity["spearman"] < 0.5 and exp.sanity["flag"] is None
    assert exp.sanity["randomised_layers"] == ["head", "conv2"]
    blob = exp.saliency[40:52, 12:24].sum() / exp.saliency.sum()
    assert blob > 0.2, "the 12x12 blob is 3.5% of the image; a faithful map gives it far more"
    assert exp.deletion["drop_top"] > exp.deletion["drop_random"]
    ig = blob_classifier.explain(blob_image(), method="integrated-gradients", sanity=True)
    assert -1.0 <= ig.sanity["spearman"] <= 1.0 and ig.sanity["required"] is False


def test_a_map_that_ignores_the_weights_is_flagged() -> None:
    """QuadrantNet's maps are fixed by its mask, not its weights: randomising them barely changes the map."""
    exp = NetClassifier("quadrant").explain(textured_image(), method="gradcam", sanity=True)
    assert exp.sanity["spearman"] >= 0.5 and exp.sanity["flag"].startswith("sanity")
    assert any(flag.startswith("sanity") for flag in exp.flags)


def test_the_python_api_refuses_over_budget_before_any_call() -> None:
    from cloudderm.explain.api import CallBudgetExceeded

    clf = NetClassifier("quadrant")
    with pytest.raises(CallBudgetExceeded, match="52"):  # default 7x7 tiles + baseline + 2 deletion images
        clf.explain(textured_image(), method="occlusion", max_calls=10)
    assert clf.sent == 0
