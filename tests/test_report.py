"""The report: decisions at the thresholds, boxes and heatmaps only for present findings, head-only MC against the
whole model, Grad-CAM in closed form against explain.grad_cam, the renderers and the command line."""

from __future__ import annotations

import base64
import json
import re

import keras
import numpy as np
import pandas as pd
import pytest

from helpers import datasets, dicom, explain, models, report, side_files, uncertainty

LABELS = list(datasets.LABELS)
SIZE = 32


def _tiny(dropout: float = 0.0, seed: int = 3) -> keras.Model:
    """A flat conv + ReLU + global average pooling (+ dropout) + 14 sigmoids classifier, built in a second."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 1), name="image")
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(14, activation="sigmoid", bias_initializer=keras.initializers.Constant(-0.2),
                                 name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_chest")


@pytest.fixture(scope="module")
def tiny():
    return _tiny()


@pytest.fixture(scope="module")
def film():
    """A smooth grey film with one bright blob: the tiny model's maps have somewhere to point."""
    yy, xx = np.mgrid[:96, :96]
    return (0.3 + 0.6 * np.exp(-((yy - 30) ** 2 + (xx - 60) ** 2) / 200.0)).astype(np.float32)


def _probabilities(model, image):
    item = report.read_chest(image, SIZE)
    return np.asarray(model.predict(item.model[None], verbose=0))[0]


def test_present_is_probability_at_or_above_threshold(tiny, film):
    p = _probabilities(tiny, film)
    # one finding at exactly its probability (present: >=), some just below it, the rest just above
    offsets = np.where(np.arange(14) % 3 == 0, -0.01, 0.01)
    offsets[1] = 0.0
    thresholds = pd.Series(np.clip(p + offsets, 0, 1), index=LABELS)
    result = report.ChestReporter(tiny, thresholds, samples=4).report(film)
    np.testing.assert_allclose(result.findings["probability"], p, atol=1e-6)
    expected = [label for j, label in enumerate(LABELS) if offsets[j] <= 0]
    assert result.present == expected
    assert list(result.findings.columns) == list(report.COLUMNS)


def test_heatmaps_and_boxes_only_for_present_findings(tiny, film):
    p = _probabilities(tiny, film)
    thresholds = pd.Series(np.where(np.arange(14) < 3, p - 0.05, 0.999), index=LABELS)
    result = report.ChestReporter(tiny, thresholds, samples=4).report(film)
    assert result.present == LABELS[:3]
    assert set(result.heatmaps) == set(LABELS[:3])
    assert set(result.boxes) <= set(LABELS[:3]) and result.boxes, "a box for present findings, none for the others"
    height, width = result.image.shape
    assert height == width == report.DISPLAY_SIZE
    for label, (x, y, w, h) in result.boxes.items():
        assert 0 <= x and 0 <= y and x + w <= width and y + h <= height, (label, (x, y, w, h))
        # the box holds the heatmap's hottest pixel (a box above half the maximum around it)
        heat = result.heatmaps[label]
        row, col = np.unravel_index(np.argmax(heat), heat.shape)
        assert heat.max() > 0.95 and heat.min() >= 0
        assert x - 1 <= col <= x + w + 1 and y - 1 <= row <= y + h + 1, (label, (row, col), (x, y, w, h))
    flat = [label for label in result.present if result.heatmaps[label].max() == 0]
    assert set(result.boxes) == set(result.present) - set(flat)
    assert all(any(label in note and "flat" in note for note in result.notes) for label in flat)
    nobody = report.ChestReporter(tiny, pd.Series(1.0, index=LABELS), samples=4).report(film)
    assert nobody.present == [] and nobody.heatmaps == {} and nobody.boxes == {}


def test_boxes_say_which_heuristic_chose_them(tiny, film):
    p = _probabilities(tiny, film)
    thresholds = pd.Series(np.where(np.arange(14) < 3, p - 0.05, 0.999), index=LABELS)
    without = report.ChestReporter(tiny, thresholds, samples=4).report(film)
    assert any("largest component" in n and "notebook 06 writes them" in n for n in without.notes), without.notes
    sized = report.ChestReporter(tiny, thresholds, samples=4, box_sizes={LABELS[0]: (0.1, 0.1)}).report(film)
    assert any("Deep MedIA" in n and "notebook 06" in n for n in sized.notes), sized.notes
    assert not any("largest component" in n for n in sized.notes)


