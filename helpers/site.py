"""Your own films: a site's export (DICOM, PNG or JPEG files and one label file) read for external validation.

A PACS export is a folder of files with any names in any sub-folders (``STUDY0001/IM0001.dcm``, or the
patient's name); the labels come in one CSV whose template ships with the series
(``helpers/data/manifests/site_labels.csv``, described in ``site.md`` beside it): one row per image, the file
relative to the folder, the patient's ID, a 0/1 column for each finding the site has labels for (any subset
of the fourteen; a blank cell: not labelled for that image), and, where known, ``sex``, ``age`` and ``view``.
Every image goes through the chest report's reader (``report.read_chest``: the format told by content, the
DICOM checks on body part, view, grey levels and LUTs); a file it refuses is listed with its reason, by the
row of the label file, never by its name unless ``keep_identity=True``. Patient IDs are replaced, in memory,
by keyed pseudonyms (a fresh key per read), so they group images but are never printed. Taught in
09_your_own_films.
"""

from __future__ import annotations

import hashlib
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.datasets import LABELS
from helpers.errors import DataError

LABEL_FILE = "labels.csv"  # the label file's name in a site folder, unless another is given
REQUIRED = ("file", "patient_id")
OPTIONAL = ("sex", "age", "view")
AGE_BANDS = (0, 40, 60, 200)  # [0, 40), [40, 60), [60, ...): the bands of the subgroup audit
SEXES = ("F", "M")
VIEWS = ("PA", "AP")
TEMPLATE = Path(__file__).resolve().parent / "data" / "manifests" / "site_labels.csv"


@dataclass
class SiteDataset:
    """A site's films read for a model: images, their labels and who they belong to (pseudonyms), and what was refused.

    Taught in 09_your_own_films.
    """

    root: Path
    # row (line of the label file), patient (pseudonym), the labelled findings, sex, age, age_band, view
    entries: pd.DataFrame
    images: np.ndarray = field(repr=False)  # (n, size, size, 1) float32 in [0, 1], in the order of entries
    labels: list[str]  # the findings this site has labels for, in the series' order
    refused: pd.DataFrame  # row, file (pseudonym unless keep_identity), reason
    unknown_columns: list[str]
    unlabelled_files: int  # image files in the folder that no row of the label file names

    def summary(self) -> str:
        """One paragraph: what was read, refused and ignored (no names, no IDs).

        Taught in 09_your_own_films.
        """
        known = [c for c in OPTIONAL if self.entries[c].notna().any()]
        return (f"{len(self.entries)} images of {self.entries['patient'].nunique()} patients read; "
                f"{len(self.refused)} refused; {self.unlabelled_files} file(s) in the folder without a label row; "
                f"labels for {len(self.labels)} of the 14 findings ({', '.join(self.labels)}); "
                f"known: {', '.join(known) if known else 'no sex, age or view'}"
                + (f"; columns not used: {', '.join(self.unknown_columns)}" if self.unknown_columns else ""))


def _pseudonymise(ids: pd.Series) -> pd.Series:
    """Keyed hashes of the IDs (a fresh random key per call): equal IDs stay equal, none can be looked up."""
    key = secrets.token_bytes(16)
    return ids.map(
        lambda value: "patient-" + hashlib.blake2b(str(value).strip().encode(), key=key, digest_size=5).hexdigest())


def _findings(table: pd.DataFrame, path: Path) -> list[str]:
    by_lower = {label.lower(): label for label in LABELS}
    renames, found = {}, []
    for column in table.columns:
        label = by_lower.get(str(column).strip().lower())
        if label is not None:
            renames[column] = label
            found.append(label)
    if not found:
        raise DataError(f"{path}: no finding column: name at least one column as a finding of the series "
                        f"({', '.join(LABELS)}), 1 where the image has it, 0 where it has not.")
    table.columns = [renames.get(c, c) for c in table.columns]
    for label in found:
        values = pd.to_numeric(table[label], errors="coerce")
        bad = table[label].notna() & values.isna() | ~values.isin([0, 1]) & values.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}, line {first + 2}: {label} is {table[label].iloc[first]!r}; a finding column "
                            "holds 1 (present), 0 (absent) or nothing (not labelled for this image).")
        table[label] = values
    return [label for label in LABELS if label in found]


