"""Patient-level splits of chest X-ray metadata, the official NIH split, a leaky image-level split, and the leakage
check.

A patient's images share the patient's anatomy and often a chronic finding: a split that puts the same
patient on both sides leaks, and the leak shows as an inflated score (notebook 01 measures it). Every
split here is by patient except ``random_split``, which exists to show the leak; ``assert_no_patient_overlap``
is the check to run on every split you make.
"""

from __future__ import annotations

import numbers
import re
import warnings
from typing import Any, Mapping

import numpy as np
import pandas as pd

from helpers.datasets import _DECIMAL, _DIGITS, _EXPONENT, _MAX_LISTED, LABELS, SPLIT_FILES, NIHDataset
from helpers.errors import DataError, PatientLeakageError, check_labels


def _check_fractions(fractions: Mapping[str, Any]) -> None:
    for name, value in fractions.items():
        if isinstance(value, str):
            raise DataError(
                f"{name}_fraction={value!r} is text: pass {value.strip()} as a number, not the text {value!r}."
            )
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise DataError(f"{name}_fraction must be a number strictly between 0 and 1, not {type(value).__name__} "
                            f"{value!r}.")
        if not 0 < float(value) < 1:
            raise DataError(
                f"The {name} split would be empty ({name} fraction {value!r}): choose a fraction strictly "
                "between 0 and 1."
            )
    if sum(float(v) for v in fractions.values()) >= 1:
        raise DataError(
            f"The train split would be empty: the fractions {dict(fractions)} add up to 1 or more."
        )


MAX_SEED = 2**32 - 1


def _check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int if it is a whole number from 0 to 2**32 - 1, else a DataError saying the range."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise DataError(f"{what} must be a whole number from 0 to {MAX_SEED} (2**32 - 1), "
                        f"not {type(seed).__name__} {seed!r}.")
    if not 0 <= int(seed) <= MAX_SEED:
        raise DataError(f"{what}={int(seed)} is out of range: a seed is a whole number from 0 to {MAX_SEED} "
                        "(2**32 - 1).")
    return int(seed)


_NIH_IMAGE = re.compile(r"(\d{8})_\d{3}\.png", re.IGNORECASE)  # NIH's image index: the patient's 8 digits, the visit
_FILE_LIKE = re.compile(r".*(\.(png|jpe?g|dcm|dicom|tiff?|bmp|gif)|[/\\].*)", re.IGNORECASE)
_INT64_MAX = np.iinfo(np.int64).max


def _whole_numbers(values) -> np.ndarray:
    """Whole numbers as int64, or as Python ints when one is too large (20-digit pseudonyms): compared by value either
    way."""
    ints = [int(v) for v in values]
    if any(abs(v) > _INT64_MAX for v in ints):
        return np.array(ints, dtype=object)
    return np.array(ints, dtype=np.int64)


def _image_names_to_patients(text: list[str], what: str) -> np.ndarray | None:
    """NIH image names mapped to their patients (None: not image names); other file names refused."""
    nih = [_NIH_IMAGE.fullmatch(t) for t in text]
    if text and all(nih):
        warnings.warn(f"{what}: these are NIH image names (e.g. {text[0]!r}), not patient IDs; compared by the patient "
                      "each name holds (its first 8 digits). Pass the patient_id column to say so directly.",
                      UserWarning, stacklevel=4)
        return np.array([int(m.group(1)) for m in nih], dtype=np.int64)
    files = [t for t in text if _FILE_LIKE.fullmatch(t)]
    if files:
        raise DataError(f"{what}: {len(files)} value(s) look like image file names or paths (e.g. {files[0]!r}), not "
                        "patient IDs: two images of one patient have different names, so comparing names cannot "
                        "find leakage. Pass the split's patient_id column (or its DataFrame).")
    return None


