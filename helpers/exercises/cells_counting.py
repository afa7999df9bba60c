"""The checks of the exercises of notebook 08_cells_counting (see ``helpers.exercises``)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from helpers.exercises.core import _diagnose, _passed, _rng, attempt, number


def _nuclei() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros((12, 16), int)
    pred = np.zeros((12, 16), int)
    truth[1:5, 1:5] = 1
    pred[1:5, 1:5] = 3  # IoU 1
    truth[1:5, 7:11] = 2
    pred[1:5, 8:11] = 1  # IoU 12/16 = 0.75 exactly
    truth[7:9, 1:3] = 3
    pred[7:9, 2:4] = 2  # IoU 2/6
    truth[7:11, 7:9] = 4
    pred[7:11, 7:9] = 4
    pred[9:11, 7:9] = 0  # IoU 4/8 = 0.5 exactly: not above 0.5
    pred[9:11, 12:15] = 5  # two false positives
    pred[0, 13:16] = 6
    truth[5:7, 12:15] = 5  # a nucleus missed
    return truth, pred


def check_ap_by_hand(fn: Callable) -> None:
    """Exercise of 08: ``fn(true_labels, pred_labels, thresholds)`` is the Bowl's mean of TP / (TP + FP + FN) over IoU
    thresholds.

    Taught in 08_cells_counting.
    """
    from helpers import instances

    title = "AP by hand"
    todo = ("Write ap_by_hand(true_labels, pred_labels, thresholds): the IoU of every (true, predicted) pair (label 0 "
            "is background), a hit when IoU > t, TP / (TP + FP + FN) per threshold, then their mean.")
    truth, pred = _nuclei()
    checked = []
    for thresholds in ([0.5], [0.75], [0.5, 0.75]):
        yours = number(title, attempt(title, todo, fn, truth.copy(), pred.copy(), list(thresholds)), "the score")
        reference = instances.average_precision(truth, pred, thresholds)
        iou = instances.iou_matrix(truth, pred)[0]
        n_t, n_p = iou.shape
        ge = [int((iou >= t).sum()) for t in thresholds]
        gt = [int((iou > t).sum()) for t in thresholds]
        _diagnose(title, yours, reference, {
            "A pair whose IoU equals the threshold is not a hit: the Bowl counts IoU > t.":
                np.mean([k / (n_t + n_p - k) for k in ge]),
            "That is the precision TP / (TP + FP): the Bowl divides by TP + FP + FN.": np.mean([k / n_p for k in gt]),
            "That is the recall TP / (TP + FN): the Bowl divides by TP + FP + FN.": np.mean([k / n_t for k in gt]),
            "Label 0 is the background, not a nucleus: leave it out of the pairs.":
                np.mean([(k + 1) / (n_t + n_p + 2 - (k + 1)) for k in gt]),
        }, 1e-9, f"at IoU thresholds {thresholds} your score is {yours:.4f} where instances.average_precision gives "
                 f"{reference:.4f} (5 true nuclei, 6 predicted, IoUs 1, 0.75, 0.5 and 0.33 exactly).")
        checked.append(f"{thresholds}: {yours:.3f}")
    _passed(title, "on 5 true and 6 predicted nuclei with IoUs on the thresholds, as instances.average_precision: "
                   f"{'; '.join(checked)}.")


def check_conformal_k(fn: Callable) -> None:
    """Exercise of 08: ``fn(true_counts, centre, spread, level)`` is the split-conformal factor k, as
    instances.conformal_scale.

    Taught in 08_cells_counting.
    """
    from helpers import instances

    title = "Per-image intervals (conformal k by hand)"
    todo = ("Write conformal_k(true_counts, centre, spread, level): the scores |true - centre| / spread sorted, and "
            "the one at rank ceil((n + 1) level) (1-based).")
    rng = _rng(15)
    n = 18  # ceil((n + 1) 0.9) = 18 and ceil(n 0.9) = 17 differ
    true = rng.integers(5, 40, n).astype(float)
    centre = true + rng.normal(0, 3, n)
    spread = rng.uniform(1.0, 4.0, n)
    yours = number(title, attempt(title, todo, fn, true.copy(), centre.copy(), spread.copy(), 0.9), "k")
    reference = instances.conformal_scale(true, centre, spread, 0.9)
    scores = np.sort(np.abs(true - centre) / spread)
    _diagnose(title, yours, reference, {
        "That is the plain 90% quantile: split conformal takes rank ceil((n + 1) level) of the sorted scores, "
        "which covers at least 90% of new images.": np.quantile(scores, 0.9),
        "You took rank ceil(n level), without the + 1 for the new image.": scores[math.ceil(n * 0.9) - 1],
        "Divide each error by its image's spread before sorting.":
            np.sort(np.abs(true - centre))[math.ceil((n + 1) * 0.9) - 1],
        "The scores need the absolute error |true - centre|.":
            np.sort((true - centre) / spread)[math.ceil((n + 1) * 0.9) - 1],
    }, 1e-9, f"your k is {yours:.4f} where instances.conformal_scale gives {reference:.4f} on {n} calibration images "
             "at level 0.9.")
    _passed(title, f"on {n} calibration images at level 0.9: k = {yours:.4f}, as instances.conformal_scale.")
