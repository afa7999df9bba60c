"""The lines that open every notebook's Setup cell, so "Open in Colab" from the course site just runs.

On Colab (or any Python where the series' package is absent) they pip-install it from the repository; where
it is installed (`make install`, Binder's postBuild, the tests) ``find_spec`` finds it and they do nothing.
``tests/test_site.py`` checks that every ``tutorials/NN_name.py`` starts its first code cell with exactly these
lines.

The repository is one setting: ``[project.urls] Repository`` in pyproject.toml. The install line, the course
site's Colab and Binder links and its Repository link (tools/build_site.py) are all built from it.

Usage:
  python tools/colab_setup.py                       print the lines
  python tools/colab_setup.py tutorials/NN_name.py  put them at the top of each file's first code cell (once)
  python tools/colab_setup.py --set-repository https://github.com/OWNER/NAME
                                                    write the repository into pyproject.toml and into the
                                                    install line of every tutorials/NN_name.py
After either of the last two, `make sync` pairs the .ipynb files.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_SOURCES = "tutorials/[0-9][0-9]*_*.py"  # series.GLOB + ".py" under tutorials/
SET_REPOSITORY = "python tools/colab_setup.py --set-repository https://github.com/OWNER/NAME"


class RepositoryError(ValueError):
    """pyproject.toml has no usable Repository, or a repository URL is not a GitHub one."""


def _project(pyproject: Path) -> dict:
    try:
        return tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise RepositoryError(f"{pyproject}: no [project] table to read ({type(err).__name__}: {err}); "
                              "the repository's pyproject.toml is needed.") from None


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The repository's home from pyproject.toml's [project.urls] Repository."""
    try:
        return _project(pyproject)["urls"]["Repository"]
    except (KeyError, TypeError) as err:
        raise RepositoryError(f"{pyproject}: no [project.urls] Repository ({type(err).__name__}: {err}); "
                              f"set it with `{SET_REPOSITORY}`.") from None


def github_name(repository: str) -> str:
    """``OWNER/NAME`` of a https://github.com/OWNER/NAME URL; anything else is refused, saying why."""
    found = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", repository.strip())
    if not found:
        raise RepositoryError(f"repository {repository!r}: Colab and Binder open notebooks from GitHub, so the URL "
                              "must look like https://github.com/OWNER/NAME.")
    return f"{found.group(1)}/{found.group(2)}"


def package_spec(repository: str | None = None, pyproject: Path = ROOT / "pyproject.toml") -> str:
    """What the Setup cell pip-installs: the project's distribution from ``repository`` (default: pyproject's)."""
    repository = repository_url(pyproject) if repository is None else repository
    name = _project(pyproject).get("name", "medxai-helpers")
    return f"{name} @ git+https://github.com/{github_name(repository)}"


def setup_lines(package: str) -> str:
    """The Colab lines that install ``package`` where the series' package is absent."""
    return f'''import importlib.util
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:  # only where the series' package is absent, e.g. on Colab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "{package}"])
    importlib.invalidate_caches()
'''


def __getattr__(name: str) -> str:
    """PACKAGE and LINES, read from pyproject.toml when asked for (so a bad pyproject fails with its message)."""
    if name == "PACKAGE":
        return package_spec()
    if name == "LINES":
        return setup_lines(package_spec())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_CODE_HEADER = re.compile(r"^# %%(?! \[markdown\]).*\n", re.M)  # a jupytext code cell's first line
_INSTALL_LINE = re.compile(r'^(\s*subprocess\.check_call\(\[sys\.executable, "-m", "pip", "install", "--quiet", )'
                           r'"[^"\n]*"(\]\))', re.M)


def with_package(text: str, package: str) -> str:
    """``text`` (a notebook source or a cell) with the Colab lines' install line naming ``package``."""
    return _INSTALL_LINE.sub(lambda m: f'{m.group(1)}"{package}"{m.group(2)}', text)


def insert(text: str, name: str = "notebook", lines: str | None = None) -> str:
    """``text`` (a jupytext percent-format notebook) with ``lines`` (default LINES) at the top of its first code cell,
    once."""
    lines = setup_lines(package_spec()) if lines is None else lines
    header = _CODE_HEADER.search(text)
    if header is None:
        raise ValueError(f"{name}: no code cell ('# %%' line) to put the Colab lines in.")
    if text[header.end():].startswith(lines):
        return text
    return text[: header.end()] + lines + "\n" + text[header.end():]


def set_repository(url: str, root: Path = ROOT) -> list[Path]:
    """Write ``url`` into ``root``/pyproject.toml's Repository and every notebook source's install line.

    Checks everything before writing anything; returns the files it changed.
    """
    name = github_name(url)
    url = f"https://github.com/{name}"
    pyproject = Path(root) / "pyproject.toml"
    repository_url(pyproject)  # a readable pyproject with a Repository to replace
    text = pyproject.read_text(encoding="utf-8")
    section = re.search(r"^\[project\.urls\][^\n]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    found = re.findall(r'^Repository\s*=\s*"[^"\n]*"', section.group(1), re.M) if section else []
    if len(found) != 1:
        raise RepositoryError(f"{pyproject}: expected one line `Repository = \"...\"` under [project.urls], found "
                              f"{len(found)}; edit it by hand to `Repository = \"{url}\"`.")
    body = re.sub(r'^(Repository\s*=\s*)"[^"\n]*"', lambda m: f'{m.group(1)}"{url}"', section.group(1), flags=re.M)
    new = {pyproject: text[: section.start(1)] + body + text[section.end(1):]}
    lines = setup_lines(package_spec(url, pyproject))
    template = Path(root) / "tutorials" / "_template.py"  # CONTRIBUTING.md's starting point for a new notebook
    for source in sorted(Path(root).glob(NOTEBOOK_SOURCES)) + ([template] if template.is_file() else []):
        before = source.read_text(encoding="utf-8")
        after = with_package(before, package_spec(url, pyproject))
        if not _INSTALL_LINE.search(before) and 'find_spec("helpers")' not in before:
            after = insert(before, str(source), lines)  # no Colab lines yet: put them in
        header = _CODE_HEADER.search(after)
        if header is None or not after[header.end():].startswith(lines):
            raise RepositoryError(f"{source}: its Setup cell does not start with the Colab lines of "
                                  "tools/colab_setup.py, so its install line was not rewritten; put them back (`python "
                                  f"tools/colab_setup.py {source}` adds them) and run this again.")
        new[source] = after
    changed = []
    for path, after in new.items():
        if path.read_text(encoding="utf-8") != after:
            path.write_text(after, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="tutorials/NN_name.py files to put the lines in")
    parser.add_argument("--set-repository", metavar="URL",
                        help="https://github.com/OWNER/NAME: write it into pyproject.toml and every Setup cell")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.set_repository:
            if args.files:
                parser.error("--set-repository rewrites every tutorials/NN_name.py; name no files with it")
            changed = set_repository(args.set_repository, args.root)
            for path in changed:
                print(f"{path}: now {github_name(args.set_repository)}")
            print(f"repository set to https://github.com/{github_name(args.set_repository)} "
                  f"({len(changed)} file(s) changed); now run `make sync` to pair the .ipynb files, "
                  "then commit and push.")
            return 0
        if not args.files:
            print(setup_lines(package_spec(pyproject=args.root / "pyproject.toml")), end="")
        for path in args.files:
            before = path.read_text(encoding="utf-8")
            after = insert(before, str(path))
            path.write_text(after, encoding="utf-8")
            print(f"{path}: {'Colab lines added' if after != before else 'already there'}")
    except ValueError as err:  # RepositoryError included
        print(f"colab_setup: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
