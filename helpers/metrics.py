"""Metrics of the series: per-class ROC AUC, thresholds and their confusion counts, bootstrap intervals."""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve


def _check(y_true, y_score, labels) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true, dtype=np.float64), np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and scores {y_score.shape} must be the same (images, classes) shape.")
    if y_true.shape[1] != len(labels):
        raise ValueError(f"{y_true.shape[1]} classes in the arrays but {len(labels)} label names.")
    if not np.isfinite(y_score).all():
        raise ValueError("scores contain NaN or infinity: check the model's output.")
    return y_true, y_score


def _has_both(column: np.ndarray) -> bool:
    return 0 < column.sum() < len(column)


def _warn_missing(labels, missing, what) -> None:
    if missing:
        warnings.warn(
            f"{what}: no positives (or no negatives) for {', '.join(missing)}: their AUC is undefined and reported as nan.",
            stacklevel=3,
        )


def roc_auc_per_class(y_true, y_score, labels: Sequence[str], split: str = "this split") -> pd.Series:
    """ROC AUC per class (scikit-learn); a class without both outcomes is nan with a warning naming it. Taught in 02_densenet_transfer."""
    y_true, y_score = _check(y_true, y_score, labels)
    aucs, missing = {}, []
    for j, label in enumerate(labels):
        if _has_both(y_true[:, j]):
            aucs[label] = roc_auc_score(y_true[:, j], y_score[:, j])
        else:
            aucs[label] = np.nan
            missing.append(label)
    _warn_missing(labels, missing, split)
    return pd.Series(aucs, name="ROC AUC")


