"""The checks of the exercises of notebook 05_saliency (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from helpers.exercises.core import _diagnose, _passed, _rng, attempt, numbers


def check_grad_cam_map(fn: Callable) -> None:
    """Exercise of 05: ``fn(features, gradients)`` (h, w, k) is the raw Grad-CAM map ReLU(sum_k mean(dS/dA_k) A_k).

    Taught in 05_saliency.
    """
    title = "Resolution (Grad-CAM at block 4 by hand)"
    todo = ("Write grad_cam_map(features, gradients) for one image's (h, w, k) feature maps and the score's gradients "
            "with respect to them: weight each channel by its mean gradient, sum over channels, "
            "keep the positive part.")
    rng = _rng(12)
    features = np.maximum(rng.normal(0.2, 1.0, (4, 5, 6)), 0)  # after a ReLU, as pool4_relu
    gradients = rng.normal(0.0, 1.0, (4, 5, 6))
    yours = numbers(title, attempt(title, todo, fn, features.copy(), gradients.copy()), (4, 5), "the map")
    weights = gradients.mean(axis=(0, 1))
    raw = (features * weights).sum(-1)
    reference = np.maximum(raw, 0)
    _diagnose(title, yours, reference, {
        "Negative values: Grad-CAM keeps only the positive part (a ReLU on the weighted sum).": raw,
        "You summed the gradients over the cells: average them (one weight per channel, the mean over h x w).":
            np.maximum((features * gradients.sum(axis=(0, 1))).sum(-1), 0),
        "You multiplied gradients and features cell by cell: Grad-CAM first averages each channel's gradient "
        "over the map.": np.maximum((features * gradients).sum(-1), 0),
        "The map should be raw (the notebook scales it afterwards), not min-max scaled.":
            (reference - reference.min()) / (reference.max() - reference.min()),
    }, 1e-6, "your map differs from ReLU(sum_k mean(gradient_k) * feature_k) by up to "
             f"{np.abs(yours - reference).max():.3g} on a 4 x 5 x 6 example (tolerance 1e-6).")
    _passed(title, "on a 4 x 5 map of 6 channels: your map equals ReLU(sum_k mean(dS/dA_k) A_k) within 1e-6.")


def check_integrated_gradients(fn: Callable) -> None:
    """Exercise of 05: ``fn(gradient, x, baseline, steps)`` integrates the gradient along the straight path.

    Taught in 05_saliency.
    """
    title = "Baselines (integrated gradients by hand)"
    todo = ("Write integrated_gradients(gradient, x, baseline, steps): the points baseline + a (x - baseline) for "
            "steps values of a in [0, 1] (one batch for gradient()), the mean gradient along them (trapezoid or "
            "Riemann), times (x - baseline).")
    rng = _rng(13)
    x, baseline = rng.uniform(0.2, 1.0, (3, 4)), rng.uniform(0.0, 0.5, (3, 4))
    c, w = rng.uniform(0.5, 2.0, (3, 4)), rng.normal(0.0, 1.0, (3, 4))
    f = lambda v: float((c * v ** 2 + w * v).sum())  # noqa: E731

    def gradient(points):
        points = np.asarray(points, np.float64)
        if points.shape[1:] != x.shape:
            raise ValueError(f"gradient() takes a batch of points of shape (n, {x.shape[0]}, {x.shape[1]}), "
                             f"got {points.shape}")
        return 2 * c * points + w

    steps = 64
    yours = numbers(title, attempt(title, todo, fn, gradient, x.copy(), baseline.copy(), steps), x.shape,
                    "the attributions")
    exact = c * (x ** 2 - baseline ** 2) + w * (x - baseline)  # the integral, in closed form
    tolerance = 0.03 * np.abs(exact).max()
    gap = f(x) - f(baseline)
    if np.abs(yours - exact).max() <= tolerance:
        _passed(title, f"on f(v) = sum(c v^2 + w v) with {steps} steps: attributions within 3% of the exact integral; "
                f"they sum to {yours.sum():.4f}, f(x) - f(baseline) = {gap:.4f} (completeness).")
        return
    mean_gradient = 2 * c * (baseline + x) / 2 + w
    _diagnose(title, yours, exact, {
        "You returned the mean gradient: multiply it by (x - baseline).": mean_gradient,
        "You used the gradient at x alone (gradient x input): average it along the path baseline -> x.":
            (2 * c * x + w) * (x - baseline),
        f"You summed the gradients over the {steps} points: average them.": mean_gradient * (x - baseline) * steps,
    }, tolerance, f"your attributions sum to {yours.sum():.4f} where f(x) - f(baseline) = {gap:.4f}, and differ from "
                  f"the exact integral by up to {np.abs(yours - exact).max():.3g} (f(v) = sum(c v^2 + w v), {steps} "
                  "steps, tolerance 3% of the largest).")