def _normalise_ids(values: Any, what: str) -> np.ndarray:
    """Patient IDs as one comparable type: whole numbers (ints, whole floats, digit strings) as int64, else text.

    Refuses missing IDs, IDs in a spreadsheet's exponent form ("1e3") and a mix of numbers and text,
    each with a DataError naming ``what``.
    """
    plain = np.asarray(values)
    if plain.dtype.kind in "iu":
        return plain.astype(np.int64).ravel()
    array = np.asarray(values, dtype=object).ravel()
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    series = pd.Series(array)
    if series.isna().any():
        first = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise DataError(f"{what}: {int(series.isna().sum())} missing patient ID(s), the first at position {first}: "
                        "every image needs its patient.")
    numeric = pd.to_numeric(series, errors="coerce") if series.map(lambda v: not isinstance(v, str)).all() else None
    if numeric is not None and numeric.notna().all():
        whole = numeric % 1 == 0
        if not whole.all():
            bad = series[~whole].iloc[0]
            raise DataError(f"{what}: patient ID {bad!r} is not a whole number.")
        if numeric.abs().max() > 2**53:  # beyond float precision: compare the exact values
            return _whole_numbers(series.tolist())
        return numeric.to_numpy().astype(np.int64)
    texts = [v.strip() for v in series.tolist() if isinstance(v, str)]
    if len(texts) == len(series):
        mapped = _image_names_to_patients(texts, what)
        if mapped is not None:
            return mapped
    out = np.empty(len(series), dtype=object)
    kinds = set()
    for i, value in enumerate(series.tolist()):
        if isinstance(value, (bool, np.bool_)):
            raise DataError(f"{what}: patient ID {value!r} is a boolean, not an ID.")
        if isinstance(value, (numbers.Integral,)) or (isinstance(value, numbers.Real) and float(value).is_integer()):
            out[i] = int(value)
            kinds.add("number")
            continue
        text = str(value).strip()
        if _DIGITS.fullmatch(text):
            out[i] = int(text)
            kinds.add("number")
        elif _EXPONENT.fullmatch(text) or _DECIMAL.fullmatch(text):
            raise DataError(
                f"{what}: patient ID {value!r} looks like a spreadsheet's number format (exponent or decimal "
                "form), which can turn one patient's ID into another's: export the IDs as text (whole numbers)."
            )
        else:
            out[i] = text
            kinds.add("text")
    if len(kinds) > 1:
        text_id = next(v for v in out if isinstance(v, str))
        raise DataError(
            f"{what}: patient IDs mix whole numbers and text (e.g. {text_id!r}): they cannot be compared safely. "
            "Use one kind of ID for every image."
        )
    return _whole_numbers(out) if kinds == {"number"} else out.astype(str)


