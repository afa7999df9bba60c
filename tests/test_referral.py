"""helpers.referral: wrong decisions, signals and the ratio to random referral, by hand and on simulated films."""

import numpy as np
import pytest

from helpers import referral


def test_wrong_decisions_and_margin_by_hand():
    y = np.array([[1, 0], [0, 0], [1, 1]])
    p = np.array([[0.6, 0.2], [0.4, 0.35], [0.1, 0.9]])
    t = np.array([0.5, 0.3])
    np.testing.assert_array_equal(referral.wrong_decisions(y, p, t), [0, 1, 1])
    logit = lambda v: np.log(v / (1 - v))
    expected = -np.array([min(abs(logit(0.6) - logit(0.5)), abs(logit(0.2) - logit(0.3))),
                          min(abs(logit(0.4) - logit(0.5)), abs(logit(0.35) - logit(0.3))),
                          min(abs(logit(0.1) - logit(0.5)), abs(logit(0.9) - logit(0.3)))])
    np.testing.assert_allclose(referral.margin(p, t), expected)


def test_expected_errors_by_hand():
    identity = referral.Recalibration([1.0, 1.0], [0.0, 0.0])
    p, t = np.array([[0.6, 0.2]]), np.array([0.5, 0.3])
    np.testing.assert_allclose(referral.expected_errors(p, t, identity), [(1 - 0.6) + 0.2])


def test_ratio_by_hand():
    wrong = np.array([0, 0, 3, 1, 0, 0, 0, 0, 0, 1])  # 5 errors in 10 films
    scores = np.array([0, 1, 9, 2, 3, 4, 5, 6, 7, 8])  # refers films 2 and 9 at 20%
    # random leaves 0.8 * 5 = 4 in expectation; the signal leaves 1
    assert referral.ratio(wrong, scores, 0.2) == pytest.approx(4.0)
    np.testing.assert_array_equal(np.flatnonzero(referral.referred(scores, 0.2)), [2, 9])


def test_a_signal_that_tracks_errors_beats_random_and_noise_does_not():
    rng = np.random.default_rng(0)
    risk = rng.beta(1, 6, 2000)
    wrong = rng.binomial(14, risk)
    informed = referral.ratio_interval(wrong, risk + rng.normal(0, 0.02, 2000), 0.2, samples=200)
    blind = referral.ratio_interval(wrong, rng.random(2000), 0.2, samples=200)
    assert informed[1] > 1.5  # lower end of the interval
    assert blind[1] < 1 < blind[2]


def test_recalibration_fixes_a_shifted_probability():
    rng = np.random.default_rng(1)
    y = (rng.random((4000, 1)) < 0.2).astype(int)
    true_logit = np.where(y == 1, 1.0, -2.5) + rng.normal(0, 1, y.shape)
    shifted = 1 / (1 + np.exp(-(true_logit + 2.0)))  # over-confident for the finding, as a weighted loss makes it
    fitted = referral.Recalibration.fit(y, shifted)
    assert abs(fitted(shifted).mean() - y.mean()) < 0.01 < abs(shifted.mean() - y.mean())


def test_signal_names_are_checked():
    with pytest.raises(ValueError, match="needs the recalibration"):
        referral.signal("expected_errors", np.full((1, 2), 0.5), [0.5, 0.5])
    with pytest.raises(ValueError, match="signal 'entropy'"):
        referral.signal("entropy", np.full((1, 2), 0.5), [0.5, 0.5])
