"""nbval's run of the notebooks, kept: ``pytest --nbval-lax tutorials/ --save-executed DIR``.

While nbval executes each notebook cell by cell, this plugin collects every code cell's outputs (nbval keeps
them on the test item as ``item.test_outputs``) and its wall time, and once a notebook's last cell has run it
writes ``DIR/NN_name.ipynb`` with those outputs, execution counts, and each cell's time in
``cell.metadata.papermill.duration`` (the field papermill writes, so ``tools/build_site.py`` reads a
``make tutorials`` build and a ``make test`` build alike). ``make test`` renders the course site from it, so CI
does not execute the notebooks a third time. Without the option the plugin does nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from pathlib import Path

import nbformat
import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--save-executed", metavar="DIR", default=None,
        help="write each notebook nbval ran, with its outputs and per-cell durations, to DIR/NN_name.ipynb",
    )


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat()


class _Recorder:
    """Outputs and times of the cells nbval ran, written per notebook when its last selected cell is done."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.last_item: dict[str, object] = {}  # notebook path -> its last selected cell item
        self.code_cells: dict[str, int] = {}  # notebook path -> code cells in the notebook
        self.selected: dict[str, int] = {}  # notebook path -> code cells selected to run
        self.runs: dict[str, dict[int, dict]] = {}  # notebook path -> cell_num -> record
        self.written: list[Path] = []
        self.incomplete: list[str] = []

    @staticmethod
    def notebook_of(item) -> str | None:
        parent = getattr(item, "parent", None)
        if not hasattr(item, "cell_num") or parent is None or not str(parent.path).endswith(".ipynb"):
            return None
        return str(parent.path)

    def collected(self, items) -> None:
        for item in items:
            key = self.notebook_of(item)
            if key is None:
                continue
            self.last_item[key] = item
            self.selected[key] = self.selected.get(key, 0) + 1
            self.code_cells[key] = sum(c.cell_type == "code" for c in item.parent.nb.cells)

    def record(self, item, start: float, end: float, failed: bool) -> None:
        key = self.notebook_of(item)
        if key is None:
            return
        self.runs.setdefault(key, {})[item.cell_num] = {
            "outputs": list(item.test_outputs or []), "start": start, "end": end, "failed": failed,
        }

    def finished(self, item) -> None:
        key = self.notebook_of(item)
        if key is None or self.last_item.get(key) is not item:
            return
        if self.selected.get(key) != self.code_cells.get(key):
            self.incomplete.append(f"{Path(key).name} ({self.selected.get(key)} of {self.code_cells.get(key)} "
                                   "code cells selected)")
            return
        self.written.append(self.write(item.parent.nb, Path(key), self.runs.pop(key, {})))

    def write(self, source, path: Path, runs: dict[int, dict]) -> Path:
        from helpers import config

        nb = copy.deepcopy(source)
        count, code_num, first, last = 0, 0, None, None
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            run = runs.get(code_num)
            code_num += 1
            cell.outputs, cell.execution_count = [], None
            if run is None:  # skipped by nbval (a `nbval-skip` cell)
                continue
            count += 1
            cell.execution_count = count
            for output in run["outputs"]:
                output = nbformat.from_dict(dict(output))
                if output.output_type == "execute_result":
                    output.execution_count = count
                cell.outputs.append(output)
            first = run["start"] if first is None else first
            last = run["end"]
            cell.metadata["papermill"] = {
                "duration": round(run["end"] - run["start"], 6), "start_time": _iso(run["start"]),
                "end_time": _iso(run["end"]), "exception": run["failed"],
                "status": "failed" if run["failed"] else "completed",
            }
        nb.metadata["medxai"] = {"profile": config.load().profile, "executed_by": "nbval"}
        if first is not None:
            nb.metadata["papermill"] = {"duration": round(last - first, 6), "start_time": _iso(first),
                                        "end_time": _iso(last), "input_path": f"tutorials/{path.name}"}
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / path.name
        nbformat.write(nb, target)
        return target


_KEY = pytest.StashKey[_Recorder]()


def pytest_configure(config):
    folder = config.getoption("--save-executed", default=None)
    if folder:
        config.stash[_KEY] = _Recorder(Path(folder))


def pytest_collection_modifyitems(session, config, items):
    if _KEY in config.stash:
        config.stash[_KEY].collected(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    recorder = item.config.stash.get(_KEY, None)
    start = time.time()
    outcome = yield
    skipped = outcome.excinfo is not None and isinstance(outcome.excinfo[1], pytest.skip.Exception)
    if recorder is not None and not skipped:
        recorder.record(item, start, time.time(), failed=outcome.excinfo is not None)


def pytest_runtest_teardown(item, nextitem):
    recorder = item.config.stash.get(_KEY, None)
    if recorder is not None:
        recorder.finished(item)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    recorder = config.stash.get(_KEY, None)
    if recorder is None:
        return
    terminalreporter.write_line(f"--save-executed: {len(recorder.written)} executed notebook(s) written to {recorder.folder}/")
    for name in recorder.incomplete:
        terminalreporter.write_line(f"--save-executed: not written, only part of it ran: {name}")
