"""Float tolerances for comparing model scores, derived from float32 arithmetic instead of guessed.

Why: CPU kernels pick different blockings and SIMD paths for different batch sizes (and ONNX Runtime and
PyTorch are different kernels altogether), so the same image's scores differ in the last bits. A float32
sum of ``n`` terms may be off by about ``n * eps * sum(|terms|)`` (eps = 2**-23 ≈ 1.19e-7), and
softmax/sigmoid never amplify an absolute change of their inputs (their derivatives are at most 1/2 and
1/4), so a probability moves no more than the logits did. A 1e-5 absolute tolerance on batched-vs-single
scores failed on a fresh clone (issue #12 item 17); these bounds are what the arithmetic allows.
"""

from __future__ import annotations

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)

# The widest accumulation in the test models (a 1,024-term dot product: tiny ViT / MobileNet / AutoML
# stand-ins), with values of order 1: each logit may differ by 1024 * eps ≈ 1.2e-4 between kernels.
WIDEST_ACCUMULATION = 1024
KERNEL_SCORE_TOL = WIDEST_ACCUMULATION * FLOAT32_EPS


def sum_tolerance(terms: int) -> float:
    """Absolute error bound of a float32 sum of ``terms`` probabilities (each at most 1)."""
    return max(terms, 1) * FLOAT32_EPS


def assert_same_scores(got: dict[str, float], expected: dict[str, float], tol: float = KERNEL_SCORE_TOL):
    """Scores of one image from two kernels: equal within ``tol`` and with the same top-1 label."""
    import pytest

    assert set(got) == set(expected)
    assert got == pytest.approx(expected, abs=tol)
    assert max(got, key=got.__getitem__) == max(expected, key=expected.__getitem__), "top-1 differs"
