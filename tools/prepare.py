"""Train and cache the models later notebooks load, so a class can start at notebook 04, 05, 06 or 07.

Usage: python tools/prepare.py [--out build/prepare] [NOTEBOOK ...]   (`make prepare`, PROFILE=lab by default)
Runs notebooks 02 (the DenseNet121 classifier and its thresholds), 03 (the vessel U-Net) and 04 (the referral
threshold and dropout head notebook 07's report reads) through tools/run_tutorials.py in MEDXAI_PROFILE, then
prints the time it took and the model files in the cache. `make prepare PREPARE="02 03"` skips 04 (a class that
starts at 04, 05 or 06 does not need it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
import series  # noqa: E402

DEFAULT = ("02", "03", "04")


def notebook_paths(numbers, tutorials: Path = ROOT / "tutorials") -> list[Path]:
    """The notebook file of each number ("02") or path given; a clear error for one that is not there."""
    paths = []
    for item in numbers:
        if Path(item).suffix == ".ipynb":
            path = Path(item)
        else:
            matches = sorted(tutorials.glob(f"{item}_*.ipynb"))
            if len(matches) != 1:
                available = ", ".join(series.number(p.name) for p in series.notebooks(tutorials))
                raise SystemExit(f"prepare: no notebook numbered {item!r} in {tutorials} (there are {available}).")
            path = matches[0]
        if not path.is_file():
            raise SystemExit(f"prepare: {path} is not a file.")
        paths.append(path)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/prepare", help="folder for the executed notebooks")
    parser.add_argument("notebooks", nargs="*", default=list(DEFAULT), help="numbers or paths (default: 02 03 04)")
    args = parser.parse_args(argv)
    notebooks = notebook_paths(args.notebooks)
    import run_tutorials

    from helpers import config

    cfg = config.load()
    start = time.perf_counter()
    if run_tutorials.main(["--out", args.out, *map(str, notebooks)]):
        return 1
    minutes = (time.perf_counter() - start) / 60
    files = sorted(p for p in cfg.models_dir.glob("*") if p.is_file())
    print(f"\nprepare: {len(notebooks)} notebooks in {minutes:.1f} min ({cfg.profile} profile). Models and their "
          f"settings in {cfg.models_dir}:")
    for path in files:
        age = (time.time() - path.stat().st_mtime) / 60
        print(f"  {path.name:42s} {path.stat().st_size / 1e6:7.1f} MB   written {age:.0f} min ago")
    print("Notebooks 04-07 load these instead of training stand-ins (same profile, same MEDXAI_CACHE_DIR).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
