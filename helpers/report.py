"""One image in, one report out: findings, decisions, MC-dropout uncertainty, a referral flag, Grad-CAM and boxes.

``ChestReporter`` turns one chest radiograph (PNG, JPEG or DICOM, or a float image) and a saved classifier into a
``ChestReport``: per finding the probability, the decision at the threshold chosen on validation (notebook 02
saves them beside the model), the MC-dropout mean, spread and mutual information (notebook 04), and for the
findings predicted present only a Grad-CAM heatmap (notebook 05) and one box (notebook 06). The backbone runs
once per image: one forward pass gives the last feature map, the pooled features and the probabilities; only the
dropout head is sampled T times on the pooled features, and Grad-CAM, whose gradient through global average
pooling and a dense sigmoid head has a closed form, is read off the same feature map (checked against
``explain.grad_cam`` in tests/test_report.py). The ``probability`` column is the saved classifier's own output,
the one the thresholds were chosen on; ``mean``, ``spread`` and ``mutual_information`` come from the dropout head
(notebook 04's copy fine-tuned with dropout when it is saved beside the model, else the trained head with dropout
put in front of it, said in the notes), so ``mean`` may differ from ``probability``.

The referral rule (the numbers come from notebook 04, saved as ``<model>.referral.json`` with the split that set
them): refer the image to a radiologist when its mean mutual information over the findings is above the largest
value notebook 04 kept when it referred the most uncertain ``refer_at`` fraction of its validation images. T
defaults to the T that cut-off was calibrated with, since the mutual information depends on T. Without that file nothing
calibrates the flag, so the report refers every image and says why (a conservative default, not a measured one).

``FundusReporter`` does the same for a fundus photograph and the vessel U-Net of notebook 03: vessel map (MC
mean), epistemic map, refer flag. ``to_json``, ``to_html`` and ``to_png`` render either report. The command line
``python -m helpers.report IMAGE... --model FILE --out DIR`` writes NAME.png, NAME.html and NAME.json per image,
NAME a pseudonym from the file's bytes (``pseudonym``). No input file name or folder, patient name or ID is written
into a report, its file names or the messages unless ``keep_identity=True`` (``--keep-identity``); two inputs of
one name never overwrite each other's reports.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import boxes as _boxes
from helpers import (config, datasets, dicom, errors, explain, familiarity, model_card, models, preprocessing,
                     side_files, uncertainty)
from helpers import referral as _referral
from helpers.errors import DataError
# the renderers, re-exported
from helpers.report_render import figure_png, to_dict, to_html, to_json, to_png  # noqa: F401

DEFAULT_SAMPLES = 20  # T when neither the caller nor the referral file says
DEFAULT_HEAD_DROPOUT = 0.3  # notebook 04's rate, used when no fine-tuned head is saved
DISPLAY_SIZE = 512  # the displayed image's side, at least (the model's input when larger)
FUNDUS_SIDE = 584  # DRIVE's photograph height: a fundus photograph is resized so its larger side is this
FUNDUS_REFER_FACTOR = 2.0  # refer a photograph whose mean epistemic is above this many times notebook 04's
BOX_THRESHOLD = 0.5  # a box covers the heat above this fraction of the maximum (notebook 06's default)
COLUMNS = ("probability", "threshold", "present", "mean", "spread", "mutual_information")
_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


class ReportError(DataError):
    """An image, model or side file the report cannot use, naming the file, what was found and what to do.

    Taught in 07_report.
    """


# --------------------------------------------------------------------------------------------
# The referral cut-off of notebook 04 (its file: helpers.side_files)
# --------------------------------------------------------------------------------------------


def referral_threshold(uncertainties, refer_at: float) -> float:
    """The largest uncertainty kept when the most uncertain ``refer_at`` fraction is referred (as
    uncertainty.referral_curve keeps).

    Taught in 04_mc_dropout_uncertainty.
    """
    values = np.sort(errors.check_finite(uncertainties, "uncertainties (one per case)").reshape(-1), kind="stable")
    if values.size == 0:
        raise ValueError("no uncertainties: the referral threshold needs at least one case.")
    if not 0.0 <= refer_at < 1.0:
        raise ValueError(f"refer_at must be in [0, 1), not {refer_at!r}.")
    kept = len(values) - int(round(refer_at * len(values)))
    return float(values[max(kept, 1) - 1])


def _samples_from(referral: dict | None, samples: int | None) -> int:
    """T: the one given, else the T the referral cut-off was calibrated with (mutual information depends on T), else the
    default."""
    if samples is not None:
        return samples
    saved = (referral or {}).get("samples")
    return (int(saved) if isinstance(saved, (int, float)) and not isinstance(saved, bool) and saved >= 2
            else DEFAULT_SAMPLES)


# --------------------------------------------------------------------------------------------
# Reading one image
# --------------------------------------------------------------------------------------------


def pseudonym(path) -> str:
    """The name a report uses for an input file without its identity: ``image-`` and 12 hex digits of the SHA-256 of its
    bytes.

    File names of PACS exports and scanned folders often hold the patient's name or record number
    (``DOE_JOHN_MRN0012345.dcm``), or repeat in every study folder (``IM0001.dcm``); a hash of the bytes
    says neither, is the same for the same file on every run, and differs between different files.

    Taught in 07_report.
    """
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "image-" + digest.hexdigest()[:12]


def _said_about(message: str, path: Path, name: str) -> str:
    """A message about ``path`` with its folders and file name replaced by ``name`` (no identity in the output)."""
    for text in (str(path), str(path.resolve()), path.name):
        message = message.replace(text, name)
    return message


def _is_dicom(path: Path) -> bool:
    """DICOM by content ('DICM' at byte 128), or by a DICOM suffix: dicom.read_radiograph then says what it is."""
    with open(path, "rb") as handle:
        head = handle.read(132)
    return head[128:132] == b"DICM" or path.suffix.lower() in _DICOM_SUFFIXES


# The chest report reads PNG, JPEG and DICOM, told by their first bytes; these others are named when refused.
_CHEST_FORMATS = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"))
_OTHER_FORMATS = (
    (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"II+\x00", "a BigTIFF image"),
    (b"MM\x00+", "a BigTIFF image"), (b"GIF8", "a GIF image"), (b"\x00\x00\x01\x00", "an ICO icon"),
    (b"\x00\x00\x02\x00", "a CUR cursor"), (b"%!PS", "an EPS/PostScript file"), (b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (b"%PDF", "a PDF document"), (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xffO\xffQ", "a JPEG 2000 codestream"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip file"),
)


def _chest_format(path: Path) -> str:
    """'PNG' or 'JPEG' by the file's first bytes; anything else refused, named when it is a known format."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    for magic, kind in _CHEST_FORMATS:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        kind = "a WebP image"
    else:
        kind = next((kind for magic, kind in _OTHER_FORMATS if head.startswith(magic)), None)
    if kind is None:
        raise ReportError(f"{path}: cannot decode the image: by its first bytes it is not a PNG, JPEG or DICOM file "
                          "(whatever its name says). Export the radiograph as PNG or JPEG, or send the DICOM file.")
    raise ReportError(f"{path}: {kind} (its first bytes say so, whatever its name says); the chest report cannot "
                      "decode it as a radiograph: it reads PNG, JPEG or DICOM only. Export the radiograph as a grey "
                      "PNG, or send the DICOM file.")


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """As preprocessing.image_dataset resizes a PNG: tf.image.resize, bilinear with antialias."""
    return np.asarray(tf.image.resize(image[None, ..., None], (size, size), antialias=True)[0, ..., 0], np.float32)


