"""The course site: tools/build_site.py on a tiny executed notebook, the Colab lines, and the built site in Chromium.

The build and Colab tests need no browser and no built site. The browser test serves the built site (``make
site``: build/site; ``make test``: build/smoke/site; ``MEDXAI_SITE_DIR`` to choose) over a local http.server on a
free port and opens every page in headless Chromium (the system's, through Selenium): every page has a title,
every relative link and image resolves, every image decodes, nothing is loaded from another host, no formula
is left as TeX source, and the console has no error. Without a built site, Chromium or chromedriver it skips and says
why; MEDXAI_REQUIRE_BROWSER=1 (set by .ci/run) turns that skip into a failure. ``make test`` runs this file after the
notebooks, once the site is built from their nbval run.
"""

from __future__ import annotations

import base64
import functools
import html
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import skip_or_fail  # tests/conftest.py: skip, or fail under MEDXAI_REQUIRE_BROWSER=1
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://github.com/medxai/medxai"  # the tiny builds' fixed URL, for links checked character by character
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
HOME = PROJECT["urls"]["Repository"]  # the repository's one setting: every link and the Setup cell's install follow it
HOME_NAME = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", HOME).group(1)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"medxai_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_site = _tool("build_site")
colab_setup = _tool("colab_setup")
series = _tool("series")

# A 2x3 red PNG (Pillow's), so the tiny notebook has a real figure to extract.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAE0lEQVR4nGP8z8DAwMDAxIBMAQAUQAEF3SN5DgAAAABJRU5ErkJggg=="
)

# ---------------------------------------------------------------------------------------------
# The build, on a tiny executed notebook (no browser)
# ---------------------------------------------------------------------------------------------


def _executed(folder: Path, name: str = "09_tiny", profile: str | None = "smoke", error: bool = False,
              run: bool = True) -> Path:
    """A hand-made executed notebook: two code cells timed 1.25 s and 2.5 s, a markdown cell timed 0.004 s."""
    nb = new_notebook()
    nb.cells = [
        new_markdown_cell("# 09 · A tiny notebook\n\nTeaches how to add $a + b$ in **one** line.\n\nMore text."),
        new_code_cell("print(1 + 2)", execution_count=1 if run else None,
                      outputs=[new_output("stream", name="stdout", text="3\n")] if run else []),
        new_markdown_cell("The loss $\\mathcal{L} = -\\frac1T\\sum_t \\log p_t$ and code `$HOME` stay apart."),
        new_code_cell("plt.show()", execution_count=2 if run else None,
                      outputs=[new_output("display_data", data={"image/png": base64.b64encode(PNG).decode(),
                                                                "text/plain": "<Figure>"})] if run else []),
    ]
    if error:
        nb.cells[1].outputs = [new_output("error", ename="ValueError", evalue="bad value", traceback=[])]
    if run:
        for cell, seconds in zip(nb.cells, (None, 1.25, 0.004, 2.5)):
            if seconds is not None:
                cell.metadata["papermill"] = {"duration": seconds, "status": "completed"}
    if profile:
        nb.metadata["medxai"] = {"profile": profile}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


@pytest.fixture
def readme(tmp_path) -> Path:
    path = tmp_path / "README.md"
    path.write_text("# x\n\n## References\n\n- Seo, *Visualizing Uncertainty*, Ryerson University.\n\n## After\n\nno\n")
    return path


