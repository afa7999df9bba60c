"""The model card beside a saved model: written, read back, updated without loss, refused when malformed, and
carried by every report (JSON, HTML, figure, upload page) with the warning a synthetic-trained model needs."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import datasets, metrics, model_card, models, report, report_render, side_files
from helpers.errors import DataError

LABELS = list(datasets.LABELS)
SIZE = 32
SYNTHETIC = {"kind": "synthetic", "source": "helpers.synthetic (NIH ChestX-ray14 layout)", "images": 938,
             "patients": 300}


def _tiny() -> keras.Model:
    """A flat conv + ReLU + global average pooling + 14 sigmoids classifier, built in a second."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(14, activation="sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_chest")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny classifier saved with its thresholds, as notebook 02 leaves it (the card is written per test)."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    _tiny().save(path)
    side_files.save_thresholds(path, pd.Series(0.0, index=LABELS), method="youden")  # every finding present
    return path


@pytest.fixture
def film(tmp_path):
    """A smooth grey radiograph-like image, as an array and as a PNG file."""
    from PIL import Image

    yy, xx = np.mgrid[:96, :96]
    image = (0.3 + 0.6 * np.exp(-((yy - 30) ** 2 + (xx - 60) ** 2) / 200.0)).astype(np.float32)
    path = tmp_path / "film.png"
    Image.fromarray((image * 255).astype(np.uint8)).save(path)
    return image, path


def _auc_tables():
    rng = np.random.default_rng(0)
    y = (rng.random((120, 3)) < 0.3).astype(float)
    y[:, 2] = 0
    y[:2, 2] = 1  # a finding with two positive images: its interval is refused (nan) by the bootstrap
    scores = np.clip(y * 0.3 + rng.random((120, 3)) * 0.7, 0, 1)
    groups = np.repeat(np.arange(60), 2)
    with pytest.warns(UserWarning, match="fewer than min_valid"):
        val = metrics.bootstrap_auc(y[:60], scores[:60], LABELS[:3], samples=50, groups=groups[:60])
        test = metrics.bootstrap_auc(y[60:], scores[60:], LABELS[:3], samples=50, groups=groups[60:])
    return val, test


def test_write_read_update_round_trip(tmp_path):
    path = tmp_path / "densenet121_nih.keras"
    val, test = _auc_tables()
    table = model_card.metrics_table(val, test)
    written = model_card.write_card(path, training_data=SYNTHETIC, profile="lab", split="official NIH lists",
                                    image_size=np.int64(128), labels=LABELS, metrics=table,
                                    thresholds="youden", architecture="DenseNet121")
    assert written == tmp_path / "densenet121_nih.card.json" == side_files.side_file(path, model_card.CARD_SUFFIX)
    card = model_card.read_card(path)
    assert card["training_data"] == SYNTHETIC and card["image_size"] == 128 and card["labels"] == LABELS
    for label in LABELS[:3]:
        for split, table in (("val", val), ("test", test)):
            for short, column in (("auroc", "AUROC"), ("low", "low"), ("high", "high")):
                expected = table.loc[label, column]
                assert card["metrics"][label][f"{split}_{short}"] == (None if np.isnan(expected)
                                                                      else pytest.approx(expected))
    assert card["metrics"][LABELS[2]]["test_low"] is None, "a refused (nan) interval is written as null, not NaN"
    assert card["metrics_intervals"]["test_resampled"] == "patients"
    assert (set(card["versions"]) >= {"python", "tensorflow", "keras", "helpers"}
            and card["versions"]["keras"] == keras.__version__)
    assert card["date"].endswith("+00:00")

    model_card.update_card(path, referral={"threshold": 0.01, "refer_at": 0.2})
    model_card.update_card(path, referral={"samples": 30}, box_sizes={"Mass": [0.1, 0.2]})
    again = model_card.read_card(path)
    assert again["referral"] == {"threshold": 0.01, "refer_at": 0.2,
                                 "samples": 30}, "a dict field is merged, not replaced"
    assert again["box_sizes"] == {"Mass": [0.1, 0.2]}
    assert again["metrics"] == card["metrics"] and again["date"] == card["date"] and "updated" in again


def test_write_card_refuses_what_a_card_cannot_say(tmp_path):
    path = tmp_path / "m.keras"
    common = dict(profile="lab", split="s", image_size=64, labels=LABELS)
    with pytest.raises(ValueError, match="say 'synthetic' or 'real'"):
        model_card.write_card(path, training_data={**SYNTHETIC, "kind": "simulated"}, **common)
    with pytest.raises(ValueError, match="training_data has no patients"):
        model_card.write_card(path, training_data={"kind": "real", "source": "NIH", "images": 5}, **common)
    with pytest.raises(ValueError, match="Pneumonitis"):
        model_card.write_card(path, training_data=SYNTHETIC, metrics={"Pneumonitis": {"test_auroc": 0.7}}, **common)
    with pytest.raises(TypeError, match="model card figure"):
        model_card.write_card(path, training_data=SYNTHETIC, figure=object(), **common)
    assert not model_card.card_path(path).exists(), "nothing written when the card is refused"
    with pytest.raises(DataError, match="no model card to update.*Run the notebook"):
        model_card.update_card(path, referral={"threshold": 0.1})


