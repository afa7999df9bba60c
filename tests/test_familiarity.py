"""helpers.familiarity: the Mahalanobis distance against scikit-learn, the cut-off on validation, the saved file."""

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from helpers import familiarity
from helpers.errors import DataError


def _features(n, d=64, shift=0.0, seed=0):
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).normal(size=(d, d)) / np.sqrt(d)  # one correlated distribution for all draws
    return rng.normal(size=(n, d)) @ mixing + shift


def test_distance_matches_scikit_learn():
    # fewer films than features: shrinkage keeps it invertible
    train, other = _features(40, seed=1), _features(10, seed=2)
    fitted = familiarity.Familiarity.fit(train)
    reference = LedoitWolf().fit(train)
    np.testing.assert_allclose(fitted.distance(other) ** 2, reference.mahalanobis(other), rtol=1e-8)


def test_cutoff_is_set_on_validation_and_flags_shifted_features():
    fitted = familiarity.Familiarity.fit(_features(300, seed=1))
    cutoff = fitted.set_cutoff(_features(200, seed=2), quantile=0.95)
    familiar, shifted = _features(200, seed=3), _features(200, shift=0.6, seed=4)
    assert 0.01 < fitted.is_unfamiliar(familiar).mean() < 0.12  # about 5% of films like the validation ones
    scores = np.concatenate([fitted.distance(familiar), fitted.distance(shifted)])
    assert roc_auc_score(np.r_[np.zeros(200), np.ones(200)], scores) > 0.95
    assert cutoff == fitted.cutoff and "95% quantile of its validation films (200 films)" in fitted.rule()


def test_saved_and_loaded(tmp_path):
    fitted = familiarity.Familiarity.fit(_features(50, seed=1))
    fitted.set_cutoff(_features(30, seed=2))
    path = fitted.save(tmp_path / "m.familiar.npz")
    loaded = familiarity.Familiarity.load(path)
    probe = _features(5, seed=3)
    np.testing.assert_allclose(loaded.distance(probe), fitted.distance(probe), rtol=1e-4)
    assert loaded.cutoff == fitted.cutoff and loaded.meta["chosen_on"] == "validation"


def test_bad_inputs_say_what_is_wrong(tmp_path):
    fitted = familiarity.Familiarity.fit(_features(20, seed=1))
    with pytest.raises(ValueError, match="no cut-off yet"):
        fitted.is_unfamiliar(_features(2))
    with pytest.raises(ValueError, match="have 10 columns, the training films 64"):
        fitted.distance(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="split 'test"):
        fitted.set_cutoff(_features(5), split="test-ish")
    with pytest.raises(ValueError, match="set the cut-off"):
        fitted.save(tmp_path / "x.npz")
    (tmp_path / "bad.familiar.npz").write_bytes(b"not a file")
    with pytest.raises(DataError, match="bad.familiar.npz: not a familiarity file"):
        familiarity.Familiarity.load(tmp_path / "bad.familiar.npz")
