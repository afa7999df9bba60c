"""The lines that open every notebook's Setup cell, so "Open in Colab" from the course site just runs.

On Colab (or any Python where the series' package is absent) they pip-install it from the repository; where
it is installed (`make install`, Binder's environment.yml, the tests) ``find_spec`` finds it and they do
nothing. ``tests/test_site.py`` checks that every ``tutorials/NN_name.py`` starts its first code cell with
exactly these lines. Print them with ``python tools/colab_setup.py`` to paste into a new notebook.
"""

PACKAGE = "medxai-helpers @ git+https://github.com/medxai/medxai"

LINES = f'''import importlib.util
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:  # only where the series' package is absent, e.g. on Colab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "{PACKAGE}"])
    importlib.invalidate_caches()
'''

if __name__ == "__main__":
    print(LINES, end="")
