"""The checks of the exercises of notebook 04_mc_dropout_uncertainty (see ``helpers.exercises``)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from helpers.exercises.core import Wrong, _diagnose, _passed, _rng, _sigmoid, attempt, number, numbers


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
        "That is the mutual information (epistemic part): total is the entropy of the mean.":
            parts.epistemic / np.log(2),
    }, 1e-5, f"your values {np.round(yours, 4).tolist()} differ from uncertainty.decompose(samples).total / ln 2 = "
             f"{np.round(reference, 4).tolist()} (tolerance 1e-5; samples averaging 0.5 carry exactly 1 bit).")
    _passed(title, f"on 5 outputs x 6 samples: {np.round(yours, 4).tolist()} bits, as decompose().total / ln 2 "
            "within 1e-5 (a mean of 0.5: 1 bit; all samples 0: 0 bits).")


def check_spearman(fn: Callable) -> None:
    """Exercise of 04: ``fn(a, b)`` is Spearman's rank correlation, ties given their mean rank, as
    scipy.stats.spearmanr.

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
    head = (f"your T = {yours:.3f} gives a mean NLL of "
            f"{_nll(logits, labels, yours) if yours > 0 else float('nan'):.4f}; the minimum is "
            f"{_nll(logits, labels, reference):.4f} at T = {reference:.3f} (tolerance 1%).")
    if yours > 0 and abs(1 / yours - reference) <= 0.01 * reference:
        head += " That is 1/T: divide the logits by T, do not multiply them."
    elif yours == 1:
        head += " T = 1 leaves the model as it is: fit T on the labels."
    raise Wrong(f"{title}: {head}")