@dataclass
class _Input:
    model: np.ndarray  # size x size x 1 float32 [0, 1]
    display: np.ndarray  # HxW float32 [0, 1]
    source: str
    details: dict
    identity: dict | None = None


def read_chest(path_or_array, size: int, *, display_size: int | None = None, source_name: str | None = None,
               keep_identity: bool = False, allow_non_chest: bool = False) -> _Input:
    """A PNG, JPEG or DICOM chest radiograph (or HxW float image) as the model's input and the displayed image.

    The format is told by the file's content, not its name: BMP, TIFF, GIF, ICO, EPS and the rest are refused.
    ``allow_non_chest=True`` reads a DICOM whose header says another body part or a lateral view; the warning,
    with any others of the reader, goes into ``details["warnings"]``.

    Taught in 07_report.
    """
    display_size = max(int(size), DISPLAY_SIZE) if display_size is None else int(display_size)
    if isinstance(path_or_array, (str, Path)):
        path = Path(path_or_array)
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "not found"
            raise ReportError(f"{path}: image {what}. Pass a PNG, JPEG or DICOM file.")
        source = source_name or (path.name if keep_identity else pseudonym(path))
        try:
            if _is_dicom(path):
                radiograph = dicom.read_radiograph(path, keep_identity=keep_identity, allow_non_chest=allow_non_chest)
                details = {"format": "DICOM", "modality": radiograph.modality, "photometric": radiograph.photometric,
                           "bits_stored": radiograph.bits_stored, "window": radiograph.window,
                           "pixel_spacing_mm": radiograph.pixel_spacing,
                           "original_size": list(radiograph.shape_original),
                           "presentation_lut": radiograph.presentation_lut,
                           "burned_in_annotation": radiograph.burned_in_annotation,
                           # said about the report's name for the file (a pseudonym unless keep_identity)
                           "warnings": [w.replace(path.name, source) for w in radiograph.warnings]}
                return _Input(dicom.to_model_input(radiograph, size),
                              dicom.to_model_input(radiograph, display_size)[..., 0],
                              source, details, radiograph.identity)
            kind = _chest_format(path)
            image = preprocessing.read_image(path)
        except DataError as err:
            raise ReportError(str(err)) from None
        if image.shape[-1] != 1:
            raise ReportError(f"{path}: a colour image ({image.shape[1]}x{image.shape[0]}, {image.shape[-1]} "
                              "channels), but a chest radiograph is grey. Export it as a grey PNG or send the DICOM "
                              "file; for a fundus photograph use --kind fundus.")
        details = {"format": path.suffix.lstrip(".").upper() or kind, "original_size": list(image.shape[:2])}
        grey = image[..., 0]
    else:
        source = source_name or "image"
        grey = _check_array(path_or_array, source)
        details = {"format": "array", "original_size": list(grey.shape)}
    if min(grey.shape) < 8:
        raise ReportError(f"{source}: the image is {grey.shape[1]}x{grey.shape[0]} pixels, too small to be a "
                          "radiograph.")
    return _Input(_resize(grey, size)[..., None], _resize(grey, display_size), source, details)