def test_each_page_has_anchored_sections_a_table_of_contents_and_previous_next(tmp_path, readme):
    """INSTRUCTORS.md links a section as NN_name.html#anchor; a class moves page to page without the index."""
    for name in ("01_first", "02_second", "03_third"):
        path = _executed(tmp_path / "executed", name)
        nb = nbformat.read(path, as_version=4)
        nb.cells.insert(1, new_markdown_cell("## Setup\n\ntext"))
        nb.cells.insert(3, new_markdown_cell("## 6. Referral: who gets a second look?\n\n## Summary"))
        nb.cells.append(new_markdown_cell("## Summary"))  # a repeated heading gets its own anchor
        nbformat.write(nb, path)
    out = tmp_path / "site"
    build_site.build(tmp_path / "executed", out, REPOSITORY, readme=readme)
    page = (out / "02_second.html").read_text(encoding="utf-8")
    assert build_site.slug("## 6. Referral: who gets a second look?"[3:]) == "6-referral-who-gets-a-second-look"
    anchors = ["setup", "6-referral-who-gets-a-second-look", "summary", "summary-2"]
    toc = re.search(r'<details class="medxai toc".*?</details>', page, re.S).group(0)
    assert re.findall(r'href="#([^"]+)"', toc) == anchors
    for anchor in anchors:
        assert page.count(f'id="{anchor}"') == 1, anchor
    links = {m.group(2): m.group(1) for m in re.finditer(r'<a (?=[^>]*rel="(prev|next)")[^>]*href="([^"]+)"', page)}
    assert links == {"01_first.html": "prev", "03_third.html": "next"}, links
    first, last = ((out / "01_first.html").read_text(encoding="utf-8"),
                   (out / "03_third.html").read_text(encoding="utf-8"))
    assert 'rel="prev"' not in first and 'rel="next"' in first
    assert 'rel="next"' not in last and 'rel="prev"' in last


def test_build_lists_the_notebook_with_its_summed_time_and_exact_links(tmp_path, readme):
    _executed(tmp_path / "executed")
    out = tmp_path / "site"
    result = build_site.build(tmp_path / "executed", out, REPOSITORY, readme=readme)

    (entry,) = result["entries"]
    # code cells only: the markdown's 0.004 s is not run time
    assert entry.seconds == pytest.approx(1.25 + 2.5, abs=1e-9)
    assert (entry.title, entry.profile) == ("A tiny notebook", "smoke")
    colab = "https://colab.research.google.com/github/medxai/medxai/blob/main/tutorials/09_tiny.ipynb"
    binder = "https://mybinder.org/v2/gh/medxai/medxai/main?labpath=tutorials%2F09_tiny.ipynb"
    assert build_site.colab_url(REPOSITORY, "09_tiny") == colab
    assert build_site.binder_url(REPOSITORY, "09_tiny") == binder
    index = (out / "index.html").read_text()
    assert f'href="{colab}"' in index and f'href="{binder}"' in index
    assert '<a href="09_tiny.html">A tiny notebook</a>' in index
    assert "Teaches how to add" in index and "More text" not in index  # the first paragraph only
    assert ">4 s<" in index  # 3.75 s shown rounded

    page = (out / "09_tiny.html").read_text()
    assert "<title>09 · A tiny notebook</title>" in page
    figures = sorted((out / "09_tiny_files").glob("*.png"))
    assert [f.read_bytes() for f in figures] == [PNG]
    assert f'src="09_tiny_files/{figures[0].name}"' in page
    assert page.count('class="math"') == 2 and "$a + b$" not in page  # drawn, \frac1T included
    assert "<code>$HOME</code>" in page  # a dollar in code is not math
    assert "<script src" not in page and not re.search(r'(?:src|href)="https?://(?!colab|mybinder)', page)
    references = (out / "references.html").read_text()
    assert "Visualizing Uncertainty" in references and "no" not in references.split("</nav>")[1].split("Seo")[0]
    assert result["pages"] == 3
    # a smoke build says so on every page; a lab build does not
    for name in ("index.html", "09_tiny.html", "references.html"):
        text = (out / name).read_text()
        assert text.count('class="medxai-smoke"') == 1 and "numbers mean nothing" in text, name
    assert build_site.banner("lab") == "" and build_site.banner("full") == ""


def test_repository_link_comes_from_pyproject():
    assert build_site.repository_url() == colab_setup.repository_url() == HOME


_REMOTE = re.compile(r"https://(?:github\.com|colab\.research\.google\.com|mybinder\.org)/")


