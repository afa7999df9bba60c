"""Tests of helpers.datasets (the NIH reader), helpers.fundus (DRIVE), helpers.splits and helpers.manifests (verify)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import datasets, fundus, manifests, splits
from helpers.errors import DataError, PatientLeakageError

HEADER_2017 = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
HEADER_2020 = HEADER_2017[:-1]
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
SIZE = 32

# (image, labels, follow-up, patient)
ROWS = [
    ("00000001_000.png", "Cardiomegaly", 0, 1),
    ("00000001_001.png", "Cardiomegaly|Emphysema", 1, 1),
    ("00000002_000.png", "No Finding", 0, 2),
    ("00000003_000.png", "Infiltration|Mass", 0, 3),
    ("00000004_000.png", "Nodule", 0, 4),
    ("00000004_001.png", "No Finding", 1, 4),
]
BOXES = [
    ("00000001_000.png", "Cardiomegaly", 4.5, 6.25, 20.0, 12.0),
    ("00000003_000.png", "Infiltrate", 1.0, 2.0, 10.0, 8.0),
    ("00000003_000.png", "Mass", 10.0, 10.0, 5.0, 5.0),
]


def write_nih(root: Path, *, variant: str = "2017", rows=ROWS, boxes=BOXES, lists: bool = True, rgba: int = 1) -> Path:
    """A tiny NIH-layout folder: CSVs, lists and SIZE x SIZE PNGs (the ``rgba``-th one RGBA)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    trail = "," if variant == "2017" else ""
    header = HEADER_2017 if variant == "2017" else HEADER_2020
    lines = [header] + [f"{n},{lab},{f},{p},{40 + f},M,PA,2500,2048,0.168,0.168{trail}" for n, lab, f, p in rows]
    name = "Data_Entry_2017.csv" if variant == "2017" else "Data_Entry_2017_v2020.csv"
    (root / name).write_text("\n".join(lines) + "\n")
    if boxes:  # a box file with only a header warns: leave it out
        (root / "BBox_List_2017.csv").write_text(
            "\n".join([BBOX_HEADER] + [f"{n},{lab},{x},{y},{w},{h},,," for n, lab, x, y, w, h in boxes]) + "\n"
        )
    grey = (np.arange(SIZE * SIZE).reshape(SIZE, SIZE) % 256).astype(np.uint8)
    for i, (n, *_rest) in enumerate(rows):
        if ".." in n or n.startswith("/"):
            continue  # a hostile name: the reader must refuse it; never write it
        img = Image.fromarray(grey) if i != rgba else Image.fromarray(np.dstack([grey] * 3 + [np.full_like(grey, 255)]))
        img.save(root / "images" / n)
    if lists:
        test = {n for n, *_r in rows if _r[-1] == 3}
        (root / "train_val_list.txt").write_text("\n".join(n for n, *_r in rows if n not in test) + "\n")
        (root / "test_list.txt").write_text("\n".join(sorted(test)) + "\n")
    return root


@pytest.fixture
def nih(tmp_path):
    return write_nih(tmp_path / "nih")


def csv_line(root: Path, image: str) -> int:
    lines = (root / "Data_Entry_2017.csv").read_text().splitlines()
    return next(i + 1 for i, text in enumerate(lines) if text.startswith(image))


# ---------------------------------------------------------------------------------- reading


def test_label_vocabulary():
    assert datasets.LABELS[:4] == ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration")
    assert datasets.LABELS[-2:] == ("Pleural_Thickening", "Hernia") and len(datasets.LABELS) == 14
    assert set(datasets.BOX_LABELS) <= set(datasets.LABELS) and len(datasets.BOX_LABELS) == 8
    assert "Infiltration" in datasets.BOX_LABELS


def test_parse_labels_multi_hot():
    out = datasets.parse_labels(pd.Series(["Cardiomegaly|Effusion", "No Finding", "Hernia"], index=[5, 6, 7]))
    assert list(out.columns) == list(datasets.LABELS) and list(out.index) == [5, 6, 7]
    assert out.dtypes.eq(np.uint8).all()
    assert out.loc[5, ["Cardiomegaly", "Effusion"]].tolist() == [1, 1] and out.loc[5].sum() == 2
    assert out.loc[6].sum() == 0 and out.loc[7, "Hernia"] == 1


@pytest.mark.parametrize("bad", ["Infiltrate", "Cardiomegaly|Pneumonitis", "", "No Finding|Mass"])
def test_parse_labels_unknown_names_row_and_valid_labels(bad):
    with pytest.raises(DataError) as err:
        datasets.parse_labels(pd.Series(["Mass", bad], index=[10, 11]))
    message = str(err.value)
    assert "row 11" in message
    if bad in ("Infiltrate", "Cardiomegaly|Pneumonitis"):
        assert bad.split("|")[-1] in message and "Pleural_Thickening" in message
    if bad == "Infiltrate":
        assert "did you mean 'Infiltration'" in message


@pytest.mark.parametrize("variant", ["2017", "2020"])
def test_read_nih_both_csv_revisions(tmp_path, variant):
    root = write_nih(tmp_path / "nih", variant=variant)
    ds = datasets.read_nih(root)
    e = ds.entries
    assert list(e.columns) == list(datasets.ENTRY_COLUMNS)
    assert len(e) == len(ROWS) and e["image_index"].tolist() == [r[0] for r in ROWS]
    assert e["patient_id"].dtype == np.int64 and e["patient_id"].tolist() == [r[3] for r in ROWS]
    assert e["original_width"].tolist() == [2500] * len(ROWS) and e["original_height"].iloc[0] == 2048
    assert e["age"].iloc[1] == 41 and e["gender"].iloc[0] == "M" and e["view"].iloc[0] == "PA"
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in e["path"])
    assert ds.labels.shape == (len(ROWS), 14) and ds.labels.dtype == np.float32
    assert ds.labels[1].tolist() == datasets.parse_labels(pd.Series(["Cardiomegaly|Emphysema"])).iloc[0].tolist()
    assert ds.labels[2].sum() == 0
    b = ds.boxes
    assert list(b.columns) == list(datasets.BOX_COLUMNS) and len(b) == 3
    assert b["label"].tolist() == ["Cardiomegaly", "Infiltration", "Mass"]  # Infiltrate -> Infiltration
    assert b[["x", "y", "w", "h"]].iloc[0].tolist() == [4.5, 6.25, 20.0, 12.0]
    assert (b["image_width"] == SIZE).all() and (b["image_height"] == SIZE).all()
    assert ds.official_split["test"] == ["00000003_000.png"] and len(ds.official_split["train_val"]) == 5
    assert ds.skipped.empty and list(ds.skipped.columns) == list(datasets.SKIPPED_COLUMNS)
    assert "images=6" in repr(ds)


