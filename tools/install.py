"""The Makefile without make (Windows): create .venv, install, and run the tests, the tutorials, prepare or figures.

Usage: python tools/install.py [TARGET] [--profile lab] [--app] [--dry-run]
TARGET is install (default), test, tutorials, prepare or figures, as `make TARGET`. With a wheelhouse/ folder
(`make wheelhouse`, or `python tools/wheelhouse.py`, copied from a USB stick) pip reads only its wheels and never
the network. --dry-run prints the commands without running them. Run it with the Python you want in .venv
(3.10 to 3.12; 3.11 recommended), e.g. `py -3.11 tools/install.py` on Windows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("install", "test", "tutorials", "prepare", "figures")
PROFILES = ("smoke", "lab", "full")
SUPPORTED = ((3, 10), (3, 12))


@dataclass
class Step:
    what: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def venv_python(venv: Path, windows: bool) -> Path:
    """The interpreter inside ``venv``: Scripts\\python.exe on Windows, bin/python elsewhere."""
    return venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python"


def pip_source(root: Path) -> list[str]:
    """pip options that read only wheelhouse/'s platform folders when it holds wheels; [] (PyPI) otherwise."""
    folders = sorted(p for p in (root / "wheelhouse").glob("*") if p.is_dir() and any(p.glob("*.whl")))
    if not folders:
        return []
    options = ["--no-index"]
    for folder in folders:
        options += ["--find-links", str(folder)]
    return options


def plan(target: str, root: Path = ROOT, *, windows: bool = os.name == "nt", profile: str = "lab", app: bool = False,
         python: str = sys.executable) -> list[Step]:
    """The commands of ``make TARGET`` for this machine, in order, run from the repository's root (nothing is run here)."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}: choose one of {', '.join(TARGETS)}.")
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    # paths relative to the repository (the commands run there): what a person would type
    py = str(venv_python(Path(".venv"), windows))
    source = [os.path.relpath(o, root) if Path(o).is_absolute() else o for o in pip_source(root)]
    where = "the wheels in wheelhouse/ (no network)" if source else "PyPI"
    steps = [
        Step("create .venv", [python, "-m", "venv", ".venv"]),
        Step(f"pip from {where}", [py, "-m", "pip", "install", "--quiet", *source, "--upgrade", "pip"]),
        Step(f"requirements.txt from {where}", [py, "-m", "pip", "install", "--quiet", *source, "-r", "requirements.txt"]),
        Step("the helpers package (editable)", [py, "-m", "pip", "install", "--quiet", *source, "--no-deps", "-e", "."]),
    ]
    if app or target == "test":
        steps.append(Step(f"requirements-app.txt from {where}",
                          [py, "-m", "pip", "install", "--quiet", *source, "-r", "requirements-app.txt"]))
    run_profile = "smoke" if target == "test" else profile
    env = {"MEDXAI_PROFILE": run_profile}
    if target != "install":
        steps.append(Step(f"synthetic data ({run_profile})", [py, "-m", "helpers.synthetic", "--dataset", "all"], env))
    if target == "test":
        steps += [Step("unit tests", [py, "-m", "pytest", "tests"], env),
                  Step("notebooks under nbval", [py, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                                                  "tutorials"], env)]
    elif target == "tutorials":
        steps.append(Step("every notebook", [py, str(Path("tools", "run_tutorials.py")), "--out", "build"], env))
    elif target == "prepare":
        steps.append(Step("notebooks 02, 03 and 04", [py, str(Path("tools", "prepare.py")), "--out",
                                                      str(Path("build", "prepare")), "02", "03", "04"], env))
    elif target == "figures":
        steps.append(Step("the key figures", [py, str(Path("tools", "export_figures.py")), "--out",
                                              str(Path("build", "figures"))], env))
    return steps


def shown(step: Step, windows: bool) -> str:
    """One command line as a person would type it in this machine's shell."""
    quote = (lambda a: f'"{a}"' if " " in a else a)
    if windows:
        prefix = "".join(f"set {k}={v}&& " for k, v in step.env.items())
    else:
        prefix = "".join(f"{k}={v} " for k, v in step.env.items())
    return prefix + " ".join(quote(a) for a in step.argv)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="install", choices=TARGETS)
    parser.add_argument("--profile", default="lab", choices=PROFILES, help="for tutorials, prepare, figures (default lab)")
    parser.add_argument("--app", action="store_true", help="also install the upload page's packages (requirements-app.txt)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--os", choices=("windows", "posix"), default="windows" if os.name == "nt" else "posix",
                        help=argparse.SUPPRESS)  # the tests plan for Windows on Linux
    args = parser.parse_args(argv)
    windows = args.os == "windows"
    version = sys.version_info[:2]
    if not SUPPORTED[0] <= version <= SUPPORTED[1] and not args.dry_run:
        print(f"Python 3.10 to 3.12 is needed (3.11 recommended); this is {version[0]}.{version[1]}. Run this file with "
              "another Python, e.g. `py -3.11 tools/install.py` on Windows.", file=sys.stderr)
        return 2
    steps = plan(args.target, windows=windows, profile=args.profile, app=args.app)
    for number, step in enumerate(steps, 1):
        print(f"[{number}/{len(steps)}] {step.what}: {shown(step, windows)}", flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        exe = Path(step.argv[0])  # Windows resolves a relative program against our cwd, not cwd=: make it absolute
        command = [str(exe if exe.is_absolute() else ROOT / exe), *step.argv[1:]]
        result = subprocess.run(command, env={**os.environ, **step.env}, cwd=ROOT)
        if result.returncode != 0:
            print(f"FAILED at step {number} ({step.what}), exit code {result.returncode}: fix what it says and run "
                  f"`python tools/install.py {args.target}` again.", file=sys.stderr)
            return result.returncode
        print(f"    done in {time.perf_counter() - start:.0f} s", flush=True)
    if args.target == "install" and not args.dry_run:
        py = venv_python(Path(".venv"), windows)
        print("\nNext: python tools/install.py test | tutorials | prepare | figures   (or work interactively: "
              f"{py} -m jupyter lab tutorials)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
