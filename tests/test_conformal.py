"""helpers.conformal: conformal risk control of the false-negative rate, checked against MAPIE and on fresh data."""

import warnings

import numpy as np
import pandas as pd
import pytest

from helpers import conformal

mapie_risk = pytest.importorskip("mapie.risk_control")
GRID = np.arange(0, 1, 0.01)


def _mapie_threshold(positive_scores, alpha):
    """MAPIE's CRC threshold for recall on images that all have the one finding."""
    scores = np.asarray(positive_scores)[:, None]
    controller = mapie_risk.MultiLabelClassificationController(
        predict_function=lambda x: x, risk="recall", method="crc", target_level=1 - alpha, predict_params=GRID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        controller.calibrate(scores, np.ones_like(scores, dtype=int))
    return float(np.ravel(controller.best_predict_param)[0])


@pytest.mark.parametrize("n, alpha, seed", [(40, 0.1, 0), (200, 0.1, 1), (200, 0.05, 2), (75, 0.2, 3)])
def test_lower_threshold_matches_mapie_on_its_grid(n, alpha, seed):
    scores = np.random.default_rng(seed).beta(4, 2, n)
    ours = conformal.lower_threshold(scores, alpha, grid=GRID)
    assert ours == pytest.approx(_mapie_threshold(scores, alpha), abs=1e-12)
    # off the grid: at most one grid step above MAPIE's choice, never below it
    exact = conformal.lower_threshold(scores, alpha)
    assert ours <= exact < ours + 0.01 + 1e-12


def test_lower_threshold_by_hand():
    # 9 positives, alpha 0.3: (misses + 1) / 10 < 0.3 allows one miss: just below the second lowest score
    scores = [0.9, 0.1, 0.8, 0.3, 0.7, 0.6, 0.5, 0.95, 0.4]
    lam = conformal.lower_threshold(scores, 0.3)
    assert 0.1 <= lam < 0.3 and sum(s <= lam for s in scores) == 1


def test_too_few_positives_is_said():
    with pytest.raises(ValueError, match="3 calibration images with the finding.*fewer than 10"):
        conformal.lower_threshold([0.2, 0.5, 0.9], 0.1)


def test_fresh_data_false_negative_rate_is_controlled():
    """Over many draws of calibration and test data, the mean test false-negative rate stays at or below alpha."""
    rng = np.random.default_rng(7)
    alpha, rates, uncertain = 0.1, [], []
    labels = ["a", "b"]
    for _ in range(200):
        def draw(n):
            y = (rng.random((n, 2)) < 0.3).astype(int)
            p = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
            return y, p
        decisions = conformal.calibrate(*draw(300), labels, alpha=alpha)
        y_test, p_test = draw(300)
        table = conformal.judge(decisions, y_test, p_test)
        rates.append(table["false_negative_rate"].to_numpy())
        uncertain.append(table["uncertain"].mean())
    mean_fnr = np.mean(rates, axis=0)
    assert (mean_fnr <= alpha + 0.01).all() and (mean_fnr >= alpha - 0.03).all(), mean_fnr  # tight, not trivially 0
    assert 0.05 < np.mean(uncertain) < 0.95


def test_states_and_guarantee():
    decisions = conformal.Decisions(lower=pd.Series({"a": 0.2}), upper=pd.Series({"a": 0.7}),
                                    alpha=0.1, positives=None, negatives=None)
    states = decisions.states(np.array([[0.1], [0.2], [0.5], [0.7], [0.9]]))["a"].tolist()
    assert states == ["absent", "absent", "uncertain", "uncertain", "present"]
    assert "at most 10% of the films with the finding are called absent" in decisions.guarantee()
