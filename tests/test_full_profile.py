"""The `full` profile's code path, executed: every notebook in MEDXAI_PROFILE=full against a real-layout folder.

What `full` runs on a GPU machine with the real data, CI runs here with the same code and small sizes:
`MEDXAI_DATA_DIR` holds `nih/`, `drive/` and `dsb2018/` in the real layouts (the smoke profile's synthetic files, with
the official split lists the real release has; `nih/` a partial copy, one healthy image in five absent), and papermill
overrides the sizes of the notebook's parameters cell (every `cfg.pick(...)` whose smoke value is a number, None or a
flag) with their smoke values. Text settings are modes, not sizes, and keep their full values: the official split, the
disk cache, the full loss. So the branches taken are full's: the real-data reader, the official split, the disk
cache, no synthetic-only asserts; only the ImageNet download is switched off, as CI has no network.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
from pathlib import Path

import jupytext
import papermill
import pytest

from helpers import config, datasets, synthetic
from helpers.synthetic import cells as synthetic_cells

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]*_*.ipynb"))


def smoke_parameters(notebook: Path) -> dict:
    """The smoke= value of every `name = cfg.pick(smoke=..., ...)` in the parameters cell that is a size or a flag (not
    text)."""
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
                pytest.fail(f"{notebook.name}: {target.id}'s smoke value is not a literal; the full-path test cannot "
                            "override it")
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
    for name in ("drive", "site"):  # site: DICOM files in study folders and labels.csv, as a PACS export
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
    os.environ.update(MEDXAI_PROFILE="full", MEDXAI_DATA_DIR=str(data),
                      MEDXAI_CACHE_DIR=str(tmp_path_factory.mktemp("medxai_cache")))
    yield data
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def write_microscopy(data: Path) -> None:
    """dsb2018/ as real microscopy is: the three kinds of image, three at 1,400 pixels, pairs of one acquisition
    (notebook 08 only)."""
    if (data / "dsb2018").exists():
        return
    synthetic_cells.write_nuclei(data / "dsb2018", images=40, image_size=128, seed=5, large=3, large_size=1400,
                                 kinds=("fluorescence", "brightfield", "histology"))
    ids = sorted(p.name for p in (data / "dsb2018" / synthetic_cells.TRAIN_FOLDER).iterdir())
    (data / "dsb2018" / "groups.csv").write_text("image_id,group\n"
                                                 + "".join(f"{i},experiment-{k // 2}\n" for k, i in enumerate(ids)))


def test_smoke_values_are_read_from_the_parameters_cell():
    values = smoke_parameters(TUTORIALS / "01_preprocessing_and_splits.ipynb")
    assert values["image_size"] == 64 and values["leak_max_images"] is None and "cache" not in values
    # a tuple reaches the notebook as a list: papermill would write a tuple as the text "(1,)"
    assert smoke_parameters(TUTORIALS / "02b_transfer_and_imbalance.ipynb")["freeze_depths"] == [1]


# What each run proves, and where it runs. nbval (`make test`) runs every notebook top to bottom in smoke, on the
# synthetic sets in the cache, with every assert. What the `full` profile adds is the same notebook code on a
# folder in the real layouts: the reader on a partial copy (absent images left out and counted), NIH's official
# split lists and the tf.data disk cache. Those branches sit in notebook 01 and in the helpers every later notebook
# calls (datasets.read_nih, splits.classifier_split, preprocessing.image_dataset). The unit tests prove each of
# those branches on its own (tests/test_datasets.py, test_classifier.py, test_preprocessing.py) in a fraction of
# a notebook's run, so every full path here, 01's too, and the copies without boxes, demographics or patients
# with several images run with `make test-full` (pytest -m full_path), not in `make test`.
MEMORY_GOAL_MIB = 4096  # notebook 08's peak resident memory, read from its own process (not a stopwatch)
FULL_PATH = [pytest.param(p, id=p.stem, marks=pytest.mark.full_path) for p in NOTEBOOKS]


def execute(stem: str, tmp_path: Path) -> str:
    """Run one notebook in the full profile at smoke sizes; its executed JSON as text, for what it printed."""
    notebook = TUTORIALS / f"{stem}.ipynb"
    executed = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(executed), parameters=smoke_parameters(notebook),
                               cwd=str(TUTORIALS), kernel_name="python3", progress_bar=False)
    return executed.read_text()


@contextlib.contextmanager
def variant(full_environment: Path, tmp_path: Path, dataset: str):
    """A data folder like full_environment whose ``dataset``/ starts empty (the caller fills it), MEDXAI_DATA_DIR on
    it."""
    data = tmp_path / "medxai_data"
    (data / dataset).mkdir(parents=True)
    for entry in full_environment.iterdir():
        if entry.name != dataset:
            (data / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    saved = os.environ["MEDXAI_DATA_DIR"]
    os.environ["MEDXAI_DATA_DIR"] = str(data)
    try:
        yield data / dataset, (full_environment / dataset).resolve()
    finally:
        os.environ["MEDXAI_DATA_DIR"] = saved


# the notebooks that read microscopy images (08 counts them; 04 shows them as unfamiliar input): only they need
# dsb2018/, the slowest folder to write
READS_MICROSCOPY = {p.stem for p in NOTEBOOKS if '"dsb2018"' in p.with_suffix(".py").read_text(encoding="utf-8")}


@pytest.mark.parametrize("notebook", FULL_PATH)
def test_notebook_runs_in_full_profile(notebook, full_environment, tmp_path):
    if notebook.stem in READS_MICROSCOPY:
        write_microscopy(full_environment)
    text = execute(notebook.stem, tmp_path)
    if notebook.stem == "08_cells_counting":  # large images of all three kinds, within the memory goal
        peak = float(re.search(r"peak resident memory (\d+) MiB", text).group(1))
        assert peak < MEMORY_GOAL_MIB, (f"notebook 08 peaked at {peak:.0f} MiB on 1,400-pixel images (goal "
                                        f"{MEMORY_GOAL_MIB})")
        assert (all(kind in text for kind in ("fluorescence", "brightfield", "histology"))
                and "acquisition groups" in text)
    # how long it took is reported by pytest's --durations, never asserted: speed belongs in benchmarks/


@pytest.fixture()
def no_box_environment(full_environment, tmp_path):
    """The same real-layout folder, but its box file holds only its header: a copy without boxes (models from the full
    runs above)."""
    with variant(full_environment, tmp_path, "nih") as (nih, source):
        for path in source.iterdir():
            if path.name != datasets.BBOX_FILE:
                (nih / path.name).symlink_to(path)
        (nih / datasets.BBOX_FILE).write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n")
        yield nih


@pytest.mark.full_path
@pytest.mark.parametrize("stem", ["06_boxes_iobb", "07_report"])
def test_boxes_and_report_run_on_a_copy_without_boxes(stem, no_box_environment, tmp_path):
    if stem == "07_report":  # what 06 saved from the copy with boxes goes: the report's fallback is what is tested
        from helpers import models, side_files
        side_files.side_file(config.load().models_dir / models.CLASSIFIER_FILE,
                             side_files.BOX_SIZES_SUFFIX).unlink(missing_ok=True)
    text = execute(stem, tmp_path)
    if stem == "06_boxes_iobb":
        assert "too few to judge" in text and "no size prior is saved beside the classifier" in text
    else:
        assert "box sizes: none saved by notebook 06" in text


@pytest.fixture()
def one_image_environment(full_environment, tmp_path):
    """A real-layout NIH copy in which every patient has one image (a realistic sample): no split can leak."""
    with variant(full_environment, tmp_path, "nih") as (nih, source):
        kept = set(datasets.read_nih(source, images="present").entries.drop_duplicates("patient_id").image_index)
        for name in ("Data_Entry_2017.csv", datasets.BBOX_FILE):  # the header, then the rows of kept images
            lines = (source / name).read_text().splitlines()
            (nih / name).write_text("\n".join([lines[0]] + [r for r in lines[1:] if r.split(",")[0] in kept]) + "\n")
        for name in ("train_val_list.txt", "test_list.txt"):
            (nih / name).write_text("\n".join(n for n in (source / name).read_text().split() if n in kept) + "\n")
        (nih / "images").mkdir()
        for image in kept:
            (nih / "images" / image).symlink_to((source / "images" / image).resolve())
        yield nih


@pytest.mark.full_path
def test_notebook_01_runs_on_a_copy_with_one_image_per_patient(one_image_environment, tmp_path):
    text = execute("01_preprocessing_and_splits", tmp_path)
    assert "patient(s) with more than one image, so an image-level split cannot put one patient on both sides" in text
    assert "no leaky split to compare" in text


@pytest.fixture()
def no_demographics_environment(full_environment, tmp_path):
    """The same folder, but the site's label file has no sex, age or view: the subgroup audit must say so, not fail."""
    import pandas as pd

    with variant(full_environment, tmp_path, "site") as (site, source):
        for entry in source.iterdir():
            if entry.name != "labels.csv":
                (site / entry.name).symlink_to(entry)
        pd.read_csv(source / "labels.csv", dtype=str).drop(columns=["sex", "age", "view"]).to_csv(
            site / "labels.csv", index=False)
        yield site


@pytest.mark.full_path
def test_notebook_09_runs_on_a_site_without_sex_age_or_view(no_demographics_environment, tmp_path):
    text = execute("09_your_own_films", tmp_path)
    assert "sex: not in this site's label file, not audited" in text and "no subgroup audit" in text
