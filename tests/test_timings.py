"""One source of run times: tutorials/TIMINGS.md, written by `tools/section_times.py --write`, and documents that cite
it.

The rule that tells a plan from a run time (test_every_minute_figure_in_the_documents_is_in_timings):
a minute figure (``N min``, ``N minutes``, ``N.N min``, a range ``3.6 to 4.1 min``) stated in README.md,
tutorials/README.md, tutorials/INSTRUCTORS.md or a markdown cell of tutorials/NN_name.py is a *plan* (teaching
time the instructor chooses, not a measurement) when

1. it sits in a section whose "## " heading says "plan" (notebook 04's "## Plan: core and optional"), or
2. the words "of talk" follow it ("about 5 minutes of talk per section").

Every other minute figure is a run time and must be one of the figures of tutorials/TIMINGS.md (a number in one of
its tables, or an ``N min`` of its text, such as the profiles' budgets). "90-minute session" is not a figure of
this form. Nothing here runs a notebook: the writer is tested on tiny executed notebooks built in tmp_path.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import section_times  # noqa: E402
import series  # noqa: E402

TIMINGS = ROOT / "tutorials" / "TIMINGS.md"
DOCUMENTS = [ROOT / "README.md", ROOT / "tutorials" / "README.md", ROOT / "tutorials" / "INSTRUCTORS.md"]
NOTEBOOKS = series.notebooks(ROOT / "tutorials", ".py")
NUMBER = r"\d+(?:\.\d+)?"
FIGURE = re.compile(rf"(?<![\w.])({NUMBER})(?:\s*(?:to|-|–)\s*({NUMBER}))?\s*(?:minutes?|mins?)\b")
REGENERATE = section_times.REGENERATE


def _markdown(path: Path) -> str:
    """A document's markdown: the file itself, or a notebook source's markdown cells (jupytext)."""
    if path.suffix == ".md":
        return path.read_text(encoding="utf-8")
    return "\n\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "markdown")


def _paragraphs(text: str):
    """(the "## " heading above, the paragraph with its line breaks as spaces) for each paragraph of the markdown."""
    heading, lines = "", []
    for line in text.splitlines() + [""]:
        if line.startswith("# ") or line.startswith("## "):
            if lines:
                yield heading, " ".join(lines)
            heading, lines = (line[3:] if line.startswith("## ") else ""), []
        elif line.strip():
            lines.append(line.strip())
        elif lines:
            yield heading, " ".join(lines)
            lines = []


def run_time_figures(text: str) -> list[tuple[str, list[str]]]:
    """The run-time figures of a document, by the rule in this module's docstring: (as written, [its numbers])."""
    found = []
    for heading, paragraph in _paragraphs(text):
        if "plan" in heading.lower():
            continue
        for m in FIGURE.finditer(paragraph):
            if re.match(r"\s+of\s+talk\b", paragraph[m.end():]):
                continue
            found.append((m.group(0), [n for n in m.groups() if n]))
    return found


def timings_figures(text: str) -> set[float]:
    """The figures of TIMINGS.md: every table cell that is a number ("3.6", "1.8 **over**", "under 5"), every N min."""
    cell = re.compile(rf"(?:under )?({NUMBER})(?: \*\*over\*\*)?")
    numbers = {float(m.group(1)) for line in text.splitlines() if line.startswith("|")
               for m in map(cell.fullmatch, (c.strip() for c in line.strip("|").split("|"))) if m}
    return numbers | {float(n) for m in FIGURE.finditer(text) for n in m.groups() if n}


def test_the_rule_tells_plans_from_run_times():
    text = ("Intro: lab about 2 min, smoke 0.4 to 0.6 minutes; a 90-minute session; about 5\nminutes of talk "
            "per section.\n\n## Plan: core and optional\n\nCore: about 70 minutes.\n\n## Setup\n\nThen 3.5 min.")
    assert run_time_figures(text) == [("2 min", ["2"]), ("0.4 to 0.6 minutes", ["0.4", "0.6"]), ("3.5 min", ["3.5"])]
    table = ("| notebook | smoke (min) | lab (min) |\n|---|---:|---:|\n| [01_x](#01_x) | 0.2 | 1.8 **over** |\n"
             "| 5. Does 0.8 mean 80%? | - | 0.3 |\n| budget, each | under 1.5 | under 5 |\n\n"
             "Budget: under 2.5 min. 2026-01-02 03:04 UTC, 2 CPUs")
    assert timings_figures(table) == {0.2, 1.8, 0.3, 1.5, 5.0, 2.5}  # a cell that is a number; no heading, date, count


