"""The exercises: every answer cell of every notebook passes its check when solved and fails with NotYet as the
student's stub; each check says what is wrong for the usual wrong answers; make_student strips every solution, and
no file of the students' kit it writes (notebooks, handout, site) holds an answer or the instructor's notes.

Answer cells are found by their solution markers in tutorials/NN_name.py, so a new exercise is covered
without editing this file. Nothing here executes a notebook: only its Setup cell and its answer cells.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest

from helpers import exercises

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import make_student  # noqa: E402
import series  # noqa: E402

SOURCES = series.notebooks(ROOT / "tutorials", ".py")
NOTEBOOKS = {source.stem: jupytext.read(source) for source in SOURCES}
ANSWERS = [(name, index) for name, nb in NOTEBOOKS.items() for index, cell in enumerate(nb.cells)
           if cell.cell_type == "code" and make_student.solution_blocks(cell.source)]
_SETUP: dict[str, dict] = {}


def _setup(name: str) -> dict:
    """The namespace after the notebook's Setup cell (its first code cell: every import of the notebook)."""
    if name not in _SETUP:
        first = next(c for c in NOTEBOOKS[name].cells if c.cell_type == "code")
        namespace: dict = {}
        exec(compile(first.source, f"{name} setup", "exec"), namespace)
        _SETUP[name] = namespace
    return dict(_SETUP[name])


def _cell(name: str, index: int) -> str:
    return NOTEBOOKS[name].cells[index].source


def test_every_notebook_has_checked_exercises():
    counts = {name: sum(1 for n, _ in ANSWERS if n == name) for name in NOTEBOOKS}
    assert all(2 <= c <= 4 for c in counts.values()), f"each notebook needs 2 to 4 checked exercises: {counts}"


@pytest.mark.parametrize("name,index", ANSWERS, ids=[f"{n}-cell{i}" for n, i in ANSWERS])
def test_answer_cell_is_an_exercise_with_a_check(name, index):
    source = _cell(name, index)
    assert re.match(r"# Exercise \d+: \w", source), f"{name} cell {index} must start with '# Exercise N: what to write'"
    number = re.match(r"# Exercise (\d+)", source).group(1)
    markdown = "\n".join(c.source for c in NOTEBOOKS[name].cells if c.cell_type == "markdown")
    exercises_text = markdown[markdown.index("## Exercises"):]
    assert re.search(rf"^{number}\. \*\*", exercises_text, re.M), (f"{name}: exercise {number} is not in the "
                                                                   "Exercises list")
    assert re.search(r"^exercises\.check_\w+\(", source, re.M), (f"{name} cell {index}: call its check from "
                                                                 "helpers.exercises")


@pytest.mark.parametrize("name,index", ANSWERS, ids=[f"{n}-cell{i}" for n, i in ANSWERS])
def test_solved_answer_passes_its_check(name, index, capsys):
    exec(compile(_cell(name, index), f"{name} cell {index}", "exec"), _setup(name))
    assert ": passed." in capsys.readouterr().out


@pytest.mark.parametrize("name,index", ANSWERS, ids=[f"{n}-cell{i}" for n, i in ANSWERS])
def test_student_stub_is_not_yet(name, index):
    stub = make_student.strip_solutions(_cell(name, index))
    with pytest.raises(exercises.NotYet, match="not done yet. Write "):
        exec(compile(stub, f"{name} cell {index} (student)", "exec"), _setup(name))


# ---- wrong answers: each check names the mistake ----------------------------------------------------


def _split_by_image(entries, val_fraction, test_fraction, seed):
    order = np.random.default_rng(seed).permutation(len(entries))
    n_val, n_test = int(len(entries) * val_fraction), int(len(entries) * test_fraction)
    return {"val": entries.iloc[order[:n_val]], "test": entries.iloc[order[n_val:n_val + n_test]],
            "train": entries.iloc[order[n_val + n_test:]]}


