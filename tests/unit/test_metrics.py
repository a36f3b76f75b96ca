"""Every metric against values worked out by hand on small cases (the working is in each test)."""

from __future__ import annotations

import numpy as np
import pytest

from cloudderm.compare import metrics as m

OOD = m.OOD
# Three classes 0, 1, 2. Image:   a  b  c  d  e    f
TRUTH = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, OOD, 2]


def test_confusion_matrix_keeps_out_of_domain_answers_in_their_own_column() -> None:
    # row 0 (a,b,c): predicted 0,0,1 -> [2,1,0 | 0]; row 1 (d,e): 1, OOD -> [0,1,0 | 1]; row 2 (f): 2
    expected = [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    assert m.confusion_matrix(TRUTH, PRED, 3).tolist() == expected


def test_confusion_matrix_rejects_unlabelled_truth() -> None:
    with pytest.raises(ValueError, match="unlabelled"):
        m.confusion_matrix([0, -1], [0, 0], 3)


def test_accuracy() -> None:
    # correct: a, b, d, f -> 4 / 6
    assert m.accuracy(TRUTH, PRED) == pytest.approx(4 / 6)
    assert m.accuracy([], []) is None


def test_per_class_sensitivity_and_balanced_accuracy() -> None:
    # class 0: 2 of 3; class 1: 1 of 2 (the OOD answer is a miss); class 2: 1 of 1
    assert m.per_class_sensitivity(TRUTH, PRED, 3) == pytest.approx([2 / 3, 1 / 2, 1.0])
    # balanced = (2/3 + 1/2 + 1) / 3 = 0.7222...
    assert m.balanced_accuracy(TRUTH, PRED, 3) == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    # a class without images has no sensitivity (None, not 0) and is left out of the mean
    assert m.per_class_sensitivity([0, 0], [0, 1], 3) == [0.5, None, None]
    assert m.balanced_accuracy([0, 0], [0, 1], 3) == pytest.approx(0.5)
    assert m.balanced_accuracy([], [], 3) is None


def test_macro_f1() -> None:
    # class 0: TP 2, FP 0, FN 1 -> 2*2 / (4 + 0 + 1) = 0.8
    # class 1: TP 1, FP 1 (c), FN 1 (e, OOD) -> 2 / (2 + 1 + 1) = 0.5
    # class 2: TP 1, FP 0, FN 0 -> 1.0          macro = (0.8 + 0.5 + 1) / 3
    assert m.macro_f1(TRUTH, PRED, 3) == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    # a class predicted but never true counts with F1 = 0; a class neither true nor predicted is skipped:
    # class 0: TP 1, FN 1 -> 2/3; class 1: FP 1 -> 0; class 2 absent -> mean(2/3, 0) = 1/3
    assert m.macro_f1([0, 0], [0, 1], 3) == pytest.approx(1 / 3)
    assert m.macro_f1([], [], 3) is None


def test_triage_rates_count_out_of_domain_against_both() -> None:
    concerning = [True, True, False, False, False, True]
    predicted = [1, 0, -1, 0, 1, 1]
    # positives (0, 1, 5) flagged 1, 0, 1 -> 2/3; negatives (2, 3, 4): OOD, benign, concerning -> 1/3
    sens, spec = m.triage_rates(concerning, predicted)
    assert sens == pytest.approx(2 / 3)
    assert spec == pytest.approx(1 / 3)
    assert m.triage_rates([True, True], [1, 1]) == (1.0, None)
    assert m.triage_rates([], []) == (None, None)


def test_expected_calibration_error() -> None:
    conf = [0.95, 0.85, 0.62, 0.68, 0.15]
    correct = [True, False, True, False, False]
    # bins: 0.95 -> [0.9,1]: |1 - 0.95| * 1/5 = 0.01
    #       0.85 -> [0.8,0.9): |0 - 0.85| * 1/5 = 0.17
    #       0.62, 0.68 -> [0.6,0.7): acc 0.5, conf 0.65: |0.5 - 0.65| * 2/5 = 0.06
    #       0.15 -> [0.1,0.2): |0 - 0.15| * 1/5 = 0.03                     total 0.27
    assert m.expected_calibration_error(conf, correct) == pytest.approx(0.27)
    assert m.expected_calibration_error([], []) is None
    # a perfectly calibrated bin: confidence 1.0 lands in the top bin, always right -> 0
    assert m.expected_calibration_error([1.0, 1.0], [True, True]) == pytest.approx(0.0)


def test_calibration_bins_describe_each_bin() -> None:
    bins = m.calibration_bins([0.05, 0.62, 0.68], [False, True, False], bins=10)
    assert len(bins) == 10
    assert bins[0] == {"lo": 0.0, "hi": 0.1, "n": 1, "confidence": pytest.approx(0.05), "accuracy": 0.0}
    assert bins[6]["n"] == 2 and bins[6]["accuracy"] == 0.5 and bins[6]["confidence"] == pytest.approx(0.65)
    assert bins[3] == {"lo": 0.3, "hi": 0.4, "n": 0, "confidence": None, "accuracy": None}


def test_latency_percentiles_use_linear_interpolation() -> None:
    # sorted [10, 20, 30, 40, 50]: p50 = 30; p95 at rank 0.95*4 = 3.8 -> 40 + 0.8*10 = 48; p99 -> 49.6
    got = m.latency_percentiles([50, 10, 40, 20, 30])
    assert got == {"p50": 30.0, "p95": pytest.approx(48.0), "p99": pytest.approx(49.6)}
    assert m.latency_percentiles([]) == {"p50": None, "p95": None, "p99": None}


def test_cost_summary_only_when_every_answer_is_priced() -> None:
    # 0.001 + 0.002 + 0.003 = 0.006 for 3 images -> 0.006 / 3 * 1000 = $2 per 1,000
    assert m.cost_summary([0.001, 0.002, 0.003]) == {
        "total": pytest.approx(0.006),
        "per_1k": pytest.approx(2.0),
        "n_priced": 3,
    }
    assert m.cost_summary([0.001, None, 0.003]) == {"total": None, "per_1k": None, "n_priced": 2}
    assert m.cost_summary([float("nan")]) == {"total": None, "per_1k": None, "n_priced": 0}
    assert m.cost_summary([]) == {"total": None, "per_1k": None, "n_priced": 0}
    # a local model priced at zero is a known zero, not unknown
    assert m.cost_summary([0.0, 0.0]) == {"total": 0.0, "per_1k": 0.0, "n_priced": 2}


def test_agreement_and_cohen_kappa_textbook_example() -> None:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    # p_o = 35/50 = 0.7; pA(yes) = 0.5, pB(yes) = 0.6 -> p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5
    assert m.agreement_rate(a, b) == pytest.approx(0.7)
    assert m.cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_treats_out_of_domain_as_a_category() -> None:
    a, b = [0, OOD, OOD, 1], [0, OOD, 1, 1]
    # p_o = 3/4; pA: OOD .5, 0 .25, 1 .25; pB: OOD .25, 0 .25, 1 .5
    # p_e = .125 + .0625 + .125 = .3125; kappa = (.75 - .3125) / (1 - .3125) = 0.63636...
    assert m.cohen_kappa(a, b) == pytest.approx(0.4375 / 0.6875)
    # both always the same single label: chance agreement is 1, kappa is undefined
    assert m.cohen_kappa([2, 2, 2], [2, 2, 2]) is None
    assert m.agreement_rate([2, 2, 2], [2, 2, 2]) == 1.0
    assert m.cohen_kappa([], []) is None and m.agreement_rate([], []) is None


def test_bootstrap_has_the_distribution_of_resampling_images() -> None:
    # The multinomial shortcut must give the same distribution as drawing image indices: compare the
    # mean, spread and interval of both over many seeded resamples.
    classes = np.array([0, 0, 1, 1, 2, 0, 1, 2, 2, 0])
    pred = np.array([0, 1, 1, OOD, 2, 0, 0, 2, 1, 0])
    hits = classes == pred
    fast = m.bootstrap_mean_recall(classes, hits, 3, n_boot=5_000, rng=np.random.default_rng(7))
    idx = np.random.default_rng(8).integers(0, classes.size, size=(5_000, classes.size))
    slow = np.array([m.balanced_accuracy(classes[i], pred[i], 3) for i in idx])
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.01)
    assert fast.std() == pytest.approx(slow.std(), abs=0.01)
    assert m.percentile_interval(fast) == pytest.approx(m.percentile_interval(slow), abs=0.03)


