"""The bad-input matrix: every input that must be refused, with the exception and the words its message needs.

The rule of the series: bad input raises (or warns) at our boundary with a message that names the file, row
or argument, says what was found and what to do; never a silent wrong answer, never a library's internals.
Each case is (id, a function of a temporary folder that triggers it, the exception or warning type, the words
the message must contain, case-insensitive). Grouped by module.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from helpers import errors
from helpers.errors import DataError


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Path], object]
    raises: type  # an Exception subclass, or a Warning subclass for cases that warn
    words: tuple[str, ...]


CASES: list[Case] = []


def case(id: str, raises: type, *words: str):
    """Register the decorated function of ``tmp_path`` as one row of the matrix."""

    def register(fn):
        CASES.append(Case(id, fn, raises, tuple(words)))
        return fn

    return register


# ---- errors: the shared checks ------------------------------------------------------------------

case("errors/labels_0_255", DataError, "255", "divide by 255")(
    lambda tmp: errors.check_labels(np.array([[0, 255]]), "y"))
case("errors/labels_nan", DataError, "nan", "index")(lambda tmp: errors.check_labels(np.array([0.0, np.nan]), "y"))
case("errors/labels_half", DataError, "0.5", "only 0 and 1")(lambda tmp: errors.check_labels([0, 0.5, 1], "y"))
case("errors/probs_logits", DataError, "sigmoid", "[0, 1]")(lambda tmp: errors.check_probabilities([-2.0, 3.0], "s"))
case("errors/probs_uint8", DataError, "divide by 255")(lambda tmp: errors.check_probabilities([0, 128, 255], "s"))
case("errors/probs_percent", DataError, "divide by 100")(lambda tmp: errors.check_probabilities([12.5, 80.25], "s"))
case("errors/finite_inf", DataError, "infinite", "index 1")(lambda tmp: errors.check_finite([1.0, np.inf], "x"))
case("errors/finite_text", DataError, "expected numbers")(lambda tmp: errors.check_finite(["a", "b"], "x"))

# ---- datasets -----------------------------------------------------------------------------------

import gzip  # noqa: E402  (kept in this section: the sections are edited independently)

import pandas as pd  # noqa: E402

from helpers import datasets, splits  # noqa: E402
from helpers.errors import PatientLeakageError  # noqa: E402

_NIH_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
               "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
_NIH_ROW = "00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.143,0.143"


def _nih(tmp: Path, *rows: str, header: str = _NIH_HEADER, name: str = "Data_Entry_2017_v2020.csv",
         encoding: str = "utf-8", boxes: str | None = None) -> Path:
    """A metadata-only NIH folder: the header, a good row, then ``rows``; read with images='none'."""
    (tmp / name).write_bytes("\n".join([header, _NIH_ROW, *rows]).encode(encoding) + b"\n")
    if boxes is not None:
        (tmp / "BBox_List_2017.csv").write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,\n" + boxes)
    return tmp


def _read(tmp: Path, *rows: str, **kwargs) -> object:
    return datasets.read_nih(_nih(tmp, *rows, **kwargs), images="none")


def _row(**fields: str) -> str:
    """The good row with some fields replaced (by position name)."""
    cells = "00000002_000.png,No Finding,0,2,40,F,AP,2500,2048,0.168,0.168".split(",")
    where = {"patient": 3, "age": 4, "follow_up": 2, "width": 7}
    for key, value in fields.items():
        cells[where[key]] = value
    return ",".join(cells)


def _entries(**overrides) -> pd.DataFrame:
    """40 patients, 2 images each, every label on 8 patients: patient_split runs on it as it is."""
    rows = []
    for p in range(40):
        for i in range(2):
            rows.append({"patient_id": p, **{lab: int((p + j) % 5 == 0) for j, lab in enumerate(datasets.LABELS)}})
    frame = pd.DataFrame(rows)
    for column, value in overrides.items():
        frame.loc[0, column] = value
    return frame


case("datasets/row_missing_a_field", DataError, "line 3", "10 fields but the header has 11", "wrong columns")(
    lambda tmp: _read(tmp, "00000002_000.png,No Finding,2,40,F,AP,2500,2048,0.168,0.168"))
case("datasets/row_one_field_too_many", DataError, "line 3", "12 fields but the header has 11")(
    lambda tmp: _read(tmp, _row() + ",0.1"))
case("datasets/row_2017_without_trailing_comma", DataError, "Data_Entry_2017.csv", "line 2",
     "11 fields but the header has 12")(
    lambda tmp: _read(tmp, _row() + ",", header=_NIH_HEADER + ",", name="Data_Entry_2017.csv"))
case("datasets/patient_id_exponent", DataError, "'1e3'", "spreadsheet's number format", "line 3")(
    lambda tmp: _read(tmp, _row(patient="1e3")))
case("datasets/patient_id_decimal", DataError, "'2.0'", "spreadsheet's number format")(
    lambda tmp: _read(tmp, _row(patient="2.0")))
case("datasets/age_negative", DataError, "Patient Age '-4' is negative", "00000002_000.png")(
    lambda tmp: _read(tmp, _row(age="-4")))
case("datasets/age_text", DataError, "Patient Age 'forty' is not a number of years")(
    lambda tmp: _read(tmp, _row(age="forty")))
case("datasets/age_empty", DataError, "Patient Age '' is not a number", "line 3")(
    lambda tmp: _read(tmp, _row(age="")))
case("datasets/age_above_120", DataError, "148", "above 120", "Data_Entry_2017_v2020.csv")(
    lambda tmp: _read(tmp, _row(age="148")))
case("datasets/follow_up_not_whole", DataError, "Follow-up # '1.5' is not a whole number")(
    lambda tmp: _read(tmp, _row(follow_up="1.5")))
case("datasets/follow_up_negative", DataError, "Follow-up # '-1' is below 0")(
    lambda tmp: _read(tmp, _row(follow_up="-1")))
case("datasets/width_not_a_number", DataError, "OriginalImage Width 'wide' is not a whole number")(
    lambda tmp: _read(tmp, _row(width="wide")))
case("datasets/csv_semicolons", DataError, "semicolons", "not commas", "CSV UTF-8 (comma delimited)")(
    lambda tmp: _read(tmp, header=_NIH_HEADER.replace(",", ";")))
case("datasets/csv_semicolons_spreadsheet_export", DataError, "semicolons", "comma-separated")(  # [Width,Height] kept
    lambda tmp: _read(tmp, _row().replace(",", ";"), header=_NIH_HEADER.replace(",", ";").replace("[Width;", "[Width,")
                      .replace("[x;", "[x,")))
case("datasets/csv_tabs", DataError, "separated by tabs", "UTF-8")(
    lambda tmp: _read(tmp, header=_NIH_HEADER.replace(",", "\t")))
case("datasets/csv_utf16", DataError, "UTF-16", "comma-separated values in UTF-8")(
    lambda tmp: _read(tmp, encoding="utf-16"))
case("datasets/csv_latin1", DataError, "not UTF-8", "Latin-1", "line 3", "UTF-8")(
    lambda tmp: _read(tmp, _row().replace("F,", "\u00e9,"), encoding="latin-1"))
case("datasets/csv_header_only", DataError, "Data_Entry_2017_v2020.csv", "only a header, no rows")(
    lambda tmp: ((tmp / "Data_Entry_2017_v2020.csv").write_text(_NIH_HEADER + "\n")
                 and datasets.read_nih(tmp, images="none")))
case("datasets/csv_gz_corrupt", DataError, "Data_Entry_2017_v2020.csv.gz", "not a readable gzip")(
    lambda tmp: (tmp / "Data_Entry_2017_v2020.csv.gz").write_bytes(gzip.compress(b"Image Index")[:-9])
    and datasets.read_nih(tmp, images="none"))
case("datasets/bbox_header_only", UserWarning, "BBox_List_2017.csv", "only a header, no boxes")(
    lambda tmp: _read(tmp, boxes=""))
case("datasets/bbox_duplicate", UserWarning, "1 duplicate box", "line 3 repeats line 2", "kept once")(
    lambda tmp: _read(tmp, boxes="00000001_000.png,Cardiomegaly,1,2,3,4\n00000001_000.png,Cardiomegaly,1,2,3,4\n"))
case("datasets/images_mode_boolean", ValueError, "images must be 'all'", "'none'", "False")(
    lambda tmp: datasets.read_nih(_nih(tmp), images=False))
case("datasets/overlap_text_and_int_ids", PatientLeakageError, "train & test share 1 patient")(
    lambda tmp: splits.assert_no_patient_overlap(train=pd.DataFrame({"patient_id": ["13", "14"]}),
                                                   test=pd.DataFrame({"patient_id": [13]})))
case("datasets/overlap_zero_padded_ids", PatientLeakageError, "share 1 patient")(
    lambda tmp: splits.assert_no_patient_overlap(train=["00000013"], test=[13.0]))
case("datasets/overlap_ids_of_two_kinds", DataError, "different kinds", "train: text", "test: number")(
    lambda tmp: splits.assert_no_patient_overlap(train=["P13"], test=[13]))
case("datasets/overlap_exponent_id", DataError, "split 'train'", "'1e3'", "spreadsheet's number format")(
    lambda tmp: splits.assert_no_patient_overlap(train=["1e3"], test=["1000"]))
case("datasets/overlap_missing_id", DataError, "split 'val'", "missing patient ID")(
    lambda tmp: splits.assert_no_patient_overlap(train=[1, 2], val=[3.0, np.nan]))
case("datasets/split_labels_0_255", DataError, "entries['Atelectasis']", "255", "divide by 255")(
    lambda tmp: splits.patient_split(_entries().assign(Atelectasis=lambda f: f["Atelectasis"] * 255)))
case("datasets/split_labels_nan", DataError, "entries['Hernia']", "NaN")(
    lambda tmp: splits.patient_split(_entries(Hernia=np.nan)))
case("datasets/split_labels_two", DataError, "entries['Mass']", "only 0 and 1")(
    lambda tmp: splits.patient_split(_entries(Mass=2)))
case("datasets/split_fraction_text", DataError, "0.2 as a number, not the text '0.2'")(
    lambda tmp: splits.patient_split(_entries(), val_fraction="0.2"))
case("datasets/split_fraction_list", DataError, "test_fraction", "strictly between 0 and 1", "list")(
    lambda tmp: splits.random_split(_entries(), test_fraction=[0.2]))
case("datasets/split_seed_negative", DataError, "seed=-1", "0 to 4294967295")(
    lambda tmp: splits.patient_split(_entries(), seed=-1))
case("datasets/split_seed_too_big", DataError, "seed=4294967296", "2**32 - 1")(
    lambda tmp: splits.random_split(_entries(), seed=2**32))
case("datasets/split_seed_float", DataError, "whole number from 0", "float")(
    lambda tmp: splits.random_split(_entries(), seed=4.5))
case("datasets/google_not_yes_no", DataError, "line 2", "Fracture is 'maybe'", "expected YES or NO")(
    lambda tmp: (tmp / "g.csv").write_text(
        "Image Index,Patient ID,Fracture,Pneumothorax,Airspace opacity,Nodule or mass,Set Id\n"
        "00000001_000.png,1,maybe,NO,NO,NO,test\n") and datasets.read_google_labels(tmp / "g.csv"))
case("datasets/google_missing_column", DataError, "'Set Id'", "not found in the header")(
    lambda tmp: (tmp / "g.csv").write_text(
        "Image Index,Patient ID,Fracture,Pneumothorax,Airspace opacity,Nodule or mass\n"
        "00000001_000.png,1,NO,NO,NO,NO\n") and datasets.read_google_labels(tmp / "g.csv"))


def _split_lists(tmp, test: str, train_val: str):
    """The metadata folder of _read with official lists: one image in each unless given."""
    root = _nih(tmp, _row())
    (root / "test_list.txt").write_text(test)
    (root / "train_val_list.txt").write_text(train_val)
    return splits.official_split(datasets.read_nih(root, images="none"))


# the leakage check handed image names instead of patient IDs: NIH names are mapped to their patients (and the
# leak found), other file names refused; 20-digit pseudonyms compared exactly, not by numpy's int64
case("datasets/leak_check_nih_image_names", PatientLeakageError, "1 patient(s)", "train & test")(
    lambda tmp: splits.assert_no_patient_overlap(train=["00000013_000.png", "00000014_000.png"],
                                                 test=["00000013_004.png"]))
case("datasets/leak_check_nih_image_names_warn", UserWarning, "NIH image names", "first 8 digits", "patient_id column")(
    lambda tmp: splits.assert_no_patient_overlap(train=["00000013_000.png"], test=["00000014_000.png"]))
case("datasets/leak_check_file_names", DataError, "look like image file names", "'scans/a.dcm'", "patient_id column")(
    lambda tmp: splits.assert_no_patient_overlap(train=["scans/a.dcm"], test=["scans/b.dcm"]))
case("datasets/leak_check_frame_of_image_names", DataError, "no 'patient_id' column", "image names", "patient_id")(
    lambda tmp: splits.assert_no_patient_overlap(train=pd.DataFrame({"image_index": ["a.png"]}),
                                                 test=pd.DataFrame({"image_index": ["b.png"]})))
case("datasets/leak_check_20_digit_ids", PatientLeakageError, "1 patient(s)")(
    lambda tmp: splits.assert_no_patient_overlap(train=["98765432109876543210"], test=["098765432109876543210", "7"]))
case("datasets/split_one_patient", DataError, "Only 1 patient(s)", "one per split")(
    lambda tmp: splits.patient_split(_entries().assign(patient_id=0)))
case("datasets/split_test_fraction_not_honoured", UserWarning, "test split holds", "not the 1% asked",
     "larger fraction")(
    lambda tmp: splits.patient_split(_entries(), test_fraction=0.01))
case("datasets/official_test_list_empty", DataError, "test_list.txt", "the list is empty", "patient_split")(
    lambda tmp: _split_lists(tmp, "", "00000001_000.png\n00000002_000.png\n"))
case("datasets/labels_comma_separated", DataError, "line 3", "separated by ','", "'Effusion|Mass'")(
    lambda tmp: _read(tmp, "00000002_000.png,\"Effusion, Mass\",0,2,40,F,AP,2500,2048,0.168,0.168"))

# ---- preprocessing ------------------------------------------------------------------------------

def _png16(tmp, values) -> Path:
    from PIL import Image as _PImage

    path = tmp / "detector.png"
    _PImage.fromarray(np.asarray(values, np.uint16)).save(path)
    return path


case("preprocessing/12bit_in_16bit_without_sbit", UserWarning, "detector.png", "below 4096", "near black", "sBIT")(
    lambda tmp: __import__("helpers.preprocessing").preprocessing.read_image(_png16(tmp, [[0, 4000], [1000, 2000]])))

import zlib as _zlib  # noqa: E402 (imports of this section kept in it)

from PIL import Image as _Image  # noqa: E402

from helpers import preprocessing as _pre  # noqa: E402


def _pre_pngs(tmp, count=3):
    """``count`` small grey PNGs in ``tmp``; returns their paths."""
    paths = []
    for i in range(count):
        pixels = (np.arange(32 * 32).reshape(32, 32) * (i + 3) % 256).astype(np.uint8)
        _Image.fromarray(pixels).save(tmp / f"img{i}.png")
        paths.append(tmp / f"img{i}.png")
    return paths


def _pre_corrupt(path):
    """Flip bytes inside the compressed IDAT data, leaving the header (and the file size) intact."""
    data = bytearray(path.read_bytes())
    start = data.find(b"IDAT") + 12
    for k in range(start, min(start + 40, len(data) - 16)):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def _pre_bomb(path, side=100_000):
    """Rewrite a PNG's IHDR to announce side x side pixels, with a valid checksum (a decompression bomb's header)."""
    data = bytearray(path.read_bytes())
    data[16:24] = side.to_bytes(4, "big") + side.to_bytes(4, "big")
    data[29:33] = _zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


class _HalfModel:
    """A stand-in segmentation model that predicts 0.5 everywhere."""

    def predict(self, x, batch_size=None, verbose=0):
        return np.full(x.shape[:3] + (1,), 0.5, np.float32)


def _pre_nan_image():
    image = np.full((64, 64), 0.4, np.float32)
    image[10, 20] = np.nan
    return image


case("preprocessing/fit_normalization_nan_pixel", DataError, "nan", "index (0, 3, 5)")(
    lambda tmp: _pre.fit_normalization(_with(np.full((2, 8, 8), 0.5), (0, 3, 5), np.nan)))
case("preprocessing/fit_normalization_inf_in_second_batch", DataError, "infinite", "batch 1")(
    lambda tmp: _pre.fit_normalization([np.full((2, 4, 4), 0.5), _with(np.full((2, 4, 4), 0.5), (1, 0, 0), np.inf)]))
case("preprocessing/fit_normalization_paths_without_size", ValueError, "image_size")(
    lambda tmp: _pre.fit_normalization([str(p) for p in _pre_pngs(tmp)]))
case("preprocessing/fit_normalization_constant", DataError, "constant")(
    lambda tmp: _pre.fit_normalization([np.ones((2, 4, 4)), np.ones((1, 4, 4))]))
case("preprocessing/predict_full_image_all_nan", DataError, "nan", "index (0, 0)")(
    lambda tmp: _pre.predict_full_image(_HalfModel(), np.full((64, 64), np.nan, np.float32), 32, 16))
case("preprocessing/predict_full_image_one_nan_named", DataError, "21_training.tif", "index (10, 20)")(
    lambda tmp: _pre.predict_full_image(_HalfModel(), _pre_nan_image(), 32, 16, source="21_training.tif"))
case("preprocessing/clahe_0_255_floats", DataError, "0 to 255", "divide by 255")(
    lambda tmp: _pre.clahe(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) % 256))
case("preprocessing/clahe_16bit", DataError, "divide by 65535")(
    lambda tmp: _pre.clahe(np.linspace(0, 65535, 64 * 64, dtype=np.float32).reshape(64, 64)))
case("preprocessing/clahe_standardised", DataError, "before standardising")(
    lambda tmp: _pre.clahe(np.linspace(-2, 2, 64 * 64, dtype=np.float32).reshape(64, 64)))
case("preprocessing/clahe_nan", DataError, "nan", "clahe")(lambda tmp: _pre.clahe(_pre_nan_image()))
case("preprocessing/pipeline_corrupt_png_named", DataError, "img1.png", "corrupt")(
    lambda tmp: _pre.load_images([*_pre_pngs(tmp)[:1], _pre_corrupt(tmp / "img1.png"), tmp / "img2.png"], 16))
case("preprocessing/pipeline_corrupt_last_png_named", DataError, "img2.png", "corrupt")(
    lambda tmp: _pre.load_images([*_pre_pngs(tmp)[:2], _pre_corrupt(tmp / "img2.png")], 16))
case("preprocessing/pipeline_decompression_bomb", DataError, "img0.png", "decompression-bomb", "MAX_IMAGE_PIXELS")(
    lambda tmp: _pre.load_images([_pre_bomb(_pre_pngs(tmp)[0]), tmp / "img1.png"], 16))
case("preprocessing/read_image_decompression_bomb", DataError, "img0.png", "decompression bomb", "MAX_IMAGE_PIXELS")(
    lambda tmp: _pre.read_image(_pre_bomb(_pre_pngs(tmp, 1)[0])))
case("preprocessing/load_images_missing_file", DataError, "gone.png", "not found", "1 of 3")(
    lambda tmp: _pre.load_images([*_pre_pngs(tmp, 2), tmp / "gone.png"], 16))
case("preprocessing/image_dataset_labels_0_255", DataError, "image_dataset labels", "divide by 255")(
    lambda tmp: _pre.image_dataset(_pre_pngs(tmp), np.array([[0], [255], [0]]), image_size=16))
case("preprocessing/image_dataset_labels_nan", DataError, "nan", "index (1, 0)")(
    lambda tmp: _pre.image_dataset(_pre_pngs(tmp), np.array([[0.0], [np.nan], [1.0]]), image_size=16))
case("preprocessing/class_weights_0_255", DataError, "class_weights labels", "divide by 255")(
    lambda tmp: _pre.class_weights(np.array([[0, 255], [255, 0]])))
case("preprocessing/class_weights_nan", DataError, "nan", "index (1, 1)")(
    lambda tmp: _pre.class_weights(np.array([[0, 1], [1, np.nan]])))


def _pre_save(path, array, **kwargs):
    """Save ``array`` with PIL (the format from the suffix) and return the path."""
    _Image.fromarray(array).save(path, **kwargs)
    return path


def _pre_sbit(path, pixels, sbit):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([sbit]))
    return _pre_save(path, pixels, pnginfo=info)


case("preprocessing/read_image_float_tiff_in_thousands", DataError, "raw.tif", "mode F", "from 0 to 4095",
     "outside [0, 1]", "scale it to [0, 1]")(
    lambda tmp: _pre.read_image(_pre_save(tmp / "raw.tif", np.array([[0.0, 1200.0], [3000.0, 4095.0]], np.float32))))
case("preprocessing/read_image_32bit_above_16bit", DataError, "wide.tif", "mode I", "0 to 70000", "0 to 65535")(
    lambda tmp: _pre.read_image(_pre_save(tmp / "wide.tif", np.array([[0, 70000]], np.int32))))
case("preprocessing/read_image_sbit_inconsistent", DataError, "odd.png", "sBIT", "12 significant bits", "reach 60000")(
    lambda tmp: _pre.read_image(_pre_sbit(tmp / "odd.png", np.array([[0, 4095, 60000]], np.uint16), 12)))
case("preprocessing/image_dataset_disk_cache_without_folder", ValueError, "cache_dir")(
    lambda tmp: _pre.image_dataset(_pre_pngs(tmp), image_size=16, cache="disk"))
case("preprocessing/image_dataset_unknown_cache", ValueError, "'memory', 'disk' or None")(
    lambda tmp: _pre.image_dataset(_pre_pngs(tmp), image_size=16, cache="ram"))

# ---- models and config --------------------------------------------------------------------------

import keras as _keras  # noqa: E402 (imports of this section kept in it)

from helpers import models as _models  # noqa: E402


def _mod_dense(layers=()):
    return _keras.Sequential([_keras.Input((4,)), *layers, _keras.layers.Dense(3, activation="sigmoid")])


class _Unregistered(_keras.layers.Layer):
    """A custom layer that is not registered with Keras: a file holding it cannot be loaded back."""

    def call(self, x):
        return 2.0 * x


def _mod_saved(tmp, name, save):
    path = tmp / name
    save(_mod_dense(), path)
    return path


def _mod_zip(tmp):
    import zipfile

    with zipfile.ZipFile(tmp / "notes.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return tmp / "notes.keras"


def _mod_custom(tmp):
    _mod_dense([_Unregistered()]).save(tmp / "custom.keras")
    return tmp / "custom.keras"


def _mod_lambda(tmp):
    _mod_dense([_keras.layers.Lambda(lambda x: x + 1.0)]).save(tmp / "lambda.keras")
    return tmp / "lambda.keras"


_ABC = ["a", "b", "c"]
case("models/legacy_h5", _models.ModelFileError, "legacy HDF5", "compile=False", "save it again")(
    lambda tmp: _models.load_classifier(_mod_saved(tmp, "old.h5", lambda m, p: m.save(p)), _ABC))
case("models/densenet_too_small", ValueError, "image_size 16", "too small for DenseNet121", "at least 32")(
    lambda tmp: _models.densenet121_classifier(14, 16, weights=None))
case("models/weights_only_h5", _models.ModelFileError, "weights only", "load_weights")(
    lambda tmp: _models.load_classifier(_mod_saved(tmp, "m.weights.h5", lambda m, p: m.save_weights(p)), _ABC))
case("models/savedmodel_folder", _models.ModelFileError, "SavedModel folder", "TFSMLayer")(
    lambda tmp: _models.load_classifier(_mod_saved(tmp, "exported", lambda m, p: m.export(p, verbose=False)), _ABC))
case("models/unregistered_custom_layer", _models.ModelFileError, "_Unregistered", "not registered",
     "register_keras_serializable")(
    lambda tmp: _models.load_classifier(_mod_custom(tmp), _ABC))
case("models/lambda_layer_refused_in_safe_mode", _models.ModelFileError, "Lambda", "safe mode")(
    lambda tmp: _models.load_classifier(_mod_lambda(tmp), _ABC))
case("models/missing_file", FileNotFoundError, "no saved model here", "notebook 02")(
    lambda tmp: _models.load_classifier(tmp / "none.keras", _ABC))
case("models/png_named_keras", _models.ModelFileError, "not a Keras model file", "a PNG image")(
    lambda tmp: _models.load_classifier(_pre_pngs(tmp, 1)[0], _ABC))
case("models/empty_file", _models.ModelFileError, "an empty file")(
    lambda tmp: (tmp / "empty.keras").write_bytes(b"") and None or _models.load_classifier(tmp / "empty.keras", _ABC))
case("models/zip_without_config", _models.ModelFileError, "no config.json", "notes.txt")(
    lambda tmp: _models.load_classifier(_mod_zip(tmp), _ABC))
case("models/generic_loader_folder", _models.ModelFileError, "a folder, not a model file")(
    lambda tmp: _models.load_model(tmp))
case("models/strategy_one_device", ValueError, "at least two devices")(lambda tmp: _models.strategy(devices=["/cpu:0"]))
case("models/block_table_of_a_non_densenet", ValueError, "is not a DenseNet121")(
    lambda tmp: _models.dense_block_table(_mod_dense()))
case("models/gradient_norms_rows_mismatch", DataError, "2 images but 3 label rows")(
    lambda tmp: _models.gradient_norms_by_block(_mod_dense(), np.zeros((2, 4)), np.zeros((3, 3))))
case("models/gradient_norms_labels_0_255", DataError, "255")(
    lambda tmp: _models.gradient_norms_by_block(_mod_dense(), np.zeros((2, 4)), np.full((2, 3), 255)))

from helpers import losses as _mlosses, transfer as _transfer  # noqa: E402

_Y3 = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]] * 4, "float32")
case("transfer/budget_fraction_zero", ValueError, "fraction must be in (0, 1]", "0.0")(
    lambda tmp: _transfer.budget_subset(pd.DataFrame({"patient_id": [1, 2]}), 0.0))
case("transfer/budget_without_patient_column", DataError, "no 'patient_id' column", "group=")(
    lambda tmp: _transfer.budget_subset(pd.DataFrame({"patient": [1, 2]}), 0.5))
case("transfer/source_labels_wrong_width", DataError, "(images, 14)", "(5, 3)")(
    lambda tmp: _transfer.source_labels(np.zeros((5, 3)), _transfer.datasets.LABELS))
case("transfer/source_group_unknown_finding", DataError, "unknown findings", "Pneumonitis")(
    lambda tmp: _transfer.source_labels(np.zeros((2, 3)), _ABC, {"g": ("a", "Pneumonitis")}))
case("transfer/copy_backbone_nothing_shared", ValueError, "share no layer", "nothing was transferred")(
    lambda tmp: _transfer.copy_backbone(_mod_dense(),
                                        _keras.Sequential([_keras.Input((2,)), _keras.layers.Dense(1, name="other")])))
case("transfer/linear_heads_rows_mismatch", DataError, "4 feature rows but 3 label rows")(
    lambda tmp: _transfer.linear_heads(np.zeros((4, 2)), np.zeros((3, 1)), np.zeros((2, 2))))
case("transfer/source_set_one_patient", ValueError, "at least 2", "source set")(
    lambda tmp: _transfer.source_dataset(_config_for_models(tmp), 1))
case("oversampling/below_prevalence", ValueError, "only raise a finding above its prevalence", "exact=False")(
    lambda tmp: _mlosses.oversampling_weights(_Y3, {0: 0.1}))
case("oversampling/unknown_finding", DataError, "'Hernia' is not a finding here", "'a'")(
    lambda tmp: _mlosses.oversampling_weights(_Y3, {"Hernia": 0.2}, names=_ABC))
case("oversampling/no_positive", DataError, "no positive image to oversample")(
    lambda tmp: _mlosses.oversampling_weights(np.c_[_Y3, np.zeros(len(_Y3))], {3: 0.2}))
case("oversampling/frequency_above_one", ValueError, "must be in (0, 1)", "15")(
    lambda tmp: _mlosses.oversampling_weights(_Y3, {2: 15}))
case("oversampling/inputs_rows_mismatch", DataError, "3 inputs but 20 label rows")(
    lambda tmp: _mlosses.oversampled_dataset(np.zeros(3), _Y3, {2: 0.3}))


def _config_for_models(tmp):
    from helpers import config as _mconfig

    return _mconfig.load({"MEDXAI_PROFILE": "smoke", "MEDXAI_CACHE_DIR": str(tmp)})


from helpers import config as _config  # noqa: E402

case("config/seed_negative", _config.ConfigError, "MEDXAI_SEED=-1", "0 to 4294967295")(
    lambda tmp: _config.load({"MEDXAI_SEED": "-1", "MEDXAI_CACHE_DIR": str(tmp)}))
case("config/seed_above_2_32", _config.ConfigError, "MEDXAI_SEED=4294967296", "out of range", "2**32 - 1")(
    lambda tmp: _config.load({"MEDXAI_SEED": "4294967296", "MEDXAI_CACHE_DIR": str(tmp)}))
case("config/seed_in_code_out_of_range", _config.ConfigError, "seed -3", "0 to 4294967295")(
    lambda tmp: _config.Config(seed=-3))
case("config/cache_dir_is_a_file", _config.ConfigError, "MEDXAI_CACHE_DIR", "is a file, not a folder")(
    lambda tmp: (tmp / "cache").write_text("x") and _config.load({"MEDXAI_CACHE_DIR": str(tmp / "cache")}))
case("config/data_dir_without_nih", _config.ConfigError, "no nih/ folder", "holds drive/ only",
     "helpers/data/manifests/nih.md", "unset MEDXAI_DATA_DIR")(
    lambda tmp: (tmp / "drive").mkdir() or _config.load({"MEDXAI_DATA_DIR": str(tmp)}).dataset_dir("nih"))
case("config/data_dir_without_drive", _config.ConfigError, "no drive/ folder", "helpers/data/manifests/drive.md")(
    lambda tmp: _config.load({"MEDXAI_DATA_DIR": str(tmp)}).dataset_dir("drive"))
case("config/figures_dir_is_a_file", _config.ConfigError, "MEDXAI_FIGURES_DIR", "is a file, not a folder", "unset it")(
    lambda tmp: (tmp / "figs").write_text("x") and _config.load({"MEDXAI_FIGURES_DIR": str(tmp / "figs" / "sub")}))

# ---- losses, metrics, uncertainty ---------------------------------------------------------------

import pandas as _pd  # noqa: E402 (imports of this section kept in it)

from helpers import losses as _losses  # noqa: E402
from helpers import metrics as _metrics  # noqa: E402
from helpers import uncertainty as _uncertainty  # noqa: E402

_Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0], [0, 1]])
_S = np.array([[0.9, 0.2], [0.3, 0.8], [0.7, 0.6], [0.2, 0.1], [0.6, 0.4], [0.4, 0.7]])
_AB = ["A", "B"]
_HALF = _pd.Series(0.5, index=_AB)

# per-finding tables as DataFrames are paired by column name; names that are not the labels are refused
case("metrics/frame_columns_not_labels", ValueError, "y_score (scores)", "not the label names", "missing ['B']", "'C'")(
    lambda tmp: _metrics.roc_auc_per_class(_pd.DataFrame(_Y, columns=_AB), _pd.DataFrame(_S, columns=["A", "C"]), _AB))
case("metrics/frame_columns_not_labels_thresholds", ValueError, "y_true (labels)", "not the label names")(
    lambda tmp: _metrics.choose_thresholds(_pd.DataFrame(_Y, columns=["b", "a"]), _S, _AB))
case("metrics/frame_columns_ece", ValueError, "y_prob (probabilities)", "not the label names")(
    lambda tmp: _metrics.expected_calibration_error(_pd.DataFrame(_Y, columns=_AB),
                                                    _pd.DataFrame(_S, columns=["A", "X"]),
                                                   per_class=True))


def _with(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


case("metrics/auc_labels_0_255", DataError, "y_true", "255", "divide by 255")(
    lambda tmp: _metrics.roc_auc_per_class(_Y * 255, _S, _AB))
case("metrics/auc_labels_nan", DataError, "y_true", "nan", "(2, 1)")(
    lambda tmp: _metrics.roc_auc_per_class(_with(_Y, (2, 1), np.nan), _S, _AB))
case("metrics/auc_scores_nan", DataError, "y_score", "nan", "(4, 0)")(
    lambda tmp: _metrics.roc_auc_per_class(_Y, _with(_S, (4, 0), np.nan), _AB))
case("metrics/auc_shape", ValueError, "same (images, classes) shape")(
    lambda tmp: _metrics.roc_auc_per_class(_Y[:4], _S, _AB))
case("metrics/auc_label_count", ValueError, "2 classes", "3 label names")(
    lambda tmp: _metrics.roc_auc_per_class(_Y, _S, ["A", "B", "C"]))
case("metrics/auc_no_positives_warns", UserWarning, "no positives", "for B")(
    lambda tmp: _metrics.roc_auc_per_class(_with(_Y, (slice(None), 1), 0), _S, _AB))
case("metrics/thresholds_logits", DataError, "y_score", "sigmoid")(
    lambda tmp: _metrics.choose_thresholds(_Y, _S * 8 - 4, _AB))
case("metrics/thresholds_labels_half", DataError, "0.5", "only 0 and 1")(
    lambda tmp: _metrics.choose_thresholds(_Y * 0.5, _S, _AB, method="f1"))
case("metrics/thresholds_method", ValueError, "'youden' or 'f1'", "'J'")(
    lambda tmp: _metrics.choose_thresholds(_Y, _S, _AB, method="J"))
case("metrics/threshold_metrics_uint8_scores", DataError, "divide by 255")(
    lambda tmp: _metrics.threshold_metrics(_Y, np.round(_S * 255), _HALF, _AB))
case("metrics/threshold_metrics_labels_255", DataError, "255")(
    lambda tmp: _metrics.threshold_metrics(_Y * 255, _S, _HALF, _AB))
case("metrics/threshold_metrics_missing_class", ValueError, "no value for B")(
    lambda tmp: _metrics.threshold_metrics(_Y, _S, _HALF.drop("B"), _AB))
case("metrics/bootstrap_zero_samples", ValueError, "samples", ">= 50", "not 0")(
    lambda tmp: _metrics.bootstrap_auc(_Y, _S, _AB, samples=0))
case("metrics/bootstrap_percent_confidence", ValueError, "percentage", "0.95")(
    lambda tmp: _metrics.bootstrap_auc(_Y, _S, _AB, confidence=95))
case("metrics/bootstrap_groups_length", ValueError, "groups", "6 images", "one patient ID per image")(
    lambda tmp: _metrics.bootstrap_auc(_Y, _S, _AB, groups=["p1", "p2"]))
case("metrics/bootstrap_groups_missing_id", DataError, "missing patient ID", "row 3")(
    lambda tmp: _metrics.bootstrap_auc(_Y, _S, _AB, groups=["p1", "p1", "p2", None, "p3", "p3"]))
case("metrics/bootstrap_labels_nan", DataError, "y_true", "nan")(
    lambda tmp: _metrics.bootstrap_auc(_with(_Y, (0, 0), np.nan), _S, _AB))
case("metrics/bootstrap_too_few_valid_warns", UserWarning, "min_valid", "for A")(
    lambda tmp: _metrics.bootstrap_auc(_with(_Y, (slice(1, None), 0), 0), _S, _AB, samples=50))
case("metrics/segmentation_mask_0_255", DataError, "vessel mask", "255", "divide by 255")(
    lambda tmp: _metrics.segmentation_metrics(np.eye(4) * 255, np.full((4, 4), 0.5), np.ones((4, 4))))
case("metrics/segmentation_fov_0_2", DataError, "FOV mask", "only 0 and 1")(
    lambda tmp: _metrics.segmentation_metrics(np.eye(4), np.full((4, 4), 0.5), np.ones((4, 4)) * 2))
case("metrics/segmentation_uint8_map", DataError, "probabilities inside the FOV", "8-bit", "divide by 255")(
    lambda tmp: _metrics.segmentation_metrics(np.eye(4), np.eye(4, dtype=np.uint8) * 200, np.ones((4, 4))))
case("metrics/segmentation_nan_inside_fov", DataError, "NaN", "(1, 2)")(
    lambda tmp: _metrics.best_f1_threshold(np.eye(4), _with(np.full((4, 4), 0.5), (1, 2), np.nan), np.ones((4, 4))))
case("metrics/segmentation_empty_fov", ValueError, "FOV mask is empty")(
    lambda tmp: _metrics.segmentation_metrics(np.eye(4), np.full((4, 4), 0.5), np.zeros((4, 4))))
case("metrics/segmentation_threshold_percent", ValueError, "threshold must lie in [0, 1]")(
    lambda tmp: _metrics.segmentation_metrics(np.eye(4), np.full((4, 4), 0.5), np.ones((4, 4)), threshold=50))
case("metrics/calibration_labels_0_255", DataError, "y_true", "255")(
    lambda tmp: _metrics.expected_calibration_error(np.array([0, 255]), np.array([0.1, 0.9])))
case("metrics/calibration_percent_probabilities", DataError, "y_prob", "divide by 100")(
    lambda tmp: _metrics.reliability_table(np.array([0, 1]), np.array([12.5, 87.5])))
case("metrics/calibration_per_class_1d", ValueError, "per_class=True needs", "(images, classes)")(
    lambda tmp: _metrics.expected_calibration_error(np.array([0, 1]), np.array([0.1, 0.9]), per_class=True))
case("losses/weighted_bce_labels_0_255", DataError, "training labels", "255", "divide by 255")(
    lambda tmp: _losses.WeightedBinaryCrossentropy.from_labels(_Y * 255))
case("losses/weighted_bce_labels_nan", DataError, "training labels", "nan", "(1, 0)")(
    lambda tmp: _losses.WeightedBinaryCrossentropy.from_labels(_with(_Y, (1, 0), np.nan)))
case("losses/weighted_bce_class_count", ValueError, "pos_weights has 2 classes", "neg_weights has 1")(
    lambda tmp: _losses.WeightedBinaryCrossentropy([0.5, 0.5], [0.5]))
case("uncertainty/referral_nan_uncertainty", DataError, "uncertainty", "nan", "index 1")(
    lambda tmp: _uncertainty.referral_curve(_Y[:, 0], _S[:, 0], _with(np.zeros(6), 1, np.nan), lambda t, s: 0.0))
case("uncertainty/referral_length", ValueError, "same length", "one uncertainty per case")(
    lambda tmp: _uncertainty.referral_curve(_Y[:, 0], _S[:, 0], np.zeros(5), lambda t, s: 0.0))
case("uncertainty/referral_all_referred", ValueError, "fractions must lie in [0, 1)")(
    lambda tmp: _uncertainty.referral_curve(_Y[:, 0], _S[:, 0], np.zeros(6), lambda t, s: 0.0, fractions=[0.5, 1.0]))
case("uncertainty/decompose_nan_sample", DataError, "MC samples", "nan", "(1, 3)")(
    lambda tmp: _uncertainty.decompose(_with(np.full((3, 5), 0.5), (1, 3), np.nan)))
case("uncertainty/decompose_logits", DataError, "MC samples", "sigmoid")(
    lambda tmp: _uncertainty.decompose(np.full((3, 5), 2.0)))
case("uncertainty/decompose_one_sample", ValueError, "T >= 2")(
    lambda tmp: _uncertainty.decompose(np.full((1, 5), 0.5)))
case("metrics/bootstrap_confidence_text", ValueError, "confidence", "fraction in (0, 1)", "'95'")(
    lambda tmp: _metrics.bootstrap_auc(_Y, _S, _AB, confidence="95"))
case("metrics/bootstrap_empty", ValueError, "no images to bootstrap")(
    lambda tmp: _metrics.bootstrap_auc(np.zeros((0, 2)), np.zeros((0, 2)), _AB))

# ---- explain and boxes --------------------------------------------------------------------------

import functools as _functools  # noqa: E402 (imports of this section kept in it)

import pandas as _bpd  # noqa: E402

from helpers import boxes as _boxes  # noqa: E402
from helpers import explain as _explain  # noqa: E402
from helpers import viz as _viz  # noqa: E402


@_functools.lru_cache(maxsize=None)
def _tiny_classifier():
    """A 3-class conv + GAP + sigmoid model, built once when a case first needs it."""
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="sigmoid", name="predictions")(x), name="tiny")


@_functools.lru_cache(maxsize=None)
def _headless():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="features")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pooled")(x), name="headless")


def _set_at(array, index, value):
    array = np.array(array, dtype=float)
    array[index] = value
    return array


_IMAGES = np.zeros((2, 8, 8, 1), np.float32)
_MAP = np.zeros((1, 4, 4))
_NAN_MAP = _set_at(np.zeros((1, 4, 4)), (0, 1, 2), np.nan)
_IOBB = lambda label, value: _bpd.DataFrame({"label": ["Mass", label], "iobb": [0.3, value]})  # noqa: E731

case("explain/pointing_nan_map", DataError, "pointing_game", "nan", "(0, 1, 2)")(
    lambda tmp: _explain.pointing_game(_NAN_MAP, [(0, 0, 2, 2)]))
case("explain/heat_in_box_inf_map", DataError, "heat_in_box", "infinite")(
    lambda tmp: _explain.heat_in_box(_set_at(np.zeros((1, 4, 4)), (0, 0, 0), np.inf), [(0, 0, 2, 2)]))
case("explain/heat_in_box_negative", _explain.ExplainError, "non-negative", "np.abs")(
    lambda tmp: _explain.heat_in_box(_MAP - 1, [(0, 0, 2, 2)]))
case("explain/pointing_count_mismatch", _explain.ExplainError, "1 maps but 2 boxes", "one box per map")(
    lambda tmp: _explain.pointing_game(_MAP, [(0, 0, 2, 2), (1, 1, 2, 2)]))
case("explain/pointing_one_2d_map", _explain.ExplainError, "(images, height, width)", "heatmap[None]")(
    lambda tmp: _explain.pointing_game(_MAP[0], [(0, 0, 2, 2)]))
case("explain/pointing_nan_box", DataError, "box 0", "nan")(
    lambda tmp: _explain.pointing_game(_MAP + 1, [(0, np.nan, 2, 2)]))
case("explain/pointing_tolerance", _explain.ExplainError, "tolerance", "[0, 1)")(
    lambda tmp: _explain.pointing_game(_MAP + 1, [(0, 0, 2, 2)], tolerance=2.0))
case("explain/normalize_nan", DataError, "Grad-CAM", "nan")(
    lambda tmp: _explain.normalize(_NAN_MAP, "Grad-CAM"))
case("explain/upsampling_unknown", _explain.ExplainError, "bilinear", "align_corners", "'nearest'")(
    lambda tmp: _explain.upsample(_MAP, (8, 8), "nearest"))
case("explain/baseline_unknown", _explain.ExplainError, "black", "blurred", "'white'")(
    lambda tmp: _explain.make_baseline(_IMAGES, "white"))
case("explain/rank_correlation_shapes", _explain.ExplainError, "same shape")(
    lambda tmp: _explain.rank_correlation(np.zeros((2, 4, 4)), np.zeros((2, 4, 5))))
case("explain/grad_cam_unknown_layer", _explain.ExplainError, "no layer named 'conv9'", "features")(
    lambda tmp: _explain.grad_cam(_tiny_classifier(), _IMAGES, 0, layer_name="conv9"))
case("explain/class_out_of_range", _explain.ExplainError, "class_index 3", "3 outputs")(
    lambda tmp: _explain.vanilla_gradients(_tiny_classifier(), _IMAGES, 3))
case("explain/class_index_float", _explain.ExplainError, "class_index 2.0", "not a whole number", "int(")(
    lambda tmp: _explain.vanilla_gradients(_tiny_classifier(), _IMAGES, 2.0))
case("explain/ig_baseline_wrong_shape", _explain.ExplainError, "baseline of shape (4, 4, 1)", "does not fit",
     "(8, 8, 1)")(
    lambda tmp: _explain.integrated_gradients(_tiny_classifier(), _IMAGES, 0, baseline=np.zeros((4, 4, 1))))
case("explain/images_without_batch", _explain.ExplainError, "image[None]")(
    lambda tmp: _explain.grad_cam(_tiny_classifier(), _IMAGES[0], 0))
case("explain/grad_cam_pp_no_logit", _explain.ExplainError, "'pooled'", "no activation to strip")(
    lambda tmp: _explain.grad_cam_plus_plus(_headless(), _IMAGES, 0, layer_name="features"))
case("boxes/iobb_table_unknown_label", DataError, "'Pneumonitis'", "Infiltration", "Pneumothorax")(
    lambda tmp: _boxes.iobb_table(_IOBB("Pneumonitis", 0.5)))
case("boxes/iobb_table_nan", DataError, "nan", "put 0 where no box was found", "index 1")(
    lambda tmp: _boxes.iobb_table(_IOBB("Mass", np.nan)))
case("boxes/iobb_table_percent", DataError, "[0, 1]", "divide by 100")(
    lambda tmp: _boxes.iobb_table(_IOBB("Mass", 30.5)))
case("boxes/iobb_table_threshold_one", ValueError, "[0, 1)", "> T")(
    lambda tmp: _boxes.iobb_table(_IOBB("Mass", 0.5), thresholds=(0.5, 1.0)))
case("boxes/iobb_table_missing_column", ValueError, "missing", "'iou'")(
    lambda tmp: _boxes.iobb_table(_IOBB("Mass", 0.5), value="iou"))
case("boxes/counts_unknown_label", DataError, "'Fibrosis'", "Atelectasis")(
    lambda tmp: _boxes.counts(_IOBB("Fibrosis", 0.5)))
case("boxes/heatmap_nan", DataError, "heatmap (4, 4)", "nan", "(1, 2)")(
    lambda tmp: _boxes.heatmap_to_boxes(_NAN_MAP[0], 64))
case("boxes/heatmap_batch", ValueError, "2-D map", "heatmaps[i]")(
    lambda tmp: _boxes.heatmap_to_boxes(np.zeros((2, 4, 4)), 64))
case("boxes/box_zero_width", ValueError, "width 0", "must be positive")(
    lambda tmp: _boxes.iou((10, 10, 0, 5), (0, 0, 20, 20)))
case("boxes/box_nan", DataError, "box", "nan", "index 1")(
    lambda tmp: _boxes.iobb((0, np.nan, 4, 4), (0, 0, 4, 4)))
case("boxes/box_outside", ValueError, "entirely outside", "100x100")(
    lambda tmp: _boxes.check_box((200, 200, 5, 5), 100))
case("boxes/box_clipped", UserWarning, "reaches outside", "clipped to")(
    lambda tmp: _boxes.check_box((90, 90, 20, 20), 100))
case("boxes/threshold_method", ValueError, "threshold method", "otsu", "'mean'")(
    lambda tmp: _boxes.heatmap_to_boxes(np.ones((4, 4)), 64, method="mean"))
case("boxes/fraction_out_of_range", ValueError, "fraction of the maximum", "[0, 1)")(
    lambda tmp: _boxes.heatmap_to_boxes(np.eye(4), 64, threshold=1.5))
case("boxes/deep_media_without_prior", ValueError, "mean_size", "mean training box")(
    lambda tmp: _boxes.choose_box(_bpd.DataFrame({"x": [0.0], "y": [0.0], "w": [4.0], "h": [4.0], "area": [16],
                                                  "mean_heat": [200.0], "peak_heat": [255.0]}), "deep_media"))
case("boxes/mean_sizes_empty", ValueError, "no boxes to average", "fitting part")(
    lambda tmp: _boxes.mean_box_sizes(_bpd.DataFrame({"label": [], "w": [], "h": []})))
case("boxes/scaled_boxes_missing_size", ValueError, "image_height", "missing")(
    lambda tmp: _boxes.scaled_boxes(_bpd.DataFrame({"x": [1.0], "y": [1.0], "w": [2.0], "h": [2.0],
                                                    "image_width": [10]}), 64))
case("boxes/probability_map_0_255", DataError, "localiser's probability map", "divide by 255")(
    lambda tmp: _boxes.probability_to_boxes(np.full((4, 4), 200.0), 64))
case("boxes/probability_map_nan", DataError, "heatmap (4, 4)", "nan")(
    lambda tmp: _boxes.probability_to_boxes(_NAN_MAP[0], 64))
case("boxes/probability_threshold_one", ValueError, "probability threshold", "(0, 1)")(
    lambda tmp: _boxes.probability_to_boxes(np.zeros((4, 4)), 64, threshold=1.0))
case("boxes/box_sizes_without_image_size", ValueError, "image_width", "fractions")(
    lambda tmp: _boxes.save_box_sizes(tmp / "m.keras", _bpd.DataFrame({"label": ["Mass"], "w": [4.0], "h": [4.0]})))
case("boxes/box_sizes_file_garbled", DataError, "m.box_sizes.json", "not a box-sizes file", "notebook 06")(
    lambda tmp: ((tmp / "m.box_sizes.json").write_text('{"Mass": 0.2}'), _boxes.load_box_sizes(tmp / "m.keras")))
case("boxes/box_sizes_in_pixels", DataError, "fractions of the image side", "[0, 1]")(
    lambda tmp: ((tmp / "m.box_sizes.json").write_text('{"Mass": [51.0, 40.0]}'),
                 _boxes.load_box_sizes(tmp / "m.keras")))
case("viz/overlay_0_255", DataError, "heatmap_overlay", "divide by 255")(
    lambda tmp: _viz.heatmap_overlay(np.zeros((4, 4)), np.full((4, 4), 255.0)))
case("viz/overlay_nan", DataError, "heatmap_overlay", "nan")(
    lambda tmp: _viz.heatmap_overlay(np.zeros((4, 4)), _NAN_MAP[0]))
case("viz/draw_box_kind", ValueError, "truth", "prediction", "'ours'")(
    lambda tmp: _viz.draw_box(None, (0, 0, 1, 1), "ours"))
case("viz/export_figure_name_with_folder", ValueError, "'../slides/curve'", "letters, digits")(
    lambda tmp: _viz.export_figure(_viz.plt.figure(), "../slides/curve", folder=tmp))
case("viz/export_figure_name_with_extension", ValueError, "'curve.png'", "no extension")(
    lambda tmp: _viz.export_figure(_viz.plt.figure(), "curve.png", folder=tmp))
case("viz/export_figure_not_a_figure", TypeError, "export_figure('curve')", "matplotlib Figure", "list")(
    lambda tmp: _viz.export_figure([1, 2], "curve", folder=tmp))

# ---- dicom --------------------------------------------------------------------------------------

import shutil as _dshutil  # noqa: E402 (imports of this section kept in it)

from helpers import dicom as _dicom  # noqa: E402

_DX = np.arange(64, dtype=np.uint16).reshape(8, 8)


def _dcm(tmp, name="x.dcm", pixels=_DX, **elements):
    """A small uncompressed DX file (or whatever ``elements`` make of it) in ``tmp``, then read it."""
    return _dicom.read_radiograph(_dicom.write_dicom(tmp / name, pixels, **elements))


def _dcm_cut(tmp, source, keep=0.5):
    """The first ``keep`` of a pydicom-data file, copied into ``tmp``, then read."""
    data = _dicom.example_path(source).read_bytes()
    (tmp / f"cut_{source}").write_bytes(data[:int(len(data) * keep)])
    return _dicom.read_radiograph(tmp / f"cut_{source}")


def _dcm_copy(tmp, source):
    return _dicom.read_radiograph(_dshutil.copy(_dicom.example_path(source), tmp / source))


def _dcm_jpip(tmp):
    """A DX whose transfer syntax (JPIP Referenced) pydicom has no decoder for."""
    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(_dicom.write_dicom(tmp / "jpip.dcm", _DX))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.94"
    ds.PixelData = encapsulate([bytes(16)])
    ds.save_as(tmp / "jpip.dcm", enforce_file_format=True)
    return _dicom.read_radiograph(tmp / "jpip.dcm")


def _dcm_without_openjpeg(tmp):
    """RG1_J2KR.dcm read as if pylibjpeg-openjpeg were not installed (pydicom's decoder state restored after)."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless

    decoder = get_decoder(JPEG2000Lossless)
    saved = decoder._available, decoder._unavailable
    decoder._available, decoder._unavailable = {}, {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.0")}
    try:
        return _dcm_copy(tmp, "RG1_J2KR.dcm")
    finally:
        decoder._available, decoder._unavailable = saved


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _dcm_frames_text(tmp):
    """NumberOfFrames (IS) holding 'tw' instead of a number: pydicom fails when the value is first used."""
    path = _dicom.write_dicom(tmp / "frames.dcm", _DX, NumberOfFrames=1)
    _write(path, path.read_bytes().replace(b"\x28\x00\x08\x00IS\x02\x001 ", b"\x28\x00\x08\x00IS\x02\x00tw"))
    return _dicom.read_radiograph(path)


case("dicom/png_renamed_dcm", DataError, "scan.dcm", "not a DICOM file but a PNG image", "preprocessing.read_image")(
    lambda tmp: _Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp / "scan.dcm", format="PNG")
    or _dicom.read_radiograph(tmp / "scan.dcm"))
case("dicom/empty_file", DataError, "e.dcm", "an empty file", "DICOM Part 10")(
    lambda tmp: _dicom.read_radiograph(_write(tmp / "e.dcm", b"")))
case("dicom/text_file", DataError, "notes.dcm", "no 'DICM' marker at byte 128")(
    lambda tmp: _dicom.read_radiograph(_write(tmp / "notes.dcm", b"patient notes\n" * 20)))
case("dicom/shorter_than_preamble", DataError, "only 100 bytes", "truncated")(
    lambda tmp: _dicom.read_radiograph(_write(tmp / "s.dcm", _dicom.example_path().read_bytes()[:100])))
case("dicom/not_found", DataError, "gone.dcm", "not found")(lambda tmp: _dicom.read_radiograph(tmp / "gone.dcm"))
case("dicom/folder", DataError, "is a folder", "one .dcm file")(lambda tmp: _dicom.read_radiograph(tmp))
case("dicom/mr_slice", DataError, "mr.dcm", "Modality MR", "accepted: CR, DX, RG")(
    lambda tmp: _dcm(tmp, "mr.dcm", modality="MR"))
case("dicom/mammogram", DataError, "Modality MG", "not a projection radiograph")(
    lambda tmp: _dcm(tmp, modality="MG"))
case("dicom/modality_missing", DataError, "Modality missing", "pass a CR or DX file")(
    lambda tmp: _dcm(tmp, modality=""))
case("dicom/bad_sequence_ct", DataError, "bad_sequence.dcm", "Modality CT")(
    lambda tmp: _dcm_copy(tmp, "bad_sequence.dcm"))
case("dicom/multi_frame", DataError, "cine.dcm", "3 frames", "single-frame")(
    lambda tmp: _dcm(tmp, "cine.dcm", np.zeros((12, 4), np.uint16), Rows=4, NumberOfFrames=3))
case("dicom/colour_rgb", DataError, "colour image", "SamplesPerPixel 3", "MONOCHROME1 or MONOCHROME2")(
    lambda tmp: _dcm(tmp, pixels=np.zeros((4, 12), np.uint8), Columns=4, SamplesPerPixel=3,
                     PhotometricInterpretation="RGB", PlanarConfiguration=0))
case("dicom/palette_colour", DataError, "PALETTE COLOR", "a radiograph is grey")(
    lambda tmp: _dcm(tmp, photometric="PALETTE COLOR"))
case("dicom/no_pixel_data", DataError, "rtplan.dcm", "no Pixel Data", "RT Plan Storage")(
    lambda tmp: _dcm_copy(tmp, "rtplan.dcm"))
case("dicom/truncated_jpeg2000", DataError, "cut_RG1_J2KR.dcm", "truncated", "End of file")(
    lambda tmp: _dcm_cut(tmp, "RG1_J2KR.dcm"))
case("dicom/truncated_uncompressed", DataError, "cut_RG1_UNCR.dcm", "cannot be decoded", "less than expected")(
    lambda tmp: _dcm_cut(tmp, "RG1_UNCR.dcm"))
case("dicom/unsupported_transfer_syntax", DataError, "jpip.dcm", "JPIP Referenced", "Explicit VR Little Endian")(
    _dcm_jpip)
case("dicom/missing_codec", DataError, "RG1_J2KR.dcm", "JPEG 2000", "pip install pylibjpeg pylibjpeg-openjpeg")(
    _dcm_without_openjpeg)
case("dicom/blank_image", DataError, "every pixel has the value 7", "blank image")(
    lambda tmp: _dcm(tmp, pixels=np.full((4, 4), 7, np.uint16)))
case("dicom/window_width_zero", DataError, "cannot be applied", "Window Width")(
    lambda tmp: _dcm(tmp, WindowCenter=30, WindowWidth=0))
case("dicom/header_value_not_a_number", DataError, "frames.dcm", "cannot read this file's header values", "'tw'")(
    _dcm_frames_text)
case("dicom/header_bomb", DataError, "60000x60000", "decompression-bomb", "MAX_IMAGE_PIXELS")(
    lambda tmp: _dcm(tmp, Rows=60000, Columns=60000))
case("dicom/extremity_cr_rg3", DataError, "RG3_UNCR.dcm", "BodyPartExamined (0018,0015)", "'EXTREMITY'", "not a chest",
     "allow_non_chest=True")(lambda tmp: _dcm_copy(tmp, "RG3_UNCR.dcm"))
case("dicom/body_part_hand", DataError, "hand.dcm", "BodyPartExamined (0018,0015) is 'HAND'", "allow_non_chest=True")(
    lambda tmp: _dcm(tmp, "hand.dcm", BodyPartExamined="HAND"))
case("dicom/body_part_knee", DataError, "knee.dcm", "BodyPartExamined (0018,0015) is 'KNEE'")(
    lambda tmp: _dcm(tmp, "knee.dcm", BodyPartExamined="KNEE"))
case("dicom/lateral_view", DataError, "lat.dcm", "ViewPosition (0018,5101) is 'LL'", "lateral", "allow_non_chest=True")(
    lambda tmp: _dcm(tmp, "lat.dcm", BodyPartExamined="CHEST", ViewPosition="LL"))
case("dicom/window_leaves_two_grey_levels", DataError, "narrow.dcm", "only 2 grey levels of 256",
     "window C/W (center 2048, width 2)", "WindowCenter")(
    lambda tmp: _dcm(tmp, "narrow.dcm", (np.arange(4096).reshape(64, 64)).astype(np.uint16), bits_stored=12,
                     WindowCenter=2048, WindowWidth=2))
case("dicom/min_max_leaves_four_grey_levels", DataError, "four.dcm", "only 4 grey levels", "min-max window (0 to 3)")(
    lambda tmp: _dcm(tmp, "four.dcm", (np.arange(4096).reshape(64, 64) % 4).astype(np.uint16)))
case("dicom/presentation_lut_lin_od", DataError, "lin.dcm", "Presentation LUT Shape (2050,0020)", "'LIN OD'")(
    lambda tmp: _dcm(tmp, "lin.dcm", PresentationLUTShape="LIN OD"))
case("dicom/model_input_0_255", DataError, "to_model_input", "divide by 255")(
    lambda tmp: _dicom.to_model_input(np.full((8, 8), 200.0), 4))
case("dicom/model_input_rgb", ValueError, "HxW or HxWx1", "(8, 8, 3)")(
    lambda tmp: _dicom.to_model_input(np.zeros((8, 8, 3)), 4))
case("dicom/model_input_nan", DataError, "to_model_input", "nan", "(1, 2)")(
    lambda tmp: _dicom.to_model_input(_with(np.zeros((4, 4)), (1, 2), np.nan), 4))
case("dicom/model_input_size", ValueError, "size must be a positive whole number", "224.0")(
    lambda tmp: _dicom.to_model_input(np.zeros((8, 8)), 224.0))


# ---- cells and instances ------------------------------------------------------------------------

from PIL import Image as _CImage  # noqa: E402 (imports of this section kept in it)

from helpers import cells as _cells  # noqa: E402
from helpers import instances as _inst  # noqa: E402

_CID = "c" * 64


def _nuclei(tmp, masks=(), image=None, make_masks_dir=True):
    """A one-image Data Science Bowl folder in ``tmp``: a 16x16 image and the given masks; returns the folder."""
    folder = tmp / _CID
    (folder / "images").mkdir(parents=True)
    if image is not False:
        _CImage.fromarray(np.zeros((16, 16), np.uint8) if image is None else image).save(
            folder / "images" / f"{_CID}.png")
    if make_masks_dir:
        (folder / "masks").mkdir()
    for i, mask in enumerate(masks):
        _CImage.fromarray(mask).save(folder / "masks" / f"m{i}.png")
    return tmp


def _load_one(tmp, *masks, **kwargs):
    return _cells.load_nuclei(_cells.read_nuclei(_nuclei(tmp, masks, **kwargs)).records[0])


_C_DISC = np.where(np.add.outer((np.arange(16) - 5) ** 2, (np.arange(16) - 5) ** 2) < 9, 255, 0).astype(np.uint8)
_C_LABELS = np.array([[0, 1, 1], [0, 2, 2], [0, 0, 0]])

case("cells/mask_wrong_size", DataError, "m0.png", "8x16 (WxH)", "16x16", "pixel for pixel")(
    lambda tmp: _load_one(tmp, np.full((16, 8), 255, np.uint8)))
case("cells/mask_empty", DataError, "m0.png", "empty (all zero)")(
    lambda tmp: _load_one(tmp, np.zeros((16, 16), np.uint8)))
case("cells/mask_not_binary", DataError, "m0.png", "not binary", "127", "0 and 255")(
    lambda tmp: _load_one(tmp, _C_DISC // 2))
case("cells/masks_overlap", DataError, "m1.png", "overlaps m0.png", "likely cause", "overlap='first'")(
    lambda tmp: _load_one(tmp, _C_DISC, np.roll(_C_DISC, 1, axis=1)))
case("cells/image_without_masks", DataError, f"{_CID}/masks/", "no PNG mask")(
    lambda tmp: _cells.read_nuclei(_nuclei(tmp, ())))
case("cells/image_without_masks_folder", DataError, f"{_CID}/masks/", "no PNG mask")(
    lambda tmp: _cells.read_nuclei(_nuclei(tmp, (), make_masks_dir=False)))
case("cells/image_missing", DataError, f"{_CID}/images/{_CID}.png is missing", "layout")(
    lambda tmp: _cells.read_nuclei(_nuclei(tmp, (_C_DISC,), image=False)))
case("cells/mask_whole_image", DataError, "m0.png", "covers 100%", "saved inverted")(
    lambda tmp: _load_one(tmp, np.full((16, 16), 255, np.uint8)))
case("cells/mask_whole_image_after_a_nucleus", DataError, "m1.png", "covers 100%")(  # overlap='first' would keep it
    lambda tmp: _cells.load_nuclei(
        _cells.read_nuclei(_nuclei(tmp, (_C_DISC, np.full((16, 16), 255, np.uint8)))).records[0], overlap="first"))
case("cells/masks_duplicate", DataError, "m1.png", "(100% of it)", "saved twice")(
    lambda tmp: _load_one(tmp, _C_DISC, _C_DISC))
case("cells/mask_in_alpha", DataError, "m0.png", "first channel is empty", "alpha", "grey PNG")(
    lambda tmp: _load_one(tmp, np.dstack([np.zeros((16, 16, 3), np.uint8), _C_DISC])))
case("cells/mask_in_green", DataError, "m0.png", "first channel is empty", "green")(
    lambda tmp: _load_one(tmp, np.dstack([np.zeros((16, 16), np.uint8), _C_DISC, np.zeros((16, 16), np.uint8)])))


def _corrupt_image(tmp):
    _nuclei(tmp, (_C_DISC,))
    (tmp / _CID / "images" / f"{_CID}.png").write_bytes(b"not a png")
    return _cells.load_nuclei(_cells.read_nuclei(tmp).records[0])


case("cells/image_corrupt", DataError, f"{_CID}.png", "cannot read the image", "restore it")(_corrupt_image)
case("cells/empty_folder", DataError, "no image folders", "stage1_train")(
    lambda tmp: _cells.read_nuclei(tmp))
case("cells/overlap_mode", ValueError, "overlap must be 'raise' or 'first'", "'union'")(
    lambda tmp: _cells.load_nuclei(_cells.read_nuclei(_nuclei(tmp, (_C_DISC,))).records[0], overlap="union"))
case("cells/split_fractions", ValueError, "add up to 1", "train, val, test")(
    lambda tmp: _cells.split_records(["a", "b", "c"], (0.6, 0.6, 0.2)))
case("instances/bool_mask_not_labels", DataError, "true_labels", "boolean mask", "label its objects")(
    lambda tmp: _inst.match_instances(_C_LABELS > 0, _C_LABELS))
case("instances/probability_map_not_labels", DataError, "pred_labels", "whole numbers", "probability map")(
    lambda tmp: _inst.average_precision(_C_LABELS, _C_LABELS * 0.4))
case("instances/labels_nan", DataError, "pred_labels", "nan", "(0, 1)")(
    lambda tmp: _inst.match_instances(_C_LABELS, np.where(_C_LABELS == 1, np.nan, _C_LABELS)))
case("instances/labels_batch", DataError, "shape (2, 3, 3)", "one image at a time")(
    lambda tmp: _inst.count_instances(np.stack([_C_LABELS, _C_LABELS])))
case("instances/shapes_differ", ValueError, "(3, 3)", "(3, 2)", "same shape")(
    lambda tmp: _inst.match_instances(_C_LABELS, _C_LABELS[:, :2]))
case("instances/threshold_one", ValueError, "IoU in [0, 1)", "1.0")(
    lambda tmp: _inst.match_instances(_C_LABELS, _C_LABELS, 1.0))
case("instances/maps_0_255", DataError, "foreground", "divide by 255")(
    lambda tmp: _inst.instances_from_maps(np.full((4, 4), 255.0), np.zeros((4, 4))))
case("instances/maps_logits", DataError, "cores", "sigmoid")(
    lambda tmp: _inst.instances_from_maps(np.zeros((4, 4)), np.full((4, 4), -3.0)))
case("instances/min_size_zero", ValueError, "min_size", ">= 1", "0")(
    lambda tmp: _inst.classical_instances(np.eye(8), min_size=0))
case("instances/counts_length", ValueError, "true_counts (3,)", "pred_counts (2,)", "one per image")(
    lambda tmp: _inst.count_errors([1, 2, 3], [1, 2]))
case("instances/counts_negative", DataError, "negative count")(
    lambda tmp: _inst.count_errors([1, 2], [1, -2]))
case("instances/level_percent", ValueError, "level", "pass 0.9")(
    lambda tmp: _inst.count_interval(np.ones((4, 3)), 90))
case("instances/interval_one_sample", ValueError, "T >= 2")(
    lambda tmp: _inst.count_interval(np.ones((1, 3))))
case("instances/conformal_spread_zero", DataError, "spread", "<= 0", "image 1", "np.maximum(std, 1)")(
    lambda tmp: _inst.conformal_scale(np.arange(20.0), np.arange(20.0), np.r_[1.0, 0.0, np.ones(18)]))
case("instances/conformal_too_few", ValueError, "too few", "at least 9")(
    lambda tmp: _inst.conformal_scale(np.arange(5.0), np.zeros(5), np.ones(5), 0.9))
case("instances/coverage_low_above_high", ValueError, "low > high", "image 0")(
    lambda tmp: _inst.coverage([3.0], [5.0], [4.0]))
case("instances/stability_shape", ValueError, "samples[0]", "(3, 2)", "(3, 3)")(
    lambda tmp: _inst.instance_stability(_C_LABELS, [_C_LABELS[:, :2]]))


# ---- upload page --------------------------------------------------------------------------------
# What app/upload.py refuses by name and size before reading a file; what it reads is refused by report and dicom.


def _check_upload(*args):
    """app.upload.check_upload, imported when a case runs (app/ runs from the repository: it is not installed)."""
    import importlib
    import sys

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.append(root)
    return importlib.import_module("app.upload").check_upload(*args)


case("upload/over_the_limit", DataError, "the uploaded file", "60.0 MB", "limit of 50.0 MB", "--max-mb")(
    lambda tmp: _check_upload("scan.dcm", 60 * 2**20))
case("upload/empty_file", DataError, "the uploaded file", "an empty file")(lambda tmp: _check_upload("x.png", 0))
case("upload/not_an_image_by_name", DataError, "the uploaded file", "a .docx file", "PNG, JPEG or DICOM")(
    lambda tmp: _check_upload("C:\\Users\\me\\notes.docx", 1000))


# ---- report -------------------------------------------------------------------------------------

import functools as _rfunctools  # noqa: E402 (imports of this section kept in it)

import pandas as _rpd  # noqa: E402

from helpers import datasets as _rdatasets  # noqa: E402
from helpers import dicom as _rdicom  # noqa: E402
from helpers import report as _report  # noqa: E402
from helpers import side_files as _side_files  # noqa: E402

_R_LABELS = list(_rdatasets.LABELS)
_R_HALF = _rpd.Series(0.5, index=_R_LABELS)


@_rfunctools.lru_cache(maxsize=None)
def _rep_model(activation="sigmoid", nested=False):
    """A 16-px conv + GAP + 14-output classifier (or a nested one), built once when a case first needs it."""
    import keras

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(14, activation=activation, name="predictions")(x), name="rep")
    if nested:
        outer = keras.Input((16, 16, 1))
        return keras.Model(outer, model(outer), name="outer")
    return model


def _rep_saved(tmp, thresholds_text=None, referral_text=None):
    path = tmp / "rep.keras"
    _rep_model().save(path)
    if thresholds_text is not None:
        _side_files.side_file(path, _side_files.THRESHOLDS_SUFFIX).write_text(thresholds_text)
    if referral_text is not None:
        _side_files.save_thresholds(path, _R_HALF, method="youden")
        _side_files.side_file(path, _side_files.REFERRAL_SUFFIX).write_text(referral_text)
    return _report.ChestReporter.load(path)


def _rep_png(tmp, name, array):
    from PIL import Image

    Image.fromarray(array).save(tmp / name)
    return _report.ChestReporter(_rep_model(), _R_HALF, samples=2).report(tmp / name)


def _rep_text(tmp, name="notes.png"):
    (tmp / name).write_text("not an image")
    return _report.ChestReporter(_rep_model(), _R_HALF, samples=2).report(tmp / name)


def _rep_head(width):
    import keras

    head = keras.Sequential(
        [keras.Input((width,)), _report.uncertainty.MCDropout(0.3), keras.layers.Dense(14, activation="sigmoid")])
    return _report.ChestReporter(_rep_model(), _R_HALF, mc_head=head)


def _rep_fundus(tmp, image=None, dcm=False):
    from helpers import models as _rmodels

    reporter = _report.FundusReporter(_rmodels.unet(base_filters=2, depth=1, dropout_rate=0.1), samples=2, side=32)
    if dcm:
        image = _rdicom.write_dicom(tmp / "eye.dcm", np.arange(64, dtype=np.uint16).reshape(8, 8))
    return reporter.report(image)


def _rep_other(tmp, name, kind):
    """An image of another format (``kind``, as PIL names it) under the name ``name``, given to the chest report."""
    from PIL import Image

    if kind == "EPS":
        (tmp / name).write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n")
    else:
        Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp / name, format=kind)
    return _report.read_chest(tmp / name, 16)


for _name, _kind, _said in [("x.png", "TIFF", "a TIFF image"), ("scan.jpg", "BMP", "a BMP image"),
                            ("film.png", "GIF", "a GIF image"), ("icon.png", "ICO", "an ICO icon"),
                            ("page.jpeg", "EPS", "an EPS/PostScript file"), ("x.dcm.png", "BMP", "a BMP image")]:
    case(f"report/{_kind.lower()}_named_{_name}", _report.ReportError, _name, _said, "whatever its name says",
         "PNG, JPEG or DICOM")(lambda tmp, _n=_name, _k=_kind: _rep_other(tmp, _n, _k))
case("report/extremity_cr", _report.ReportError, "RG3_UNCR.dcm", "BodyPartExamined (0018,0015)", "'EXTREMITY'",
     "--allow-non-chest")(
    lambda tmp: _report.read_chest(_dshutil.copy(_rdicom.example_path("RG3_UNCR.dcm"), tmp / "RG3_UNCR.dcm"), 16))
case("report/not_an_image", DataError, "notes.png", "cannot decode")(_rep_text)
case("report/report_error_type", _report.ReportError, "notes.png")(_rep_text)
case("report/missing_file", DataError, "gone.png", "not found", "PNG, JPEG or DICOM")(
    lambda tmp: _report.read_chest(tmp / "gone.png", 16))
case("report/folder", DataError, "a folder")(lambda tmp: _report.read_chest(tmp, 16))
case("report/colour_png", DataError, "rgb.png", "colour image", "grey")(
    lambda tmp: _rep_png(tmp, "rgb.png", np.dstack([np.zeros((20, 20), np.uint8), np.full((20, 20), 200, np.uint8),
                                                     np.zeros((20, 20), np.uint8)])))
case("report/tiny_png", DataError, "image-", "too small")(
    lambda tmp: _rep_png(tmp, "dot.png", np.zeros((4, 4), np.uint8)))
case("report/ct_dicom", DataError, "ct.dcm", "Modality CT", "not a projection radiograph")(
    lambda tmp: _report.read_chest(_rdicom.write_dicom(tmp / "ct.dcm", _DX, modality="CT"), 16))
case("report/array_0_255", DataError, "divide", "255")(lambda tmp: _report.read_chest(np.full((16, 16), 200.0), 16))
case("report/array_rgb", DataError, "HxW or HxWx1", "(16, 16, 3)")(
    lambda tmp: _report.read_chest(np.zeros((16, 16, 3)), 16))
case("report/array_nan", DataError, "nan", "(2, 3)")(
    lambda tmp: _report.read_chest(_set_at(np.zeros((16, 16)), (2, 3), np.nan), 16))
case("report/no_thresholds", DataError, "rep.keras", "rep.thresholds.json is missing", "Run notebook 02",
     "thresholds=")(
    lambda tmp: _rep_saved(tmp))
case("report/thresholds_not_json", DataError, "rep.thresholds.json", "not a thresholds file", "notebook 02")(
    lambda tmp: _rep_saved(tmp, thresholds_text="{labels: oops"))
case("report/thresholds_other_labels", DataError, "no threshold for", "Atelectasis", "another label set")(
    lambda tmp: _rep_saved(tmp, thresholds_text='{"labels": ["a", "b"], "thresholds": [0.5, 0.5]}'))
case("report/thresholds_count", DataError, "3 thresholds for 14 findings")(
    lambda tmp: _report.ChestReporter(_rep_model(), [0.5, 0.5, 0.5]))
case("report/thresholds_percent", DataError, "thresholds", "divide by 100")(
    lambda tmp: _report.ChestReporter(_rep_model(), _R_HALF * 100 + 0.5))
case("report/referral_not_json", DataError, "rep.referral.json", "not a referral file", "notebook 04")(
    lambda tmp: _rep_saved(tmp, referral_text="[]"))
case("report/save_thresholds_list", TypeError, "pandas Series")(
    lambda tmp: _side_files.save_thresholds(tmp / "m.keras", [0.5] * 14, method="youden"))
case("report/samples_one", DataError, "samples must be a whole number >= 2", "1")(
    lambda tmp: _report.ChestReporter(_rep_model(), _R_HALF, samples=1))
case("report/softmax_head", DataError, "not a dense sigmoid layer", "Dense(..., activation='sigmoid')")(
    lambda tmp: _report.ChestReporter(_rep_model("softmax"), _R_HALF))
case("report/nested_model", DataError, "nested", "flat")(
    lambda tmp: _report.ChestReporter(_rep_model(nested=True), _R_HALF))
case("report/mc_head_other_model", DataError, "fine-tuned for another model",
     "pools 4 features")(lambda tmp: _rep_head(8))
case("report/fundus_dicom", DataError, "eye.dcm", "fundus report reads PNG or JPEG")(
    lambda tmp: _rep_fundus(tmp, dcm=True))
case("report/fundus_grey_array", DataError, "expected an RGB photograph", "(8, 8)")(
    lambda tmp: _rep_fundus(tmp, np.zeros((8, 8))))
case("report/fundus_no_dropout", DataError, "no Dropout layer")(
    lambda tmp: _report.FundusReporter(_rep_model()))
case("report/missing_model", DataError, "none.keras", "no saved model", "notebook 02")(
    lambda tmp: _report.ChestReporter.load(tmp / "none.keras"))


# ---- exercises: what a check says about an answer it cannot use ---------------------------------

from helpers import exercises as _exercises  # noqa: E402 (imports of this section kept in it)

case("exercises/not_a_function", _exercises.Wrong, "expected a function", "got float")(
    lambda tmp: _exercises.checks()["check_dice_loss"](0.25))
case("exercises/answer_raises", _exercises.Wrong, "raised KeyError", "mutual_informaton")(
    lambda tmp: _exercises.checks()["check_refer_any"](lambda findings, limit: findings["mutual_informaton"]))
case("exercises/text_not_number", _exercises.Wrong, "should be one number", "got str")(
    lambda tmp: _exercises.checks()["check_dice_loss"](lambda y, p: "0.40"))
case("exercises/wrong_shape", _exercises.Wrong, "should have shape (4,)", "got (3,)")(
    lambda tmp: _exercises.checks()["check_box_of_mask"](lambda mask: (1, 2, 3)))
case("exercises/nan_answer", _exercises.Wrong, "nan", "clip p")(
    lambda tmp: _exercises.checks()["check_bce_by_hand"](lambda y, p, w_p, w_n: float("nan")))
case("exercises/stub", _exercises.NotYet, "not done yet", "write dice_loss")(
    lambda tmp: _exercises.checks()["check_dice_loss"](
        lambda y, p: (_ for _ in ()).throw(NotImplementedError("Exercise 1"))))


# ---- the runner ---------------------------------------------------------------------------------


def test_matrix_is_large_and_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    assert len(CASES) >= 80, f"the matrix holds {len(CASES)} cases; the rule of the series asks for at least 80"


@pytest.mark.parametrize("bad", CASES, ids=lambda c: c.id)
def test_bad_input(bad: Case, tmp_path):
    if issubclass(bad.raises, Warning):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bad.call(tmp_path)
        messages = [str(w.message) for w in caught if issubclass(w.category, bad.raises)]
        assert messages, f"{bad.id}: expected a {bad.raises.__name__}, none was issued"
        message = " ".join(messages)
    else:
        with pytest.raises(bad.raises) as info:
            bad.call(tmp_path)
        message = str(info.value)
    for word in bad.words:
        assert re.search(re.escape(word), message, flags=re.I), (f"{bad.id}: {word!r} missing from the message: "
                                                                 f"{message}")
