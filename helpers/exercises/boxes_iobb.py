"""The checks of the exercises of notebook 06_boxes_iobb (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from helpers.exercises.core import Wrong, _diagnose, _passed, _rng, attempt, number, numbers


def check_box_of_mask(fn: Callable) -> None:
    """Exercise of 06: ``fn(mask)`` returns (x, y, w, h) of the True pixels, as cv2.connectedComponentsWithStats.

    Taught in 06_boxes_iobb.
    """
    from helpers import boxes

    title = "Box of a mask"
    todo = ("Write box_of_mask(mask) returning (x, y, w, h) of the True pixels: x the first column, w the number "
            "of columns.")
    mask = np.zeros((9, 14), bool)
    mask[2:6, 3:11] = True
    mask[5, 3:5] = False
    mask[6, 6] = True  # one pixel lower: the box grows by one row
    yours = numbers(title, attempt(title, todo, fn, mask.copy()), (4,), "the box")
    reference = np.array(boxes.mask_to_boxes(mask, mask.astype(np.float32)).iloc[0][["x", "y", "w", "h"]], np.float64)
    x, y, w, h = reference
    _diagnose(title, yours, reference, {
        "That is (y, x, h, w): x is the column (axis 1), y the row (axis 0).": np.array([y, x, h, w]),
        "The width and height are one short: a box from column 3 to 10 covers 8 columns (last - first + 1).":
            np.array([x, y, w - 1, h - 1]),
        "That is (x0, y0, x1, y1): the series' boxes are (x, y, width, height).":
            np.array([x, y, x + w - 1, y + h - 1]),
    }, 1e-9, f"your box {yours.tolist()} differs from cv2.connectedComponentsWithStats' {reference.tolist()} "
             "on a 9 x 14 mask.")
    single = np.zeros((5, 5), bool)
    single[1, 3] = True
    one = numbers(title, attempt(title, todo, fn, single), (4,), "the box of one pixel")
    if not np.allclose(one, [3, 1, 1, 1]):
        raise Wrong(f"{title}: a single True pixel at row 1, column 3 should give (3, 1, 1, 1), got {one.tolist()}.")
    _passed(title,
            f"{yours.astype(int).tolist()} on a 9 x 14 mask and (3, 1, 1, 1) for one pixel, as cv2's component stats.")


def _between(heat: np.ndarray, level: float) -> float:
    above = heat > level
    if above.all() or not above.any():
        return 0.0
    share = above.mean()
    return float(share * (1 - share) * (heat[above].mean() - heat[~above].mean()) ** 2)


def check_otsu_level(fn: Callable) -> None:
    """Exercise of 06: ``fn(heat)`` returns Otsu's level of a 0..255 heat image (pixels > level kept), as OpenCV.

    Taught in 06_boxes_iobb.
    """
    import cv2

    title = "Otsu by hand"
    todo = ("Write otsu_by_hand(heat) for a 0..255 uint8 image: the level t (pixels > t are kept) that maximises the "
            "between-class variance w0 w1 (mu1 - mu0)^2.")
    rng = _rng(14)
    heat = (np.concatenate([rng.normal(60, 15, 300), rng.normal(170, 25, 120)])
            .clip(0, 255).astype(np.uint8).reshape(20, 21))
    yours = number(title, attempt(title, todo, fn, heat.copy()), "the level")
    reference, _ = cv2.threshold(heat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if np.array_equal(heat > yours, heat > reference):
        _passed(title, f"level {yours:g} keeps the same {int((heat > yours).sum())} of {heat.size} pixels as OpenCV's "
                f"Otsu ({reference:g}).")
        return
    head = (f"your level {yours:g} keeps {int((heat > yours).sum())} pixels with between-class variance "
            f"{_between(heat, yours):.1f}; OpenCV's Otsu level {reference:g} keeps {int((heat > reference).sum())} "
            f"with {_between(heat, reference):.1f}, the maximum.")
    if np.isclose(yours, heat.mean(), atol=0.5):
        head += " That is the mean of the heat: Otsu searches every level for the largest between-class variance."
    elif np.isclose(yours, np.median(heat), atol=0.5):
        head += " That is the median of the heat: Otsu searches every level for the largest between-class variance."
    raise Wrong(f"{title}: {head}")
