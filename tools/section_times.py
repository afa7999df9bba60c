"""Minutes per "## " section of executed notebooks, from papermill's per-cell durations, as a markdown table.

Usage: python tools/section_times.py [PATH ...] [--label "lab, 2 cores"]
PATH is an executed notebook or a folder of them (default build/, written by `make tutorials`). A cell belongs to
the last "## " heading above it; cells above the first heading count as "(title)". The total is the sum of the
cells; the notebook's own papermill duration (kernel start included) is shown beside it.

The series' one source of run times, tutorials/TIMINGS.md, is written by
  python tools/section_times.py --write tutorials/TIMINGS.md --smoke build/smoke --lab build
      [--stages build/test-stages.json]
after `make test` (it writes build/smoke and build/test-stages.json) and `make tutorials` (it writes build/): the
machine, the date each build ran, minutes per notebook against the profiles' budgets, minutes per section with
smoke and lab side by side, and `make test`'s stages. The same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

TITLE = "(title)"
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import series  # noqa: E402

BUDGET_MIN = {"smoke": 1.5, "lab": 5.0}  # design goals: each notebook's cells, on a 2-core CPU
MAKES = {"smoke": "`make test` writes build/smoke", "lab": "`make tutorials` writes build"}
REGENERATE = ("python tools/section_times.py --write tutorials/TIMINGS.md --smoke build/smoke --lab build "
              "--stages build/test-stages.json")
SESSION_MIN = 90  # one lab session
# Minutes of talk an instructor plans per "## " section (INSTRUCTORS.md's rule of thumb: about 5), with the
# notebook's frame shorter and the exercises longer.
TALK_MIN = {"Setup": 2, "Configuration": 2, "Cleanup": 1, "Summary": 3, "Exercises": 15, TITLE: 2}
TALK_DEFAULT = 5


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
    # not the imports' blip
    rows = [(name, seconds) for name, seconds in sections.items() if name != TITLE or seconds >= 3]
    total = notebook.get("metadata", {}).get("papermill", {}).get("duration")
    return rows, (float(total) if total is not None else None), unmeasured


def notebook_paths(paths) -> list[Path]:
    """Executed notebooks named, or found in the folders named; a clear error for a path that is neither."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += series.notebooks(path)
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


# ---- tutorials/TIMINGS.md: both builds side by side, the budgets, the machine, make test's stages ---------------


@dataclass
class Measured:
    """One executed notebook: its title, seconds per section, seconds of all its cells, cells without a time."""
    title: str
    sections: list[tuple[str, float]]
    seconds: float
    unmeasured: int


@dataclass
class Build:
    """A folder of executed notebooks of one profile, and when they ran."""
    profile: str
    folder: str
    notebooks: dict[str, Measured] = field(default_factory=dict)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    executed_by: str = ""


def _when(text) -> dt.datetime | None:
    """papermill's ISO time (naive means UTC, as papermill writes it) as an aware UTC datetime; None if absent."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)


def _title(notebook: dict, fallback: str) -> str:
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            for line in source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def load_build(folder, profile: str) -> Build:
    """Every executed NN_name.ipynb in ``folder``; a clear error naming the folder and the command that makes it."""
    path = Path(folder)
    make = MAKES[profile]
    if not path.is_dir():
        raise SystemExit(f"section_times: the {profile} build {path}/ does not exist ({make}); then run\n"
                         f"  {REGENERATE}")
    paths = series.notebooks(path)
    if not paths:
        raise SystemExit(f"section_times: no executed NN_name.ipynb in {path}/, so no {profile} times ({make}); "
                         f"then run\n  {REGENERATE}")
    build = Build(profile, str(folder))
    executors, starts, ends = set(), [], []
    for nb_path in paths:
        try:
            notebook = json.loads(nb_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SystemExit(f"section_times: {nb_path} is not a readable notebook ({err}); run the {profile} build "
                             f"again ({make}).") from err
        meta = notebook.get("metadata", {})
        ran_as = meta.get("medxai", {}).get("profile")
        if ran_as and ran_as != profile:
            raise SystemExit(f"section_times: {nb_path} ran in the {ran_as} profile, not {profile}: give "
                             f"--{profile} the folder of the {profile} build ({make}).")
        durations = [float(c["metadata"]["papermill"]["duration"]) for c in notebook.get("cells", [])
                     if c.get("metadata", {}).get("papermill", {}).get("duration") is not None]
        if not durations:
            raise SystemExit(f"section_times: {nb_path} has no papermill durations: it was not executed by the "
                             f"{profile} build ({make}), or was saved by plain Jupyter; run the build again.")
        rows, _, unmeasured = section_seconds(notebook)
        build.notebooks[nb_path.stem] = Measured(_title(notebook, nb_path.stem), rows, sum(durations), unmeasured)
        executors.add(meta.get("medxai", {}).get("executed_by") or ("papermill" if "papermill" in meta else "?"))
        starts.append(_when(meta.get("papermill", {}).get("start_time")))
        ends.append(_when(meta.get("papermill", {}).get("end_time")))
    build.executed_by = ", ".join(sorted(executors))
    build.start = min((t for t in starts if t is not None), default=None)
    build.end = max((t for t in ends if t is not None), default=None)
    return build


def load_stages(path) -> dict:
    """`make test`'s record (build/test-stages.json); a clear error when it is missing or not that record."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"section_times: {path} does not exist: `make test` writes it at its end; run it, or leave "
                         "out --stages.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        missing = [key for stage in record["stages"] for key in ("name", "wall_s") if key not in stage]
        if missing:
            raise KeyError(missing[0])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SystemExit(f"section_times: {path} is not `make test`'s record of its stages (a \"stages\" list of "
                         f"{{\"name\", \"wall_s\", ...}}; missing {err}); run `make test` again.") from err
    return record