def test_timings_exists_and_says_it_is_generated():
    assert TIMINGS.is_file(), f"{TIMINGS} is missing: write it with\n  {REGENERATE}"
    text = TIMINGS.read_text(encoding="utf-8")
    assert "do not edit by hand" in text and "python tools/section_times.py --write" in text, \
        f"{TIMINGS} does not say it is generated: write it with\n  {REGENERATE}"
    for notebook in NOTEBOOKS:
        assert f"\n### {notebook.stem}\n" in text, f"{TIMINGS} has no section for {notebook.stem}: {REGENERATE}"


def test_every_minute_figure_in_the_documents_is_in_timings():
    timings = timings_figures(TIMINGS.read_text(encoding="utf-8"))
    stray = [f"{path.relative_to(ROOT)}: {figure!r}" for path in DOCUMENTS + NOTEBOOKS
             for figure, numbers in run_time_figures(_markdown(path)) if any(float(n) not in timings for n in numbers)]
    assert not stray, ("run times stated by hand, not found in tutorials/TIMINGS.md; replace each by a link to "
                       "TIMINGS.md (or, for a teaching plan, follow the rule of tests/test_timings.py):\n  "
                       + "\n  ".join(stray))


def test_links_to_timings_land_on_a_heading_and_every_notebook_cites_it():
    text = TIMINGS.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for path in DOCUMENTS + NOTEBOOKS:
        for anchor in re.findall(r"TIMINGS\.md#([\w\-]+)", _markdown(path)):
            assert anchor in anchors, (f"{path.relative_to(ROOT)} links to TIMINGS.md#{anchor}, "
                                       "which is no heading there")
    for notebook in NOTEBOOKS:
        header = next(c.source for c in jupytext.read(notebook).cells if c.cell_type == "markdown")
        assert "**Run time:**" in header and "`TIMINGS.md`" in header and f"`{notebook.stem}`" in header, \
            f"{notebook.relative_to(ROOT)}: its header cell should say **Run time:** and send the reader to " \
            f"`TIMINGS.md`, section `{notebook.stem}`"


# ---- the writer, on tiny executed notebooks -----------------------------------------------------------------


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(seconds):
    return {"cell_type": "code", "metadata": {"papermill": {"duration": seconds}}, "source": "x = 1"}


def _notebook(folder: Path, name: str, sections: list[tuple[str, float]], start: str, end: str, by: str = ""):
    cells = [_md(f"# {name[:2]} · {name[3:]}")]
    for heading, seconds in sections:
        cells += [_md(f"## {heading}"), _code(seconds)]
    metadata = {"papermill": {"duration": sum(s for _, s in sections) + 5, "start_time": start, "end_time": end}}
    if by:
        metadata["medxai"] = {"profile": folder.name, "executed_by": by}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.ipynb").write_text(json.dumps({"metadata": metadata, "cells": cells}), encoding="utf-8")


@pytest.fixture
def builds(tmp_path):
    """Two notebooks per profile: smoke as nbval saves them (aware times), lab as papermill writes them (naive UTC)."""
    smoke, lab = tmp_path / "smoke", tmp_path / "lab"
    _notebook(smoke, "01_alpha", [("Setup", 6.0), ("1. Train", 30.0), ("Summary", 1.5)],
              "2026-01-02T03:04:00+00:00", "2026-01-02T03:05:00+00:00", by="nbval")
    _notebook(smoke, "02_beta", [("Setup", 3.0), ("1. Fit", 100.0), ("2. Smoke only", 6.0)],
              "2026-01-02T03:05:00+00:00", "2026-01-02T03:07:30+00:00", by="nbval")
    _notebook(lab, "01_alpha", [("Setup", 12.0), ("1. Train", 120.0), ("2. Extra", 60.0), ("Summary", 4.0)],
              "2026-01-03T10:00:00.5", "2026-01-03T10:04:00")
    _notebook(lab, "02_beta", [("Setup", 6.0), ("1. Fit", 240.0)], "2026-01-03T10:04:00", "2026-01-03T10:08:30")
    stages = tmp_path / "test-stages.json"
    stages.write_text(json.dumps({"machine": {"cpus": 2, "python": "3.11.7"}, "date": "2026-01-02T03:10:00+00:00",
                                  "stages": [{"name": "synthetic data", "wall_s": 12.3, "user_s": 20.1, "sys_s": 2.0,
                                              "guards": "one sentence"},
                                             {"name": "unit | notebooks", "wall_s": 600.0, "cpu_s": 1080.0,
                                              "guards": "the rest", "parts": [{"name": "unit", "wall_s": 420.0,
                                                                               "cpu_s": 400.0}]}]}))
    return smoke, lab, stages


