"""The checks of the exercises of notebook 02_densenet_transfer (see ``helpers.exercises``)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from helpers.exercises.core import Wrong, _diagnose, _passed, _rng, attempt, number


def check_bce_by_hand(fn: Callable) -> None:
    """Exercise of 02: ``fn(y, p, w_p, w_n)`` is the batch mean of losses.WeightedBinaryCrossentropy.

    Taught in 02_densenet_transfer.
    """
    from helpers import losses

    title = "Weighted BCE by hand"
    todo = ("Write bce_by_hand(y, p, w_p, w_n) in NumPy: -(w_p y log p + w_n (1 - y) log(1 - p)), p clipped to "
            "[1e-7, 1 - 1e-7], averaged over findings and images: one number.")
    rng = _rng(3)
    y = (rng.random((6, 4)) < 0.3).astype(np.float64)
    p = rng.uniform(0.02, 0.98, (6, 4))
    p[0, 0], y[0, 0], p[1, 1], y[1, 1] = 0.0, 0.0, 1.0, 1.0  # confident and right: a 0 * log(0) to handle
    w_p, w_n = np.array([0.6, 0.8, 0.9, 0.95]), np.array([0.4, 0.2, 0.1, 0.05])
    yours = number(title, attempt(title, todo, fn, y.copy(), p.copy(), w_p.copy(), w_n.copy()), "the loss")
    reference = float(losses.WeightedBinaryCrossentropy(w_p, w_n)(y.astype("float32"), p.astype("float32")))
    q = np.clip(p, 1e-7, 1 - 1e-7)

    def bce(a, b):
        return -(a * y * np.log(q) + b * (1 - y) * np.log(1 - q))

    _diagnose(title, yours, reference, {
        "w_p and w_n are swapped: w_p multiplies the y log p term.": bce(w_n, w_p).mean(),
        "It is the unweighted BCE: multiply the two terms by w_p and w_n.": bce(1, 1).mean(),
        "You summed over the findings: average over them (and over the images).": bce(w_p, w_n).sum(1).mean(),
        "The minus sign is missing: a loss is -log likelihood, >= 0.": -bce(w_p, w_n).mean(),
    }, 1e-5, f"your loss is {yours:.5f} where losses.WeightedBinaryCrossentropy gives {reference:.5f} on the same "
             "batch (tolerance 1e-5).")
    _passed(title, f"on a 6 x 4 batch with p = 0 and p = 1 in it: {yours:.5f}, as losses.WeightedBinaryCrossentropy "
                   "within 1e-5.")


def _youden(truth: np.ndarray, scores: np.ndarray, cut: float) -> float:
    predicted = scores >= cut
    return predicted[truth == 1].mean() + (~predicted[truth == 0]).mean() - 1


def check_youden_threshold(fn: Callable) -> None:
    """Exercise of 02: ``fn(truth, scores)`` returns a threshold maximising Youden's J of ``scores >= t``.

    Taught in 02_densenet_transfer.
    """
    from sklearn.metrics import roc_curve

    title = "Youden's threshold by hand"
    todo = ("Write youden_threshold(truth, scores) returning the threshold t that maximises sensitivity + "
            "specificity - 1 when a finding is called present for scores >= t.")
    rng = _rng(0)
    truth = (rng.random(40) < 0.2).astype(int)  # a rare finding: accuracy and Youden's J disagree
    scores = np.round(np.clip(0.3 * truth + rng.random(40) * 0.7, 0, 1), 3)
    result = attempt(title, todo, fn, truth.copy(), scores.copy())
    if np.size(result) == 1 and np.isinf(np.asarray(result, dtype=np.float64)).all():
        raise Wrong(f"{title}: your threshold is +inf, roc_curve's first threshold (call no case present): take the "
                    "argmax of tpr - fpr among the thresholds, which is never the first for a useful score.")
    yours = number(title, result, "the threshold")
    fpr, tpr, cuts = roc_curve(truth, scores)
    best = int(np.argmax(tpr - fpr))
    reference, best_j = float(cuts[best]), float((tpr - fpr)[best])
    j = _youden(truth, scores, yours) if math.isfinite(yours) else -1.0
    if j >= best_j - 1e-12:
        _passed(title, f"on 40 cases: your threshold {yours:.3f} reaches J = {j:.3f}, the maximum (roc_curve's "
                f"argmax gives {reference:.3f}).")
        return
    head = (f"your threshold {yours:.3f} gives J = sensitivity + specificity - 1 = {j:.3f}, but {reference:.3f} "
            f"reaches {best_j:.3f} (scores >= t are called present).")
    accuracy = max(np.unique(scores), key=lambda t: ((scores >= t) == truth).mean())
    if np.isclose(yours, best_j):
        head += " You returned J itself: return the threshold where it is largest."
    elif np.isclose(yours, accuracy):
        head += " That threshold maximises accuracy, which a rare finding wins by calling every case negative."
    elif _youden(truth, scores, np.nextafter(yours, 2)) >= best_j - 1e-12:
        head += " With scores > t (strict) it would be right: the series calls a finding present for scores >= t."
    raise Wrong(f"{title}: {head}")
