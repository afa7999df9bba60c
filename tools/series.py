"""The series' notebooks as files: the one rule for their names and the number each goes by.

A notebook is ``tutorials/NN_name.py`` (the source) with its pair ``NN_name.ipynb``; a companion that measures what
notebook NN takes on trust is ``NNb_name`` (02b after 02). Every tool that lists the notebooks or prints their
numbers (the site, the kit, the timings, make test's jobs, prepare, the figures) asks here.
"""

from __future__ import annotations

import re
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NAME = re.compile(r"\d\d[a-z]?_[a-z0-9_]+")  # a notebook's stem: 02_densenet_transfer, 02b_transfer_and_imbalance
GLOB = "[0-9][0-9]*_*"  # what NAME's files look like to a glob (NAME then filters)


def number(name: str) -> str:
    """The number a notebook goes by: 02 for 02_densenet_transfer(.ipynb), 02b for 02b_transfer_and_imbalance."""
    return Path(name).name.split("_", 1)[0]


def notebooks(folder: Path | str = TUTORIALS, suffix: str = ".ipynb") -> list[Path]:
    """The notebook files in ``folder`` with ``suffix`` (.ipynb or .py), in the series' order (02 before 02b)."""
    return sorted(p for p in Path(folder).glob(GLOB + suffix) if NAME.fullmatch(p.stem) and p.is_file())