def test_v2020_file_wins_and_rows_without_trailing_comma(tmp_path):
    root = write_nih(tmp_path / "nih", variant="2020")
    (root / "Data_Entry_2017.csv").write_text(HEADER_2017 + "\n")  # an older, empty copy beside it
    assert len(datasets.read_nih(root).entries) == len(ROWS)


def test_missing_image_names_image_and_csv_line(nih):
    (nih / "images" / "00000003_000.png").unlink()
    with pytest.raises(DataError) as err:
        datasets.read_nih(nih)
    message = str(err.value)
    assert "00000003_000.png" in message and f"line {csv_line(nih, '00000003_000.png')}" in message
    assert "Data_Entry_2017.csv" in message and "errors='skip'" in message


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[: len(b) // 2], "truncated PNG"),
        (lambda b: b"GIF89a" + b[6:], "not a PNG"),
        (lambda b: b[:20] + bytes([b[20] ^ 0xFF]) + b[21:], "CRC"),
        (lambda b: b"", "not a PNG"),
    ],
)
def test_corrupt_or_truncated_png(nih, damage, reason):
    path = nih / "images" / "00000004_000.png"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError) as err:
        datasets.read_nih(nih)
    message = str(err.value)
    assert reason in message and "00000004_000.png" in message
    assert f"line {csv_line(nih, '00000004_000.png')}" in message and "Download its archive" in message


def test_images_none_reads_metadata_only(nih):
    (nih / "images" / "00000004_000.png").write_bytes(b"not a png")
    (nih / "images" / "00000002_000.png").unlink()
    ds = datasets.read_nih(nih, images="none")
    assert len(ds.entries) == len(ROWS) and len(ds.boxes) == 3 and ds.missing == 0
    assert ds.entries["path"].iloc[2] == str(nih / "images" / "00000002_000.png")  # paths still filled
    assert ds.boxes["image_width"].isna().all()  # no image opened, so no image size
    assert "metadata only" in repr(ds)
    for png in (nih / "images").iterdir():
        png.unlink()
    (nih / "images").rmdir()  # a folder with only the CSVs
    assert len(datasets.read_nih(nih, images="none").entries) == len(ROWS)
    with pytest.raises(DataError, match=r"images: folder not found.*images='none'"):
        datasets.read_nih(nih)


def test_images_present_reads_a_partial_copy_and_counts_what_is_absent(nih):
    (nih / "images" / "00000003_000.png").unlink()  # carries two boxes
    (nih / "images" / "00000002_000.png").unlink()
    ds = datasets.read_nih(nih, images="present")
    assert ds.missing == 2 and len(ds.entries) == len(ROWS) - 2
    assert "00000003_000.png" not in set(ds.entries["image_index"])
    assert ds.boxes["image_index"].tolist() == ["00000001_000.png"]
    absent = ds.skipped[ds.skipped["reason"] == datasets.MISSING_REASON]
    # the two entries, and the two boxes on 00000003_000.png
    assert sorted(absent["image_index"]) == ["00000002_000.png"] + ["00000003_000.png"] * 3
    assert len(ds.skipped) == 4 and "missing=2" in repr(ds) and "present" in repr(ds)
    (nih / "images" / "00000004_000.png").write_bytes(b"not a png")  # corrupt: still an error
    with pytest.raises(DataError, match=r"00000004_000\.png.*not a PNG"):
        datasets.read_nih(nih, images="present")
    with pytest.raises(DataError, match="1 bad row"):  # the absent ones are not errors here
        datasets.read_nih(nih, images="present")


@pytest.mark.parametrize("bad", [False, True, "some", None])
def test_images_mode_must_be_named(nih, bad):
    with pytest.raises(ValueError, match="'all'.*'present'.*'none'"):
        datasets.read_nih(nih, images=bad)


@pytest.mark.parametrize("column", ["Patient ID", "Finding Labels", "Image Index"])
def test_missing_required_column(nih, column):
    csv = nih / "Data_Entry_2017.csv"
    lines = csv.read_text().splitlines()
    lines[0] = lines[0].replace(column, "Something Else")
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        datasets.read_nih(nih)
    assert repr(column) in str(err.value) and "Data_Entry_2017.csv" in str(err.value)


def test_wrong_original_image_header(nih):
    csv = nih / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("OriginalImage[Width,Height]", "OriginalImage[Height,Width]", 1))
    with pytest.raises(DataError, match=r"Data_Entry_2017\.csv.*OriginalImage\[Width"):
        datasets.read_nih(nih)


def test_wrong_bbox_header(nih):
    (nih / "BBox_List_2017.csv").write_text(HEADER_2017 + "\n")  # a Data_Entry file under the BBox name
    with pytest.raises(DataError, match=r"BBox_List_2017\.csv.*not the NIH box header"):
        datasets.read_nih(nih)


def test_unknown_label_in_csv_names_row(nih):
    csv = nih / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("Nodule,", "Nodules,", 1))
    with pytest.raises(DataError) as err:
        datasets.read_nih(nih)
    message = str(err.value)
    assert "'Nodules'" in message and f"line {csv_line(nih, '00000004_000.png')}" in message
    assert "Hernia" in message  # lists the valid labels


@pytest.mark.parametrize(
    "box, reason",
    [
        ((20.0, 4.0, 15.0, 5.0), "outside"),
        ((-5.0, 4.0, 10.0, 5.0), "outside"),
        ((4.0, 4.0, 0.0, 5.0), "zero or negative area"),
        ((4.0, 4.0, 5.0, -2.0), "zero or negative area"),
    ],
)
def test_bad_box_names_bbox_row(tmp_path, box, reason):
    root = write_nih(tmp_path / "nih", boxes=BOXES + [("00000004_000.png", "Nodule", *box)])
    with pytest.raises(DataError) as err:
        datasets.read_nih(root)
    message = str(err.value)
    assert reason in message and "BBox_List_2017.csv, line 5" in message and "00000004_000.png" in message


