"""The lines that open every notebook's Setup cell, so "Open in Colab" from the course site just runs.

On Colab (or any Python where the series' package is absent) they pip-install it from the repository; where
it is installed (`make install`, Binder's environment.yml, the tests) ``find_spec`` finds it and they do
nothing. ``tests/test_site.py`` checks that every ``tutorials/NN_name.py`` starts its first code cell with
exactly these lines.

Usage: ``python tools/colab_setup.py`` prints them; ``python tools/colab_setup.py tutorials/NN_name.py ...`` puts
them at the top of each file's first code cell (once; then `make sync` pairs the .ipynb).
"""

import re
import sys
from pathlib import Path

PACKAGE = "medxai-helpers @ git+https://github.com/medxai/medxai"

LINES = f'''import importlib.util
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:  # only where the series' package is absent, e.g. on Colab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "{PACKAGE}"])
    importlib.invalidate_caches()
'''


def insert(text: str, name: str = "notebook") -> str:
    """``text`` (a jupytext percent-format notebook) with LINES at the top of its first code cell, once."""
    header = re.search(r"^# %%(?! \[markdown\]).*\n", text, re.M)
    if header is None:
        raise ValueError(f"{name}: no code cell ('# %%' line) to put the Colab lines in.")
    if text[header.end():].startswith(LINES):
        return text
    return text[: header.end()] + LINES + "\n" + text[header.end():]


if __name__ == "__main__":
    if len(sys.argv) == 1:
        print(LINES, end="")
    for path in map(Path, sys.argv[1:]):
        before = path.read_text(encoding="utf-8")
        after = insert(before, str(path))
        path.write_text(after, encoding="utf-8")
        print(f"{path}: {'Colab lines added' if after != before else 'already there'}")
