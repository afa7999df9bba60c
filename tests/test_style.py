"""House style the linter checks: no line of the package, the tools, the page, the benchmarks or the tests over
pyproject's line length (ruff's E501). The notebooks keep theirs until they are split into one-session notebooks."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("helpers", "tools", "app", "benchmarks", "tests")


def test_no_line_is_longer_than_the_linter_allows():
    pytest.importorskip("ruff", reason="ruff is in requirements.txt: run `make install` again")
    limit = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["line-length"]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "E501", "--output-format", "concise",
                           *CHECKED], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, f"lines over {limit} characters (wrap them):\n{done.stdout[-3000:]}"
    assert limit <= 120
