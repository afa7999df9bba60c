"""The checks of the exercises of notebook 02b_transfer_and_imbalance (see ``helpers.exercises``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.exercises.core import _diagnose, _passed, _rng, attempt, number, numbers


def _channels(stem: int, layers, growth: int, compression: float) -> list[float]:
    """Channels out of each dense block, each transition scaling what enters the next block by ``compression``."""
    out, entering = [], float(stem)
    for index, count in enumerate(layers):
        leaving = entering + count * growth
        out.append(leaving)
        if index < len(layers) - 1:
            entering = np.floor(leaving * compression)
    return out


def check_densenet_channels(fn: Callable) -> None:
    """Exercise of 02b: ``fn(stem, layers, growth, compression)`` lists the channels out of each dense block.

    Taught in 02b_transfer_and_imbalance.
    """
    title = "DenseNet's channels by hand"
    todo = ("Write densenet_channels(stem, layers, growth, compression) returning the channels leaving each dense "
            "block: a block adds growth channels per layer to what enters it, a transition multiplies the channels "
            "by compression before the next block.")
    cases = [(64, (6, 12, 24, 16), 32, 0.5), (24, (2, 3, 4), 12, 0.5), (16, (3, 3), 8, 1.0)]
    for stem, layers, growth, compression in cases:
        what = f"the channels for stem={stem}, layers={layers}, growth={growth}, compression={compression}"
        yours = numbers(title, attempt(title, todo, fn, stem, tuple(layers), growth, compression), (len(layers),),
                        what)
        reference = _channels(stem, layers, growth, compression)
        no_compression = _channels(stem, layers, growth, 1.0)
        after = [np.floor(c * compression) for c in reference[:-1]] + [reference[-1]]
        layers_only = [count * growth for count in layers]
        _diagnose(title, yours, reference, {
            "The transitions are missing: each one multiplies the channels by compression before the next block.":
                no_compression,
            "Those are the channels after each transition: list what leaves each dense block, before it.": after,
            "Only the new channels are counted: a dense block keeps its input and adds growth channels per layer.":
                layers_only,
        }, 1e-9, f"{what} should be {[int(c) for c in reference]}, got {[round(float(c), 3) for c in yours]}.")
    _passed(title, f"DenseNet121 (stem 64, blocks of 6, 12, 24 and 16 layers, k = 32, compression 0.5) gives "
                   f"{[int(c) for c in _channels(*cases[0])]}, and two smaller networks match the hand count.")


def check_oversampling_weight(fn: Callable) -> None:
    """Exercise of 02b: ``fn(y, target)`` is the share of draws from one finding's positives that raises it to target.

    Taught in 02b_transfer_and_imbalance.
    """
    from helpers import losses

    title = "Oversampling weight by hand"
    todo = ("Write oversampling_weight(y, target): the probability w of drawing from the finding's positives (and "
            "1 - w from the whole set) so that the finding appears with frequency target in the stream.")
    rng = _rng(5)
    for prevalence, target in ((0.05, 0.15), (0.02, 0.5), (0.2, 0.3)):
        y = (rng.random(400) < prevalence).astype(np.float64)
        p = float(y.mean())
        yours = number(title, attempt(title, todo, fn, y.copy(), target), "the weight")
        reference = float(losses.oversampling_weights(y[:, None], {0: target})[1])
        _diagnose(title, yours, reference, {
            "That is the target itself: the whole set also holds positives, so less than that is needed.": target,
            "That is target - p: divide by 1 - p, the share of the whole set that is not already positive.":
                target - p,
            "That is the share of the whole set: return w, the share of draws from the positives.": 1 - reference,
        }, 1e-9, f"for a finding with prevalence {p:.4f} and target {target}, w should be {reference:.4f} "
                 f"(losses.oversampling_weights), got {yours:.4f}.")
    _passed(title, "on three findings, your weight equals losses.oversampling_weights' within 1e-9.")