def machine() -> dict:
    """The machine this runs on: CPU count, processor model (from /proc/cpuinfo where present), platform, Python."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text(errors="replace").splitlines()
                      if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "processor": model or platform.processor() or "not reported",
            "platform": platform.platform(), "python": platform.python_version()}


def _cell(text) -> str:
    """Text for a markdown table cell: its pipes escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _min(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def _cpu_seconds(stage: dict):
    """user + system seconds of a stage: cpu_s where the record has it, else user_s + sys_s; None if not reported."""
    if stage.get("cpu_s") is not None:
        return float(stage["cpu_s"])
    if stage.get("user_s") is not None and stage.get("sys_s") is not None:
        return float(stage["user_s"]) + float(stage["sys_s"])
    return None


def _dates(build: Build) -> str:
    if build.start is None or build.end is None:
        return "date not recorded in the notebooks"
    start, end = build.start.strftime("%Y-%m-%d %H:%M"), build.end.strftime("%Y-%m-%d %H:%M")
    return f"{start} to {end} UTC" if start[:10] != end[:10] else f"{start} to {end[11:]} UTC"


def _merged(first: list[str], second: list[str]) -> list[str]:
    """The sections of both builds in notebook order: the first build's, each of the second's after its predecessor."""
    order = list(first)
    previous = None
    for name in second:
        if name not in order:
            order.insert(order.index(previous) + 1 if previous is not None else 0, name)
        previous = name
    return order


def optional(section: str) -> bool:
    """A section whose heading ends "(optional)": the class runs its cells but talks about it only as homework."""
    return section.rstrip().endswith("(optional)")


def session_plan(sections: list[tuple[str, float]]) -> tuple[list[tuple[float, str, float, float]], float]:
    """[(clock at the section's start, section, talk minutes, run minutes)] in order, and the session's minutes.

    An optional section's cells still run (the class runs the notebook top to bottom), but its talk is not in the
    session: it is 0 here, and ``optional_talk`` says what it would add.
    """
    rows, clock = [], 0.0
    for name, seconds in sections:
        talk = 0 if optional(name) else TALK_MIN.get(name, TALK_DEFAULT)
        rows.append((clock, name, float(talk), seconds / 60))
        clock += talk + seconds / 60
    return rows, clock


def optional_talk(sections: list[tuple[str, float]]) -> float:
    """Minutes of talk the optional sections would add to the session."""
    return float(sum(TALK_MIN.get(name, TALK_DEFAULT) for name, _ in sections if optional(name)))


def _plan_markdown(name: str, measured) -> list[str]:
    rows, total = session_plan(measured.sections)
    verdict = (f"fits one {SESSION_MIN}-minute session ({SESSION_MIN - total:.0f} min to spare)" if total <= SESSION_MIN
               else f"**over** one {SESSION_MIN}-minute session by {total - SESSION_MIN:.0f} min: teach it in two, or "
                    "set its optional sections aside (INSTRUCTORS.md says which)")
    extra = optional_talk(measured.sections)
    if extra:
        verdict += (f"; its optional sections, run but not taught in the session, would add {extra:g} min of talk "
                    "(homework, or a second session)")
    out = ["", f"### Plan: {name}", "", "| starts at (min) | section | talk (min) | run, lab (min) |",
           "|---:|---|---:|---:|"]
    out += [f"| {start:.0f} | {_cell(section)} | {talk:g} | {run:.1f} |" for start, section, talk, run in rows]
    out += [f"| {total:.0f} | end | | |", "", f"{name}: {verdict}."]
    return out


def timings_markdown(smoke: Build | None, lab: Build | None, stages: dict | None = None, computer: dict | None = None,
                     command: str = REGENERATE, expected=()) -> str:
    """tutorials/TIMINGS.md: deterministic (sorted, no time but the builds' own) for the same inputs."""
    builds = {"smoke": smoke, "lab": lab}
    computer = machine() if computer is None else computer
    names = sorted(set(expected).union(*(b.notebooks for b in builds.values() if b is not None)))
    out = [f"<!-- Generated by tools/section_times.py: do not edit by hand. Regenerate with {REGENERATE} -->", "",
           "# Run times of the notebooks", "",
           "Generated from the executed notebooks by `tools/section_times.py`: **do not edit by hand**. This copy was "
           f"written by `{command}`. Regenerate it after `make tutorials` (the lab build, in `build/`) and "
           "`make test` (the smoke build, in `build/smoke/`, and the record of its stages, `build/test-stages.json`):",
           "", "```", REGENERATE, "```", "",
           "Minutes are the sum of papermill's per-cell times (the notebook's own computing; the kernel's start, "
           "reading and discussion come on top). Every other document of the series links here instead of "
           "stating a run time.", "", "## Machine and builds", "",
           "The machine this file was written on (the builds are meant to run on it too), and the builds it read:", "",
           f"- CPUs: {computer.get('cpus')} (`os.cpu_count()`)",
           f"- processor: {computer.get('processor')}",
           f"- platform: {computer.get('platform')}",
           f"- Python: {computer.get('python')}"]
    for profile, build in builds.items():
        if build is None:
            out.append(f"- {profile} build: not given (--{profile}; {MAKES[profile]})")
            continue
        absent = [n for n in names if n not in build.notebooks]
        note = f"; not in this build: {', '.join(absent)}" if absent else ""
        out.append(f"- {profile} build: `{build.folder}`, {len(build.notebooks)} notebooks executed by "
                   f"{build.executed_by}, {_dates(build)}{note}")
    budgets = "; ".join(f"{p}: each notebook under {BUDGET_MIN[p]:g} min" for p in BUDGET_MIN)
    out += ["", "## Per notebook", "",
            f"Budgets (design goals of the profiles, on a 2-core CPU): {budgets}. A notebook over its budget is marked "
            "**over**; - means not in that build.", "",
            "| notebook | smoke (min) | lab (min) |", "|---|---:|---:|"]
    totals = {}
    for name in names:
        cells = []
        for profile, build in builds.items():
            measured = build.notebooks.get(name) if build is not None else None
            if measured is None:
                cells.append("-")
                continue
            over = measured.seconds > BUDGET_MIN[profile] * 60
            cells.append(_min(measured.seconds) + (" **over**" if over else ""))
            totals.setdefault(profile, []).append(measured.seconds)
        out.append(f"| [{name}](#{name.lower()}) | {cells[0]} | {cells[1]} |")
    whole = [_min(sum(totals[p])) if b is not None and len(totals.get(p, [])) == len(names) else "-"
             for p, b in builds.items()]
    out.append(f"| all, one after another | {whole[0]} | {whole[1]} |")
    out.append(f"| budget, each | under {BUDGET_MIN['smoke']:g} | under {BUDGET_MIN['lab']:g} |")
    out += ["", "## Per section", "",
            'A cell counts in the last "## " section above it; - means the section is not in that build.']
    for name in names:
        measured = {p: (b.notebooks.get(name) if b is not None else None) for p, b in builds.items()}
        title = next((m.title for m in measured.values() if m is not None), "")
        out += ["", f"### {name}", ""]
        if title and title != name:
            out += [title, ""]
        if all(m is None for m in measured.values()):
            out += ["Not in either build.", ""]
            continue
        seconds = {p: dict(m.sections) if m is not None else {} for p, m in measured.items()}
        sections = _merged([s for s, _ in (measured["lab"].sections if measured["lab"] else [])],
                           [s for s, _ in (measured["smoke"].sections if measured["smoke"] else [])])
        out += ["| section | smoke (min) | lab (min) |", "|---|---:|---:|"]
        for section in sections:
            cells = [_min(seconds[p].get(section)) for p in builds]
            out.append(f"| {_cell(section)} | {cells[0]} | {cells[1]} |")
        cells = [_min(m.seconds) if m is not None else "-" for m in measured.values()]
        out.append(f"| **all cells** | {cells[0]} | {cells[1]} |")
        notes = [f"{p}: {m.unmeasured} code cells without a time (not run?)" for p, m in measured.items()
                 if m is not None and m.unmeasured]
        if notes:
            out += ["", "; ".join(notes) + "."]
    out += ["", "## Session plans (lab)", "",
            f"Minute by minute for one {SESSION_MIN}-minute lab session: each section's talk (a rule of thumb: "
            f"{TALK_DEFAULT} minutes a section; " + ", ".join(f"{k} {v}" for k, v in TALK_MIN.items() if k != TITLE) +
            ") and its run time in the lab build, one after the other. Start a long run, then talk while it works, "
            "and the session is shorter than the sum."]
    if lab is None:
        out += ["", "No lab build given (--lab; `make tutorials` writes build)."]
    for name in names:
        if lab is not None and name in lab.notebooks:
            out += _plan_markdown(name, lab.notebooks[name])
    out += ["", "## Stages of make test", ""]
    if stages is None:
        out.append("Not given (--stages; `make test` writes build/test-stages.json).")
    else:
        record_machine = stages.get("machine") or {}
        said = ", ".join(f"{k} {record_machine[k]}" for k in sorted(record_machine))
        when = _when(stages.get("date"))
        out += [f"`make test` on {when.strftime('%Y-%m-%d %H:%M UTC') if when else 'a date not recorded'}" +
                (f" ({said})" if said else "") +
                ", stage by stage (CPU: user + system of every process the stage ran; stages side by side share "
                "the cores):", "", "| stage | wall (min) | CPU (min) | what it guards |", "|---|---:|---:|---|"]
        for stage in stages["stages"]:
            failed = " (failed)" if stage.get("status") else ""
            out.append(f"| {_cell(stage['name'])}{failed} | {_min(stage['wall_s'])} | {_min(_cpu_seconds(stage))} | "
                       f"{_cell(stage.get('guards') or '')} |")
            for part in stage.get("parts") or []:
                out.append(f"| &nbsp;&nbsp;{_cell(part['name'])} | {_min(part.get('wall_s'))} | "
                           f"{_min(_cpu_seconds(part))} | |")
    return "\n".join(out) + "\n"


def write_timings(target, smoke=None, lab=None, stages=None, expected=(), computer=None) -> Path:
    """Read the builds named, write ``target`` (tutorials/TIMINGS.md), return its path."""
    if smoke is None and lab is None:
        raise SystemExit(f"section_times: --write needs --smoke and/or --lab, e.g.\n  {REGENERATE}")
    command = f"python tools/section_times.py --write {target}" + "".join(
        f" --{flag} {value}" for flag, value in (("smoke", smoke), ("lab", lab), ("stages", stages)) if value)
    text = timings_markdown(load_build(smoke, "smoke") if smoke else None, load_build(lab, "lab") if lab else None,
                            load_stages(stages) if stages else None, computer, command, expected)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["build"], help="executed notebooks or folders (default build/)")
    parser.add_argument("--label", default="", help="said beside each notebook's name, e.g. 'lab, 2 cores'")
    parser.add_argument("--write", metavar="FILE", help="write the timings file (tutorials/TIMINGS.md) instead")
    parser.add_argument("--smoke", metavar="DIR", help="with --write: the smoke build (`make test` writes build/smoke)")
    parser.add_argument("--lab", metavar="DIR", help="with --write: the lab build (`make tutorials` writes build)")
    parser.add_argument("--stages", metavar="JSON", help="with --write: `make test`'s build/test-stages.json")
    args = parser.parse_args(argv)
    if args.write:
        expected = [p.stem for p in series.notebooks(ROOT / "tutorials", ".py")]
        target = write_timings(args.write, args.smoke, args.lab, args.stages, expected)
        print(f"section_times: wrote {target}")
        return 0
    if args.smoke or args.lab or args.stages:
        parser.error("--smoke, --lab and --stages go with --write FILE")
    notebooks = notebook_paths(args.paths)
    if not notebooks:
        raise SystemExit(f"section_times: no executed NN_name.ipynb in {', '.join(args.paths)} (run `make tutorials`).")
    print("\n\n".join(table(path, args.label) for path in notebooks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
