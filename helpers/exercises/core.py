"""What every exercise check shares: NotYet and Wrong, calling the reader's function, reading its numbers."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


class NotYet(AssertionError):
    """The exercise's answer cell still holds the stub (it raised NotImplementedError).

    Taught in 03_unet_vessels.
    """


class Wrong(AssertionError):
    """The exercise's answer runs but gives a wrong result; the message says what is wrong.

    Taught in 03_unet_vessels.
    """


def attempt(title: str, todo: str, fn: Callable, *args: Any) -> Any:
    """Call the reader's ``fn(*args)``: NotYet if it is the stub, Wrong if it is not a function or raises.

    Taught in 03_unet_vessels.
    """
    if not callable(fn):
        raise Wrong(f"{title}: expected a function, got {type(fn).__name__} ({fn!r:.60}). {todo}")
    try:
        return fn(*args)
    except NotImplementedError:
        raise NotYet(f"{title}: not done yet. {todo}") from None
    except Exception as err:  # the reader's code failed: say where, keep the traceback chained
        raise Wrong(f"{title}: your {getattr(fn, '__name__', 'function')} raised {type(err).__name__}: {err}") from err


def number(title: str, value: Any, what: str) -> float:
    """The reader's result as one finite float, or Wrong saying what came back instead.

    Taught in 03_unet_vessels.
    """
    array = np.asarray(value) if not isinstance(value, (str, bytes)) else None
    if array is None or array.dtype.kind not in "biuf" or array.size != 1:
        shape = "" if array is None else f" of shape {array.shape}"
        raise Wrong(f"{title}: {what} should be one number, got {type(value).__name__}{shape}.")
    result = float(array.reshape(()))
    if not math.isfinite(result):
        raise Wrong(f"{title}: {what} is {result}: a log(0) or a division by zero somewhere (clip p to "
                    "[1e-7, 1 - 1e-7], as the series' losses do).")
    return result


def numbers(title: str, value: Any, shape: tuple, what: str) -> np.ndarray:
    """The reader's result as a finite float array of ``shape``, or Wrong saying what came back instead.

    Taught in 03_unet_vessels.
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Wrong(f"{title}: {what} should be numbers of shape {shape}, got {type(value).__name__}.") from None
    if array.shape != tuple(shape):
        raise Wrong(f"{title}: {what} should have shape {tuple(shape)}, got {array.shape}.")
    if not np.isfinite(array).all():
        raise Wrong(f"{title}: {what} has {int((~np.isfinite(array)).sum())} NaN or infinite value(s): a log(0) "
                    "or a division by zero (clip p to [1e-7, 1 - 1e-7]; skip empty sets).")
    return array


def _diagnose(title: str, yours: Any, expected: Any, mistakes: dict[str, Any], atol: float, head: str) -> None:
    """Raise Wrong with ``head`` and, when ``yours`` matches one of ``mistakes`` (hint -> its value), that hint."""
    if np.allclose(yours, expected, atol=atol, rtol=0):
        return
    for hint, value in mistakes.items():
        if np.shape(value) == np.shape(yours) and np.allclose(yours, value, atol=atol, rtol=0):
            raise Wrong(f"{title}: {head} {hint}")
    raise Wrong(f"{title}: {head}")


def _passed(title: str, what: str) -> None:
    print(f"{title}: passed. {what[0].upper()}{what[1:]}")


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
