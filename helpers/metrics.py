"""Metrics of the series: per-class AUROC, thresholds and their confusion counts, bootstrap intervals."""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve

from helpers import errors

MIN_BOOTSTRAP_SAMPLES = 50  # fewer replicates leave a 95% interval's tails to one or two values


def _by_name(table, labels, what: str) -> np.ndarray:
    """A DataFrame's columns in the order of ``labels`` (pairing by name, not position); refused when the names
    differ."""
    if not isinstance(table, pd.DataFrame):
        return np.asarray(table)
    columns = [str(c) for c in table.columns]
    wanted = [str(label) for label in labels]
    if columns == wanted:
        return table.to_numpy()
    missing, extra = [w for w in wanted if w not in columns], [c for c in columns if c not in wanted]
    if missing or extra or len(set(columns)) != len(columns):
        raise ValueError(f"{what}: its columns {columns[:4]}{'...' if len(columns) > 4 else ''} are not the label "
                         f"names {wanted[:4]}{'...' if len(wanted) > 4 else ''}"
                         + (f"; missing {missing[:3]}" if missing else "")
                         + (f"; not among the labels {extra[:3]}" if extra else "")
                         + (" (a name twice)" if len(set(columns)) != len(columns) else "")
                         + ": name the columns as the labels, or pass arrays in the labels' order.")
    return table[[table.columns[columns.index(w)] for w in wanted]].to_numpy()  # reordered by name


