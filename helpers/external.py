"""External validation of a saved model on a site's own films: calibration, predictive values, subgroups, shortcuts.

A model trained elsewhere is judged at the new site before it is used there: discrimination (AUROC, with
patient-level intervals), calibration (the logistic recalibration line: intercept 0 and slope 1 when the
probabilities hold), sensitivity and specificity at the imported thresholds against thresholds re-chosen
on local films, predictive values at the site's prevalence, and the same by subgroup (sex, age band, view),
with an interval on each gap. A shortcut is a feature that travels with a finding at the training site
(a marker in the corner of portable films) and not elsewhere; ``add_marker`` plants one for the notebook to
catch. Taught in 09_your_own_films.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from helpers import errors

MIN_GROUP_POSITIVES = 5  # a subgroup with fewer positives (or negatives) of a finding is not scored for it


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def calibration_line(y_true, y_prob) -> tuple[float, float]:
    """(intercept, slope) of the logistic recalibration logit P(y = 1) = a + b logit(p): (0, 1) when calibrated.

    A slope below 1: the probabilities are too extreme for this site (over-confident); an intercept below 0
    with slope 1: they are too high on average. (Van Calster et al., "A calibration hierarchy for risk
    models was defined", Journal of Clinical Epidemiology 2016: weak calibration.)

    Taught in 09_your_own_films.
    """
    y = errors.check_labels(np.ravel(y_true), "y_true (labels)")
    p = errors.check_probabilities(np.ravel(y_prob), "y_prob (probabilities)")
    if len(np.unique(y)) < 2:
        raise ValueError("the calibration line needs films with and without the finding: only one outcome is here.")
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
    return float(fitted.intercept_[0]), float(fitted.coef_[0, 0])


def predictive_values(sensitivity, specificity, prevalence) -> tuple[float, float]:
    """(PPV, NPV) from sensitivity, specificity and the prevalence of the site (Bayes' rule).

    Taught in 09_your_own_films.
    """
    se, sp, pi = (float(v) for v in (sensitivity, specificity, prevalence))
    for name, value in (("sensitivity", se), ("specificity", sp), ("prevalence", pi)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a share in [0, 1], not {value!r} (pass 0.9, not 90).")
    ppv = se * pi / (se * pi + (1 - sp) * (1 - pi)) if se * pi + (1 - sp) * (1 - pi) > 0 else float("nan")
    npv = sp * (1 - pi) / (sp * (1 - pi) + (1 - se) * pi) if sp * (1 - pi) + (1 - se) * pi > 0 else float("nan")
    return float(ppv), float(npv)


def at_thresholds(y_true, y_prob, thresholds, labels: Sequence[str]) -> pd.DataFrame:
    """Per finding: positives, sensitivity, specificity, and PPV and NPV at this set's prevalence, at the given
    thresholds.

    Taught in 09_your_own_films.
    """
    y, p = np.asarray(y_true, np.float64), np.asarray(y_prob, np.float64)
    t = pd.Series(thresholds)[list(labels)].to_numpy(float)
    rows = {}
    for j, label in enumerate(labels):
        known = ~np.isnan(y[:, j])
        truth, called = y[known, j] == 1, p[known, j] >= t[j]
        se = called[truth].mean() if truth.any() else np.nan
        sp = (~called[~truth]).mean() if (~truth).any() else np.nan
        prevalence = truth.mean() if known.any() else np.nan
        ppv, npv = (predictive_values(se, sp, prevalence) if not np.isnan([se, sp, prevalence]).any()
                    else (np.nan, np.nan))
        rows[label] = {"positives": int(truth.sum()), "sensitivity": se, "specificity": sp, "PPV": ppv, "NPV": npv}
    return pd.DataFrame.from_dict(rows, orient="index")


def _scores(y, p, t, weight) -> tuple[float, float]:
    """Mean AUROC over the findings that have both outcomes here, and the pooled sensitivity at the thresholds."""
    aucs, hits, positives = [], 0.0, 0.0
    for j in range(y.shape[1]):
        known = ~np.isnan(y[:, j]) & (weight > 0)
        truth = y[known, j]
        w = weight[known]
        if (w * truth).sum() >= 1 and (w * (1 - truth)).sum() >= 1:
            aucs.append(roc_auc_score(truth, p[known, j], sample_weight=w))
        hits += float((w * truth * (p[known, j] >= t[j])).sum())
        positives += float((w * truth).sum())
    return (float(np.mean(aucs)) if aucs else np.nan), (hits / positives if positives else np.nan)


def subgroup_table(y_true, y_prob, thresholds, labels: Sequence[str], groups, patients, *, samples: int = 500,
                   confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per subgroup: films, mean AUROC over the findings and pooled sensitivity at the thresholds, each against the
    rest, with patient-bootstrap intervals of the gaps.

    ``groups``: one group name per film (None or NaN: unknown, left out). A gap is "found" when its interval
    excludes zero. Findings with fewer than ``MIN_GROUP_POSITIVES`` positives or negatives in a group are
    left out of that group's mean AUROC.

    Taught in 09_your_own_films.
    """
    y, p = (np.asarray(y_true, np.float64),
            errors.check_probabilities(y_prob, "y_prob (probabilities)").astype(np.float64))
    t = pd.Series(thresholds)[list(labels)].to_numpy(float)
    names = pd.Series(groups, dtype=object)
    known = names.notna().to_numpy()
    codes, units = np.unique(np.asarray(patients)[known], return_inverse=True)
    y, p, names = y[known], p[known], names[known].astype(str).to_numpy()
    rng = np.random.default_rng(seed)
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    rows = {}
    for group in sorted(set(names)):
        inside = names == group
        enough = [j for j in range(y.shape[1])
                  if min(np.nansum(y[inside, j]), np.sum(y[inside, j] == 0)) >= MIN_GROUP_POSITIVES]
        if not enough:
            rows[group] = {"films": int(inside.sum()), "AUROC": np.nan, "AUROC rest": np.nan, "AUROC gap": np.nan,
                           "low": np.nan, "high": np.nan, "sensitivity": np.nan, "sensitivity rest": np.nan,
                           "sensitivity gap": np.nan, "sens low": np.nan, "sens high": np.nan, "found": False}
            continue
        ys, ps, ts = y[:, enough], p[:, enough], t[enough]
        ones = np.ones(len(y))
        auc_in, sens_in = _scores(ys, ps, ts, ones * inside)
        auc_out, sens_out = _scores(ys, ps, ts, ones * ~inside)
        gaps = []
        for _ in range(samples):
            drawn = np.bincount(rng.integers(0, len(codes), len(codes)), minlength=len(codes))[units].astype(float)
            a_in, s_in = _scores(ys, ps, ts, drawn * inside)
            a_out, s_out = _scores(ys, ps, ts, drawn * ~inside)
            gaps.append((a_in - a_out, s_in - s_out))
        gaps = np.array(gaps)
        low, high = np.nanquantile(gaps[:, 0], tails)
        s_low, s_high = np.nanquantile(gaps[:, 1], tails)
        rows[group] = {"films": int(inside.sum()), "AUROC": auc_in, "AUROC rest": auc_out,
                       "AUROC gap": auc_in - auc_out,
                       "low": low, "high": high, "sensitivity": sens_in, "sensitivity rest": sens_out,
                       "sensitivity gap": sens_in - sens_out, "sens low": s_low, "sens high": s_high,
                       "found": bool(high < 0 or low > 0 or s_high < 0 or s_low > 0)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs.update(samples=samples, confidence=confidence, resampled="patients")
    return table


def add_marker(images, where=None, *, size: float = 0.12, value: float = 1.0) -> np.ndarray:
    """Copies of the films with a bright square marker in the top-left corner (as portable films carry one) where
    ``where`` is True.

    Taught in 09_your_own_films.
    """
    out = np.array(images, np.float32, copy=True)
    if out.ndim != 4:
        raise ValueError(f"images must be (films, height, width, channels), not shape {out.shape}.")
    chosen = np.ones(len(out), bool) if where is None else np.asarray(where, bool)
    region = marker_region(out.shape[1], size)
    out[np.ix_(chosen, region.any(axis=1), region.any(axis=0))] = value  # the square: its rows x its columns
    return out


def marker_region(image_size: int, size: float = 0.12) -> np.ndarray:
    """The boolean (height, width) mask of the square ``add_marker`` draws.

    Taught in 09_your_own_films.
    """
    region = np.zeros((image_size, image_size), bool)
    side = max(2, int(round(size * image_size)))
    pad = max(1, side // 3)
    region[pad:pad + side, pad:pad + side] = True
    return region


def mask_marker(images, size: float = 0.12) -> np.ndarray:
    """Copies with the marker's corner filled by the film's median grey: what the model sees when the marker cannot
    help.

    Taught in 09_your_own_films.
    """
    out = np.array(images, np.float32, copy=True)
    region = marker_region(out.shape[1], size)
    grown = np.zeros_like(region)
    ys, xs = np.nonzero(region)
    grown[max(0, ys.min() - 1):ys.max() + 2, max(0, xs.min() - 1):xs.max() + 2] = True
    fill = np.median(out.reshape(len(out), -1, out.shape[-1]), axis=1)  # per film and channel
    out[:, grown, :] = fill[:, None, :]
    return out


def heat_share(heatmaps, region) -> np.ndarray:
    """Share of each heatmap's (non-negative) heat inside ``region``.

    Taught in 09_your_own_films.
    """
    maps = np.clip(np.asarray(heatmaps, np.float64), 0, None)
    total = maps.reshape(len(maps), -1).sum(axis=1)
    inside = maps[:, np.asarray(region, bool)].sum(axis=1)
    return np.where(total > 0, inside / np.maximum(total, 1e-12), 0.0)


def mean_auc_gap(y_true, prob_a, prob_b, patients, *, samples: int = 500, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float, float]:
    """Mean AUROC over the findings of ``prob_a`` minus that of ``prob_b`` on the same films, with a paired
    patient-bootstrap interval: (gap, low, high).

    Taught in 09_your_own_films.
    """
    y = np.asarray(y_true, np.float64)
    a, b = (errors.check_probabilities(p, "probabilities").astype(np.float64) for p in (prob_a, prob_b))
    if not a.shape == b.shape == y.shape:
        raise ValueError(f"labels {y.shape} and the two sets of probabilities {a.shape}, {b.shape} must have "
                         "one shape.")
    t = np.full(y.shape[1], 0.5)
    ones = np.ones(len(y))
    gap = _scores(y, a, t, ones)[0] - _scores(y, b, t, ones)[0]
    codes, units = np.unique(np.asarray(patients), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(samples):
        weight = np.bincount(rng.integers(0, len(codes), len(codes)), minlength=len(codes))[units].astype(float)
        draws.append(_scores(y, a, t, weight)[0] - _scores(y, b, t, weight)[0])
    low, high = np.nanquantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(gap), float(low), float(high)
