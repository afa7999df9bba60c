"""The checks of the notebooks' exercises: each calls the reader's function on small inputs it builds itself.

Each check compares the answer with a reference (Keras, scikit-learn, SciPy, OpenCV, one of our helpers or
a hand computation) within a stated tolerance. It raises ``NotYet`` while the answer is still the stub,
``Wrong`` with what is wrong (and, for the usual mistakes, which one it looks like), and prints what it
verified when the answer is right. Both exceptions are AssertionErrors, so a notebook run stops there.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd


class NotYet(AssertionError):
    """The exercise's answer cell still holds the stub (it raised NotImplementedError).

    Taught in 03_unet_vessels.
    """


class Wrong(AssertionError):
    """The exercise's answer runs but gives a wrong result; the message says what is wrong.

    Taught in 03_unet_vessels.
    """


def attempt(title: str, todo: str, fn: Callable, *args: Any) -> Any:
    """Call the reader's ``fn(*args)``: NotYet if it is the stub, Wrong if it is not a function or raises.

    Taught in 03_unet_vessels.
    """
    if not callable(fn):
        raise Wrong(f"{title}: expected a function, got {type(fn).__name__} ({fn!r:.60}). {todo}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotYet(f"{title}: not done yet. {todo}") from None
    except Exception as err:  # the reader's code failed: say where, keep the traceback chained
        raise Wrong(f"{title}: your {getattr(fn, '__name__', 'function')} raised {type(err).__name__}: {err}") from err


def number(title: str, value: Any, what: str) -> float:
    """The reader's result as one finite float, or Wrong saying what came back instead.

    Taught in 03_unet_vessels.
    """
    array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if array is None or array.dtype.kind not in "biuf" or array.size != 1:
        shape = "" if array is None else f" of shape {array.shape}"
        raise Wrong(f"{title}: {what} should be one number, got {type(value).__name__}{shape}.")
    result = float(array.reshape(()))
    if not math.isfinite(result):
        raise Wrong(f"{title}: {what} is {result}: a log(0) or a division by zero somewhere (clip p to "
                    "[1e-7, 1 - 1e-7], as the series' losses do).")
    return result


def numbers(title: str, value: Any, shape: tuple, what: str) -> np.ndarray:
    """The reader's result as a finite float array of ``shape``, or Wrong saying what came back instead.

    Taught in 03_unet_vessels.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Wrong(f"{title}: {what} should be numbers of shape {shape}, got {type(value).__name__}.") from None
    if array.shape != tuple(shape):
        raise Wrong(f"{title}: {what} should have shape {tuple(shape)}, got {array.shape}.")
    if not np.isfinite(array).all():
        raise Wrong(f"{title}: {what} has {int((~np.isfinite(array)).sum())} NaN or infinite value(s): a log(0) "
                    "or a division by zero (clip p to [1e-7, 1 - 1e-7]; skip empty sets).")
    return array


def _diagnose(title: str, yours: Any, expected: Any, mistakes: dict[str, Any], atol: float, head: str) -> None:
    """Raise Wrong with ``head`` and, when ``yours`` matches one of ``mistakes`` (hint -> its value), that hint."""
    if np.allclose(yours, expected, atol=atol, rtol=0):
        return
    for hint, value in mistakes.items():
        if np.shape(value) == np.shape(yours) and np.allclose(yours, value, atol=atol, rtol=0):
            raise Wrong(f"{title}: {head} {hint}")
    raise Wrong(f"{title}: {head}")


def _passed(title: str, what: str) -> None:
    print(f"{title}: passed. {what[0].upper()}{what[1:]}")


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ---- 01_preprocessing_and_splits ------------------------------------------------------------------


def _split_entries() -> pd.DataFrame:
    rng = _rng(1)
    per_patient = rng.integers(1, 7, size=30)
    patients = np.repeat(np.arange(1, 31), per_patient)
    return pd.DataFrame({"image_index": [f"{i:08d}_000.png" for i in range(len(patients))], "patient_id": patients,
                         "Hernia": (rng.random(len(patients)) < 0.1).astype(int)})