def _check(y_true, y_score, labels, *, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Columns by name first (DataFrames), then shapes, then 0/1 labels and finite scores (probabilities in [0, 1] where
    a threshold applies)."""
    y_true, y_score = _by_name(y_true, labels, "y_true (labels)"), _by_name(y_score, labels, "y_score (scores)")
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"labels {y_true.shape} and scores {y_score.shape} must be the same (images, classes) shape.")
    if y_true.shape[1] != len(labels):
        raise ValueError(f"{y_true.shape[1]} classes in the arrays but {len(labels)} label names.")
    y_true = errors.check_labels(y_true, "y_true (labels)").astype(np.float64)
    check = errors.check_probabilities if probabilities else errors.check_finite
    return y_true, check(y_score, "y_score (the model's scores)")


def _has_both(column: np.ndarray) -> bool:
    return 0 < column.sum() < len(column)


def _warn_missing(labels, missing, what) -> None:
    if missing:
        warnings.warn(
            f"{what}: no positives (or no negatives) for {', '.join(missing)}: their AUC is undefined and "
            "reported as nan.",
            stacklevel=3,
        )


def _auc_table(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str]) -> tuple[pd.Series, list[str]]:
    aucs, missing = {}, []
    for j, label in enumerate(labels):
        if _has_both(y_true[:, j]):
            aucs[label] = roc_auc_score(y_true[:, j], y_score[:, j])
        else:
            aucs[label] = np.nan
            missing.append(label)
    return pd.Series(aucs, name="AUROC", dtype=float), missing


def roc_auc_per_class(y_true, y_score, labels: Sequence[str], split: str = "this split") -> pd.Series:
    """AUROC per class (scikit-learn); a class without both outcomes is nan with a warning naming it.

    Taught in 02_densenet_transfer.
    """
    y_true, y_score = _check(y_true, y_score, labels)
    aucs, missing = _auc_table(y_true, y_score, labels)
    _warn_missing(labels, missing, split)
    return aucs


def roc_curves(y_true, y_score, labels: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """False- and true-positive rates per class, for plotting (classes without both outcomes left out).

    Taught in 02_densenet_transfer.
    """
    y_true, y_score = _check(y_true, y_score, labels)
    curves = {}
    for j, label in enumerate(labels):
        if _has_both(y_true[:, j]):
            fpr, tpr, _ = roc_curve(y_true[:, j], y_score[:, j])
            curves[label] = (fpr, tpr)
    return curves


def _best_f1_cut(truth: np.ndarray, scores: np.ndarray) -> float:
    """The lowest score t maximising F1 of ``scores >= t``, from one precision-recall sweep: O(n) memory."""
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    # the last (precision, recall) pair is the (1, 0) end point, which has no threshold
    precision, recall = precision[:-1], recall[:-1]
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    return float(thresholds[int(np.argmax(f1))])


def choose_thresholds(y_true, y_score, labels: Sequence[str], method: str = "youden") -> pd.Series:
    """Per-class decision threshold chosen on validation: Youden's J (max sensitivity + specificity - 1) or max F1.

    Taught in 02_densenet_transfer.
    """
    if method not in ("youden", "f1"):
        raise ValueError(f"method must be 'youden' or 'f1', not {method!r}.")
    y_true, y_score = _check(y_true, y_score, labels, probabilities=True)
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
            chosen[label] = float(min(cut[best], 1.0))  # the first cut is +inf ("predict none"); scores are <= 1
        else:
            chosen[label] = _best_f1_cut(truth == 1, score)
    _warn_missing(labels, missing, "choosing thresholds")
    return pd.Series(chosen, name=f"threshold ({method})")


def threshold_metrics(y_true, y_score, thresholds: pd.Series, labels: Sequence[str]) -> pd.DataFrame:
    """Confusion counts and sensitivity, specificity, PPV, NPV per class at the given thresholds.

    Taught in 02_densenet_transfer.
    """
    y_true, y_score = _check(y_true, y_score, labels, probabilities=True)
    absent = [label for label in labels if label not in thresholds.index]
    if absent:
        raise ValueError(f"thresholds has no value for {', '.join(absent)}: choose them with choose_thresholds on "
                         "validation.")
    rows = {}
    for j, label in enumerate(labels):
        cut = float(thresholds[label])
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


def _bootstrap_arguments(samples, confidence, min_valid, n_rows, groups) -> tuple[int, np.ndarray | None]:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < MIN_BOOTSTRAP_SAMPLES:
        raise ValueError(
            f"samples must be a whole number >= {MIN_BOOTSTRAP_SAMPLES} (bootstrap replicates), not {samples!r}: "
            "with fewer, each tail of the interval rests on one or two replicates."
        )
    numeric = not isinstance(confidence, bool) and isinstance(confidence, (int, float, np.integer, np.floating))
    if not numeric or not 0 < confidence < 1:
        hint = f" It looks like a percentage: pass {confidence / 100:g}." if numeric and 1 < confidence < 100 else ""
        raise ValueError(f"confidence must be a fraction in (0, 1), e.g. 0.95, not {confidence!r}.{hint}")
    if min_valid is None:
        min_valid = math.ceil(0.9 * samples)
    if isinstance(min_valid, bool) or not isinstance(min_valid, (int, np.integer)) or not 1 <= min_valid <= samples:
        raise ValueError(f"min_valid must be a whole number from 1 to samples ({samples}), not {min_valid!r}.")
    if n_rows == 0:
        raise ValueError("no images to bootstrap: y_true and y_score are empty.")
    codes = None
    if groups is not None:
        groups = np.asarray(groups)
        if groups.ndim != 1 or len(groups) != n_rows:
            raise ValueError(
                f"groups has shape {groups.shape}, but there are {n_rows} images: pass one patient ID per image (row)."
            )
        if pd.isna(groups).any():
            raise errors.DataError(
                f"groups: {int(pd.isna(groups).sum())} missing patient ID(s), the first at row "
                f"{int(np.argmax(pd.isna(groups)))}. Every image needs its patient's ID for a patient-level bootstrap."
            )
        codes = pd.factorize(groups, sort=True)[0]
    return int(min_valid), codes


def bootstrap_auc(
    y_true, y_score, labels: Sequence[str], samples: int = 200, confidence: float = 0.95, seed: int = 42, *,
    groups=None, min_valid: int | None = None,
) -> pd.DataFrame:
    """AUROC per class with a percentile bootstrap interval, resampling patients when ``groups`` gives their IDs.

    ``groups`` (one patient ID per image): a cluster bootstrap draws patients with replacement and keeps all
    of their images, since images of one patient are not independent; without it, images are drawn. A
    replicate in which a class has no positives (or no negatives) is invalid for that class; the column
    ``valid`` counts the valid ones. With fewer than ``min_valid`` (default 90% of ``samples``) the
    interval would describe only the lucky replicates, so it is reported as nan with a warning naming the
    class. ``samples`` below 50 or a ``confidence`` outside (0, 1) (95 instead of 0.95) raise ValueError.

    Taught in 02_densenet_transfer.
    """
    y_true, y_score = _check(y_true, y_score, labels)
    min_valid, codes = _bootstrap_arguments(samples, confidence, min_valid, len(y_true), groups)
    units = len(y_true) if codes is None else int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    point, _ = _auc_table(y_true, y_score, labels)
    values: list[list[float]] = [[] for _ in labels]
    for _ in range(samples):
        # one replicate as integer weights: how often each row was drawn (directly, or with its patient)
        drawn = np.bincount(rng.integers(0, units, size=units), minlength=units)
        weight = drawn if codes is None else drawn[codes]
        kept = weight > 0
        for j in range(len(labels)):
            positives = weight @ y_true[:, j]
            if 0 < positives < weight.sum():
                values[j].append(roc_auc_score(y_true[kept, j], y_score[kept, j], sample_weight=weight[kept]))
    rows, refused = {}, []
    tails = [(1 - confidence) / 2, (1 + confidence) / 2]
    for j, label in enumerate(labels):
        valid = len(values[j])
        low, high = np.quantile(values[j], tails) if valid >= min_valid else (np.nan, np.nan)
        if valid < min_valid:
            refused.append(f"{label} ({valid} valid)")
        rows[label] = {"AUROC": point[label], "low": low, "high": high, "positives": int(y_true[:, j].sum()),
                       "valid": valid}
    if refused:
        warnings.warn(
            f"bootstrap_auc: fewer than min_valid={min_valid} of {samples} replicates had both outcomes for "
            f"{', '.join(refused)}: their interval is reported as nan (too few positive "
            f"{'patients' if codes is not None else 'images'} to bootstrap; pool more data or lower min_valid "
            "knowingly).",
            stacklevel=2,
        )
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.attrs.update(samples=samples, confidence=confidence, min_valid=min_valid,
                       resampled="patients" if codes is not None else "images", units=units)
    return table


def published_auroc() -> pd.DataFrame:
    """Published per-class AUROC on ChestX-ray14 (Wang 2017, CheXNet, Deep MedIA) from helpers/data/manifests/;
    sources and splits in .attrs.

    Taught in 02_densenet_transfer.
    """
    import json

    from helpers.manifests import MANIFEST_DIR

    path = MANIFEST_DIR / "published_auroc.json"
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    table = pd.DataFrame.from_dict(data["auroc"], orient="index").astype(float)
    table.attrs["sources"] = data["sources"]
    table.attrs["splits"] = data["splits"]  # which split each column was measured on: not all the official one
    return table


# --------------------------------------------------------------------------------------------
# Segmentation: pixel metrics inside the field of view (notebook 03)
# --------------------------------------------------------------------------------------------

SEGMENTATION_METRICS = ("Dice", "AUC-ROC", "AUC-PR", "accuracy", "sensitivity", "specificity")


def fov_pixels(vessels, probabilities, fov) -> tuple[np.ndarray, np.ndarray]:
    """The (truth, score) pairs of the pixels inside the FOV, from one image (HxW) or a stack (NxHxW), checked.

    Taught in 03_unet_vessels.
    """
    vessels, probabilities, fov = (np.asarray(a) for a in (vessels, probabilities, fov))
    if probabilities.ndim == vessels.ndim + 1 and probabilities.shape[-1] == 1:
        probabilities = probabilities[..., 0]
    if not vessels.shape == probabilities.shape == fov.shape:
        raise ValueError(
            f"vessels {vessels.shape}, probabilities {probabilities.shape} and fov {fov.shape} must have the same "
            "shape (HxW, or NxHxW for a stack of images)."
        )
    truth = errors.check_labels(vessels, "the vessel mask").astype(bool)
    inside = errors.check_labels(fov, "the FOV mask").astype(bool)
    if not inside.any():
        raise ValueError("the FOV mask is empty: there is no pixel to evaluate.")
    # only the pixels inside the FOV are scored; the position in a message is the image's own
    scores = errors.check_probabilities(np.where(inside, probabilities, 0.0), "probabilities inside the FOV")
    return truth[inside], scores[inside]


def segmentation_metrics(vessels, probabilities, fov, threshold: float = 0.5) -> pd.Series:
    """Dice (= F1), AUC-ROC, AUC-PR (average precision), accuracy, sensitivity, specificity over the pixels inside the
    FOV only.

    Taught in 03_unet_vessels.
    """
    from sklearn.metrics import average_precision_score

    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1] (the scores are probabilities), not {threshold!r}.")
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
    """The threshold (predict vessel when p >= it) with the highest F1 = Dice inside the FOV; choose it on validation
    images.

    Taught in 03_unet_vessels.
    """
    truth, scores = fov_pixels(vessels, probabilities, fov)
    if not truth.any():
        raise ValueError("no vessel pixel inside the FOV: F1 is undefined for every threshold.")
    return _best_f1_cut(truth, scores)


def published_drive() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published DRIVE results from helpers/data/manifests/published_drive.json: (test metrics inside the FOV, Dice
    losses); sources in .attrs.

    Taught in 03_unet_vessels.
    """
    import json

    from helpers.manifests import MANIFEST_DIR

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
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    if y_true.shape != y_prob.shape:
        raise ValueError(f"labels {y_true.shape} and probabilities {y_prob.shape} must have the same shape.")
    if y_true.size == 0:
        raise ValueError("no predictions to calibrate.")
    y_true = errors.check_labels(y_true, "y_true (labels)").astype(np.float64)
    y_prob = errors.check_probabilities(y_prob, "y_prob (predicted probabilities)")
    return y_true.ravel(), y_prob.ravel()


def reliability_table(y_true, y_prob, bins: int = 10) -> pd.DataFrame:
    """Reliability-diagram data over equal-width bins: mean predicted probability, observed frequency, count (empty bins
    left out).

    Taught in 04_mc_dropout_uncertainty.
    """
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


def expected_calibration_error(
    y_true, y_prob, bins: int = 10, per_class: bool = False, labels: Sequence[str] | None = None
) -> float | pd.Series:
    """ECE: the count-weighted mean gap |observed frequency - mean probability| over equal-width bins, pooled or per
    class (column).

    Pooled (default): every (image, class) prediction in one set of bins. ``per_class=True`` takes
    (images, classes) arrays and returns one ECE per column, named by ``labels`` when given; a rare
    class's miscalibration is diluted in the pooled figure by the many easy negatives of the others.

    Taught in 04_mc_dropout_uncertainty.
    """
    if not per_class:
        table = reliability_table(y_true, y_prob, bins)
        weights = table["count"] / table["count"].sum()
        return float((weights * (table["frequency"] - table["confidence"]).abs()).sum())
    if labels is not None:
        y_true, y_prob = _by_name(y_true, labels, "y_true (labels)"), _by_name(y_prob, labels, "y_prob (probabilities)")
    elif isinstance(y_true, pd.DataFrame) and isinstance(y_prob, pd.DataFrame):
        labels = [str(c) for c in y_true.columns]
        y_true, y_prob = y_true.to_numpy(), _by_name(y_prob, labels, "y_prob (probabilities)")
    y_true, y_prob = np.asarray(y_true), np.asarray(y_prob)
    if y_true.ndim != 2 or y_true.shape != y_prob.shape:
        raise ValueError(
            f"per_class=True needs labels and probabilities of the same (images, classes) shape, got {y_true.shape} "
            f"and {y_prob.shape}."
        )
    names = list(range(y_true.shape[1])) if labels is None else list(labels)
    if len(names) != y_true.shape[1]:
        raise ValueError(f"{y_true.shape[1]} classes in the arrays but {len(names)} label names.")
    _calibration_inputs(y_true, y_prob)  # check the whole arrays once, so a message names the (row, class)
    return pd.Series({name: expected_calibration_error(y_true[:, j], y_prob[:, j], bins)
                      for j, name in enumerate(names)},
                     name="ECE", dtype=float)