def test_box_on_an_image_missing_from_the_csv(tmp_path):
    root = write_nih(tmp_path / "nih", boxes=BOXES + [("00000099_000.png", "Mass", 1, 1, 2, 2)])
    with pytest.raises(DataError, match=r"line 5 \(00000099_000\.png\): image '00000099_000\.png' is not in"):
        datasets.read_nih(root)


@pytest.mark.parametrize("name", ["../escape.png", "../../etc/passwd", "/etc/passwd", "images/../../x.png"])
def test_image_index_escaping_the_data_folder(tmp_path, name):
    root = write_nih(tmp_path / "nih", rows=ROWS + [(name, "No Finding", 0, 9)])
    with pytest.raises(DataError) as err:
        datasets.read_nih(root, images="none")
    assert name in str(err.value) and f"line {len(ROWS) + 2}" in str(err.value)


def test_safe_path(tmp_path):
    assert datasets.safe_path(tmp_path, "images/a.png") == tmp_path / "images" / "a.png"
    assert datasets.safe_path(tmp_path, "a/./b/../c.png") == tmp_path / "a" / "c.png"  # stays inside
    for bad in ("../x", "a/../../x", "/abs/x", "C:\\x", "..\\x", ""):
        with pytest.raises(DataError, match=re.escape(repr(bad))):
            datasets.safe_path(tmp_path, bad)