def test_closed_form_grad_cam_equals_explain_grad_cam(tiny, film):
    reporter = report.ChestReporter(tiny, pd.Series(0.5, index=LABELS), samples=4)
    assert reporter.closed_form
    item = report.read_chest(film, SIZE)
    fmap, _, probs = reporter.features(item.model[None])
    with pytest.warns(UserWarning, match="flat"):
        every = reporter.grad_cam(item.model, fmap[0], range(14))
    indices = [j for j in range(14) if every[j].max() > 0][:3]  # maps with something to compare
    mine = reporter.grad_cam(item.model, fmap[0], indices)
    reference = explain.grad_cam(tiny, np.repeat(item.model[None], 3, axis=0), class_index=indices, layer_name="relu")
    assert mine.shape == reference.shape == (3, SIZE, SIZE)
    assert reference.reshape(3, -1).max(1).min() > 0.99, ("the reference maps must not be flat, or the comparison "
                                                          "means nothing")
    np.testing.assert_allclose(mine, reference, atol=1e-4)


def _confident(tiny, film, j: int, p_target: float = 1 - 1e-6):
    """A copy of the tiny classifier whose bias puts finding j at p_target on the film (a confident finding)."""
    model = keras.models.clone_model(tiny)
    model.set_weights(tiny.get_weights())
    kernel, bias = model.get_layer("predictions").get_weights()
    logit = float(np.log(p_target / (1 - p_target)))
    item = report.read_chest(film, SIZE)
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output).predict(item.model[None], verbose=0)[0]
    bias[j] = logit - float(pooled @ kernel[:, j])
    model.get_layer("predictions").set_weights([kernel, bias])
    return model, item


def test_grad_cam_of_a_confident_finding_is_not_flat(tiny, film):
    """At p = 1 - 1e-6 the probability's gradient carries p (1 - p) ~ 1e-6: its map is numerically flat; the logit's is
    not."""
    item = report.read_chest(film, SIZE)
    with pytest.warns(UserWarning, match="flat"):  # some findings have no positive evidence on this film
        maps = explain.grad_cam(tiny, np.repeat(item.model[None], 14, 0), list(range(14)), layer_name="relu")
    j = int(np.argmax(maps.reshape(14, -1).max(1) > 0))  # a finding with something to show at moderate p
    assert maps[j].max() > 0.99
    model, item = _confident(tiny, film, j)
    p = float(model.predict(item.model[None], verbose=0)[0, j])
    assert p > 1 - 1e-5, p
    with pytest.warns(UserWarning, match="flat"):
        saturated = explain.grad_cam(model, item.model[None], j, layer_name="relu", score="probability")
    assert saturated.max() == 0
    on_logit = explain.grad_cam(model, item.model[None], j, layer_name="relu")
    np.testing.assert_allclose(on_logit[0], maps[j], atol=1e-4)  # the logit's map does not depend on the bias
    # the closed form of the report is the logit's Grad-CAM too, and the confident finding gets its map and box
    thresholds = pd.Series(np.where(np.arange(14) == j, 0.5, 1.0), index=LABELS)
    reporter = report.ChestReporter(model, thresholds, samples=4)
    fmap, _, _ = reporter.features(item.model[None])
    np.testing.assert_allclose(reporter.grad_cam(item.model, fmap[0], [j]), on_logit, atol=1e-4)
    result = reporter.report(film)
    assert result.present == [LABELS[j]]
    assert result.heatmaps[LABELS[j]].max() > 0.95 and LABELS[j] in result.boxes
    assert not any("flat" in note for note in result.notes), result.notes


def test_grad_cam_score_is_checked(tiny, film):
    with pytest.raises(explain.ExplainError, match="score must be one of logit, probability"):
        explain.grad_cam(tiny, np.zeros((1, SIZE, SIZE, 1), np.float32), 0, score="softmax")


