"""Write the students' kit: the notebooks, a copy of the repository and a course site, all without worked answers.

    python tools/make_student.py [--out student] [--executed build] [--branch student] [--repository URL]
                                 [tutorials/NN_name.py ...]

An answer cell holds the worked answer between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION``
(nbgrader's markers: its ``generate_assignment`` clears the same blocks). Here each block is replaced, at the
marker's indentation, by ``raise NotImplementedError("<the cell's '# Exercise ...' line>")``; the exercise's
check then fails with NotYet and says what to write. Every other cell is kept as it is. It writes, under --out:

- ``notebooks/NN_name.ipynb`` (no outputs) and ``notebooks/NN_name.py``: the students' notebooks;
- ``handout/``: the repository's tracked files (``git ls-files``) with those notebooks in ``tutorials/``, without
  tutorials/INSTRUCTORS.md (the model answers), without any other file holding a solution marker, and with every
  link to INSTRUCTORS.md turned into plain text. Push it to the branch --branch (or to a class repository, with
  --repository): the student site's Colab and Binder links open it there;
- ``site/``: the course site (tools/build_site.py) drawn from the executed notebooks in --executed (`make tutorials`
  writes them to build/), every answer replaced by its stub and the outputs of its cell removed. Without executed
  notebooks it says so and skips the site; it never runs a notebook itself.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))
import colab_setup  # noqa: E402
import series  # noqa: E402

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_EXERCISE_LINE = re.compile(r"^#\s*(Exercise\b.*?)\s*$", re.M)
NOTEBOOK = re.compile(rf"^tutorials/({series.NAME.pattern})\.(py|ipynb)$")  # a tracked notebook source or its pair
INSTRUCTOR_ONLY = {"tutorials/INSTRUCTORS.md": "the instructor's notes and model answers"}
MARKER_WORDS = (b"BEGIN SOLUTION", b"END SOLUTION")  # the markers' words, also where a file only mentions them
_INSTRUCTORS_LINK = re.compile(r"\[([^\]\n]*)\]\(([^)\s]*INSTRUCTORS\.md[^)\s]*)\)"  # [text](...INSTRUCTORS.md)
                               r"|<a\s[^>]*href=\"[^\"]*INSTRUCTORS\.md[^\"]*\"[^>]*>(.*?)</a>", re.S)


class MarkerError(ValueError):
    """Solution markers that do not pair up (a BEGIN without its END, an END first, a BEGIN inside a block)."""


class KitError(RuntimeError):
    """The kit cannot be written as asked (not a git checkout, an output folder that would hold the repository)."""


def solution_blocks(source: str, where: str = "cell") -> list[tuple[int, int]]:
    """(first, last) line numbers (0-based, markers included) of each solution block of a cell's source."""
    blocks, start = [], None
    for number, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise MarkerError(f"{where}, line {number + 1}: {BEGIN} inside the block opened on line {start + 1}; "
                                  "close it first.")
            start = number
        elif marker == END:
            if start is None:
                raise MarkerError(f"{where}, line {number + 1}: {END} without a {BEGIN} before it.")
            blocks.append((start, number))
            start = None
    if start is not None:
        raise MarkerError(f"{where}, line {start + 1}: {BEGIN} without its {END}.")
    return blocks


def stub_message(source: str) -> str:
    """What the stub says: the cell's first '# Exercise ...' comment, or a plain request."""
    found = _EXERCISE_LINE.search(source)
    return found.group(1) if found else "Exercise: write your answer here"


def strip_solutions(source: str, where: str = "cell") -> str:
    """The cell's source with every solution block replaced by a NotImplementedError stub at the marker's
    indentation."""
    blocks = solution_blocks(source, where)
    if not blocks:
        return source
    lines = source.splitlines()
    message = stub_message(source)
    out, position = [], 0
    for first, last in blocks:
        out.extend(lines[position:first])
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        out.append(f"{indent}raise NotImplementedError({message!r})")
        position = last + 1
    out.extend(lines[position:])
    return "\n".join(out)


