"""Per-finding decisions with a stated guarantee: conformal risk control of the false-negative rate.

Angelopoulos, Bates, Fisch, Lei and Schuster, "Conformal Risk Control" (ICLR 2024): on ``n`` calibration
images exchangeable with the test images, choose the largest threshold ``lam`` such that
``n / (n + 1) * risk(lam) + 1 / (n + 1) < alpha``; then the expected risk on a new image is at most ``alpha``.
For one finding the risk is the false-negative rate: among the validation films that have the finding, the
share whose probability is at or below ``lam`` (called absent). The same rule on the films without it, with
``1 - p``, bounds the false-positive rate of the "present" calls. Between the two thresholds a finding is
"uncertain": the model cannot say it at the chosen risk, and a reader must look.

MAPIE's ``MultiLabelClassificationController`` (method ``crc``, risk ``recall``) implements the same rule on a
grid of thresholds; ``lower_threshold(..., grid=...)`` matches it there (tests/test_conformal.py).
Taught in 04_mc_dropout_uncertainty.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

STATES = ("absent", "uncertain", "present")


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha {alpha!r}: the risk to control must lie in (0, 1), e.g. 0.1 for at most one in ten.")
    return float(alpha)


def lower_threshold(positive_scores, alpha: float, *, grid: Sequence[float] | None = None) -> float:
    """The largest ``lam`` whose "absent" calls (score <= lam) miss at most ``alpha`` of the positives, in expectation.

    ``positive_scores``: the calibration images' scores among those that have the finding. With ``n`` of them at
    most ``k = ceil(alpha (n + 1)) - 2`` may lie at or below ``lam``; with ``grid`` the answer is the largest grid
    value that allows it (MAPIE's way). Raises ValueError when ``n`` is too small for ``alpha``.

    Taught in 04_mc_dropout_uncertainty.
    """
    alpha = _check_alpha(alpha)
    scores = np.sort(np.asarray(positive_scores, np.float64).ravel())
    if not np.isfinite(scores).all():
        raise ValueError("the scores hold NaN or infinite values.")
    n = len(scores)
    allowed = int(np.ceil(alpha * (n + 1))) - 2  # the most misses with (misses + 1) / (n + 1) < alpha
    if allowed < 0:
        raise ValueError(f"{n} calibration images with the finding: a false-negative rate of {alpha:g} cannot be "
                         f"guaranteed with fewer than {_enough(alpha)} (then every image is called uncertain "
                         "or present).")
    if grid is not None:  # the risk grows with lam: the last grid value before the first that breaks the bound
        grid = np.sort(np.asarray(grid, np.float64))
        broken = np.flatnonzero(np.searchsorted(scores, grid, side="right") > allowed)  # scores <= lam: misses
        return float(grid[max(broken[0] - 1, 0)]) if len(broken) else float(grid[-1])
    # just below the (allowed + 1)-th lowest positive score: exactly `allowed` of them are called absent
    return float(scores[-1]) if allowed >= n else float(np.nextafter(scores[allowed], -np.inf))


def _enough(alpha: float) -> int:
    """The fewest calibration films for which ``lower_threshold`` can guarantee ``alpha``: alpha (n + 1) > 1."""
    return int(np.floor(1 / alpha + 1e-9))


class Decisions(NamedTuple):
    """Per finding: below ``lower`` absent, above ``upper`` present, between uncertain; ``alpha`` and counts.

    Taught in 04_mc_dropout_uncertainty.
    """

    lower: pd.Series
    upper: pd.Series
    alpha: float
    positives: pd.Series
    negatives: pd.Series

    def states(self, probabilities) -> pd.DataFrame:
        """Each image's state per finding ("absent", "uncertain", "present") for (N, findings) probabilities."""
        p = np.asarray(probabilities, np.float64)
        lower, upper = self.lower.to_numpy(), self.upper.to_numpy()
        state = np.where(p > upper, "present", np.where(p <= np.minimum(lower, upper), "absent", "uncertain"))
        return pd.DataFrame(state, columns=self.lower.index)

    @property
    def too_few(self) -> list[str]:
        """Findings with too few validation films on one side to guarantee alpha (never absent, or never present)."""
        return [label for label in self.lower.index if not np.isfinite(self.lower[label])
                or not np.isfinite(self.upper[label])]

    def guarantee(self) -> str:
        """The guarantee in one sentence."""
        return (f"for each finding, on films exchangeable with the validation films, at most {self.alpha:.0%} of the "
                f"films with the finding are called absent and at most {self.alpha:.0%} of those without it are called "
                "present, in expectation; the rest are uncertain")


def calibrate(y_true, probabilities, labels: Sequence[str], alpha: float = 0.1) -> Decisions:
    """Per-finding thresholds from validation labels and probabilities (N, findings).

    A finding with too few validation films with it (or without it) to guarantee ``alpha`` is never called absent
    (or present): it stays uncertain, and ``Decisions.too_few`` names it.

    Taught in 04_mc_dropout_uncertainty.
    """
    y, p = np.asarray(y_true), np.asarray(probabilities, np.float64)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} must both be (images, {len(labels)} findings).")
    lower, upper = {}, {}
    for j, label in enumerate(labels):
        positive, negative = p[y[:, j] == 1, j], p[y[:, j] == 0, j]
        # too few films with (without) the finding to guarantee alpha: never called absent (present), said in too_few
        lower[label] = lower_threshold(positive, alpha) if len(positive) >= _enough(alpha) else -np.inf
        upper[label] = 1 - lower_threshold(1 - negative, alpha) if len(negative) >= _enough(alpha) else np.inf
    counts = pd.DataFrame(y, columns=list(labels))
    return Decisions(pd.Series(lower), pd.Series(upper), _check_alpha(alpha), counts.sum().astype(int),
                     (1 - counts).sum().astype(int))


def judge(decisions: Decisions, y_true, probabilities) -> pd.DataFrame:
    """On images that set nothing: per finding the false-negative and false-positive rates and the uncertain share.

    Taught in 04_mc_dropout_uncertainty.
    """
    states = decisions.states(probabilities).to_numpy()
    y = np.asarray(y_true)
    rows = {}
    for j, label in enumerate(decisions.lower.index):
        positive, negative = y[:, j] == 1, y[:, j] == 0
        rows[label] = {
            "positives": int(positive.sum()),
            "false_negative_rate": float((states[positive, j] == "absent").mean()) if positive.any() else np.nan,
            "false_positive_rate": float((states[negative, j] == "present").mean()) if negative.any() else np.nan,
            "uncertain": float((states[:, j] == "uncertain").mean()),
        }
    table = pd.DataFrame(rows).T
    table["positives"] = table["positives"].astype(int)
    return table


def pooled_coverage(decisions: Decisions, y_true, probabilities) -> float:
    """The share of all (image, finding) positives not called absent: the coverage whose nominal value is 1 - alpha.

    Taught in 04_mc_dropout_uncertainty.
    """
    states = decisions.states(probabilities).to_numpy()
    positive = np.asarray(y_true) == 1
    return float((states[positive] != "absent").mean())
