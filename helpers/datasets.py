"""The NIH ChestX-ray14 reader: labels, boxes, the official lists, Google's adjudicated labels.

One code path for the real dataset and the synthetic one (``helpers.synthetic`` writes the real
layout). Every problem with the data raises :class:`helpers.errors.DataError` naming the file and
the row, and saying what to do; ``read_nih(root, errors="skip")`` keeps going and lists every row
it left out in ``.skipped`` instead. The splits are in ``helpers.splits``, the DRIVE reader in
``helpers.fundus``, the check of a local copy against its manifest in ``helpers.manifests``.

The real NIH metadata (all 112,120 rows, no images) ships in ``NIH_METADATA_DIR``:
``read_nih(NIH_METADATA_DIR, images="none")``; Google's adjudicated labels: ``read_google_labels()``.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import io
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.errors import DataError

LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
# The eight findings with boxes in BBox_List_2017.csv: the first eight of LABELS.
BOX_LABELS: tuple[str, ...] = LABELS[:8]
# BBox_List_2017.csv spells one label differently from Data_Entry_2017.csv.
_BOX_SPELLINGS = {"Infiltrate": "Infiltration"}

DATA_ENTRY_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
BBOX_FILE = "BBox_List_2017.csv"
SPLIT_FILES = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
IMAGES_DIR = "images"
# The real NIH metadata (no images) shipped with the series: Data_Entry, boxes, Google's labels (gzipped).
NIH_METADATA_DIR = Path(__file__).resolve().parent / "data" / "nih"

ENTRY_COLUMNS = (
    "image_index",
    "path",
    "patient_id",
    "follow_up",
    "age",
    "gender",
    "view",
    "original_width",
    "original_height",
) + LABELS
BOX_COLUMNS = ("image_index", "label", "x", "y", "w", "h", "image_width", "image_height", "path")
SKIPPED_COLUMNS = ("file", "line", "image_index", "reason")

# A box may poke out of its image by this much (pixels) before it counts as outside: the NIH boxes
# are floats rescaled from the annotation screen, so x + w can land a hair past 1024.
BOX_TOLERANCE = 1.0
_MAX_LISTED = 10
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def safe_path(root: str | Path, relative: str | Path) -> Path:
    """Join ``relative`` under ``root``, refusing absolute paths and ``../`` escapes (DataError naming the entry).

    Taught in 01_preprocessing_and_splits.
    """
    text = str(relative)
    root_abs = os.path.normpath(os.path.abspath(os.fspath(root)))
    if not text.strip() or "\x00" in text:
        raise DataError(f"Path entry {text!r} is empty or contains a NUL byte: expected a file name inside {root_abs}.")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise DataError(
            f"Path entry {text!r} is an absolute path: the data files may only name files inside the "
            f"data folder {root_abs}. Fix the entry (or the file that lists it)."
        )
    # Checked lexically, treating a backslash as a separator too: the data files must not climb out
    # of the folder. A folder the user symlinked in on purpose (images/ on a bigger disk) is accepted.
    for candidate in (text, text.replace("\\", "/")):
        joined = os.path.normpath(os.path.join(root_abs, candidate))
        if os.path.commonpath([root_abs, joined]) != root_abs:
            raise DataError(
                f"Path entry {text!r} escapes the data folder {root_abs} ('..'): refusing to read it. "
                "Fix the entry (or the file that lists it)."
            )
    return Path(os.path.normpath(os.path.join(root_abs, text)))


# --------------------------------------------------------------------------------------------
# PNG headers, read without decoding
# --------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IEND_CHUNK = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png_size(path: str | Path, *, check_end: bool = True) -> tuple[int, int]:
    """Width and height from the IHDR chunk; with ``check_end`` also require the IEND chunk at the end.

    Raises ``ValueError`` with a short reason (the callers add the file and the row).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(33)
            if check_end:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 1024))
                tail = fh.read()
    except FileNotFoundError:
        raise ValueError("image file not found") from None
    except IsADirectoryError:
        raise ValueError("is a folder, not a PNG file") from None
    except OSError as err:
        raise ValueError(f"cannot read the file ({err.strerror or err})") from None
    if len(head) < 8 or head[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG file (wrong signature)")
    if len(head) < 33 or head[12:16] != b"IHDR" or struct.unpack(">I", head[8:12])[0] != 13:
        raise ValueError("corrupt PNG: no IHDR chunk after the signature")
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise ValueError("corrupt PNG: the IHDR chunk fails its CRC")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise ValueError(f"corrupt PNG: IHDR says {width}x{height}")
    if check_end and _IEND_CHUNK not in tail:
        raise ValueError("truncated PNG: no IEND chunk at the end of the file")
    return int(width), int(height)


_PNG_ADVICE = (
    "Download its archive (images_001.tar.gz .. images_012.tar.gz) again and re-extract it, or call "
    "read_nih(root, errors='skip') to leave the row out (it is then listed in .skipped)."
)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------

_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}


