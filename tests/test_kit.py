"""The instructor's kit: figure export (viz.export_figure, MEDXAI_FIGURES_DIR), the section-times table, the installer's
plan and the side-by-side runner of `make test`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import config, viz  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1, 2], [0.9, 0.4, 0.1], marker="o")
    ax.set_title("rank correlation")
    return fig


def test_export_writes_a_decodable_png_and_an_svg(tmp_path):
    fig = _figure()
    png, svg = viz.export_figure(fig, "randomisation_curve", folder=tmp_path / "figures")
    plt.close(fig)
    assert (png.name, svg.name) == ("randomisation_curve.png", "randomisation_curve.svg")
    with Image.open(png) as image:
        image.load()
        width, height = image.size
    # 4 x 2 inches at 200 dpi, trimmed by bbox_inches="tight": within 25% of 800 x 400 pixels, not 100 dpi's 400 x 200
    assert 600 <= width <= 900 and 300 <= height <= 450, (width, height)
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert ("rank correlation" in svg.read_text(encoding="utf-8")
            or root.find(".//{http://www.w3.org/2000/svg}path") is not None)


def test_export_is_a_noop_when_off(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDXAI_FIGURES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    fig = _figure()
    assert viz.export_figure(fig, "leakage_bars") is None
    plt.close(fig)
    assert list(tmp_path.rglob("*")) == []


def test_export_follows_the_environment_and_takes_an_axes(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_FIGURES_DIR", str(tmp_path / "build" / "figures"))
    fig = _figure()
    paths = viz.export_figure(fig.axes[0], "referral_curves")  # pandas' DataFrame.plot returns an Axes
    plt.close(fig)
    assert paths == (tmp_path / "build" / "figures" / "referral_curves.png",
                     tmp_path / "build" / "figures" / "referral_curves.svg")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_export_svg_is_the_same_bytes_twice(tmp_path):
    fig = _figure()
    first = viz.export_figure(fig, "iobb_bars", folder=tmp_path / "a")[1].read_bytes()
    second = viz.export_figure(fig, "iobb_bars", folder=tmp_path / "b")[1].read_bytes()
    plt.close(fig)
    assert first == second


def test_figures_dir_setting(tmp_path, monkeypatch):
    assert config.load({"MEDXAI_CACHE_DIR": str(tmp_path)}).figures_dir is None
    assert config.load({"MEDXAI_CACHE_DIR": str(tmp_path), "MEDXAI_FIGURES_DIR": "  "}).figures_dir is None
    monkeypatch.chdir(tmp_path)
    cfg = config.load({"MEDXAI_CACHE_DIR": str(tmp_path), "MEDXAI_FIGURES_DIR": "build/figures"})
    # resolved where it was read, not where a notebook runs
    assert cfg.figures_dir == tmp_path.resolve() / "build" / "figures"
    assert not cfg.figures_dir.exists()  # created by the first export, not by reading the setting


def test_export_rejects_an_image_array(tmp_path):
    with pytest.raises(TypeError, match=r"export_figure\('slide'\) needs a matplotlib Figure.*ndarray"):
        viz.export_figure(np.zeros((4, 4)), "slide", folder=tmp_path)


# ---- tools: section times, figures check, wheelhouse and installer plans (nothing installed or downloaded) -------

import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import export_figures  # noqa: E402
import install  # noqa: E402
import section_times  # noqa: E402
import series  # noqa: E402
import side_by_side  # noqa: E402
import wheelhouse  # noqa: E402


def _md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(seconds):
    return {"cell_type": "code", "metadata": {"papermill": {"duration": seconds}}, "source": "x = 1"}


def _executed(tmp_path, name="05_saliency.ipynb"):
    notebook = {"metadata": {"papermill": {"duration": 100.0}}, "cells": [
        _md("# 05: saliency"), _md("## Setup"), _code(6.0), _md("## Configuration\nsettings"), _code(0.5), _code(0.1),
        _md("Some text, no heading"), _code(11.4), _md("## 11. Sanity check: randomise"), _code(60.0),
        {"cell_type": "code", "metadata": {"papermill": {"duration": None}}, "source": "boom"},
        _md("## Summary\n* one\n\n## Exercises\n1. two"), _code(1.5)]}
    path = tmp_path / name
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def test_section_times_sums_cells_under_their_heading(tmp_path):
    rows, total, unmeasured = section_times.section_seconds(json.loads(_executed(tmp_path).read_text()))
    # hand sums: Setup 6.0; Configuration 0.5 + 0.1 + 11.4 (a markdown cell without "## " stays in the section); 11: 60
    # two headings in one cell: the code below belongs to the second
    assert rows == [("Setup", 6.0), ("Configuration", pytest.approx(12.0)), ("11. Sanity check: randomise", 60.0),
                    ("Summary", 0.0), ("Exercises", 1.5)]
    assert (total, unmeasured) == (100.0, 1)


def test_section_times_table_in_minutes(tmp_path, capsys):
    _executed(tmp_path)
    assert section_times.main([str(tmp_path), "--label", "lab, 2 cores"]) == 0
    out = capsys.readouterr().out
    assert "**05_saliency** (lab, 2 cores): 1.3 min of cells, 1.7 min with the kernel's start" in out  # 79.5 s, 100 s
    assert "| Configuration | 0.2 | 0.3 |" in out  # 12 s; 6 + 12 = 18 s from the start
    assert "| 11. Sanity check: randomise | 1.0 | 1.3 |" in out  # 60 s; 18 + 60 = 78 s from the start
    assert "1 code cells without a duration" in out


def test_section_times_refuses_an_unexecuted_notebook(tmp_path):
    path = tmp_path / "01_x.ipynb"
    path.write_text(
        json.dumps({"metadata": {}, "cells": [_md("## Setup"), {"cell_type": "code", "metadata": {}, "source": ""}]}))
    with pytest.raises(SystemExit, match="no papermill durations.*make tutorials"):
        section_times.main([str(path)])
    with pytest.raises(SystemExit, match="neither an executed .ipynb nor a folder"):
        section_times.main([str(tmp_path / "nowhere.txt")])


def test_expected_figures_cover_the_key_plots():
    tutorials = ROOT / "tutorials"
    expected = export_figures.expected_figures(sorted(tutorials.glob("0[1-6]_*.ipynb")))
    for name in ("leakage_bars", "seo_figure1", "referral_curves", "referral_curves_pixels", "randomisation_curve",
                 "tiobb_bars"):
        assert name in expected, name
    assert expected["randomisation_curve"] == "05_saliency.ipynb"
    assert [p.name[:2] for p in export_figures.figure_notebooks()][:4] == ["01", "04", "05", "06"]


def test_check_figures_names_the_missing_and_the_broken(tmp_path):
    fig = _figure()
    viz.export_figure(fig, "randomisation_curve", folder=tmp_path)
    plt.close(fig)
    (tmp_path / "tiobb_bars.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "tiobb_bars.svg").write_text("<html/>")
    rows, problems = export_figures.check_figures(
        tmp_path, {"randomisation_curve": "05_saliency.ipynb", "leakage_bars": "01_preprocessing_and_splits.ipynb",
                   "tiobb_bars": "06_boxes_iobb.ipynb"})
    assert [r["name"] for r in rows] == ["leakage_bars", "randomisation_curve", "tiobb_bars"]
    width = int(rows[1]["png"].split("x")[0])  # 4 inches at 200 dpi, trimmed tight: about 800 px, not 100 dpi's 400
    assert 600 <= width <= 900 and rows[1]["svg"].endswith("kB"), rows[1]
    assert problems[:2] == ["leakage_bars.png (from 01_preprocessing_and_splits.ipynb) is missing",
                            "leakage_bars.svg (from 01_preprocessing_and_splits.ipynb) is missing"]
    assert problems[2].startswith("tiobb_bars.png (from 06_boxes_iobb.ipynb) does not decode")
    assert problems[3].startswith("tiobb_bars.svg (from 06_boxes_iobb.ipynb) is not an SVG: its root element is <html>")
    assert len(problems) == 4


def test_wheelhouse_command_per_platform():
    requirements = wheelhouse.requirement_lines()
    assert "tensorflow==2.21.0" in requirements and "starlette==1.10.0" in requirements
    assert not any(r.startswith("#") or not r for r in requirements)
    linux = wheelhouse.download_command("linux_x86_64", Path("w/linux_x86_64"), ["numpy==2.4.6"])
    # pip does not expand manylinux tags: TensorFlow's manylinux_2_27 and 2014 wheels must be named
    assert {"manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(linux)
    assert (linux[-1] == "numpy==2.4.6" and "--only-binary=:all:" in linux
            and linux[linux.index("--python-version") + 1] == "3.11")
    assert "win_amd64" in wheelhouse.download_command("windows_amd64", Path("w"), [])
    with pytest.raises(ValueError, match="Unknown platform 'macos_x86_64'"):
        wheelhouse.download_command("macos_x86_64", Path("w"), [])


def test_install_plan_uses_the_wheelhouse_when_present(tmp_path):
    online = install.plan("install", tmp_path, windows=True)
    assert [s.argv[0] for s in online[1:]] == [str(Path(".venv", "Scripts", "python.exe"))] * 3
    assert not any("--no-index" in s.argv for s in online)
    (tmp_path / "wheelhouse" / "windows_amd64").mkdir(parents=True)
    (tmp_path / "wheelhouse" / "windows_amd64" / "numpy-2.4.6-cp311-cp311-win_amd64.whl").write_bytes(b"")
    (tmp_path / "wheelhouse" / "empty").mkdir()
    offline = install.plan("install", tmp_path, windows=False)
    for step in offline[1:]:
        assert step.argv[0] == str(Path(".venv", "bin", "python"))
        i = step.argv.index("--no-index")
        assert step.argv[i + 1:i + 3] == ["--find-links", str(Path("wheelhouse", "windows_amd64"))]
        assert "empty" not in " ".join(step.argv)


def test_install_plan_of_each_target(tmp_path):
    test = install.plan("test", tmp_path, windows=False)
    assert "requirements-app.txt" in test[4].argv  # the browser test's packages, as make test
    assert [s.env.get("MEDXAI_PROFILE") for s in test[5:]] == ["smoke"] * 4
    together = dict(test[6].together)  # the unit tests and the notebooks side by side
    ran = [Path(a).name for job in together.values() for a in job if a.endswith(".ipynb")]
    assert sorted(ran) == sorted(p.name for p in series.notebooks(ROOT / "tutorials")), "each notebook once"
    chain = [Path(a).name[:2] for a in together["notebooks"] if a.endswith(".ipynb")]
    # models passed on, in order
    assert chain == sorted(chain) and {"02", "03", "04", "05", "06", "07", "09"} <= set(chain)
    for job in together.values():
        assert job[job.index("--save-executed") + 1] == str(Path("build", "smoke")) and "--nbval-lax" in job
    assert "full_path" in " ".join(together["unit"]) and test[6].clear == (str(Path("build", "smoke")),)
    assert test[-1].env["MEDXAI_SITE_DIR"] == str(Path("build", "smoke", "site")) and all(s.guards for s in test[5:])
    prepare = install.plan("prepare", tmp_path, windows=False, profile="lab")
    assert prepare[-1].argv[-3:] == ["02", "03", "04"] and prepare[-1].env == {"MEDXAI_PROFILE": "lab"}
    assert install.plan("prepare", tmp_path, install=False, notebooks=("02", "03"))[-1].argv[-2:] == ["02", "03"]
    assert [s.what for s in install.plan("app-install", tmp_path)] == ["requirements-app.txt from PyPI"]
    with pytest.raises(ValueError, match="Unknown target 'site'"):
        install.plan("site", tmp_path)
    with pytest.raises(ValueError, match="Unknown profile 'fast'"):
        install.plan("tutorials", tmp_path, profile="fast")


def test_make_and_windows_run_the_same_steps():
    """Every Makefile target that runs something calls tools/install.py with --no-install: one list for both."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("data", "test", "tutorials", "prepare", "figures"):
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.M)
        assert recipe, f"Makefile: no recipe for {target}"
        lines = [line.strip() for line in recipe.group(1).splitlines()]
        assert lines == [f"$(BIN)/python tools/install.py {target} --no-install"
                         + ("" if target == "test" else " --profile $(PROFILE)")
                         + (" --notebooks $(PREPARE)" if target == "prepare" else "")], (target, lines)
    assert re.search(r"^\t\$\(PYTHON\) tools/install.py install$", makefile, re.M)