def roc_curves(y_true, y_score, labels: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """False- and true-positive rates per class, for plotting (classes without both outcomes left out). Taught in 02_densenet_transfer."""
    y_true, y_score = _check(y_true, y_score, labels)
    curves = {}
    for j, label in enumerate(labels):
        if _has_both(y_true[:, j]):
            fpr, tpr, _ = roc_curve(y_true[:, j], y_score[:, j])
            curves[label] = (fpr, tpr)
    return curves


def choose_thresholds(y_true, y_score, labels: Sequence[str], method: str = "youden") -> pd.Series:
    """Per-class decision threshold chosen on validation: Youden's J (max sensitivity + specificity - 1) or max F1. Taught in 02_densenet_transfer."""
    if method not in ("youden", "f1"):
        raise ValueError(f"method must be 'youden' or 'f1', not {method!r}.")
    y_true, y_score = _check(y_true, y_score, labels)
    chosen, missing = {}, []
    for j, label in enumerate(labels):
        truth, score = y_true[:, j], y_score[:, j]
        if not _has_both(truth):
            chosen[label] = np.nan
            missing.append(label)
            continue
        if method == "youden":
            fpr, tpr, cut = roc_curve(truth, score)
            best = np.argmax(tpr - fpr)
            chosen[label] = float(min(cut[best], 1.0))
        else:
            candidates = np.unique(score)
            predicted = score[None, :] >= candidates[:, None]
            tp = (predicted & (truth == 1)).sum(1)
            fp = (predicted & (truth == 0)).sum(1)
            fn = ((~predicted) & (truth == 1)).sum(1)
            f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
            chosen[label] = float(candidates[np.argmax(f1)])
    _warn_missing(labels, missing, "choosing thresholds")
    return pd.Series(chosen, name=f"threshold ({method})")


def threshold_metrics(y_true, y_score, thresholds: pd.Series, labels: Sequence[str]) -> pd.DataFrame:
    """Confusion counts and sensitivity, specificity, PPV, NPV per class at the given thresholds. Taught in 02_densenet_transfer."""
    y_true, y_score = _check(y_true, y_score, labels)
    rows = {}
    for j, label in enumerate(labels):
        cut = thresholds[label]
        truth = y_true[:, j] == 1
        predicted = y_score[:, j] >= cut if np.isfinite(cut) else np.zeros(len(truth), bool)
        tp, fp = int((predicted & truth).sum()), int((predicted & ~truth).sum())
        fn, tn = int((~predicted & truth).sum()), int((~predicted & ~truth).sum())

        def ratio(a, b):
            return a / (a + b) if a + b else np.nan

        rows[label] = {"threshold": cut, "TP": tp, "FP": fp, "FN": fn, "TN": tn,
                       "sensitivity": ratio(tp, fn), "specificity": ratio(tn, fp),
                       "PPV": ratio(tp, fp), "NPV": ratio(tn, fn)}
    return pd.DataFrame.from_dict(rows, orient="index")


def bootstrap_auc(
    y_true, y_score, labels: Sequence[str], samples: int = 200, confidence: float = 0.95, seed: int = 42
) -> pd.DataFrame:
    """ROC AUC per class with a percentile bootstrap confidence interval over images. Taught in 02_densenet_transfer."""
    y_true, y_score = _check(y_true, y_score, labels)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws = rng.integers(0, n, size=(samples, n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        point = roc_auc_per_class(y_true, y_score, labels)
    rows = {}
    for j, label in enumerate(labels):
        values = [
            roc_auc_score(y_true[idx, j], y_score[idx, j]) for idx in draws if _has_both(y_true[idx, j])
        ]
        low, high = (np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2]) if values else (np.nan, np.nan))
        rows[label] = {"ROC AUC": point[label], "low": low, "high": high, "positives": int(y_true[:, j].sum())}
    return pd.DataFrame.from_dict(rows, orient="index")


def published_auroc() -> pd.DataFrame:
    """Published per-class ROC AUC on ChestX-ray14 (Wang 2017, CheXNet, Deep MedIA) from data_manifests/. Taught in 02_densenet_transfer."""
    import json

    from helpers.datasets import MANIFEST_DIR

    path = MANIFEST_DIR / "published_auroc.json"
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    table = pd.DataFrame.from_dict(data["auroc"], orient="index").astype(float)
    table.attrs["sources"] = data["sources"]
    return table


# --------------------------------------------------------------------------------------------
# Segmentation: pixel metrics inside the field of view (notebook 03)
# --------------------------------------------------------------------------------------------

SEGMENTATION_METRICS = ("Dice", "AUC-ROC", "AUC-PR", "accuracy", "sensitivity", "specificity")


def _is_binary(array: np.ndarray) -> bool:
    return array.dtype == bool or bool(np.isin(array, (0, 1)).all())


def fov_pixels(vessels, probabilities, fov) -> tuple[np.ndarray, np.ndarray]:
    """The (truth, score) pairs of the pixels inside the FOV, from one image (HxW) or a stack (NxHxW), checked. Taught in 03_unet_vessels."""
    vessels, probabilities, fov = (np.asarray(a) for a in (vessels, probabilities, fov))
    if probabilities.ndim == vessels.ndim + 1 and probabilities.shape[-1] == 1:
        probabilities = probabilities[..., 0]
    if not vessels.shape == probabilities.shape == fov.shape:
        raise ValueError(
            f"vessels {vessels.shape}, probabilities {probabilities.shape} and fov {fov.shape} must have the same shape "
            "(HxW, or NxHxW for a stack of images)."
        )
    if not _is_binary(vessels):
        raise ValueError("the vessel mask is not binary: expected only 0/1 (or False/True).")
    if not _is_binary(fov):
        raise ValueError("the FOV mask is not binary: expected only 0/1 (or False/True).")
    inside = fov.astype(bool)
    if not inside.any():
        raise ValueError("the FOV mask is empty: there is no pixel to evaluate.")
    scores = probabilities[inside].astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("probabilities contain NaN or infinity inside the FOV: check the model's output.")
    return vessels[inside].astype(bool), scores


def segmentation_metrics(vessels, probabilities, fov, threshold: float = 0.5) -> pd.Series:
    """Dice (= F1), AUC-ROC, AUC-PR (average precision), accuracy, sensitivity, specificity over the pixels inside the FOV only. Taught in 03_unet_vessels."""
    from sklearn.metrics import average_precision_score

    truth, scores = fov_pixels(vessels, probabilities, fov)
    predicted = scores >= threshold
    tp = int(np.count_nonzero(predicted & truth))
    fp = int(np.count_nonzero(predicted & ~truth))
    fn = int(np.count_nonzero(~predicted & truth))
    tn = int(np.count_nonzero(~predicted & ~truth))

    def ratio(a, b):
        return a / b if b else np.nan

    both = _has_both(truth)
    if not both:
        warnings.warn("only one class inside the FOV: AUC-ROC and AUC-PR are undefined (nan).", stacklevel=2)
    values = {
        "Dice": ratio(2 * tp, 2 * tp + fp + fn),
        "AUC-ROC": roc_auc_score(truth, scores) if both else np.nan,
        "AUC-PR": average_precision_score(truth, scores) if both else np.nan,
        "accuracy": (tp + tn) / truth.size,
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "threshold": float(threshold),
        "pixels": truth.size,
    }
    return pd.Series(values, name="inside FOV", dtype=float)


def best_f1_threshold(vessels, probabilities, fov) -> float:
    """The threshold (predict vessel when p >= it) with the highest F1 = Dice inside the FOV; choose it on validation images. Taught in 03_unet_vessels."""
    from sklearn.metrics import precision_recall_curve

    truth, scores = fov_pixels(vessels, probabilities, fov)
    if not truth.any():
        raise ValueError("no vessel pixel inside the FOV: F1 is undefined for every threshold.")
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    # the last (precision, recall) pair is the (1, 0) end point, which has no threshold
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1))])