def strip_notebook(notebook, where: str, package: str | None = None, all_outputs: bool = True):
    """``notebook`` with every answer stubbed and its cell's outputs removed (every cell's, with ``all_outputs``).

    ``package``, when given, is what the Setup cell's Colab lines install (a class repository's).
    """
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        stripped = strip_solutions(cell.source, f"{where}, cell {index}")
        if package is not None:
            stripped = colab_setup.with_package(stripped, package)
        if all_outputs or stripped != cell.source:
            cell.outputs, cell.execution_count = [], None
        cell.source = stripped
    return notebook


def student_notebook(source: Path, package: str | None = None) -> nbformat.NotebookNode:
    """The notebook of ``source`` (a tutorials/NN_name.py) with its solutions stripped and no outputs."""
    return strip_notebook(jupytext.read(source), source.name, package)


def write_notebook(notebook, folder: Path, stem: str) -> list[Path]:
    """``folder``/stem.ipynb and its jupytext pair stem.py."""
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.validate(notebook)
    nbformat.write(notebook, folder / f"{stem}.ipynb")
    jupytext.write(notebook, folder / f"{stem}.py", fmt="py:percent")
    return [folder / f"{stem}.ipynb", folder / f"{stem}.py"]


def without_instructors_links(text: str) -> str:
    """``text`` with every Markdown or HTML link to INSTRUCTORS.md made plain text (the students' copy lacks it)."""
    return _INSTRUCTORS_LINK.sub(lambda m: f"{m.group(1) if m.group(1) is not None else m.group(3)} "
                                 "(in the instructor's copy)", text)