def test_bootstrap_interval_on_a_two_image_case() -> None:
    # one right, one wrong, one class: a resample holds 0, 1 or 2 hits -> recall 0, 0.5, 1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles are 0 and 1
    reps = m.bootstrap_mean_recall([0, 0], [True, False], 1, n_boot=4000, rng=np.random.default_rng(0))
    assert set(np.unique(reps)) == {0.0, 0.5, 1.0}
    assert np.mean(reps == 0.5) == pytest.approx(0.5, abs=0.03)
    assert m.percentile_interval(reps) == [0.0, 1.0]
    # all right: every resample is 1
    assert m.percentile_interval(
        m.bootstrap_mean_recall([0, 1], [True, True], 2, n_boot=100, rng=np.random.default_rng(0))
    ) == [1.0, 1.0]


def test_bootstrap_resamples_unscored_images_without_scoring_them() -> None:
    # triage sensitivity: image 0 concerning and flagged, image 1 benign (-1, not scored).
    # A resample of two copies of image 1 has no concerning image -> NaN, left out of the interval.
    reps = m.bootstrap_mean_recall([0, -1], [True, False], 1, n_boot=400, rng=np.random.default_rng(1))
    assert np.isnan(reps).any() and set(reps[~np.isnan(reps)]) == {1.0}
    assert m.percentile_interval(reps) == [1.0, 1.0]


def test_percentile_interval() -> None:
    # values 0..100: the 2.5th and 97.5th percentiles by linear interpolation are 2.5 and 97.5
    assert m.percentile_interval(np.arange(101, dtype=float)) == pytest.approx([2.5, 97.5])
    assert m.percentile_interval(np.array([np.nan, np.nan])) is None