def test_mc_predict_of_a_model_set_to_run_eagerly_gives_the_same_draws_without_tracing(film):
    """model.run_eagerly = True (a model sampled once in notebook 04): the same draws, no compiled pass kept."""
    x = report.read_chest(film, SIZE).model[None]
    traced, eager = uncertainty.with_mc_dropout(_tiny(dropout=0.4)), uncertainty.with_mc_dropout(_tiny(dropout=0.4))
    eager.set_weights(traced.get_weights())
    eager.run_eagerly = True
    draws = {}
    for name, model in (("traced", traced), ("eager", eager)):
        report.reseed_dropout(model, 11)
        draws[name] = uncertainty.mc_predict(model, x, samples=20)
    assert draws["traced"].std(0).min() > 0, "the draws differ from each other"
    np.testing.assert_allclose(draws["eager"], draws["traced"], atol=1e-6)
    assert eager not in uncertainty._COMPILED and traced in uncertainty._COMPILED


def test_features_of_one_film_or_a_stack_share_one_trace(film):
    reporter = report.ChestReporter(_tiny(), pd.Series(0.5, index=LABELS), samples=4)
    one = report.read_chest(film, SIZE).model[None]
    for batch in (one, np.repeat(one, 3, 0), np.repeat(one, 5, 0)):
        _, _, probabilities = reporter.features(batch)
        np.testing.assert_allclose(probabilities, reporter.model(batch, training=False), atol=1e-5)
    assert reporter._forward.experimental_get_tracing_count() == 1


def test_head_only_mc_equals_whole_model_mc(film):
    model = _tiny(dropout=0.4)
    reporter = report.ChestReporter(model, pd.Series(0.5, index=LABELS), samples=4)
    assert reporter.head.layers[0].rate == pytest.approx(0.4), "the model's own dropout rate is sampled"
    item = report.read_chest(film, SIZE)
    whole = uncertainty.mc_predict(uncertainty.with_mc_dropout(model), item.model[None], samples=400)[:, 0]
    _, pooled, _ = reporter.features(item.model[None])
    head = reporter.sample_head(pooled, samples=400)[:, 0]
    standard_error = np.sqrt(whole.var(0, ddof=1) / 400 + head.var(0, ddof=1) / 400) + 1e-9
    z = np.abs(whole.mean(0) - head.mean(0)) / standard_error
    assert z.max() < 5, f"head-only and whole-model means differ by {z.max():.1f} standard errors"
    ratio = head.std(0) / whole.std(0)
    assert np.all((ratio > 0.75) & (ratio < 1.33)), f"spreads differ: ratios {np.round(ratio, 2)}"
    # with the same seed the dropout masks are the same: the two ways agree exactly
    whole_model = uncertainty.with_mc_dropout(model)
    report.reseed_dropout(whole_model, 11)
    exact_whole = uncertainty.mc_predict(whole_model, item.model[None], samples=20)[:, 0]
    report.reseed_dropout(reporter.head, 11)
    exact_head = uncertainty.mc_predict(reporter.head, pooled, samples=20)[:, 0]
    assert exact_whole.std(0).min() > 0, "the draws differ from each other"
    np.testing.assert_allclose(exact_head, exact_whole, atol=1e-6)
    # and a wrong head (another rate) is caught by the same test
    wrong = report.ChestReporter(_tiny(dropout=0.05), pd.Series(0.5, index=LABELS), samples=4)
    assert wrong.sample_head(pooled, samples=400)[:, 0].std(0).mean() < 0.5 * whole.std(0).mean()


def test_uncertainty_columns_match_decompose(tiny, film):
    reporter = report.ChestReporter(tiny, pd.Series(0.5, index=LABELS), samples=30, seed=7)
    result = reporter.report(film)
    item = report.read_chest(film, SIZE)
    _, pooled, _ = reporter.features(item.model[None])
    draws = reporter.sample_head(pooled)[:, 0]  # the same seed: the same draws
    parts = uncertainty.decompose(draws)
    np.testing.assert_allclose(result.findings["mean"], parts.mean, atol=1e-6)
    np.testing.assert_allclose(result.findings["spread"], draws.std(0), atol=1e-6)
    np.testing.assert_allclose(result.findings["mutual_information"], parts.epistemic, atol=1e-7)
    assert any("not fine-tuned with dropout" in note for note in result.notes)


