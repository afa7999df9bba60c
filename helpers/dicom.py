"""DICOM radiographs in: one file to a grey image in [0, 1] (bone white, as the NIH PNGs), then to the classifier's
input.

``read_radiograph`` reads one single-frame projection radiograph (Modality CR, DX or RG) with pydicom and applies
the DICOM grey-scale pipeline in the standard's order (DICOM PS3.3 C.11, "Look Up Tables and Presentation States";
the pixel module in PS3.3 C.7.6.3, the encodings in PS3.5):

1. the Modality LUT (PS3.3 C.11.1): Rescale Slope/Intercept or a Modality LUT Sequence (``apply_modality_lut``);
2. the VOI LUT (PS3.3 C.11.2): a VOI LUT Sequence (``apply_voi``), else Window Center/Width (``apply_windowing``,
   LINEAR, LINEAR_EXACT or SIGMOID); the first of several windows is used. When the file has neither, the
   minimum and maximum of the pixels after step 1 are the window ("min-max", said in ``Radiograph.window``);
3. scaled to [0, 1] over the output range of step 2: pydicom's windowing range for a window, the LUT's own
   lowest and highest entries for a VOI LUT, the pixels' minimum and maximum for "min-max";
4. MONOCHROME1 (PS3.3 C.7.6.3.1.2: the minimum value is shown white) is inverted, so high values are dense. A
   Presentation LUT Shape (2050,0020) INVERSE is the same inversion: the standard pairs it with MONOCHROME1
   (PS3.3 C.7.6.1.1 and C.8.11.7, "INVERSE shall be used if Photometric Interpretation is MONOCHROME1"), so it
   does not undo it; on a MONOCHROME2 image it inverts, as the file asks, and ``Radiograph.warnings`` says so.

The LUTs are pydicom's (``pydicom.pixels``), not rewritten here. Compressed pixel data is decoded by the plugins
pydicom finds: JPEG 2000 and HTJ2K by pylibjpeg-openjpeg, JPEG baseline/extended/lossless and JPEG-LS by
pylibjpeg-libjpeg, RLE and deflate by pydicom itself. Anything that is not a 2-D grey radiograph is refused with
a ``DataError`` that names the file, what it holds and what to do. So is a file whose header says it is not a
frontal chest (BodyPartExamined (0018,0015) other than CHEST or THORAX, ViewPosition (0018,5101) LL, RL or
LATERAL), unless ``allow_non_chest=True``, which reads it and records the warning in ``Radiograph.warnings``;
and an image left with fewer than 8 of the 256 grey levels after the VOI step (a wrong window or rescale).
BurnedInAnnotation (0028,0301) YES is kept in ``Radiograph.burned_in_annotation`` (text in the pixels, perhaps
the patient's name): not refused, the report's renderers hide such pixels. Nothing identifying the patient is
kept, printed or logged unless ``keep_identity=True``, and even then the ``repr`` does not show it.

``to_model_input`` resizes the image the way the NIH ChestX-ray14 PNGs were made (Wang et al., "ChestX-ray8:
Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of
Common Thorax Diseases", CVPR 2017: the radiographs resized to 1024 x 1024 8-bit images) and then as the
series' tf.data pipeline resizes those PNGs, so a DICOM reaches the classifier as a PNG of the dataset would.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

from helpers import errors
from helpers.errors import DataError

# Projection radiography (PS3.3 C.7.3.1.1.1): computed radiography, digital radiography, conventional film.
# Not MG (mammography), IO/PX (dental), RF/XA (fluoroscopy, angiography: multi-frame): the classifier saw chests.
MODALITIES = ("CR", "DX", "RG")
NIH_SIZE = 1024  # the side of the ChestX-ray14 PNGs (Wang et al. 2017)
# BodyPartExamined values read as a chest (PS3.16 Annex L: CHEST; THORAX as some CR readers write it); absent or
# empty is read too (anonymisers often blank it). ViewPosition values of a lateral view, which the classifier never saw.
CHEST_BODY_PARTS = ("CHEST", "THORAX")
LATERAL_VIEWS = ("LL", "RL", "LATERAL", "LAT")
MIN_GREY_LEVELS = 8  # of the 256 of an 8-bit image, after the VOI step; checked on images of 64 x 64 pixels or more

# The elements kept with keep_identity=True; never in the repr.
IDENTITY = ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "PatientSex", "PatientAge",
            "StudyDate", "StudyTime", "AccessionNumber", "StudyInstanceUID", "InstitutionName")

# What to pip install when pydicom has no decoder plugin for a transfer syntax (versions: requirements.txt).
_OPENJPEG = "pylibjpeg pylibjpeg-openjpeg"
_LIBJPEG = "pylibjpeg pylibjpeg-libjpeg"
_PLUGINS = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG, "1.2.840.10008.1.2.4.51": _LIBJPEG, "1.2.840.10008.1.2.4.57": _LIBJPEG,
    "1.2.840.10008.1.2.4.70": _LIBJPEG, "1.2.840.10008.1.2.4.80": _LIBJPEG + " (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": _LIBJPEG + " (or pyjpegls)", "1.2.840.10008.1.2.4.90": _OPENJPEG,
    "1.2.840.10008.1.2.4.91": _OPENJPEG, "1.2.840.10008.1.2.4.201": _OPENJPEG, "1.2.840.10008.1.2.4.202": _OPENJPEG,
    "1.2.840.10008.1.2.4.203": _OPENJPEG, "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",
}

# The first bytes of files that are often renamed .dcm, and what to read them with.
_SIGNATURES = (
    (b"\x89PNG", "a PNG image", "read it with preprocessing.read_image"),
    (b"\xff\xd8\xff", "a JPEG image", "read it with preprocessing.read_image"),
    (b"II*\x00", "a TIFF image", "read it with preprocessing.read_image"),
    (b"MM\x00*", "a TIFF image", "read it with preprocessing.read_image"),
    (b"GIF8", "a GIF image", "read it with preprocessing.read_image"),
    (b"PK\x03\x04", "a ZIP archive", "unzip it first"),
    (b"\x1f\x8b", "a gzip file", "decompress it first"),
)


@dataclass(frozen=True)
class Radiograph:
    """One radiograph read from DICOM: float32 HxW image in [0, 1] (bone white) and what was done to it.

    Taught in 07_report.
    """

    image: np.ndarray = field(repr=False)
    pixel_spacing: tuple[float, float] | None  # (row, column) in mm; None when the file does not record it
    modality: str
    photometric: str
    bits_stored: int
    window: str  # "VOI LUT", "window C/W" or "min-max"
    window_values: tuple[float, float] | None  # (center, width) of the window used, or the min and max
    transfer_syntax: str
    source: str  # the file name, without its folders
    shape_original: tuple[int, int]
    identity: dict[str, str] | None = field(default=None, repr=False)  # only with keep_identity=True
    presentation_lut: str | None = None  # (2050,0020) Presentation LUT Shape, IDENTITY or INVERSE; None when absent
    burned_in_annotation: bool = False  # (0028,0301) YES: text burnt into the pixels (the renderers hide them)
    warnings: tuple[str, ...] = ()  # what the report must show: a non-chest read with allow_non_chest=True, ...

    def __str__(self) -> str:
        spacing = "unknown" if self.pixel_spacing is None else "x".join(f"{s:g}" for s in self.pixel_spacing) + " mm"
        lut = f", Presentation LUT {self.presentation_lut}" if self.presentation_lut == "INVERSE" else ""
        burned = ", burned-in annotation" if self.burned_in_annotation else ""
        return (f"{self.source}: {self.modality} {self.photometric} {self.bits_stored}-bit "
                f"{self.shape_original[0]}x{self.shape_original[1]}, {self.transfer_syntax}, VOI {self.window}{lut}, "
                f"pixel spacing {spacing}{burned}")


def read_radiograph(path, *, keep_identity: bool = False, allow_non_chest: bool = False) -> Radiograph:
    """Read one 2-D CR/DX/RG chest DICOM to a float32 image in [0, 1] (modality LUT, VOI LUT or window, MONOCHROME1
    inverted).

    A header that says another body part or a lateral view is refused; ``allow_non_chest=True`` reads it and
    puts the warning in ``Radiograph.warnings``.

    Taught in 07_report.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        raise DataError(f"{path}: DICOM file {what}. Check the path (one .dcm file per call).")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = _read(path)
            result = _radiograph(path, ds, caught, keep_identity, allow_non_chest)
        except DataError:
            raise
        except Exception as err:  # a value pydicom cannot convert, met deep inside it: said here, with the file
            raise DataError(f"{path}: pydicom cannot read this file's header values ({type(err).__name__}: {err}). "
                            "The file is corrupt or breaks the DICOM standard: export it again, or check it with "
                            "dciodvfy or pydicom.") from None
    for warning in caught:  # pydicom's warnings, with the file they concern
        warnings.warn(f"{path.name}: {warning.message}", UserWarning, stacklevel=2)
    if str(ds.get("PresentationIntentType", "")).upper() == "FOR PROCESSING":
        warnings.warn(f"{path.name}: a DX 'FOR PROCESSING' image (raw detector data, not processed for viewing); "
                      "the classifier learnt from images processed for presentation: use the FOR PRESENTATION "
                      "export of this exam if there is one.", UserWarning, stacklevel=2)
    return result