def _split_fixed(entries, val_fraction, test_fraction, seed):
    ids = np.sort(entries.patient_id.unique())
    n = len(ids)
    part = {"val": ids[: n // 5], "test": ids[n // 5: 2 * n // 5], "train": ids[2 * n // 5:]}
    return {k: entries[entries.patient_id.isin(v)] for k, v in part.items()}


def _split_dropping(entries, val_fraction, test_fraction, seed):
    parts = _split_fixed(entries, val_fraction, test_fraction, seed)
    return {**parts, "train": parts["train"].iloc[1:]}


def _weights(swap=False, counts=False):
    def fn(labels):
        positive = labels.sum(0) if counts else labels.mean(0)
        negative = (len(labels) - positive) if counts else 1 - positive
        return (positive, negative) if swap else (negative, positive)
    return fn


def _bce(w_scale=1.0, swap=False, clip=True, reduce=np.mean):
    def fn(y, p, w_p, w_n):
        q = np.clip(p, 1e-7, 1 - 1e-7) if clip else p
        a, b = (w_n, w_p) if swap else (w_p, w_n)
        loss = -(a * y * np.log(q) + b * (1 - y) * np.log(1 - q)) * w_scale
        return reduce(loss)
    return fn


def _youden_j(truth, scores):
    from sklearn.metrics import roc_curve
    fpr, tpr, _ = roc_curve(truth, scores)
    return float((tpr - fpr).max())


def _youden_inf(truth, scores):
    from sklearn.metrics import roc_curve
    return float(roc_curve(truth, scores)[2][0])


def _by_accuracy(truth, scores):
    return float(max(np.unique(scores), key=lambda t: ((scores >= t) == truth).mean()))


def _dice_per_image(y, p):
    axes = tuple(range(1, y.ndim))
    return float(np.mean(1 - 2 * (y * p).sum(axes) / (y.sum(axes) + p.sum(axes))))


def _best_f1_value(truth, scores):
    return max(2 * ((scores >= t) & truth).sum() / ((scores >= t).sum() + truth.sum()) for t in scores)


def _best_f1_strict(truth, scores):
    return float(
        max(np.unique(scores), key=lambda t: 2 * ((scores > t) & truth).sum() / ((scores > t).sum() + truth.sum())))


def _entropy(p, base=math.e, clip=True):
    p = np.clip(p, 1e-7, 1 - 1e-7) if clip else p
    return -(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(base)


def _fit_inverse_temperature(logits, labels):
    from scipy import optimize
    nll = lambda s: np.mean(np.logaddexp(0, logits * np.exp(s)) - labels * logits * np.exp(s))  # noqa: E731
    return float(np.exp(optimize.minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def _ig_mean_gradient(gradient, x, baseline, steps):
    a = np.linspace(0, 1, steps).reshape((-1,) + (1,) * x.ndim)
    return gradient(baseline + a * (x - baseline)).mean(0)


def _ig_at_x(gradient, x, baseline, steps):
    return gradient(x[None])[0] * (x - baseline)


def _box(order="xywh", short=False):
    def fn(mask):
        rows, cols = np.nonzero(mask)
        x0, y0, x1, y1 = cols.min(), rows.min(), cols.max(), rows.max()
        w, h = (x1 - x0, y1 - y0) if short else (x1 - x0 + 1, y1 - y0 + 1)
        return {"xywh": (x0, y0, w, h), "yxhw": (y0, x0, h, w), "xyxy": (x0, y0, x1, y1)}[order]
    return fn


def _ap(hit=lambda iou, t: iou > t, denominator="bowl"):
    from helpers import instances

    def fn(true_labels, pred_labels, thresholds):
        iou = instances.iou_matrix(true_labels, pred_labels)[0]
        n_t, n_p = iou.shape
        tps = [int(hit(iou, t).sum()) for t in thresholds]
        den = {"bowl": lambda tp: n_t + n_p - tp, "precision": lambda tp: n_p, "recall": lambda tp: n_t}[denominator]
        return float(np.mean([tp / den(tp) for tp in tps]))
    return fn


def _k(plain_quantile=False, absolute=True, divide=True, plus_one=True):
    def fn(true, centre, spread, level):
        error = np.abs(true - centre) if absolute else true - centre
        scores = np.sort(error / spread if divide else error)
        if plain_quantile:
            return float(np.quantile(scores, level))
        return float(scores[math.ceil((len(scores) + int(plus_one)) * level - 1e-9) - 1])
    return fn


def exercises_reference_ppv(se, sp, p):
    from helpers import external

    return external.predictive_values(se, sp, p)


def exercises_reference_line(y, p):
    from helpers import external

    return external.calibration_line(y, p)


def _line_on_p(y, p):
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(p)[:, None], y)
    return fitted.intercept_[0], fitted.coef_[0, 0]


WRONG = {
    "check_patient_split": [
        ("by image", _split_by_image, ("patient leakage", "draw the patients")),
        ("same every seed", _split_fixed, ("same patients", "seed")),
        ("drops a row", _split_dropping, ("1 are in no split",)),
        ("not a dict", lambda e, v, t, s: [e], ("return a dict",)),
    ],
    "check_class_weights": [
        ("swapped", _weights(swap=True), ("swapped", "weigh more")),
        ("counts", _weights(counts=True), ("counts", "divide by the number of images")),
        ("one array", lambda labels: labels.mean(0), ("return a pair",)),
    ],
    "check_bce_by_hand": [
        ("swapped", _bce(swap=True), ("swapped",)),
        ("summed over findings", _bce(reduce=lambda l: l.sum(1).mean()), ("summed over the findings",)),
        ("no clipping", _bce(clip=False), ("nan", "clip p")),
        ("per image", _bce(reduce=lambda l: l.mean(1)), ("one number", "shape (6,)")),
        ("scaled", _bce(w_scale=2.0), ("losses.WeightedBinaryCrossentropy gives",)),
    ],
    "check_youden_threshold": [
        ("returns J", _youden_j, ("returned j itself",)),
        ("+inf cut", _youden_inf, ("+inf", "roc_curve's first threshold")),
        ("accuracy", _by_accuracy, ("maximises accuracy",)),
    ],
    "check_dice_loss": [
        ("per image", _dice_per_image, ("average a dice per image",)),
        ("coefficient", lambda y, p: 2 * (y * p).sum() / (y.sum() + p.sum()), ("dice coefficient", "1 minus")),
        ("no factor 2", lambda y, p: 1 - (y * p).sum() / (y.sum() + p.sum()), ("factor 2",)),
        ("squared", lambda y, p: 1 - 2 * (y * p).sum() / (y.sum() + (p ** 2).sum()), ("squared p",)),
        ("vector", lambda y, p: 1 - 2 * (y * p).sum((1, 2, 3)) / (y.sum((1, 2, 3)) + p.sum((1, 2, 3))),
         ("one value per image",)),
    ],
    "check_fov_accuracies": [
        ("swapped", lambda v, p, f: tuple(reversed([((p >= .5) == v).mean(), ((p >= .5) == v)[f].mean()])),
         ("swapped",)),
        ("strict", lambda v, p, f: (((p > .5) == v).mean(), ((p > .5) == v)[f].mean()), ("p = 0.5", ">= 0.5")),
        ("whole divisor", lambda v, p, f: (((p >= .5) == v).mean(), (((p >= .5) == v) & f).mean()),
         ("divided by every pixel",)),
    ],
    "check_best_f1_threshold": [
        ("returns F1", _best_f1_value, ("best f1 itself",)),
        ("strict", _best_f1_strict, ("p > t",)),
        ("median", lambda truth, scores: float(np.median(scores)), ("reaches",)),
    ],
    "check_entropy_bits": [
        ("nats", lambda s: _entropy(s.mean(0)), ("nats", "ln 2")),
        ("aleatoric", lambda s: _entropy(s, 2).mean(0), ("aleatoric", "entropy of the mean")),
        ("no clipping", lambda s: _entropy(s.mean(0), 2, clip=False), ("nan",)),
    ],
    "check_spearman": [
        ("pearson", lambda a, b: np.corrcoef(a, b)[0, 1], ("pearson", "rank them")),
        ("ties",
         lambda a, b: np.corrcoef(np.argsort(np.argsort(a, kind="stable")),
                                  np.argsort(np.argsort(b, kind="stable")))[0, 1],
         ("tied values", "rankdata")),
    ],
    "check_fit_temperature": [
        ("inverse", _fit_inverse_temperature, ("1/t", "divide the logits")),
        ("unfitted", lambda logits, labels: 1.0, ("t = 1 leaves",)),
    ],
    "check_grad_cam_map": [
        ("no relu", lambda a, g: (a * g.mean((0, 1))).sum(-1), ("positive part",)),
        ("summed gradients", lambda a, g: np.maximum((a * g.sum((0, 1))).sum(-1), 0), ("average them",)),
        ("cell by cell", lambda a, g: np.maximum((a * g).sum(-1), 0), ("cell by cell",)),
    ],
    "check_integrated_gradients": [
        ("mean gradient", _ig_mean_gradient, ("multiply it by (x - baseline)",)),
        ("gradient x input", _ig_at_x, ("gradient at x alone",)),
        ("unbatched call", lambda gradient, x, b, steps: gradient(x), ("raised valueerror", "batch of points")),
    ],
    "check_box_of_mask": [
        ("row first", _box("yxhw"), ("(y, x, h, w)",)),
        ("one short", _box(short=True), ("one short", "+ 1")),
        ("corners", _box("xyxy"), ("(x0, y0, x1, y1)",)),
    ],
    "check_otsu_level": [
        ("mean", lambda heat: float(heat.mean()), ("mean of the heat",)),
        ("fixed", lambda heat: 200, ("between-class variance",)),
    ],
    "check_refer_any": [
        ("mean", lambda f, limit: bool(f["mutual_information"].mean() > limit), ("compared the mean",)),
        (">=", lambda f, limit: bool((f["mutual_information"] >= limit).any()), ("strict",)),
        ("series", lambda f, limit: f["mutual_information"] > limit, ("return true or false", "series")),
    ],
    "check_to_original": [
        ("(w, h) shapes",
         lambda box, d, o: (box[0] * o[0] / d[0], box[1] * o[1] / d[1], box[2] * o[0] / d[0], box[3] * o[1] / d[1]),
         ("(height, width)",)),
        ("only x, y", lambda box, d, o: (box[0] * o[1] / d[1], box[1] * o[0] / d[0], box[2], box[3]),
         ("w and h scale too",)),
        ("inverted",
         lambda box, d, o: (box[0] * d[1] / o[1], box[1] * d[0] / o[0], box[2] * d[1] / o[1], box[3] * d[0] / o[0]),
         ("other way",)),
    ],
    "check_ap_by_hand": [
        (">= t", _ap(hit=lambda iou, t: iou >= t), ("equals the threshold", "iou > t")),
        ("precision", _ap(denominator="precision"), ("precision",)),
        ("recall", _ap(denominator="recall"), ("recall",)),
    ],
    "check_conformal_k": [
        ("plain quantile", _k(plain_quantile=True), ("plain 90% quantile",)),
        ("no + 1", _k(plus_one=False), ("without the + 1",)),
        ("not divided", _k(divide=False), ("divide each error",)),
        ("signed", _k(absolute=False), ("absolute error",)),
    ],
}
WRONG["check_predictive_values"] = [
    ("swapped", lambda se, sp, p: exercises_reference_ppv(se, sp, p)[::-1], ("swapped",)),
    ("sensitivity", lambda se, sp, p: (se, sp), ("not the sensitivity",)),
    ("no 1 - prevalence", lambda se, sp, p: (se * p / (se * p + (1 - sp)), exercises_reference_ppv(se, sp, p)[1]),
     ("(1 - prevalence)",)),
]
WRONG["check_calibration_line"] = [
    ("swapped", lambda y, p: exercises_reference_line(y, p)[::-1], ("swapped",)),
    ("on p", lambda y, p: _line_on_p(y, p), ("logit of the probability",)),
]


def _channels(compress=True, after=False, new_only=False):
    """densenet_channels with one of the usual mistakes."""
    def fn(stem, layers, growth, compression):
        out, entering = [], stem
        for count in layers:
            leaving = (0 if new_only else entering) + count * growth
            entering = int((entering + count * growth) * (compression if compress else 1.0))
            out.append(entering if after and len(out) < len(layers) - 1 else leaving)
        return out
    return fn


WRONG["check_densenet_channels"] = [
    ("no transitions", _channels(compress=False), ("transitions are missing",)),
    ("after the transition", _channels(after=True), ("after each transition",)),
    ("new channels only", _channels(new_only=True), ("only the new channels",)),
    ("one number", lambda stem, layers, growth, compression: stem + sum(layers) * growth, ("shape (4,)",)),
]
WRONG["check_oversampling_weight"] = [
    ("the target", lambda y, target: target, ("the target itself",)),
    ("no division", lambda y, target: target - np.mean(y), ("divide by 1 - p",)),
    ("the other share", lambda y, target: 1 - (target - np.mean(y)) / (1 - np.mean(y)), ("share of the whole set",)),
]
WRONG_CASES = [(check, label, fn, words) for check, cases in WRONG.items() for label, fn, words in cases]


def test_every_check_is_used_and_has_wrong_answers():
    checks = set(exercises.checks())
    used = {m for name, index in ANSWERS for m in re.findall(r"exercises\.(check_\w+)\(", _cell(name, index))}
    assert checks == used, f"checks used by no notebook: {sorted(checks - used)}; unknown: {sorted(used - checks)}"
    assert checks == set(WRONG), f"checks without wrong-answer cases: {sorted(checks - set(WRONG))}"


@pytest.mark.parametrize("check,label,fn,words", WRONG_CASES, ids=[f"{c}-{l}" for c, l, _, _ in WRONG_CASES])
def test_wrong_answer_says_what_is_wrong(check, label, fn, words, capsys):
    with pytest.raises(exercises.Wrong) as caught:
        exercises.checks()[check](fn)
    message = str(caught.value).lower()
    missing = [w for w in words if w.lower() not in message]
    assert not missing, f"{check} on '{label}': {missing} not in: {caught.value}"
    assert "passed" not in capsys.readouterr().out


@pytest.mark.parametrize("check", sorted(WRONG))
def test_not_a_function_and_a_crash_are_wrong_not_tracebacks(check):
    with pytest.raises(exercises.Wrong, match="expected a function, got float"):
        exercises.checks()[check](0.25)

    def crashes(*args):
        raise KeyError("mutual_informaton")

    with pytest.raises(exercises.Wrong, match="your crashes raised KeyError: 'mutual_informaton'"):
        exercises.checks()[check](crashes)


def test_results_of_the_wrong_kind_are_named():
    with pytest.raises(exercises.Wrong, match="should be one number, got str"):
        exercises.checks()["check_dice_loss"](lambda y, p: "0.4")
    with pytest.raises(exercises.Wrong, match=r"should have shape \(4,\), got \(3,\)"):
        exercises.checks()["check_box_of_mask"](lambda mask: (1, 2, 3))
    with pytest.raises(exercises.Wrong, match="should be numbers of shape"):
        exercises.checks()["check_grad_cam_map"](lambda a, g: {"map": a})


# ---- make_student -------------------------------------------------------------------------------


def _solution_lines(nb) -> set[str]:
    """Lines inside solution blocks that appear nowhere else in the notebook (so their absence means something)."""
    inside, outside = set(), []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        blocks = make_student.solution_blocks(cell.source) if cell.cell_type == "code" else []
        covered = {i for first, last in blocks for i in range(first, last + 1)}
        inside |= {lines[i].strip() for i in covered}
        outside += [line.strip() for i, line in enumerate(lines) if i not in covered]
    return {line for line in inside - set(outside) if len(line) > 3 and not line.startswith("###")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_copy_has_no_solution_and_keeps_every_other_cell(source):
    original = NOTEBOOKS[source.stem]
    student = make_student.student_notebook(source)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    leaked = [line for line in _solution_lines(original) if line in text]
    assert _solution_lines(original) and not leaked, f"solution lines left in the student copy: {leaked}"
    nbformat.validate(student)
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in original.cells]
    changed = [i for i, (a, b) in enumerate(zip(original.cells, student.cells)) if a.source != b.source]
    assert changed == [i for n, i in ANSWERS if n == source.stem]
    assert all(c.metadata == o.metadata
               for c, o in zip(student.cells, original.cells)), "tags (parameters) must survive"


def test_stub_keeps_the_indentation_and_says_which_exercise():
    source = ("# Exercise 7: write f(x).\ndef f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\n"
              "\nprint(f(1))")
    stub = make_student.strip_solutions(source)
    assert stub == ("# Exercise 7: write f(x).\ndef f(x):\n    raise NotImplementedError('Exercise 7: write f(x).')\n\n"
                    "\nprint(f(1))")


@pytest.mark.parametrize("source,words", [
    ("### BEGIN SOLUTION\nx = 1", "line 1: ### BEGIN SOLUTION without its ### END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
     "line 2: ### BEGIN SOLUTION inside the block opened on line 1"),
])
def test_unpaired_markers_are_refused_with_the_line(source, words):
    with pytest.raises(make_student.MarkerError, match=re.escape(f"nb.py, cell 3, {words}")):
        make_student.strip_solutions(source, "nb.py, cell 3")


# ---- the students' kit: notebooks, handout and site, none of which holds an answer ------------------

import html  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from nbformat.v4 import new_output  # noqa: E402

# Lines of the worked answers, less the few that the series' package holds too (students get helpers/ anyway,
# on Colab from the repository): those mean nothing where they are found.
_PACKAGE_TEXT = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "helpers").rglob("*.py")))
SECRET = {line for nb in NOTEBOOKS.values() for line in _solution_lines(nb) if line not in _PACKAGE_TEXT}
_INSTRUCTORS_LINK = re.compile(r"\]\([^)\s]*INSTRUCTORS\.md|href=\"[^\"]*INSTRUCTORS\.md")
_SITE_LINK = re.compile(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org|github\.com)/[^"]+)"')


def _readable_text(path: Path) -> str:
    """What a reader sees of a file: a notebook's sources and outputs, a page's text without its tags."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        nb = json.loads(raw)
        parts = []
        for cell in nb["cells"]:
            parts.append("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
            for output in cell.get("outputs", []):
                for value in [output.get("text", "")] + list(output.get("data", {}).values()):
                    parts.append("".join(value) if isinstance(value, list) else str(value))
        return "\n".join(parts)
    if path.suffix == ".html":
        return html.unescape(re.sub(r"<[^>]+>", "", raw))  # pygments splits code into spans: read it as shown
    return raw


def _answers_in(files: list[Path]) -> list[str]:
    """Every file that is INSTRUCTORS.md, links to it, holds a solution marker or a line of a worked answer."""
    found = []
    for path in files:
        if path.name == "INSTRUCTORS.md":
            found.append(f"{path}: the instructor's notes")
        raw, text = path.read_bytes().decode("utf-8", errors="replace"), _readable_text(path)
        found += [f"{path}: {word}" for word in ("BEGIN SOLUTION", "END SOLUTION") if word in raw or word in text]
        if _INSTRUCTORS_LINK.search(raw):
            found.append(f"{path}: links to INSTRUCTORS.md")
        found += [f"{path}: answer line {line!r}" for line in sorted(SECRET) if line in text]
    return found


def _executed_answers(folder: Path) -> Path:
    """Two executed notebooks made from real sources: title, Setup cell and answer cells, each answer echoed in its
    output."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in (SOURCES[0], SOURCES[-2]):
        nb = jupytext.read(source)
        code = [c for c in nb.cells if c.cell_type == "code"]
        nb.cells = [nb.cells[0], code[0]] + [c for c in code if make_student.solution_blocks(c.source)]
        for count, cell in enumerate(nb.cells[1:], 1):
            cell.execution_count = count
            cell.outputs = [new_output("stream", name="stdout", text=cell.source + "\n")]
            cell.metadata["papermill"] = {"duration": 0.5}
        nb.metadata["medxai"] = {"profile": "smoke"}
        nbformat.write(nb, folder / f"{source.stem}.ipynb")
    return folder


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """`make student` on the real tutorials/ and a tiny executed folder (no notebook runs)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("kit")
    executed = _executed_answers(root / "executed")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = make_student.main(["--out", str(root / "student"), "--executed", str(executed)])
    assert code == 0, printed.getvalue()
    return root, printed.getvalue()


def test_kit_holds_no_answer_anywhere_while_the_repository_and_its_site_do(kit, tmp_path):
    root, _ = kit
    files = sorted(p for p in (root / "student").rglob("*") if p.is_file())
    parts = {p.relative_to(root / "student").parts[0] for p in files}
    assert parts == {"notebooks", "handout", "site"}, parts
    assert len(SECRET) > 50, f"too few answer lines to look for: {len(SECRET)}"
    leaked = _answers_in(files)
    assert not leaked, "the students' kit holds answers:\n" + "\n".join(leaked[:20])

    # the same search finds them in the instructor's copies: the repository and a site drawn without stubs
    import build_site  # tools/, as make_student imports it

    build_site.build(root / "executed", tmp_path / "site", "https://github.com/medxai/medxai",
                     readme=ROOT / "README.md")
    found = _answers_in([ROOT / name for name in make_student.tracked_files(ROOT) if (ROOT / name).is_file()]
                        + sorted((tmp_path / "site").glob("*.html")))
    for expected in ("INSTRUCTORS.md: the instructor's notes", "README.md: links to INSTRUCTORS.md",
                     ".py: BEGIN SOLUTION", ".ipynb: END SOLUTION", "_films.py: answer line",
                     "_splits.html: answer line"):
        assert any(expected in line for line in found), f"the search cannot find {expected!r}"


def test_handout_is_the_repository_with_student_notebooks_and_without_the_instructors_files(kit):
    root, printed = kit
    handout = root / "student" / "handout"
    tracked = make_student.tracked_files(ROOT)
    left_out = {"tutorials/INSTRUCTORS.md", "tools/make_student.py", "tests/test_exercises.py"}
    copied = sorted(str(p.relative_to(handout)) for p in handout.rglob("*") if p.is_file())
    assert copied == sorted(n for n in tracked if n not in left_out and (ROOT / n).is_file())
    assert "left out: tests/test_exercises.py (holds solution markers); tools/make_student.py (holds solution " \
        "markers); tutorials/INSTRUCTORS.md (the instructor's notes and model answers)" in printed
    assert ("tutorials/INSTRUCTORS.md (in the instructor's copy) "
            "says which notebook") in (handout / "README.md").read_text()
    for source in SOURCES:  # the students' pair, in sync as `make sync` leaves it, and the .ipynb without outputs
        py, ipynb = jupytext.read(handout / "tutorials" / source.name), nbformat.read(
            handout / "tutorials" / f"{source.stem}.ipynb", as_version=4)
        assert [c.source.strip() for c in py.cells] == [c.source.strip() for c in ipynb.cells]
        assert "raise NotImplementedError(" in (handout / "tutorials" / source.name).read_text()
        assert all(not c.get("outputs") for c in ipynb.cells if c.cell_type == "code")
        assert ((handout / "tutorials" / source.name).read_text()
                == (root / "student" / "notebooks" / source.name).read_text())
    for name in tracked:  # executable files (.ci/run, postBuild) stay executable
        if (ROOT / name).is_file() and os.access(ROOT / name, os.X_OK):
            assert os.access(handout / name, os.X_OK), name


def test_student_site_stubs_the_answers_and_opens_the_student_branch(kit):
    root, printed = kit
    site = root / "student" / "site"
    assert "site: 4 pages without answers" in printed and "branch student" in printed
    page = (site / f"{SOURCES[0].stem}.html").read_text()
    assert "raise NotImplementedError(" in html.unescape(re.sub(r"<[^>]+>", "", page))
    assert "# Exercise 1:" in html.unescape(re.sub(r"<[^>]+>", "", page))  # the cell stays, with its instructions
    links = [html.unescape(h) for p in sorted(site.glob("*.html")) for h in _SITE_LINK.findall(p.read_text())]
    # the index: Colab and Binder per notebook and its Repository; each page: its two (and its session plan, on
    # the same branch, when TIMINGS.md has one)
    assert len([link for link in links if "TIMINGS.md#plan-" not in link]) == 2 * 2 + 1 + 2 * 2, links
    off = [link for link in links if not re.search(r"/blob/student/tutorials/|/student\?labpath=|/tree/student$", link)]
    assert off == [], f"links that do not open the student branch: {off}"


def test_no_site_without_executed_notebooks_and_a_clear_error_outside_git(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(make_student, "write_handout", lambda *args: {"copied": [], "left_out": []})
    (tmp_path / "empty").mkdir()
    assert make_student.main(["--out", str(tmp_path / "student"), "--executed", str(tmp_path / "empty"),
                              str(SOURCES[0])]) == 0
    out = capsys.readouterr().out
    assert f"site: no executed notebooks in {tmp_path / 'empty'}, so no student site; `make tutorials` runs them" in out
    assert not (tmp_path / "student" / "site").exists()
    written = nbformat.read(tmp_path / "student" / "notebooks" / f"{SOURCES[0].stem}.ipynb", as_version=4)
    assert "raise NotImplementedError(" in "\n".join(c.source for c in written.cells)
    assert all(not c.get("outputs") for c in written.cells if c.cell_type == "code")
    with pytest.raises(make_student.KitError, match=r"is not a git checkout.*run `make student` in a clone"):
        make_student.tracked_files(tmp_path)
