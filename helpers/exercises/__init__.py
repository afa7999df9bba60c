"""The checks of the notebooks' exercises: each calls the reader's function on small inputs it builds itself.

Each check compares the answer with a reference (Keras, scikit-learn, SciPy, OpenCV, one of our helpers or
a hand computation) within a stated tolerance. It raises ``NotYet`` while the answer is still the stub,
``Wrong`` with what is wrong (and, for the usual mistakes, which one it looks like), and prints what it
verified when the answer is right. Both exceptions are AssertionErrors, so a notebook run stops there.

One module per notebook, named after it: notebook 02 runs ``from helpers.exercises import densenet_transfer as
exercises`` and calls ``exercises.check_bce_by_hand(bce_by_hand)``. ``core`` holds what the checks share.
"""

from __future__ import annotations

import importlib
from typing import Callable

from helpers.exercises.core import NotYet, Wrong  # noqa: F401  the two outcomes a notebook may catch

# notebook number -> module
MODULES = {"01": "preprocessing_and_splits", "02": "densenet_transfer", "02b": "transfer_and_imbalance",
           "03": "unet_vessels",
           "04": "mc_dropout_uncertainty", "05": "saliency", "06": "boxes_iobb",
           "07": "report", "08": "cells_counting", "09": "your_own_films"}


def checks() -> dict[str, Callable]:
    """Every notebook's checks by name (check_patient_split ... check_calibration_line).

    Taught in 03_unet_vessels.
    """
    found = {}
    for module in MODULES.values():
        loaded = importlib.import_module(f"helpers.exercises.{module}")
        found.update({name: getattr(loaded, name) for name in dir(loaded) if name.startswith("check_")})
    return found