def test_malformed_card_names_the_file(saved):
    card = model_card.card_path(saved)
    try:
        card.write_text("{not json")
        with pytest.raises(DataError, match=f"{card.name}.*does not parse"):
            model_card.read_card(saved)
        with pytest.raises(report.ReportError, match=card.name):
            report.ChestReporter.load(saved, samples=2)
        card.write_text(json.dumps({"training_data": {"kind": "simulated"}}))
        with pytest.raises(DataError, match=f"{card.name}.*'simulated'.*Run the notebook"):
            model_card.read_card(saved)
    finally:
        card.unlink()


def _write(saved, kind: str):
    data = SYNTHETIC if kind == "synthetic" else {"kind": "real", "source": "NIH ChestX-ray14", "copy": "/data/nih",
                                                  "images": 78468, "patients": 22000}
    model_card.write_card(saved, training_data=data, profile="lab" if kind == "synthetic" else "full",
                          split="official NIH lists", image_size=SIZE, labels=LABELS,
                          thresholds={"method": "youden", "chosen_on": "validation"}, architecture="DenseNet121")


def test_synthetic_card_on_a_file_says_not_for_clinical_use(saved, film):
    from app.upload import answer_html

    image, path = film
    _write(saved, "synthetic")
    try:
        reporter = report.ChestReporter.load(saved, samples=2)
    finally:
        model_card.card_path(saved).unlink()
    result = reporter.report(path)
    payload = json.loads(report.to_json(result))
    assert payload["model_card"]["training_data"] == "synthetic"
    assert payload["model_card"]["training_data_details"]["images"] == 938
    line = payload["model_card"]["line"]
    assert (line == result.card_line
            and line.startswith("model: DenseNet121 trained on synthetic images (lab profile, 938 images"))
    assert "thresholds chosen on validation" in line and line.endswith(model_card.NOT_FOR_CLINICAL_USE)
    page = report.to_html(result)
    assert "not for clinical use" in page and page.index("not for clinical use") < page.index("<img"), "near the top"
    texts = [t for t in report_render._figure(result).texts if "not for clinical use" in " ".join(t.get_text().split())]
    assert len(texts) == 1 and texts[0].get_fontsize() >= 8
    assert "not for clinical use" in answer_html(result, b"png", report.to_json(result))
    # an array (a synthetic image in a notebook) is not a real radiograph: the card, but no warning
    from_array = reporter.report(image)
    assert from_array.model_card["training_data"]["kind"] == "synthetic" and "clinical" not in from_array.card_line


def test_real_card_and_no_card(saved, film):
    _, path = film
    _write(saved, "real")
    try:
        real = report.ChestReporter.load(saved, samples=2).report(path)
    finally:
        model_card.card_path(saved).unlink()
    assert json.loads(report.to_json(real))["model_card"]["training_data"] == "real"
    assert ("trained on real images from NIH ChestX-ray14 (full profile" in real.card_line
            and "clinical" not in real.card_line)
    bare = report.ChestReporter.load(saved, samples=2).report(path)
    payload = json.loads(report.to_json(bare))
    assert bare.model_card is None and payload["model_card"]["training_data"] == "unknown"
    assert payload["model_card"]["line"] == model_card.NO_CARD_LINE and "trained on is unknown" in report.to_html(bare)


def test_fundus_reporter_reads_the_card_beside_the_unet(tmp_path):
    keras.utils.set_random_seed(1)
    path = tmp_path / "unet_drive.keras"
    models.unet(base_filters=4, depth=2, dropout_rate=0.2).save(path)
    model_card.write_card(path, training_data={"kind": "synthetic", "source": "helpers.synthetic (DRIVE layout)",
                                               "images": 16, "patients": None},
                          profile="smoke", split="DRIVE test set", image_size={"training_patch": 48}, labels=["vessel"],
                          architecture="U-Net")
    reporter = report.FundusReporter.load(path, samples=2)
    reporter.side = 48
    photo = tmp_path / "eye.png"
    from PIL import Image

    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 200 + 30).astype(np.uint8)).save(photo)
    result = reporter.report(photo)
    assert json.loads(report.to_json(result))["model_card"]["training_data"] == "synthetic"
    assert result.card_line.startswith("model: U-Net trained on synthetic images (smoke profile, 16 images")
    assert result.card_line.endswith(model_card.NOT_FOR_CLINICAL_USE)