def check_patient_split(fn: Callable) -> None:
    """Exercise of 01: ``fn(entries, val_fraction, test_fraction, seed)`` splits whole patients at random.

    Taught in 01_preprocessing_and_splits.
    """
    from helpers import splits
    from helpers.errors import PatientLeakageError

    title = "Your own patient split"
    todo = ("Write patient_split(entries, val_fraction, test_fraction, seed) returning {'train': ..., 'val': ..., "
            "'test': ...}: three DataFrames of rows of entries, each patient's images all in one of them.")
    entries = _split_entries()
    parts = attempt(title, todo, fn, entries.copy(), 0.2, 0.2, 0)
    if not isinstance(parts, dict) or set(parts) != {"train", "val", "test"} or not all(
            isinstance(p, pd.DataFrame) for p in parts.values()):
        raise Wrong(f"{title}: return a dict with the keys 'train', 'val', 'test', each a DataFrame of rows of entries; "
                    f"got {type(parts).__name__} {sorted(parts) if isinstance(parts, dict) else ''}.")
    try:
        splits.assert_no_patient_overlap(**parts)
    except PatientLeakageError as err:
        raise Wrong(f"{title}: {str(err).splitlines()[0]} Draw the patients (entries.patient_id.unique()), not the "
                    "rows, then take every row of each drawn patient.") from None
    used = pd.concat(list(parts.values())).image_index
    missing, repeated = len(set(entries.image_index) - set(used)), int(used.duplicated().sum())
    if missing or repeated:
        raise Wrong(f"{title}: of the {len(entries)} images, {missing} are in no split and {repeated} are in two or more: "
                    "every row of entries belongs to exactly one split.")
    share = {name: part.patient_id.nunique() / entries.patient_id.nunique() for name, part in parts.items()}
    if abs(share["val"] - 0.2) > 0.1 or abs(share["test"] - 0.2) > 0.1:
        raise Wrong(f"{title}: with val_fraction = test_fraction = 0.2 your splits hold {share['val']:.0%} and "
                    f"{share['test']:.0%} of the patients: use the fractions of patients asked for.")
    again = attempt(title, todo, fn, entries.copy(), 0.2, 0.2, 1)
    if set(again["test"].patient_id) == set(parts["test"].patient_id):
        raise Wrong(f"{title}: seeds 0 and 1 put the same patients in test: draw the patients at random with the seed "
                    "(np.random.default_rng(seed).permutation).")
    _passed(title, f"on {len(entries)} images of 30 patients: no patient in two splits, every image used once, "
            f"patients {share['train']:.0%}/{share['val']:.0%}/{share['test']:.0%}, a new seed draws new patients.")


def check_class_weights(fn: Callable) -> None:
    """Exercise of 01: ``fn(labels)`` returns (w_p, w_n) per finding, as preprocessing.class_weights.

    Taught in 01_preprocessing_and_splits.
    """
    from helpers import preprocessing

    title = "Weights by hand"
    todo = "Write class_weights(labels) returning (w_p, w_n): one weight per column, w_p = negatives/total, w_n = positives/total."
    labels = (_rng(2).random((50, 3)) < np.array([0.5, 0.2, 0.04])).astype(np.float32)
    labels[0, 2] = 1  # every column has both values
    result = attempt(title, todo, fn, labels.copy())
    if not isinstance(result, tuple) or len(result) != 2:
        raise Wrong(f"{title}: return a pair (w_p, w_n), got {type(result).__name__}.")
    w_p, w_n = (numbers(title, w, (3,), name) for w, name in zip(result, ("w_p", "w_n")))
    ref_p, ref_n = (np.asarray(w, np.float64) for w in preprocessing.class_weights(labels))
    positives = labels.sum(0)
    _diagnose(title, np.stack([w_p, w_n]), np.stack([ref_p, ref_n]), {
        "The two are swapped: the positives of a rare finding must weigh MORE, w_p = negatives / total.":
            np.stack([ref_n, ref_p]),
        "These are counts: divide by the number of images (rows).": np.stack([len(labels) - positives, positives]),
        "These are one pair for all findings: compute one per column (axis=0).":
            np.stack([np.full(3, 1 - labels.mean()), np.full(3, labels.mean())]),
    }, 1e-6, f"your (w_p, w_n) are {np.round(w_p, 3).tolist()}, {np.round(w_n, 3).tolist()} where "
             f"preprocessing.class_weights gives {np.round(ref_p, 3).tolist()}, {np.round(ref_n, 3).tolist()} (tolerance 1e-6).")
    _passed(title, f"on 50 images x 3 findings (prevalence {np.round(labels.mean(0, dtype=np.float64), 2).tolist()}) your weights equal "
            "preprocessing.class_weights within 1e-6.")


