"""The files saved beside a model: every name in one place, and the readers and writers of the small ones.

A notebook that saves a model saves what the report and the later notebooks need beside it, each named by
``side_file(model, SUFFIX)`` (``densenet121_nih.keras`` -> ``densenet121_nih.thresholds.json``):

=====================  ===========  ==============================================================  ================
suffix                 written by   what                                                            read and written
=====================  ===========  ==============================================================  ================
``.card.json``         02, 03, 08   the model card: what the model was trained on, how it scored    ``model_card``
``.thresholds.json``   02           per-finding thresholds chosen on validation                     here
``.settings.json``     03, 06       the fundus preprocessing (grey method, CLAHE), patch, stride,   here
                                    threshold and normalisation the U-Net was trained with; for
                                    06's localiser, its training settings (its cache key)          ``localiser``
``.referral.json``     04           the referral cut-off, the split that set it and T               here
``.mc_head.keras``     04           the classifier's head fine-tuned with dropout                   ``models``
``.familiar.npz``      04           the training set's pooled features (the unfamiliar-input check) ``familiarity``
``.box_sizes.json``    06           mean box size per finding, fitted on the boxes kept for fitting ``boxes``
=====================  ===========  ==============================================================  ================

Notebooks 04, 05 and 07 and the upload page read them through this module, so each has one set of defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from helpers import errors
from helpers.errors import DataError

CARD_SUFFIX = ".card.json"
THRESHOLDS_SUFFIX = ".thresholds.json"
SETTINGS_SUFFIX = ".settings.json"
REFERRAL_SUFFIX = ".referral.json"
MC_HEAD_SUFFIX = ".mc_head.keras"
FAMILIAR_SUFFIX = ".familiar.npz"
BOX_SIZES_SUFFIX = ".box_sizes.json"
SUFFIXES = (CARD_SUFFIX, THRESHOLDS_SUFFIX, SETTINGS_SUFFIX, REFERRAL_SUFFIX, MC_HEAD_SUFFIX, FAMILIAR_SUFFIX,
            BOX_SIZES_SUFFIX)
# How notebook 03 prepares a fundus photograph, used where its settings file is absent (a stand-in U-Net)
FUNDUS_DEFAULTS = {"grey_method": "green", "clahe_clip": 2.0, "clahe_tile": 8}


class SideFileError(DataError):
    """A file beside a model that cannot be used, naming it, what was found and which notebook rewrites it.

    Taught in 07_report.
    """


def side_file(model_path, suffix: str) -> Path:
    """The file beside a saved model with the given suffix (densenet121_nih.keras -> densenet121_nih.thresholds.json).

    Taught in 07_report.
    """
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + suffix)


def save_thresholds(model_path, thresholds: pd.Series, *, method: str, split: str = "validation") -> Path:
    """Write the per-finding thresholds (label order, method, split) as JSON beside the model; a NaN (no positive on
    validation) is saved as 0.5 and listed.

    Taught in 02_densenet_transfer.
    """
    if not isinstance(thresholds, pd.Series):
        raise TypeError("thresholds must be a pandas Series indexed by finding (metrics.choose_thresholds "
                        "returns one).")
    values = np.asarray(thresholds, dtype=float)
    defaulted = [str(k) for k, v in zip(thresholds.index, values) if np.isnan(v)]
    values = errors.check_probabilities(np.where(np.isnan(values), 0.5, values), "thresholds")
    payload = {"labels": [str(k) for k in thresholds.index], "thresholds": [float(v) for v in values],
               "method": method, "chosen_on": split, "defaulted_to_0.5": defaulted}
    path = side_file(model_path, THRESHOLDS_SUFFIX)
    path.write_text(json.dumps(payload, indent=1))
    return path


def load_thresholds(model_path, labels: Sequence[str]) -> tuple[pd.Series, str]:
    """The thresholds notebook 02 saved beside the model, checked against the labels; (Series, method).

    Taught in 07_report.
    """
    path = side_file(model_path, THRESHOLDS_SUFFIX)
    if not path.is_file():
        raise SideFileError(
            f"{Path(model_path).name}: no per-finding thresholds beside it ({path.name} is missing). Run notebook 02, "
            "which chooses them on validation and saves them there, or pass thresholds=... (a Series by finding)."
        )
    try:
        payload = json.loads(path.read_text())
        saved_labels, values = list(payload["labels"]), list(payload["thresholds"])
    except (ValueError, KeyError, TypeError) as err:
        raise SideFileError(f"{path}: not a thresholds file of notebook 02 ({type(err).__name__}: {err}). "
                          "Run notebook 02 again to rewrite it.") from None
    method = str(payload.get("method", "?"))
    defaulted = payload.get("defaulted_to_0.5") or []
    if defaulted:
        method += f" (0.5 for {', '.join(defaulted)}: no positive case on validation)"
    return thresholds_series(pd.Series(values, index=saved_labels), labels, str(path)), method


def thresholds_series(thresholds, labels: Sequence[str], what: str) -> pd.Series:
    """``thresholds`` (a Series by finding, or one value per finding in ``labels`` order) checked: a Series in label
    order.

    Taught in 07_report.
    """
    if not isinstance(thresholds, pd.Series):
        values = np.asarray(thresholds, dtype=float).reshape(-1)
        if values.size != len(labels):
            raise SideFileError(f"{what}: {values.size} thresholds for {len(labels)} findings; pass one per finding "
                              "(a Series indexed by finding names is safest).")
        thresholds = pd.Series(values, index=list(labels))
    missing = [label for label in labels if label not in thresholds.index]
    if missing:
        raise SideFileError(f"{what}: no threshold for {', '.join(missing)} (it has "
                          f"{', '.join(map(str, thresholds.index))}). The thresholds belong to another label set: "
                          "run notebook 02 again for this model.")
    values = errors.check_probabilities(thresholds[list(labels)].to_numpy(dtype=float), what)
    return pd.Series(values, index=list(labels), name="threshold")


def save_referral(model_path, threshold: float, *, refer_at: float, samples: int, images: int, split: str,
                  rule: str = "mean mutual information over the findings", **extra) -> Path:
    """Write notebook 04's referral threshold (the largest uncertainty kept when refer_at is referred), the split that
    set it, its image count, T and rule, beside the model.

    Taught in 04_mc_dropout_uncertainty.
    """
    value = float(errors.check_finite(threshold, "referral threshold"))
    if split not in ("validation", "test", "train"):
        raise ValueError("split must name the images that set the threshold (validation, test or train), "
                         f"not {split!r}.")
    payload = {"threshold": value, "refer_at": float(refer_at), "samples": int(samples), "images": int(images),
               "chosen_on": split, "rule": rule, **extra}
    path = side_file(model_path, REFERRAL_SUFFIX)
    path.write_text(json.dumps(payload, indent=1))
    return path



def load_referral(model_path) -> dict | None:
    """Notebook 04's referral settings saved beside the model, or None when the file is absent.

    Taught in 07_report.
    """
    path = side_file(model_path, REFERRAL_SUFFIX)
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        payload["threshold"] = float(errors.check_finite(payload["threshold"], f"{path.name} threshold"))
    except (ValueError, KeyError, TypeError) as err:
        raise SideFileError(f"{path}: not a referral file of notebook 04 ({type(err).__name__}: {err}). "
                          "Run notebook 04 again to rewrite it.") from None
    return payload


def save_settings(model_path, **settings) -> Path:
    """Write how a U-Net's inputs were prepared (grey method, CLAHE, patch, stride, threshold, normalisation...) beside
    it.

    Taught in 03_unet_vessels.
    """
    missing = [key for key in FUNDUS_DEFAULTS if key not in settings]
    if missing:
        raise ValueError(f"save_settings needs {', '.join(missing)}: the report prepares photographs with them.")
    path = side_file(model_path, SETTINGS_SUFFIX)
    path.write_text(json.dumps(settings, indent=1))
    return path


def load_settings(model_path) -> dict:
    """The settings notebook 03 saved beside the U-Net, over ``FUNDUS_DEFAULTS``; ``saved`` says whether the file was
    there.

    Taught in 04_mc_dropout_uncertainty.
    """
    path = side_file(model_path, SETTINGS_SUFFIX)
    if not path.is_file():
        return {**FUNDUS_DEFAULTS, "saved": False}
    try:
        payload = json.loads(path.read_text())
        if not isinstance(payload, dict):
            raise TypeError(f"a JSON {type(payload).__name__}, not an object")
    except (ValueError, TypeError) as err:
        raise SideFileError(f"{path}: not a settings file of notebook 03 ({type(err).__name__}: {err}). "
                            "Run notebook 03 again to rewrite it.") from None
    return {**FUNDUS_DEFAULTS, **payload, "saved": True}
