"""The checks of the exercises of notebook 07_report (see ``helpers.exercises``)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from helpers.exercises.core import Wrong, _diagnose, _passed, attempt, numbers


def check_refer_any(fn: Callable) -> None:
    """Exercise of 07: ``fn(findings, limit)`` is True when any finding's mutual information is above the limit.

    Taught in 07_report.
    """
    title = "Your own rule"
    todo = ("Write refer_any(findings, limit) returning True when any row of findings['mutual_information'] is above "
            "limit (strictly), else False.")
    findings = pd.DataFrame({"probability": [0.2, 0.7, 0.1], "mutual_information": [0.010, 0.050, 0.020]},
                            index=["Atelectasis", "Effusion", "Nodule"])
    cases = [(0.060, False, "above every value"), (0.050, False, "equal to the largest value: 'above' is strict"),
             (0.040, True, "below the largest value only"),
             (0.030, True, "above the mean (0.027) but below the largest")]
    for limit, expected, why in cases:
        yours = attempt(title, todo, fn, findings.copy(), limit)
        if not isinstance(yours, (bool, np.bool_)):
            raise Wrong(f"{title}: return True or False, got {type(yours).__name__} ({yours!r:.60}).")
        if bool(yours) != expected:
            by_mean = bool(yours) == (findings.mutual_information.mean() > limit)
            hint = " You compared the mean: the rule refers when ANY finding exceeds the limit." if by_mean else ""
            raise Wrong(f"{title}: with mutual information {findings.mutual_information.tolist()} and limit {limit} "
                        f"({why}) the answer is {expected}, yours is {bool(yours)}.{hint}")
    _passed(title, f"{len(cases)} limits on one film's findings: above every value, at the largest (strict), below it, "
                   "above the mean.")


def check_to_original(fn: Callable) -> None:
    """Exercise of 07: ``fn(box, displayed, original)`` moves (x, y, w, h) between images of shape (height, width), as
    boxes.scale_box.

    Taught in 07_report.
    """
    from helpers import boxes

    title = "Back to the original pixels"
    todo = ("Write to_original(box, displayed, original): box (x, y, w, h) in an image of shape displayed = (height, "
            "width), returned in the pixels of one of shape original = (height, width).")
    box, displayed, original = (40.0, 30.0, 60.0, 50.0), (256, 320), (1955, 1841)
    yours = numbers(title, attempt(title, todo, fn, box, displayed, original), (4,), "the box")
    reference = np.array(boxes.scale_box(box, displayed[::-1], original[::-1]))
    swapped = np.array(boxes.scale_box(box, displayed, original))
    _diagnose(title, yours, reference, {
        "You read the shapes as (width, height): image.shape is (height, width), and x and w scale with the widths.":
            swapped,
        "Only x and y were scaled: w and h scale too.": np.r_[reference[:2], box[2:]],
        "You scaled the other way (original -> displayed).":
            np.array(boxes.scale_box(box, original[::-1], displayed[::-1])),
    }, 1e-6, f"your box {np.round(yours, 2).tolist()} differs from boxes.scale_box's {np.round(reference, 2).tolist()} "
             f"for {box} from {displayed} to {original} (height, width).")
    _passed(title, f"{box} in a {displayed[0]} x {displayed[1]} image -> {tuple(np.round(yours, 1).tolist())} in "
            f"{original[0]} x {original[1]}, as boxes.scale_box.")