# ---- 02_densenet_transfer -------------------------------------------------------------------------


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
    }, 1e-5, f"your loss is {yours:.5f} where losses.WeightedBinaryCrossentropy gives {reference:.5f} on the same batch "
             "(tolerance 1e-5).")
    _passed(title, f"on a 6 x 4 batch with p = 0 and p = 1 in it: {yours:.5f}, as losses.WeightedBinaryCrossentropy within 1e-5.")


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


# ---- 03_unet_vessels ------------------------------------------------------------------------------


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
        "Did you average a Dice per image? One Dice over the whole batch: sum over every pixel first.": per_image.mean(),
        "That is the Dice coefficient: the loss is 1 minus it.": 1 - reference,
        "The numerator needs the factor 2: 2 sum(y p).": 1 - s_yp / (s_y + s_p),
        "You thresholded p: the soft Dice uses the probabilities themselves.":
            1 - 2 * (y * (p >= 0.5)).sum() / (s_y + (p >= 0.5).sum()),
        "You squared p in the denominator (the V-Net variant); keras.losses.Dice sums p itself.":
            1 - 2 * s_yp / (s_y + float((p ** 2).sum())),
    }, 1e-5, f"your Dice loss is {yours:.4f} where keras.losses.Dice gives {reference:.4f} on the same batch (tolerance 1e-5).")
    _passed(title, f"on a 3-patch batch (one without vessels): {yours:.4f}, as keras.losses.Dice within 1e-5.")


