"""Run the notebooks that hold the series' key plots with figure export on; list the PNG and SVG files; fail on a \
missing one.

Usage: python tools/export_figures.py [--out build/figures] [NOTEBOOK ...]   (`make figures`, PROFILE=lab by default)
The notebooks run through tools/run_tutorials.py (executed copies in OUT/notebooks/) with MEDXAI_FIGURES_DIR=OUT;
each `viz.export_figure(fig, name)` call writes OUT/name.png and OUT/name.svg. Old figures in OUT are removed
first, so a figure that a run did not write cannot pass for one that it did.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import series  # noqa: E402

# The key plots of the series, by notebook: the slides an instructor shows. A name a notebook passes to
# export_figure as a literal is expected too (expected_figures reads the notebook's .py source).
KEY_FIGURES = {
    "01": ("leakage_bars",),  # the cost of leakage: image-level vs patient-level split
    "04": ("seo_figure1", "referral_curves", "referral_curves_pixels"),  # Seo's Figure 1 maps; referral
    "05": ("randomisation_curve",),  # the cascading-randomisation sanity check
    "06": ("tiobb_bars",),  # T(IoBB) beside ChestX-ray8
}
LITERAL_CALL = re.compile(r"""export_figure\([^,()]+,\s*["']([A-Za-z0-9_-]+)["']""")


def figure_notebooks(tutorials: Path = ROOT / "tutorials") -> list[Path]:
    """The notebooks (.ipynb) of the key figures: those in KEY_FIGURES and any whose source calls export_figure."""
    found = []
    for notebook in series.notebooks(tutorials):
        source = notebook.with_suffix(".py")
        calls = source.is_file() and "export_figure(" in source.read_text(encoding="utf-8")
        if series.number(notebook.name) in KEY_FIGURES or calls:
            found.append(notebook)
    return found


def expected_figures(notebooks) -> dict[str, str]:
    """Figure name -> notebook for the notebooks given: KEY_FIGURES plus the literal names in their .py sources."""
    expected = {}
    for notebook in map(Path, notebooks):
        for name in KEY_FIGURES.get(series.number(notebook.name), ()):
            expected[name] = notebook.name
        source = notebook.with_suffix(".py")
        if source.is_file():
            for name in LITERAL_CALL.findall(source.read_text(encoding="utf-8")):
                expected.setdefault(name, notebook.name)
    return expected


def check_figures(folder: Path, expected: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Rows (name, PNG pixels and kB, SVG kB) for every figure in ``folder``, and one line per expected figure missing
    or unreadable."""
    from PIL import Image

    rows, problems = [], []
    names = sorted({p.stem for p in folder.glob("*.png")} | {p.stem for p in folder.glob("*.svg")} | set(expected))
    for name in names:
        png, svg = folder / f"{name}.png", folder / f"{name}.svg"
        where = f" (from {expected[name]})" if name in expected else ""
        row = {"name": name, "png": "-", "svg": "-"}
        if png.is_file():
            try:
                with Image.open(png) as image:
                    image.load()
                    row["png"] = f"{image.width}x{image.height} px, {png.stat().st_size / 1024:.0f} kB"
            except Exception as err:  # a truncated or empty file: say which and why
                problems.append(f"{png.name}{where} does not decode: {err}")
        elif name in expected:
            problems.append(f"{png.name}{where} is missing")
        if svg.is_file():
            try:
                root = ET.parse(svg).getroot()
                if not root.tag.endswith("svg"):
                    raise ValueError(f"its root element is <{root.tag}>, not <svg>")
                row["svg"] = f"{svg.stat().st_size / 1024:.0f} kB"
            except (ET.ParseError, ValueError) as err:
                problems.append(f"{svg.name}{where} is not an SVG: {err}")
        elif name in expected:
            problems.append(f"{svg.name}{where} is missing")
        rows.append(row)
    return rows, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/figures", help="folder for the figures (default build/figures)")
    parser.add_argument("--no-run", action="store_true", help="only list and check the figures already in OUT")
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: those with key figures)")
    args = parser.parse_args(argv)
    notebooks = [Path(n) for n in args.notebooks] or figure_notebooks()
    unknown = [str(n) for n in notebooks if n.suffix != ".ipynb" or not n.is_file()]
    if unknown:
        parser.error(f"not a notebook file: {', '.join(unknown)} (give tutorials/NN_name.ipynb paths)")
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        parser.error(f"--out {args.out} is a file, not a folder")
    expected = expected_figures(notebooks)
    start = time.perf_counter()
    if not args.no_run:
        out.mkdir(parents=True, exist_ok=True)
        for old in [*out.glob("*.png"), *out.glob("*.svg")]:
            old.unlink()
        os.environ["MEDXAI_FIGURES_DIR"] = str(out)  # read by helpers.config in each notebook's kernel
        import run_tutorials

        if run_tutorials.main(["--out", str(out / "notebooks"), *map(str, notebooks)]):
            return 1
    rows, problems = check_figures(out, expected)
    print(f"\nFigures in {out} ({len(rows)}; {time.perf_counter() - start:.0f} s):")
    print(f"  {'name':28s} {'PNG':28s} SVG")
    for row in rows:
        print(f"  {row['name']:28s} {row['png']:28s} {row['svg']}")
    if problems:
        print("\nFAILED: expected figures missing or unreadable:\n  " + "\n  ".join(problems)
              + "\nEach comes from a viz.export_figure(fig, name) call in the notebook named; check that the call is "
              "there and that the cell ran.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
