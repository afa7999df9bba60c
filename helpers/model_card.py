"""The model card: what a saved model was trained on and how it was judged, as JSON beside the ``.keras`` file.

The notebook that saves a model writes its card (``densenet121_nih.keras`` -> ``densenet121_nih.card.json``):
the training data (``synthetic`` or ``real``, with its source, its copy, images and patients), the profile, the
split, the image size, the labels, the per-finding validation and test AUROC with their patient-level
bootstrap intervals, how the thresholds were chosen, and the versions and date. Later notebooks add what they
measure with ``update_card`` (notebook 04 the referral rule, which is also the cut-off above which an unfamiliar
input is referred; notebook 06 the box sizes), without losing what was there.

Every report carries the card (``helpers.report``): the JSON holds it under ``model_card`` with
``training_data`` the word ``synthetic``, ``real`` or ``unknown`` (the details under ``training_data_details``),
and the HTML page, the figure and the upload page show ``summary_line``. Which inputs count as real radiographs:
any image read from a file (PNG, JPEG or DICOM; a clinician's upload is a file) is treated as real, an array
(or a synthetic image passed as one) is not, see ``is_real_input``. A synthetic-trained model applied to a real
input says ``trained on synthetic images: not for clinical use``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import math
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from helpers import side_files
from helpers.errors import DataError

CARD_SUFFIX = side_files.CARD_SUFFIX  # beside the model, named as every side file (helpers.side_files)
KINDS = ("synthetic", "real")
NOT_FOR_CLINICAL_USE = "trained on synthetic images: not for clinical use"
NO_CARD_LINE = "no model card beside the model: what it was trained on is unknown"
_REQUIRED = ("kind", "source", "images", "patients")
_PACKAGE = "medxai-helpers"


def card_path(model_path) -> Path:
    """The card beside a saved model (densenet121_nih.keras -> densenet121_nih.card.json).

    Taught in 02_densenet_transfer.
    """
    return side_files.side_file(model_path, CARD_SUFFIX)


def _plain(value: Any, what: str):
    """``value`` as JSON values: numpy numbers to Python ones, NaN to None, tables to dicts; else TypeError naming
    ``what``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, pd.DataFrame):
        return {str(k): _plain(row, f"{what}[{k!r}]") for k, row in value.to_dict(orient="index").items()}
    if isinstance(value, (pd.Series, dict)):
        return {str(k): _plain(v, f"{what}[{k!r}]") for k, v in dict(value).items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v, f"{what}[{i}]") for i, v in enumerate(list(value))]
    raise TypeError(f"model card {what}: a {type(value).__name__} cannot be written as JSON; pass numbers, text, "
                    "lists, dicts or a pandas table.")


def _check_training_data(training_data) -> dict:
    if not isinstance(training_data, dict):
        raise TypeError(f"training_data must be a dict with {', '.join(_REQUIRED)}, not {type(training_data).__name__} "
                        "(e.g. {'kind': 'synthetic', 'source': 'helpers.synthetic, lab profile', 'images': 938, "
                        "'patients': 300}).")
    missing = [key for key in _REQUIRED if key not in training_data]
    if missing:
        raise ValueError(f"training_data has no {', '.join(missing)}: a card says what kind of data (synthetic or "
                         "real), where it came from, and how many images and patients (None when not known).")
    if training_data["kind"] not in KINDS:
        raise ValueError(f"training_data kind {training_data['kind']!r}: say 'synthetic' or 'real'.")
    for key in ("images", "patients"):
        count = training_data[key]
        if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0):
            raise ValueError(f"training_data {key} must be a whole number >= 0 or None, not {count!r}.")
    return _plain(training_data, "training_data")