def _radiograph(path: Path, ds: pydicom.Dataset, caught, keep_identity: bool,
                allow_non_chest: bool = False) -> Radiograph:
    said = _check_header(path, ds, caught, allow_non_chest)
    pixels = _decode(path, ds, caught)
    image, window, values, lut, polarity = _grey_pipeline(path, ds, pixels)
    identity = None
    if keep_identity:
        identity = {key: str(ds.get(key)) for key in IDENTITY if key in ds}
    return Radiograph(
        image=image,
        pixel_spacing=_spacing(ds),
        modality=str(ds.Modality).strip().upper(),
        photometric=str(ds.PhotometricInterpretation),
        bits_stored=int(ds.BitsStored),
        window=window,
        window_values=values,
        transfer_syntax=ds.file_meta.TransferSyntaxUID.name,
        source=path.name,
        shape_original=(int(ds.Rows), int(ds.Columns)),
        identity=identity,
        presentation_lut=lut,
        burned_in_annotation=str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES",
        warnings=tuple(said + polarity),
    )


def _read(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        head, size = path.read_bytes()[:8], path.stat().st_size
        for magic, kind, todo in _SIGNATURES:
            # A DICOM preamble may itself be a TIFF header (dual-format files): a short one may be a cut DICOM.
            if head.startswith(magic) and not (kind == "a TIFF image" and size < 132):
                raise DataError(f"{path}: not a DICOM file but {kind} (its first bytes say so); {todo}.") from None
        if 0 < size < 132:
            raise DataError(f"{path}: only {size} bytes, shorter than a DICOM file's preamble and 'DICM' marker: "
                            "truncated, or not DICOM. Copy it again from the source.") from None
        found = "an empty file" if not head else "no 'DICM' marker at byte 128"
        raise DataError(f"{path}: not a DICOM file ({found}). Export the image from the PACS or viewer as a "
                        "DICOM Part 10 file (with its file meta header).") from None
    except Exception as err:  # pydicom's parser stops on corrupt elements with many exception types
        raise DataError(f"{path}: the DICOM header cannot be parsed ({type(err).__name__}: {err}); the file is "
                        "truncated or corrupt: copy it again from the source.") from None


def _told(caught) -> str:
    said = [str(w.message) for w in caught]
    return f" pydicom said: {said[0].rstrip('.')}." if said else ""


def _check_header(path: Path, ds: pydicom.Dataset, caught, allow_non_chest: bool = False) -> list[str]:
    """Refuse what is not one grey 2-D projection radiograph of a chest; the warnings allow_non_chest=True lets
    through."""
    modality = str(ds.get("Modality", "")).strip().upper() or None
    if "PixelData" not in ds:
        sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
        kind = getattr(sop_class, "name", None) or "object of unknown class"
        if "Rows" in ds or "Image Storage" in kind:
            rows = f", Rows {ds.Rows}" if "Rows" in ds else ""
            raise DataError(f"{path}: an image header ({kind}{rows}) but no Pixel Data "
                            f"(7FE0,0010): the file is truncated ({path.stat().st_size:,} bytes).{_told(caught)} "
                            "Copy it again from the source.")
        raise DataError(f"{path}: no Pixel Data (7FE0,0010): a {kind} (Modality {modality or 'missing'}), not an "
                        f"image, or a file truncated before its image ({path.stat().st_size:,} bytes). Pass the "
                        "radiograph's file.")
    if modality not in MODALITIES:
        raise DataError(f"{path}: Modality {modality or 'missing'}, not a projection radiograph; accepted: "
                        f"{', '.join(MODALITIES)} (computed, digital, film radiography). CT/MR slices and other "
                        "modalities are not chest radiographs: pass a CR or DX file.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DataError(f"{path}: {frames} frames (NumberOfFrames); a radiograph has one. Export the frame you "
                        "want as a single-frame file, or read it with pydicom and pass the frame to to_model_input.")
    samples, photometric = int(ds.get("SamplesPerPixel", 1)), str(ds.get("PhotometricInterpretation", ""))
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DataError(f"{path}: a colour image (SamplesPerPixel {samples}, PhotometricInterpretation "
                        f"{photometric or 'missing'}); a radiograph is grey (MONOCHROME1 or MONOCHROME2). A screen "
                        "capture or a photograph of a film is not the radiograph: export the original image.")
    rows, columns = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    limit = Image.MAX_IMAGE_PIXELS or 2**62
    if rows * columns == 0 or rows * columns > limit:
        raise DataError(f"{path}: the header announces {rows}x{columns} pixels, outside 1 to {limit:,} (PIL's "
                        "decompression-bomb limit, as for PNGs). Check the file; raise PIL.Image.MAX_IMAGE_PIXELS "
                        "if you trust it.")
    said = []
    part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    found = []
    if part and part not in CHEST_BODY_PARTS:
        found.append((f"BodyPartExamined (0018,0015) is {part!r}, not a chest ({' or '.join(CHEST_BODY_PARTS)})",
                      "a classifier of frontal chest radiographs"))
    if view in LATERAL_VIEWS:
        found.append((f"ViewPosition (0018,5101) is {view!r}, a lateral view",
                      "a classifier of frontal (PA or AP) chest radiographs"))
    for what, model in found:
        if not allow_non_chest:
            raise DataError(f"{path}: {what}; {model} says nothing about it. Pass a frontal chest radiograph; if "
                            "the header is wrong and the image is one, read it with read_radiograph(path, "
                            "allow_non_chest=True) (report: --allow-non-chest), and the report carries this warning.")
        said.append(f"{path.name}: {what}, read with allow_non_chest=True: {model} was not made for this image, "
                    "so its findings may mean nothing.")
    return said


def _decode(path: Path, ds: pydicom.Dataset, caught) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None:
        raise DataError(f"{path}: no Transfer Syntax UID (0002,0010) in the file meta header, so the pixel data's "
                        "encoding is unknown. Export the file again from the PACS or viewer.")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(f"{path}: pixel data in transfer syntax {syntax.name} ({syntax}), which pydicom "
                        f"{pydicom.__version__} cannot decode. Export it uncompressed (Explicit VR Little Endian), "
                        "e.g. with dcmtk's dcmdjpeg or gdcmconv --raw.") from None
    if not decoder.is_available:
        package = _PLUGINS.get(str(syntax), "a pydicom decoder plugin for it")
        raise DataError(f"{path}: pixel data compressed as {syntax.name} ({syntax}) and no decoder plugin for it "
                        f"is installed. Install it: pip install {package} (the versions are pinned in "
                        f"requirements.txt). pydicom: {'; '.join(decoder.missing_dependencies)}.")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # the decoders fail with many exception types on short or corrupt data
        raise DataError(f"{path}: the {syntax.name} pixel data cannot be decoded ({type(err).__name__}: {err})."
                        f"{_told(caught)} The file is truncated or corrupt: copy it again from the source.") from None
    if pixels.ndim != 2:
        raise DataError(f"{path}: decoded pixels of shape {pixels.shape}, not one grey frame. Pass a 2-D radiograph.")
    return pixels


def _grey_pipeline(path: Path, ds: pydicom.Dataset, pixels: np.ndarray):
    """Modality LUT, VOI LUT or window, [0, 1], MONOCHROME1 inverted: (image, window, window_values, LUT shape,
    warnings)."""
    try:
        values = apply_modality_lut(pixels, ds)
        if _has_voi_lut(ds):
            window, shown = "VOI LUT", None
            item = ds.VOILUTSequence[0]
            entries, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
            # Outside the LUT's inputs the first or last entry applies (PS3.3 C.11.2.1.1): clipping first is the
            # same mapping, and keeps pydicom's uint16 index arithmetic from wrapping around.
            inputs = np.clip(np.rint(values), first, first + entries - 1).astype(np.int64)
            table = apply_voi(np.arange(first, first + entries, dtype=np.int64), ds).astype(np.float64)
            out, low, high = apply_voi(inputs, ds).astype(np.float64), table.min(), table.max()
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            window = "window C/W"
            shown = (_first(ds.WindowCenter), _first(ds.WindowWidth))
            out = apply_windowing(values, ds)
            # The output range of pydicom's windowing: what it gives far below and far above the window.
            with np.errstate(over="ignore"):
                low, high = apply_windowing(np.array([-1e300, 1e300]), ds)
        else:
            window = "min-max"
            out = np.asarray(values, dtype=np.float64)
            low, high = float(out.min()), float(out.max())
            shown = (low, high)
    except (ValueError, TypeError, AttributeError, IndexError, NotImplementedError) as err:
        raise DataError(f"{path}: the Modality LUT or VOI LUT elements cannot be applied ({err}). Check the "
                        "rescale, window and LUT elements of the file (dcmdump or pydicom).") from None
    if high == low:
        raise DataError(f"{path}: every pixel has the value {low:g} after the {window} step: a blank image. "
                        "Check the file; it cannot be classified.")
    image = (np.asarray(out, dtype=np.float64) - low) / (high - low)
    image = errors.check_finite(image, f"{path.name} pixels after the {window} step")
    image = np.clip(image, 0.0, 1.0)
    levels = int(np.count_nonzero(np.bincount(np.rint(image * 255).astype(np.uint8).ravel(), minlength=256)))
    if levels < MIN_GREY_LEVELS and image.size >= 64 * 64:
        used = {"window C/W": lambda v: f"window C/W (center {v[0]:g}, width {v[1]:g})",
                "min-max": lambda v: f"min-max window ({v[0]:g} to {v[1]:g})"}.get(window, lambda v: window)(shown)
        raise DataError(f"{path}: only {levels} grey level{'s' * (levels != 1)} of 256 left after the {used} step, "
                        f"scaled to 8 bits (fewer than {MIN_GREY_LEVELS}): the window lies outside the pixel values, "
                        "or the rescale and window elements are wrong. Check RescaleSlope/Intercept, WindowCenter/"
                        "Width and the VOI LUT (dcmdump or pydicom), or export the image again.")
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper() or None
    if shape not in (None, "IDENTITY", "INVERSE"):
        raise DataError(f"{path}: Presentation LUT Shape (2050,0020) {shape!r}; a radiograph for display has "
                        "IDENTITY or INVERSE (LIN OD is for film printers). Export the image for screen display.")
    said = []
    # MONOCHROME1 and INVERSE are one and the same inversion (PS3.3 C.7.6.1.1): either, or both, invert once.
    invert = ds.PhotometricInterpretation == "MONOCHROME1" or shape == "INVERSE"
    if shape == "INVERSE" and ds.PhotometricInterpretation == "MONOCHROME2":
        said.append(f"{path.name}: Presentation LUT Shape (2050,0020) INVERSE on a MONOCHROME2 image: inverted as "
                    "the file asks (the lowest values shown white); check that bone is white in the image.")
    if invert:
        image = 1.0 - image
    return image.astype(np.float32), window, shown, shape, said


def _has_voi_lut(ds: pydicom.Dataset) -> bool:
    sequence = ds.get("VOILUTSequence")
    return bool(sequence) and "LUTDescriptor" in sequence[0] and "LUTData" in sequence[0]


def _first(value) -> float:
    return float(value[0]) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else float(value)


def _spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(0028,0030) Pixel Spacing, else (0018,1164) Imager Pixel Spacing; zeros (as anonymisers leave) are None."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0 and np.isfinite(row) and np.isfinite(column):
            return (row, column)
    return None


def to_model_input(radiograph, size: int, *, quantize: bool = True) -> np.ndarray:
    """A Radiograph (or HxW image in [0, 1]) as the classifier's float32 size x size x 1 input, resized as the NIH PNGs
    were.

    Two steps, as a ChestX-ray14 image reached the classifier: (1) the whole image to 1024 x 1024, the aspect
    ratio not kept (Wang et al., CVPR 2017), with OpenCV's INTER_AREA (pixel-area averaging) when both sides
    shrink, INTER_LINEAR otherwise, and, with ``quantize=True``, rounded to 8 bits like the PNGs; (2) from
    1024 x 1024 to ``size`` x ``size`` as ``preprocessing.image_dataset`` resizes a PNG (``tf.image.resize``,
    bilinear with antialias). Wang et al. do not say which interpolation they used: INTER_AREA is our choice.

    Taught in 07_report.
    """
    import tensorflow as tf

    from helpers import preprocessing

    image = radiograph.image if isinstance(radiograph, Radiograph) else radiograph
    what = f"to_model_input({radiograph.source})" if isinstance(radiograph, Radiograph) else "to_model_input image"
    image = errors.check_finite(image, what).astype(np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"{what}: expected one grey image (HxW or HxWx1), got shape {image.shape}.")
    preprocessing._check_unit_range(image, what)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels (the model's input side), not {size!r}.")
    shrink = image.shape[0] >= NIH_SIZE and image.shape[1] >= NIH_SIZE
    square = cv2.resize(image, (NIH_SIZE, NIH_SIZE), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    square = np.clip(square, 0.0, 1.0)
    if quantize:
        square = np.rint(square * 255.0).astype(np.float32) / 255.0
    out = tf.image.resize(square[None, ..., None], (int(size), int(size)), antialias=True)[0]
    return np.asarray(out, dtype=np.float32)


def example_path(name: str = "RG1_UNCR.dcm") -> Path:
    """The path of a DICOM test file shipped by pydicom or pydicom-data (RG1_UNCR.dcm: a PA chest CR), never downloaded.

    Taught in 07_report.
    """
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    if found is None:
        raise DataError(f"{name}: not among the installed DICOM test files. Install pydicom-data (pinned in "
                        "requirements.txt), which ships RG1_UNCR.dcm, RG1_J2KR.dcm and the other large ones.")
    return Path(found)


def write_dicom(path, pixels, *, modality: str = "DX", photometric: str = "MONOCHROME2", bits_stored: int | None = None,
                **elements) -> Path:
    """Write a grey 2-D array as an uncompressed single-frame DICOM file (test data, examples); extra elements by
    keyword.

    Taught in 07_report.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    pixels = np.asarray(pixels)
    if pixels.dtype.kind not in "ui" or pixels.ndim != 2:
        raise ValueError(f"pixels must be a 2-D integer array (stored values), got {pixels.dtype} {pixels.shape}.")
    signed = pixels.dtype.kind == "i"
    allocated = 8 if pixels.dtype.itemsize == 1 else 16
    if pixels.dtype.itemsize > 2:
        raise ValueError("pixels must be 8 or 16 bit (uint8, uint16, int8, int16).")
    sop_class = {"CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1",
                 "CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}.get(
        modality, "1.2.840.10008.5.1.4.1.1.7")  # else Secondary Capture
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = allocated
    ds.BitsStored = bits_stored or allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


__all__ = ["CHEST_BODY_PARTS", "IDENTITY", "LATERAL_VIEWS", "MIN_GREY_LEVELS", "MODALITIES", "NIH_SIZE", "Radiograph",
           "example_path", "read_radiograph", "to_model_input", "write_dicom"]
