"""What each `make` target runs, as one list: the Makefile calls this file, and on Windows (no make) you call it.

Usage: python tools/install.py [TARGET] [--profile lab] [--app] [--no-install] [--notebooks 02 03] [--dry-run]
TARGET is install (default), app-install, data, test, tutorials, prepare or figures, as `make TARGET`: first the
install steps (create .venv, pip, requirements.txt, the package; requirements-app.txt for test, app-install or
--app), then the target's own steps. The Makefile installs with its own up-to-date checks and then runs
`.venv/bin/python tools/install.py TARGET --no-install`, so `make test` and `py -3.11 tools/install.py test` run
the same steps. With a wheelhouse/ folder (`make wheelhouse`, copied from a USB stick) pip reads only its wheels
and never the network. At the end a table gives each step's wall time and, where the system reports it, its CPU
time (user + system); `test` also writes it to build/test-stages.json (tools/section_times.py puts it in
tutorials/TIMINGS.md). --dry-run prints the commands without running them. Run it with the Python you want in
.venv (3.10 to 3.12; 3.11 recommended), e.g. `py -3.11 tools/install.py` on Windows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import series  # noqa: E402
import side_by_side  # noqa: E402

TARGETS = ("install", "app-install", "data", "test", "tutorials", "prepare", "figures")
PROFILES = ("smoke", "lab", "full")
SUPPORTED = ((3, 10), (3, 12))
PREPARE = ("02", "03", "04")
STAGES_FILE = Path("build", "test-stages.json")
# `make test` runs two jobs side by side on the 2 cores. The notebooks that pass models on (02 -> 04 -> 05 -> 06 ->
# 07 -> 09, and 03 -> 04) run in order in one job; those that feed no other notebook and need none, or only 02's
# source backbone, which they pretrain themselves when it is not cached yet (01, 02b, 08), run after the unit tests
# in the other, so both jobs end at about the same time.
ALONE = ("01_preprocessing_and_splits.ipynb", "02b_transfer_and_imbalance.ipynb", "08_cells_counting.ipynb")
CHAIN = tuple(p.name for p in series.notebooks(ROOT / "tutorials") if p.name not in ALONE)


@dataclass
class Step:
    what: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    guards: str = ""  # what a test step proves, said in the table `make test` ends with
    clear: tuple[str, ...] = ()  # folders (relative to the repository) removed before the step runs
    together: list[tuple[str, list[str]]] = field(default_factory=list)  # commands run side by side instead of argv


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


def install_steps(root: Path, py: str, python: str, app: bool, core: bool = True) -> list[Step]:
    """Create .venv and install into it (the core, then the upload page's packages when ``app``)."""
    source = [os.path.relpath(o, root) if Path(o).is_absolute() else o for o in pip_source(root)]
    where = "the wheels in wheelhouse/ (no network)" if source else "PyPI"
    pip = [py, "-m", "pip", "install", "--quiet", *source]
    steps = [
        Step("create .venv", [python, "-m", "venv", ".venv"]),
        Step(f"pip from {where}", [*pip, "--upgrade", "pip"]),
        Step(f"requirements.txt from {where}", [*pip, "-r", "requirements.txt"]),
        Step("the helpers package (editable)", [*pip, "--no-deps", "-e", "."]),
    ] if core else []
    if app:
        steps.append(Step(f"requirements-app.txt from {where}", [*pip, "-r", "requirements-app.txt"]))
    return steps


def target_steps(target: str, py: str, profile: str, notebooks: tuple[str, ...] = PREPARE) -> list[Step]:
    """What ``make TARGET`` runs once .venv is installed: the one list both the Makefile and Windows use."""
    run_profile = "smoke" if target == "test" else profile
    env = {"MEDXAI_PROFILE": run_profile}
    if target in ("install", "app-install"):
        return []
    steps = [Step(f"synthetic data ({run_profile})", [py, "-m", "helpers.synthetic", "--dataset", "all"], env,
                  guards="the synthetic sets are written in the real layouts, each checked as it is read back")]
    if target == "test":
        site, executed = str(Path("build", "smoke", "site")), str(Path("build", "smoke"))
        steps += [
            Step("unit tests | notebooks under nbval (side by side)", env=env, clear=(str(Path("build", "smoke")),),
                 guards="unit: helpers against hand computations, reference libraries and bad inputs, the upload "
                        "page in Chromium, the wheel, then notebooks 01, 02b and 08; notebooks: 02 to 07 and 09 "
                        "in order, passing their models on; every notebook top to bottom in smoke with its asserts, "
                        "kept for the site",
                 together=[("unit", [py, "-m", "pytest", "-p", "no:cacheprovider", "tests", "--ignore",
                                     str(Path("tests", "test_site.py")), "-m", "not full_path", "--nbval-lax",
                                     *[str(Path("tutorials", n)) for n in ALONE], "--save-executed", executed,
                                     "--durations", "15"]),
                           ("notebooks", [py, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
                                          *[str(Path("tutorials", n)) for n in CHAIN], "--save-executed", executed,
                                          "--durations", "9"])]),
            Step("course site (smoke)",
                 [py, str(Path("tools", "build_site.py")), "--executed", str(Path("build", "smoke")),
                  "--out", site, "--profile", "smoke"], env,
                 guards="the executed notebooks render as pages, with the smoke banner"),
            Step("course site in Chromium",
                 [py, "-m", "pytest", "-p", "no:cacheprovider", str(Path("tests", "test_site.py"))],
                 {**env, "MEDXAI_SITE_DIR": site},
                 guards="every page, link and image of the site in headless Chromium; the Colab lines and links"),
        ]
    elif target == "tutorials":
        steps.append(Step("every notebook", [py, str(Path("tools", "run_tutorials.py")), "--out", "build"], env))
    elif target == "prepare":
        steps.append(Step(f"notebooks {', '.join(notebooks)}", [py, str(Path("tools", "prepare.py")), "--out",
                                                                str(Path("build", "prepare")), *notebooks], env))
    elif target == "figures":
        steps.append(Step("the key figures", [py, str(Path("tools", "export_figures.py")), "--out",
                                              str(Path("build", "figures"))], env))
    return steps


def plan(target: str, root: Path = ROOT, *, windows: bool = os.name == "nt", profile: str = "lab", app: bool = False,
         python: str = sys.executable, install: bool = True, notebooks: tuple[str, ...] = PREPARE) -> list[Step]:
    """The commands of ``make TARGET`` for this machine, in order, run from the repository's root (nothing is run
    here)."""
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}: choose one of {', '.join(TARGETS)}.")
    if profile not in PROFILES:
        raise ValueError(f"Unknown profile {profile!r}: choose one of {', '.join(PROFILES)}.")
    py = str(venv_python(Path(".venv"), windows))  # relative to the repository (the commands run there): as typed
    steps = []
    if install or target in ("install", "app-install"):
        steps = install_steps(root, py, python, app=app or target in ("test", "app-install"),
                              core=target != "app-install")
    return steps + target_steps(target, py, profile, notebooks)