def _check_metrics(table, labels: list[str]) -> dict | None:
    if table is None:
        return None
    if not isinstance(table, (pd.DataFrame, dict)):
        raise TypeError("metrics must be a pandas DataFrame indexed by finding, "
                        f"or a dict finding -> {{column: value}}, not {type(table).__name__}.")
    rows = _plain(table, "metrics")
    unknown = [name for name in rows if name not in labels]
    if unknown:
        raise ValueError(f"metrics for {', '.join(unknown)}, which are not among the model's labels "
                         f"({', '.join(labels)}): the table belongs to another label set.")
    bad = [name for name, row in rows.items() if not isinstance(row, dict)]
    if bad:
        raise ValueError(f"metrics row {bad[0]!r} is not a mapping of column to value (e.g. {{'test_auroc': 0.81}}).")
    return rows


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for name in ("tensorflow", "keras", "numpy"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except ImportError:
                module = None
        found[name] = getattr(module, "__version__", None)
    try:
        found["helpers"] = importlib.metadata.version(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was not installed
        found["helpers"] = getattr(sys.modules.get("helpers"), "__version__", None)
    return found


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(path: Path, card: dict) -> Path:
    path.write_text(json.dumps(card, indent=1, allow_nan=False))
    return path


def write_card(model_path, *, training_data: dict, profile: str, split: str, image_size, labels: Sequence[str],
               metrics=None, thresholds=None, referral=None, notes=None, **extra) -> Path:
    """Write the model card beside a saved model: training data, profile, split, size, AUROC, thresholds, versions,
    date.

    ``training_data``: ``{"kind": "synthetic" | "real", "source": ..., "images": N, "patients": M}`` (and for real
    data the copy read, e.g. its folder). ``metrics``: per finding, e.g. ``metrics_table(val, test)``.
    ``thresholds``: how they were chosen (a method name or a dict). ``extra``: any further JSON-ready facts
    (``architecture="DenseNet121"`` names the model in the summary line).

    Taught in 02_densenet_transfer.
    """
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError("labels is empty: a card lists the findings (or classes) the model predicts.")
    if isinstance(thresholds, str):
        thresholds = {"method": thresholds}
    if isinstance(notes, str):
        notes = [notes]
    card = {"model": Path(model_path).name, "training_data": _check_training_data(training_data),
            "profile": str(profile), "split": str(split), "image_size": _plain(image_size, "image_size"),
            "labels": labels, "metrics": _check_metrics(metrics, labels),
            "thresholds": _plain(thresholds, "thresholds"), "referral": _plain(referral, "referral"),
            "notes": _plain(list(notes or []), "notes")}
    if isinstance(metrics, pd.DataFrame) and metrics.attrs:
        card["metrics_intervals"] = _plain(dict(metrics.attrs), "metrics.attrs")
    for key, value in extra.items():
        card[key] = _plain(value, key)
    card["versions"], card["date"] = _versions(), _now()
    return _write(card_path(model_path), card)


def read_card(model_path) -> dict | None:
    """The model card beside a saved model, or None when there is none; a malformed card raises DataError naming it.

    Taught in 07_report.
    """
    path = card_path(model_path)
    if not path.is_file():
        return None
    hint = ("Run the notebook that saved the model again (02 for the classifier, 03 for the U-Net) to rewrite it, "
            "or delete the card, and the report will say that the training data is unknown.")
    try:
        card = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a model card, the JSON does not parse ({err}). {hint}") from None
    if not isinstance(card, dict):
        raise DataError(f"{path}: not a model card, it holds a {type(card).__name__} instead of an object. {hint}")
    training = card.get("training_data")
    if not isinstance(training, dict) or training.get("kind") not in KINDS:
        found = training.get("kind") if isinstance(training, dict) else training
        raise DataError(f"{path}: the card's training_data kind is {found!r}, not 'synthetic' or 'real'. {hint}")
    return card


def update_card(model_path, **fields) -> Path:
    """Add later facts to the card (notebook 04 the referral rule, 06 the box sizes), keeping the earlier ones.

    A field that is a dict in both the card and the update is merged key by key; any other replaces the old value.

    Taught in 04_mc_dropout_uncertainty.
    """
    card = read_card(model_path)
    if card is None:
        raise DataError(f"{card_path(model_path)}: no model card to update beside {Path(model_path).name}. Run the "
                        "notebook that saved the model (02 for the classifier, 03 for the U-Net): it writes the card.")
    for key, value in fields.items():
        value = _plain(value, key)
        if key == "training_data":
            value = _check_training_data({**card["training_data"], **value})
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    card["updated"] = _now()
    return _write(card_path(model_path), card)


def metrics_table(validation: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Per finding: validation and test AUROC with their interval (two ``metrics.bootstrap_auc`` tables) for the card.

    Taught in 02_densenet_transfer.
    """
    columns = {"AUROC": "auroc", "low": "low", "high": "high", "positives": "positives"}
    parts = []
    for name, table in (("val", validation), ("test", test)):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ValueError(f"{name} table has no {', '.join(missing)} column: "
                             "pass what metrics.bootstrap_auc returns.")
        parts.append(table[list(columns)].rename(columns={c: f"{name}_{v}" for c, v in columns.items()}))
    joined = parts[0].join(parts[1], how="outer")
    joined.attrs = {f"{name}_{k}": v for name, table in (("val", validation), ("test", test))
                    for k, v in table.attrs.items()}
    return joined


def training_kind(card: dict | None) -> str:
    """What the model was trained on: "synthetic", "real", or "unknown" without a card.

    Taught in 07_report.
    """
    if card is None:
        return "unknown"
    return str(card["training_data"]["kind"])


def is_real_input(path_or_array) -> bool:
    """Whether a report's input counts as a real radiograph: any file (PNG, JPEG, DICOM) yes, an array no.

    Taught in 07_report.
    """
    return isinstance(path_or_array, (str, Path))


def summary_line(card: dict | None, *, real_input: bool) -> str:
    """One line on what the model was trained on and how its thresholds were chosen, with the warning a real input
    needs.

    Taught in 07_report.
    """
    if card is None:
        return NO_CARD_LINE
    data = card["training_data"]
    name = card.get("architecture") or card.get("model") or "the model"
    kind = data["kind"]
    facts = [f"{card.get('profile', '?')} profile"]
    if data.get("images") is not None:
        facts.append(f"{data['images']} images")
    if card.get("split"):
        facts.append(str(card["split"]))
    source = "" if kind == "synthetic" or not data.get("source") else f" from {data['source']}"
    line = f"model: {name} trained on {kind} images{source} ({', '.join(facts)})"
    thresholds = card.get("thresholds") or {}
    if thresholds:
        method = f" by {thresholds['method']}" if thresholds.get("method") else ""
        line += f"; thresholds chosen on {thresholds.get('chosen_on', 'validation')}{method}"
    if kind == "synthetic" and real_input:
        line += f"; {NOT_FOR_CLINICAL_USE}"
    return line


def as_report(card: dict | None) -> dict:
    """The card as a report's JSON holds it: ``training_data`` the word (synthetic, real, unknown), its details beside.

    Taught in 07_report.
    """
    if card is None:
        return {"training_data": "unknown", "training_data_details": None}
    out = dict(card)
    out["training_data"] = training_kind(card)
    out["training_data_details"] = card["training_data"]
    return out