def test_refer_rule_against_the_saved_threshold(tiny, film):
    reporter = report.ChestReporter(tiny, pd.Series(0.5, index=LABELS), samples=10)
    refer, reason = reporter.refer_rule(0.01)
    assert refer and "no referral threshold" in reason and "notebook 04" in reason
    reporter.referral = {"threshold": 0.02, "refer_at": 0.2, "samples": 10}
    assert reporter.refer_rule(0.03)[0] and not reporter.refer_rule(0.02)[0]
    refer, reason = reporter.refer_rule(0.01)
    assert not refer and "0.01 nats <= 0.02," in reason and "20%" in reason
    result = reporter.report(film)
    assert result.refer == (result.findings["mutual_information"].mean() > 0.02)


def test_referral_threshold_matches_referral_curve():
    rng = np.random.default_rng(0)
    values = rng.random(50)
    limit = report.referral_threshold(values, 0.2)
    assert (values > limit).sum() == 10  # the 10 most uncertain of 50 are above it, the 40 kept at or below
    kept = uncertainty.referral_curve(np.zeros(50), np.zeros(50), values, lambda t, s: len(t), fractions=[0.2])
    assert kept.loc[0.2, "kept"] == (values <= limit).sum()


def test_json_round_trip(tiny, film):
    p = _probabilities(tiny, film)
    result = report.ChestReporter(tiny, pd.Series(np.where(np.arange(14) < 2, p - 0.05, 0.99), index=LABELS),
                                  samples=4).report(film, source_name="film.png")
    loaded = json.loads(report.to_json(result))
    table = pd.DataFrame(loaded["findings"]).set_index("finding")
    pd.testing.assert_frame_equal(table, result.findings, check_dtype=False, atol=1e-12)
    assert loaded["refer"] == result.refer and loaded["refer_reason"] == result.refer_reason
    assert {k: tuple(v) for k, v in loaded["boxes"].items()} == result.boxes
    assert loaded["source"] == "film.png" and loaded["samples"] == 4


