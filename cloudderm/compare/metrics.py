"""Classification, calibration, agreement and operational metrics in plain NumPy.

Why NumPy only: these formulas are short, and writing them out keeps every definition visible (and
documented in ``docs/reports.md``) instead of hidden behind a heavy dependency's defaults.

Conventions shared by every function:

- Classes are integer codes ``0..k-1`` (positions in the taxonomy's code list). A prediction outside the
  taxonomy (an out-of-domain label, or no label at all) is ``OOD = -1``: it is never correct, it counts
  as a miss for the true class, and it is not a class of its own for precision or F1.
- A metric that cannot be computed (no labelled images, no positives, no answers) is ``None`` — never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "OOD",
    "accuracy",
    "agreement_rate",
    "balanced_accuracy",
    "bootstrap_mean_recall",
    "calibration_bins",
    "cohen_kappa",
    "confusion_matrix",
    "cost_summary",
    "expected_calibration_error",
    "latency_percentiles",
    "macro_f1",
    "per_class_sensitivity",
    "percentile_interval",
    "triage_rates",
]

OOD = -1


def _as_int(values: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def confusion_matrix(truth: Sequence[int], pred: Sequence[int], k: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns.

    Returns a ``(k, k + 1)`` integer array; the last column counts out-of-domain predictions so no
    answer silently disappears from the matrix.
    """
    t, p = _as_int(truth), _as_int(pred)
    if t.size != p.size:
        raise ValueError(f"truth has {t.size} entries but pred has {p.size}")
    if t.size and (t.min() < 0 or t.max() >= k):
        raise ValueError(f"true classes must lie in 0..{k - 1}; unlabelled images must be left out")
    if p.size and (p.min() < OOD or p.max() >= k):
        raise ValueError(f"predicted classes must lie in 0..{k - 1} or be OOD (-1)")
    cols = np.where(p == OOD, k, p)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(matrix, (t, cols), 1)
    return matrix


def accuracy(truth: Sequence[int], pred: Sequence[int]) -> float | None:
    """Share of images whose predicted class equals the true class; None without images."""
    t, p = _as_int(truth), _as_int(pred)
    if t.size == 0:
        return None
    return float(np.mean(t == p))


def per_class_sensitivity(truth: Sequence[int], pred: Sequence[int], k: int) -> list[float | None]:
    """Recall of each class: TP / (images of that class); None for a class with no images."""
    matrix = confusion_matrix(truth, pred, k)
    support = matrix.sum(axis=1)
    return [float(matrix[c, c] / support[c]) if support[c] else None for c in range(k)]


def balanced_accuracy(truth: Sequence[int], pred: Sequence[int], k: int) -> float | None:
    """Mean per-class sensitivity over the classes present in the truth; None without images."""
    recalls = [r for r in per_class_sensitivity(truth, pred, k) if r is not None]
    return float(np.mean(recalls)) if recalls else None


def macro_f1(truth: Sequence[int], pred: Sequence[int], k: int) -> float | None:
    """Unweighted mean F1 over every class that occurs in the truth or among the predictions.

    F1 of a class is ``2 TP / (2 TP + FP + FN)``; an out-of-domain answer is a false negative for the
    true class and a false positive for no class. A class predicted but never true scores 0 (its
    predictions are all wrong), as does a true class never predicted.
    """
    t = _as_int(truth)
    if t.size == 0:
        return None
    matrix = confusion_matrix(truth, pred, k)
    tp = np.diag(matrix[:, :k]).astype(float)
    fn = matrix.sum(axis=1) - tp
    fp = matrix[:, :k].sum(axis=0) - tp
    present = (matrix.sum(axis=1) > 0) | (matrix[:, :k].sum(axis=0) > 0)
    f1 = 2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])
    return float(np.mean(f1))