def test_writer_sums_cells_flags_budgets_and_marks_missing_sections(builds, tmp_path):
    smoke, lab, stages = builds
    target = section_times.write_timings(tmp_path / "TIMINGS.md", smoke, lab, stages, expected=["03_gamma"],
                                         computer={"cpus": 2, "processor": "Test CPU", "platform": "Linux",
                                                   "python": "3.11.7"})
    text = target.read_text(encoding="utf-8")
    assert "do not edit by hand" in text and REGENERATE in text
    assert "- CPUs: 2 (`os.cpu_count()`)" in text and "- processor: Test CPU" in text
    # dates from the notebooks' metadata.papermill: the earliest start to the latest end of each build
    assert "- smoke build: `" + str(smoke) + "`, 2 notebooks executed by nbval, 2026-01-02 03:04 to 03:07 UTC;" in text
    assert "- lab build: `" + str(lab) + "`, 2 notebooks executed by papermill, 2026-01-03 10:00 to 10:08 UTC;" in text
    # hand sums: smoke 01 6 + 30 + 1.5 = 37.5 s; 02 3 + 100 + 6 = 109 s (over 90 s); lab 01 196 s; 02 246 s
    assert "| [01_alpha](#01_alpha) | 0.6 | 3.3 |" in text
    assert "| [02_beta](#02_beta) | 1.8 **over** | 4.1 |" in text
    assert "| [03_gamma](#03_gamma) | - | - |" in text
    assert "| all, one after another | - | - |" in text  # 03_gamma is in neither build: no total pretends otherwise
    assert "smoke: each notebook under 1.5 min; lab: each notebook under 5 min" in text
    assert "| budget, each | under 1.5 | under 5 |" in text
    # per section, matched by heading; a section one build lacks shows "-"
    one = text.split("### 01_alpha\n")[1].split("###")[0]
    assert "| Setup | 0.1 | 0.2 |\n| 1. Train | 0.5 | 2.0 |\n| 2. Extra | - | 1.0 |\n| Summary | 0.0 | 0.1 |" in one
    assert "| **all cells** | 0.6 | 3.3 |" in one
    two = text.split("### 02_beta\n")[1].split("###")[0]
    assert "| 1. Fit | 1.7 | 4.0 |\n| 2. Smoke only | 0.1 | - |" in two
    assert "Not in either build." in text.split("### 03_gamma\n")[1]
    # make test's stages: its date and machine, wall and CPU (user + sys, or the record's cpu_s) in minutes,
    # what each guards
    assert "`make test` on 2026-01-02 03:10 UTC (cpus 2, python 3.11.7), stage by stage" in text
    assert "| synthetic data | 0.2 | 0.4 | one sentence |" in text  # 12.3 s; 20.1 + 2.0 = 22.1 s
    assert "| unit \\| notebooks | 10.0 | 18.0 | the rest |" in text and "| &nbsp;&nbsp;unit | 7.0 | 6.7 | |" in text


def test_session_plans_add_talk_and_lab_run_section_by_section(builds, tmp_path):
    smoke, lab, stages = builds
    text = section_times.timings_markdown(section_times.load_build(smoke, "smoke"),
                                          section_times.load_build(lab, "lab"))
    plan = text.split("### Plan: 01_alpha\n")[1].split("###")[0]
    # by hand: Setup 2 talk + 0.2 run; Train 5 + 2.0; Extra 5 + 1.0; Summary 3 + 0.07: 18.27 minutes in all
    assert ("| 0 | Setup | 2 | 0.2 |\n| 2 | 1. Train | 5 | 2.0 |\n| 9 | 2. Extra | 5 | 1.0 |\n"
            "| 15 | Summary | 3 | 0.1 |\n| 18 | end | | |") in plan
    assert "01_alpha: fits one 90-minute session (72 min to spare)." in plan
    rows, total = section_times.session_plan([("1. Long", 6000.0), ("Exercises", 0.0)])
    assert total == pytest.approx(5 + 100 + 15) and rows[1][0] == pytest.approx(105)
    over = section_times._plan_markdown("99_long", section_times.Measured("t", [("1. Long", 6000.0)], 6000.0, 0))
    assert "**over** one 90-minute session by 15 min" in "\n".join(over)
    # an optional section runs in the session, but its talk is homework: 0 here, and the verdict says what it adds
    sections = [("1. Core", 60.0), ("2. Extra (optional)", 120.0), ("Exercises", 0.0)]
    rows, total = section_times.session_plan(sections)
    assert [talk for _, _, talk, _ in rows] == [5, 0, 15] and total == pytest.approx(5 + 1 + 2 + 15)
    plan = "\n".join(section_times._plan_markdown("98_opt", section_times.Measured("t", sections, 180.0, 0)))
    assert "| 6 | 2. Extra (optional) | 0 | 2.0 |" in plan
    assert "98_opt: fits one 90-minute session (67 min to spare); its optional sections, run but not taught in the " \
           "session, would add 5 min of talk" in plan


