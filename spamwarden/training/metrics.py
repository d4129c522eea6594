"""Measures of a spam filter: ROC AUC, error rates at a threshold or at a fixed false-positive rate.

Labels are 1 for spam (positive) and 0 for ham; higher scores mean spammier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["fnr_at_fpr", "rates_at_threshold", "roc_auc"]


def roc_auc(y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve; ``nan`` when only one class is present."""
    y = np.asarray(y)
    if len(set(y.tolist())) < 2:
        return float("nan")
    return float(roc_auc_score(y, scores))


def rates_at_threshold(
    y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, threshold: float
) -> tuple[float, float]:
    """``(false-positive rate, false-negative rate)`` when ``score >= threshold`` means spam."""
    y = np.asarray(y)
    s = np.asarray(scores)
    ham = y == 0
    spam = ~ham
    fpr = float((s[ham] >= threshold).mean()) if ham.any() else float("nan")
    fnr = float((s[spam] < threshold).mean()) if spam.any() else float("nan")
    return fpr, fnr


def fnr_at_fpr(
    y: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, max_fpr: float
) -> float:
    """The lowest false-negative rate reachable with a false-positive rate ≤ ``max_fpr``.

    The threshold is set just above the highest-scoring hams allowed through,
    so ties between ham and spam count against the filter.
    """
    y = np.asarray(y)
    if len(set(y.tolist())) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, scores)
    ok = fpr <= max_fpr + 1e-12
    return float(1.0 - tpr[ok].max())