def _demographics(table: pd.DataFrame, path: Path) -> None:
    if "sex" in table:
        sex = table["sex"].astype("string").str.strip().str.upper().str[:1]
        bad = sex.notna() & ~sex.isin(SEXES)
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}, line {first + 2}: sex {table['sex'].iloc[first]!r}; "
                            "write M, F or leave it empty.")
        table["sex"] = sex.astype(object).where(sex.notna(), None)
    if "age" in table:
        age = pd.to_numeric(table["age"].astype("string").str.strip().str.rstrip("Yy"), errors="coerce")
        bad = (table["age"].notna() & age.isna()) | (age < 0) | (age > 120)
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}, line {first + 2}: age {table['age'].iloc[first]!r}; write the age in years (0 to "
                            "120) or leave it empty.")
        table["age"] = age
    if "view" in table:
        view = table["view"].astype("string").str.strip().str.upper()
        table["view"] = view.astype(object).where(view.notna(), None)
    for column in OPTIONAL:
        if column not in table:
            table[column] = None
    bands = pd.cut(pd.to_numeric(table["age"], errors="coerce"), list(AGE_BANDS), right=False,
                   labels=[f"{a}-{b - 1}" if b < 200 else f"{a}+" for a, b in zip(AGE_BANDS, AGE_BANDS[1:])])
    table["age_band"] = bands.astype(object).where(bands.notna(), None)


def read_site(root, labels_file=None, *, image_size: int, keep_identity: bool = False,
              allow_non_chest: bool = False) -> SiteDataset:
    """Read a site's folder of films and its label CSV (``labels.csv`` in the folder by default) at ``image_size``.

    Taught in 09_your_own_films.
    """
    from helpers import report  # the report's reader: one set of checks for a report and for a site

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder. Point read_site at the folder of the site's export.")
    path = Path(labels_file) if labels_file is not None else root / LABEL_FILE
    if not path.is_file():
        raise DataError(f"{path}: the label file is missing. Write one row per image as in the template "
                        f"{TEMPLATE.name} (helpers/data/manifests): file, patient_id, a column per finding.")
    table = pd.read_csv(path, dtype=str, keep_default_na=True, skipinitialspace=True)
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no {' or '.join(missing)} column; the label file needs file (relative to the folder) "
                        "and patient_id, then a 0/1 column per finding.")
    labels = _findings(table, path)
    if table["patient_id"].isna().any():
        first = int(np.flatnonzero(table["patient_id"].isna().to_numpy())[0])
        raise DataError(f"{path}, line {first + 2}: no patient_id; every image needs its patient (images of one "
                        "patient are kept together when the films are split).")
    _demographics(table, path)
    known = set(REQUIRED) | set(OPTIONAL) | set(labels) | {"age_band"}
    unknown = [c for c in table.columns if c not in known]
    if unknown:
        warnings.warn(f"{path.name}: column(s) {', '.join(unknown)} are not used (not a finding of the series, nor "
                      f"{', '.join(REQUIRED + OPTIONAL)}).", UserWarning, stacklevel=2)
    table.insert(0, "row", np.arange(2, len(table) + 2))  # the line of the label file (its header is line 1)
    table["patient"] = _pseudonymise(table["patient_id"])
    images, kept, refused = [], [], []
    for index, entry in table.iterrows():
        file = root / str(entry["file"]).strip()
        shown = str(entry["file"]) if keep_identity else f"row {entry['row']}"
        try:
            item = report.read_chest(file, image_size, display_size=image_size, source_name=shown,
                                     keep_identity=keep_identity, allow_non_chest=allow_non_chest)
        except report.ReportError as err:
            reason = str(err) if keep_identity else report._said_about(str(err), file, shown)
            refused.append({"row": entry["row"], "file": shown, "reason": reason})
            continue
        images.append(item.model)
        kept.append(index)
    named = {(root / str(f).strip()).resolve() for f in table["file"]}
    files = [p for p in root.rglob("*") if p.is_file() and p.resolve() != path.resolve() and not p.name.startswith(".")]
    entries = table.loc[kept, ["row", "patient", *labels, "sex", "age", "age_band", "view"]].reset_index(drop=True)
    array = np.stack(images).astype(np.float32) if images else np.zeros((0, image_size, image_size, 1), np.float32)
    return SiteDataset(root, entries, array, labels, pd.DataFrame(refused, columns=["row", "file", "reason"]), unknown,
                       sum(p.resolve() not in named for p in files))
