"""The errors the series raises for bad input, and the shared checks that raise them at each public entry.

Every message names what was checked (the file, row, array or argument), what was found, and what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class DataError(ValueError):
    """A data file or row that the series cannot use as it is.

    Taught in 01_preprocessing_and_splits.
    """


class PatientLeakageError(DataError):
    """The same patient appears in more than one split.

    Taught in 01_preprocessing_and_splits.
    """


_SHOWN = 6  # distinct values listed in a message


def _values(array: np.ndarray) -> str:
    found = np.unique(array[np.isfinite(array)]) if array.dtype.kind == "f" else np.unique(array)
    shown = ", ".join(f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in found[:_SHOWN])
    return shown + (f", ... ({found.size} distinct)" if found.size > _SHOWN else "")


def _position(mask: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    return str(index[0]) if len(index) == 1 else str(index)


def check_finite(array: Any, what: str) -> np.ndarray:
    """Return ``array`` as a float64 array, or raise DataError naming the first NaN or infinite position.

    Taught in 01_preprocessing_and_splits.
    """
    try:
        values = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{what}: expected numbers, got {type(array).__name__} ({err}).") from None
    bad = ~np.isfinite(values)
    if bad.any():
        kind = "NaN" if np.isnan(values[bad]).any() else "infinite"
        raise DataError(
            f"{what}: {int(bad.sum())} {kind} value(s), the first at index {_position(bad)}. "
            "Find where they come from (a corrupt file, a division by zero) and fix or drop those items."
        )
    return values


def check_labels(labels: Any, what: str = "labels") -> np.ndarray:
    """Return 0/1 labels as float32, or raise DataError saying which values were found (e.g. 0 and 255).

    Taught in 01_preprocessing_and_splits.
    """
    values = check_finite(labels, what)
    if not np.isin(values, (0.0, 1.0)).all():
        hint = " Divide by 255?" if values.max() == 255 and np.isin(values, (0.0, 255.0)).all() else (
            " Labels must be 0 (absent) or 1 (present)."
        )
        raise DataError(f"{what}: values {_values(values)} found where only 0 and 1 are allowed.{hint}")
    return values.astype(np.float32)


def check_probabilities(scores: Any, what: str = "scores") -> np.ndarray:
    """Return scores as float64 if they are probabilities in [0, 1], else raise DataError (logits? 0..255 maps?).

    Taught in 02_densenet_transfer.
    """
    values = check_finite(scores, what)
    if values.size and (values.min() < 0 or values.max() > 1):
        low, high = float(values.min()), float(values.max())
        if low < 0:
            hint = "logits? apply a sigmoid (keras.ops.sigmoid) or use the model's probability output"
        elif high <= 255 and np.allclose(values, np.round(values)):
            hint = "an 8-bit map? divide by 255"
        else:
            hint = "percentages? divide by 100"
        raise DataError(f"{what}: values from {low:g} to {high:g}, but probabilities must lie in [0, 1] ({hint}).")
    return values