def shown(step: Step, windows: bool) -> str:
    """The step as a person would type it in this machine's shell (side-by-side commands joined by ' | ')."""
    quote = (lambda a: f'"{a}"' if " " in a else a)
    if windows:
        prefix = "".join(f"set {k}={v}&& " for k, v in step.env.items())
    else:
        prefix = "".join(f"{k}={v} " for k, v in step.env.items())
    if step.together:
        return prefix + "  |  ".join(" ".join(quote(a) for a in argv) for _, argv in step.together)
    return prefix + " ".join(quote(a) for a in step.argv)


def _absolute(argv: list[str]) -> list[str]:
    exe = Path(argv[0])  # Windows resolves a relative program against our cwd, not cwd=: make it absolute
    return [str(exe if exe.is_absolute() or len(exe.parts) == 1 else ROOT / exe), *argv[1:]]


def _children_cpu() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(step: Step) -> tuple[int, dict]:
    """Run one step from the repository's root; its exit status and a row of the closing table."""
    for folder in step.clear:
        shutil.rmtree(ROOT / folder, ignore_errors=True)
    env = {**os.environ, **step.env}
    cpu, start = _children_cpu(), time.perf_counter()
    parts = []
    if step.together:
        status, parts = side_by_side.run([(name, _absolute(argv)) for name, argv in step.together], env=env, cwd=ROOT)
    else:
        status = subprocess.run(_absolute(step.argv), env=env, cwd=ROOT).returncode
    after = _children_cpu()
    row = {"name": step.what, "status": status, "wall_s": round(time.perf_counter() - start, 1),
           "cpu_s": None if cpu is None else round(after - cpu, 1), "guards": step.guards,
           "parts": [{**p, "wall_s": round(p["wall_s"], 1),
                      "cpu_s": None if p["cpu_s"] is None else round(p["cpu_s"], 1)}
                     for p in parts]}
    return status, row


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def table(rows: list[dict]) -> str:
    """The closing table: each step's wall and CPU minutes (and each side-by-side part's), then the total."""
    lines = [f"{'step':<58} {'wall min':>8} {'CPU min':>8}"]
    for row in rows:
        lines.append(f"{row['name'][:58]:<58} {_minutes(row['wall_s']):>8} {_minutes(row['cpu_s']):>8}")
        for part in row["parts"]:
            lines.append(f"{'  ' + part['name']:<58} {_minutes(part['wall_s']):>8} {_minutes(part['cpu_s']):>8}")
    cpu = [r["cpu_s"] for r in rows]
    lines.append(f"{'total':<58} {_minutes(sum(r['wall_s'] for r in rows)):>8} "
                 f"{_minutes(None if None in cpu else sum(cpu)):>8}")
    return "\n".join(lines)


