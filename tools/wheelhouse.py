"""Download every pinned wheel for the common laptops into wheelhouse/, for installing without internet.

Usage: python tools/wheelhouse.py [--out wheelhouse] [--platform NAME ...] [--python-version 3.11] [--dry-run]
`make wheelhouse` runs it. One folder per platform (linux_x86_64, macos_arm64, windows_amd64), each holding
requirements.txt, requirements-app.txt, pip and the build backend (setuptools, wheel: `pip install -e .` builds
offline). Copy the folder to a USB stick; `make install` and `python tools/install.py` use it when present.
Prints the size per platform; a requirement with no wheel for a platform is named, and the others still download.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ("requirements.txt", "requirements-app.txt")
BUILD = ("pip", "setuptools>=68", "wheel")  # the build backend of pyproject.toml, and pip itself
# pip expands a macOS tag to the older ones it implies (macOS 14 covers 11 ... 13 and universal2) but takes a
# manylinux tag as it is: the Linux list names every glibc from 2.28 (Ubuntu 18.10, Debian 10, RHEL 8) down.
PLATFORMS = {
    "linux_x86_64": tuple(f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1))
    + ("manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"),
    "macos_arm64": ("macosx_14_0_arm64",),
    "windows_amd64": ("win_amd64",),
}


def requirement_lines(files=REQUIREMENTS, root: Path = ROOT) -> list[str]:
    """The requirement specifiers of the files, comments and blank lines left out."""
    lines = []
    for name in files:
        for line in (root / name).read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def download_command(platform: str, target: Path, requirements, python_version: str = "3.11") -> list[str]:
    """The pip download command that fetches ``requirements`` as wheels for ``platform`` into ``target``."""
    if platform not in PLATFORMS:
        raise ValueError(f"Unknown platform {platform!r}: choose from {', '.join(PLATFORMS)}.")
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", python_version, "--dest", str(target), "--quiet"]
    for tag in PLATFORMS[platform]:
        command += ["--platform", tag]
    return command + list(requirements)


def folder_size(folder: Path) -> tuple[int, int]:
    """(number of wheels, bytes) in ``folder``."""
    wheels = list(folder.glob("*.whl"))
    return len(wheels), sum(w.stat().st_size for w in wheels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "wheelhouse"), help="folder for the wheels (default wheelhouse/)")
    parser.add_argument("--platform", action="append", choices=list(PLATFORMS),
                        help="one platform (repeat for several; default: all three)")
    parser.add_argument("--python-version", default="3.11", help="the laptops' Python, major.minor (default 3.11)")
    parser.add_argument("--dry-run", action="store_true", help="print the pip commands, download nothing")
    args = parser.parse_args(argv)
    if not (len(args.python_version.split(".")) == 2 and all(p.isdigit() for p in args.python_version.split("."))):
        parser.error(f"--python-version takes major.minor, e.g. 3.11, not {args.python_version!r}")
    requirements = [*requirement_lines(), *BUILD]
    out = Path(args.out)
    failed = {}
    for platform in args.platform or list(PLATFORMS):
        target = out / platform
        command = download_command(platform, target, requirements, args.python_version)
        if args.dry_run:
            print(" ".join(command))
            continue
        target.mkdir(parents=True, exist_ok=True)
        print(f"wheelhouse: {platform} ...", flush=True)
        start = time.perf_counter()
        if subprocess.run(command).returncode != 0:
            # pip stops at the first requirement it cannot get: fetch them one by one to name every one missing
            failed[platform] = [r for r in requirements
                                if subprocess.run(download_command(platform, target, [r], args.python_version),
                                                  capture_output=True).returncode != 0]
        count, size = folder_size(target)
        print(f"wheelhouse: {platform}: {count} wheels, {size / 1e6:.0f} MB in {time.perf_counter() - start:.0f} s",
              flush=True)
    if args.dry_run:
        return 0
    print("\nSize per platform:")
    for platform in PLATFORMS:
        if (out / platform).is_dir():
            count, size = folder_size(out / platform)
            print(f"  {platform:15s} {count:4d} wheels {size / 1e6:8.0f} MB")
    for platform, missing in failed.items():
        print(f"wheelhouse: no Python {args.python_version} wheel for {platform} of: "
              f"{', '.join(missing) or '(see pip above)'}; those laptops need internet for them (or another "
              "Python version).", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