def published_drive() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published DRIVE results from data_manifests/published_drive.json: (test metrics inside the FOV, Dice losses); sources in .attrs. Taught in 03_unet_vessels."""
    import json

    from helpers.datasets import MANIFEST_DIR

    with open(MANIFEST_DIR / "published_drive.json", encoding="utf-8") as f:
        data = json.load(f)
    table = pd.DataFrame.from_dict(data["metrics"], orient="index").astype(float)
    losses = pd.DataFrame.from_dict(data["dice_loss"], orient="index").astype(float)
    table.attrs["sources"] = losses.attrs["sources"] = data["sources"]
    return table, losses


# --------------------------------------------------------------------------------------------
# Calibration: reliability diagram and expected calibration error (notebook 04)
# --------------------------------------------------------------------------------------------


def _calibration_inputs(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_prob = np.asarray(y_true, dtype=np.float64), np.asarray(y_prob, dtype=np.float64)
    if y_true.shape != y_prob.shape:
        raise ValueError(f"labels {y_true.shape} and probabilities {y_prob.shape} must have the same shape.")
    y_true, y_prob = y_true.ravel(), y_prob.ravel()
    if y_true.size == 0:
        raise ValueError("no predictions to calibrate.")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError("labels must be 0/1.")
    if not np.isfinite(y_prob).all() or y_prob.min() < 0 or y_prob.max() > 1:
        raise ValueError("probabilities must lie in [0, 1].")
    return y_true, y_prob


def reliability_table(y_true, y_prob, bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data over equal-width bins: mean predicted probability, observed frequency, count (empty bins left out). Taught in 04_mc_dropout_uncertainty."""
    from sklearn.calibration import calibration_curve

    y_true, y_prob = _calibration_inputs(y_true, y_prob)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, not {bins!r}.")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], y_prob)  # the same binning as sklearn's calibration_curve
    counts = np.bincount(index, minlength=bins)
    frequency, confidence = calibration_curve(y_true, y_prob, n_bins=bins, strategy="uniform")
    used = counts > 0
    return pd.DataFrame({"low": edges[:-1][used], "high": edges[1:][used], "confidence": confidence,
                         "frequency": frequency, "count": counts[used]})


def expected_calibration_error(y_true, y_prob, bins: int = 10) -> float:
    """ECE: the count-weighted mean gap |observed frequency - mean probability| over equal-width bins. Taught in 04_mc_dropout_uncertainty."""
    table = reliability_table(y_true, y_prob, bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["frequency"] - table["confidence"]).abs()).sum())
