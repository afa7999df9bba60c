"""How far an image lies from the training films: the Mahalanobis distance of its pooled features.

Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"
(NeurIPS 2018), score an input by its Mahalanobis distance to Gaussians fitted to a network's features; Mukhoti
et al., "Deep Deterministic Uncertainty" (CVPR 2023), show that such a feature-density score finds unfamiliar
inputs that dropout's spread misses. A chest film has several findings at once, so one Gaussian is fitted to the
pooled DenseNet features of all training films. Its covariance (1,024 features, a few hundred films) is
estimated with Ledoit-Wolf shrinkage (scikit-learn's ``LedoitWolf``), which stays invertible when the films are
fewer than the features. The cut-off is a quantile of the validation films' distances, never of test films.
Taught in 04_mc_dropout_uncertainty; the report of 07_report says "outside what this model has seen" above it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.covariance import LedoitWolf

from helpers import side_files
from helpers.errors import DataError

FAMILIAR_SUFFIX = side_files.FAMILIAR_SUFFIX  # beside the classifier, named as every side file (helpers.side_files)
QUANTILE = 0.99  # the cut-off: the distance below which this share of the validation films lie
OUTSIDE = "outside what this model has seen"
SPLITS = ("validation", "train", "test")


class Familiarity:
    """A Gaussian of the training films' pooled features and a cut-off on the distance to it.

    Taught in 04_mc_dropout_uncertainty.
    """

    def __init__(self, location, precision, cutoff: float | None = None, meta: dict | None = None):
        self.location = np.asarray(location, np.float64)
        self.precision = np.asarray(precision, np.float64)
        if self.location.ndim != 1 or self.precision.shape != (len(self.location),) * 2:
            raise ValueError(f"a location of {self.location.shape} and a precision of {self.precision.shape} do not "
                             "make one Gaussian: the precision must be d x d for a location of d features.")
        self.cutoff = None if cutoff is None else float(cutoff)
        self.meta = dict(meta or {})

    @classmethod
    def fit(cls, train_features, *, images_are: str = "training films") -> "Familiarity":
        """Fit the Gaussian (mean and Ledoit-Wolf shrunk covariance) to (N, d) features of the training films."""
        features = _check(train_features, "the training features")
        if len(features) < 2:
            raise ValueError(f"{len(features)} {images_are}: a covariance needs at least two.")
        estimate = LedoitWolf().fit(features)
        return cls(estimate.location_, estimate.precision_,
                   meta={"fitted_on": images_are, "images": len(features), "shrinkage": float(estimate.shrinkage_)})

    def distance(self, features) -> np.ndarray:
        """The Mahalanobis distance (not squared) of each row of (N, d) features to the training films."""
        centred = _check(features, "the features", width=len(self.location)) - self.location
        squared = np.einsum("ij,jk,ik->i", centred, self.precision, centred)
        return np.sqrt(np.maximum(squared, 0.0))

    def set_cutoff(self, validation_features, *, quantile: float = QUANTILE, split: str = "validation") -> float:
        """The cut-off: the ``quantile`` of the distances of films that set nothing else (validation by default)."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: say which images set the cut-off, one of {', '.join(SPLITS)}.")
        if not 0.5 <= quantile < 1:
            raise ValueError(f"quantile {quantile!r}: use a value in [0.5, 1), e.g. {QUANTILE} (one in a hundred "
                             "familiar films flagged).")
        distances = self.distance(validation_features)
        self.cutoff = float(np.quantile(distances, quantile, method="higher"))
        self.meta.update(chosen_on=split, quantile=float(quantile), cutoff_images=len(distances))
        return self.cutoff

    def is_unfamiliar(self, features) -> np.ndarray:
        """True where the distance is above the cut-off (set_cutoff or the saved file)."""
        if self.cutoff is None:
            raise ValueError("no cut-off yet: call set_cutoff with the validation films' features first.")
        return self.distance(features) > self.cutoff

    def rule(self) -> str:
        """The rule in one sentence, for the report and the model card."""
        return (f"{OUTSIDE} when the Mahalanobis distance of the pooled features to the {self.meta.get('images', '?')} "
                f"training films is above {self.cutoff:.4g}, the {self.meta.get('quantile', QUANTILE):.0%} quantile of "
                f"its {self.meta.get('chosen_on', 'unrecorded')} films ({self.meta.get('cutoff_images', '?')} films)")

    def save(self, path) -> Path:
        """Write location, precision, cut-off and how they were set to one ``.npz`` file."""
        if self.cutoff is None:
            raise ValueError("set the cut-off (set_cutoff on validation features) before saving.")
        path = Path(path)
        np.savez_compressed(path, location=self.location.astype(np.float32),
                            precision=self.precision.astype(np.float32),
                            cutoff=np.float64(self.cutoff), meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path) -> "Familiarity":
        """Read a file written by ``save``; a damaged or foreign file raises DataError naming it."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as saved:
                return cls(saved["location"], saved["precision"], float(saved["cutoff"]),
                           json.loads(str(saved["meta"])))
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"{path.name}: not a familiarity file written by helpers.familiarity ({err}); run notebook "
                            "04 again to write it, or delete it to report without the "
                            "unfamiliar-input check.") from None


def _check(features, what: str, width: int | None = None) -> np.ndarray:
    array = np.asarray(features, np.float64)
    if array.ndim != 2:
        raise ValueError(f"{what} must be (images, features), not of shape {array.shape}.")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{what} have {array.shape[1]} columns, the training films {width}: they come from "
                         "another model.")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} hold NaN or infinite values.")
    return array