def test_install_ends_with_each_steps_wall_and_cpu_time(tmp_path, monkeypatch, capsys):
    """The closing table sums the steps; CPU is what the children used (here one child burning CPU, one sleeping)."""
    burn = [sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"]
    sleep = [sys.executable, "-c", "import time; time.sleep(0.6)"]
    steps = [install.Step("burn", burn, guards="a"), install.Step("both", together=[("b", burn), ("s", sleep)])]
    monkeypatch.setattr(install, "plan", lambda *a, **k: steps)
    monkeypatch.setattr(install, "ROOT", tmp_path)
    assert install.main(["test", "--no-install"]) == 0
    out = capsys.readouterr().out
    closing = out.splitlines()[-5:]
    assert [line.split()[0] for line in closing] == ["burn", "both", "b", "s", "total"], closing
    assert float(closing[0].split()[-1]) == pytest.approx(0.01, abs=0.01)  # 0.6 s of CPU is 0.0 or 0.1 min in the table
    record = json.loads((tmp_path / install.STAGES_FILE).read_text())
    burn_row, both_row = record["stages"]
    assert burn_row["cpu_s"] >= 0.5 and both_row["wall_s"] >= 0.5
    parts = {p["name"]: p for p in both_row["parts"]}
    assert parts["b"]["cpu_s"] >= 0.5 and parts["s"]["cpu_s"] < 0.4, parts  # sleeping costs no CPU
    assert both_row["cpu_s"] >= parts["b"]["cpu_s"] - 0.05 and record["machine"]["cpus"] >= 1
    assert "total" in out and "CPU min" in out


def test_install_dry_run_prints_windows_commands():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "figures", "--dry-run",
                             "--os", "windows"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("[6/6] the key figures: set MEDXAI_PROFILE=lab&& ") and "export_figures.py" in lines[-1]
    assert not (ROOT / "build" / "figures" / "never").exists()
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "install.py"), "site"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'site'" in bad.stderr