def test_skip_mode_accounts_for_every_row(tmp_path):
    rows = ROWS + [
        ("00000005_000.png", "Nodules", 0, 5),  # unknown label
        ("00000006_000.png", "No Finding", 0, 6),  # image missing (deleted below)
        ("00000007_000.png", "No Finding", 0, "x7"),  # bad patient ID
        ("00000001_000.png", "Mass", 2, 1),  # duplicate
        ("../evil.png", "Mass", 0, 8),  # escapes the folder
    ]
    boxes = BOXES + [
        ("00000005_000.png", "Nodule", 1, 1, 2, 2),  # its image was skipped
        ("00000004_000.png", "Nodule", 1, 1, 0, 2),  # zero area
        ("00000004_000.png", "Nodule", 30, 30, 9, 9),  # outside
        ("00000004_000.png", "Lesion", 1, 1, 2, 2),  # unknown box label
    ]
    root = write_nih(tmp_path / "nih", rows=[r for r in rows if not r[0].startswith("..")], boxes=boxes)
    csv = root / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text() + "../evil.png,Mass,0,8,40,M,PA,2500,2048,0.1,0.1,\n")
    (root / "images" / "00000006_000.png").unlink()
    (root / "images" / "00000003_000.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # truncated
    with pytest.raises(DataError, match="bad row"):
        datasets.read_nih(root)
    ds = datasets.read_nih(root, errors="skip")
    csv_rows = len(pd.read_csv(csv))
    box_rows = len(pd.read_csv(root / "BBox_List_2017.csv"))
    skipped = ds.skipped
    assert len(ds.entries) + (skipped["file"] == str(csv)).sum() == csv_rows
    assert len(ds.boxes) + skipped["file"].str.endswith("BBox_List_2017.csv").sum() == box_rows
    assert set(skipped.loc[skipped["file"] == str(csv), "image_index"]) == {
        "00000005_000.png", "00000006_000.png", "00000007_000.png", "00000001_000.png", "../evil.png",
        "00000003_000.png",
    }
    assert skipped["reason"].str.len().gt(0).all() and skipped["line"].dtype == np.int64
    assert "00000001_000.png" in set(ds.entries["image_index"])  # the first of the duplicates is kept
    assert ds.boxes["image_index"].tolist() == ["00000001_000.png"]  # the others' images were skipped or bad


def test_read_boxes_alone(nih):
    boxes = datasets.read_boxes(nih)
    assert boxes["label"].tolist() == ["Cardiomegaly", "Infiltration", "Mass"] and len(boxes.attrs["skipped"]) == 0
    assert datasets.read_boxes(nih / "BBox_List_2017.csv").equals(boxes)


def test_missing_csv_and_folder(tmp_path):
    with pytest.raises(DataError, match="folder not found"):
        datasets.read_nih(tmp_path / "nowhere")
    with pytest.raises(DataError, match="Data_Entry_2017_v2020.csv"):
        datasets.read_nih(tmp_path)


# ---------------------------------------------------------------------------------- splits


def nih_like_entries(patients: int = 400, seed: int = 0) -> pd.DataFrame:
    """An in-memory entries frame: 1-8 images per patient, NIH-like imbalance, a rare Hernia."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([.10, .03, .12, .18, .05, .06, .02, .05, .04, .03, .03, .02, .03, 0.0])
    per_patient = rng.integers(1, 9, size=patients)
    pid = np.repeat(np.arange(1, patients + 1) * 7, per_patient)
    propensity = rng.gamma(0.7, 1.5, size=patients)[np.repeat(np.arange(patients), per_patient)]
    y = (rng.random((len(pid), 14)) < np.clip(prevalence * propensity[:, None], 0, 0.9)).astype(np.uint8)
    hernia = rng.choice(patients, size=4, replace=False) + 1
    y[np.isin(pid, hernia * 7), 13] = 1  # 4 patients with Hernia
    frame = pd.DataFrame({"image_index": [f"{p:08d}_{i:03d}.png" for i, p in enumerate(pid)], "patient_id": pid})
    return pd.concat([frame, pd.DataFrame(y, columns=list(datasets.LABELS))], axis=1)


def test_patient_split_is_patient_level_stratified_and_honours_fractions():
    entries = nih_like_entries()
    parts = splits.patient_split(entries, val_fraction=0.1, test_fraction=0.2, seed=3)
    assert set(parts) == {"train", "val", "test"}
    splits.assert_no_patient_overlap(**parts)
    assert sum(len(s) for s in parts.values()) == len(entries)
    for name, frac in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(len(parts[name]) / len(entries) - frac) < 0.03, name
        present = parts[name][list(datasets.LABELS)].sum()
        assert (present > 0).all(), f"{name} lacks {list(present[present == 0].index)}"


def test_patient_split_is_deterministic():
    entries = nih_like_entries()
    a = splits.patient_split(entries, seed=1)
    b = splits.patient_split(entries.sample(frac=1, random_state=0), seed=1)  # row order does not matter
    c = splits.patient_split(entries, seed=2)
    for name in a:
        assert set(a[name]["image_index"]) == set(b[name]["image_index"])
    assert set(a["test"]["image_index"]) != set(c["test"]["image_index"])


def test_patient_split_rare_label_raises_naming_it():
    entries = nih_like_entries()
    two = entries["patient_id"].isin(entries.loc[entries["Hernia"] == 1, "patient_id"].unique()[:2])
    entries.loc[entries["Hernia"].astype(bool) & ~two, "Hernia"] = 0
    with pytest.raises(DataError, match="'Hernia' has 2 patient"):
        splits.patient_split(entries)


def test_patient_split_infeasible_coverage_raises_naming_a_label():
    # Hernia on patients 1-3 forces them into three different splits; Pneumonia (1, 2, 4) then needs
    # patient 4 in patient 3's split and Fibrosis (1, 3, 4) needs it in patient 2's: impossible.
    carriers = {"Hernia": {1, 2, 3}, "Pneumonia": {1, 2, 4}, "Fibrosis": {1, 3, 4}}
    rng = np.random.default_rng(0)
    rows = []
    for patient in range(1, 41):
        labels = {name for name, who in carriers.items() if patient in who}
        if patient > 4:
            labels |= {name for name in datasets.LABELS if name not in carriers and rng.random() < 0.4}
        rows.append({"patient_id": patient, **{name: int(name in labels) for name in datasets.LABELS}})
    with pytest.raises(DataError, match=r"Label '(Hernia|Pneumonia|Fibrosis)' cannot be placed in the \w+ split"):
        splits.patient_split(pd.DataFrame(rows))


@pytest.mark.parametrize("kwargs",
                         [{"val_fraction": 0.0}, {"test_fraction": 0.0}, {"val_fraction": 0.5, "test_fraction": 0.5}])
def test_patient_split_empty_split_raises(kwargs):
    with pytest.raises(DataError, match="empty"):
        splits.patient_split(nih_like_entries(), **kwargs)


def test_random_split_leaks_and_the_check_counts_patients_without_printing_ids():
    entries = nih_like_entries()
    leaky = splits.random_split(entries, seed=0)
    assert sum(len(s) for s in leaky.values()) == len(entries)
    assert abs(len(leaky["test"]) / len(entries) - 0.2) < 0.01
    with pytest.raises(PatientLeakageError) as err:
        splits.assert_no_patient_overlap(**leaky)
    message = str(err.value)
    shared = set(leaky["train"]["patient_id"]) & set(leaky["test"]["patient_id"])
    assert "train & test share" in message and f"{len(shared)} patient(s)" in message
    counts_removed = re.sub(r"\d+ patient", "", message)
    assert not any(re.search(rf"\b{p}\b", counts_removed) for p in sorted(shared)[:10]), "no patient ID in the message"
    assert set(err.value.patients) >= shared


def test_assert_no_patient_overlap_small_cases():
    a = pd.DataFrame({"patient_id": [1, 2, 2]})
    splits.assert_no_patient_overlap(train=a, test=pd.DataFrame({"patient_id": [3]}))
    with pytest.raises(PatientLeakageError, match=r"val & test share 1 patient\(s\)") as info:
        splits.assert_no_patient_overlap(train=a, val=[4, 5], test=pd.Series([5, 6]))
    assert info.value.patients == [5]


def test_official_split(tmp_path):
    entries = nih_like_entries(120, seed=4)
    rows = [(n, "|".join(l for l in datasets.LABELS if r[l]) or "No Finding", 0, p) for (_, r), n, p in
            zip(entries.iterrows(), entries["image_index"], entries["patient_id"])]
    root = write_nih(tmp_path / "nih", rows=rows, boxes=[], lists=False)
    test_patients = set(entries["patient_id"].unique()[::5])
    is_test = entries["patient_id"].isin(test_patients)
    ds = datasets.read_nih(root, images="none")
    with pytest.raises(DataError, match="train_val_list.txt and test_list.txt"):
        splits.official_split(ds)
    (root / "train_val_list.txt").write_text("\n".join(entries.loc[~is_test, "image_index"]))
    (root / "test_list.txt").write_text("\n".join(entries.loc[is_test, "image_index"]))
    ds = datasets.read_nih(root, images="none")
    parts = splits.official_split(ds, val_fraction=0.1, seed=0)
    assert set(parts["test"]["image_index"]) == set(entries.loc[is_test, "image_index"])
    assert abs(len(parts["val"]) / (~is_test).sum() - 0.1) < 0.04
    assert (parts["val"][list(datasets.LABELS)].sum() > 0).all()
    splits.assert_no_patient_overlap(**parts)
    # three of the four Hernia patients in test: val cannot have it, and the split says so
    hernia = entries.loc[entries["Hernia"] == 1, "patient_id"].unique()
    is_test = entries["patient_id"].isin(test_patients | set(hernia[:3])) & ~entries["patient_id"].isin(hernia[3:])
    (root / "train_val_list.txt").write_text("\n".join(entries.loc[~is_test, "image_index"]))
    (root / "test_list.txt").write_text("\n".join(entries.loc[is_test, "image_index"]))
    with pytest.warns(UserWarning, match="'Hernia' has 1 patient.*val will lack it"):
        parts = splits.official_split(datasets.read_nih(root, images="none"))
    assert parts["train"]["Hernia"].sum() > 0 and parts["val"]["Hernia"].sum() == 0
    (root / "test_list.txt").write_text("\n".join(list(entries.loc[is_test, "image_index"]) + ["99999999_000.png"]))
    with pytest.raises(DataError,
                       match=r"test_list\.txt: 1 image\(s\) are not in the Data_Entry CSV, e\.g\. 99999999_000"):
        splits.official_split(datasets.read_nih(root, images="none"))


def test_classifier_split_official_patient_and_the_fallback_said(tmp_path):
    entries = nih_like_entries(120, seed=4)
    rows = [(n, "|".join(l for l in datasets.LABELS if r[l]) or "No Finding", 0, p) for (_, r), n, p in
            zip(entries.iterrows(), entries["image_index"], entries["patient_id"])]
    root = write_nih(tmp_path / "nih", rows=rows, boxes=[], lists=False)
    without = datasets.read_nih(root, images="none")
    parts, said = splits.classifier_split(without, "official", seed=0)
    assert "no train_val_list.txt and test_list.txt" in said and "patient split 70%/10%/20%" in said
    expected = splits.patient_split(without.entries, seed=0)
    assert all(parts[k].image_index.tolist() == expected[k].image_index.tolist() for k in expected)
    is_test = entries["patient_id"].isin(set(entries["patient_id"].unique()[::5]))
    (root / "train_val_list.txt").write_text("\n".join(entries.loc[~is_test, "image_index"]))
    (root / "test_list.txt").write_text("\n".join(entries.loc[is_test, "image_index"]))
    listed = datasets.read_nih(root, images="none")
    parts, said = splits.classifier_split(listed, "official", seed=0)
    assert said == "official NIH lists" and set(parts["test"].image_index) == set(entries.loc[is_test, "image_index"])
    parts, said = splits.classifier_split(listed, "patient", seed=0)
    assert said.startswith("stratified patient split") and "no train_val" not in said
    with pytest.raises(ValueError, match="split method 'random': use one of official, patient"):
        splits.classifier_split(listed, "random")


# ---------------------------------------------------------------------------------- DRIVE


def write_drive(root: Path, train=(21, 22), test=(1,), h: int = 12, w: int = 10) -> Path:
    yy, xx = np.mgrid[0:h, 0:w]
    fov = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 2) ** 2).astype(np.uint8)
    vessels = ((xx == w // 2) & fov.astype(bool)).astype(np.uint8)
    rgb = np.dstack([fov * 200, fov * 90 + vessels * 20, fov * 30]).astype(np.uint8)
    for split, ids in (("training", train), ("test", test)):
        for sub in ("images", "1st_manual", "mask") + (("2nd_manual",) if split == "test" else ()):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in ids:
            Image.fromarray(rgb).save(root / split / "images" / f"{i:02d}_{split}.tif")
            Image.fromarray(vessels * 255).save(root / split / "1st_manual" / f"{i:02d}_manual1.gif")
            Image.fromarray(fov * 255, "L").save(root / split / "mask" / f"{i:02d}_{split}_mask.gif")
            if split == "test":
                palette = Image.fromarray(vessels, "P")
                palette.putpalette([0, 0, 0, 255, 255, 255])
                palette.save(root / split / "2nd_manual" / f"{i:02d}_manual2.gif")
    return root


def test_read_and_load_drive(tmp_path):
    root = write_drive(tmp_path / "drive")
    ds = fundus.read_drive(root)
    assert [r.id for r in ds.train] == [21, 22] and [r.id for r in ds.test] == [1]
    assert ds.train[0].split == "training" and ds.train[0].manual2 is None
    assert ds.test[0].manual2 == root / "test" / "2nd_manual" / "01_manual2.gif"
    image, vessels, fov = fundus.load_drive(ds.test[0])
    assert image.shape == (12, 10, 3) and image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    assert vessels.dtype == bool and fov.dtype == bool and vessels.shape == fov.shape == (12, 10)
    assert vessels.any() and fov.any() and not fov.all()
    assert np.array_equal(fundus._read_mask(ds.test[0].manual2), vessels)  # palette indices 0/1


def test_read_drive_names_every_missing_file(tmp_path):
    root = write_drive(tmp_path / "drive")
    (root / "training" / "mask" / "21_training_mask.gif").unlink()
    (root / "training" / "1st_manual" / "22_manual1.gif").unlink()
    (root / "test" / "images" / "01_test.tif").unlink()
    with pytest.raises(DataError) as err:
        fundus.read_drive(root)
    message = str(err.value)
    assert "3 DRIVE file(s) missing" in message
    for name in ("training/mask/21_training_mask.gif", "training/1st_manual/22_manual1.gif", "test/images/01_test.tif"):
        assert name in message


def test_load_drive_bad_masks(tmp_path):
    root = write_drive(tmp_path / "drive")
    record = fundus.read_drive(root).train[0]
    grey = (np.arange(120).reshape(12, 10) % 7 * 30).astype(np.uint8)
    Image.fromarray(grey).save(record.manual)
    with pytest.raises(DataError, match=r"21_manual1\.gif: mask is not binary: found values 0, 1, 2"):
        fundus.load_drive(record)
    inverted = Image.fromarray((grey > 60).astype(np.uint8), "P")
    inverted.putpalette([255, 255, 255, 0, 0, 0])
    inverted.save(record.manual)
    with pytest.raises(DataError, match=r"21_manual1\.gif: the palette draws index 1 darker than index 0"):
        fundus.load_drive(record)
    Image.fromarray(np.zeros((12, 9), np.uint8)).save(record.manual)
    with pytest.raises(DataError, match=r"21_training\.tif is 10x12 \(WxH\) but .*21_manual1\.gif is 9x12"):
        fundus.load_drive(record)
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(record.manual)
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(record.mask)
    with pytest.raises(DataError, match=r"21_training_mask\.gif: the field-of-view mask is all zero"):
        fundus.load_drive(record)


# ---------------------------------------------------------------------------------- manifests, verify, CLI


def test_manifests_match_the_facts():
    nih = json.loads((manifests.MANIFEST_DIR / "nih.json").read_text())
    assert nih["counts"]["images"] == 112120 and nih["counts"]["patients"] == 30805
    assert nih["counts"]["train_val_list"] + nih["counts"]["test_list"] == 112120
    assert nih["labels"] == list(datasets.LABELS) and nih["checksums"] is None
    assert nih["release_files"][:12] == [f"images_{i:03d}.tar.gz" for i in range(1, 13)]
    drive = json.loads((manifests.MANIFEST_DIR / "drive.json").read_text())
    files = [f["path"] for f in drive["layout"]["files"]]
    assert len(files) == len(set(files)) == 140
    tifs = [f for f in drive["layout"]["files"] if f["path"].endswith(".tif")]
    assert len(tifs) == 40 and all((f["width"], f["height"]) == (565, 584) for f in tifs)
    assert "training/images/21_training.tif" in files and "test/2nd_manual/20_manual2.gif" in files
    for name in ("nih.md", "drive.md"):
        assert (manifests.MANIFEST_DIR / name).is_file()


def verify_quietly(name, root, **kwargs):
    """(problems, warning texts) of manifests.verify."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problems = manifests.verify(name, root, **kwargs)
    return problems, "\n".join(str(w.message) for w in caught)


def test_verify_nih(nih):
    problems, notes = verify_quietly("nih", nih)
    assert problems == [] and "has 6 rows; the release has 112,120" in notes and "not 1024x1024" in notes
    (nih / "images" / "00000002_000.png").unlink()
    problems, notes = verify_quietly("nih", nih)
    assert problems == [] and "partial copy: 1 image(s) named in the CSV are not in images/ (00000002_000.png)" in notes
    (nih / "test_list.txt").unlink()
    (nih / "BBox_List_2017.csv").write_text("Image Index,Label,x,y\n")
    problems, _ = verify_quietly("nih", nih)
    assert any(p.startswith("missing:") and "test_list.txt" in p for p in problems)
    assert any(p.startswith("wrong:") and "box header" in p for p in problems)
    for png in (nih / "images").iterdir():
        png.unlink()
    problems, _ = verify_quietly("nih", nih)
    assert any(p.startswith("missing: all 6 images named in the CSV: 00000001_000.png") for p in problems)
    assert manifests.verify("nih", nih / "absent")[0].startswith("missing: the folder")


def test_verify_drive_against_a_manifest(tmp_path):
    root = write_drive(tmp_path / "drive")
    manifest = {"layout": {"files": [
        {"path": "training/images/21_training.tif", "width": 10, "height": 12},
        {"path": "training/images/22_training.tif", "width": 565, "height": 584},
        {"path": "training/mask/21_training_mask.gif"},
        {"path": "test/images/07_test.tif", "width": 10, "height": 12},
    ]}}
    problems = manifests.verify("drive", root, manifest=manifest)
    assert problems == [
        "missing: 1 file(s): test/images/07_test.tif",
        "wrong: training/images/22_training.tif is 10x12, expected 565x584",
    ]
    real = manifests.verify("drive", root)  # the real manifest: most files missing, the TIFFs too small
    assert real[0].startswith("missing: 130 file(s): training/images/23_training.tif") and "(130 in all)" in real[0]
    assert len(real) == 4 and all(p.startswith("wrong:") and "expected 565x584" in p for p in real[1:])


def test_manifest_path_escaping_the_folder(tmp_path):
    manifest = {"layout": {"files": [{"path": "../../etc/passwd"}]}}
    with pytest.raises(DataError, match=r"'\.\./\.\./etc/passwd'"):
        manifests.verify("drive", tmp_path, manifest=manifest)


def test_cli(nih, capsys):
    assert manifests.main(["verify", "nih", str(nih)]) == 0
    out = capsys.readouterr().out
    assert ("present: images/: 6 of the 6 images" in out and "warning:" in out and "OK (layout" in out
            and "add --decode" in out)
    (nih / "train_val_list.txt").unlink()
    assert manifests.main(["verify", "nih", str(nih)]) == 1
    out = capsys.readouterr().out
    assert "missing: 1 required file(s): train_val_list.txt" in out and "FAILED" in out


# ---------------------------------------------------------------------------------- helpers.synthetic


def test_synthetic_nih_reads_in_both_revisions(tmp_path):
    synthetic = pytest.importorskip("helpers.synthetic")
    root = synthetic.write_nih(tmp_path / "nih", patients=60, image_size=32, seed=7)
    ds = datasets.read_nih(root)
    assert len(ds.entries) > 60 and ds.entries["patient_id"].nunique() == 60 and len(ds.boxes) > 0
    assert ds.boxes["label"].isin(datasets.BOX_LABELS).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # so few patients that val may lack a label: official_split warns
        parts = splits.official_split(ds)
    assert sum(len(s) for s in parts.values()) == len(ds.entries)
    assert set(parts["test"]["image_index"]) == set(ds.official_split["test"])
    assert verify_quietly("nih", root)[0] == []
    # the same data as the 2020 revision: no trailing empty column
    text = (root / "Data_Entry_2017.csv").read_text().splitlines()
    (root / "Data_Entry_2017.csv").unlink()
    (root / "Data_Entry_2017_v2020.csv").write_text("\n".join(line.rstrip(",") for line in text) + "\n")
    again = datasets.read_nih(root)
    pd.testing.assert_frame_equal(again.entries, ds.entries)


def test_synthetic_smoke_size_split_has_every_label_everywhere(tmp_path):
    synthetic = pytest.importorskip("helpers.synthetic")
    entries = datasets.read_nih(synthetic.write_nih(tmp_path / "nih", patients=40, image_size=32)).entries
    parts = splits.patient_split(entries, seed=42)
    splits.assert_no_patient_overlap(**parts)
    for name, part in parts.items():
        assert (part[list(datasets.LABELS)].sum() > 0).all(), name
    assert sum(len(p) for p in parts.values()) == len(entries)


def test_synthetic_drive_loads(tmp_path):
    synthetic = pytest.importorskip("helpers.synthetic")
    root = synthetic.write_drive(tmp_path / "drive", train_ids=[21], test_ids=[1])
    ds = fundus.read_drive(root)
    image, vessels, fov = fundus.load_drive(ds.test[0])
    assert image.shape == (584, 565, 3) and vessels.shape == fov.shape == (584, 565)
    assert 0.01 < vessels[fov].mean() < 0.4 and 0.3 < fov.mean() < 0.9
    second = fundus._read_mask(ds.test[0].manual2)
    assert second.shape == vessels.shape and second.any()
    manifest = {"layout": {"files": [{"path": "test/images/01_test.tif", "width": 565, "height": 584},
                                     {"path": "test/2nd_manual/01_manual2.gif"}]}}
    assert manifests.verify("drive", root, manifest=manifest) == []


# ---------------------------------------------------------------------------------- the shipped NIH metadata

# The counts the NIH publishes for ChestX-ray14 (README_CHESTXRAY.pdf, Wang et al. CVPR 2017, updated 2020).
PUBLISHED_COUNTS = {
    "Atelectasis": 11559, "Cardiomegaly": 2776, "Effusion": 13317, "Infiltration": 19894, "Mass": 5782,
    "Nodule": 6331, "Pneumonia": 1431, "Pneumothorax": 5302, "Consolidation": 4667, "Edema": 2303,
    "Emphysema": 2516, "Fibrosis": 1686, "Pleural_Thickening": 3385, "Hernia": 227,
}


@pytest.fixture(scope="module")
def real_nih():
    return datasets.read_nih(datasets.NIH_METADATA_DIR, images="none")


def test_real_metadata_matches_the_published_counts(real_nih):
    e = real_nih.entries
    assert len(e) == 112_120 and e["patient_id"].nunique() == 30_805 and real_nih.skipped.empty
    assert e[list(datasets.LABELS)].sum().to_dict() == PUBLISHED_COUNTS
    assert int((real_nih.labels.sum(axis=1) == 0).sum()) == 60_361  # No Finding
    assert e["view"].value_counts().to_dict() == {"PA": 67_310, "AP": 44_810}
    # the v2020 revision holds no impossible ages (the 2017 file had a few of 148 and 400+ years)
    assert e["age"].dtype == np.int64 and e["age"].min() >= 0 and e["age"].max() == 95
    assert e["path"].iloc[0] == str(datasets.NIH_METADATA_DIR / "images" / "00000001_000.png")
    assert "metadata only" in repr(real_nih)


def test_real_boxes(real_nih):
    b = real_nih.boxes
    assert len(b) == 984 and b["image_index"].nunique() == 880 and set(b["label"]) == set(datasets.BOX_LABELS)
    assert (b["label"] == "Infiltration").sum() == 123  # spelled Infiltrate in the file
    assert b["image_index"].isin(real_nih.entries["image_index"]).all()
    assert (b["x"] >= 0).all() and (b["x"] + b["w"] <= 1024 + datasets.BOX_TOLERANCE).all()
    assert len(datasets.read_boxes(datasets.NIH_METADATA_DIR, images="none")) == 984  # the .gz found by name


def test_real_google_labels(real_nih):
    g = datasets.read_google_labels()
    assert list(g.columns) == list(datasets.GOOGLE_COLUMNS) and len(g) == 4_376 and g["image_index"].is_unique
    assert g[list(datasets.GOOGLE_FINDINGS)].dtypes.eq(np.uint8).all()
    assert g[list(datasets.GOOGLE_FINDINGS)].sum().to_dict() == {
        "Fracture": 186, "Pneumothorax": 238, "Airspace_opacity": 2166, "Nodule_or_mass": 605}
    assert g["set_id"].value_counts().to_dict() == {"val": 2414, "test": 1962}
    merged = g.merge(real_nih.entries[["image_index", "patient_id"]], on="image_index", suffixes=("", "_nih"))
    assert len(merged) == len(g) and (merged["patient_id"] == merged["patient_id_nih"]).all()


def test_patient_split_on_the_real_label_matrix(real_nih):
    e = real_nih.entries
    parts = splits.patient_split(e, val_fraction=0.1, test_fraction=0.2, seed=0)
    splits.assert_no_patient_overlap(**parts)
    assert sum(len(s) for s in parts.values()) == len(e)
    for name, frac in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(len(parts[name]) / len(e) - frac) < 0.005, name
        share = parts[name][list(datasets.LABELS)].sum() / e[list(datasets.LABELS)].sum()
        assert (abs(share - frac) < 0.03).all(), f"{name}: label shares {share.round(3).to_dict()}"


def test_gzipped_csvs_read_like_plain_ones(nih):
    import gzip

    plain = datasets.read_nih(nih)
    for name in ("Data_Entry_2017.csv", "BBox_List_2017.csv"):
        (nih / (name + ".gz")).write_bytes(gzip.compress((nih / name).read_bytes()))
        (nih / name).unlink()
    packed = datasets.read_nih(nih)
    pd.testing.assert_frame_equal(packed.entries, plain.entries)
    pd.testing.assert_frame_equal(packed.boxes, plain.boxes)


# ---------------------------------------------------------------------------------- rows that must not be misread


def test_a_row_with_a_field_missing_is_a_bad_row_not_a_shifted_one(nih):
    csv = nih / "Data_Entry_2017.csv"
    lines = csv.read_text().splitlines()
    cells = lines[3].split(",")
    del cells[2]  # the follow-up number: the age would land in Patient ID
    lines[3] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 4 \(00000002_000\.png\): 11 fields but the header has 12"):
        datasets.read_nih(nih)
    ds = datasets.read_nih(nih, errors="skip")
    assert "00000002_000.png" not in set(ds.entries["image_index"]) and 40 not in set(ds.entries["patient_id"])
    assert ds.skipped["line"].tolist() == [4]


@pytest.mark.parametrize("cell, reason", [("1e3", "spreadsheet's number format"), ("3.0", "spreadsheet"),
                                          ("P3", "not a whole number"), ("", "not a whole number")])
def test_patient_ids_a_spreadsheet_rewrote_are_refused(nih, cell, reason):
    csv = nih / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("Infiltration|Mass,0,3,", f"Infiltration|Mass,0,{cell},"))
    with pytest.raises(DataError, match=f"00000003_000.png.*Patient ID '{re.escape(cell)}'.*{re.escape(reason)}"):
        datasets.read_nih(nih)