def _remote_links(site: Path) -> dict[str, list[str]]:
    """Every href of the site's pages that points to GitHub, Colab or Binder, per page."""
    links = {}
    for page in sorted(site.glob("*.html")):
        hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', page.read_text(encoding="utf-8"))]
        links[page.name] = [h for h in hrefs if _REMOTE.match(h)]
    return links


def _names(link: str) -> str | None:
    """The OWNER/NAME a GitHub, Colab or Binder link opens."""
    found = re.match(
        r"https://(?:github\.com|colab\.research\.google\.com/github|mybinder\.org/v2/gh)/([^/?#]+/[^/?#]+)", link)
    return found.group(1) if found else None


def test_every_colab_binder_and_repository_link_comes_from_pyproject(tmp_path, readme):
    for name in ("09_tiny", "10_other"):
        _executed(tmp_path / "executed", name)
    build_site.build(tmp_path / "executed", tmp_path / "site", build_site.repository_url(), readme=readme)
    links = _remote_links(tmp_path / "site")
    for page, count in (("index.html", 2 * 2 + 1), ("09_tiny.html", 2), ("10_other.html", 2)):
        # Colab and Binder per notebook; the index's Repository
        assert len(links[page]) == count, f"{page}: {links[page]}"
    wrong = [(page, link) for page, found in links.items() for link in found if _names(link) != HOME_NAME]
    assert not wrong, f"links that do not open pyproject.toml's Repository ({HOME}): {wrong}"
    assert f'<a href="{HOME}">Repository</a>' in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")

    # another repository (--repository, or a fork's pyproject) moves every one of them
    build_site.build(tmp_path / "executed", tmp_path / "fork", "https://github.com/someone/medxai-fork", readme=readme)
    names = {_names(link) for found in _remote_links(tmp_path / "fork").values() for link in found}
    assert names == {"someone/medxai-fork"}


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d: _executed(d, run=False), ["09_tiny.ipynb", "no code cell has been executed", "make tutorials"]),
        (lambda d: _executed(d, error=True), ["09_tiny.ipynb", "code cell 1 failed", "ValueError: bad value"]),
        (lambda d: (_executed(d), _executed(d, "10_other", profile="lab")), ["different profiles", "lab: 10_other"]),
        (lambda d: _executed(d, profile=None), ["09_tiny.ipynb", "cannot tell which profile", "--profile"]),
        (lambda d: None, ["no executed notebooks", "make tutorials"]),
    ],
    ids=["not-executed", "failed-cell", "mixed-profiles", "unknown-profile", "empty-folder"],
)
def test_build_refuses_what_cannot_make_a_site(tmp_path, readme, make, words):
    (tmp_path / "executed").mkdir()
    make(tmp_path / "executed")
    with pytest.raises(build_site.SiteError) as caught:
        build_site.build(tmp_path / "executed", tmp_path / "site", REPOSITORY, readme=readme)
    for word in words:
        assert word in str(caught.value)


def test_build_refuses_a_profile_other_than_asked_and_a_repository_off_github(tmp_path, readme):
    _executed(tmp_path / "executed")
    with pytest.raises(build_site.SiteError, match="ran in the smoke profile, not lab"):
        build_site.build(tmp_path / "executed", tmp_path / "site", REPOSITORY, profile="lab", readme=readme)
    with pytest.raises(build_site.SiteError, match="github.com/OWNER/NAME"):
        build_site.colab_url("https://gitlab.com/medxai/medxai", "09_tiny")


def test_stale_reasons_say_missing_older_and_other_profile(tmp_path):
    sources, built = tmp_path / "tutorials", tmp_path / "build"
    for name in ("09_tiny", "10_more", "11_old"):
        _executed(sources, name, run=False)
    _executed(built, "09_tiny", profile="lab")
    _executed(built, "10_more", profile="smoke")
    old = _executed(built, "11_old", profile="lab")
    os.utime(old, (0, 0))
    assert build_site.stale_reasons(built, "lab", sources) == [
        f"{built / '10_more.ipynb'} ran in the smoke profile, not lab",
        f"{built / '11_old.ipynb'} is older than tutorials/11_old",
    ]
    (built / "10_more.ipynb").unlink()
    assert build_site.stale_reasons(built, "lab", sources)[0] == f"{built / '10_more.ipynb'} is missing"
    os.utime(sources / "11_old.ipynb", (0, 0))
    os.utime(old, None)
    _executed(built, "10_more", profile="lab")
    assert build_site.stale_reasons(built, "lab", sources) == []


