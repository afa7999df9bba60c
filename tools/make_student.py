"""Write the student copies of the notebooks: every worked answer between solution markers becomes a stub.

    python tools/make_student.py [--out student] [tutorials/NN_name.py ...]

An answer cell holds the worked answer between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION``
(nbgrader's markers: its ``generate_assignment`` clears the same blocks). Here each block is replaced, at the
marker's indentation, by ``raise NotImplementedError("<the cell's '# Exercise ...' line>")``; the exercise's
check then fails with NotYet and says what to write. Every other cell is kept as it is. The copies go to
``student/NN_name.ipynb`` (no outputs) and ``student/NN_name.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_EXERCISE_LINE = re.compile(r"^#\s*(Exercise\b.*?)\s*$", re.M)


class MarkerError(ValueError):
    """Solution markers that do not pair up (a BEGIN without its END, an END first, a BEGIN inside a block)."""


def solution_blocks(source: str, where: str = "cell") -> list[tuple[int, int]]:
    """(first, last) line numbers (0-based, markers included) of each solution block of a cell's source."""
    blocks, start = [], None
    for number, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise MarkerError(f"{where}, line {number + 1}: {BEGIN} inside the block opened on line {start + 1}; close it first.")
            start = number
        elif marker == END:
            if start is None:
                raise MarkerError(f"{where}, line {number + 1}: {END} without a {BEGIN} before it.")
            blocks.append((start, number))
            start = None
    if start is not None:
        raise MarkerError(f"{where}, line {start + 1}: {BEGIN} without its {END}.")
    return blocks


def stub_message(source: str) -> str:
    """What the stub says: the cell's first '# Exercise ...' comment, or a plain request."""
    found = _EXERCISE_LINE.search(source)
    return found.group(1) if found else "Exercise: write your answer here"


def strip_solutions(source: str, where: str = "cell") -> str:
    """The cell's source with every solution block replaced by a NotImplementedError stub at the marker's indentation."""
    blocks = solution_blocks(source, where)
    if not blocks:
        return source
    lines = source.splitlines()
    message = stub_message(source)
    out, position = [], 0
    for first, last in blocks:
        out.extend(lines[position:first])
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        out.append(f"{indent}raise NotImplementedError({message!r})")
        position = last + 1
    out.extend(lines[position:])
    return "\n".join(out)


def student_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook of ``source`` (a tutorials/NN_name.py) with its solutions stripped and no outputs."""
    notebook = jupytext.read(source)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{source.name}, cell {index}")
            cell.outputs, cell.execution_count = [], None
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="folder for the copies (default: student/)")
    parser.add_argument("sources", nargs="*", type=Path, help="tutorials/NN_name.py files (default: all)")
    args = parser.parse_args(argv)
    sources = args.sources or sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for source in sources:
        try:
            notebook = student_notebook(source)
        except MarkerError as err:
            print(f"make_student: {err}", file=sys.stderr)
            return 1
        blocks = sum(len(solution_blocks(c.source)) for c in jupytext.read(source).cells if c.cell_type == "code")
        total += blocks
        nbformat.validate(notebook)
        nbformat.write(notebook, args.out / f"{source.stem}.ipynb")
        jupytext.write(notebook, args.out / f"{source.stem}.py", fmt="py:percent")
        print(f"{source.stem}: {blocks} answer(s) stubbed")
    print(f"student copies of {len(sources)} notebook(s), {total} answer(s) stubbed, written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