def test_ages_kept_as_years(nih):
    csv = nih / "Data_Entry_2017.csv"
    csv.write_text(csv.read_text().replace("Cardiomegaly,0,1,40,", "Cardiomegaly,0,1,058Y,", 1))
    ages = datasets.read_nih(nih).entries["age"]
    assert ages.tolist() == [58, 41, 40, 40, 40, 41] and ages.dtype == np.int64


def test_duplicate_boxes_are_kept_once_with_a_warning(tmp_path):
    root = write_nih(tmp_path / "nih", boxes=BOXES + [BOXES[2], BOXES[0]])
    with pytest.warns(UserWarning, match=r"2 duplicate box\(es\).*line 5 repeats line 4, line 6 repeats line 2"):
        ds = datasets.read_nih(root)
    assert len(ds.boxes) == 3 and ds.skipped["line"].tolist() == [5, 6]
    assert ds.skipped["reason"].str.contains("kept once").all()


def test_a_box_file_with_only_a_header_gives_no_boxes_and_warns(nih):
    (nih / "BBox_List_2017.csv").write_text(BBOX_HEADER + "\n")
    with pytest.warns(UserWarning, match=r"BBox_List_2017\.csv: only a header, no boxes"):
        ds = datasets.read_nih(nih)
    assert ds.boxes.empty and len(ds.entries) == len(ROWS)


