"""Render the course site from executed notebooks: an index, one page per notebook, the references.

Usage:
  python tools/build_site.py --executed build --out build/site [--profile lab] [--repository URL]
  python tools/build_site.py --check-current build --profile lab   (exit 0 when build/ can be reused)

The executed notebooks come from `make tutorials` (papermill) or from `make test` (nbval with
`--save-executed`, see tutorials/conftest.py); both keep each cell's time in
``cell.metadata.papermill.duration``. Pages work offline: no script from a CDN, the LaTeX of the markdown
cells drawn at build time by matplotlib's mathtext, figures written beside each page as PNG files.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import html
import io
import re
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat

from helpers.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import colab_setup  # noqa: E402  (the repository setting, shared with the Setup cell's install line)
import series  # noqa: E402
from series import number as notebook_number  # noqa: E402  (02, 02b: the number a notebook goes by)

TUTORIALS = ROOT / "tutorials"
PROFILES = ("smoke", "lab", "full")
SITE_TITLE = "medxai: trustworthy medical imaging with Keras"
NO_FAVICON = '<link rel="icon" href="data:,">'  # no /favicon.ico request, so no 404 in the browser console

# The notebook pages: nbconvert's lab template without its CDN scripts (require.js, MathJax, mermaid, widgets).
PAGE_TEMPLATE = ("""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}""" + NO_FAVICON + """
<style>
nav.medxai { font-family: system-ui, sans-serif; font-size: 14px; padding: 8px 16px; border-bottom: 1px solid #ddd; }
nav.medxai a { margin-right: 1.2em; }
nav.medxai.steps { border-bottom: none; }
details.medxai.toc { font-family: system-ui, sans-serif; font-size: 14px; padding: 4px 16px 8px; """
                 """border-bottom: 1px solid #ddd; }
details.medxai.toc ol { margin: 4px 0; columns: 2; }
img.math { vertical-align: middle; }
</style>
{%- endblock extra_css -%}
{%- block body_header -%}
{{ super() }}
{{ resources.medxai_nav }}
{%- endblock body_header -%}
""")

SIMPLE_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
{favicon}
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; }}
td.time {{ white-space: nowrap; text-align: right; }}
nav a {{ margin-right: 1.2em; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


class SiteError(DataError):
    """The executed notebooks cannot make a site as they are (missing, not executed, failed, mixed profiles)."""


@dataclass
class Entry:
    """One notebook of the site: its file name, title, what it teaches, and its measured run time."""

    name: str  # e.g. 06_boxes_iobb (no suffix)
    title: str
    teaches: str  # the first paragraph of the first markdown cell (markdown)
    seconds: float | None  # sum of the code cells' durations; None when no cell has one
    profile: str


# ---------------------------------------------------------------------------------------------
# Links
# ---------------------------------------------------------------------------------------------


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository's home from pyproject.toml's [project.urls] Repository (read by tools/colab_setup.py)."""
    try:
        return colab_setup.repository_url(pyproject)
    except colab_setup.RepositoryError as err:
        raise SiteError(f"{err} Or pass --repository https://github.com/OWNER/NAME.") from None


def _github(repository: str) -> str:
    try:
        return colab_setup.github_name(repository)
    except colab_setup.RepositoryError as err:
        raise SiteError(str(err)) from None


def colab_url(repository: str, notebook: str, branch: str = "main") -> str:
    """Open tutorials/<notebook>.ipynb of the repository in Google Colab."""
    return f"https://colab.research.google.com/github/{_github(repository)}/blob/{branch}/tutorials/{notebook}.ipynb"


def binder_url(repository: str, notebook: str, branch: str = "main") -> str:
    """Launch tutorials/<notebook>.ipynb of the repository on mybinder.org (built from environment.yml)."""
    path = urllib.parse.quote(f"tutorials/{notebook}.ipynb", safe="")
    return f"https://mybinder.org/v2/gh/{_github(repository)}/{branch}?labpath={path}"


# ---------------------------------------------------------------------------------------------
# Reading executed notebooks
# ---------------------------------------------------------------------------------------------

_PRINTED_PROFILE = re.compile(r"\bprofile=(smoke|lab|full)\b")


def notebook_profile(nb, name: str) -> str | None:
    """The profile a notebook ran in: recorded by --save-executed, else the `profile=...` its settings cell prints."""
    recorded = nb.metadata.get("medxai", {}).get("profile")
    if recorded:
        return recorded
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            found = _PRINTED_PROFILE.search(output.get("text", "") if output.get("output_type") == "stream" else "")
            if found:
                return found.group(1)
    return None


def run_seconds(nb) -> float | None:
    """Sum of the code cells' ``metadata.papermill.duration`` (papermill's field, also written by --save-executed).

    Code cells only: papermill also times markdown cells (a few ms each), nbval does not, and the two builds
    should give the same number for the same run.
    """
    durations = [c.metadata.get("papermill", {}).get("duration") for c in nb.cells if c.cell_type == "code"]
    durations = [d for d in durations if isinstance(d, (int, float))]
    return float(sum(durations)) if durations else None


def describe(nb, name: str) -> tuple[str, str]:
    """Title and first paragraph of the notebook's first markdown cell."""
    first = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if first is None or not first.source.lstrip().startswith("# "):
        raise SiteError(f"{name}.ipynb: the first markdown cell must start with a '# ' title; found "
                        f"{(first.source[:60] if first else 'no markdown cell')!r}.")
    heading, _, rest = first.source.lstrip()[2:].partition("\n")
    title = re.sub(r"^\d+\s*·\s*", "", heading.strip())
    paragraph = next((p.strip() for p in re.split(r"\n\s*\n", rest) if p.strip()), "")
    return title, " ".join(paragraph.split())


def check_executed(nb, name: str) -> None:
    """Refuse a notebook that was not executed, or where a cell failed."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and all(c.get("execution_count") is None for c in code):
        raise SiteError(f"{name}.ipynb: no code cell has been executed; the site shows executed notebooks. "
                        "Run `make tutorials` (or `make site`, which runs them when needed).")
    for number, cell in enumerate(code, 1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise SiteError(f"{name}.ipynb: code cell {number} failed ({output.get('ename')}: "
                                f"{output.get('evalue')}); fix the notebook and run it again before building the site.")


def read_executed(folder: Path, profile: str | None = None) -> list[tuple[Entry, object]]:
    """Every executed NN_name.ipynb in ``folder``, checked, with its index entry; all from one profile."""
    paths = series.notebooks(folder)
    if not paths:
        raise SiteError(f"{folder}: no executed notebooks (NN_name.ipynb). Run `make tutorials` (lab profile) "
                        "or the nbval step of `make test` with --save-executed first.")
    read, profiles = [], {}
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as err:  # nbformat raises several kinds for a truncated or non-JSON file
            raise SiteError(f"{path}: not a readable notebook ({type(err).__name__}: {err}).") from None
        name = path.stem
        check_executed(nb, name)
        ran_in = notebook_profile(nb, name) or profile
        if ran_in is None:
            raise SiteError(f"{path}: cannot tell which profile it ran in (no metadata.medxai.profile, no printed "
                            "'profile=...'); pass --profile.")
        if profile is not None and ran_in != profile:
            raise SiteError(f"{path}: ran in the {ran_in} profile, not {profile}; rebuild it in {profile} "
                            f"(`make tutorials PROFILE={profile}`) or pass --profile {ran_in}.")
        profiles.setdefault(ran_in, []).append(name)
        title, teaches = describe(nb, name)
        read.append((Entry(name, title, teaches, run_seconds(nb), ran_in), nb))
    if len(profiles) > 1:
        mixed = "; ".join(f"{p}: {', '.join(n)}" for p, n in profiles.items())
        raise SiteError(f"{folder}: the notebooks ran in different profiles ({mixed}); rebuild them in one.")
    return read


def stale_reasons(folder: Path, profile: str, sources: Path = TUTORIALS) -> list[str]:
    """Why ``folder`` cannot be reused for a ``profile`` site: missing, older than its source, other profile."""
    reasons = []
    for source in series.notebooks(sources):
        built = Path(folder) / source.name
        newest = max(p.stat().st_mtime for p in (source, source.with_suffix(".py")) if p.exists())
        if not built.exists():
            reasons.append(f"{built} is missing")
        elif built.stat().st_mtime <= newest:
            reasons.append(f"{built} is older than tutorials/{source.stem}")
        else:
            try:
                nb = nbformat.read(built, as_version=4)
                check_executed(nb, source.stem)
            except Exception as err:
                reasons.append(str(err))
                continue
            ran_in = notebook_profile(nb, source.stem)
            if ran_in != profile:
                reasons.append(f"{built} ran in the {ran_in} profile, not {profile}")
    return reasons


# ---------------------------------------------------------------------------------------------
# LaTeX in markdown, drawn at build time
# ---------------------------------------------------------------------------------------------

_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.S)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE = re.compile(r"(?<![\\$\w])\$(?=\S)([^$\n]+?)(?<=[^\s\\])\$(?![\w$])")


def _mathtext_dialect(tex: str) -> str:
    """Rewrite the TeX that MathJax takes but mathtext does not: \\frac1T, \\sqrt T, \\big( ... \\big)."""
    tex = re.sub(r"\\[bB]ig+[lr]?\s*([()\[\]|.])", r"\1", tex)
    tex = re.sub(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])", r"\\frac{\1}{\2}", tex)
    tex = re.sub(r"\\sqrt\s+([0-9A-Za-z])", r"\\sqrt{\1}", tex)
    return tex


def math_image(tex: str, display: bool = False) -> str:
    """An <img> with the formula drawn by matplotlib's mathtext as SVG (no MathJax, no network)."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    depth = mathtext.math_to_image(f"${_mathtext_dialect(tex)}$", buffer, format="svg",
                                   prop=FontProperties(size=13 if display else 11))
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    alt = html.escape(tex, quote=True)
    style = "display:block;margin:0.6em auto" if display else f"vertical-align:-{depth:.1f}pt"
    return f'<img class="math" alt="{alt}" style="{style}" src="data:image/svg+xml;base64,{data}">'


def render_math(markdown: str, where: str, problems: list[str]) -> str:
    """Replace $...$ and $$...$$ outside code with drawn formulas; a formula mathtext cannot draw stays as code."""

    def draw(match: re.Match, display: bool) -> str:
        tex = match.group(1).strip()
        try:
            return math_image(tex, display)
        except Exception as err:  # mathtext raises ValueError with a pyparsing trace; keep the first line
            problems.append(f"{where}: ${tex}$ is shown as TeX source (mathtext: {str(err).splitlines()[0]})")
            return f"<code>{html.escape(tex)}</code>"

    parts = _CODE.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        parts[i] = _DISPLAY.sub(lambda m: draw(m, True), parts[i])
        parts[i] = _INLINE.sub(lambda m: draw(m, False), parts[i])
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------------


def _links(entry: Entry, repository: str, branch: str) -> str:
    return (f'<a href="{html.escape(colab_url(repository, entry.name, branch))}">Open in Colab</a> '
            f'<a href="{html.escape(binder_url(repository, entry.name, branch))}">Launch Binder</a>')


def session_verdict(name: str, timings: Path = TUTORIALS / "TIMINGS.md") -> str | None:
    """What TIMINGS.md's lab session plan says of a notebook ("fits one 90-minute session (...)"); None without one."""
    try:
        text = timings.read_text(encoding="utf-8")
    except OSError:
        return None
    found = re.search(rf"^{re.escape(name)}: (.+)\.$", text, re.M)
    return found.group(1).replace("**", "") if found else None


def _session(entry: Entry, repository: str, branch: str) -> str:
    verdict = session_verdict(entry.name)
    if verdict is None:
        return ""
    plan = f"https://github.com/{_github(repository)}/blob/{branch}/tutorials/TIMINGS.md#plan-{entry.name}"
    return f' <span class="session">Lab session: {html.escape(verdict)} (<a href="{html.escape(plan)}">plan</a>)</span>'


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "not measured"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _markdown_html(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


def _shared_css(page: str, least: int = 2000) -> tuple[str, tuple[str, str] | None]:
    """Move the page's large inline <style> blocks (nbconvert's JupyterLab theme, the same on every page) to one
    file."""
    import hashlib

    blocks = [m for m in re.finditer(r"<style[^>]*>(.*?)</style>", page, re.S) if len(m.group(1)) >= least]
    if not blocks:
        return page, None
    text = "\n".join(m.group(1) for m in blocks)
    name = f"notebook-{hashlib.sha256(text.encode()).hexdigest()[:10]}.css"
    for i, m in enumerate(reversed(blocks)):
        link = f'<link rel="stylesheet" href="{name}">' if i == len(blocks) - 1 else ""
        page = page[: m.start()] + link + page[m.end():]
    return page, (name, text)


SMOKE_BANNER = ('<div class="medxai-smoke" role="note" style="background:#fff3cd;border:1px solid #d6a100;'
                'padding:6px 10px;margin:0 0 1em 0">A <b>smoke</b> build: every notebook ran at the tiny sizes of the '
                'test suite (a few dozen images, one epoch), so its models are sketches and its numbers mean nothing. '
                'The course site is the lab build (<code>make site</code>).</div>')


def banner(profile: str) -> str:
    """The smoke build's warning, on every page of a smoke-profile site; nothing for the lab and full sites."""
    return SMOKE_BANNER if profile == "smoke" else ""


def slug(heading: str) -> str:
    """The anchor of a "## " heading on its page: lower case, words joined by '-' ("## 6. Referral" -> "6-referral")."""
    words = re.findall(r"[a-z0-9]+", heading.lower())
    return "-".join(words) or "section"


def sections(nb) -> list[tuple[str, str]]:
    """(heading, anchor) of every "## " heading of a notebook's markdown cells, in order; anchors made unique."""
    found, seen = [], {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if line.startswith("## "):
                heading = line[3:].strip()
                base = slug(heading)
                seen[base] = seen.get(base, 0) + 1
                found.append((heading, base if seen[base] == 1 else f"{base}-{seen[base]}"))
    return found


def _anchored(nb, found: list[tuple[str, str]]) -> None:
    """Put an <a id> before each "## " heading of ``nb`` (in place), for the table of contents and outside links."""
    anchors = iter(found)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = []
        for line in cell.source.splitlines():
            if line.startswith("## "):
                lines += [f'<a id="{next(anchors)[1]}"></a>', ""]
            lines.append(line)
        cell.source = "\n".join(lines)


def _page_nav(entry: Entry, previous: Entry | None, following: Entry | None, found: list[tuple[str, str]]) -> str:
    """Previous / next notebook and the page's table of contents."""
    steps = []
    if previous is not None:
        steps.append(f'<a rel="prev" href="{previous.name}.html">&larr; {html.escape(notebook_number(previous.name))} '
                     f'{html.escape(previous.title)}</a>')
    if following is not None:
        steps.append(f'<a rel="next" href="{following.name}.html">{html.escape(notebook_number(following.name))} '
                     f'{html.escape(following.title)} &rarr;</a>')
    toc = "".join(f'<li><a href="#{anchor}">{html.escape(heading)}</a></li>' for heading, anchor in found)
    return (f'<nav class="medxai steps">{"".join(steps)}</nav>'
            f'<details class="medxai toc" open><summary>Contents</summary><ol>{toc}</ol></details>')


def notebook_page(entry: Entry, nb, out: Path, repository: str, branch: str, problems: list[str],
                  previous: Entry | None = None, following: Entry | None = None) -> list[Path]:
    """Write out/<name>.html and its figures under out/<name>_files/; return the files written."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExtractOutputPreprocessor

    nb = copy.deepcopy(nb)
    nb.metadata["title"] = f"{notebook_number(entry.name)} · {entry.title}"
    found = sections(nb)
    _anchored(nb, found)
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source, f"{entry.name}.ipynb cell {number}", problems)
    exporter = HTMLExporter(
        template_name="lab", extra_loaders=[jinja2.DictLoader({"medxai_page.html.j2": PAGE_TEMPLATE})],
        template_file="medxai_page.html.j2", exclude_anchor_links=True,
    )
    exporter.register_preprocessor(ExtractOutputPreprocessor(), enabled=True)
    # The lab template runs every code cell's highlighted source through bleach (its other sanitising follows the
    # notebook's trust). These are the series' own notebooks, and Pygments writes only spans with classes: the pass
    # changed nothing and took a third of the build.
    exporter.register_filter("clean_html", lambda text: text.decode() if isinstance(text, bytes) else str(text))
    nav = (f'{banner(entry.profile)}<nav class="medxai"><a href="index.html">Course index</a>'
           f'<a href="references.html">References</a>'
           f'{_links(entry, repository, branch)} <span>Run time in the {entry.profile} profile: '
           f'{_minutes(entry.seconds)}</span>{_session(entry, repository, branch)}</nav>'
           f'{_page_nav(entry, previous, following, found)}')
    resources = {"output_files_dir": f"{entry.name}_files", "medxai_nav": nav,
                 "metadata": {"name": entry.name}}
    body, resources = exporter.from_notebook_node(nb, resources=resources)
    body, css = _shared_css(body)
    written = [out / f"{entry.name}.html"]
    if css is not None:
        name, text = css
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    written[0].write_text(body, encoding="utf-8")
    for relative, data in resources.get("outputs", {}).items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written


def repository_link(repository: str, branch: str = "main") -> str:
    """The index's Repository link: the repository's home, or the branch the Colab/Binder links open."""
    return repository if branch == "main" else f"https://github.com/{_github(repository)}/tree/{branch}"


def index_page(entries: list[Entry], repository: str, branch: str) -> str:
    """The course index: one row per notebook with what it teaches, its run time and its links."""
    profile = entries[0].profile
    measured = [e.seconds for e in entries if e.seconds is not None]
    rows = []
    for e in entries:
        rows.append(
            f'<tr><td>{notebook_number(e.name)}</td><td><a href="{e.name}.html">{html.escape(e.title)}</a>'
            f"<br>{_markdown_html(e.teaches)}</td>"
            f'<td class="time">{_minutes(e.seconds)}</td><td>{_links(e, repository, branch)}</td></tr>'
        )
    total = f"; all of them together {_minutes(sum(measured))}" if measured else ""
    body = (
        f"{banner(profile)}<h1>{html.escape(SITE_TITLE)}</h1>\n"
        '<nav><a href="references.html">References</a>'
        f'<a href="{html.escape(repository_link(repository, branch))}">Repository</a></nav>\n'
        f"<p>Every notebook below was executed in the <b>{profile}</b> profile for this site; the run time is the "
        f"sum of its cells' times in that run{total}. Colab and Binder open the notebook without outputs, "
        "ready to run.</p>\n"
        '<table>\n<tr><th>#</th><th>notebook: what it teaches</th><th>run time</th><th>run it</th></tr>\n'
        + "\n".join(rows) + "\n</table>\n"
        f"<p><small>Built {dt.date.today().isoformat()} from the executed notebooks.</small></p>"
    )
    return SIMPLE_PAGE.format(title=html.escape(SITE_TITLE), favicon=NO_FAVICON, body=body)


def references_page(readme: Path = ROOT / "README.md", profile: str = "lab") -> str:
    """The README's References section as a page."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteError(f"{readme}: cannot read the README for the references page ({err}).") from None
    found = re.search(r"^## References\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not found:
        raise SiteError(f"{readme}: no '## References' section to put on the references page.")
    body = (banner(profile) + '<nav><a href="index.html">Course index</a></nav>\n<h1>References</h1>\n'
            + _markdown_html(found.group(1).strip()))
    return SIMPLE_PAGE.format(title="References · medxai", favicon=NO_FAVICON, body=body)


def build(executed: Path, out: Path, repository: str, branch: str = "main", profile: str | None = None,
          readme: Path = ROOT / "README.md", prepare: Callable[[str, object], object] | None = None) -> dict:
    """Build the site in ``out`` from the executed notebooks in ``executed``; return what was written.

    ``prepare(name, notebook)``, when given, returns the notebook to draw in place of each executed one, after
    its checks (tools/make_student.py passes one that replaces the worked answers by stubs).
    """
    read = read_executed(executed, profile)
    if prepare is not None:
        read = [(entry, prepare(entry.name, copy.deepcopy(nb))) for entry, nb in read]
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("*.html")) + list(out.glob("*.css")) + list(out.glob("*_files/*")):
        old.unlink()  # a notebook renamed or removed since the last build leaves no page behind
    problems: list[str] = []
    files = []
    entries = [entry for entry, _ in read]
    for k, (entry, nb) in enumerate(read):
        previous = entries[k - 1] if k > 0 else None
        following = entries[k + 1] if k + 1 < len(entries) else None
        files += notebook_page(entry, nb, out, repository, branch, problems, previous, following)
    (out / "index.html").write_text(index_page(entries, repository, branch), encoding="utf-8")
    (out / "references.html").write_text(references_page(readme, entries[0].profile), encoding="utf-8")
    files = list(dict.fromkeys(files)) + [out / "index.html", out / "references.html"]
    return {"entries": entries, "files": files, "bytes": sum(f.stat().st_size for f in files),
            "pages": sum(f.suffix == ".html" for f in files), "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executed", type=Path, help="folder of executed NN_name.ipynb (build, build/smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="the site's folder")
    parser.add_argument("--profile", choices=PROFILES, help="the profile the notebooks must have run in")
    parser.add_argument("--repository", help="GitHub URL for the Colab/Binder links (default: pyproject's)")
    parser.add_argument("--branch", default="main", help="branch the Colab/Binder links open (default: main)")
    parser.add_argument("--check-current", type=Path, metavar="DIR",
                        help="only check that DIR holds every notebook, newer than its source, run in --profile")
    args = parser.parse_args(argv)
    if args.check_current:
        reasons = stale_reasons(args.check_current, args.profile or "lab")
        for reason in reasons:
            print(f"site: {reason}")
        if reasons:
            print(f"site: the notebooks run first ({args.profile or 'lab'} profile)")
        if not reasons:
            print(f"site: reusing the executed notebooks in {args.check_current} ({args.profile or 'lab'} profile)")
        return 1 if reasons else 0
    if args.executed is None:
        parser.error("--executed DIR is needed (or --check-current DIR)")
    try:
        repository = args.repository or repository_url()
        _github(repository)
        result = build(args.executed, args.out, repository, args.branch, args.profile)
    except SiteError as err:
        print(f"build_site: {err}", file=sys.stderr)
        return 2
    for problem in result["problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    entries = result["entries"]
    print(f"site: {result['pages']} pages ({len(entries)} notebooks, index, references), "
          f"{result['bytes'] / 1e6:.1f} MB in {args.out} ({entries[0].profile} profile)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