def tracked_files(root: Path) -> list[str]:
    """The repository's tracked files (``git ls-files``), relative to ``root``."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True)
    except FileNotFoundError:
        raise KitError("git is not installed: the handout copies the repository's tracked files (`git ls-files`); "
                       "install git, or run `make student` in a clone of the repository.") from None
    except subprocess.CalledProcessError as err:
        raise KitError(f"{root} is not a git checkout ({err.stderr.decode(errors='replace').strip()}): the handout "
                       "copies the repository's tracked files (`git ls-files`); run `make student` "
                       "in a clone.") from None
    return [name for name in listed.stdout.decode("utf-8").split("\0") if name]


def write_handout(root: Path, out: Path, package: str | None = None, repository: str | None = None,
                  notebooks: dict | None = None) -> dict:
    """Copy ``root``'s tracked files to ``out`` for the students; return what was copied and what was left out.

    ``notebooks`` maps a stem (NN_name) to its student notebook, when already made; the others are made here.
    """
    notebooks = dict(notebooks or {})
    if out.exists():
        shutil.rmtree(out)  # a file deleted from the repository since the last kit leaves no copy behind
    copied, left_out = [], []
    for name in tracked_files(root):
        source, target = root / name, out / name
        if not source.is_file():
            continue  # deleted in the work tree, not yet committed
        if name in INSTRUCTOR_ONLY:
            left_out.append(f"{name} ({INSTRUCTOR_ONLY[name]})")
            continue
        notebook = NOTEBOOK.match(name)
        data = b"" if notebook else source.read_bytes()
        if any(word in data for word in MARKER_WORDS):
            left_out.append(f"{name} (holds solution markers)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if notebook:
            pair, stem = source.with_suffix(".py"), notebook.group(1)
            if stem not in notebooks:
                notebooks[stem] = (student_notebook(pair, package) if pair.exists()
                                   else strip_notebook(nbformat.read(source, as_version=4), source.name, package))
            student = notebooks[stem]
            if notebook.group(2) == "ipynb":
                nbformat.validate(student)
                nbformat.write(student, target)
            else:
                jupytext.write(student, target, fmt="py:percent")
            shutil.copymode(source, target)
            copied.append(name)
            continue
        shutil.copy2(source, target)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and without_instructors_links(text) != text:
            target.write_text(without_instructors_links(text), encoding="utf-8")
        copied.append(name)
    if repository is not None and repository != colab_setup.repository_url(root / "pyproject.toml"):
        colab_setup.set_repository(repository, out)  # the class repository's pyproject; the notebooks already name it
    return {"copied": copied, "left_out": left_out}


def write_site(executed: Path, out: Path, repository: str, branch: str, package: str | None = None) -> dict | None:
    """The course site from the executed notebooks, every answer stubbed; None when there are none to draw."""
    import build_site

    if not series.notebooks(executed):
        return None

    def prepare(name, notebook):
        return strip_notebook(notebook, f"{name}.ipynb", package, all_outputs=False)

    return build_site.build(executed, out, repository, branch, prepare=prepare)


def leaks(folder: Path) -> list[str]:
    """Files of the kit that hold a solution marker, are INSTRUCTORS.md, or link to it."""
    found = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "INSTRUCTORS.md":
            found.append(f"{path}: the instructor's notes")
        elif any(word in data for word in MARKER_WORDS):
            found.append(f"{path}: holds a solution marker")
        elif _INSTRUCTORS_LINK.search(data.decode("utf-8", errors="replace")):
            found.append(f"{path}: links to INSTRUCTORS.md")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="folder for the kit (default: student/)")
    parser.add_argument("--executed", type=Path, default=ROOT / "build",
                        help="executed notebooks for the student site (default: build/, from `make tutorials`)")
    parser.add_argument("--branch", default="student",
                        help="branch the student site's Colab/Binder links open, where the handout is pushed "
                             "(default: student)")
    parser.add_argument("--repository",
                        help="GitHub URL of the repository the handout is pushed to (default: pyproject's)")
    parser.add_argument("sources", nargs="*", type=Path,
                        help="tutorials/NN_name.py files for notebooks/ (default: all; the handout always has all)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if out == ROOT or out in ROOT.parents:
        print(f"make_student: --out {args.out} would hold the repository itself; choose a folder of its own "
              "(default: student/).", file=sys.stderr)
        return 2
    try:
        repository = f"https://github.com/{colab_setup.github_name(args.repository or colab_setup.repository_url())}"
        package = colab_setup.package_spec(repository) if args.repository else None
        sources = args.sources or series.notebooks(ROOT / "tutorials", ".py")
        total, made = 0, {}
        for source in sources:
            notebook = made[source.stem] = student_notebook(source, package)
            blocks = sum(len(solution_blocks(c.source)) for c in jupytext.read(source).cells if c.cell_type == "code")
            total += blocks
            write_notebook(notebook, out / "notebooks", source.stem)
            print(f"{source.stem}: {blocks} answer(s) stubbed")
        print(f"student copies of {len(sources)} notebook(s), {total} answer(s) stubbed, "
              f"written to {out / 'notebooks'}/")
        handout = write_handout(ROOT, out / "handout", package, repository,
                                {s.stem: made[s.stem] for s in sources if s.resolve() == ROOT / "tutorials" / s.name})
        print(f"handout: {len(handout['copied'])} tracked files in {out / 'handout'}/, left out: "
              f"{'; '.join(handout['left_out']) or 'nothing'}")
        site = write_site(args.executed, out / "site", repository, args.branch, package)
    except (MarkerError, KitError, ValueError) as err:
        print(f"make_student: {err}", file=sys.stderr)
        return 1
    if site is None:
        shutil.rmtree(out / "site", ignore_errors=True)  # an older site would not match these notebooks
        print(f"site: no executed notebooks in {args.executed}, so no student site; `make tutorials` runs them "
              "(then `make student` again)")
    else:
        print(f"site: {site['pages']} pages without answers in {out / 'site'}/, their Colab and Binder links on "
              f"{colab_setup.github_name(repository)}, branch {args.branch}")
    found = leaks(out)
    for problem in found:
        print(f"make_student: {problem}", file=sys.stderr)
    if found:
        return 1
    print(f"push {out / 'handout'} to the branch {args.branch} of {repository} (tutorials/INSTRUCTORS.md, "
          "\"How the exercises work\", says how)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
