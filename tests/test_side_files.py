"""helpers.side_files: the names of the files beside a model, and the settings notebook 03 saves for the fundus
report."""

import json

import keras
import numpy as np
import pytest

from helpers import models, preprocessing, report, side_files


def test_every_side_file_is_named_by_one_rule():
    assert len(set(side_files.SUFFIXES)) == len(side_files.SUFFIXES)
    names = {side_files.side_file("models/densenet121_nih.keras", s).name for s in side_files.SUFFIXES}
    assert "densenet121_nih.thresholds.json" in names and "densenet121_nih.card.json" in names
    assert all(name.startswith("densenet121_nih.") for name in names)


def test_settings_round_trip_defaults_and_bad_files(tmp_path):
    path = tmp_path / "unet_drive.keras"
    assert side_files.load_settings(path) == {**side_files.FUNDUS_DEFAULTS, "saved": False}
    with pytest.raises(ValueError, match="needs clahe_tile"):
        side_files.save_settings(path, grey_method="luma", clahe_clip=3.0)
    written = side_files.save_settings(path, grey_method="luma", clahe_clip=3.0, clahe_tile=4, threshold=0.42)
    assert written == tmp_path / "unet_drive.settings.json"
    assert side_files.load_settings(path) == {"grey_method": "luma", "clahe_clip": 3.0, "clahe_tile": 4,
                                              "threshold": 0.42, "saved": True}
    written.write_text("[1, 2]")
    with pytest.raises(side_files.SideFileError,
                       match=r"unet_drive\.settings\.json: not a settings file of notebook 03"):
        side_files.load_settings(path)


def test_the_fundus_report_prepares_photographs_as_the_saved_settings_say(tmp_path, monkeypatch):
    keras.utils.set_random_seed(1)
    path = tmp_path / "unet_drive.keras"
    models.unet(base_filters=2, depth=1, dropout_rate=0.2).save(path)
    side_files.save_settings(path, grey_method="luma", clahe_clip=3.0, clahe_tile=4)
    seen = []
    real_grey, real_clahe = preprocessing.fundus_to_grey, preprocessing.clahe
    monkeypatch.setattr(preprocessing, "fundus_to_grey",
                        lambda rgb, method="green": seen.append(method) or real_grey(rgb, method))
    monkeypatch.setattr(preprocessing, "clahe",
                        lambda g, clip_limit=2.0, tile=8: (seen.append((clip_limit, tile))
                                                           or real_clahe(g, clip_limit, tile)))
    reporter = report.FundusReporter.load(path, samples=2)
    reporter.side = 32
    reporter.report(np.full((30, 30, 3), 0.5, np.float32))
    assert seen == ["luma", (3.0, 4)]
    side_files.side_file(path, side_files.SETTINGS_SUFFIX).unlink()  # a U-Net without settings: notebook 03's defaults
    seen.clear()
    report.FundusReporter.load(path, samples=2).report(np.full((30, 30, 3), 0.5, np.float32))
    assert seen == ["green", (2.0, 8)]


def test_a_broken_thresholds_file_is_a_report_error_naming_notebook_02(tmp_path):
    path = tmp_path / "densenet121_nih.keras"
    side_files.side_file(path, side_files.THRESHOLDS_SUFFIX).write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(side_files.SideFileError, match="not a thresholds file of notebook 02"):
        side_files.load_thresholds(path, ["a"])
