"""The checks of the exercises of notebook 01_preprocessing_and_splits (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from helpers.exercises.core import Wrong, _diagnose, _passed, _rng, attempt, numbers


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
        raise Wrong(f"{title}: return a dict with the keys 'train', 'val', 'test', each a DataFrame of rows of "
                    f"entries; got {type(parts).__name__} {sorted(parts) if isinstance(parts, dict) else ''}.")
    try:
        splits.assert_no_patient_overlap(**parts)
    except PatientLeakageError as err:
        raise Wrong(f"{title}: {str(err).splitlines()[0]} Draw the patients (entries.patient_id.unique()), not the "
                    "rows, then take every row of each drawn patient.") from None
    used = pd.concat(list(parts.values())).image_index
    missing, repeated = len(set(entries.image_index) - set(used)), int(used.duplicated().sum())
    if missing or repeated:
        raise Wrong(f"{title}: of the {len(entries)} images, {missing} are in no split and {repeated} are in two or "
                    "more: every row of entries belongs to exactly one split.")
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
    todo = ("Write class_weights(labels) returning (w_p, w_n): one weight per column, w_p = negatives/total, "
            "w_n = positives/total.")
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
             f"preprocessing.class_weights gives {np.round(ref_p, 3).tolist()}, {np.round(ref_n, 3).tolist()} "
             "(tolerance 1e-6).")
    _passed(title, f"on 50 images x 3 findings (prevalence {np.round(labels.mean(0, dtype=np.float64), 2).tolist()}) "
            "your weights equal preprocessing.class_weights within 1e-6.")
