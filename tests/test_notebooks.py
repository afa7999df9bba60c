"""Every notebook: paired with its .py, no stored outputs, the house skeleton, a parameters cell."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
SOURCES = sorted(TUTORIALS.glob("[0-9][0-9]*_*.py"))
HEADINGS = ("Setup", "Configuration", "Summary", "Exercises")


def test_there_are_notebooks():
    assert SOURCES, "no tutorials/NN_name.py found"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_is_in_sync_and_has_no_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} is missing: run `make sync`"
    stored = nbformat.read(ipynb, as_version=4)
    with_outputs = [i for i, c in enumerate(stored.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert with_outputs == [], f"{ipynb.name} has stored outputs in cells {with_outputs}: run `make sync`"
    from_py = jupytext.read(source)
    pairs = list(zip(from_py.cells, stored.cells))
    assert len(from_py.cells) == len(stored.cells), (f"{source.name} and {ipynb.name} differ in cell count: "
                                                     "run `make sync`")
    for i, (a, b) in enumerate(pairs):
        assert (a.cell_type, a.source.strip()) == (b.cell_type, b.source.strip()), (
            f"cell {i} differs between {source.name} and {ipynb.name}: run `make sync`"
        )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_skeleton(source):
    nb = jupytext.read(source)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    headings = re.findall(r"^#+\s*(?:\d+\.?\s*)?(.+?)\s*$", markdown, flags=re.M)
    for heading in HEADINGS:
        assert any(h.startswith(heading) for h in headings), f"{source.name}: no '{heading}' heading"
    order = [next(i for i, h in enumerate(headings) if h.startswith(name)) for name in HEADINGS]
    assert order == sorted(order), f"{source.name}: headings out of order {HEADINGS}"

    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{source.name}: exactly one code cell must be tagged 'parameters'"
    assert "cfg.pick(" in tagged[0].source, f"{source.name}: the parameters cell should use cfg.pick(...)"

    imports = [i for i, c in enumerate(code) if re.search(r"^\s*(import|from)\s+\S+.*", c.source, flags=re.M)]
    assert imports == [0], (f"{source.name}: all imports belong in the Setup cell (found imports in code cells "
                            f"{imports})")
    assert "import *" not in source.read_text(), f"{source.name}: no star imports"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_variable_shadows_an_imported_helpers_module(source):
    """`fundus = report.FundusReporter(...)` after `from helpers import fundus` breaks every later
    `fundus.read_drive`."""
    import ast

    code = "\n".join(c.source for c in jupytext.read(source).cells if c.cell_type == "code")
    tree = ast.parse("\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))))
    modules = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "helpers" for alias in node.names}
    assigned = {target.id for node in ast.walk(tree)
                if isinstance(node, (ast.Assign, ast.For, ast.AugAssign, ast.AnnAssign))
                for target in ast.walk(node.targets[0] if isinstance(node, ast.Assign) else node.target)
                if isinstance(target, ast.Name)}
    assert not modules & assigned, (f"{source.name}: {sorted(modules & assigned)} is a helpers module the notebook "
                                    "imports and a variable")


TEMPLATE = TUTORIALS / "_template.py"


def test_template_passes_every_notebook_rule(tmp_path):
    """CONTRIBUTING.md's way to add a notebook starts from the template: it must pass the checks every notebook
    passes."""
    import sys

    sys.path.insert(0, str(TUTORIALS.parent / "tools"))
    import colab_setup

    test_skeleton(TEMPLATE)
    test_no_variable_shadows_an_imported_helpers_module(TEMPLATE)
    first_code = next(c.source for c in jupytext.read(TEMPLATE).cells if c.cell_type == "code")
    assert first_code.startswith(colab_setup.LINES.strip()), ("the template's Setup cell must open with "
                                                              "tools/colab_setup.py's lines")
    ipynb = tmp_path / "10_new.ipynb"
    jupytext.write(jupytext.read(TEMPLATE), ipynb)
    nbformat.validate(nbformat.read(ipynb, as_version=4))


@pytest.mark.parametrize("source", SOURCES + [TEMPLATE], ids=lambda p: p.stem)
def test_header_says_what_it_teaches_what_it_needs_and_where_its_session_plan_is(source):
    """The keras-io header: title, a one-sentence description, what it needs, how long (the plan in TIMINGS.md)."""
    header = next(c.source for c in jupytext.read(source).cells if c.cell_type == "markdown")
    lines = header.splitlines()
    assert re.fullmatch(r"# (\d\d[a-z]?|NN) · .+", lines[0]), f"{source.name}: the header starts with '# NN · Title'"
    for field in ("**Description:**", "**Needs:**", "**Session:**"):
        assert sum(line.startswith(field) for line in lines) == 1, f"{source.name}: the header needs one {field} line"
    description = next(line for line in lines if line.startswith("**Description:**"))
    assert description.count(". ") == 0, f"{source.name}: the description is one sentence"
    stem = "NN_name" if source == TEMPLATE else source.stem
    assert f"`Plan: {stem}`" in header, f"{source.name}: the Session line names its plan, section `Plan: {stem}`"


ROOT = TUTORIALS.parent
STEMS = {p.stem for p in SOURCES}
NUMBERS = {stem.split("_")[0] for stem in STEMS}
# Where the series names its notebooks: the notebooks, the package, the tools that build the site and the kit, the
# upload page, and the documents a reader or an instructor opens.
REFERRING = sorted({*SOURCES, *ROOT.glob("helpers/**/*.py"), *ROOT.glob("tools/*.py"), *ROOT.glob("app/**/*.py"),
                    ROOT / "README.md", ROOT / "CONTRIBUTING.md", TUTORIALS / "README.md", TUTORIALS / "INSTRUCTORS.md",
                    TUTORIALS / "_template.py"})
NAME = re.compile(r"(?<![\w.])(\d\d[a-z]?_[a-z][a-z0-9_]*[a-z0-9])\b(?!\.(?:tif|gif|png|jpg))")  # not DRIVE's files
NUMBERED = re.compile(r"\b[Nn]otebooks? ((?:\d\d[a-z]?(?:, | and | to | or |-|/))*\d\d[a-z]?)\b")


def _references(text: str) -> tuple[set[str], set[str]]:
    """The notebook names (NN_name, NNb_name) and the numbers after "notebook(s)" in ``text``."""
    names = set(NAME.findall(text))
    numbers = {n for found in NUMBERED.findall(text) for n in re.findall(r"\d\d[a-z]?", found)}
    return names, numbers


def test_references_to_notebooks_name_notebooks_that_exist():
    """A renumbered or split notebook leaves no "notebook NN" or NN_name behind that points nowhere."""
    bad = []
    for path in REFERRING:
        names, numbers = _references(path.read_text(encoding="utf-8"))
        bad += [f"{path.relative_to(ROOT)}: {n}" for n in sorted(names - STEMS)]
        bad += [f"{path.relative_to(ROOT)}: notebook {n}" for n in sorted(numbers - NUMBERS)]
    assert not bad, "references to notebooks that do not exist:\n" + "\n".join(bad)


def test_the_reference_check_sees_a_wrong_reference():
    names, numbers = _references("see 02_densenet_transfer and 02_densenet, notebooks 04 to 07 and 11, notebook 02b; "
                                  "DRIVE's 21_training.tif")
    assert names - STEMS == {"02_densenet"} and numbers - NUMBERS == {"11"}