def test_writer_without_missing_notebooks_totals_and_gives_the_same_bytes_twice(builds, tmp_path, capsys):
    smoke, lab, stages = builds
    text = section_times.timings_markdown(section_times.load_build(smoke, "smoke"),
                                          section_times.load_build(lab, "lab"))
    assert "| all, one after another | 2.4 | 7.4 |" in text  # 146.5 s and 442 s
    assert "## Stages of make test\n\nNot given (--stages; `make test` writes build/test-stages.json)." in text
    first, second = tmp_path / "a.md", tmp_path / "b.md"
    for target in (first, second):
        assert section_times.main(["--write", str(target), "--smoke", str(smoke), "--lab", str(lab),
                                   "--stages", str(stages)]) == 0
    assert first.read_bytes().replace(b"a.md", b"b.md") == second.read_bytes()
    assert f"wrote {second}" in capsys.readouterr().out


def test_writer_refuses_missing_or_empty_builds_with_the_command_that_makes_them(builds, tmp_path):
    smoke, lab, stages = builds
    with pytest.raises(SystemExit, match=r"smoke build .*nowhere/ does not exist \(`make test` writes build/smoke\)"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--smoke", str(tmp_path / "nowhere"), "--lab", str(lab)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"no executed NN_name.ipynb in .*empty/.*`make tutorials` writes build"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--smoke", str(smoke), "--lab", str(tmp_path / "empty")])
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "01_alpha.ipynb").write_text(json.dumps({"metadata": {}, "cells": [_md("## Setup"), {
        "cell_type": "code", "metadata": {}, "source": "x = 1"}]}))
    with pytest.raises(SystemExit, match=r"01_alpha.ipynb has no papermill durations.*`make tutorials` writes build"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--lab", str(bare)])
    with pytest.raises(SystemExit, match=r"ran in the smoke profile, not lab"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--lab", str(smoke)])
    with pytest.raises(SystemExit, match=r"missing.json does not exist: `make test` writes it"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--smoke", str(smoke),
                            "--stages", str(tmp_path / "missing.json")])
    stages.write_text(json.dumps({"stages": [{"name": "no time"}]}))
    with pytest.raises(SystemExit, match=r"not `make test`'s record of its stages.*wall_s"):
        section_times.main(["--write", str(tmp_path / "t.md"), "--smoke", str(smoke), "--stages", str(stages)])
    with pytest.raises(SystemExit, match=r"--write needs --smoke and/or --lab"):
        section_times.main(["--write", str(tmp_path / "t.md")])
    assert not (tmp_path / "t.md").exists()  # nothing half-written


def test_the_sessions_instructors_md_plans_agree_with_the_generated_plans():
    """A notebook whose plan in TIMINGS.md runs over 90 minutes is not planned as one session without homework."""
    text = TIMINGS.read_text(encoding="utf-8")
    guide = (ROOT / "tutorials" / "INSTRUCTORS.md").read_text(encoding="utf-8")
    verdicts = dict(re.findall(r"^(\d\d[a-z]?_\w+): (fits|\*\*over\*\*) one", text, flags=re.M))
    if not verdicts:
        pytest.skip("TIMINGS.md has no lab build, so no session plans: `make tutorials`, then regenerate it")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\d\d[a-z]?) \| [^|]+ \| ([^|]+) \|", guide, flags=re.M)}
    for name, verdict in verdicts.items():
        sessions = rows[series.number(name)]
        if verdict == "fits":
            assert sessions.strip().startswith("1"), f"INSTRUCTORS.md plans {name} as {sessions!r}; its plan fits one"
        else:
            assert sessions.strip().startswith("2") or "homework" in sessions, \
                f"INSTRUCTORS.md plans {name} as {sessions!r}, but its plan in TIMINGS.md runs over one session"
