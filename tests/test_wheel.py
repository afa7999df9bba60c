"""The wheel is the package: built from the repository, installed non-editable into an empty folder, it carries its
data.

Colab's Setup line installs the package from git, non-editable: everything `helpers` reads at run time (the
published tables, the dataset manifests, the site's label template, the real NIH metadata) must be inside the
wheel. The check imports `helpers` from the installed folder only (not from this checkout) and uses that data.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

USE = textwrap.dedent('''
    import os, sys
    target, checkout = sys.argv[1], os.path.realpath(sys.argv[3])
    # the test environment installs this checkout editable: import from the wheel's folder only
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path = [target] + [p for p in sys.path if p and os.path.realpath(p) != checkout]
    import helpers
    assert helpers.__file__.startswith(target), helpers.__file__
    from helpers import boxes, datasets, manifests, metrics, site, synthetic
    print("auroc rows", len(metrics.published_auroc()))
    print("drive rows", len(metrics.published_drive()[0]))
    print("iobb rows", len(boxes.published_iobb()))
    print("manifests", sorted(p.name for p in manifests.MANIFEST_DIR.iterdir()))
    print("template", site.TEMPLATE.is_file())
    print("nih rows", len(datasets.read_nih(datasets.NIH_METADATA_DIR, images="none").entries))
    root = synthetic.write_nih(sys.argv[2], patients=3, image_size=32, seed=1)
    print("synthetic images", len(datasets.read_nih(root).entries))
    package = os.path.dirname(helpers.__file__)
    print("modules", ",".join(sorted(os.path.relpath(os.path.join(d, f), package).replace(os.sep, "/")
                                     for d, _, fs in os.walk(package) for f in fs if f.endswith(".py"))))
''')


def test_the_installed_wheel_carries_its_data(tmp_path):
    dist, target = tmp_path / "dist", tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w",
                    str(dist), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("medxai_helpers-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)],
                   check=True, cwd=tmp_path)
    done = subprocess.run([sys.executable, "-c", USE, str(target), str(tmp_path / "nih"), str(ROOT)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in done.stdout.splitlines()
             if not line.startswith(("manifests", "modules"))}
    assert int(lines["auroc rows"]) > 0 and int(lines["drive rows"]) > 0 and int(lines["iobb rows"]) > 0
    assert lines["template"] == "True" and int(lines["nih rows"]) == 112_120 and int(lines["synthetic images"]) >= 3
    manifests = next(line for line in done.stdout.splitlines() if line.startswith("manifests"))
    for name in ("nih.json", "drive.json", "dsb2018.json", "site.md", "site_labels.csv", "published_auroc.json"):
        assert name in manifests, (name, manifests)
    modules = next(line for line in done.stdout.splitlines() if line.startswith("modules ")).split(" ", 1)[1].split(",")
    checkout = sorted(str(p.relative_to(ROOT / "helpers")).replace("\\", "/") for p in (ROOT / "helpers").rglob("*.py"))
    assert modules == checkout, ("modules of the checkout missing from the wheel: "
                                 f"{sorted(set(checkout) - set(modules))}")