def _encode_labels(text: Any) -> np.ndarray:
    """Multi-hot uint8 vector for one ``Finding Labels`` cell; ``ValueError`` with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty Finding Labels ({text!r}): write {NO_FINDING!r} for an image with none of the 14")
    vector = np.zeros(len(LABELS), dtype=np.uint8)
    tokens = [token.strip() for token in text.split("|")]
    if tokens == [NO_FINDING]:
        return vector
    for token in tokens:
        index = _LABEL_INDEX.get(token)
        if index is None:
            if token == NO_FINDING:
                raise ValueError(f"{NO_FINDING!r} together with findings in {text!r}")
            parts = [part.strip() for part in re.split(r"[,;/+]", token) if part.strip()]
            if len(parts) > 1 and all(part in _LABEL_INDEX or part == NO_FINDING for part in parts):
                raise ValueError(f"{token!r} in {text!r} holds {len(parts)} findings separated by "
                                 f"{re.search(r'[,;/+]', token).group()!r}: findings are separated by '|', e.g. "
                                 f"{'|'.join(parts)!r}")
            hint = difflib.get_close_matches(token, LABELS + (NO_FINDING,), n=1, cutoff=0.6)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"unknown label {token!r} in {text!r}{suggestion}. Valid labels: "
                f"{', '.join(LABELS)}, or {NO_FINDING!r} alone"
            )
        vector[index] = 1
    return vector


def parse_labels(finding_labels: pd.Series) -> pd.DataFrame:
    """Turn ``Finding Labels`` strings ("A|B", "No Finding") into uint8 multi-hot columns in LABELS order.

    Taught in 01_preprocessing_and_splits.
    """
    series = pd.Series(finding_labels)
    out = np.zeros((len(series), len(LABELS)), dtype=np.uint8)
    for row, (index, text) in enumerate(series.items()):
        try:
            out[row] = _encode_labels(text)
        except ValueError as err:
            raise DataError(f"Finding Labels, row {index!r}: {err}.") from None
    return pd.DataFrame(out, index=series.index, columns=list(LABELS))


# --------------------------------------------------------------------------------------------
# CSV headers: named columns, plus the bracketed pairs that the NIH header splits in two
# --------------------------------------------------------------------------------------------


def _norm(cell: str) -> str:
    return re.sub(r"\s+", "", cell).lower()


# key -> accepted spellings of the header cell (normalised: no spaces, lower case)
_ENTRY_NAMED = {
    "image_index": ("imageindex",),
    "finding_labels": ("findinglabels",),
    "follow_up": ("follow-up#", "followup#", "follow-up"),
    "patient_id": ("patientid",),
    "age": ("patientage",),
    "gender": ("patientgender", "patientsex"),
    "view": ("viewposition",),
}
_ENTRY_DISPLAY = {
    "image_index": "Image Index",
    "finding_labels": "Finding Labels",
    "follow_up": "Follow-up #",
    "patient_id": "Patient ID",
    "age": "Patient Age",
    "gender": "Patient Gender",
    "view": "View Position",
    "original_width": "OriginalImage[Width,Height]",
}


def _entry_columns(header: Sequence[str], path: Path) -> dict[str, int]:
    """Map each Data_Entry field to its column position, validating the header text."""
    cells = [_norm(c) for c in header]
    where: dict[str, int] = {}
    for key, spellings in _ENTRY_NAMED.items():
        hits = [i for i, c in enumerate(cells) if c in spellings]
        if hits:
            where[key] = hits[0]
    # "OriginalImage[Width,Height]" is one name with a comma in it, written unquoted: the csv module
    # reads two cells, "OriginalImage[Width" and "Height]", above two value columns. Map by position.
    for i, cell in enumerate(cells):
        if cell.startswith("originalimage["):
            if cell == "originalimage[width" and i + 1 < len(cells) and cells[i + 1] == "height]":
                where["original_width"], where["original_height"] = i, i + 1
            else:
                raise DataError(
                    f"{path}: header cells {header[i:i + 2]!r} at columns {i + 1}-{i + 2} are not "
                    "'OriginalImage[Width', 'Height]' as in the NIH release: is this the right file?"
                )
    missing = [_ENTRY_DISPLAY[k] for k in _ENTRY_DISPLAY if k not in where]
    if missing:
        raise DataError(
            f"{path}: required column(s) {', '.join(repr(m) for m in missing)} not found in the header "
            f"{','.join(header)!r}. Expected the NIH header 'Image Index,Finding Labels,Follow-up #,"
            "Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],"
            "OriginalImagePixelSpacing[x,y]' (Data_Entry_2017_v2020.csv or Data_Entry_2017.csv)."
        )
    return where


def _bbox_header_ok(header: Sequence[str], path: Path) -> None:
    """Validate the broken BBox header ``Image Index,Finding Label,Bbox [x,y,w,h],,,`` by position."""
    cells = [_norm(c) for c in header]
    coords = cells[2:6]
    ok = (
        len(cells) >= 6
        and cells[0] == "imageindex"
        and cells[1] == "findinglabel"
        and coords in (["bbox[x", "y", "w", "h]"], ["x", "y", "w", "h"])
        and all(c == "" or c.startswith("unnamed:") for c in cells[6:])
    )
    if not ok:
        raise DataError(
            f"{path}: the header {','.join(header)!r} is not the NIH box header "
            "'Image Index,Finding Label,Bbox [x,y,w,h],,,' (image, label, then x, y, w, h in columns "
            "3 to 6). Is this BBox_List_2017.csv?"
        )


def _csv_text(path: Path) -> str:
    """The text of a CSV file (gzipped or not), or a DataError that says what was detected and how to save it."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a CSV file.") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err}).") from None
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(
                f"{path}: not a readable gzip file ({err}): download it again, or save the CSV uncompressed "
                "without the .gz ending."
            ) from None
    save_as = "Save it as comma-separated values in UTF-8 (in a spreadsheet: 'CSV UTF-8 (comma delimited)')."
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:512]:
        raise DataError(f"{path}: the file is UTF-16 text (a byte-order mark or NUL bytes were detected). {save_as}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        near = raw[max(0, err.start - 15):err.end + 15].decode("latin-1")
        raise DataError(
            f"{path}: not UTF-8 text: byte 0x{raw[err.start]:02x} on line {line} (near {near!r}) looks like "
            f"Latin-1 / Windows-1252. {save_as}"
        ) from None


def _read_csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of each non-blank row; errors name the file.

    ``.csv.gz`` files are read as they are. A file that is not UTF-8, or whose header is separated by
    semicolons or tabs, is refused with what was detected. A file with a header and no rows gives an
    empty list: each reader decides what that means.
    """
    text = _csv_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None or not any(c.strip() for c in header):
            raise DataError(f"{path}: the file is empty; expected a header row and one row per image.")
        # The first header cell is a plain name ("Image Index"): a separator inside it means the file
        # uses another one (a spreadsheet's ';' export still splits at the commas of "[Width,Height]").
        for sep, name in ((";", "semicolons (';')"), ("\t", "tabs"), ("|", "bars ('|')")):
            if sep in header[0]:
                raise DataError(
                    f"{path}: the header {','.join(header)[:80]!r} is separated by {name}, not commas. Save it as "
                    "comma-separated values in UTF-8 (in a spreadsheet: 'CSV UTF-8 (comma delimited)')."
                )
        rows = [(reader.line_num, cells) for cells in reader if "".join(cells).strip()]
    except csv.Error as err:
        raise DataError(f"{path}: not a readable CSV file ({err}). Is this the right file?") from None
    return header, rows


def _find_file(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` (each also tried with ``.gz``) that is a file under ``root``."""
    for name in names:
        for candidate in (name, name + ".gz"):
            if (root / candidate).is_file():
                return root / candidate
    return None


def _find_data_entry(root: Path) -> Path:
    found = _find_file(root, DATA_ENTRY_FILES)
    if found is None:
        raise DataError(
            f"{root}: no {DATA_ENTRY_FILES[0]} or {DATA_ENTRY_FILES[1]} (or .csv.gz) found. Put the NIH "
            "ChestX-ray14 files there (layout in helpers/data/manifests/nih.md), or check MEDXAI_DATA_DIR."
        )
    return found


def _int_or_none(text: str) -> int | None:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


_DIGITS = re.compile(r"\d+")
_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
_DECIMAL = re.compile(r"\d+\.\d*")
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*[Yy]?")
MAX_AGE = 120  # years; above it an age is a typo (the 2017 file had a few of 148 and 400+; v2020 fixed them)


def _patient_id(text: str) -> int:
    """A patient ID as an int from plain digits ("13", "00000013"); ``ValueError`` with the reason otherwise."""
    value = text.strip()
    if _DIGITS.fullmatch(value):
        return int(value)
    if _EXPONENT.fullmatch(value) or _DECIMAL.fullmatch(value):
        raise ValueError(
            f"Patient ID {text!r} looks like a spreadsheet's number format (exponent or decimal form), "
            "which can turn one patient's ID into another's: export the column as text (whole numbers such as 13)"
        )
    raise ValueError(f"Patient ID {text!r} is not a whole number")


def _whole(text: str, column: str, *, minimum: int) -> int:
    value = _int_or_none(text)
    if value is None:
        raise ValueError(f"{column} {text!r} is not a whole number")
    if value < minimum:
        raise ValueError(f"{column} {text!r} is below {minimum}")
    return value


def _age(text: str) -> float:
    """Age in years from "58" (or "058Y", as some copies of the 2017 file write it); ``ValueError`` with the reason."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        what = "negative" if re.fullmatch(r"\s*-\s*\d+(\.\d+)?\s*[Yy]?\s*", text) else "not a number of years"
        raise ValueError(f"Patient Age {text!r} is {what}")
    age = float(match.group(1))
    if age > MAX_AGE:
        raise ValueError(
            f"Patient Age {age:g} is above {MAX_AGE}: a typo of the 2017 file (Data_Entry_2017_v2020.csv "
            "corrects these ages: use it)"
        )
    return age


# --------------------------------------------------------------------------------------------
# The NIH reader
# --------------------------------------------------------------------------------------------

IMAGE_MODES = ("all", "present", "none")
MISSING_REASON = "image not in this copy"


def _check_images_arg(images: Any, caller: str) -> str:
    if images not in IMAGE_MODES or not isinstance(images, str):
        raise ValueError(
            f"{caller}: images must be 'all' (every listed PNG there and valid), 'present' (a partial copy: "
            f"absent images left out and counted) or 'none' (metadata only), not {images!r}."
        )
    return images


@dataclass(repr=False)
class NIHDataset:
    """The NIH ChestX-ray14 metadata, boxes and official split of one folder, validated.

    Taught in 01_preprocessing_and_splits.
    """

    root: Path
    entries: pd.DataFrame
    boxes: pd.DataFrame
    official_split: dict[str, list[str]] | None = None
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SKIPPED_COLUMNS)))
    images: str = "all"
    missing: int = 0

    @property
    def labels(self) -> np.ndarray:
        """The (N, 14) float32 multi-hot label matrix of ``entries``, columns in LABELS order.

        Taught in 01_preprocessing_and_splits.
        """
        return self.entries[list(LABELS)].to_numpy(dtype=np.float32)

    def __repr__(self) -> str:
        mode = {"all": "all checked", "present": "present ones checked", "none": "none read (metadata only)"}
        missing = f", missing={self.missing:,}" if self.images == "present" else ""
        return (
            f"NIHDataset(root={str(self.root)!r}, images={len(self.entries):,} ({mode[self.images]}), "
            f"patients={self.entries['patient_id'].nunique():,}, boxes={len(self.boxes):,}, "
            f"official_split={'yes' if self.official_split else 'no'}, skipped={len(self.skipped):,}{missing})"
        )


class _Problems:
    """Row-level problems, collected so that one error lists them all (or ``errors='skip'`` keeps them).

    Rows added with ``fatal=False`` (an image absent from a partial copy, a repeated box) are left out
    and listed in ``.skipped`` but never raise.
    """

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.fatal: list[bool] = []

    def add(self, file: Path, line: int, image_index: str, reason: str, *, fatal: bool = True) -> None:
        self.rows.append({"file": str(file), "line": int(line), "image_index": image_index, "reason": reason})
        self.fatal.append(fatal)

    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=list(SKIPPED_COLUMNS))
        return frame.astype({"line": "int64"}) if len(frame) else frame

    def raise_if_any(self, what: str, skip_hint: str) -> None:
        bad = [r for r, fatal in zip(self.rows, self.fatal) if fatal]
        if not bad:
            return
        shown = [f"  {Path(r['file']).name}, line {r['line']} ({r['image_index']}): {r['reason']}"
                 for r in bad[:_MAX_LISTED]]
        more = len(bad) - len(shown)
        raise DataError(
            f"{len(bad)} bad row(s) in {what}:\n" + "\n".join(shown)
            + (f"\n  ... and {more} more" if more else "")
            + f"\nFix or restore these files, or {skip_hint} to leave the rows out (listed in .skipped)."
        )


def _check_errors_arg(errors: str) -> None:
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}.")


def _check_png(path: str | Path, images: str, *, check_end: bool = True) -> tuple[int, int] | None:
    """The PNG's size; None when ``images='present'`` and it is absent; ``ValueError`` when bad."""
    try:
        return _png_size(path, check_end=check_end)
    except ValueError as err:
        if images == "present" and str(err) == "image file not found":
            return None
        raise


def _read_entries(
    csv_path: Path, root: Path, *, images: str, problems: _Problems
) -> tuple[pd.DataFrame, dict[str, tuple[int, int]], int]:
    header, rows = _read_csv_rows(csv_path)
    col = _entry_columns(header, csv_path)
    if not rows:
        raise DataError(
            f"{csv_path}: only a header, no rows: an NIH metadata file lists one row per image. "
            "Restore it from the release (or from helpers/data/nih/)."
        )
    n_fields = len(header)
    images_dir = root / IMAGES_DIR
    images_prefix = os.path.normpath(os.path.abspath(images_dir))
    seen: dict[str, int] = {}
    sizes: dict[str, tuple[int, int]] = {}
    keep: list[list[Any]] = []
    label_rows: list[np.ndarray] = []
    missing = 0
    for line, cells in rows:
        name = cells[col["image_index"]].strip() if len(cells) > col["image_index"] else ""
        if len(cells) != n_fields:
            problems.add(
                csv_path, line, name,
                f"{len(cells)} fields but the header has {n_fields}: a field missing or one too many, so the "
                "values would land in the wrong columns",
            )
            continue
        if name in seen:
            problems.add(csv_path, line, name, f"duplicate Image Index (first on line {seen[name]})")
            continue
        seen[name] = line
        if _PLAIN_NAME.fullmatch(name) and name not in (".", ".."):
            path = os.path.join(images_prefix, name)  # a bare file name cannot escape: skip the checks
        else:
            try:
                path = str(safe_path(images_dir, name))
            except DataError as err:
                problems.add(csv_path, line, name, str(err))
                continue
        try:
            patient = _patient_id(cells[col["patient_id"]])
            labels = _encode_labels(cells[col["finding_labels"]])
            values = [
                _whole(cells[col["follow_up"]], "Follow-up #", minimum=0),
                _age(cells[col["age"]]),
                cells[col["gender"]].strip(),
                cells[col["view"]].strip(),
                _whole(cells[col["original_width"]], "OriginalImage Width", minimum=1),
                _whole(cells[col["original_height"]], "OriginalImage Height", minimum=1),
            ]
        except ValueError as err:
            problems.add(csv_path, line, name, str(err))
            continue
        if images != "none":
            try:
                size = _check_png(path, images)
            except ValueError as err:
                problems.add(csv_path, line, name, f"{err}: {path}. {_PNG_ADVICE}")
                continue
            if size is None:
                problems.add(csv_path, line, name, MISSING_REASON, fatal=False)
                missing += 1
                continue
            sizes[name] = size
        keep.append([name, path, patient, *values])
        label_rows.append(labels)
    frame = pd.DataFrame(keep, columns=list(ENTRY_COLUMNS[:9]))
    for name in ("follow_up", "original_width", "original_height", "patient_id"):
        frame[name] = frame[name].astype("int64")
    ages = frame["age"].astype("float64")
    frame["age"] = ages.astype("int64") if bool((ages % 1 == 0).all()) else ages
    matrix = np.stack(label_rows) if label_rows else np.zeros((0, len(LABELS)), np.uint8)
    frame = pd.concat([frame, pd.DataFrame(matrix, columns=list(LABELS), dtype=np.uint8)], axis=1)
    return frame, sizes, missing


def _read_boxes(
    csv_path: Path,
    images_dir: Path,
    *,
    problems: _Problems,
    images: str,
    known: Mapping[str, str] | None = None,
    skipped_images: Mapping[str, tuple[int, bool]] | None = None,
    sizes: Mapping[str, tuple[int, int]] | None = None,
    entry_file: str = "",
) -> pd.DataFrame:
    header, rows = _read_csv_rows(csv_path)
    _bbox_header_ok(header, csv_path)
    if not rows:
        warnings.warn(
            f"{csv_path}: only a header, no boxes: the box table is empty. If this copy has no boxes, remove "
            "the file; otherwise restore it from the release.",
            stacklevel=3,
        )
    sizes = dict(sizes or {})
    out: list[list[Any]] = []
    seen: dict[tuple, int] = {}
    repeats: list[str] = []
    for line, cells in rows:
        name = cells[0].strip() if cells else ""
        if len(cells) < 6:
            problems.add(csv_path, line, name, f"{len(cells)} fields, expected image, label, x, y, w, h")
            continue
        if any(c.strip() for c in cells[6:]):
            problems.add(csv_path, line, name, f"{len(cells)} fields with values after h: a shifted row?")
            continue
        raw_label = cells[1].strip()
        label = _BOX_SPELLINGS.get(raw_label, raw_label)
        if label not in BOX_LABELS:
            problems.add(
                csv_path, line, name,
                f"unknown box label {raw_label!r}; valid: {', '.join(BOX_LABELS)} (or 'Infiltrate')",
            )
            continue
        try:
            x, y, w, h = (float(c) for c in cells[2:6])
        except ValueError:
            problems.add(csv_path, line, name, f"box {cells[2:6]!r} is not four numbers x, y, w, h")
            continue
        if not all(np.isfinite(v) for v in (x, y, w, h)):
            problems.add(csv_path, line, name, f"box {cells[2:6]!r} is not finite")
            continue
        if w <= 0 or h <= 0:
            problems.add(csv_path, line, name, f"box x={x:g} y={y:g} w={w:g} h={h:g} has zero or negative area")
            continue
        key = (name, label, x, y, w, h)
        if key in seen:
            problems.add(csv_path, line, name, f"duplicate of line {seen[key]} (same image, label and box): kept once",
                         fatal=False)
            repeats.append(f"line {line} repeats line {seen[key]}")
            continue
        seen[key] = line
        if skipped_images is not None and name in skipped_images:
            first, fatal = skipped_images[name]
            reason = MISSING_REASON if not fatal else f"its image was left out of {entry_file} (line {first})"
            problems.add(csv_path, line, name, reason, fatal=fatal)
            continue
        if known is not None and name not in known:
            problems.add(csv_path, line, name, f"image {name!r} is not in {entry_file}")
            continue
        try:
            path = Path(known[name]) if known is not None else safe_path(images_dir, name)
        except DataError as err:
            problems.add(csv_path, line, name, str(err))
            continue
        if name not in sizes:
            if images == "none":
                sizes[name] = (np.nan, np.nan)  # metadata only: the image's size is not read
            else:
                try:
                    size = _check_png(path, images)
                except ValueError as err:
                    problems.add(csv_path, line, name, f"{err}: {path}. {_PNG_ADVICE}")
                    continue
                if size is None:
                    problems.add(csv_path, line, name, MISSING_REASON, fatal=False)
                    continue
                sizes[name] = size
        width, height = sizes[name]
        if x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or (
            np.isfinite(width) and (x + w > width + BOX_TOLERANCE or y + h > height + BOX_TOLERANCE)
        ):
            problems.add(
                csv_path, line, name,
                f"box x={x:g} y={y:g} w={w:g} h={h:g} lies outside its {width}x{height} image",
            )
            continue
        out.append([name, label, x, y, w, h, width, height, str(path)])
    if repeats:
        warnings.warn(
            f"{csv_path}: {len(repeats)} duplicate box(es) (same image, label and coordinates), kept once: "
            + _listing(repeats, _MAX_LISTED) + ". They are listed in .skipped.",
            stacklevel=3,
        )
    frame = pd.DataFrame(out, columns=list(BOX_COLUMNS))
    frame = frame.astype({"x": "float64", "y": "float64", "w": "float64", "h": "float64"})
    for name in ("image_width", "image_height"):
        values = pd.to_numeric(frame[name])
        frame[name] = values.astype("int64") if values.notna().all() else values.astype("float64")
    return frame


def read_boxes(path_or_root: str | Path, *, errors: str = "raise", images: str = "all") -> pd.DataFrame:
    """Read BBox_List_2017.csv(.gz) (a file, or the NIH folder) into image_index, label, x, y, w, h, image size, path.

    ``images`` as in :func:`read_nih`; with ``"none"`` the image sizes are NaN and only the lower
    bounds of the boxes are checked. Duplicate boxes are kept once, with a warning.

    Taught in 01_preprocessing_and_splits.
    """
    _check_errors_arg(errors)
    _check_images_arg(images, "read_boxes")
    given = Path(path_or_root).expanduser().absolute()
    csv_path = (_find_file(given, (BBOX_FILE,)) or given / BBOX_FILE) if given.is_dir() else given
    problems = _Problems()
    frame = _read_boxes(csv_path, csv_path.parent / IMAGES_DIR, problems=problems, images=images)
    if errors == "raise":
        problems.raise_if_any(str(csv_path), "call read_boxes(..., errors='skip')")
    frame.attrs["skipped"] = problems.frame()
    return frame


def _listing(items: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more ({len(items)} in all)" if len(items) > limit else "")


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a text file of image names ({err}).") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_nih(root: str | Path, *, errors: str = "raise", images: str = "all") -> NIHDataset:
    """Read and validate an NIH ChestX-ray14 folder (Data_Entry 2017 or 2020 CSV, boxes, official lists, PNGs).

    ``images``: ``"all"`` (default) every listed image must be in ``images/`` with a valid PNG header;
    ``"present"`` a partial copy: absent images are left out, counted in ``.missing`` and listed in
    ``.skipped`` (reason "image not in this copy"), while corrupt ones are still errors; ``"none"``
    metadata only: no image is opened (paths are still filled), e.g.
    ``read_nih(NIH_METADATA_DIR, images="none")`` for the metadata shipped with the series.
    A Data_Entry file with only a header is an error; a box file with only a header gives no boxes
    and a warning; ``.csv.gz`` files are read as they are.

    Taught in 01_preprocessing_and_splits.
    """
    _check_errors_arg(errors)
    _check_images_arg(images, "read_nih")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found. Point read_nih at the folder holding {DATA_ENTRY_FILES[0]} "
                        "and images/.")
    csv_path = _find_data_entry(root)
    if images != "none" and not (root / IMAGES_DIR).is_dir():
        raise DataError(
            f"{root / IMAGES_DIR}: folder not found, and images={images!r} reads the PNGs. Extract the image "
            "archives there (helpers/data/manifests/nih.md), or call read_nih(root, images='none') "
            "for the metadata only."
        )
    problems = _Problems()
    entries, sizes, missing = _read_entries(csv_path, root, images=images, problems=problems)
    kept = set(entries["image_index"])
    skipped_images: dict[str, tuple[int, bool]] = {}
    for row, fatal in zip(problems.rows, problems.fatal):
        if row["image_index"] not in kept:
            skipped_images.setdefault(row["image_index"], (row["line"], fatal))
    boxes_path = _find_file(root, (BBOX_FILE,))
    if boxes_path is not None:
        boxes = _read_boxes(
            boxes_path,
            root / IMAGES_DIR,
            problems=problems,
            images=images,
            known=dict(zip(entries["image_index"], entries["path"])),
            skipped_images=skipped_images,
            sizes=sizes,
            entry_file=csv_path.name,
        )
    else:
        boxes = pd.DataFrame(columns=list(BOX_COLUMNS))
    if errors == "raise":
        problems.raise_if_any(str(root), "call read_nih(root, errors='skip')")
    split_paths = {key: root / name for key, name in SPLIT_FILES.items()}
    official = None
    if all(p.is_file() for p in split_paths.values()):
        official = {key: _read_list(p) for key, p in split_paths.items()}
    return NIHDataset(
        root=root, entries=entries, boxes=boxes, official_split=official, skipped=problems.frame(),
        images=images, missing=missing,
    )


GOOGLE_LABELS_FILE = "google2019_nih-chest-xray-labels.csv.gz"
GOOGLE_FINDINGS: tuple[str, ...] = ("Fracture", "Pneumothorax", "Airspace_opacity", "Nodule_or_mass")
GOOGLE_COLUMNS = ("image_index", "patient_id") + GOOGLE_FINDINGS + ("set_id",)
_GOOGLE_SETS = ("val", "test")


def read_google_labels(path: str | Path | None = None, *, errors: str = "raise") -> pd.DataFrame:
    """Google's radiologist-adjudicated labels for 4,376 NIH images (Majkowska et al., Radiology 2020): image_index,
    patient_id, four 0/1 findings, set_id.

    ``path`` (the file, or a folder holding it, gzipped or not) defaults to the copy shipped in
    ``NIH_METADATA_DIR``. Findings must be YES or NO and
    ``Set Id`` val or test; bad rows raise a DataError naming file, line and reason (or, with
    ``errors="skip"``, are left out and listed in ``.attrs["skipped"]``).

    Taught in 01_preprocessing_and_splits.
    """
    _check_errors_arg(errors)
    csv_path = Path(path).expanduser().absolute() if path is not None else NIH_METADATA_DIR / GOOGLE_LABELS_FILE
    if csv_path.is_dir():  # a folder: the file found by name, with or without .gz
        csv_path = _find_file(csv_path, (GOOGLE_LABELS_FILE.removesuffix(".gz"),)) or csv_path / GOOGLE_LABELS_FILE
    header, rows = _read_csv_rows(csv_path)
    cells = [_norm(c) for c in header]
    wanted = {"image_index": "Image Index", "patient_id": "Patient ID", "set_id": "Set Id"}
    wanted.update({f: f.replace("_", " ") for f in GOOGLE_FINDINGS})
    where = {key: cells.index(_norm(name)) for key, name in wanted.items() if _norm(name) in cells}
    absent = [name for key, name in wanted.items() if key not in where]
    if absent:
        raise DataError(
            f"{csv_path}: required column(s) {', '.join(repr(a) for a in absent)} not found in the header "
            f"{','.join(header)[:200]!r}. Is this google2019_nih-chest-xray-labels.csv (the NIH columns, then "
            "Fracture, Pneumothorax, Airspace opacity, Nodule or mass, Set Id)?"
        )
    if not rows:
        raise DataError(f"{csv_path}: only a header, no rows: restore the file (4,376 rows in the release).")
    problems = _Problems()
    seen: dict[str, int] = {}
    out: list[list[Any]] = []
    for line, row in rows:
        name = row[where["image_index"]].strip() if len(row) > where["image_index"] else ""
        if len(row) != len(header):
            problems.add(csv_path, line, name, f"{len(row)} fields but the header has {len(header)}")
            continue
        if name in seen:
            problems.add(csv_path, line, name, f"duplicate Image Index (first on line {seen[name]})")
            continue
        seen[name] = line
        try:
            patient = _patient_id(row[where["patient_id"]])
            flags = []
            for finding in GOOGLE_FINDINGS:
                value = row[where[finding]].strip().upper()
                if value not in ("YES", "NO"):
                    raise ValueError(f"{finding.replace('_', ' ')} is {row[where[finding]]!r}: expected YES or NO")
                flags.append(int(value == "YES"))
            set_id = row[where["set_id"]].strip().lower()
            if set_id not in _GOOGLE_SETS:
                raise ValueError(f"Set Id {row[where['set_id']]!r}: expected one of {', '.join(_GOOGLE_SETS)}")
        except ValueError as err:
            problems.add(csv_path, line, name, str(err))
            continue
        out.append([name, patient, *flags, set_id])
    if errors == "raise":
        problems.raise_if_any(str(csv_path), "call read_google_labels(path, errors='skip')")
    frame = pd.DataFrame(out, columns=list(GOOGLE_COLUMNS))
    frame = frame.astype({"patient_id": "int64", **{f: "uint8" for f in GOOGLE_FINDINGS}})
    frame.attrs["skipped"] = problems.frame()
    return frame
