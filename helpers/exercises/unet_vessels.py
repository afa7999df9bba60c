"""The checks of the exercises of notebook 03_unet_vessels (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from helpers.exercises.core import Wrong, _diagnose, _passed, _rng, attempt, number, numbers


def _vessel_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(5)
    y = (rng.random((3, 6, 6, 1)) < 0.3).astype(np.float32)
    y[2] = 0  # a patch without vessels: averaging per image counts it as a full miss
    p = np.clip(y * 0.6 + rng.random(y.shape) * 0.4, 0, 1).astype(np.float32)
    return y, p


def check_dice_loss(fn: Callable) -> None:
    """Exercise of 03: ``fn(y, p)`` is the soft Dice loss of the whole batch, smooth = 0, as keras.losses.Dice.

    Taught in 03_unet_vessels.
    """
    import keras

    title = "Dice by hand"
    todo = ("Write dice_loss(y, p) in NumPy: 1 - 2 sum(y p) / (sum(y) + sum(p)) over every pixel of the batch "
            "(smooth = 0): one number.")
    y, p = _vessel_batch()
    result = attempt(title, todo, fn, y.copy(), p.copy())
    per_image = 1 - 2 * (y * p).sum((1, 2, 3)) / (y.sum((1, 2, 3)) + p.sum((1, 2, 3)))
    if np.shape(result) == per_image.shape:
        raise Wrong(f"{title}: you returned one value per image ({np.shape(result)}); keras.losses.Dice (axis=None) "
                    "gives one Dice over every pixel of the batch.")
    yours = number(title, result, "the Dice loss")
    reference = float(keras.losses.Dice()(y, p))
    s_yp, s_y, s_p = float((y * p).sum()), float(y.sum()), float(p.sum())
    _diagnose(title, yours, reference, {
        "Did you average a Dice per image? One Dice over the whole batch: sum over every pixel first.":
            per_image.mean(),
        "That is the Dice coefficient: the loss is 1 minus it.": 1 - reference,
        "The numerator needs the factor 2: 2 sum(y p).": 1 - s_yp / (s_y + s_p),
        "You thresholded p: the soft Dice uses the probabilities themselves.":
            1 - 2 * (y * (p >= 0.5)).sum() / (s_y + (p >= 0.5).sum()),
        "You squared p in the denominator (the V-Net variant); keras.losses.Dice sums p itself.":
            1 - 2 * s_yp / (s_y + float((p ** 2).sum())),
    }, 1e-5, f"your Dice loss is {yours:.4f} where keras.losses.Dice gives {reference:.4f} on the same batch "
             "(tolerance 1e-5).")
    _passed(title, f"on a 3-patch batch (one without vessels): {yours:.4f}, as keras.losses.Dice within 1e-5.")


def check_fov_accuracies(fn: Callable) -> None:
    """Exercise of 03: ``fn(vessels, probabilities, fov)`` returns (accuracy on the whole image, inside the FOV)
    at p >= 0.5.

    Taught in 03_unet_vessels.
    """
    title = "FOV or not"
    todo = ("Write fov_accuracies(vessels, probabilities, fov) returning (accuracy over the whole image, accuracy "
            "over the pixels inside the FOV), a pixel called vessel when p >= 0.5.")
    rng = _rng(6)
    rows, cols = np.mgrid[:8, :10]
    fov = (rows - 3.5) ** 2 / 16 + (cols - 4.5) ** 2 / 25 <= 1
    vessels = (rng.random((8, 10)) < 0.35) & fov
    probabilities = np.where(vessels, rng.uniform(0.3, 1.0, (8, 10)), rng.uniform(0.0, 0.7, (8, 10))) * fov
    probabilities[fov & vessels] = np.where(rng.random(int((fov & vessels).sum())) < 0.3, 0.5,
                                            probabilities[fov & vessels])
    result = attempt(title, todo, fn, vessels.copy(), probabilities.copy(), fov.copy())
    yours = numbers(title, result, (2,), "(whole, inside)")
    correct = (probabilities >= 0.5) == vessels
    reference = np.array([correct.mean(), correct[fov].mean()])
    strict = (probabilities > 0.5) == vessels
    _diagnose(title, yours, reference, {
        "The two are swapped: return (whole image, inside the FOV).": reference[::-1],
        "A pixel with p = 0.5 exactly is a vessel: compare with >= 0.5.": np.array([strict.mean(), strict[fov].mean()]),
        "Inside the FOV you divided by every pixel of the image: divide by the FOV's pixels.":
            np.array([correct.mean(), (correct & fov).sum() / fov.size]),
    }, 1e-9, f"your accuracies are ({yours[0]:.4f}, {yours[1]:.4f}) where counting by hand gives "
             f"({reference[0]:.4f}, {reference[1]:.4f}) on an 8 x 10 image with {int(fov.sum())} FOV pixels.")
    _passed(title, f"on an 8 x 10 image ({int(fov.sum())} pixels in the FOV, some p exactly 0.5): "
            f"({yours[0]:.4f}, {yours[1]:.4f}), as counted by hand.")


def _f1(truth: np.ndarray, scores: np.ndarray, cut: float, strict: bool = False) -> float:
    predicted = scores > cut if strict else scores >= cut
    tp = int((predicted & truth).sum())
    return 2 * tp / (2 * tp + int((predicted & ~truth).sum()) + int((~predicted & truth).sum()))


def check_best_f1_threshold(fn: Callable) -> None:
    """Exercise of 03: ``fn(truth, scores)`` returns a threshold with the highest F1 of ``scores >= t``.

    Taught in 03_unet_vessels.
    """
    from helpers import metrics

    title = "Threshold on test"
    todo = ("Write best_f1_threshold(truth, scores) (1-D arrays: pixels' 0/1 truth and probabilities) returning the "
            "threshold t with the highest F1 of scores >= t; one sort, not a loop over every value.")
    rng = _rng(8)
    truth = rng.random(60) < 0.35
    scores = np.clip(0.3 * truth + rng.random(60) * 0.7, 0, 1)
    yours = number(title, attempt(title, todo, fn, truth.copy(), scores.copy()), "the threshold")
    reference = metrics.best_f1_threshold(truth, scores, np.ones(60, bool))
    best = _f1(truth, scores, reference)
    if 0 <= yours <= 1 and _f1(truth, scores, yours) >= best - 1e-12:
        _passed(title, f"on 60 pixels: your threshold {yours:.3f} reaches F1 {best:.3f}, the maximum "
                f"(metrics.best_f1_threshold gives {reference:.3f}).")
        return
    head = (f"your threshold {yours:.3f} gives F1 {_f1(truth, scores, yours):.3f}, but {reference:.3f} reaches "
            f"{best:.3f}.")
    if np.isclose(yours, best):
        head += " You returned the best F1 itself: return the threshold that reaches it."
    elif _f1(truth, scores, yours, strict=True) >= best - 1e-12:
        head += " With p > t it would be right: the series calls a pixel vessel when p >= t."
    elif np.isclose(yours, max(scores, key=lambda t: ((scores >= t) == truth).mean())):
        head += " That threshold maximises accuracy, not F1."
    raise Wrong(f"{title}: {head}")
