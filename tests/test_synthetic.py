"""synthetic: deterministic datasets in the exact NIH ChestX-ray14 and DRIVE layouts."""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import config, synthetic
from helpers.errors import DataError

SEED = 3
SIZE = 64


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def read_lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and "\r" not in text
    return text[:-1].split("\n")


@pytest.fixture(scope="module")
def nih(tmp_path_factory) -> Path:
    # 40 patients (~120 images, as the smoke profile) at 64 px: every label, several RGBA images.
    return synthetic.write_nih(tmp_path_factory.mktemp("nih"), patients=40, image_size=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def entries(nih):
    rows = [line.split(",") for line in read_lines(nih / "Data_Entry_2017.csv")[1:]]
    return [
        dict(name=r[0], labels=r[1], followup=int(r[2]), patient=int(r[3]), age=int(r[4]), sex=r[5], view=r[6],
             width=int(r[7]), height=int(r[8]), sx=float(r[9]), sy=float(r[10]), tail=r[11], nfields=len(r))
        for r in rows
    ]  # fmt: skip


@pytest.fixture(scope="module")
def drive(tmp_path_factory) -> Path:
    return synthetic.write_drive(tmp_path_factory.mktemp("drive"), train_ids=[21, 22], test_ids=[1, 2], seed=SEED)


# ---------------------------------------------------------------------------------------------- NIH


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    a = digests(synthetic.write_nih(tmp_path / "a", patients=6, image_size=SIZE, seed=7))
    b = digests(synthetic.write_nih(tmp_path / "b", patients=6, image_size=SIZE, seed=7))
    c = digests(synthetic.write_nih(tmp_path / "c", patients=6, image_size=SIZE, seed=8))
    assert a == b
    assert len(a) > 10
    pngs = [k for k in a if k.endswith(".png")]
    assert sum(a[k] != c.get(k) for k in pngs) == len(pngs)
    assert a["Data_Entry_2017.csv"] != c["Data_Entry_2017.csv"]


def test_csv_headers_are_the_real_ones_and_rows_match_their_field_count(nih, entries):
    de = read_lines(nih / "Data_Entry_2017.csv")
    bb = read_lines(nih / "BBox_List_2017.csv")
    assert de[0] == (
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
    )
    assert bb[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    assert len(de[0].split(",")) == 12 and len(bb[0].split(",")) == 9
    assert {e["nfields"] for e in entries} == {12} and {e["tail"] for e in entries} == {""}
    assert all(len(line.split(",")) == 9 and line.endswith(",,,") for line in bb[1:])
    assert len(bb) > 20


def test_metadata_columns_are_plausible(entries):
    for e in entries:
        assert e["sex"] in ("M", "F") and e["view"] in ("PA", "AP")
        assert 0 < e["age"] < 100
        assert 2000 <= e["width"] <= 3100 and 2000 <= e["height"] <= 3100  # the scanner's size, not the PNG's
        assert e["sx"] == e["sy"] and 0.1 < e["sx"] < 0.2
    assert {e["view"] for e in entries} == {"PA", "AP"}


def test_file_names_follow_the_pattern_and_match_the_csv(nih, entries):
    files = sorted(p.name for p in (nih / "images").iterdir())
    assert files == sorted(e["name"] for e in entries) == [e["name"] for e in entries]
    for e in entries:
        assert re.fullmatch(r"\d{8}_\d{3}\.png", e["name"])
        assert e["name"] == f"{e['patient']:08d}_{e['followup']:03d}.png"
    assert entries[0]["name"] == "00000001_000.png"
    per_patient = {}
    for e in entries:
        per_patient.setdefault(e["patient"], []).append(e["followup"])
    assert all(f == list(range(len(f))) for f in per_patient.values())
    counts = [len(f) for f in per_patient.values()]
    assert min(counts) >= 1 and max(counts) <= 6 and 2 <= np.mean(counts) <= 4


def test_images_are_8bit_grey_of_the_stated_size_except_a_few_rgba(nih, entries):
    rgba = 0
    for e in entries:
        with Image.open(nih / "images" / e["name"]) as img:
            assert img.format == "PNG" and img.size == (SIZE, SIZE)
            assert img.mode in ("L", "RGBA")
            if img.mode == "RGBA":
                rgba += 1
                a = np.asarray(img)
                assert (a[..., 3] == 255).all()
                assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
            else:
                assert np.asarray(img).dtype == np.uint8
    assert 1 <= rgba <= max(1, round(0.03 * len(entries)))


def test_labels_valid_sorted_every_label_on_several_patients(entries):
    patients = {lb: set() for lb in synthetic.LABELS}
    for e in entries:
        if e["labels"] == "No Finding":
            continue
        parts = e["labels"].split("|")
        assert parts == sorted(parts) and len(set(parts)) == len(parts)
        assert set(parts) <= set(synthetic.LABELS)
        for lb in parts:
            patients[lb].add(e["patient"])
    assert {lb: len(p) for lb, p in patients.items() if len(p) < 3} == {}
    no_finding = np.mean([e["labels"] == "No Finding" for e in entries])
    assert 0.35 <= no_finding <= 0.65


def test_box_rows_one_per_box_finding_of_a_test_image_inside_the_image(nih, entries):
    rows = [line.split(",") for line in read_lines(nih / "BBox_List_2017.csv")[1:]]
    test_list = set(read_lines(nih / "test_list.txt"))
    expected = sorted(
        (e["name"], "Infiltrate" if lb == "Infiltration" else lb)
        for e in entries
        for lb in e["labels"].split("|")
        if lb in synthetic.LABELS[:8] and e["name"] in test_list
    )
    # as in the real release: every boxed image is in test_list.txt, none in train_val_list.txt
    assert rows and {r[0] for r in rows} <= test_list
    assert not {r[0] for r in rows} & set(read_lines(nih / "train_val_list.txt"))
    assert sorted((r[0], r[1]) for r in rows) == expected
    assert "Infiltrate" in {r[1] for r in rows} and "Infiltration" not in {r[1] for r in rows}
    for r in rows:
        x, y, w, h = map(float, r[2:6])
        assert w > 1 and h > 1, r
        assert 0 <= x and 0 <= y and x + w <= SIZE + 1e-6 and y + h <= SIZE + 1e-6, r


def test_each_finding_is_drawn_inside_its_box(nih):
    # Render every finding alone and compare with the same image without findings (same patient,
    # same shift, exposure and noise): the change must sit inside the box.
    records = synthetic._nih_plan(40, SEED)
    checked = set()
    anatomy = None
    for rec in records:
        if not rec["labels"]:
            continue
        if anatomy is None or anatomy["patient"] != rec["patient"]:
            anatomy = dict(synthetic._anatomy(SEED, rec["patient"], SIZE), patient=rec["patient"])
        full, _ = synthetic._render_chest(anatomy, SEED, rec)
        on_disk = np.asarray(Image.open(nih / "images" / rec["name"]).convert("L"))
        assert np.array_equal(full, on_disk)
        clean, _ = synthetic._render_chest(anatomy, SEED, rec, with_findings=False)
        for label in rec["labels"]:
            alone, boxes = synthetic._render_chest(anatomy, SEED, dict(rec, labels=[label]))
            x, y, w, h = boxes[label]
            inside = np.zeros(clean.shape, bool)
            inside[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = True
            diff = np.abs(alone.astype(float) - clean)
            assert diff[inside].mean() >= 8, (rec["name"], label, diff[inside].mean())
            assert diff[inside].mean() >= 5 * diff[~inside].mean(), (rec["name"], label)
            checked.add(label)
    assert checked == set(synthetic.LABELS)


def test_split_is_by_patient_and_covers_every_image(nih, entries):
    train = read_lines(nih / "train_val_list.txt")
    test = read_lines(nih / "test_list.txt")
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert sorted(train + test) == sorted(e["name"] for e in entries)
    pid = {e["name"]: e["patient"] for e in entries}
    train_p, test_p = {pid[n] for n in train}, {pid[n] for n in test}
    assert train_p.isdisjoint(test_p)
    assert 0.15 <= len(test_p) / (len(train_p) + len(test_p)) <= 0.25
    in_test = {lb for e in entries if e["name"] in set(test) for lb in e["labels"].split("|")}
    assert set(synthetic.LABELS) <= in_test


def test_images_of_one_patient_are_each_others_nearest_neighbours(nih, entries):
    # The leak that a random image-level split exploits.
    x = np.stack(
        [np.asarray(Image.open(nih / "images" / e["name"]).convert("L").resize((16, 16), Image.BILINEAR), float).ravel()
         for e in entries]
    )  # fmt: skip
    pid = np.array([e["patient"] for e in entries])
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    multi = np.array([(pid == p).sum() > 1 for p in pid])
    same = pid[d.argmin(1)] == pid
    assert same[multi].mean() > 0.8


# -------------------------------------------------------------------------------------------- DRIVE


def test_drive_file_names_exactly(drive):
    found = sorted(str(p.relative_to(drive)) for p in drive.rglob("*") if p.is_file())
    assert found == sorted(
        [
            "training/images/21_training.tif", "training/images/22_training.tif",
            "training/1st_manual/21_manual1.gif", "training/1st_manual/22_manual1.gif",
            "training/mask/21_training_mask.gif", "training/mask/22_training_mask.gif",
            "test/images/01_test.tif", "test/images/02_test.tif",
            "test/1st_manual/01_manual1.gif", "test/1st_manual/02_manual1.gif",
            "test/2nd_manual/01_manual2.gif", "test/2nd_manual/02_manual2.gif",
            "test/mask/01_test_mask.gif", "test/mask/02_test_mask.gif",
        ]
    )  # fmt: skip


def test_drive_formats_and_masks(drive):
    for split, i in (("training", 21), ("training", 22), ("test", 1), ("test", 2)):
        with Image.open(drive / split / "images" / f"{i:02d}_{split}.tif") as img:
            assert (img.format, img.mode, img.size) == ("TIFF", "RGB", (565, 584))
            rgb = np.asarray(img).astype(float)
        with Image.open(drive / split / "1st_manual" / f"{i:02d}_manual1.gif") as img:
            assert img.format == "GIF"
            m1 = np.asarray(img)
        with Image.open(drive / split / "mask" / f"{i:02d}_{split}_mask.gif") as img:
            assert img.format == "GIF"
            fov = np.asarray(img)
        assert set(np.unique(m1)) == {0, 255} and set(np.unique(fov)) == {0, 255}
        assert m1.shape == fov.shape == (584, 565)
        fov, vessels = fov == 255, m1 == 255
        assert not (vessels & ~fov).any()
        assert 0.07 < vessels[fov].mean() < 0.18
        # a centred circle of diameter ~540
        ys, xs = np.nonzero(fov)
        assert 530 <= xs.max() - xs.min() + 1 <= 550 and 530 <= ys.max() - ys.min() + 1 <= 550
        assert abs(xs.mean() - 282) < 2 and abs(ys.mean() - 291.5) < 2
        assert abs(fov.sum() - np.pi * 270**2) < 0.01 * fov.sum()
        # black outside the FOV; vessels darker than the background next to them, most of all in green
        assert rgb[~fov].max() == 0
        near = np.zeros_like(vessels)
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                near |= np.roll(vessels, (dy, dx), axis=(0, 1))
        ring = near & ~vessels & fov
        contrast = [rgb[..., c][ring].mean() - rgb[..., c][vessels].mean() for c in range(3)]
        assert contrast[1] > 15 and contrast[1] > contrast[0] and contrast[1] > contrast[2]
        if split == "test":
            with Image.open(drive / "test" / "2nd_manual" / f"{i:02d}_manual2.gif") as img:
                assert img.mode == "P"
                assert img.getpalette()[3:6] == [255, 255, 255] and img.getpalette()[:3] == [0, 0, 0]
                m2 = np.asarray(img)
            assert set(np.unique(m2)) == {0, 1}
            assert not ((m2 == 1) & ~fov).any()
            agree = ((m2 == 1) == vessels)[fov].mean()
            assert 0.95 <= agree < 1.0


def test_drive_is_deterministic(tmp_path):
    a = digests(synthetic.write_drive(tmp_path / "a", train_ids=[23], test_ids=[4], seed=1))
    b = digests(synthetic.write_drive(tmp_path / "b", train_ids=[23], test_ids=[4], seed=1))
    c = digests(synthetic.write_drive(tmp_path / "c", train_ids=[23], test_ids=[4], seed=2))
    assert a == b and len(a) == 7
    assert a["training/images/23_training.tif"] != c["training/images/23_training.tif"]


# ------------------------------------------------------------------------------------ ensure and CLI


@pytest.fixture
def tiny_profiles(monkeypatch):
    monkeypatch.setitem(synthetic.NIH_SIZES, "smoke", dict(patients=5, image_size=32))
    monkeypatch.setitem(synthetic.DRIVE_SIZES, "smoke", dict(train_ids=(21,), test_ids=(1,), width=565, height=584))


def test_ensure_writes_once_then_reuses(tmp_path, tiny_profiles, monkeypatch, capsys):
    cfg = config.Config(profile="smoke", cache_dir=tmp_path, seed=5)
    path = synthetic.ensure(cfg, "nih")
    assert path == tmp_path / "synthetic" / "smoke" / "nih"
    assert "Writing synthetic NIH-layout data" in capsys.readouterr().out
    marker = json.loads((path / synthetic.MARKER).read_text())
    assert marker["seed"] == 5 and marker["params"] == {"patients": 5, "image_size": 32}
    assert [p.name for p in tmp_path.joinpath("synthetic", "smoke").iterdir()] == ["nih"]  # no temporary left

    def boom(*args, **kwargs):
        raise AssertionError("should not write again")

    monkeypatch.setattr(synthetic, "write_nih", boom)
    assert synthetic.ensure(cfg, "nih") == path
    assert capsys.readouterr().out == ""
    monkeypatch.undo()

    # another seed (or a changed profile size) rewrites the folder in place
    tiny = dict(patients=5, image_size=32)
    monkeypatch.setitem(synthetic.NIH_SIZES, "smoke", tiny)
    before = (path / "Data_Entry_2017.csv").read_text()
    synthetic.ensure(config.Config(profile="smoke", cache_dir=tmp_path, seed=6), "nih")
    assert (path / "Data_Entry_2017.csv").read_text() != before
    assert json.loads((path / synthetic.MARKER).read_text())["seed"] == 6
    assert [p.name for p in tmp_path.joinpath("synthetic", "smoke").iterdir()] == ["nih"]


def test_ensure_drive_and_an_incomplete_folder_is_replaced(tmp_path, tiny_profiles):
    cfg = config.Config(profile="smoke", cache_dir=tmp_path, seed=5)
    stale = cfg.dataset_dir("drive")
    (stale / "training").mkdir(parents=True)
    (stale / "half_written.txt").write_text("interrupted")
    path = synthetic.ensure(cfg, "drive")
    assert path == stale and not (path / "half_written.txt").exists()
    assert (path / "test" / "2nd_manual" / "01_manual2.gif").is_file()


def test_ensure_real_data_missing_folder_says_so(tmp_path):
    cfg = config.Config(profile="lab", data_dir=tmp_path, cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"nih.*MEDXAI_DATA_DIR"):
        synthetic.ensure(cfg, "nih")
    (tmp_path / "drive").mkdir()
    assert synthetic.ensure(cfg, "drive") == tmp_path / "drive"
    assert list((tmp_path / "drive").iterdir()) == []  # the real folder is never written to


def test_cli_writes_where_it_says(tmp_path, tiny_profiles, monkeypatch, capsys):
    monkeypatch.setenv("MEDXAI_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MEDXAI_PROFILE", "lab")
    assert synthetic._main(["--profile", "smoke", "--dataset", "nih"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "synthetic" / "smoke" / "nih") in out
    assert (tmp_path / "synthetic" / "smoke" / "nih" / "images" / "00000001_000.png").is_file()
    assert not (tmp_path / "synthetic" / "lab").exists()
