"""Execute every notebook under tutorials/ with papermill; write executed copies and HTML to build/.

Usage: python tools/run_tutorials.py [--out build] [NOTEBOOK ...]
The profile comes from MEDXAI_PROFILE (the Makefile sets it). Prints one line per notebook with its
run time; a failure names the notebook and the cell, and the run stops there.

The kernels run with ``capture_fd_output`` off, as nbval's do in ``make test``: what C++ libraries write straight
to the process's stderr (TensorFlow's start-up lines about oneDNN, CUDA stubs and cuInit on a machine without a
GPU, which TF_CPP_MIN_LOG_LEVEL does not silence) goes to this terminal, not into the pages; Python's warnings,
printed through sys.stderr, still land in the cell that raised them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
import papermill
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import series  # noqa: E402

KERNEL_ARGUMENTS = ["--IPKernelApp.capture_fd_output=False"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build", help="folder for executed notebooks and HTML")
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every tutorials/NN_name.ipynb)")
    args = parser.parse_args(argv)
    notebooks = [Path(n) for n in args.notebooks] or series.notebooks(ROOT / "tutorials")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = os.environ.get("MEDXAI_PROFILE", "lab")
    timings = []
    for number, notebook in enumerate(notebooks, 1):
        target = out / notebook.name
        print(f"[{number}/{len(notebooks)}] {notebook.name} ({profile} profile)", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook), str(target), cwd=str(notebook.parent), progress_bar=True, kernel_name="python3",
                extra_arguments=KERNEL_ARGUMENTS,
            )
        except papermill.PapermillExecutionError as err:
            print(
                f"\nFAILED: {notebook.name}, cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                f"The executed notebook, with the traceback in that cell, is {target}.",
                file=sys.stderr,
            )
            return 1
        seconds = time.perf_counter() - start
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(target, as_version=4))
        target.with_suffix(".html").write_text(html, encoding="utf-8")
        timings.append((notebook.name, seconds))
        print(f"    done in {seconds:.0f} s -> {target} and {target.with_suffix('.html').name}", flush=True)
    print("\nRun times (" + profile + " profile):")
    for name, seconds in timings:
        print(f"  {name:45s} {seconds / 60:5.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