def _check_array(image, source: str) -> np.ndarray:
    try:
        array = errors.check_finite(image, source).astype(np.float32)
    except DataError as err:
        raise ReportError(str(err)) from None
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ReportError(f"{source}: expected one grey image (HxW or HxWx1) in [0, 1], got shape {array.shape}.")
    if array.min() < 0 or array.max() > 1:
        raise ReportError(f"{source}: values from {array.min():g} to {array.max():g}; the report takes images in "
                          "[0, 1] (divide 8-bit images by 255).")
    return array


# --------------------------------------------------------------------------------------------
# The chest report
# --------------------------------------------------------------------------------------------


@dataclass
class ChestReport:
    """The report of one chest radiograph: findings table, refer flag and reason, heatmaps and boxes for present
    findings.

    Taught in 07_report.
    """

    source: str
    image: np.ndarray = field(repr=False)
    findings: pd.DataFrame
    refer: bool
    refer_reason: str
    heatmaps: dict = field(repr=False)
    boxes: dict
    samples: int
    model: str
    notes: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    identity: dict | None = field(default=None, repr=False)
    kind: str = "chest"
    card_line: str = model_card.NO_CARD_LINE  # model_card.summary_line: what it was trained on, for this input
    # the card beside the model (helpers.model_card), None: none
    model_card: dict | None = field(default=None, repr=False)
    unfamiliar: str | None = None  # "outside what this model has seen: ..." when helpers.familiarity fires, else None

    @property
    def present(self) -> list[str]:
        """The findings predicted present, in label order.

        Taught in 07_report.
        """
        return list(self.findings.index[self.findings["present"]])


def reseed_dropout(model: keras.Model, seed: int) -> int:
    """Reset every dropout layer's random state to ``seed``, so the next MC draws repeat exactly; returns how many.

    Taught in 07_report.
    """
    found = 0
    for layer in model.layers:
        generator = getattr(layer, "seed_generator", None)
        if isinstance(layer, keras.layers.Dropout) and generator is not None:
            generator.state.assign(np.array([int(seed), 0], dtype=generator.state.dtype))
            found += 1
    return found


def _output_layer(model):
    return model.outputs[0]._keras_history[0]


def _producer(tensor):
    return tensor._keras_history[0]


