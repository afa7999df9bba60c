"""The checks of the exercises of notebook 09_your_own_films (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from helpers.exercises.core import _diagnose, _passed, _rng, _sigmoid, attempt, numbers


def check_predictive_values(fn: Callable) -> None:
    """Exercise of 09: ``fn(sensitivity, specificity, prevalence)`` is (PPV, NPV), as external.predictive_values.

    Taught in 09_your_own_films.
    """
    from helpers import external

    title = "Predictive values at the site's prevalence"
    todo = ("Write predictive_values(sensitivity, specificity, prevalence) -> (PPV, NPV) with Bayes' rule: "
            "PPV = se p / (se p + (1 - sp)(1 - p)).")
    cases = [(0.9, 0.8, 0.05), (0.7, 0.95, 0.3), (0.85, 0.85, 0.5)]
    for se, sp, prevalence in cases:
        yours = numbers(title, attempt(title, todo, fn, se, sp, prevalence), (2,), "(PPV, NPV)")
        reference = np.array(external.predictive_values(se, sp, prevalence))
        _diagnose(title, yours, reference, {
            "The two are swapped: PPV first, then NPV.": reference[::-1],
            "PPV is not the sensitivity: it depends on the prevalence (Bayes' rule).": np.array([se, sp]),
            "Weigh the false positives by (1 - prevalence), the share of films without the finding.":
                np.array([se * prevalence / (se * prevalence + (1 - sp)), reference[1]]),
        }, 1e-9, f"at sensitivity {se}, specificity {sp} and prevalence {prevalence} your (PPV, NPV) is "
                 f"({yours[0]:.4f}, {yours[1]:.4f}), external.predictive_values gives ({reference[0]:.4f}, "
                 f"{reference[1]:.4f}).")
    _passed(title, f"on {len(cases)} settings, from a rare finding (5%) to an even one: the same (PPV, NPV) "
                   "as external.predictive_values.")


def check_calibration_line(fn: Callable) -> None:
    """Exercise of 09: ``fn(y_true, y_prob)`` is (intercept, slope) of the logistic recalibration, as
    external.calibration_line.

    Taught in 09_your_own_films.
    """
    from sklearn.linear_model import LogisticRegression

    from helpers import external

    title = "The calibration line"
    todo = ("Write calibration_line(y_true, y_prob) -> (intercept, slope): a logistic regression of y_true on "
            "logit(y_prob) (one feature, C large: no penalty), its intercept and coefficient.")
    rng = _rng(21)
    z = rng.normal(0, 1.5, 3000)
    y = (rng.random(len(z)) < _sigmoid(-0.4 + 0.7 * z)).astype(int)
    p = _sigmoid(z)
    yours = numbers(title, attempt(title, todo, fn, y.copy(), p.copy()), (2,), "(intercept, slope)")
    reference = np.array(external.calibration_line(y, p))
    on_p = LogisticRegression(C=1e6, max_iter=1000).fit(p[:, None], y)
    _diagnose(title, yours, reference, {
        "The two are swapped: the intercept first, then the slope.": reference[::-1],
        "Regress on the logit of the probability, log(p / (1 - p)), not on p itself.":
            np.array([on_p.intercept_[0], on_p.coef_[0, 0]]),
    }, 2e-3, f"on {len(y)} films whose truth is logit P = -0.4 + 0.7 logit(p), your line is ({yours[0]:.3f}, "
             f"{yours[1]:.3f}), external.calibration_line gives ({reference[0]:.3f}, {reference[1]:.3f}).")
    _passed(title, f"on {len(y)} films: intercept {yours[0]:.3f} and slope {yours[1]:.3f}, near the -0.4 and 0.7 that "
                   "made them.")