def check_fov_accuracies(fn: Callable) -> None:
    """Exercise of 03: ``fn(vessels, probabilities, fov)`` returns (accuracy on the whole image, inside the FOV) at p >= 0.5.

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
    probabilities[fov & vessels] = np.where(rng.random(int((fov & vessels).sum())) < 0.3, 0.5, probabilities[fov & vessels])
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
    head = f"your threshold {yours:.3f} gives F1 {_f1(truth, scores, yours):.3f}, but {reference:.3f} reaches {best:.3f}."
    if np.isclose(yours, best):
        head += " You returned the best F1 itself: return the threshold that reaches it."
    elif _f1(truth, scores, yours, strict=True) >= best - 1e-12:
        head += " With p > t it would be right: the series calls a pixel vessel when p >= t."
    elif np.isclose(yours, max(scores, key=lambda t: ((scores >= t) == truth).mean())):
        head += " That threshold maximises accuracy, not F1."
    raise Wrong(f"{title}: {head}")


# ---- 04_mc_dropout_uncertainty --------------------------------------------------------------------


def check_entropy_bits(fn: Callable) -> None:
    """Exercise of 04: ``fn(samples)`` (T first) is the total uncertainty (entropy of the mean) in bits.

    Taught in 04_mc_dropout_uncertainty.
    """
    from helpers import uncertainty

    title = "Bits"
    todo = ("Write entropy_bits(samples) for sigmoid MC samples of shape (T, ...): the entropy of their mean in "
            "bits (log base 2), p clipped to [1e-7, 1 - 1e-7], one value per output.")
    samples = _rng(9).uniform(0.0, 1.0, (6, 5))
    samples[:, 0] = [0.3, 0.7, 0.3, 0.7, 0.3, 0.7]  # mean 0.5: exactly one bit
    samples[:, 1] = 0.0  # certain: 0 bits, a log(0) to avoid
    yours = numbers(title, attempt(title, todo, fn, samples.copy()), (5,), "the entropies")
    parts = uncertainty.decompose(samples)
    reference = parts.total / np.log(2)
    _diagnose(title, yours, reference, {
        "These are nats: divide by ln 2 (or use np.log2).": parts.total,
        "That is the mean of each sample's entropy, the aleatoric part: total is the entropy of the MEAN.":
            parts.aleatoric / np.log(2),
        "That is the mutual information (epistemic part): total is the entropy of the mean.": parts.epistemic / np.log(2),
    }, 1e-5, f"your values {np.round(yours, 4).tolist()} differ from uncertainty.decompose(samples).total / ln 2 = "
             f"{np.round(reference, 4).tolist()} (tolerance 1e-5; samples averaging 0.5 carry exactly 1 bit).")
    _passed(title, f"on 5 outputs x 6 samples: {np.round(yours, 4).tolist()} bits, as decompose().total / ln 2 "
            "within 1e-5 (a mean of 0.5: 1 bit; all samples 0: 0 bits).")


def check_spearman(fn: Callable) -> None:
    """Exercise of 04: ``fn(a, b)`` is Spearman's rank correlation, ties given their mean rank, as scipy.stats.spearmanr.

    Taught in 04_mc_dropout_uncertainty.
    """
    from scipy import stats

    title = "Variance or mutual information"
    todo = ("Write spearman(a, b): Pearson's correlation of the ranks of a and b, tied values given their mean rank "
            "(pandas' .rank() or scipy.stats.rankdata), as scipy.stats.spearmanr.")
    rng = _rng(10)
    a = np.round(rng.exponential(1.0, 30), 1)  # rounded: ties, as in the many near-zero pixels
    b = np.round(a ** 2 + rng.normal(0, 0.8, 30), 1)
    yours = number(title, attempt(title, todo, fn, a.copy(), b.copy()), "the correlation")
    reference = float(stats.spearmanr(a, b).statistic)
    first = lambda v: np.argsort(np.argsort(v, kind="stable"), kind="stable")  # noqa: E731
    _diagnose(title, yours, reference, {
        "That is Pearson's r on the values: rank them first.": np.corrcoef(a, b)[0, 1],
        "Tied values need the same (mean) rank: use scipy.stats.rankdata, not argsort(argsort()).":
            np.corrcoef(first(a), first(b))[0, 1],
    }, 1e-9, f"your correlation is {yours:.4f} where scipy.stats.spearmanr gives {reference:.4f} on 30 pairs with ties "
             "(tolerance 1e-9).")
    _passed(title, f"on 30 pairs with ties: {yours:.4f}, as scipy.stats.spearmanr within 1e-9.")


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def check_fit_temperature(fn: Callable) -> None:
    """Exercise of 04: ``fn(logits, labels)`` returns the temperature T minimising the NLL of sigmoid(logits / T).

    Taught in 04_mc_dropout_uncertainty.
    """
    from scipy import optimize

    title = "Temperature scaling"
    todo = ("Write fit_temperature(logits, labels) returning the T > 0 that minimises the mean binary cross-entropy "
            "of sigmoid(logits / T) against labels (e.g. scipy.optimize.minimize_scalar on log T).")
    rng = _rng(11)
    logits = rng.normal(0.0, 4.0, (400, 3))
    labels = (rng.random(logits.shape) < _sigmoid(logits / 2.5)).astype(np.float64)  # over-confident by 2.5
    yours = number(title, attempt(title, todo, fn, logits.copy(), labels.copy()), "the temperature")
    fit = optimize.minimize_scalar(lambda s: _nll(logits, labels, math.exp(s)), bounds=(-3, 3), method="bounded",
                                   options={"xatol": 1e-6})
    reference = math.exp(fit.x)
    if yours > 0 and abs(yours - reference) <= 0.01 * reference:
        _passed(title, f"on 1,200 over-confident logits: T = {yours:.3f}, the NLL's minimum {reference:.3f} within 1%.")
        return
    head = (f"your T = {yours:.3f} gives a mean NLL of {_nll(logits, labels, yours) if yours > 0 else float('nan'):.4f}; "
            f"the minimum is {_nll(logits, labels, reference):.4f} at T = {reference:.3f} (tolerance 1%).")
    if yours > 0 and abs(1 / yours - reference) <= 0.01 * reference:
        head += " That is 1/T: divide the logits by T, do not multiply them."
    elif yours == 1:
        head += " T = 1 leaves the model as it is: fit T on the labels."
    raise Wrong(f"{title}: {head}")


# ---- 05_saliency ----------------------------------------------------------------------------------


def check_grad_cam_map(fn: Callable) -> None:
    """Exercise of 05: ``fn(features, gradients)`` (h, w, k) is the raw Grad-CAM map ReLU(sum_k mean(dS/dA_k) A_k).

    Taught in 05_saliency.
    """
    title = "Resolution (Grad-CAM at block 4 by hand)"
    todo = ("Write grad_cam_map(features, gradients) for one image's (h, w, k) feature maps and the score's gradients "
            "with respect to them: weight each channel by its mean gradient, sum over channels, keep the positive part.")
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
    }, 1e-6, f"your map differs from ReLU(sum_k mean(gradient_k) * feature_k) by up to {np.abs(yours - reference).max():.3g} "
             "on a 4 x 5 x 6 example (tolerance 1e-6).")
    _passed(title, f"on a 4 x 5 map of 6 channels: your map equals ReLU(sum_k mean(dS/dA_k) A_k) within 1e-6.")


def check_integrated_gradients(fn: Callable) -> None:
    """Exercise of 05: ``fn(gradient, x, baseline, steps)`` integrates the gradient along the straight path.

    Taught in 05_saliency.
    """
    title = "Baselines (integrated gradients by hand)"
    todo = ("Write integrated_gradients(gradient, x, baseline, steps): the points baseline + a (x - baseline) for steps "
            "values of a in [0, 1] (one batch for gradient()), the mean gradient along them (trapezoid or Riemann), "
            "times (x - baseline).")
    rng = _rng(13)
    x, baseline = rng.uniform(0.2, 1.0, (3, 4)), rng.uniform(0.0, 0.5, (3, 4))
    c, w = rng.uniform(0.5, 2.0, (3, 4)), rng.normal(0.0, 1.0, (3, 4))
    f = lambda v: float((c * v ** 2 + w * v).sum())  # noqa: E731

    def gradient(points):
        points = np.asarray(points, np.float64)
        if points.shape[1:] != x.shape:
            raise ValueError(f"gradient() takes a batch of points of shape (n, {x.shape[0]}, {x.shape[1]}), got {points.shape}")
        return 2 * c * points + w

    steps = 64
    yours = numbers(title, attempt(title, todo, fn, gradient, x.copy(), baseline.copy(), steps), x.shape, "the attributions")
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
    }, tolerance, f"your attributions sum to {yours.sum():.4f} where f(x) - f(baseline) = {gap:.4f}, and differ from the "
                  f"exact integral by up to {np.abs(yours - exact).max():.3g} (f(v) = sum(c v^2 + w v), {steps} steps, "
                  "tolerance 3% of the largest).")


# ---- 06_boxes_iobb --------------------------------------------------------------------------------


def check_box_of_mask(fn: Callable) -> None:
    """Exercise of 06: ``fn(mask)`` returns (x, y, w, h) of the True pixels, as cv2.connectedComponentsWithStats.

    Taught in 06_boxes_iobb.
    """
    from helpers import boxes

    title = "Box of a mask"
    todo = "Write box_of_mask(mask) returning (x, y, w, h) of the True pixels: x the first column, w the number of columns."
    mask = np.zeros((9, 14), bool)
    mask[2:6, 3:11] = True
    mask[5, 3:5] = False
    mask[6, 6] = True  # one pixel lower: the box grows by one row
    yours = numbers(title, attempt(title, todo, fn, mask.copy()), (4,), "the box")
    reference = np.array(boxes.mask_to_boxes(mask, mask.astype(np.float32)).iloc[0][["x", "y", "w", "h"]], np.float64)
    x, y, w, h = reference
    _diagnose(title, yours, reference, {
        "That is (y, x, h, w): x is the column (axis 1), y the row (axis 0).": np.array([y, x, h, w]),
        "The width and height are one short: a box from column 3 to 10 covers 8 columns (last - first + 1).":
            np.array([x, y, w - 1, h - 1]),
        "That is (x0, y0, x1, y1): the series' boxes are (x, y, width, height).": np.array([x, y, x + w - 1, y + h - 1]),
    }, 1e-9, f"your box {yours.tolist()} differs from cv2.connectedComponentsWithStats' {reference.tolist()} on a 9 x 14 mask.")
    single = np.zeros((5, 5), bool)
    single[1, 3] = True
    one = numbers(title, attempt(title, todo, fn, single), (4,), "the box of one pixel")
    if not np.allclose(one, [3, 1, 1, 1]):
        raise Wrong(f"{title}: a single True pixel at row 1, column 3 should give (3, 1, 1, 1), got {one.tolist()}.")
    _passed(title, f"{yours.astype(int).tolist()} on a 9 x 14 mask and (3, 1, 1, 1) for one pixel, as cv2's component stats.")


def _between(heat: np.ndarray, level: float) -> float:
    above = heat > level
    if above.all() or not above.any():
        return 0.0
    share = above.mean()
    return float(share * (1 - share) * (heat[above].mean() - heat[~above].mean()) ** 2)


def check_otsu_level(fn: Callable) -> None:
    """Exercise of 06: ``fn(heat)`` returns Otsu's level of a 0..255 heat image (pixels > level kept), as OpenCV.

    Taught in 06_boxes_iobb.
    """
    import cv2

    title = "Otsu by hand"
    todo = ("Write otsu_by_hand(heat) for a 0..255 uint8 image: the level t (pixels > t are kept) that maximises the "
            "between-class variance w0 w1 (mu1 - mu0)^2.")
    rng = _rng(14)
    heat = np.concatenate([rng.normal(60, 15, 300), rng.normal(170, 25, 120)]).clip(0, 255).astype(np.uint8).reshape(20, 21)
    yours = number(title, attempt(title, todo, fn, heat.copy()), "the level")
    reference, _ = cv2.threshold(heat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.array_equal(heat > yours, heat > reference):
        _passed(title, f"level {yours:g} keeps the same {int((heat > yours).sum())} of {heat.size} pixels as OpenCV's "
                f"Otsu ({reference:g}).")
        return
    head = (f"your level {yours:g} keeps {int((heat > yours).sum())} pixels with between-class variance "
            f"{_between(heat, yours):.1f}; OpenCV's Otsu level {reference:g} keeps {int((heat > reference).sum())} "
            f"with {_between(heat, reference):.1f}, the maximum.")
    if np.isclose(yours, heat.mean(), atol=0.5):
        head += " That is the mean of the heat: Otsu searches every level for the largest between-class variance."
    elif np.isclose(yours, np.median(heat), atol=0.5):
        head += " That is the median of the heat: Otsu searches every level for the largest between-class variance."
    raise Wrong(f"{title}: {head}")


# ---- 07_report ------------------------------------------------------------------------------------


def check_refer_any(fn: Callable) -> None:
    """Exercise of 07: ``fn(findings, limit)`` is True when any finding's mutual information is above the limit.

    Taught in 07_report.
    """
    title = "Your own rule"
    todo = ("Write refer_any(findings, limit) returning True when any row of findings['mutual_information'] is above "
            "limit (strictly), else False.")
    findings = pd.DataFrame({"probability": [0.2, 0.7, 0.1], "mutual_information": [0.010, 0.050, 0.020]},
                            index=["Atelectasis", "Effusion", "Nodule"])
    cases = [(0.060, False, "above every value"), (0.050, False, "equal to the largest value: 'above' is strict"),
             (0.040, True, "below the largest value only"), (0.030, True, "above the mean (0.027) but below the largest")]
    for limit, expected, why in cases:
        yours = attempt(title, todo, fn, findings.copy(), limit)
        if not isinstance(yours, (bool, np.bool_)):
            raise Wrong(f"{title}: return True or False, got {type(yours).__name__} ({yours!r:.60}).")
        if bool(yours) != expected:
            by_mean = bool(yours) == (findings.mutual_information.mean() > limit)
            hint = " You compared the mean: the rule refers when ANY finding exceeds the limit." if by_mean else ""
            raise Wrong(f"{title}: with mutual information {findings.mutual_information.tolist()} and limit {limit} "
                        f"({why}) the answer is {expected}, yours is {bool(yours)}.{hint}")
    _passed(title, f"{len(cases)} limits on one film's findings: above every value, at the largest (strict), below it, above the mean.")


def check_to_original(fn: Callable) -> None:
    """Exercise of 07: ``fn(box, displayed, original)`` moves (x, y, w, h) between images of shape (height, width), as boxes.scale_box.

    Taught in 07_report.
    """
    from helpers import boxes

    title = "Back to the original pixels"
    todo = ("Write to_original(box, displayed, original): box (x, y, w, h) in an image of shape displayed = (height, width), "
            "returned in the pixels of one of shape original = (height, width).")
    box, displayed, original = (40.0, 30.0, 60.0, 50.0), (256, 320), (1955, 1841)
    yours = numbers(title, attempt(title, todo, fn, box, displayed, original), (4,), "the box")
    reference = np.array(boxes.scale_box(box, displayed[::-1], original[::-1]))
    swapped = np.array(boxes.scale_box(box, displayed, original))
    _diagnose(title, yours, reference, {
        "You read the shapes as (width, height): image.shape is (height, width), and x and w scale with the widths.": swapped,
        "Only x and y were scaled: w and h scale too.": np.r_[reference[:2], box[2:]],
        "You scaled the other way (original -> displayed).": np.array(boxes.scale_box(box, original[::-1], displayed[::-1])),
    }, 1e-6, f"your box {np.round(yours, 2).tolist()} differs from boxes.scale_box's {np.round(reference, 2).tolist()} "
             f"for {box} from {displayed} to {original} (height, width).")
    _passed(title, f"{box} in a {displayed[0]} x {displayed[1]} image -> {tuple(np.round(yours, 1).tolist())} in {original[0]} x {original[1]}, "
            "as boxes.scale_box.")


# ---- 08_cells_counting ----------------------------------------------------------------------------


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
    """Exercise of 08: ``fn(true_labels, pred_labels, thresholds)`` is the Bowl's mean of TP / (TP + FP + FN) over IoU thresholds.

    Taught in 08_cells_counting.
    """
    from helpers import instances

    title = "AP by hand"
    todo = ("Write ap_by_hand(true_labels, pred_labels, thresholds): the IoU of every (true, predicted) pair (label 0 is "
            "background), a hit when IoU > t, TP / (TP + FP + FN) per threshold, then their mean.")
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
    _passed(title, f"on 5 true and 6 predicted nuclei with IoUs on the thresholds, as instances.average_precision: {'; '.join(checked)}.")


def check_conformal_k(fn: Callable) -> None:
    """Exercise of 08: ``fn(true_counts, centre, spread, level)`` is the split-conformal factor k, as instances.conformal_scale.

    Taught in 08_cells_counting.
    """
    from helpers import instances

    title = "Per-image intervals (conformal k by hand)"
    todo = ("Write conformal_k(true_counts, centre, spread, level): the scores |true - centre| / spread sorted, and the "
            "one at rank ceil((n + 1) level) (1-based).")
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
        "Divide each error by its image's spread before sorting.": np.sort(np.abs(true - centre))[math.ceil((n + 1) * 0.9) - 1],
        "The scores need the absolute error |true - centre|.": np.sort((true - centre) / spread)[math.ceil((n + 1) * 0.9) - 1],
    }, 1e-9, f"your k is {yours:.4f} where instances.conformal_scale gives {reference:.4f} on {n} calibration images at level 0.9.")
    _passed(title, f"on {n} calibration images at level 0.9: k = {yours:.4f}, as instances.conformal_scale.")


# ---- 09_your_own_films ----------------------------------------------------------------------------


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
                 f"({yours[0]:.4f}, {yours[1]:.4f}), external.predictive_values gives ({reference[0]:.4f}, {reference[1]:.4f}).")
    _passed(title, f"on {len(cases)} settings, from a rare finding (5%) to an even one: the same (PPV, NPV) as external.predictive_values.")


def check_calibration_line(fn: Callable) -> None:
    """Exercise of 09: ``fn(y_true, y_prob)`` is (intercept, slope) of the logistic recalibration, as external.calibration_line.

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
    _passed(title, f"on {len(y)} films: intercept {yours[0]:.3f} and slope {yours[1]:.3f}, near the -0.4 and 0.7 that made them.")
