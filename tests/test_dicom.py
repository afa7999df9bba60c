"""dicom: DICOM radiographs to [0, 1] images (modality LUT, VOI LUT or window, MONOCHROME1), the classifier's input.

The real files are pydicom-data's (installed from PyPI, found with download=False: nothing is downloaded):
RG1_UNCR.dcm, a PA chest CR (1955 x 1841, 15 bits stored, MONOCHROME1), and the same image compressed as
JPEG 2000 reversible (RG1_J2KR.dcm) and irreversible (RG1_J2KI.dcm).
"""

import dataclasses
import logging
import re
import shutil
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from helpers import dicom, preprocessing
from helpers.errors import DataError

# The identifying values of RG1_UNCR.dcm (a test file: its "patient" is "CompressedSamples^RG1").
RG1_IDENTITY = ("CompressedSamples", "9RG1", "26210", "19400305")


@pytest.fixture(scope="module")
def rg1():
    return dicom.read_radiograph(dicom.example_path("RG1_UNCR.dcm"))


def _standard_window(x, center, width):
    """PS3.3 C.11.2.1.2.1 (LINEAR), written out by hand, scaled to [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return np.where(x <= low, 0.0, np.where(x > high, 1.0, (x - (center - 0.5)) / (width - 1) + 0.5))


STORED = np.array([[0, 100, 200, 300], [400, 500, 600, 700]], dtype=np.uint16)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_rescale_then_window_match_the_standard_by_hand(tmp_path, photometric):
    path = dicom.write_dicom(tmp_path / "w.dcm", STORED, photometric=photometric, bits_stored=12,
                             RescaleSlope=2, RescaleIntercept=-100, WindowCenter=600, WindowWidth=801)
    result = dicom.read_radiograph(path)
    expected = _standard_window(STORED * 2.0 - 100, 600, 801)  # modality LUT first, then the window
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    assert result.window == "window C/W" and result.window_values == (600.0, 801.0)
    np.testing.assert_allclose(result.image, expected, atol=1e-6)
    # The hand values at 300 and 900 (stored 200 and 500): 0.125625 and 0.875625 (MONOCHROME2).
    assert abs(result.image[0, 2] - (0.125625 if photometric == "MONOCHROME2" else 0.874375)) < 1e-6


def test_voi_lut_sequence_is_applied_and_preferred_to_the_window(tmp_path):
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 100, 8])  # 4 entries, first input 100, 8-bit entries
    item.add_new("LUTData", "US", [0, 50, 100, 200])
    pixels = np.array([[90, 100, 101], [102, 103, 120]], dtype=np.uint16)
    path = dicom.write_dicom(tmp_path / "lut.dcm", pixels, bits_stored=8, VOILUTSequence=Sequence([item]),
                             WindowCenter=100, WindowWidth=10)
    result = dicom.read_radiograph(path)
    # Below the first input: entry 0; above the last: entry 3; scaled over the LUT's range 0..200.
    assert result.window == "VOI LUT"
    np.testing.assert_allclose(result.image, [[0, 0, 0.25], [0.5, 1, 1]], atol=1e-6)


def test_no_window_is_min_max_and_says_so(tmp_path):
    path = dicom.write_dicom(tmp_path / "m.dcm", np.array([[10, 20], [30, 50]], np.uint16), bits_stored=12)
    result = dicom.read_radiograph(path)
    assert result.window == "min-max" and result.window_values == (10.0, 50.0)
    np.testing.assert_allclose(result.image, [[0, 0.25], [0.5, 1]], atol=1e-6)


def test_signed_pixels_and_sigmoid_window(tmp_path):
    pixels = np.array([[-100, 0, 100]], dtype=np.int16)
    path = dicom.write_dicom(tmp_path / "s.dcm", pixels, bits_stored=16, WindowCenter=0, WindowWidth=200,
                             VOILUTFunction="SIGMOID")
    result = dicom.read_radiograph(path)
    # PS3.3 C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)), in [0, 1] before scaling to the output range.
    np.testing.assert_allclose(result.image[0], 1 / (1 + np.exp(-4 * np.array([-100, 0, 100]) / 200)), atol=1e-6)


def test_pixel_spacing_kept_imager_spacing_next_and_zeros_unknown(tmp_path, rg1):
    pixels = np.arange(16, dtype=np.uint16).reshape(4, 4)
    both = dicom.write_dicom(tmp_path / "a.dcm", pixels, PixelSpacing=[0.139, 0.143], ImagerPixelSpacing=[0.2, 0.2])
    imager = dicom.write_dicom(tmp_path / "b.dcm", pixels, ImagerPixelSpacing=[0.168, 0.17])
    zeros = dicom.write_dicom(tmp_path / "c.dcm", pixels, PixelSpacing=[0, 0])
    assert dicom.read_radiograph(both).pixel_spacing == (0.139, 0.143)
    assert dicom.read_radiograph(imager).pixel_spacing == (0.168, 0.17)
    assert dicom.read_radiograph(zeros).pixel_spacing is None
    assert rg1.pixel_spacing is None  # RG1 records 0.000 \ 0.000: anonymised away


def test_real_chest_cr_is_read_with_bone_white(rg1):
    assert rg1.image.shape == (1955, 1841) == rg1.shape_original and rg1.image.dtype == np.float32
    assert (rg1.modality, rg1.photometric, rg1.bits_stored) == ("CR", "MONOCHROME1", 15)
    assert rg1.window == "window C/W" and rg1.window_values == (15000.0, 30000.0)
    # After the MONOCHROME1 inversion the mediastinum and spine (central band) are brighter than the lungs
    # (bands at 20-30% and 70-80% of the width), rows 1/3 to 2/3. Measured: 0.88 against 0.67 and 0.62.
    rows = slice(1955 // 3, 2 * 1955 // 3)
    band = lambda a, b: float(rg1.image[rows, int(1841 * a):int(1841 * b)].mean())  # noqa: E731
    centre, left, right = band(0.45, 0.55), band(0.20, 0.30), band(0.70, 0.80)
    assert centre > max(left, right) + 0.1, (centre, left, right)
    # The stored values say the opposite (MONOCHROME1: high = dark), so the inversion is what made it right.
    raw = pydicom.dcmread(dicom.example_path("RG1_UNCR.dcm")).pixel_array
    assert raw[rows, 828:1012].mean() < raw[rows, 368:552].mean()


def test_jpeg2000_reversible_decodes_to_the_same_pixels_and_irreversible_does_not(rg1):
    # JPEG 2000 reversible (the 5/3 integer wavelet, ISO/IEC 15444-1) is lossless: tolerance 0, stored and read.
    j2kr = dicom.read_radiograph(dicom.example_path("RG1_J2KR.dcm"))
    assert j2kr.transfer_syntax == "JPEG 2000 Image Compression (Lossless Only)"
    raw_u = pydicom.dcmread(dicom.example_path("RG1_UNCR.dcm")).pixel_array
    raw_r = pydicom.dcmread(dicom.example_path("RG1_J2KR.dcm")).pixel_array
    assert np.array_equal(raw_u, raw_r)
    assert np.array_equal(rg1.image, j2kr.image)
    # The irreversible 9/7 wavelet is lossy: the same comparison must see it (measured: mean 0.0017, max 0.013).
    j2ki = dicom.read_radiograph(dicom.example_path("RG1_J2KI.dcm"))
    difference = np.abs(rg1.image - j2ki.image)
    assert difference.max() > 1e-3 and difference.mean() < 0.01


def test_identity_is_kept_only_when_asked_and_never_shown(tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = dicom.read_radiograph(dicom.example_path("RG1_UNCR.dcm"))
    said = capsys.readouterr().out + capsys.readouterr().err + caplog.text + " ".join(str(w.message) for w in caught)
    shown = " ".join([repr(plain), str(plain), str(dataclasses.asdict(plain))])
    for value in RG1_IDENTITY:
        assert value not in shown and value not in said, value
    assert plain.identity is None
    kept = dicom.read_radiograph(dicom.example_path("RG1_UNCR.dcm"), keep_identity=True)
    assert kept.identity["PatientName"] == "CompressedSamples^RG1" and kept.identity["PatientID"] == "9RG1"
    assert not any(value in repr(kept) or value in str(kept) for value in RG1_IDENTITY)


def test_to_model_input_agrees_with_the_png_pipeline(tmp_path, rg1):
    # The 1024 x 1024 8-bit step written as a PNG and read by the series' tf.data pipeline at 64 x 64 must give
    # what to_model_input gives at 64 x 64 (tolerance: float32 rounding, 1e-6).
    square = dicom.to_model_input(rg1, dicom.NIH_SIZE)
    assert square.shape == (1024, 1024, 1)
    assert np.allclose(square * 255, np.rint(square * 255), atol=1e-3)  # 8-bit values, like the PNGs
    Image.fromarray(np.rint(square[..., 0] * 255).astype(np.uint8)).save(tmp_path / "rg1.png")
    from_png = preprocessing.load_images([tmp_path / "rg1.png"], 64)[0]
    ours = dicom.to_model_input(rg1, 64)
    assert ours.shape == (64, 64, 1) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, from_png, atol=1e-6)


def test_to_model_input_averages_areas_and_does_not_keep_the_aspect_ratio():
    rng = np.random.default_rng(0)
    image = rng.random((2048, 3072)).astype(np.float32)  # 2 x 3 pixels per output pixel
    out = dicom.to_model_input(image, dicom.NIH_SIZE, quantize=False)[..., 0]
    blocks = image.reshape(1024, 2, 1024, 3).mean(axis=(1, 3))  # INTER_AREA on whole blocks: their means
    np.testing.assert_allclose(out, blocks, atol=1e-5)
    # An image read by preprocessing.read_image (HxWx1) is accepted too; a left half white stays the left half.
    half = np.zeros((300, 100, 1), np.float32)
    half[:, :50] = 1.0
    small = dicom.to_model_input(half, 32)[..., 0]
    assert small[:, :14].min() > 0.99 and small[:, 18:].max() < 0.01


def test_ct_mr_and_bad_sequence_are_refused_naming_the_file():
    for name, modality in [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR"), ("bad_sequence.dcm", "CT")]:
        # bad_sequence.dcm holds an invalid UN sequence that pydicom 3 reads; its CT slice is what is refused.
        with pytest.raises(DataError, match=rf"{name}: Modality {modality}, not a projection radiograph; "
                                            r"accepted: CR, DX, RG"):
            dicom.read_radiograph(dicom.example_path(name))


def test_a_value_pydicom_cannot_convert_is_named_at_our_boundary(tmp_path):
    path = dicom.write_dicom(tmp_path / "odd.dcm", STORED, NumberOfFrames=1)
    data = path.read_bytes()
    assert data.count(b"\x28\x00\x08\x00IS\x02\x001 ") == 1  # the NumberOfFrames element, value "1 "
    path.write_bytes(data.replace(b"IS\x02\x001 ", b"IS\x02\x00x1"))
    with pytest.raises(DataError, match=r"odd.dcm: pydicom cannot read this file's header values \(ValueError: .*'x1'"):
        dicom.read_radiograph(path)


def test_multi_frame_is_refused(tmp_path):
    path = dicom.write_dicom(tmp_path / "cine.dcm", np.zeros((8, 4), np.uint16), Rows=4, NumberOfFrames=2)
    with pytest.raises(DataError, match=r"cine.dcm: 2 frames \(NumberOfFrames\); a radiograph has one"):
        dicom.read_radiograph(path)


@pytest.mark.parametrize("name, keep", [("RG1_UNCR.dcm", 0.5), ("RG1_UNCR.dcm", 0.999), ("RG1_J2KR.dcm", 0.5),
                                        ("RG1_UNCR.dcm", 0.0002)])
def test_truncated_copies_are_refused_as_truncated(tmp_path, name, keep):
    source = dicom.example_path(name)
    data = source.read_bytes()
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(DataError, match=rf"cut_{name}: .*truncated"):
        dicom.read_radiograph(cut)


def test_missing_codec_names_the_transfer_syntax_and_the_package(tmp_path, monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEG2000Lossless

    decoder = get_decoder(JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})  # as if pylibjpeg-openjpeg were not installed
    monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg>=2.0", "pylibjpeg-openjpeg>=2.0")})
    copy = shutil.copy(dicom.example_path("RG1_J2KR.dcm"), tmp_path / "x.dcm")
    with pytest.raises(DataError, match=r"x.dcm: pixel data compressed as JPEG 2000 Image Compression \(Lossless "
                                        r"Only\) .*pip install pylibjpeg pylibjpeg-openjpeg"):
        dicom.read_radiograph(copy)


def test_for_processing_images_warn(tmp_path):
    path = dicom.write_dicom(tmp_path / "raw.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4),
                             PresentationIntentType="FOR PROCESSING")
    with pytest.warns(UserWarning, match="raw.dcm: a DX 'FOR PROCESSING' image"):
        dicom.read_radiograph(path)


def test_example_path_does_not_download():
    with pytest.raises(DataError, match="not among the installed DICOM test files"):
        dicom.example_path("no_such_file_anywhere.dcm")


# ---- what the reader refuses or flags beyond the format (issue 19): body part, view, grey levels, LUT shape ----

RAMP = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)  # 64 x 64, 4096 values: a real grey range


def test_presentation_lut_inverse_inverts_monochrome2_and_is_recorded(tmp_path):
    plain = dicom.read_radiograph(dicom.write_dicom(tmp_path / "p.dcm", STORED, bits_stored=12))
    inverse = dicom.read_radiograph(dicom.write_dicom(tmp_path / "i.dcm", STORED, bits_stored=12,
                                                      PresentationLUTShape="INVERSE"))
    np.testing.assert_allclose(inverse.image, 1.0 - plain.image, atol=1e-6)
    assert inverse.presentation_lut == "INVERSE" and plain.presentation_lut is None
    assert any("i.dcm: Presentation LUT Shape (2050,0020) INVERSE on a MONOCHROME2" in w for w in inverse.warnings)
    assert "Presentation LUT INVERSE" in str(inverse)


def test_presentation_lut_inverse_on_monochrome1_is_the_one_inversion_the_standard_pairs_it_with(tmp_path):
    # PS3.3 C.7.6.1.1 and C.8.11.7: INVERSE "shall be used if Photometric Interpretation is MONOCHROME1" (every
    # conforming MONOCHROME1 DX carries it): it is the MONOCHROME1 inversion, not a second one. Bone stays white.
    mono1 = dicom.read_radiograph(dicom.write_dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1"))
    paired = dicom.read_radiograph(dicom.write_dicom(tmp_path / "m1i.dcm", STORED, photometric="MONOCHROME1",
                                                     PresentationLUTShape="INVERSE"))
    np.testing.assert_array_equal(paired.image, mono1.image)
    assert paired.image[0, 0] == 1.0 and paired.presentation_lut == "INVERSE" and paired.warnings == ()
    with pytest.raises(DataError, match=r"lin.dcm: Presentation LUT Shape \(2050,0020\) 'LIN OD'"):
        dicom.read_radiograph(dicom.write_dicom(tmp_path / "lin.dcm", STORED, PresentationLUTShape="LIN OD"))


def test_real_extremity_cr_is_refused_naming_the_field_and_read_with_a_warning_when_allowed():
    # pydicom-data's RG3_UNCR.dcm: a CR of a distal tibia, BodyPartExamined EXTREMITY.
    with pytest.raises(DataError, match=r"RG3_UNCR.dcm: BodyPartExamined \(0018,0015\) is 'EXTREMITY', not a chest "
                                        r".*allow_non_chest=True"):
        dicom.read_radiograph(dicom.example_path("RG3_UNCR.dcm"))
    allowed = dicom.read_radiograph(dicom.example_path("RG3_UNCR.dcm"), allow_non_chest=True)
    assert allowed.image.shape == (1760, 1760)
    assert (len(allowed.warnings) == 1
            and "RG3_UNCR.dcm: BodyPartExamined (0018,0015) is 'EXTREMITY'" in allowed.warnings[0])


@pytest.mark.parametrize("elements, words", [
    ({"BodyPartExamined": "HAND"}, r"BodyPartExamined \(0018,0015\) is 'HAND'"),
    ({"BodyPartExamined": "SKULL", "ViewPosition": "AP"}, r"BodyPartExamined \(0018,0015\) is 'SKULL'"),
    ({"BodyPartExamined": "CHEST", "ViewPosition": "LL"}, r"ViewPosition \(0018,5101\) is 'LL', a lateral view"),
    ({"ViewPosition": "LATERAL"}, r"ViewPosition \(0018,5101\) is 'LATERAL'"),
])
def test_non_chest_and_lateral_headers_are_refused_unless_allowed(tmp_path, elements, words):
    path = dicom.write_dicom(tmp_path / "other.dcm", STORED, **elements)
    with pytest.raises(DataError, match=rf"other.dcm: {words}.*allow_non_chest=True"):
        dicom.read_radiograph(path)
    assert re.search(words, dicom.read_radiograph(path, allow_non_chest=True).warnings[0])


@pytest.mark.parametrize("elements", [{}, {"BodyPartExamined": "CHEST", "ViewPosition": "PA"},
                                      {"BodyPartExamined": "THORAX", "ViewPosition": "AP"}, {"BodyPartExamined": ""}])
def test_chest_and_unsaid_body_parts_read_without_warnings(tmp_path, elements):
    assert dicom.read_radiograph(dicom.write_dicom(tmp_path / "c.dcm", STORED, **elements)).warnings == ()


def test_a_window_that_leaves_a_handful_of_grey_levels_is_refused(tmp_path):
    narrow = dicom.write_dicom(tmp_path / "narrow.dcm", RAMP, bits_stored=12, WindowCenter=2048, WindowWidth=2)
    with pytest.raises(DataError, match=r"narrow.dcm: only 2 grey levels of 256 left after the window C/W \(center "
                                        r"2048, width 2\) step.*WindowCenter"):
        dicom.read_radiograph(narrow)
    few = dicom.write_dicom(tmp_path / "few.dcm", RAMP % 4, bits_stored=12)  # four stored values: min-max
    with pytest.raises(DataError, match=r"few.dcm: only 4 grey levels .*min-max window \(0 to 3\)"):
        dicom.read_radiograph(few)
    wide = dicom.write_dicom(tmp_path / "wide.dcm", RAMP, bits_stored=12, WindowCenter=2048, WindowWidth=64)
    assert dicom.read_radiograph(wide).window == "window C/W"  # 64 input values over 256 levels: kept


def test_burned_in_annotation_is_recorded_not_refused(tmp_path, rg1):
    burned = dicom.read_radiograph(dicom.write_dicom(tmp_path / "b.dcm", STORED, BurnedInAnnotation="YES"))
    plain = dicom.read_radiograph(dicom.write_dicom(tmp_path / "n.dcm", STORED, BurnedInAnnotation="NO"))
    assert burned.burned_in_annotation and not plain.burned_in_annotation and not rg1.burned_in_annotation
    assert "burned-in annotation" in str(burned)