def test_fractions_accept_numpy_numbers_and_ids_compare_by_value():
    entries = nih_like_entries(200, seed=1)
    a = splits.patient_split(entries, val_fraction=np.float32(0.1), test_fraction=np.float64(0.2), seed=np.int64(5))
    b = splits.patient_split(entries, val_fraction=0.1, test_fraction=0.2, seed=5)
    assert all(a[k]["image_index"].tolist() == b[k]["image_index"].tolist() for k in a)
    as_text = entries.assign(patient_id=entries["patient_id"].map(lambda p: f"{p:08d}"))
    c = splits.patient_split(as_text, seed=5)  # zero-padded text IDs: the same patients, the same split
    assert all(c[k]["image_index"].tolist() == b[k]["image_index"].tolist() for k in a)
    splits.assert_no_patient_overlap(train=["00000013", "14"], test=[15, 16.0])  # disjoint by value: passes
    with pytest.raises(PatientLeakageError, match="share 1 patient"):
        splits.assert_no_patient_overlap(train=["00000013", "14"], test=[13, 16.0])


# ---------------------------------------------------------------------------------- decoding every image


def corrupt_idat(data: bytes) -> bytes:
    """The PNG with its compressed pixel data overwritten, every chunk CRC recomputed: header and IEND intact."""
    import struct
    import zlib

    out, pos = [data[:8]], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IDAT":
            body = body[:2] + b"\xff" * (len(body) - 2)
        out.append(struct.pack(">I", n) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
        pos += 12 + n
    return b"".join(out)


def test_corrupt_pixel_data_is_found_only_by_decoding(nih, capsys):
    path = nih / "images" / "00000004_000.png"
    path.write_bytes(corrupt_idat(path.read_bytes()))
    assert len(datasets.read_nih(nih).entries) == len(ROWS)  # the header check cannot see it
    assert verify_quietly("nih", nih)[0] == []
    problems, _ = verify_quietly("nih", nih, decode=True)
    assert problems == ["wrong: images/00000004_000.png: cannot be decoded (OSError: broken data stream when reading "
                        "image file)"]
    assert "decoded: 5 of 6 image(s); 1 failed" in capsys.readouterr().out
    assert manifests.main(["verify", "nih", str(nih), "--decode"]) == 1
    out = capsys.readouterr().out
    assert "decoded: 5 of 6 image(s); 1 failed" in out and "00000004_000.png: cannot be decoded" in out
    assert out.strip().endswith("FAILED")


def test_decode_names_a_decompression_bomb(nih, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SIZE * SIZE // 3)  # every image is now "too big"
    problems, _ = verify_quietly("nih", nih, decode=True)
    assert len(problems) == 6 and all("decompression bomb" in p and "MAX_IMAGE_PIXELS" in p for p in problems)
    # over the limit but under twice it: a warning in Pillow
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", SIZE * SIZE - 1)
    problems, _ = verify_quietly("nih", nih, decode=True)
    assert len(problems) == 6 and all("decompression bomb" in p for p in problems)


def test_decode_drive(tmp_path, capsys):
    root = write_drive(tmp_path / "drive")
    manifest = {
        "layout": {"files": [{"path": "training/images/21_training.tif"},
                             {"path": "training/mask/21_training_mask.gif"}]}}
    assert manifests.verify("drive", root, manifest=manifest, decode=True) == []
    (root / "training" / "mask" / "21_training_mask.gif").write_bytes(b"GIF89a" + b"\x00" * 20)
    problems = manifests.verify("drive", root, manifest=manifest, decode=True)
    assert len(problems) == 1 and problems[0].startswith("wrong: training/mask/21_training_mask.gif: cannot be decoded")
    assert "decoded: 1 of 2 image(s); 1 failed" in capsys.readouterr().out


def test_manifest_records_the_shipped_files(real_nih):
    import hashlib

    shipped = json.loads((manifests.MANIFEST_DIR / "nih.json").read_text())["shipped_metadata"]
    for name, digest in shipped["sha256"].items():
        assert hashlib.sha256((datasets.NIH_METADATA_DIR / name).read_bytes()).hexdigest() == digest, name
    counts = {**real_nih.entries[list(datasets.LABELS)].sum().to_dict(),
              "No Finding": int((real_nih.labels.sum(axis=1) == 0).sum())}
    assert (counts == shipped["label_counts"]
            and {k: v for k, v in counts.items() if k in PUBLISHED_COUNTS} == PUBLISHED_COUNTS)
    assert shipped["counts"]["images"] == len(real_nih.entries) and shipped["max_age"] == real_nih.entries["age"].max()


def test_google_labels_bad_rows_are_named_or_skipped(tmp_path):
    header = "Image Index,Patient ID,Fracture,Pneumothorax,Airspace opacity,Nodule or mass,Set Id"
    rows = ["00000001_000.png,1,NO,YES,no,NO,test", "00000002_000.png,2,NO,NO,NO,Y,val",
            "00000003_000.png,3e0,NO,NO,NO,NO,val", "00000004_000.png,4,NO,NO,NO,NO,train",
            "00000001_000.png,1,NO,NO,NO,NO,val"]
    path = tmp_path / "google2019_nih-chest-xray-labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    with pytest.raises(DataError) as err:
        datasets.read_google_labels(tmp_path)  # a folder: the file found by name
    message = str(err.value)
    assert ("4 bad row(s)" in message
            and "line 3 (00000002_000.png): Nodule or mass is 'Y': expected YES or NO" in message)
    assert "line 4" in message and "spreadsheet" in message and "Set Id 'train'" in message
    assert "line 6 (00000001_000.png): duplicate Image Index (first on line 2)" in message
    g = datasets.read_google_labels(path, errors="skip")
    assert g.iloc[0][list(datasets.GOOGLE_FINDINGS)].tolist() == [0, 1, 0, 0] and len(g) == 1
    assert g.attrs["skipped"]["line"].tolist() == [3, 4, 5, 6]
