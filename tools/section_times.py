"""Minutes per "## " section of executed notebooks, from papermill's per-cell durations, as a markdown table.

Usage: python tools/section_times.py [PATH ...] [--label "lab, 2 cores"]
PATH is an executed notebook or a folder of them (default build/, written by `make tutorials`). A cell belongs to
the last "## " heading above it; cells above the first heading count as "(title)". The total is the sum of the
cells; the notebook's own papermill duration (kernel start included) is shown beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TITLE = "(title)"


def headings(cell: dict) -> list[str]:
    """The "## " headings of a markdown cell, in order (the code cells below belong to the last)."""
    if cell.get("cell_type") != "markdown":
        return []
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else source
    return [line[3:].strip() for line in source.splitlines() if line.startswith("## ")]


def section_seconds(notebook: dict) -> tuple[list[tuple[str, float]], float | None, int]:
    """[(section, seconds)] in order, the notebook's papermill duration, and how many code cells had no duration."""
    sections: dict[str, float] = {TITLE: 0.0}
    current, unmeasured = TITLE, 0
    for cell in notebook.get("cells", []):
        for current in headings(cell):
            sections.setdefault(current, 0.0)
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if duration is None:
            unmeasured += cell.get("cell_type") == "code"
            continue
        sections[current] += float(duration)
    rows = [(name, seconds) for name, seconds in sections.items() if name != TITLE or seconds >= 3]  # not the imports' blip
    total = notebook.get("metadata", {}).get("papermill", {}).get("duration")
    return rows, (float(total) if total is not None else None), unmeasured


def notebook_paths(paths) -> list[Path]:
    """Executed notebooks named, or found in the folders named; a clear error for a path that is neither."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.glob("*.ipynb") if p.name[:2].isdigit())
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"section_times: {path} is neither an executed .ipynb nor a folder of them "
                             "(run `make tutorials` first: it writes build/NN_name.ipynb).")
    return found


def table(path: Path, label: str = "") -> str:
    """The markdown table of one executed notebook: minutes per section, from the start, and the total."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    rows, total, unmeasured = section_seconds(notebook)
    if not rows or all(seconds == 0 for _, seconds in rows):
        raise SystemExit(f"section_times: {path} has no papermill durations: run it through papermill "
                         "(`make tutorials` or tools/run_tutorials.py), not a plain Jupyter save.")
    cells = sum(seconds for _, seconds in rows)
    kernel = f", {total / 60:.1f} min with the kernel's start" if total is not None else ""
    note = f"; {unmeasured} code cells without a duration (not run?)" if unmeasured else ""
    lines = [f"**{path.stem}**{f' ({label})' if label else ''}: {cells / 60:.1f} min of cells{kernel}{note}", "",
             "| section | min | from start |", "|---|---:|---:|"]
    elapsed = 0.0
    for name, seconds in rows:
        elapsed += seconds
        lines.append(f"| {name} | {seconds / 60:.1f} | {elapsed / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["build"], help="executed notebooks or folders (default build/)")
    parser.add_argument("--label", default="", help="said beside each notebook's name, e.g. 'lab, 2 cores'")
    args = parser.parse_args(argv)
    notebooks = notebook_paths(args.paths)
    if not notebooks:
        raise SystemExit(f"section_times: no executed NN_name.ipynb in {', '.join(args.paths)} (run `make tutorials`).")
    print("\n\n".join(table(path, args.label) for path in notebooks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
