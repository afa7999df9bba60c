"""site and external: a site's export read for validation, and the figures of external validation (notebook 09)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from helpers import dicom, external, site
from helpers.synthetic import site as synthetic_site
from helpers.errors import DataError


def _film(value: int = 2000, size: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 3) ** 2) / (size * 2.0))
    return (value + 1500 * blob + rng.integers(0, 300, (size, size))).astype(np.uint16)


def _export(root, rows, header="file,patient_id,Effusion,Mass,sex,age,view"):
    """A small PACS-style export: study folders of DICOM files named IM0001.dcm, and labels.csv."""
    lines = [header]
    for k, row in enumerate(rows, start=1):
        folder = root / f"STUDY{k:04d}"
        folder.mkdir(parents=True)
        elements = {"BodyPartExamined": "CHEST", "ViewPosition": "PA", "PatientID": row.get("mrn", f"MRN{k:05d}"),
                    "PatientName": "DOE^JOHN", **row.get("header", {})}
        dicom.write_dicom(folder / "IM0001.dcm", _film(seed=k), bits_stored=12, **elements)
        lines.append(row.get("line", f"STUDY{k:04d}/IM0001.dcm,{row.get('mrn', f'MRN{k:05d}')},{k % 2},0,F,57,PA"))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_read_site_pseudonymises_patients_and_lists_refusals_by_row(tmp_path):
    rows = [{"mrn": "MRN00001"}, {"mrn": "MRN00001"}, {"mrn": "MRN00002"},
            {"header": {"BodyPartExamined": "HAND"}}, {"header": {"ViewPosition": "LL"}}]
    data = site.read_site(_export(tmp_path, rows), image_size=32)
    assert len(data.entries) == 3 and data.images.shape == (3, 32, 32, 1)
    assert data.labels == ["Effusion", "Mass"] and "patient_id" not in data.entries
    assert data.entries.patient.iloc[0] == data.entries.patient.iloc[1] != data.entries.patient.iloc[2]
    text = data.entries.to_string() + data.refused.to_string() + data.summary()
    assert "MRN" not in text and "DOE" not in text and "IM0001" not in text and "STUDY" not in text
    assert list(data.refused.row) == [5, 6]
    assert "row 5: BodyPartExamined" in data.refused.reason.iloc[0] and "HAND" in data.refused.reason.iloc[0]
    assert "lateral" in data.refused.reason.iloc[1]
    again = site.read_site(tmp_path, image_size=32)
    # a fresh key per read: pseudonyms cannot be matched up
    assert not set(again.entries.patient) & set(data.entries.patient)
    named = site.read_site(tmp_path, image_size=32, keep_identity=True)
    assert named.refused.file.iloc[0] == "STUDY0004/IM0001.dcm"


def test_read_site_demographics_blank_labels_and_unknown_columns(tmp_path):
    rows = [{"line": "STUDY0001/IM0001.dcm,A,1,,m,057Y,ap,x1"}, {"line": "STUDY0002/IM0001.dcm,B,0,1,F,,PA,x2"},
            {"line": "STUDY0003/IM0001.dcm,C,0,0,,71,,x3"}]
    with pytest.warns(UserWarning, match="accession are not used"):
        data = site.read_site(_export(tmp_path, rows, header="file,patient_id,effusion,Mass,sex,age,view,accession"),
                              image_size=32)
    assert data.unknown_columns == ["accession"] and data.labels == ["Effusion", "Mass"]
    assert np.isnan(data.entries.Mass.iloc[0]) and data.entries.Mass.iloc[1] == 1  # blank: not labelled
    assert list(data.entries.sex) == ["M", "F", None] and list(data.entries.view) == ["AP", "PA", None]
    assert list(data.entries.age_band) == ["40-59", None, "60+"]
    assert "accession" in data.summary()


@pytest.mark.parametrize("line, header, words", [
    ("STUDY0001/IM0001.dcm,A,maybe,0,F,57,PA", None, ["line 2", "Effusion is 'maybe'", "1 (present), 0"]),
    ("STUDY0001/IM0001.dcm,,1,0,F,57,PA", None, ["line 2", "no patient_id"]),
    ("STUDY0001/IM0001.dcm,A,1,0,X,57,PA", None, ["line 2", "sex 'X'", "M, F"]),
    ("STUDY0001/IM0001.dcm,A,1,0,F,old,PA", None, ["line 2", "age 'old'", "years"]),
    ("STUDY0001/IM0001.dcm,A,F,57,PA", "file,patient_id,sex,age,view", ["no finding column", "Effusion"]),
    ("STUDY0001/IM0001.dcm,1,0", "file,Effusion,Mass", ["no patient_id column"]),
])
def test_read_site_refuses_a_bad_label_file_naming_the_line(tmp_path, line, header, words):
    _export(tmp_path, [{"line": line}], **({"header": header} if header else {}))
    with pytest.raises(DataError) as info:
        site.read_site(tmp_path, image_size=32)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_read_site_counts_missing_and_unlabelled_files(tmp_path):
    _export(tmp_path, [{}, {}])
    lines = (tmp_path / "labels.csv").read_text().splitlines()
    (tmp_path / "labels.csv").write_text("\n".join(lines[:2] + ["STUDY0009/IM0001.dcm,MRN9,1,0,F,50,PA"]) + "\n")
    data = site.read_site(tmp_path, image_size=32)
    assert len(data.entries) == 1 and data.unlabelled_files == 1
    assert data.refused.row.tolist() == [3] and "not found" in data.refused.reason.iloc[0]
    with pytest.raises(DataError, match="the label file is missing"):
        site.read_site(tmp_path / "STUDY0001", image_size=32)


def test_template_is_a_label_file_the_reader_accepts(tmp_path):
    template = pd.read_csv(site.TEMPLATE, dtype=str)
    assert list(template.columns[:2]) == ["file", "patient_id"] and set(site.OPTIONAL) <= set(template.columns)
    for k, file in enumerate(template.file, start=1):
        (tmp_path / file).parent.mkdir(parents=True)
        dicom.write_dicom(tmp_path / file, _film(seed=k), bits_stored=12, BodyPartExamined="CHEST", ViewPosition="PA")
    data = site.read_site(tmp_path, site.TEMPLATE, image_size=32)
    assert len(data.entries) == len(template) and len(data.labels) == 14


def test_synthetic_site_layout_identity_in_headers_and_planted_degradation(tmp_path):
    root = synthetic_site.write_site(tmp_path, patients=24, image_size=64, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = site.read_site(root, image_size=64)
    assert len(data.refused) == 2 and data.labels == list(synthetic_site.SITE_FINDINGS)
    header = dicom.read_radiograph(next(root.glob("STUDY*/IM0001.dcm")), keep_identity=True).identity
    assert header["PatientID"].startswith("MRN") and header["PatientName"]  # identity to pseudonymise
    old = data.entries.age >= synthetic_site.DEGRADED_FROM_AGE
    assert old.any() and (~old).any()
    # the low-dose protocol: more pixel noise, on every film of the band
    roughness = np.abs(np.diff(data.images[..., 0], axis=2)).mean(axis=(1, 2))
    assert roughness[old.to_numpy()].min() > roughness[~old.to_numpy()].max()
    again = synthetic_site.write_site(tmp_path / "again", patients=24, image_size=64, seed=3)
    assert (again / "labels.csv").read_text() == (root / "labels.csv").read_text()


def test_calibration_line_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 + 0.6 * z)))).astype(int)  # truth: logit P = 0.5 + 0.6 z
    intercept, slope = external.calibration_line(y, 1 / (1 + np.exp(-z)))
    assert abs(intercept - 0.5) < 0.06 and abs(slope - 0.6) < 0.05
    with pytest.raises(ValueError, match="only one outcome"):
        external.calibration_line(np.zeros(5), np.full(5, 0.3))


def test_predictive_values_and_thresholds_by_hand():
    ppv, npv = external.predictive_values(0.9, 0.8, 0.1)
    assert ppv == pytest.approx(0.09 / (0.09 + 0.18)) and npv == pytest.approx(0.72 / (0.72 + 0.01))
    with pytest.raises(ValueError, match="pass 0.9, not 90"):
        external.predictive_values(90, 0.8, 0.1)
    y = np.array([[1, 1], [1, 0], [0, 0], [0, np.nan]])
    p = np.array([[0.9, 0.8], [0.2, 0.1], [0.1, 0.7], [0.6, 0.9]])
    table = external.at_thresholds(y, p, pd.Series({"A": 0.5, "B": 0.5}), ["A", "B"])
    assert table.loc["A", "sensitivity"] == 0.5 and table.loc["A", "specificity"] == 0.5
    assert table.loc["B", "positives"] == 1 and table.loc["B", "specificity"] == 0.5  # the blank label left out


def test_subgroup_table_finds_a_planted_gap_and_not_a_blind_one():
    rng = np.random.default_rng(1)
    n = 600
    y = (rng.random((n, 2)) < 0.3).astype(float)
    group = np.where(rng.random(n) < 0.3, "old", "young")
    noise = np.where(group == "old", 3.0, 0.7)[:, None]
    p = 1 / (1 + np.exp(-(2 * (y - 0.5) + rng.normal(0, 1, (n, 2)) * noise)))
    table = external.subgroup_table(y, p, pd.Series({"A": 0.5, "B": 0.5}), ["A", "B"], group, np.arange(n), samples=100)
    assert table.loc["old", "found"] and table.loc["old", "high"] < 0
    expected = np.mean([roc_auc_score(y[group == "old", j], p[group == "old", j]) for j in range(2)])
    assert table.loc["old", "AUROC"] == pytest.approx(expected)
    blind = external.subgroup_table(y, p, pd.Series({"A": 0.5, "B": 0.5}), ["A", "B"], rng.choice(["a", "b"], n),
                                    np.arange(n), samples=100)
    assert not blind["found"].any()


def test_marker_is_planted_masked_and_measured():
    films = np.random.default_rng(2).random((4, 50, 50, 1)).astype(np.float32)
    marked = external.add_marker(films, [True, False, True, False])
    region = external.marker_region(50)
    assert (marked[0][region] == 1).all() and np.array_equal(marked[1], films[1])
    masked = external.mask_marker(marked)
    assert not (masked[0][region] == 1).any() and np.allclose(masked[0][~region][:10], marked[0][~region][:10])
    heat = np.zeros((1, 50, 50))
    heat[0][region] = 1.0
    heat[0, 40, 40] = 1.0
    assert external.heat_share(heat, region)[0] == pytest.approx(region.sum() / (region.sum() + 1))


def test_mean_auc_gap_is_paired_and_its_interval_covers_the_truth():
    rng = np.random.default_rng(3)
    y = (rng.random((400, 2)) < 0.4).astype(float)
    good = np.clip(y * 0.5 + rng.random((400, 2)) * 0.5, 0, 1)
    gap, low, high = external.mean_auc_gap(y, good, good, np.arange(400), samples=100)
    assert gap == 0 and low == 0 and high == 0
    worse = np.clip(y * 0.1 + rng.random((400, 2)) * 0.9, 0, 1)
    gap, low, high = external.mean_auc_gap(y, good, worse, np.arange(400), samples=200)
    assert low > 0 and low <= gap <= high