def test_build_site_command_prints_pages_and_size(tmp_path, capsys):
    _executed(tmp_path / "executed")
    assert build_site.main(["--executed", str(tmp_path / "executed"), "--out", str(tmp_path / "site")]) == 0
    size = sum(f.stat().st_size for f in (tmp_path / "site").rglob("*") if f.is_file())
    assert f"3 pages (1 notebooks, index, references), {size / 1e6:.1f} MB" in capsys.readouterr().out
    assert build_site.main(["--executed", str(tmp_path / "nothing")]) == 2  # a message, not a traceback
    refused = capsys.readouterr().err
    assert refused.startswith("build_site: ") and "no executed notebooks" in refused


def test_binder_environment_has_the_pins_of_requirements_and_postbuild_installs_the_package():
    def pins(lines):
        return {ln.split("==")[0].strip().lower(): ln.split("==")[1].strip() for ln in lines if "==" in ln}

    requirements = [ln.split("#")[0] for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    (pip,) = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pins(pip) == pins(requirements)
    # only pins: no `-e .` or local path, which repo2docker cannot install before the repository is copied in
    not_pins = [entry for entry in pip if not re.fullmatch(r"[A-Za-z0-9_.\-]+(?:\[[\w,.-]+\])?==[\w.+!-]+", entry)]
    assert not_pins == [], f"environment.yml's pip list holds {not_pins}; the package is installed by postBuild"

    # Binder runs postBuild after environment.yml, in the checked-out repository: it installs the package from there
    post_build = ROOT / "postBuild"
    assert post_build.is_file(), "postBuild is missing at the repository's root: Binder would not install the package"
    assert os.stat(post_build).st_mode & 0o111, "postBuild must be executable (git mode 100755)"
    lines = post_build.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    installs = [ln for ln in lines if re.match(r"^(?:python -m )?pip install\b.*\s(?:-e )?\.$", ln.strip())]
    assert len(installs) == 1 and "--no-deps" in installs[0], f"postBuild must pip-install the package (.): {lines}"
    tracked = subprocess.run(["git", "ls-files", "--stage", "postBuild"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:  # once committed, git must keep it executable
        assert tracked.stdout.startswith("100755"), f"postBuild is committed as {tracked.stdout.split()[0]}, not 100755"


# ---------------------------------------------------------------------------------------------
# The Colab lines: first in every notebook's Setup cell, and idle where the package is installed
# ---------------------------------------------------------------------------------------------

SOURCES = series.notebooks(ROOT / "tutorials", ".py")


def _first_code_cell(path: Path) -> str:
    cells = re.split(r"^# %%.*$", path.read_text(encoding="utf-8"), flags=re.M)
    headers = re.findall(r"^# %%.*$", path.read_text(encoding="utf-8"), flags=re.M)
    code = [body for header, body in zip(headers, cells[1:]) if "[markdown]" not in header]
    return code[0].lstrip("\n")


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_every_notebook_fits_one_session_by_its_plan_and_its_page_says_so(source, tmp_path):
    verdict = build_site.session_verdict(source.stem)
    if verdict is None:
        pytest.skip("TIMINGS.md has no lab build, so no session plans: `make tutorials`, then regenerate it")
    assert verdict.startswith("fits one 90-minute session"), f"{source.stem}: {verdict}"
    entry = build_site.Entry(source.stem, "T", "t", 60.0, "lab")
    assert f"Lab session: {verdict}" in build_site._session(entry, REPOSITORY, "main")
    timings = tmp_path / "TIMINGS.md"
    timings.write_text(f"{source.stem}: **over** one 90-minute session by 3 min: teach it in two.\n")
    assert build_site.session_verdict(source.stem, timings) == "over one 90-minute session by 3 min: teach it in two"


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_setup_cell_installs_from_the_repository_of_pyproject(source):
    installs = re.findall(r'"pip", "install", "--quiet", "([^"]*)"', _first_code_cell(source))
    assert installs == [f"{PROJECT['name']} @ git+{HOME}"], (
        f"{source.name}: the Setup cell installs {installs}, but pyproject.toml's Repository is {HOME}: run "
        f"`python tools/colab_setup.py --set-repository {HOME}`, then `make sync`.")


@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_setup_cell_starts_with_the_colab_lines(source):
    first = _first_code_cell(source)
    assert first.startswith(colab_setup.LINES), (
        f"{source.name}: the Setup cell must start with the lines of tools/colab_setup.py "
        f"(`python tools/colab_setup.py` prints them); it starts with:\n{first[:300]}")


def test_colab_insert_puts_the_lines_first_in_the_first_code_cell_once():
    text = "# %% [markdown]\n# # 09 · Tiny\n\n# %% tags=[\"x\"]\nimport time\n\n# %%\nprint(1)\n"
    once = colab_setup.insert(text)
    assert once == text.replace('tags=[\"x\"]\n', 'tags=[\"x\"]\n' + colab_setup.LINES + "\n")
    assert colab_setup.insert(once) == once
    with pytest.raises(ValueError, match="tiny.py: no code cell"):
        colab_setup.insert("# %% [markdown]\n# text\n", "tiny.py")


def test_colab_lines_install_only_where_the_package_is_absent(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda command: calls.append(command))
    exec(colab_setup.LINES, {})  # here helpers is installed: nothing happens
    assert calls == []
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # as on Colab
    exec(colab_setup.LINES, {})
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", f"{PROJECT['name']} @ git+{HOME}"]]


def _tiny_repository(root: Path) -> Path:
    """pyproject.toml (the real one) and two tiny notebook sources with the Colab lines, in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text(encoding="utf-8"), encoding="utf-8")
    (root / "tutorials").mkdir()
    for name in ("01_first", "02_second"):
        (root / "tutorials" / f"{name}.py").write_text(
            f"# %% [markdown]\n# # {name}\n\n# %%\n{colab_setup.LINES}\nimport numpy as np\n", encoding="utf-8")
    (root / "tutorials" / "notes.py").write_text(f"# %%\n{colab_setup.LINES}")  # not a notebook: left alone
    return root


def test_set_repository_rewrites_pyproject_and_every_setup_cell(tmp_path, capsys):
    root = _tiny_repository(tmp_path / "fork")
    before = {p: p.read_text() for p in sorted(root.rglob("*.*"))}
    assert colab_setup.main(["--set-repository", "https://github.com/someone/medxai-fork.git", "--root",
                             str(root)]) == 0
    out = capsys.readouterr().out
    assert "make sync" in out and "someone/medxai-fork" in out
    fork = "https://github.com/someone/medxai-fork"
    assert colab_setup.repository_url(root / "pyproject.toml") == fork
    pyproject = root / "pyproject.toml"
    assert pyproject.read_text() == before[pyproject].replace(f'Repository = "{HOME}"', f'Repository = "{fork}"')
    for name in ("01_first", "02_second"):
        path = root / "tutorials" / f"{name}.py"
        assert path.read_text() == before[path].replace(f"git+{HOME}", f"git+{fork}"), path.read_text()
        assert f"git+{HOME}\"" not in path.read_text()
    assert (root / "tutorials" / "notes.py").read_text() == before[root / "tutorials" / "notes.py"]
    assert colab_setup.set_repository(fork, root) == []  # a second run changes nothing


def test_set_repository_refuses_a_url_off_github_and_a_setup_cell_it_cannot_rewrite(tmp_path, capsys):
    root = _tiny_repository(tmp_path / "fork")
    before = {p: p.read_text() for p in sorted(root.rglob("*.*"))}
    assert colab_setup.main(["--set-repository", "https://gitlab.com/someone/medxai", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("colab_setup: ") and "gitlab.com/someone/medxai" in err
    assert "Colab and Binder open notebooks from GitHub" in err and "https://github.com/OWNER/NAME" in err
    second = root / "tutorials" / "02_second.py"
    second.write_text(second.read_text().replace("--quiet", "--quiet\", \"--user"))  # edited by hand
    before[second] = second.read_text()
    with pytest.raises(colab_setup.RepositoryError,
                       match=r"02_second.py: its Setup cell does not start with the Colab"):
        colab_setup.set_repository("https://github.com/someone/medxai-fork", root)
    assert {p: p.read_text() for p in sorted(root.rglob("*.*"))} == before  # checked everything, wrote nothing


# ---------------------------------------------------------------------------------------------
# The executed notebooks the site is built from: no warning a learner would read as a bug
# ---------------------------------------------------------------------------------------------

# Kinds of output that say "something is broken" to a learner, though the cause is known and fixable: a model
# loaded only to predict (compile=False, or models.load_model), a dataset that runs dry (repeat it, or give
# steps that fit), shuffle passed with a tf.data dataset, library deprecations, Keras progress bars.
KNOWN_WARNINGS = {
    "optimizer variables skipped on load": r"Skipping variable loading for optimizer",
    "input ran out of data": r"Your input ran out of data",
    "shuffle ignored for a dataset": r"shuffle.{0,120}ignored",
    "FutureWarning": r"\bFutureWarning\b",
    "DeprecationWarning": r"\bDeprecationWarning\b",
    "absl warning": r"WARNING:absl",
    "NumPy RuntimeWarning": r"RuntimeWarning: (invalid value|divide by zero|overflow) encountered",
    "Keras progress bar": r"\u2501{8,}|\d+/\d+ \[=+",
}


def known_warnings(notebook) -> list[str]:
    """``cell N: kind: text`` for every output of an executed notebook that shows a known kind of warning."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = output.get("text", "") if output.get("output_type") == "stream" else \
                "\n".join(str(v) for k, v in output.get("data", {}).items() if k == "text/plain")
            text = "".join(text) if isinstance(text, list) else text
            for kind, pattern in KNOWN_WARNINGS.items():
                hit = re.search(pattern, text)
                if hit:
                    line = text[text.rfind("\n", 0, hit.start()) + 1:].split("\n", 1)[0]
                    found.append(f"cell {index}: {kind}: {line.strip()[:160]}")
    return found


def test_the_warning_scan_finds_each_known_kind():
    outputs = [new_output("stream", name="stderr", text="UserWarning: Skipping variable loading for optimizer 'adam'"),
               new_output("stream", name="stdout",
                          text="ok\n3/3 \u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501\u2501 0s"),
               new_output("stream", name="stderr",
                          text="UserWarning: Your input ran out of data; interrupting training."),
               new_output("execute_result", data={"text/plain": "FutureWarning: the default will change"},
                          execution_count=1)]
    notebook = new_notebook(cells=[new_code_cell("x = 1", outputs=outputs), new_code_cell("print('fine')", outputs=[
        new_output("stream", name="stdout", text="AUC 0.81 (a DataWarning of our own is a message, not a bug)")])])
    kinds = [line.split(": ")[1] for line in known_warnings(notebook)]
    assert kinds == ["optimizer variables skipped on load", "Keras progress bar", "input ran out of data",
                     "FutureWarning"]


def test_executed_notebooks_show_no_warning_of_a_known_kind():
    executed = series.notebooks(_site_dir().parent)
    if not executed:
        skip_or_fail(f"no executed notebooks beside {_site_dir()}: `make test` writes them to build/smoke")
    found = [f"{path.name} {line}" for path in executed for line in known_warnings(nbformat.read(path, as_version=4))]
    assert not found, ("warnings a learner reads as bugs, in the executed notebooks (fix the cause):\n"
                       + "\n".join(found))


# ---------------------------------------------------------------------------------------------
# The built site in headless Chromium
# ---------------------------------------------------------------------------------------------


def _site_dir() -> Path:
    if os.environ.get("MEDXAI_SITE_DIR"):
        return Path(os.environ["MEDXAI_SITE_DIR"])
    built = [ROOT / "build" / "site", ROOT / "build" / "smoke" / "site"]
    return next((d for d in built if (d / "index.html").exists()), built[0])


@pytest.fixture(scope="module")
def site():
    folder = _site_dir()
    if not (folder / "index.html").exists():
        skip_or_fail(f"no built site in {folder}: `make site` builds it (lab), `make test` builds build/smoke/site")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


_PAGE_STATE = r"""
const rel = (el, attr) => el.getAttribute(attr);
return {
  title: document.title,
  tex: (document.body.innerText.match(/\$[^$\n]*\\[a-zA-Z]+[^$\n]*\$/g) || []).slice(0, 3),
  images: Array.from(document.images).map(i => [rel(i, 'src').slice(0, 60), i.complete, i.naturalWidth]),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => rel(a, 'href')),
  resources: Array.from(document.querySelectorAll('img[src], script[src], link[href], iframe[src], source[src]'))
      .map(e => rel(e, e.hasAttribute('src') ? 'src' : 'href')),
};
"""


def _relative(url: str) -> bool:
    return not re.match(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", url, re.I)


def test_every_page_loads_offline_with_links_figures_and_no_console_error(site, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    folder, base = site
    pages = sorted(p.name for p in folder.glob("*.html"))
    notebooks = [p for p in pages if re.match(r"\d\d[a-z]?_", p)]
    assert "index.html" in pages and "references.html" in pages and notebooks, f"{folder} holds {pages}"
    problems, fetched = [], set()
    browser.get_log("browser")  # start from an empty console
    for page in pages:
        url = urllib.parse.urljoin(base, page)
        browser.get(url)
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
        state = browser.execute_script(_PAGE_STATE)
        if not state["title"].strip():
            problems.append(f"{page}: no <title>")
        problems += [f"{page}: formula left as TeX source: {tex}" for tex in state["tex"]]
        problems += [f"{page}: image {src!r}... does not decode (naturalWidth 0)"
                     for src, complete, width in state["images"] if width == 0]
        problems += [f"{page}: loads {src} from another host (the site must work offline)"
                     for src in state["resources"] if not src.startswith("data:") and not _relative(src)]
        for href in [h for h in state["links"] + state["resources"] if _relative(h)]:
            target = urllib.parse.urljoin(url, href).split("#")[0]
            if target in fetched:
                continue
            fetched.add(target)
            try:
                with urllib.request.urlopen(target, timeout=10) as answer:
                    answer.read(1)
            except urllib.error.URLError as err:
                problems.append(f"{page}: broken link {href} ({err})")
        problems += [f"{page}: console {entry['level']}: {entry['message'][:300]}"
                     for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        plan = f"tutorials/TIMINGS.md#plan-{page[:-len('.html')]}"
        if page in notebooks and build_site.session_verdict(page[:-len(".html")]) is not None and \
                not any(h.endswith(plan) for h in state["links"]):
            problems.append(f"{page}: no link to its session plan ({plan})")
        if page == "index.html":
            missing = [n for n in notebooks if n not in state["links"]]
            colab = [h for h in state["links"] if h.startswith("https://colab.research.google.com/github/")]
            binder = [h for h in state["links"] if h.startswith("https://mybinder.org/v2/gh/")]
            if missing or len(colab) != len(notebooks) or len(binder) != len(notebooks):
                problems.append(f"index.html: pages not linked {missing}; {len(colab)} Colab and {len(binder)} "
                                f"Binder links for {len(notebooks)} notebooks")
    assert not problems, f"{len(problems)} problem(s) in the site at {folder}:\n" + "\n".join(problems)
