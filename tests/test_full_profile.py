"""The `full` profile's code path, executed: every notebook in MEDXAI_PROFILE=full against a real-layout folder.

What `full` runs on a GPU machine with the real data, CI runs here with the same code and small sizes:
`MEDXAI_DATA_DIR` holds `nih/`, `drive/` and `dsb2018/` in the real layouts (the smoke profile's synthetic files, with
the official split lists the real release has; `nih/` a partial copy, one healthy image in five absent), and papermill overrides the sizes of the notebook's
parameters cell (every `cfg.pick(...)` whose smoke value is a number, None or a flag) with their smoke
values. Text settings are modes, not sizes, and keep their full values: the official split, the disk
cache, the full loss. So the branches taken are full's: the real-data reader, the official split, the disk
cache, no synthetic-only asserts; only the ImageNet download is switched off, as CI has no network.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import jupytext
import papermill
import pytest

from helpers import config, datasets, synthetic

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))


def smoke_parameters(notebook: Path) -> dict:
    """The smoke= value of every `name = cfg.pick(smoke=..., ...)` in the parameters cell that is a size or a flag (not text)."""
    cells = [c for c in jupytext.read(notebook.with_suffix(".py")).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{notebook.name}: exactly one parameters cell"
    values = {}
    for node in ast.parse(cells[0].source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call, target = node.value, node.targets[0]
        if isinstance(call.func, ast.Attribute) and call.func.attr == "pick" and isinstance(target, ast.Name):
            smoke = next(k.value for k in call.keywords if k.arg == "smoke")
            try:
                value = ast.literal_eval(smoke)
            except ValueError:
                pytest.fail(f"{notebook.name}: {target.id}'s smoke value is not a literal; the full-path test cannot override it")
            if isinstance(value, tuple):
                value = list(value)  # papermill writes a tuple as its text: "(1,)"; a list comes through as a list
            if not isinstance(value, str):
                values[target.id] = value
    return values


@pytest.fixture(scope="module")
def full_environment(tmp_path_factory):
    """MEDXAI_* for a full run: a real-layout data folder and a cache of its own (models pass from 02 to 04-06)."""
    smoke = config.load({"MEDXAI_PROFILE": "smoke", "MEDXAI_CACHE_DIR": os.environ.get("MEDXAI_CACHE_DIR", "")})
    data = tmp_path_factory.mktemp("medxai_data")
    for name in ("drive", "dsb2018"):
        (data / name).symlink_to(synthetic.ensure(smoke, name), target_is_directory=True)
    # nih/ is a partial copy, as most users have: one "No Finding" image in five is absent (the notebooks
    # leave those rows out and count them; the tiny smoke set keeps every finding's patients)
    source = synthetic.ensure(smoke, "nih")
    (data / "nih" / "images").mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file():
            (data / "nih" / path.name).symlink_to(path)
    entries = datasets.read_nih(source).entries
    healthy = entries.image_index[entries[list(datasets.LABELS)].sum(axis=1) == 0]
    absent = set(healthy.iloc[::5])
    for image in entries.image_index:
        if image not in absent:
            (data / "nih" / "images" / image).symlink_to(source / "images" / image)
    saved = {k: os.environ.get(k) for k in ("MEDXAI_PROFILE", "MEDXAI_DATA_DIR", "MEDXAI_CACHE_DIR")}
    os.environ.update(MEDXAI_PROFILE="full", MEDXAI_DATA_DIR=str(data), MEDXAI_CACHE_DIR=str(tmp_path_factory.mktemp("medxai_cache")))
    yield data
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_smoke_values_are_read_from_the_parameters_cell():
    values = smoke_parameters(TUTORIALS / "01_preprocessing_and_splits.ipynb")
    assert values["image_size"] == 64 and values["leak_max_images"] is None and "cache" not in values
    # a tuple reaches the notebook as a list: papermill would write a tuple as the text "(1,)"
    assert smoke_parameters(TUTORIALS / "02_densenet_transfer.ipynb")["freeze_depths"] == [1]


# `make test` runs notebook 01's full path (half a minute); the others take one to three minutes each on a
# 2-core machine and run with `make test-full` (pytest -m full_path)
IN_MAKE_TEST = ("01_preprocessing_and_splits",)
FULL_PATH = [pytest.param(p, id=p.stem, marks=() if p.stem in IN_MAKE_TEST else pytest.mark.full_path) for p in NOTEBOOKS]


@pytest.mark.parametrize("notebook", FULL_PATH)
def test_notebook_runs_in_full_profile(notebook, full_environment, tmp_path):
    papermill.execute_notebook(
        str(notebook), str(tmp_path / notebook.name), parameters=smoke_parameters(notebook),
        cwd=str(TUTORIALS), kernel_name="python3", progress_bar=False,
    )
    # how long it took is reported by pytest's --durations, never asserted: speed belongs in benchmarks/


@pytest.fixture()
def no_box_environment(full_environment, tmp_path):
    """The same real-layout folder, but its box file holds only its header: a copy without boxes (models from the full runs above)."""
    data = tmp_path / "medxai_data"
    (data / "nih").mkdir(parents=True)
    for entry in full_environment.iterdir():
        if entry.name != "nih":
            (data / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    for path in (full_environment / "nih").iterdir():
        if path.name != datasets.BBOX_FILE:
            (data / "nih" / path.name).symlink_to(path)
    (data / "nih" / datasets.BBOX_FILE).write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
    saved = os.environ["MEDXAI_DATA_DIR"]
    os.environ["MEDXAI_DATA_DIR"] = str(data)
    yield data
    os.environ["MEDXAI_DATA_DIR"] = saved


@pytest.mark.full_path
@pytest.mark.parametrize("stem", ["06_boxes_iobb", "07_report"])
def test_boxes_and_report_run_on_a_copy_without_boxes(stem, no_box_environment, tmp_path):
    notebook = TUTORIALS / f"{stem}.ipynb"
    executed = tmp_path / notebook.name
    if stem == "07_report":  # what 06 saved from the copy with boxes goes: the report's fallback is what is tested
        from helpers import models, report
        report.side_file(config.load().models_dir / models.CLASSIFIER_FILE, report.BOX_SIZES_SUFFIX).unlink(missing_ok=True)
    papermill.execute_notebook(str(notebook), str(executed), parameters=smoke_parameters(notebook),
                               cwd=str(TUTORIALS), kernel_name="python3", progress_bar=False)
    text = executed.read_text()
    if stem == "06_boxes_iobb":
        assert "too few to judge" in text and "no size prior is saved beside the classifier" in text
    else:
        assert "box sizes: none saved by notebook 06" in text