def _patient_table(entries: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(entries, pd.DataFrame):
        raise DataError("Expected the entries DataFrame (NIHDataset.entries from read_nih), "
                        f"not {type(entries).__name__}.")
    if "patient_id" not in entries.columns:
        raise DataError("The entries have no 'patient_id' column: pass NIHDataset.entries (from read_nih).")
    missing = [name for name in LABELS if name not in entries.columns]
    if missing:
        raise DataError(f"The entries have no label column(s) {missing}: pass NIHDataset.entries (from read_nih).")
    labels = (np.stack([check_labels(entries[name].to_numpy(), f"entries[{name!r}]") for name in LABELS], axis=1)
              if len(entries) else np.zeros((0, len(LABELS))))
    ids = _normalise_ids(entries["patient_id"].to_numpy(), "entries['patient_id']")
    patients, inverse = np.unique(ids, return_inverse=True)
    counts = np.zeros((len(patients), len(LABELS)), dtype=np.float64)
    np.add.at(counts, inverse, labels.astype(np.float64))
    images = np.bincount(inverse, minlength=len(patients)).astype(np.float64)
    return patients, inverse, counts, images


def _stratify(
    entries: pd.DataFrame, fractions: Mapping[str, float], seed: int, where: str, rare: str = "raise"
) -> np.ndarray:
    """Split index (into ``fractions``' order) for every row, assigning whole patients.

    Iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011) over patients instead of images:
    take the label with the fewest unassigned patients, first give one of them to every split that
    lacks the label yet, then send each of the rest to the split that most wants images with that
    label; patients with no label fill the image quotas. A repair pass moves or swaps patients while
    a split still lacks a label; if gaps remain (few patients, many labels each), a small integer
    programme looks for an assignment without gaps, and only if none exists is it an error (or, with
    ``rare="warn"``, a warning). Demands are counted in images, so the fractions hold by images.
    """
    names = list(fractions)
    frac = np.array([fractions[n] for n in names], dtype=np.float64)
    patients, inverse, counts, images = _patient_table(entries)
    n_patients, n_splits = len(patients), len(names)
    has = counts > 0
    per_label = has.sum(axis=0)
    required = per_label >= n_splits
    if n_patients < n_splits:  # said first: with one patient, every label "has one patient", which is not the cause
        raise DataError(f"Only {n_patients} patient(s) {where}: a patient-level split into {', '.join(names)} needs at "
                        f"least {n_splits}, one per split; every image of a patient goes to one split.")
    for j in np.argsort(per_label, kind="stable"):
        if not required[j]:
            message = (
                f"Label {LABELS[j]!r} has {int(per_label[j])} patient(s) {where}: a patient-level split into "
                f"{', '.join(names)} needs at least {n_splits} so that every split sees it"
            )
            if rare == "raise":
                raise DataError(message + ". Use more data, or drop the label.")
            warnings.warn(message + f"; {' or '.join(names[1:])} will lack it.", stacklevel=3)

    rng = np.random.default_rng(seed)
    rank = np.empty(n_patients, dtype=np.int64)
    rank[rng.permutation(n_patients)] = np.arange(n_patients)
    want_label = frac[:, None] * counts.sum(axis=0)[None, :]
    want_images = frac * images.sum()
    present = np.zeros((n_splits, len(LABELS)), dtype=np.int64)
    assign = np.full(n_patients, -1, dtype=np.int64)

    def put(p: int, s: int) -> None:
        assign[p] = s
        want_label[s] -= counts[p]
        want_images[s] -= images[p]
        present[s] += has[p]

    def best(scores: np.ndarray) -> int:
        top = np.flatnonzero(np.isclose(scores, scores.max()))
        if len(top) > 1:
            img = want_images[top]
            top = top[np.isclose(img, img.max())]
        return int(top[0] if len(top) == 1 else rng.choice(top))

    seed_order = np.argsort(frac, kind="stable")  # smallest split first: it is the one at risk
    while True:
        free = assign < 0
        remaining = np.where(has[free].sum(axis=0) > 0, has[free].sum(axis=0), np.iinfo(np.int64).max)
        if remaining.min() == np.iinfo(np.int64).max:
            break
        label = int(np.argmin(remaining))
        group = np.flatnonzero(free & has[:, label])
        group = list(group[np.argsort(rank[group])])
        for s in seed_order if required[label] else ():
            if present[s, label] == 0 and group:
                gap_here = (present[s] == 0) & required
                pick = min(group, key=lambda p: (-int((has[p] & gap_here).sum()), images[p], rank[p]))
                group.remove(pick)
                put(pick, int(s))
        for p in group:
            put(p, best(want_label[:, label]))
    for p in np.flatnonzero(assign < 0)[np.argsort(rank[assign < 0])]:
        put(int(p), best(want_images.copy()))

    # Repair: while a split lacks a label, move one of the label's patients into it, or swap one
    # with a patient of that split; take the change that leaves the fewest (split, label) gaps (it
    # must leave fewer than before, so this ends), then the fewest images shifted.
    def gaps(rows: np.ndarray) -> np.ndarray:
        return ((rows == 0) & required).sum(axis=-1)

    def relocate(p: int, s: int) -> None:
        t = assign[p]
        present[t] -= has[p]
        want_label[t] += counts[p]
        want_images[t] += images[p]
        put(p, s)

    label_order = [int(j) for j in np.argsort(per_label, kind="stable") if required[j]]
    given_up: set[tuple[int, int]] = set()
    while True:
        gap = next(
            ((int(s), j) for j in label_order for s in seed_order if present[s, j] == 0
             and (int(s), j) not in given_up),
            None,
        )
        if gap is None:
            break
        s, label = gap
        members = np.flatnonzero(assign == s)
        sizes = np.bincount(assign, minlength=n_splits)
        choice = None  # (change in gaps, images shifted, rank, patient, swap partner or -1)
        for p in np.flatnonzero(has[:, label]):
            t = int(assign[p])
            before = gaps(present[t]) + gaps(present[s])
            hp = has[p].astype(np.int64)
            if sizes[t] > 1:
                after = gaps(present[t] - hp) + gaps(present[s] + hp)
                option = (int(after - before), float(images[p]), int(rank[p]), int(p), -1)
                choice = option if choice is None else min(choice, option)
            if len(members):
                hq = has[members].astype(np.int64)
                after = gaps(present[t] - hp + hq) + gaps(present[s] + hp - hq)
                shift = np.abs(images[members] - images[p])
                k = int(np.lexsort((rank[members], shift, after))[0])
                option = (int(after[k] - before), float(shift[k]), int(rank[p]), int(p), int(members[k]))
                choice = min(choice, option) if choice is not None else option
        if choice is None or choice[0] >= 0:
            given_up.add((s, label))
            continue
        _, _, _, p, q = choice
        t = int(assign[p])
        relocate(p, s)
        if q >= 0:
            relocate(q, t)
    if given_up:
        # Few patients, many labels each: the greedy pass can paint itself into a corner. Ask an
        # exact solver for an assignment that gives every split every label, closest to the quotas.
        exact = _cover_exactly(has & required, images, frac * images.sum(), assign)
        if exact is not None:
            assign = exact
        else:
            for s, label in sorted(given_up, key=lambda g: (per_label[g[1]], g[0])):
                message = (
                    f"Label {LABELS[label]!r} cannot be placed in the {names[s]} split {where}: it has "
                    f"{int(per_label[label])} patients, and no assignment of whole patients gives every "
                    "split every label (checked exactly: the rare labels share patients)"
                )
                if rare == "raise":
                    raise DataError(message + ". Use more data, or drop the label.")
                warnings.warn(message + f"; {names[s]} will lack it.", stacklevel=3)
    if np.any(np.bincount(assign, minlength=n_splits) == 0):
        empty = names[int(np.argmin(np.bincount(assign, minlength=n_splits)))]
        raise DataError(f"The {empty} split would be empty {where}: too few patients for these fractions.")
    given = np.bincount(assign, weights=images, minlength=n_splits) / images.sum()
    for s, name in enumerate(names):
        if given[s] > max(2 * frac[s], frac[s] + 0.05):
            warnings.warn(f"The {name} split holds {given[s]:.0%} of the images {where}, not the {frac[s]:.0%} asked: "
                          f"every split must see each label with {n_splits} or more patients, which takes at least "
                          "that many whole patients. Ask for a larger fraction, or use more data.", stacklevel=3)
    return assign[inverse]


def _cover_exactly(has: np.ndarray, images: np.ndarray, target: np.ndarray, start: np.ndarray) -> np.ndarray | None:
    """A split index per patient such that every split has every label in ``has``, or None if none exists.

    A small integer programme (SciPy's HiGHS): minimise the distance of each split's image count
    from ``target``, and, far behind, the number of patients moved from ``start``. Patients without
    a label stay where ``start`` put them when there are many of them.
    """
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import lil_matrix
    except ImportError:  # pragma: no cover - SciPy comes with scikit-learn
        return None
    n_patients, n_splits = len(images), len(target)
    free = np.flatnonzero(has.any(axis=1)) if n_patients > 3000 else np.arange(n_patients)
    fixed = np.setdiff1d(np.arange(n_patients), free)
    fixed_images = np.array([images[fixed][start[fixed] == s].sum() for s in range(n_splits)])
    fixed_has = np.array([has[fixed][start[fixed] == s].sum(axis=0) for s in range(n_splits)])
    n_free = len(free)
    n_x = n_free * n_splits  # x[i, s] = patient free[i] in split s; then one deviation per split
    rows: list[tuple[dict[int, float], float, float]] = []
    for i in range(n_free):
        rows.append(({i * n_splits + s: 1.0 for s in range(n_splits)}, 1.0, 1.0))
    for label in np.flatnonzero(has.any(axis=0)):
        carriers = np.flatnonzero(has[free, label])
        for s in range(n_splits):
            if fixed_has[s, label] == 0:
                rows.append(({int(i) * n_splits + s: 1.0 for i in carriers}, 1.0, np.inf))
    for s in range(n_splits):
        coeffs = {i * n_splits + s: float(images[free[i]]) for i in range(n_free)}
        rest = float(target[s] - fixed_images[s])
        rows.append(({**coeffs, n_x + s: -1.0}, -np.inf, rest))  # sum - d <= target
        rows.append(({**coeffs, n_x + s: 1.0}, rest, np.inf))  # sum + d >= target
        rows.append(({i * n_splits + s: 1.0 for i in range(n_free)}, 1.0 if fixed_images[s] == 0 else 0.0, np.inf))
    matrix = lil_matrix((len(rows), n_x + n_splits))
    for r, (coeffs, _, _) in enumerate(rows):
        for c, v in coeffs.items():
            matrix[r, c] = v
    cost = np.zeros(n_x + n_splits)
    cost[n_x:] = 1.0
    stay = 1.0 / (n_free + 1)  # moving every patient costs less than one image of imbalance
    for i, p in enumerate(free):
        cost[i * n_splits + int(start[p])] = -stay
    result = milp(
        cost,
        constraints=LinearConstraint(matrix.tocsr(), [r[1] for r in rows], [r[2] for r in rows]),
        integrality=np.r_[np.ones(n_x), np.zeros(n_splits)],
        bounds=Bounds(np.zeros(n_x + n_splits), np.r_[np.ones(n_x), np.full(n_splits, np.inf)]),
        options={"time_limit": 30.0},
    )
    if result.x is None or not result.success:
        return None
    assign = start.copy()
    assign[free] = np.argmax(result.x[:n_x].reshape(n_free, n_splits), axis=1)
    return assign


def patient_split(
    entries: pd.DataFrame, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42, rare: str = "raise"
) -> dict[str, pd.DataFrame]:
    """Patient-level, multi-label stratified train/val/test split: every label in val and test, no patient in two
    splits.

    A label with fewer patients than splits cannot be in every split: ``rare="raise"`` refuses (the default),
    ``rare="warn"`` says which splits will lack it and goes on (a partial copy of a real dataset).

    Taught in 01_preprocessing_and_splits.
    """
    if rare not in ("raise", "warn"):
        raise ValueError(f"rare must be 'raise' or 'warn', not {rare!r}.")
    _check_fractions({"val": val_fraction, "test": test_fraction})
    seed = _check_seed(seed)
    val_fraction, test_fraction = float(val_fraction), float(test_fraction)
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    which = _stratify(entries, fractions, seed, where="in these entries", rare=rare)
    splits = {name: entries[which == i] for i, name in enumerate(fractions)}
    assert_no_patient_overlap(**splits)
    return splits


def official_split(dataset: NIHDataset, *, val_fraction: float = 0.1, seed: int = 42) -> dict[str, pd.DataFrame]:
    """The NIH split: test from test_list.txt, val carved patient-level (stratified) out of train_val_list.txt.

    Taught in 01_preprocessing_and_splits.
    """
    _check_fractions({"val": val_fraction})
    seed, val_fraction = _check_seed(seed), float(val_fraction)
    lists = dataset.official_split
    if not lists:
        raise DataError(
            f"{dataset.root}: {SPLIT_FILES['train_val']} and {SPLIT_FILES['test']} are needed for the official "
            "split (they come with the NIH release). Use patient_split() without them."
        )
    entries = dataset.entries
    in_csv = set(entries["image_index"])
    skipped = set(dataset.skipped["image_index"]) if len(dataset.skipped) else set()
    for key, names in lists.items():
        unknown = [n for n in names if n not in in_csv and n not in skipped]
        if unknown:
            raise DataError(
                f"{dataset.root / SPLIT_FILES[key]}: {len(unknown)} image(s) are not in the Data_Entry CSV, "
                f"e.g. {', '.join(unknown[:_MAX_LISTED])}. The list and the CSV come from different copies: "
                "restore both from the same release."
            )
    both = set(lists["train_val"]) & set(lists["test"])
    if both:
        raise DataError(
            f"{dataset.root}: {len(both)} image(s) are in both {SPLIT_FILES['train_val']} and {SPLIT_FILES['test']}, "
            f"e.g. {', '.join(sorted(both)[:_MAX_LISTED])}."
        )
    for key in ("test", "train_val"):
        if not lists[key]:
            raise DataError(f"{dataset.root / SPLIT_FILES[key]}: the list is empty (no image names): restore it from "
                            "the NIH release, or delete both lists and use patient_split().")
    listed = set(lists["train_val"]) | set(lists["test"])
    unlisted = [n for n in entries["image_index"] if n not in listed]
    if unlisted:
        raise DataError(
            f"{dataset.root}: {len(unlisted)} image(s) of the CSV are in neither {SPLIT_FILES['train_val']} nor "
            f"{SPLIT_FILES['test']}, e.g. {', '.join(unlisted[:_MAX_LISTED])}: the files come from different copies."
        )
    is_test = entries["image_index"].isin(set(lists["test"])).to_numpy()
    test, train_val = entries[is_test], entries[~is_test]
    if len(test) == 0 or len(train_val) == 0:
        raise DataError(f"{dataset.root}: the official {'test' if len(test) == 0 else 'train_val'} split is empty.")
    which = _stratify(
        train_val, {"train": 1.0 - val_fraction, "val": val_fraction}, seed,
        where=f"in {SPLIT_FILES['train_val']}", rare="warn",
    )
    splits = {"train": train_val[which == 0], "val": train_val[which == 1], "test": test}
    assert_no_patient_overlap(**splits)
    return splits


SPLIT_METHODS = ("official", "patient")


def classifier_split(dataset: NIHDataset, method: str = "official", *, val_fraction: float = 0.1,
                     test_fraction: float = 0.2, seed: int = 42) -> tuple[dict[str, pd.DataFrame], str]:
    """Notebook 02's split, recomputed the same way by 04 to 07: (split, what it is).

    ``"official"``: NIH's lists (the test list, validation carved out of train_val), which every boxed image of
    the release, and of the synthetic set, belongs to; a copy without the lists falls back on the patient split,
    and the description says so. ``"patient"``: the stratified patient split of notebook 01.

    Taught in 02_densenet_transfer.
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"split method {method!r}: use one of {', '.join(SPLIT_METHODS)}.")
    if method == "official" and dataset.official_split is not None:
        return official_split(dataset, val_fraction=val_fraction, seed=seed), "official NIH lists"
    split = patient_split(dataset.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    share = f"{1 - val_fraction - test_fraction:.0%}/{val_fraction:.0%}/{test_fraction:.0%}"
    if method == "official":
        return split, (f"stratified patient split {share}: this copy has no {SPLIT_FILES['train_val']} and "
                       f"{SPLIT_FILES['test']}, so comparisons with Wang et al. are not like for like")
    return split, f"stratified patient split {share}"


def random_split(
    entries: pd.DataFrame, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42
) -> dict[str, pd.DataFrame]:
    """The LEAKY image-level split (a patient's images land in several splits), kept to show what leakage costs.

    Taught in 01_preprocessing_and_splits.
    """
    _check_fractions({"val": val_fraction, "test": test_fraction})
    seed = _check_seed(seed)
    n = len(entries)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if min(n_val, n_test, n - n_val - n_test) <= 0:
        raise DataError(f"A random split of {n} image(s) with these fractions would leave a split empty.")
    order = np.random.default_rng(seed).permutation(n)
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    return {name: entries.iloc[np.sort(parts[name])] for name in ("train", "val", "test")}


def _patient_ids(split: Any, name: str) -> np.ndarray:
    if isinstance(split, pd.DataFrame):
        for column in ("patient_id", "Patient ID"):
            if column in split.columns:
                return _normalise_ids(split[column].to_numpy(), f"split {name!r}")
        hint = (" It has image names (image_index): pass the patient_id column, or the DataFrame read_nih gives, which "
                "holds both." if "image_index" in split.columns or "Image Index" in split.columns else "")
        raise DataError(f"Split {name!r} has no 'patient_id' column.{hint}")
    return _normalise_ids(pd.Series(split).to_numpy(), f"split {name!r}")


def assert_no_patient_overlap(**splits: Any) -> None:
    """Raise PatientLeakageError counting the patients shared by each pair of splits (their IDs in ``.patients``).

    IDs are compared by value after normalising them: 13, 13.0, "13" and "00000013" are one patient.
    Splits whose IDs are of different kinds (numbers in one, text in another) are refused.

    Taught in 01_preprocessing_and_splits.
    """
    arrays = {name: _patient_ids(split, name) for name, split in splits.items()}
    kinds = {name: ("text" if a.dtype.kind == "U" else "number") for name, a in arrays.items() if a.size}
    if len(set(kinds.values())) > 1:
        described = ", ".join(f"{name}: {kind}" for name, kind in kinds.items())
        raise DataError(
            f"Patient IDs of different kinds ({described}): they cannot be compared, so leakage cannot be ruled "
            "out. Use the same ID column (whole numbers, or the same text IDs) in every split."
        )
    ids = {name: set(a.tolist()) for name, a in arrays.items()}
    names = list(ids)
    shared: list[str] = []
    leaked: set = set()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = ids[a] & ids[b]
            if common:
                leaked |= common
                shared.append(f"{a} & {b} share {len(common)} patient(s)")
    if leaked:
        # Patient IDs are identifiers: the message counts them; the IDs are on the error for those who ask.
        err = PatientLeakageError(
            f"Patient leakage: {len(leaked)} patient(s) appear in more than one split.\n  "
            + "\n  ".join(shared)
            + "\nA patient's images must all sit in one split: use patient_split() or official_split(), "
            "not an image-level split. The IDs are in this error's .patients."
        )
        err.patients = sorted(leaked)
        raise err