def machine() -> dict:
    """What the timings were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "processor": model or platform.processor(), "platform": platform.platform(),
            "python": platform.python_version()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="install", choices=TARGETS)
    parser.add_argument("--profile", default="lab", choices=PROFILES,
                        help="for data, tutorials, prepare, figures (default lab)")
    parser.add_argument("--app", action="store_true",
                        help="also install the upload page's packages (requirements-app.txt)")
    parser.add_argument("--no-install", dest="install", action="store_false",
                        help="skip the install steps (the Makefile has installed already)")
    parser.add_argument("--notebooks", nargs="+", default=list(PREPARE), help="for prepare (default 02 03 04)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--os", choices=("windows", "posix"), default="windows" if os.name == "nt" else "posix",
                        help=argparse.SUPPRESS)  # the tests plan for Windows on Linux
    args = parser.parse_args(argv)
    windows = args.os == "windows"
    version = sys.version_info[:2]
    if args.install and not SUPPORTED[0] <= version <= SUPPORTED[1] and not args.dry_run:
        print(f"Python 3.10 to 3.12 is needed (3.11 recommended); this is {version[0]}.{version[1]}. Run this file "
              "with another Python, e.g. `py -3.11 tools/install.py` on Windows (or make PYTHON=/path/to/python3.11).",
              file=sys.stderr)
        return 2
    steps = plan(args.target, windows=windows, profile=args.profile, app=args.app, install=args.install,
                 notebooks=tuple(args.notebooks))
    rows = []
    for number, step in enumerate(steps, 1):
        print(f"[{number}/{len(steps)}] {step.what}: {shown(step, windows)}", flush=True)
        if args.dry_run:
            continue
        status, row = run_step(step)
        rows.append(row)
        if status != 0:
            print(f"FAILED at step {number} ({step.what}), exit code {status}: fix what it says and run "
                  f"`python tools/install.py {args.target}` (or `make {args.target}`) again.", file=sys.stderr)
            break
        print(f"    done in {row['wall_s']:.0f} s", flush=True)
    if rows and len(rows) > 1:
        print(f"\n{args.target}: time per step (CPU = user + system of every process the step ran)\n{table(rows)}",
              flush=True)
    if args.target == "test" and rows:
        (ROOT / STAGES_FILE).parent.mkdir(parents=True, exist_ok=True)
        record = {"machine": machine(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "stages": rows}
        (ROOT / STAGES_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if any(r["status"] for r in rows):
        return next(r["status"] for r in rows if r["status"])
    if args.target == "install" and not args.dry_run:
        print("\nNext: python tools/install.py test | tutorials | prepare | figures   (or work interactively: "
              f"{venv_python(Path('.venv'), windows)} -m jupyter lab tutorials)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