def triage_rates(
    truth_concerning: Sequence[bool], pred_triage: Sequence[int]
) -> tuple[float | None, float | None]:
    """Sensitivity and specificity of the concerning-vs-benign decision.

    Args:
        truth_concerning: per image, whether the true class is in the concerning bucket.
        pred_triage: per image, 1 = predicted concerning, 0 = predicted benign, -1 = no in-domain answer.

    An out-of-domain answer neither flags a concerning lesion nor clears a benign one, so it counts
    against both rates. Sensitivity is None without concerning images, specificity without benign ones.
    """
    truth = np.asarray(truth_concerning, dtype=bool).reshape(-1)
    pred = _as_int(pred_triage)
    pos, neg = truth, ~truth
    sens = float(np.mean(pred[pos] == 1)) if pos.any() else None
    spec = float(np.mean(pred[neg] == 0)) if neg.any() else None
    return sens, spec


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Bins ``[0, 1/b), [1/b, 2/b), ..., [(b-1)/b, 1]`` — the top bin includes 1.0."""
    return np.minimum(np.floor(confidence * bins).astype(np.int64), bins - 1).clip(0)


def calibration_bins(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[dict]:
    """Per-bin count, mean confidence and accuracy (the data of a reliability diagram)."""
    conf = np.asarray(confidence, dtype=float).reshape(-1)
    hit = np.asarray(correct, dtype=float).reshape(-1)
    index = _bin_index(conf, bins)
    out = []
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        out.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "n": n,
                "confidence": float(conf[members].mean()) if n else None,
                "accuracy": float(hit[members].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> float | None:
    """ECE of the top label: ``sum_b (n_b / N) * |accuracy_b - mean confidence_b|``; None without images."""
    conf = np.asarray(confidence, dtype=float).reshape(-1)
    if conf.size == 0:
        return None
    total = 0.0
    for row in calibration_bins(conf, correct, bins):
        if row["n"]:
            total += row["n"] / conf.size * abs(row["accuracy"] - row["confidence"])
    return float(total)


def latency_percentiles(latency_ms: Sequence[float], qs: Sequence[int] = (50, 95, 99)) -> dict:
    """``{"p50", "p95", "p99"}`` by NumPy's default linear interpolation; values None without samples."""
    values = np.asarray(latency_ms, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}


def cost_summary(costs_usd: Sequence[float | None]) -> dict:
    """Total and per-1,000-image cost of the answered images, only when every one of them is priced.

    A partial sum would understate the bill, so one unknown (None or NaN) cost makes ``total`` and
    ``per_1k`` None; ``n_priced`` says how many answers did carry a price.
    """
    values = np.array([np.nan if c is None else c for c in costs_usd], dtype=float)
    n_priced = int(np.isfinite(values).sum())
    if values.size == 0 or n_priced < values.size:
        return {"total": None, "per_1k": None, "n_priced": n_priced}
    total = float(values.sum())
    return {"total": total, "per_1k": total / values.size * 1000.0, "n_priced": n_priced}


def agreement_rate(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Share of images on which two providers gave the same class (out-of-domain counts as a class)."""
    x, y = _as_int(a), _as_int(b)
    if x.size == 0:
        return None
    return float(np.mean(x == y))


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)``: agreement beyond what each provider's label mix predicts.

    ``p_e = sum_c pA(c) * pB(c)`` over every class either used, out-of-domain included. None without
    images, or when ``p_e == 1`` (both always gave the same single class: agreement cannot beat chance).
    """
    x, y = _as_int(a), _as_int(b)
    if x.size == 0:
        return None
    classes = np.union1d(x, y)
    pa = np.array([np.mean(x == c) for c in classes])
    pb = np.array([np.mean(y == c) for c in classes])
    p_o = float(np.mean(x == y))
    p_e = float(np.sum(pa * pb))
    if np.isclose(p_e, 1.0):
        return None
    return (p_o - p_e) / (1.0 - p_e)


def bootstrap_mean_recall(
    classes: Sequence[int],
    hits: Sequence[bool],
    k: int,
    *,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap replicates of the mean per-class recall.

    Balanced accuracy is the mean recall over the true classes; triage sensitivity is the same formula
    with a single class (concerning) and every other image marked ``-1`` (resampled, but not scored).

    Why multinomial draws: the statistic depends only on how many resampled images fall in each
    (class, hit) cell, and drawing ``m`` images with replacement puts a multinomial(m, cell shares)
    number in each cell. Drawing those counts directly is the same bootstrap distribution at a cost of
    ``n_boot x 2k`` instead of ``n_boot x m`` — subgroups of 50,000 images take milliseconds.

    Args:
        classes: per image, its true class in ``0..k-1``, or -1 to resample it without scoring it.
        hits: per image, whether the answer counts as a hit for that class.
        k: number of classes.
        n_boot: number of resamples (each of ``len(classes)`` images drawn with replacement).
        rng: the seeded generator, so a report is reproducible.

    Returns:
        ``n_boot`` replicates; NaN where a resample holds no scored image.
    """
    cls = _as_int(classes)
    hit = np.asarray(hits, dtype=bool).reshape(-1)
    m = cls.size
    if m == 0 or n_boot <= 0:
        return np.full(max(n_boot, 0), np.nan)
    # cells 0..2k-1 = (class, miss/hit); cell 2k = resampled but not scored
    cell = np.where(cls >= 0, cls * 2 + hit, 2 * k)
    shares = np.bincount(cell, minlength=2 * k + 1) / m
    draws = rng.multinomial(m, shares, size=n_boot)[:, : 2 * k].reshape(n_boot, k, 2)
    support = draws.sum(axis=2)
    counted = support > 0
    recall = np.where(counted, draws[:, :, 1] / np.maximum(support, 1), 0.0)
    n_classes = counted.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_classes > 0, recall.sum(axis=1) / n_classes, np.nan)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> list[float] | None:
    """The percentile bootstrap interval ``[q((1-level)/2), q((1+level)/2)]`` of the defined replicates."""
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]
