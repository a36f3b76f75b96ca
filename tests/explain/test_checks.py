"""The map arithmetic and the checks, on inputs whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from cloudderm.errors import ConfigError
from cloudderm.explain import checks
from cloudderm.explain.api import DEFAULT_MAX_CALLS, Budget, CallBudgetExceeded, ExplainOptions
from cloudderm.explain.maps import normalise, place_in_box, rank, spearman
from cloudderm.explain.occlusion import occlusion_plan


def test_normalise_is_zero_to_one_and_never_nan() -> None:
    out = normalise(np.array([[2.0, 4.0], [6.0, np.nan]]))
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert not np.isnan(normalise(np.full((3, 3), 5.0))).any()
    assert normalise(np.full((3, 3), 5.0)).max() == 0.0


def test_rank_averages_ties_and_spearman_matches_definition() -> None:
    assert rank(np.array([10.0, 20.0, 20.0, 30.0])).tolist() == [0.0, 1.5, 1.5, 3.0]
    a = np.arange(100, dtype=float)
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.zeros(100)) == 0.0
    rng = np.random.default_rng(0)
    assert abs(spearman(rng.random(10_000), rng.random(10_000))) < 0.05  # sd of rho is 1/sqrt(n-1) = 0.01


def test_place_in_box_puts_the_crop_back_and_zeroes_the_rest() -> None:
    out = place_in_box(np.ones((4, 4)), (10, 0, 30, 20), 40, 20)
    assert out.shape == (20, 40)
    assert out[:, 10:30].min() == pytest.approx(1.0) and out[:, :10].max() == 0 and out[:, 30:].max() == 0


def _lesion_image(size: int = 100) -> np.ndarray:
    """Light skin with a dark disc in the centre (radius 20) and a dark vignette in the corners."""
    pixels = np.full((size, size, 3), 200, dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    pixels[(yy - 50) ** 2 + (xx - 50) ** 2 <= 20**2] = 60
    pixels[:5, :5] = pixels[-5:, -5:] = 20
    return pixels


def test_otsu_splits_two_levels_between_them() -> None:
    gray = np.array([50] * 10 + [200] * 10)
    assert 50 <= checks.otsu(gray) < 200


def test_focus_shares_follow_the_lesion_mask() -> None:
    pixels = _lesion_image()
    mask = checks.lesion_mask(pixels)
    assert mask[50, 50] and not mask[0, 0], "corners are vignette (border band), not lesion"
    on_lesion = mask.astype(np.float32)
    result = checks.focus(pixels, on_lesion)
    assert result["lesion_share"] == pytest.approx(1.0) and result["flag"] is None
    on_border = np.zeros((100, 100), dtype=np.float32)
    on_border[:, :5] = 1.0
    shortcut = checks.focus(pixels, on_border)
    assert shortcut["border_share"] == pytest.approx(1.0)
    assert shortcut["flag"] and shortcut["flag"].startswith("possible shortcut")
    assert sum(shortcut[k] for k in ("lesion_share", "border_share", "background_share")) == pytest.approx(
        1.0
    )


def test_an_empty_map_is_flagged_as_such_not_as_a_shortcut() -> None:
    result = checks.focus(_lesion_image(), np.zeros((100, 100), dtype=np.float32))
    assert result["flag"].startswith("empty map") and result["lesion_share"] == 0.0


def test_deletion_masks_the_top_and_random_fractions() -> None:
    pixels = np.full((10, 10, 3), 100, dtype=np.uint8)
    pixels[0, 0] = 0
    saliency = np.zeros((10, 10), dtype=np.float32)
    saliency[:2, :] = 1.0  # the top 20 pixels
    top, random = checks.deletion_images(pixels, saliency)
    fill = pixels.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    assert (top[:2] == fill).all() and (top[2:] == pixels[2:]).all()
    assert ((random != pixels).any(axis=2)).sum() <= 20
    assert checks.deletion_result(0.9, 0.2, 0.85)["flag"] is None
    assert checks.deletion_result(0.9, 0.88, 0.85)["flag"].startswith("deletion")


def test_occlusion_plan_tiles_cover_the_image_once() -> None:
    pixels = np.zeros((30, 45, 3), dtype=np.uint8)
    plan = occlusion_plan(pixels, grid=4)
    assert len(plan.images) == 1 + 16 and plan.parameters["calls_per_map"] == 17
    cover = np.zeros((30, 45), dtype=int)
    for top, left, bottom, right in plan.tiles:
        cover[top:bottom, left:right] += 1
    assert (cover == 1).all()
    scores = [0.8] + [0.8] * 16
    scores[1] = 0.3  # occluding the first tile costs 0.5
    saliency = plan.saliency(scores)
    assert saliency[0, 0] == pytest.approx(0.5) and saliency[-1, -1] == 0.0


def test_budget_refuses_above_the_default_or_max_calls() -> None:
    class Pair:
        def __init__(self, calls: int) -> None:
            self.calls = calls

    budget = Budget([Pair(DEFAULT_MAX_CALLS + 1)])  # type: ignore[list-item]
    with pytest.raises(CallBudgetExceeded, match="--max-calls"):
        budget.check(None, yes=False)
    budget.check(None, yes=True)
    budget.check(DEFAULT_MAX_CALLS + 1, yes=False)
    with pytest.raises(CallBudgetExceeded):
        budget.check(10, yes=True)  # an explicit cap wins over --yes
    assert isinstance(CallBudgetExceeded("x"), ConfigError), "exit code 2 through the CLI"


def test_unknown_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        ExplainOptions(method="lime")
