"""The bad-input matrix: every input that must be refused, with the exception and the words its message needs.

The rule of the series: bad input raises (or warns) at our boundary with a message that names the file, row
or argument, says what was found and what to do; never a silent wrong answer, never a library's internals.
Each case is (id, a function of a temporary folder that triggers it, the exception or warning type, the words
the message must contain, case-insensitive). Grouped by module.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from helpers import errors
from helpers.errors import DataError


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Path], object]
    raises: type  # an Exception subclass, or a Warning subclass for cases that warn
    words: tuple[str, ...]


CASES: list[Case] = []


def case(id: str, raises: type, *words: str):
    """Register the decorated function of ``tmp_path`` as one row of the matrix."""

    def register(fn):
        CASES.append(Case(id, fn, raises, tuple(words)))
        return fn

    return register


# ---- errors: the shared checks ------------------------------------------------------------------

case("errors/labels_0_255", DataError, "255", "divide by 255")(lambda tmp: errors.check_labels(np.array([[0, 255]]), "y"))
case("errors/labels_nan", DataError, "nan", "index")(lambda tmp: errors.check_labels(np.array([0.0, np.nan]), "y"))
case("errors/labels_half", DataError, "0.5", "only 0 and 1")(lambda tmp: errors.check_labels([0, 0.5, 1], "y"))
case("errors/probs_logits", DataError, "sigmoid", "[0, 1]")(lambda tmp: errors.check_probabilities([-2.0, 3.0], "s"))
case("errors/probs_uint8", DataError, "divide by 255")(lambda tmp: errors.check_probabilities([0, 128, 255], "s"))
case("errors/probs_percent", DataError, "divide by 100")(lambda tmp: errors.check_probabilities([12.5, 80.25], "s"))
case("errors/finite_inf", DataError, "infinite", "index 1")(lambda tmp: errors.check_finite([1.0, np.inf], "x"))
case("errors/finite_text", DataError, "expected numbers")(lambda tmp: errors.check_finite(["a", "b"], "x"))

# ---- datasets -----------------------------------------------------------------------------------

# ---- preprocessing ------------------------------------------------------------------------------

# ---- models and config --------------------------------------------------------------------------

# ---- losses, metrics, uncertainty ---------------------------------------------------------------

# ---- explain and boxes --------------------------------------------------------------------------


# ---- the runner ---------------------------------------------------------------------------------


def test_matrix_is_large_and_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    assert len(CASES) >= 80, f"the matrix holds {len(CASES)} cases; the rule of the series asks for at least 80"


@pytest.mark.parametrize("bad", CASES, ids=lambda c: c.id)
def test_bad_input(bad: Case, tmp_path):
    if issubclass(bad.raises, Warning):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bad.call(tmp_path)
        messages = [str(w.message) for w in caught if issubclass(w.category, bad.raises)]
        assert messages, f"{bad.id}: expected a {bad.raises.__name__}, none was issued"
        message = " ".join(messages)
    else:
        with pytest.raises(bad.raises) as info:
            bad.call(tmp_path)
        message = str(info.value)
    for word in bad.words:
        assert re.search(re.escape(word), message, flags=re.I), f"{bad.id}: {word!r} missing from the message: {message}"