def test_prepare_finds_notebooks_by_number():
    import prepare

    assert [p.name[:2] for p in prepare.notebook_paths(prepare.DEFAULT)] == ["02", "03", "04"]
    with pytest.raises(SystemExit, match=r"no notebook numbered '99'.*there are 01, 02"):
        prepare.notebook_paths(["99"])


def test_side_by_side_prefixes_each_line_and_returns_the_first_failure(capsys):
    slow = f"{sys.executable} -c \"import time; print('one'); time.sleep(0.3); print('two')\""
    failing = f"{sys.executable} -c \"import sys; print('broken'); sys.exit(3)\""
    assert side_by_side.main([f"unit={slow}", f"notebooks={failing}"]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("[unit     ]")] == ["[unit     ] one", "[unit     ] two"]
    assert "[notebooks] broken" in lines
    assert any(line.startswith("side_by_side: unit passed in") for line in lines)
    assert any(line.startswith("side_by_side: notebooks FAILED (exit status 3) in") for line in lines)
    # the failing one ends first, yet both ran to the end: the slow one's second line came after it
    assert lines.index("[notebooks] broken") < lines.index("[unit     ] two")


def test_side_by_side_shares_the_cores_out_unless_the_caller_chose(monkeypatch, capsys):
    for name in side_by_side.THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the caller's choice stands
    show = (f"{sys.executable} -c \"import os; print(os.environ['TF_NUM_INTRAOP_THREADS'], "
            "os.environ['OMP_NUM_THREADS'])\"")
    assert side_by_side.main([f"a={show}", f"b={show}"]) == 0
    each = str(max(1, side_by_side.cores() // 2))
    assert f"[a] {each} 3" in capsys.readouterr().out.splitlines()
    assert side_by_side.shared_threads({}, jobs=2, available=2)["TF_NUM_INTEROP_THREADS"] == "1"
    assert side_by_side.shared_threads({}, jobs=2, available=16)["TF_NUM_INTRAOP_THREADS"] == "8"
    assert side_by_side.shared_threads({}, jobs=3, available=2)["OMP_NUM_THREADS"] == "1"  # never 0


@pytest.mark.parametrize("arguments, message", [
    ([], "at least one NAME=COMMAND"),
    (["pytest tests/"], "is not NAME=COMMAND"),
    (["a=true", "a=false"], "its own name"),
    (["a=/no/such/program"], "a could not start '/no/such/program'"),
])
def test_side_by_side_refuses_what_it_cannot_run(arguments, message):
    with pytest.raises(SystemExit, match=message):
        side_by_side.main(arguments)


def test_side_by_side_stops_what_it_started_when_a_later_command_cannot_start(tmp_path):
    marker = tmp_path / "still running"
    sleeper = (f"{sys.executable} -c \"import time, pathlib; time.sleep(2); "
               f"pathlib.Path({str(marker)!r}).write_text('x')\"")
    with pytest.raises(SystemExit, match="b could not start"):
        side_by_side.main([f"a={sleeper}", "b=/no/such/program"])
    time.sleep(3)
    assert not marker.exists(), "the first command kept running after the second failed to start"



def test_make_tutorials_runs_kernels_that_keep_the_process_stderr_out_of_the_pages(tmp_path, monkeypatch):
    """TensorFlow's C++ start-up lines (cuInit, oneDNN) go to the terminal, as under nbval, not into the pages."""
    import nbformat
    import papermill
    import run_tutorials

    calls = []

    def execute(source, target, **kwargs):
        calls.append(kwargs)
        nbformat.write(nbformat.read(source, as_version=4), target)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    notebook = nbformat.v4.new_notebook()
    nbformat.write(notebook, tmp_path / "01_probe.ipynb")
    assert run_tutorials.main(["--out", str(tmp_path / "out"), str(tmp_path / "01_probe.ipynb")]) == 0
    assert calls and calls[0]["extra_arguments"] == ["--IPKernelApp.capture_fd_output=False"]


def test_series_names_its_notebooks_and_their_numbers(tmp_path):
    for name in ("01_a.ipynb", "02_b.ipynb", "02b_c.ipynb", "10_d.ipynb", "02_b.py", "_template.py", "1_x.ipynb",
                 "03_Upper.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in series.notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "02b_c.ipynb", "10_d.ipynb"]
    assert [p.name for p in series.notebooks(tmp_path, ".py")] == ["02_b.py"]
    assert [series.number(p.name) for p in series.notebooks(tmp_path)] == ["01", "02", "02b", "10"]
    assert series.number("tutorials/02b_transfer_and_imbalance.ipynb") == "02b"