class ChestReporter:
    """A chest X-ray classifier with its thresholds, MC-dropout head and referral rule, ready to report images.

    Taught in 07_report.
    """

    def __init__(self, model: keras.Model, thresholds, *, labels: Sequence[str] = datasets.LABELS, samples: int = 20,
                 referral: dict | None = None, mc_head: keras.Model | None = None, box_sizes: dict | None = None,
                 name: str | None = None, seed: int | None = None, card: dict | None = None,
                 familiar: "familiarity.Familiarity | None" = None):
        labels = list(labels)
        if model.output_shape[-1] != len(labels):
            raise ReportError(f"{model.name}: the model predicts {model.output_shape[-1]} outputs for "
                              f"{len(labels)} labels.")
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
            raise ReportError(f"samples must be a whole number >= 2 (a spread needs two draws), not {samples!r}.")
        try:
            explain.check_flat(model)
        except explain.ExplainError as err:
            raise ReportError(str(err)) from None
        self.model, self.labels, self.samples = model, labels, int(samples)
        self.name = name or model.name
        self.card = card  # the model card beside the saved model (helpers.model_card), None: none
        self.familiar = familiar  # notebook 04's Gaussian of the training films' pooled features, None: not checked
        self.recalibration = None
        if referral is not None and referral.get("signal") == "expected_errors":
            try:
                self.recalibration = _referral.Recalibration.from_dict(referral["recalibration"])
            except (KeyError, TypeError) as err:
                raise ReportError(f"the referral file names the signal expected_errors but holds no recalibration "
                                  f"({type(err).__name__}: {err}); run notebook 04 again to rewrite it.") from None
        try:
            self.thresholds = side_files.thresholds_series(thresholds, labels, f"{self.name} thresholds")
        except side_files.SideFileError as err:
            raise ReportError(str(err)) from None
        self.referral, self.box_sizes, self.seed = referral, box_sizes or {}, seed
        self.size = int(model.input_shape[1])
        self.notes: list[str] = []
        self.threshold_method = "given"
        output = _output_layer(model)
        if not isinstance(output, keras.layers.Dense) or getattr(output.activation, "__name__", "") != "sigmoid":
            raise ReportError(f"{self.name}: the output layer {output.name!r} is not a dense sigmoid layer; the report "
                              "needs a multi-label classifier ending in Dense(..., activation='sigmoid').")
        pooled = output.input
        before = _producer(pooled)
        rate = None
        if isinstance(before, keras.layers.Dropout):  # a classifier trained with dropout before its head
            rate, pooled = before.rate, before.input
        self.layer_name = explain.last_conv_layer(model)
        feature_map = model.get_layer(self.layer_name).output
        pooling = _producer(pooled)
        # Grad-CAM in closed form needs: feature map -> global average pooling -> (dropout) -> dense sigmoid
        self.closed_form = isinstance(pooling, keras.layers.GlobalAveragePooling2D) and pooling.input is feature_map
        self.forward = keras.Model(model.inputs, [feature_map, pooled, model.outputs[0]], name=f"{self.name}_once")
        self.head = self._mc_head(mc_head, output, rate, pooled.shape[-1])
        # any batch size through one trace: one film in a report, a stack of them in notebooks 07 and 09
        self._forward = tf.function(lambda x: self.forward(x, training=False),
                                    input_signature=[tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32)])

    def _mc_head(self, mc_head, output, rate, width):
        if mc_head is not None:
            if tuple(mc_head.input_shape[1:]) != (width,) or mc_head.output_shape[-1] != len(self.labels):
                raise ReportError(f"{mc_head.name}: the MC head takes {mc_head.input_shape[1:]} and gives "
                                  f"{mc_head.output_shape[-1]}, but {self.name} pools {width} features into "
                                  f"{len(self.labels)} findings: it was fine-tuned for another model.")
            try:
                uncertainty.check_mc_model(mc_head)
            except ValueError as err:
                raise ReportError(str(err)) from None
            return mc_head
        dense = output.__class__.from_config(output.get_config())
        head = keras.Sequential([keras.Input((width,)),
                                 uncertainty.MCDropout(rate or DEFAULT_HEAD_DROPOUT, name="mc_dropout"),
                                 dense], name=f"{self.name}_mc_head")
        dense.set_weights(output.get_weights())
        if rate is None:
            self.notes.append(f"the head was not fine-tuned with dropout (no {side_files.MC_HEAD_SUFFIX} from notebook "
                              f"04): dropout {DEFAULT_HEAD_DROPOUT} is put before the trained head, so the spread is "
                              "indicative only")
        return head

    @classmethod
    def load(cls, model_path=None, *, samples: int | None = None, cfg=None, thresholds=None, labels=datasets.LABELS,
             seed: int | None = None) -> "ChestReporter":
        """Load a saved classifier (safe mode) and the files beside it: thresholds (required), MC head, referral, box
        sizes; T from the referral file unless given.

        Taught in 07_report.
        """
        cfg = cfg or config.load()
        model_path = Path(model_path) if model_path is not None else cfg.models_dir / models.CLASSIFIER_FILE
        try:
            model = models.load_classifier(model_path, list(labels))
        except (DataError, FileNotFoundError) as err:
            raise ReportError(str(err)) from None
        method = "given"
        try:
            if thresholds is None:
                thresholds, method = side_files.load_thresholds(model_path, labels)
            referral = side_files.load_referral(model_path)
        except DataError as err:  # a side file notebook 02 or 04 must write again
            raise ReportError(str(err)) from None
        mc_head = None
        head_path = side_files.side_file(model_path, side_files.MC_HEAD_SUFFIX)
        if head_path.is_file():
            try:
                mc_head = models.load_model(head_path)
            except DataError as err:
                raise ReportError(str(err)) from None
        try:
            box_sizes = _boxes.load_box_sizes(model_path) or None  # notebook 06 writes it; absent: no size prior
            card = model_card.read_card(model_path)  # notebook 02 writes it; absent: the report says so
        except DataError as err:
            raise ReportError(str(err)) from None
        samples = _samples_from(referral, samples)
        familiar_path = side_files.side_file(model_path, side_files.FAMILIAR_SUFFIX)
        try:
            familiar = familiarity.Familiarity.load(familiar_path) if familiar_path.is_file() else None
        except DataError as err:
            raise ReportError(str(err)) from None
        reporter = cls(model, thresholds, labels=labels, samples=samples, referral=referral,
                       mc_head=mc_head, box_sizes=box_sizes, name=model_path.name, seed=seed, card=card,
                       familiar=familiar)
        reporter.threshold_method = method
        if "0.5 for" in method:
            reporter.notes.append(f"thresholds: {method}")
        return reporter

    # ---- the steps, public so notebook 07 can show them one by one

    def features(self, images: np.ndarray):
        """One backbone pass: (last feature maps, pooled features, probabilities) for a batch of model inputs.

        Taught in 07_report.
        """
        fmap, pooled, probs = self._forward(tf.constant(np.asarray(images, np.float32)))
        return fmap.numpy(), pooled.numpy(), probs.numpy()

    def sample_head(self, pooled: np.ndarray, samples: int | None = None) -> np.ndarray:
        """T samples of the dropout head on pooled features (T, N, findings); a fixed seed gives the same draws.

        Taught in 07_report.
        """
        if self.seed is not None:
            reseed_dropout(self.head, self.seed)
        return uncertainty.mc_predict(self.head, pooled, samples=samples or self.samples)

    def grad_cam(self, image: np.ndarray, feature_map: np.ndarray, indices) -> np.ndarray:
        """Grad-CAM (of the logit) of the given findings at the model's input size, from the one forward pass when the
        head allows.

        Taught in 07_report.
        """
        indices = list(indices)
        if not indices:
            return np.zeros((0, self.size, self.size), np.float32)
        if not self.closed_form:
            batch = np.repeat(image[None], len(indices), axis=0)
            return explain.grad_cam(self.model, batch, class_index=indices, layer_name=self.layer_name)
        kernel = np.asarray(_output_layer(self.model).get_weights()[0])  # (features, findings)
        height, width = feature_map.shape[:2]
        # Grad-CAM of the logit (Selvaraju et al. 2017): d (w . mean(A) + b) / d A_ijk = w_k / (h w), the same at
        # every position, so its mean over positions is the channel weight. The probability's gradient would carry
        # p (1 - p) too, which vanishes on the most confident findings.
        weights = kernel[:, indices] / (height * width)
        cams = np.maximum(np.einsum("hwk,kc->chw", feature_map.astype(np.float32), weights.astype(np.float32)), 0)
        return explain.normalize(explain.upsample(cams, (self.size, self.size)), "Grad-CAM")

    def refer_signal(self, probabilities: np.ndarray, mean_mi: float) -> float:
        """The value the saved referral rule compares with its cut-off: its signal of the classifier, or the mean mutual
        information."""
        name = (self.referral or {}).get("signal", "mutual_information")
        if name == "mutual_information":
            return float(mean_mi)
        return float(
            _referral.signal(name, np.asarray(probabilities)[None], self.thresholds.to_numpy(), self.recalibration)[0])

    def refer_rule(self, mean_mi: float, value: float | None = None) -> tuple[bool, str]:
        """The referral decision and its stated reason: the saved signal's ``value`` (the mean mutual information by
        default).

        Taught in 07_report.
        """
        name = (self.referral or {}).get("signal", "mutual_information")
        if self.referral is not None and name != "mutual_information":
            if value is None:
                raise ReportError(f"the referral rule uses the signal {name}: pass its value (refer_signal).")
            limit, refer_at = self.referral["threshold"], self.referral.get("refer_at", float("nan"))
            refer = bool(value > limit)
            return refer, (f"{'referred' if refer else 'not referred'}: {_referral.DESCRIPTIONS[name]} is {value:.3g}, "
                           f"{'>' if refer else '<='} {limit:.3g}, the value above which notebook 04 referred the "
                           f"{refer_at:.0%} of its {self.referral.get('chosen_on', 'unrecorded')} images "
                           f"({self.referral.get('images', '?')} images) most likely to hold a wrong decision; the "
                           "same classifier that decides")
        if self.referral is None:
            return True, (f"referred: no referral threshold was calibrated for this model (notebook 04 saves it as "
                          f"{side_files.REFERRAL_SUFFIX} beside the model), so every image is referred by default; "
                          f"mean mutual information {mean_mi:.3g} nats")
        limit, refer_at = self.referral["threshold"], self.referral.get("refer_at", float("nan"))
        refer = bool(mean_mi > limit)
        verdict = "referred" if refer else "not referred"
        sign = ">" if refer else "<="
        split = self.referral.get("chosen_on", "unrecorded")
        images = self.referral.get("images")
        return refer, (f"{verdict}: mean mutual information over the {len(self.labels)} findings {mean_mi:.3g} nats "
                       f"{sign} {limit:.3g}, the value above which notebook 04 referred the most uncertain "
                       f"{refer_at:.0%} of its {split} images ({images if images is not None else '?'} images, "
                       f"T={self.referral.get('samples', '?')})")

    def report(self, path_or_array, *, source_name: str | None = None, keep_identity: bool = False,
               allow_non_chest: bool = False, show_burned_in: bool = False) -> ChestReport:
        """Report one chest radiograph (PNG, JPEG or DICOM path, or an HxW float image in [0, 1]).

        ``allow_non_chest=True``: a DICOM whose header says another body part or a lateral view is reported, with
        the warning in ``details["warnings"]`` (refused by default). A DICOM with BurnedInAnnotation YES (text in
        the pixels, perhaps a name) is analysed, but its pixels are not shown in the figure, the HTML or the page
        unless ``show_burned_in=True``: the heatmaps and boxes are drawn on a blank image.

        Taught in 07_report.
        """
        item = read_chest(path_or_array, self.size, source_name=source_name, keep_identity=keep_identity,
                          allow_non_chest=allow_non_chest)
        hidden = bool(item.details.get("burned_in_annotation")) and not show_burned_in
        if hidden:
            item.display = np.zeros_like(item.display)
        fmap, pooled, probs = self.features(item.model[None])
        draws = self.sample_head(pooled)[:, 0]
        parts = uncertainty.decompose(draws)
        probability = probs[0].astype(float)
        table = pd.DataFrame({
            "probability": probability, "threshold": self.thresholds.to_numpy(),
            "present": probability >= self.thresholds.to_numpy(), "mean": parts.mean,
            "spread": draws.std(axis=0), "mutual_information": parts.epistemic,
        }, index=pd.Index(self.labels, name="finding"))
        present = [i for i, flag in enumerate(table["present"]) if flag]
        with warnings.catch_warnings():  # a flat map is said in the notes, with the finding's name
            warnings.filterwarnings("ignore", message="Grad-CAM of image", category=UserWarning)
            cams = self.grad_cam(item.model, fmap[0], present)
        notes = list(self.notes)
        if hidden:
            notes.append("pixels not shown: the DICOM header says BurnedInAnnotation YES (text in the image may "
                         "identify the patient); the findings were computed on them. Show them with --show-burned-in")
        height, width = item.display.shape
        heatmaps, found = {}, {}
        for cam, index in zip(cams, present):
            label = self.labels[index]
            if cam.max() <= 0:
                notes.append(f"{label}: the Grad-CAM map is flat (no positive evidence at {self.layer_name}), "
                             "so no box")
            heatmaps[label] = np.clip(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
            candidates = _boxes.heatmap_to_boxes(cam, (width, height), threshold=BOX_THRESHOLD)
            if label in self.box_sizes:
                w, h = self.box_sizes[label]
                chosen = _boxes.choose_box(candidates, "deep_media", mean_size=(w * width, h * height))
            else:
                chosen = _boxes.choose_box(candidates, "largest")
            if chosen is not None:
                found[label] = tuple(float(chosen[c]) for c in ("x", "y", "w", "h"))
        refer, reason = self.refer_rule(float(parts.epistemic.mean()),
                                        self.refer_signal(probability, parts.epistemic.mean()))
        unfamiliar = None
        if self.familiar is not None:
            distance = float(self.familiar.distance(pooled)[0])
            outside = bool(distance > self.familiar.cutoff)
            item.details["familiarity"] = {"distance": distance, "cutoff": self.familiar.cutoff, "outside": outside}
            if outside:
                unfamiliar = (f"{familiarity.OUTSIDE}: the image's features lie at a distance of {distance:.4g} from "
                              f"the training films, above the cut-off {self.familiar.cutoff:.4g} "
                              f"({self.familiar.meta.get('quantile', familiarity.QUANTILE):.0%} of the validation "
                              "films lie below it). Its findings are not to be trusted; it is referred.")
                refer, reason = True, (f"referred: {familiarity.OUTSIDE} (the findings below are shown, "
                                       f"not vouched for); {reason}")
        else:
            notes.append(f"no unfamiliar-input check: notebook 04 saves it as {side_files.FAMILIAR_SUFFIX} "
                         "beside the model")
        if self.referral is not None and self.referral.get("samples") not in (None, self.samples):
            notes.append(f"the referral threshold was measured with T={self.referral['samples']} samples, this report "
                         f"uses T={self.samples}: the mutual information is biased low for small T")
        if self.box_sizes:
            notes.append("boxes: the Deep MedIA heuristic (closest to the finding's mean box saved by notebook 06, "
                         "then hottest)")
        elif present:
            notes.append("boxes: the largest component above half the heatmap's maximum (no mean box sizes saved "
                         "beside the model: notebook 06 writes them when it has boxes to fit them on)")
        return ChestReport(item.source, item.display, table, refer, reason, heatmaps, found, self.samples, self.name,
                           notes, item.details, item.identity if keep_identity else None,
                           card_line=model_card.summary_line(self.card,
                                                             real_input=model_card.is_real_input(path_or_array)),
                           model_card=self.card, unfamiliar=unfamiliar)


# --------------------------------------------------------------------------------------------
# The fundus report
# --------------------------------------------------------------------------------------------


@dataclass
class FundusReport:
    """The report of one fundus photograph: vessel map (MC mean), epistemic map, refer flag and reason.

    Taught in 07_report.
    """

    source: str
    image: np.ndarray = field(repr=False)
    vessels: np.ndarray = field(repr=False)
    epistemic: np.ndarray = field(repr=False)
    fov: np.ndarray = field(repr=False)
    findings: pd.DataFrame
    refer: bool
    refer_reason: str
    samples: int
    model: str
    notes: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    kind: str = "fundus"
    card_line: str = model_card.NO_CARD_LINE  # model_card.summary_line: what it was trained on, for this input
    # the card beside the U-Net (helpers.model_card), None: none
    model_card: dict | None = field(default=None, repr=False)

    @property
    def heatmaps(self) -> dict:
        """The maps shown: vessel probability and epistemic uncertainty (scaled to [0, 1]).

        Taught in 07_report.
        """
        top = float(self.epistemic.max()) or 1.0
        return {"vessels": self.vessels, "epistemic": self.epistemic / top}

    boxes: dict = field(default_factory=dict)


class FundusReporter:
    """The vessel U-Net of notebook 03 under MC dropout, with notebook 04's in-distribution epistemic level.

    Taught in 07_report.
    """

    def __init__(self, model: keras.Model, *, samples: int = 20, referral: dict | None = None, name: str | None = None,
                 side: int = FUNDUS_SIDE, batch_size: int = 4, card: dict | None = None, settings: dict | None = None):
        self.card = card  # the model card beside the saved U-Net (helpers.model_card), None: none
        self.settings = {**side_files.FUNDUS_DEFAULTS, **(settings or {})}  # grey method and CLAHE of notebook 03
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
            raise ReportError(f"samples must be a whole number >= 2 (a spread needs two draws), not {samples!r}.")
        try:
            self.mc_model = uncertainty.with_mc_dropout(model)
        except ValueError as err:
            raise ReportError(str(err)) from None
        self.samples, self.referral, self.name, self.side, self.batch_size = (int(samples), referral,
                                                                              name or model.name, side, batch_size)

    @classmethod
    def load(cls, model_path=None, *, samples: int | None = None, cfg=None) -> "FundusReporter":
        """Load notebook 03's U-Net (safe mode) and notebook 04's fundus referral level beside it.

        Taught in 07_report.
        """
        cfg = cfg or config.load()
        model_path = Path(model_path) if model_path is not None else cfg.models_dir / models.UNET_FILE
        try:
            model = models.load_model(model_path, hint="Run notebook 03 (it saves the U-Net) or check the path.")
            card = model_card.read_card(model_path)  # notebook 03 writes it; absent: the report says so
            referral = side_files.load_referral(model_path)
            settings = side_files.load_settings(model_path)  # how notebook 03 prepared its photographs
        except (DataError, FileNotFoundError) as err:
            raise ReportError(str(err)) from None
        return cls(model, samples=_samples_from(referral, samples), referral=referral, name=model_path.name, card=card,
                   settings=settings)

    def read(self, path_or_array, source_name: str | None = None,
             keep_identity: bool = False) -> tuple[np.ndarray, str]:
        """A fundus photograph (PNG/JPEG path or HxWx3 array in [0, 1]) resized so its larger side is ``side``.

        Taught in 07_report.
        """
        if isinstance(path_or_array, (str, Path)):
            path = Path(path_or_array)
            source = source_name or (path.name if keep_identity or not path.is_file() else pseudonym(path))
            if path.is_file() and _is_dicom(path):
                raise ReportError(f"{path}: a DICOM file; the fundus report reads PNG or JPEG photographs.")
            try:
                rgb = preprocessing.read_image(path, channels=3)
            except DataError as err:
                raise ReportError(str(err)) from None
        else:
            source = source_name or "photograph"
            rgb = errors.check_finite(path_or_array, source).astype(np.float32)
            if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.min() < 0 or rgb.max() > 1:
                raise ReportError(f"{source}: expected an RGB photograph HxWx3 in [0, 1], got shape {rgb.shape} "
                                  f"with values {rgb.min():g} to {rgb.max():g}.")
        scale = self.side / max(rgb.shape[:2])
        size = (max(int(round(rgb.shape[1] * scale)), 16), max(int(round(rgb.shape[0] * scale)), 16))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return np.clip(rgb, 0, 1), source

    def report(self, path_or_array, *, source_name: str | None = None, keep_identity: bool = False) -> FundusReport:
        """Report one fundus photograph: MC-dropout vessel map, epistemic map inside the field of view, refer flag.

        Taught in 07_report.
        """
        rgb, source = self.read(path_or_array, source_name, keep_identity)
        # as notebook 03 did
        grey = preprocessing.clahe(preprocessing.fundus_to_grey(rgb, self.settings["grey_method"]),
                                   self.settings["clahe_clip"], self.settings["clahe_tile"])
        padded, _ = preprocessing.pad_to_multiple(grey[..., None], 16)
        height, width = grey.shape
        draws = uncertainty.mc_predict(self.mc_model, padded[None], samples=self.samples, batch_size=self.batch_size)
        parts = uncertainty.decompose(draws[:, 0, :height, :width, 0])
        fov = rgb @ np.array(preprocessing.LUMA, np.float32) > 0.1  # the bright disc of the photograph
        level = float(parts.epistemic[fov].mean()) if fov.any() else float(parts.epistemic.mean())
        if self.referral is None:
            refer, reason = True, (f"referred: no in-distribution level was saved for this U-Net (notebook 04 saves "
                                   f"{side_files.REFERRAL_SUFFIX} beside it), so every photograph is referred by "
                                   f"default; mean epistemic inside the field of view {level:.4f} nats")
        else:
            limit = FUNDUS_REFER_FACTOR * self.referral["threshold"]
            refer = level > limit
            reason = (f"{'referred' if refer else 'not referred'}: mean epistemic inside the field of view {level:.4f} "
                      f"nats {'>' if refer else '<='} {limit:.4f}, {FUNDUS_REFER_FACTOR:g} times notebook 04's mean on "
                      "its validation photographs")
        table = pd.DataFrame({"vessel_fraction": [float((parts.mean[fov] >= 0.5).mean()) if fov.any() else 0.0],
                              "mean_epistemic": [level],
                              "mean_aleatoric": [float(parts.aleatoric[fov].mean()) if fov.any() else 0.0]},
                             index=pd.Index(["field of view"], name="region"))
        return FundusReport(source, rgb, parts.mean.astype(np.float32), parts.epistemic.astype(np.float32), fov, table,
                            bool(refer), reason, self.samples, self.name, [], {"size": [height, width]},
                            card_line=model_card.summary_line(self.card,
                                                              real_input=model_card.is_real_input(path_or_array)),
                            model_card=self.card)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.report IMAGE... --model FILE --out DIR``: NAME.png, NAME.html, NAME.json per image; 1 if any
    failed.

    Taught in 07_report.
    """
    from tqdm import tqdm

    parser = argparse.ArgumentParser(prog="python -m helpers.report", description=main.__doc__)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG or DICOM files")
    parser.add_argument("--model", help="the saved .keras model (default: the profile's models folder)")
    parser.add_argument("--out", required=True, help="folder for NAME.png, NAME.html and NAME.json")
    parser.add_argument("--kind", choices=("chest", "fundus"), default="chest")
    parser.add_argument("--samples", type=int, default=None,
                        help="T, dropout samples per image (default: the T the referral was calibrated with, "
                             f"else {DEFAULT_SAMPLES})")
    parser.add_argument("--keep-identity", action="store_true",
                        help="name the reports and messages by the input file names and write the DICOM patient name "
                             "and ID into the reports (by default: a pseudonym from each file's bytes, no identity)")
    parser.add_argument("--show-burned-in", action="store_true",
                        help="show the pixels of a DICOM whose header says BurnedInAnnotation YES (hidden by default)")
    parser.add_argument("--allow-non-chest", action="store_true",
                        help="report a DICOM whose header says another body part or a lateral view (refused by "
                             "default), with the warning in the report")
    args = parser.parse_args(argv)
    try:
        reporter = (ChestReporter if args.kind == "chest" else FundusReporter).load(args.model, samples=args.samples)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed, used = 0, set()
    total = len(args.images)
    for number, name in enumerate(tqdm(args.images, desc="report", unit="image", file=sys.stderr), start=1):
        path = Path(name)
        shown = str(path) if args.keep_identity else f"input {number} of {total}"
        if not args.keep_identity and path.is_file():
            shown += f" ({pseudonym(path)})"
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = reporter.report(path, keep_identity=args.keep_identity,
                                         **({"allow_non_chest": args.allow_non_chest,
                                             "show_burned_in": args.show_burned_in}
                                            if args.kind == "chest" else {}))
        except DataError as err:
            failed += 1
            message = str(err) if args.keep_identity else _said_about(str(err), path, "this file")
            tqdm.write(f"{shown}: {' '.join(message.split())}", file=sys.stderr)
            continue
        for warning in caught:
            if issubclass(warning.category, UserWarning):
                message = (str(warning.message) if args.keep_identity
                           else _said_about(str(warning.message), path, "this file"))
                tqdm.write(f"{shown}: warning: {' '.join(message.split())}", file=sys.stderr)
        stem_name = path.stem if args.keep_identity else result.source
        candidate, k = stem_name, 1
        while candidate in used:  # two inputs with one name (IM0001.dcm in every study folder): never overwrite
            k += 1
            candidate = f"{stem_name}-{k}"
        used.add(candidate)
        stem = out / candidate
        figure = figure_png(result)  # drawn once: the PNG file and the HTML page show the same bytes
        stem.with_suffix(".png").write_bytes(figure)
        stem.with_suffix(".html").write_text(to_html(result, figure))
        stem.with_suffix(".json").write_text(to_json(result))
    print(f"{len(args.images) - failed} of {len(args.images)} image(s) reported in {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
