"""Which chest films to hand to a reader: signals from the classifier that decides, and what referral buys.

A report decides each finding at notebook 02's thresholds; a wrong decision is a finding called present that
is absent, or absent that is present. Referral is worth its cost when the films it refers hold more of those
errors than a random choice of as many films would. Random referral of a fraction ``f`` leaves, in expectation,
``(1 - f)`` of the errors; ``ratio`` divides that by the errors a signal leaves (above 1: the signal helps).

Signals, all from the one classifier whose decisions are reported (Geifman and El-Yaniv, "Selective
Classification for Deep Neural Networks", NeurIPS 2017):

- ``margin``: the smallest distance, in logits, between a finding's probability and its threshold;
- ``expected_errors``: the number of wrong decisions the film should hold if its probabilities were
  calibrated: per finding ``q`` if called absent, ``1 - q`` if called present, with ``q`` the probability
  recalibrated on validation films (Platt scaling per finding, scikit-learn's ``LogisticRegression``).

Notebook 04 compares them with MC dropout's mutual information and chooses the signal on validation films.
Taught in 04_mc_dropout_uncertainty; the report of 07_report refers with the signal saved there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from helpers import errors

EPSILON = 1e-6
SIGNALS = ("margin", "expected_errors", "mutual_information")
DESCRIPTIONS = {
    "margin": "the smallest distance in logits between a finding's probability and its threshold",
    "expected_errors": "the expected number of wrong decisions over the findings, from probabilities recalibrated on "
                       "validation films",
    "mutual_information": "the mean mutual information over the findings of the dropout head's samples",
}


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1 - EPSILON)
    return np.log(p) - np.log1p(-p)


def _check(probabilities, thresholds) -> tuple[np.ndarray, np.ndarray]:
    p = errors.check_probabilities(np.asarray(probabilities, np.float64), "probabilities (images, findings)")
    t = np.asarray(thresholds, np.float64).reshape(-1)
    if p.ndim != 2 or p.shape[1] != len(t):
        raise ValueError(f"probabilities of shape {p.shape} need one threshold per finding ({len(t)} given).")
    return p, t


def wrong_decisions(y_true, probabilities, thresholds) -> np.ndarray:
    """Per film, the number of findings decided wrongly at the thresholds (present at p >= t).

    Taught in 04_mc_dropout_uncertainty.
    """
    p, t = _check(probabilities, thresholds)
    y = np.asarray(y_true)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape.")
    return ((p >= t) != (y == 1)).sum(axis=1)


def margin(probabilities, thresholds) -> np.ndarray:
    """Minus the smallest |logit p - logit t| over the findings: higher is more uncertain.

    Taught in 04_mc_dropout_uncertainty.
    """
    p, t = _check(probabilities, thresholds)
    return -np.abs(_logit(p) - _logit(t)).min(axis=1)


class Recalibration:
    """Platt scaling per finding, fitted on validation films: q = sigmoid(a logit(p) + b).

    Taught in 04_mc_dropout_uncertainty.
    """

    def __init__(self, slope: Sequence[float], intercept: Sequence[float]):
        self.slope, self.intercept = np.asarray(slope, np.float64), np.asarray(intercept, np.float64)

    @classmethod
    def fit(cls, y_true, probabilities) -> "Recalibration":
        y, p = np.asarray(y_true), np.asarray(probabilities, np.float64)
        slopes, intercepts = [], []
        for j in range(p.shape[1]):
            if len(np.unique(y[:, j])) < 2:  # a finding absent from validation: keep the model's probability
                slopes.append(1.0)
                intercepts.append(0.0)
                continue
            fitted = LogisticRegression(C=1e4).fit(_logit(p[:, j])[:, None], y[:, j])
            slopes.append(float(fitted.coef_[0, 0]))
            intercepts.append(float(fitted.intercept_[0]))
        return cls(slopes, intercepts)

    def __call__(self, probabilities) -> np.ndarray:
        z = self.slope * _logit(probabilities) + self.intercept
        return expit(z)  # 1 / (1 + exp(-z)) without overflow for a steep slope

    def to_dict(self) -> dict:
        return {"slope": self.slope.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, saved: dict) -> "Recalibration":
        return cls(saved["slope"], saved["intercept"])


def expected_errors(probabilities, thresholds, recalibration: Recalibration) -> np.ndarray:
    """The expected number of wrong decisions per film: sum over findings of q (called absent) or 1 - q (present).

    Taught in 04_mc_dropout_uncertainty.
    """
    p, t = _check(probabilities, thresholds)
    q = recalibration(p)
    return np.where(p >= t, 1 - q, q).sum(axis=1)


def signal(name: str, probabilities, thresholds, recalibration: Recalibration | None = None) -> np.ndarray:
    """The named deterministic signal (``margin`` or ``expected_errors``) per film.

    Taught in 04_mc_dropout_uncertainty.
    """
    if name == "margin":
        return margin(probabilities, thresholds)
    if name == "expected_errors":
        if recalibration is None:
            raise ValueError("expected_errors needs the recalibration fitted on validation films.")
        return expected_errors(probabilities, thresholds, recalibration)
    raise ValueError(f"signal {name!r}: computed from the classifier's probabilities are margin and expected_errors.")


def referred(scores, refer_at: float) -> np.ndarray:
    """A mask of the round(refer_at N) films with the highest score (ties: the later film first, as
    uncertainty.referral_curve).

    Taught in 04_mc_dropout_uncertainty.
    """
    scores = errors.check_finite(np.asarray(scores, np.float64).reshape(-1), "signal (one per film)")
    if not 0 <= refer_at < 1:
        raise ValueError(f"refer_at must be in [0, 1), not {refer_at!r}.")
    order = np.argsort(scores, kind="stable")  # most certain first
    mask = np.zeros(len(scores), bool)
    mask[order[len(order) - int(round(refer_at * len(order))):]] = True
    return mask


def ratio(wrong, scores, refer_at: float) -> float:
    """Errors random referral leaves in expectation, over the errors left by referring the highest scores.

    Taught in 04_mc_dropout_uncertainty.
    """
    wrong = np.asarray(wrong, np.float64)
    mask = referred(scores, refer_at)
    left = wrong[~mask].sum()
    expected_random = wrong.sum() * (1 - mask.mean())
    return float(expected_random / left) if left > 0 else float("inf")


def ratio_interval(wrong, scores, refer_at: float, *, groups=None, samples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float]:
    """The ratio and its bootstrap interval, resampling patients (``groups``) or films, the signal's ranks recomputed.

    Taught in 04_mc_dropout_uncertainty.
    """
    wrong, scores = np.asarray(wrong, np.float64), np.asarray(scores, np.float64)
    groups = np.arange(len(wrong)) if groups is None else np.asarray(groups)
    units, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == u) for u in range(len(units))]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        take = np.concatenate([members[u] for u in rng.integers(0, len(units), len(units))])
        value = ratio(wrong[take], scores[take], refer_at)
        if np.isfinite(value):
            values.append(value)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2]) if values else (np.nan, np.nan)
    return ratio(wrong, scores, refer_at), float(low), float(high)


def compare(wrong, signals: dict, refer_at: float, *, groups=None, samples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per signal: the errors it leaves, random referral's, the ratio with its interval.

    Taught in 04_mc_dropout_uncertainty.
    """
    rows = {}
    wrong = np.asarray(wrong, np.float64)
    for name, scores in signals.items():
        value, low, high = ratio_interval(wrong, scores, refer_at, groups=groups, samples=samples, seed=seed)
        mask = referred(scores, refer_at)
        rows[name] = {"errors left": float(wrong[~mask].sum()), "random leaves": float(wrong.sum() * (1 - mask.mean())),
                      "ratio": value, "low": low, "high": high}
    return pd.DataFrame(rows).T