def test_html_has_the_table_and_an_embedded_png(tiny, film):
    result = report.ChestReporter(tiny, pd.Series(0.0, index=LABELS), samples=4).report(film)
    page = report.to_html(result)
    assert page.count("<tr>") == 1 + len(LABELS), "a header row and one row per finding"
    for label in LABELS:
        assert f"<th>{label}</th>" in page
    found = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert found and base64.b64decode(found.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "Refer to a radiologist" in page and result.refer
    assert "http" not in page.replace("https://", "").split("<body>")[0], "nothing fetched from elsewhere"


def test_png_figure_written(tiny, film, tmp_path):
    result = report.ChestReporter(tiny, pd.Series(0.0, index=LABELS), samples=4).report(film)
    path = report.to_png(result, tmp_path / "r.png")
    from PIL import Image

    with Image.open(path) as img:
        assert img.format == "PNG" and img.width >= 320 * 4


def test_load_refuses_a_model_without_thresholds(tiny, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    with pytest.raises(report.ReportError, match="Run notebook 02"):
        report.ChestReporter.load(path)
    side_files.save_thresholds(path, pd.Series([0.3] * 13 + [np.nan], index=LABELS), method="youden")
    loaded = report.ChestReporter.load(path, samples=3)
    assert loaded.thresholds.iloc[0] == 0.3 and loaded.thresholds["Hernia"] == 0.5
    assert any("Hernia" in note and "no positive" in note for note in loaded.notes)


def test_saved_referral_names_its_split_and_sets_t(tiny, film, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny.save(path)
    side_files.save_thresholds(path, pd.Series(0.5, index=LABELS), method="youden")
    with pytest.raises(TypeError, match="split"):
        side_files.save_referral(path, 0.02, refer_at=0.2, samples=7, images=150)  # which images set it must be said
    with pytest.raises(ValueError, match="split must name the images"):
        side_files.save_referral(path, 0.02, refer_at=0.2, samples=7, images=150, split="held-out")
    side_files.save_referral(path, 0.02, refer_at=0.2, samples=7, images=150, split="validation")
    loaded = report.ChestReporter.load(path)
    assert loaded.samples == 7, "T comes from the referral file: mutual information depends on T"
    assert report.ChestReporter.load(path, samples=3).samples == 3
    reason = loaded.report(film).refer_reason
    assert "of its validation images (150 images, T=7)" in reason, reason


def _app_on_path() -> bool:
    """app/ runs from the repository (python -m app.upload), not as an installed package: put the root on the path."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if (root / "app" / "upload.py").is_file() and str(root) not in sys.path:
        sys.path.append(str(root))
    return (root / "app" / "upload.py").is_file()


def test_referral_by_the_deciding_classifier_and_the_unfamiliar_banner(tiny, film, tmp_path):
    from helpers import familiarity, referral, report_render

    path = tmp_path / "tiny.keras"
    tiny.save(path)
    thresholds = pd.Series(0.5, index=LABELS)
    side_files.save_thresholds(path, thresholds, method="youden")
    identity = referral.Recalibration(np.ones(len(LABELS)), np.zeros(len(LABELS)))
    probability = _probabilities(tiny, film)
    value = float(referral.expected_errors(probability[None], thresholds.to_numpy(), identity)[0])
    side_files.save_referral(path, value - 1e-6, refer_at=0.2, samples=5, images=40, split="validation",
                         signal="expected_errors", recalibration=identity.to_dict())
    reporter = report.ChestReporter.load(path)
    pooled = reporter.features(report.read_chest(film, reporter.size).model[None])[1]
    result = reporter.report(film)
    assert (result.refer and "expected number of wrong decisions" in result.refer_reason
            and f"{value:.3g}" in result.refer_reason)
    assert result.unfamiliar is None and any("no unfamiliar-input check" in n for n in result.notes)
    # a Gaussian of features far from this film: the banner, the referral, in the JSON, the HTML and the page's answer
    rng = np.random.default_rng(0)
    far = familiarity.Familiarity.fit(pooled + 5 + rng.normal(0, 0.1, (30, pooled.shape[1])))
    far.set_cutoff(pooled + 5 + rng.normal(0, 0.1, (20, pooled.shape[1])))
    far.save(side_files.side_file(path, side_files.FAMILIAR_SUFFIX))
    side_files.save_referral(path, value + 1, refer_at=0.2, samples=5, images=40, split="validation",
                         signal="expected_errors", recalibration=identity.to_dict())
    result = report.ChestReporter.load(path).report(film)
    assert (result.unfamiliar.startswith(familiarity.OUTSIDE) and result.refer
            and result.details["familiarity"]["outside"])
    assert report_render.to_dict(result)["unfamiliar"] == result.unfamiliar
    assert familiarity.OUTSIDE in report_render.to_html(result)
    upload = pytest.importorskip("app.upload") if _app_on_path() else pytest.skip("app/ not beside the tests")
    answer = upload.answer_html(result, b"", report_render.to_json(result))
    assert answer.index("id='unfamiliar'") < answer.index("id='findings'") and familiarity.OUTSIDE in answer
    # the same films as the training ones: no banner
    near = familiarity.Familiarity.fit(pooled + rng.normal(0, 0.1, (30, pooled.shape[1])))
    near.set_cutoff(pooled + rng.normal(0, 0.1, (20, pooled.shape[1])))
    near.save(side_files.side_file(path, side_files.FAMILIAR_SUFFIX))
    result = report.ChestReporter.load(path).report(film)
    assert result.unfamiliar is None and not result.refer and not result.details["familiarity"]["outside"]


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    path = folder / "tiny.keras"
    tiny.save(path)
    # two findings present (the tiny model says about 0.45 for each): a figure of three panels, not fifteen, is
    # enough for what the command-line tests check (files, names, identity)
    side_files.save_thresholds(path, pd.Series([0.4] * 2 + [0.9] * 12, index=LABELS), method="youden")
    return path


def test_cli_real_dicom_and_a_bad_file(saved, film, tmp_path, capsys):
    from PIL import Image

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    jpeg = tmp_path / "film.jpg"
    Image.fromarray((film * 255).astype(np.uint8)).save(jpeg, quality=95)
    out = tmp_path / "out"
    code = report.main([str(dicom.example_path("RG1_UNCR.dcm")), str(bad), str(jpeg), "--model", str(saved),
                        "--out", str(out), "--samples", "3"])
    err = capsys.readouterr().err
    assert code == 1
    rg1, film_name = report.pseudonym(dicom.example_path("RG1_UNCR.dcm")), report.pseudonym(jpeg)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}.{ext}" for stem in (rg1, film_name)
                                                          for ext in ("html", "json", "png"))
    assert json.loads((out / f"{film_name}.json").read_text())["details"]["format"] == "JPG"
    assert "2 of 3 image(s) reported" in err
    lines = [line for line in err.splitlines() if line.startswith("input 2 of 3 (image-")]
    assert len(lines) == 1 and "cannot decode" in lines[0], err
    assert "notes.png" not in err, err
    written = json.loads((out / f"{rg1}.json").read_text())
    assert written["details"]["modality"] == "CR" and written["details"]["photometric"] == "MONOCHROME1"
    assert len(written["findings"]) == 14 and "identity" not in written and written["source"] == rg1
    for name in (f"{rg1}.json", f"{rg1}.html"):
        text = re.sub(r"data:[^\"')]+", "", (out / name).read_text())  # an embedded PNG's base64 may spell anything
        assert "CompressedSamples" not in text and "9RG1" not in text, f"patient name or ID in {name}"
        assert "RG1_UNCR" not in text, f"the input file name in {name}"
    assert "CompressedSamples" not in err and "9RG1" not in err and "RG1_UNCR" not in err


def test_cli_names_no_input_and_never_overwrites(saved, film, tmp_path, capsys):
    """PACS exports: a patient's name in the file name, and one name (IM0001.dcm) in every study folder."""
    from PIL import Image

    rng = np.random.default_rng(5)
    inputs = []
    for folder, name in (("study1", "DOE_JOHN_MRN0012345.png"), ("study1", "IM0001.png"), ("study2", "IM0001.png")):
        (tmp_path / folder).mkdir(exist_ok=True)
        noisy = np.clip(film + rng.normal(0, 0.02, film.shape), 0, 1)
        Image.fromarray((noisy * 255).astype(np.uint8)).save(tmp_path / folder / name)
        inputs.append(str(tmp_path / folder / name))
    out = tmp_path / "out"
    assert report.main([*inputs, "--model", str(saved), "--out", str(out), "--samples", "2"]) == 0
    err = capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 9, f"three inputs, three reports each: {written}"
    for path in out.iterdir():
        text = path.read_text(errors="replace") if path.suffix != ".png" else path.name
        text = re.sub(r"data:[^'\"]+", "", text)  # an embedded figure's base64 may spell anything
        for secret in ("DOE", "MRN0012345", "IM0001", "study1", "study2"):
            assert secret not in text and secret not in path.name, f"{secret!r} in {path.name}"
    assert "DOE" not in err and "IM0001" not in err
    # the figure's title holds the pseudonym, not the name: checked on the rendered text of the figure
    result = report.ChestReporter.load(saved, samples=2).report(inputs[0])
    assert result.source == report.pseudonym(inputs[0])
    assert "DOE" not in re.sub(r"data:[^'\"]+", "", report.to_html(result))
    # with --keep-identity the names come back, and the second IM0001 does not overwrite the first
    kept = tmp_path / "kept"
    assert report.main([*inputs, "--model", str(saved), "--out", str(kept), "--samples", "2", "--keep-identity"]) == 0
    assert {"IM0001.json", "IM0001-2.json", "DOE_JOHN_MRN0012345.json"} <= {p.name for p in kept.iterdir()}


def test_cli_keep_identity(saved, tmp_path, capsys):
    code = report.main([str(dicom.example_path("RG1_UNCR.dcm")), "--model", str(saved), "--out", str(tmp_path),
                        "--samples", "2", "--keep-identity"])
    assert code == 0
    assert "CompressedSamples^RG1" in (tmp_path / "RG1_UNCR.html").read_text()
    assert json.loads((tmp_path / "RG1_UNCR.json").read_text())["source"] == "RG1_UNCR.dcm"
    assert json.loads((tmp_path / "RG1_UNCR.json").read_text())["identity"]["PatientID"] == "9RG1"


def test_cli_missing_model(tmp_path, capsys):
    code = report.main([str(dicom.example_path()), "--model", str(tmp_path / "none.keras"), "--out", str(tmp_path)])
    assert code == 2 and "no saved model" in capsys.readouterr().err


def test_fundus_report_maps_and_refer_flag():
    keras.utils.set_random_seed(1)
    unet = models.unet(base_filters=4, depth=2, dropout_rate=0.2)
    rng = np.random.default_rng(0)
    photo = np.clip(rng.random((80, 72, 3)) * 0.5 + 0.3, 0, 1).astype(np.float32)
    reporter = report.FundusReporter(unet, samples=4, side=64, referral={"threshold": 1e-9})
    result = reporter.report(photo)
    assert result.vessels.shape == result.epistemic.shape == result.image.shape[:2] == (64, 58)
    assert result.refer and "times notebook 04" in result.refer_reason
    level = result.findings.loc["field of view", "mean_epistemic"]
    assert level == pytest.approx(float(result.epistemic[result.fov].mean()))
    reporter.referral = {"threshold": level}  # refer above twice this level
    again = reporter.report(photo)
    assert again.refer == (again.findings.loc["field of view", "mean_epistemic"] > 2 * level)
    assert json.loads(report.to_json(result))["kind"] == "fundus"
    assert "data:image/png;base64," in report.to_html(result)


# ---- what the chest report refuses or flags by content (issue 19) --------------------------------------------


def test_chest_formats_are_told_by_content_not_by_name(tmp_path):
    from PIL import Image

    grey = (np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "film.tif", format="PNG")  # a PNG under a TIFF name: read, as a PNG
    assert report.read_chest(tmp_path / "film.tif", SIZE).details["original_size"] == [32, 32]
    Image.fromarray(grey).save(tmp_path / "x.png", format="TIFF")  # a TIFF under a PNG name: refused, named
    with pytest.raises(report.ReportError, match=r"x\.png: a TIFF image \(its first bytes say so, whatever its name "
                                                 r"says\).*PNG, JPEG or DICOM only"):
        report.read_chest(tmp_path / "x.png", SIZE)


def test_non_chest_dicom_is_refused_and_reported_with_its_warning_when_allowed(tiny):
    with pytest.raises(report.ReportError, match=r"BodyPartExamined \(0018,0015\) is 'EXTREMITY'.*--allow-non-chest"):
        report.read_chest(dicom.example_path("RG3_UNCR.dcm"), SIZE)
    result = report.ChestReporter(tiny, pd.Series(0.5, index=LABELS), samples=2).report(
        dicom.example_path("RG3_UNCR.dcm"), allow_non_chest=True)
    (said,) = result.details["warnings"]
    assert "BodyPartExamined (0018,0015) is 'EXTREMITY'" in said and "allow_non_chest=True" in said
    assert "RG3_UNCR.dcm" not in said and said.startswith(result.source)  # said about the pseudonym, not the name
    assert result.details["burned_in_annotation"] is False


def test_burned_in_annotation_reaches_the_details(tmp_path):
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    path = dicom.write_dicom(tmp_path / "b.dcm", pixels, bits_stored=12, BurnedInAnnotation="YES")
    details = report.read_chest(path, SIZE).details
    assert details["burned_in_annotation"] is True and details["warnings"] == []


def test_burned_in_pixels_are_not_shown_unless_asked(tiny, tmp_path):
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    path = dicom.write_dicom(tmp_path / "b.dcm", pixels, bits_stored=12, BurnedInAnnotation="YES")
    reporter = report.ChestReporter(tiny, pd.Series(0.5, index=LABELS), samples=2)
    hidden, shown = reporter.report(path), reporter.report(path, show_burned_in=True)
    assert hidden.image.max() == 0 and shown.image.max() > 0.5
    assert any("BurnedInAnnotation YES" in note for note in hidden.notes)
    np.testing.assert_allclose(hidden.findings["probability"], shown.findings["probability"])
