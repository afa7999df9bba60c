"""models (DenseNet121 classifier), losses (weighted BCE), metrics (AUC, thresholds, bootstrap)."""

import warnings

import h5py
import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from helpers import losses, metrics, models
from helpers.errors import DataError

LABELS = ["A", "B", "C"]


# ---------------------------------------------------------------- weighted binary cross-entropy

def test_weighted_bce_matches_hand_computation():
    y = np.array([[1, 0], [0, 0], [1, 1]], dtype="float32")
    p = np.array([[0.9, 0.2], [0.3, 0.1], [0.6, 0.7]], dtype="float32")
    loss = losses.WeightedBinaryCrossentropy.from_labels(y)
    w_p, w_n = np.array([1 / 3, 2 / 3]), np.array([2 / 3, 1 / 3])  # from the labels by hand
    np.testing.assert_allclose(loss.pos_weights, w_p, rtol=1e-6)
    by_hand = -(w_p * y * np.log(p) + w_n * (1 - y) * np.log(1 - p))  # (3, 2)
    assert float(loss(y, p)) == pytest.approx(by_hand.mean(), rel=1e-5)
    # Unweighted BCE is the special case w_p = w_n = 1.
    plain = losses.WeightedBinaryCrossentropy([1, 1], [1, 1])
    assert float(plain(y, p)) == pytest.approx(float(keras.losses.BinaryCrossentropy()(y, p)), rel=1e-5)


def test_weighted_bce_checks_class_count():
    loss = losses.WeightedBinaryCrossentropy([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="predicts 2 classes but the loss was fitted on 3"):
        loss(np.zeros((1, 2), "float32"), np.full((1, 2), 0.5, "float32"))
    with pytest.raises(ValueError, match="pos_weights has 2 classes but neg_weights has 1"):
        losses.WeightedBinaryCrossentropy([1, 1], [1])


def test_model_with_weighted_bce_round_trips_without_custom_objects(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sigmoid")])
    model.compile("adam", losses.WeightedBinaryCrossentropy([0.9, 0.7], [0.1, 0.3]))
    model.fit(np.zeros((2, 4), "float32"), np.ones((2, 2), "float32"), verbose=0)  # builds the optimizer state
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.loss, losses.WeightedBinaryCrossentropy)
    assert loaded.loss.pos_weights == pytest.approx([0.9, 0.7])


# ---------------------------------------------------------------- DenseNet121 classifier

@pytest.fixture(scope="module")
def small_model():
    return models.densenet121_classifier(num_classes=3, image_size=64, weights=None)


def test_classifier_is_flat_and_exposes_the_feature_map(small_model):
    assert not any(isinstance(layer, keras.Model) for layer in small_model.layers), "backbone must not be nested"
    assert models.feature_layer_name(small_model) == "relu"
    assert small_model.get_layer("relu").output.shape[1:3] == (2, 2)  # 64 / 32
    assert small_model.input_shape == (None, 64, 64, 1) and small_model.output_shape == (None, 3)
    out = np.asarray(small_model(np.random.default_rng(0).random((2, 64, 64, 1)).astype("float32")))
    assert ((out > 0) & (out < 1)).all()


def test_cut_after_block_four_doubles_the_heatmap_resolution():
    model = models.densenet121_classifier(num_classes=2, image_size=64, last_block=4, channels=3)
    assert models.feature_layer_name(model) == "pool4_relu"
    assert model.get_layer("pool4_relu").output.shape[1:3] == (4, 4)  # 64 / 16
    with pytest.raises(ValueError, match="last_block must be one of"):
        models.densenet121_classifier(image_size=64, last_block=3)


def test_freezing_keeps_batchnorm_statistics(small_model):
    trainable = models.set_trainable_blocks(small_model, 0)
    assert trainable == []
    assert [w.path for w in small_model.trainable_weights] == ["predictions/kernel", "predictions/bias"]
    bn = small_model.get_layer("conv5_block16_1_bn")
    before = np.asarray(bn.moving_mean).copy()
    # one step: no graph to trace
    small_model.compile(keras.optimizers.SGD(0.1), "binary_crossentropy", run_eagerly=True)
    rng = np.random.default_rng(1)
    small_model.fit(rng.random((8, 64, 64, 1)).astype("float32"), np.ones((8, 3), "float32"), epochs=1, verbose=0)
    np.testing.assert_array_equal(np.asarray(bn.moving_mean), before)

    trainable = models.set_trainable_blocks(small_model, 1)
    assert trainable and all(name.startswith(("conv5_", "bn")) or name == "relu" for name in trainable)
    assert not small_model.get_layer("conv4_block24_2_conv").trainable
    assert small_model.get_layer("conv5_block16_2_conv").trainable
    assert not small_model.get_layer("conv5_block16_1_bn").trainable  # BN stays in inference mode
    models.set_trainable_blocks(small_model, 5, train_batchnorm=True)
    assert small_model.get_layer("conv1_bn").trainable
    with pytest.raises(ValueError, match="between 0"):
        models.set_trainable_blocks(small_model, 6)


def test_imagenet_weights_come_from_the_keras_cache_offline(tmp_path, monkeypatch):
    # A locally built weights file, placed where Keras looks for the ImageNet download.
    source = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3))
    rng = np.random.default_rng(2)
    for w in source.weights[:3]:
        w.assign(rng.normal(size=w.shape).astype("float32"))
    target = tmp_path / "models" / models.DENSENET_WEIGHTS_FILE
    target.parent.mkdir(parents=True)
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(target, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(models, "_reachable", lambda *a, **k: pytest.fail("must not touch the network"))
    assert models.imagenet_weights_path() == target
    model = models.densenet121_classifier(num_classes=2, image_size=64, weights="imagenet")
    np.testing.assert_array_equal(np.asarray(model.get_layer("conv1_conv").kernel), np.asarray(source.weights[0]))


def test_missing_weights_offline_fail_fast_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(models, "_reachable", lambda *a, **k: False)
    with pytest.raises(models.WeightsUnavailableError, match=r"not in the Keras cache.*weights=None") as err:
        models.densenet121_classifier(image_size=64, weights="imagenet")
    assert str(tmp_path / "models") in str(err.value)
    with pytest.raises(models.WeightsUnavailableError, match="nothere.h5: weights file not found"):
        models.densenet121_classifier(image_size=64, weights=str(tmp_path / "nothere.h5"))


def test_reachability_probe_says_no_on_a_closed_port():
    assert models._reachable("https://127.0.0.1:9/x", timeout=1.0) is False


def test_load_classifier_checks_file_and_outputs(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    model.save(tmp_path / "ok.keras")
    assert models.load_classifier(tmp_path / "ok.keras", LABELS).output_shape == (None, 3)
    with pytest.raises(ValueError, match="predicts 3 outputs but there are 14 labels"):
        models.load_classifier(tmp_path / "ok.keras", [str(i) for i in range(14)])
    (tmp_path / "bad.keras").write_text("not a model")
    with pytest.raises(ValueError, match=r"bad\.keras: not a Keras model file"):
        models.load_classifier(tmp_path / "bad.keras", LABELS)
    with pytest.raises(FileNotFoundError, match="Run notebook 02"):
        models.load_classifier(tmp_path / "none.keras", LABELS)


# ---------------------------------------------------------------- metrics

@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    y = (rng.random((200, 3)) < [0.3, 0.1, 0.5]).astype(int)
    s = np.clip(y * 0.4 + rng.random((200, 3)) * 0.7, 0, 1)
    return y, s


def test_auc_matches_sklearn_and_missing_class_is_nan_with_warning(scored):
    y, s = scored
    auc = metrics.roc_auc_per_class(y, s, LABELS)
    for j, label in enumerate(LABELS):
        assert auc[label] == pytest.approx(roc_auc_score(y[:, j], s[:, j]))
    y[:, 1] = 0
    with pytest.warns(UserWarning, match="no positives.*for B"):
        auc = metrics.roc_auc_per_class(y, s, LABELS, split="test")
    assert np.isnan(auc["B"]) and np.isfinite(auc["A"])
    with pytest.raises(ValueError, match="must be the same"):
        metrics.roc_auc_per_class(y[:5], s, LABELS)


def test_thresholds_maximise_youden_and_f1_by_brute_force(scored):
    y, s = scored
    youden = metrics.choose_thresholds(y, s, LABELS, "youden")
    f1 = metrics.choose_thresholds(y, s, LABELS, "f1")
    for j, label in enumerate(LABELS):
        cuts = np.unique(s[:, j])
        j_stat = [((s[:, j] >= c) & (y[:, j] == 1)).sum() / y[:, j].sum()
                  - ((s[:, j] >= c) & (y[:, j] == 0)).sum() / (1 - y[:, j]).sum() for c in cuts]
        best = max(j_stat)
        got = ((s[:, j] >= youden[label]) & (y[:, j] == 1)).sum() / y[:, j].sum() - (
            (s[:, j] >= youden[label]) & (y[:, j] == 0)).sum() / (1 - y[:, j]).sum()
        assert got == pytest.approx(best)
        best_f1 = max(f1_score(y[:, j], s[:, j] >= c) for c in cuts)
        assert f1_score(y[:, j], s[:, j] >= f1[label]) == pytest.approx(best_f1)


def test_threshold_metrics_count_by_hand():
    y = np.array([[1], [1], [0], [0], [0]])
    s = np.array([[0.9], [0.4], [0.6], [0.2], [0.1]])
    table = metrics.threshold_metrics(y, s, pd.Series({"A": 0.5}), ["A"]).loc["A"]
    assert (table.TP, table.FN, table.FP, table.TN) == (1, 1, 1, 2)
    assert table.sensitivity == 0.5 and table.specificity == pytest.approx(2 / 3)
    assert table.PPV == 0.5 and table.NPV == pytest.approx(2 / 3)


def test_bootstrap_interval_brackets_the_auc_and_narrows_with_more_data(scored):
    y, s = scored
    small = metrics.bootstrap_auc(y[:60], s[:60], LABELS, samples=200)
    large = metrics.bootstrap_auc(y, s, LABELS, samples=200)
    assert ((large["low"] <= large["AUROC"]) & (large["AUROC"] <= large["high"])).all()
    assert ((large.high - large.low) < (small.high - small.low)).sum() >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = metrics.bootstrap_auc(y, s, LABELS, samples=50)  # no warning when every class has both outcomes
    assert (table["valid"] == 50).all() and table.attrs["resampled"] == "images"


def test_patient_bootstrap_does_not_shrink_when_images_are_duplicated(scored):
    """Copy every image of 200 one-image patients 4 times: 4x the images, no new information.

    The image bootstrap treats the copies as independent and its interval shrinks (about 1/sqrt(4)); the
    patient bootstrap draws the same patients as the image bootstrap did on the originals (same seed,
    same count), and an AUC with every weight times 4 is the same AUC: its interval is exactly the original's.
    """
    y, s = scored
    original = metrics.bootstrap_auc(y, s, LABELS, samples=100, seed=5)
    patients = np.repeat([f"p{i:03d}" for i in range(len(y))], 4)  # sorted IDs: patient i holds original row i
    y4, s4 = np.repeat(y, 4, axis=0), np.repeat(s, 4, axis=0)
    by_image = metrics.bootstrap_auc(y4, s4, LABELS, samples=100, seed=5)
    by_patient = metrics.bootstrap_auc(y4, s4, LABELS, samples=100, seed=5, groups=patients)
    width = {name: t.high - t.low for name, t in (("original", original), ("image", by_image), ("patient", by_patient))}
    np.testing.assert_allclose(by_patient[["low", "high"]].to_numpy(), original[["low", "high"]].to_numpy(), atol=1e-12)
    assert (width["image"] < 0.7 * width["original"]).all(), width
    assert by_patient.attrs["resampled"] == "patients" and by_patient.attrs["units"] == len(y)
    np.testing.assert_allclose(by_patient["AUROC"], original["AUROC"])


def test_bootstrap_counts_valid_replicates_and_refuses_too_few():
    # class A: every positive image belongs to one patient of ten, so a patient replicate misses all of
    # them with probability (9/10)^10 = 0.35; class B has positives in every patient.
    rng = np.random.default_rng(11)
    patients = np.repeat(np.arange(10), 20)
    y = np.zeros((200, 2), int)
    y[patients == 3, 0] = 1
    y[::3, 1] = 1
    s = np.clip(0.3 * y + 0.7 * rng.random((200, 2)), 0, 1)
    with pytest.warns(UserWarning, match=r"min_valid=180 of 200 replicates had both outcomes for A \(\d+ valid\)"):
        table = metrics.bootstrap_auc(y, s, ["A", "B"], samples=200, groups=patients)
    assert 0.55 < table.loc["A", "valid"] / 200 < 0.75  # 1 - 0.9^10 = 0.65, binomial SE 0.034
    assert np.isnan(table.loc["A", "low"]) and np.isfinite(table.loc["A", "AUROC"])
    assert table.loc["B", "valid"] == 200 and table.loc["B", "low"] < table.loc["B", "high"]
    # the same data bootstrapped by image: A's 20 positives are almost never all missed
    by_image = metrics.bootstrap_auc(y, s, ["A", "B"], samples=200)
    assert by_image.loc["A", "valid"] == 200
    # asking for fewer valid replicates knowingly gives an interval
    lenient = metrics.bootstrap_auc(y, s, ["A", "B"], samples=200, groups=patients, min_valid=100)
    assert lenient.loc["A", "low"] < lenient.loc["A", "high"]


@pytest.mark.parametrize("kwargs, message", [
    ({"samples": 0}, "samples must be a whole number >= 50"),
    ({"samples": 10}, "not 10"),
    ({"confidence": 95}, "looks like a percentage: pass 0.95"),
    ({"confidence": 1.0}, r"fraction in \(0, 1\)"),
    ({"min_valid": 500}, "min_valid must be a whole number from 1 to samples"),
    ({"groups": ["p1", "p2"]}, "one patient ID per image"),
])
def test_bootstrap_arguments_are_checked(scored, kwargs, message):
    y, s = scored
    with pytest.raises(ValueError, match=message):
        metrics.bootstrap_auc(y, s, LABELS, **kwargs)


def _f1_threshold_the_old_way(truth, score):
    """The former implementation: a (candidates x images) boolean matrix, O(n^2) memory."""
    candidates = np.unique(score)
    predicted = score[None, :] >= candidates[:, None]
    tp = (predicted & (truth == 1)).sum(1)
    fp = (predicted & (truth == 0)).sum(1)
    fn = ((~predicted) & (truth == 1)).sum(1)
    return float(candidates[np.argmax(2 * tp / np.maximum(2 * tp + fp + fn, 1))])


def test_f1_thresholds_equal_the_old_search_in_linear_memory():
    import tracemalloc

    rng = np.random.default_rng(12)
    y = (rng.random((1500, 3)) < [0.05, 0.3, 0.6]).astype(int)
    s = np.round(np.clip(0.35 * y + 0.65 * rng.random((1500, 3)), 0, 1), 2)  # many ties
    chosen = metrics.choose_thresholds(y, s, LABELS, "f1")
    assert chosen.tolist() == [_f1_threshold_the_old_way(y[:, j], s[:, j]) for j in range(3)]
    # 20 000 validation images with distinct scores: the old matrix alone would be 20 000^2 bytes = 400 MB
    n = 20_000
    y_big = (rng.random((n, 1)) < 0.1).astype(int)
    s_big = np.clip(0.2 * y_big + 0.8 * rng.random((n, 1)), 0, 1)
    tracemalloc.start()
    metrics.choose_thresholds(y_big, s_big, ["A"], "f1")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200 * n, f"peak {peak / 1e6:.1f} MB for {n} images: not O(n)"


def test_labels_and_scores_are_checked_at_every_entry(scored):
    y, s = scored
    masks = y * 255  # a 0/255 export
    for call in (lambda: metrics.roc_auc_per_class(masks, s, LABELS),
                 lambda: metrics.choose_thresholds(masks, s, LABELS),
                 lambda: metrics.threshold_metrics(masks, s, pd.Series(0.5, index=LABELS), LABELS),
                 lambda: metrics.bootstrap_auc(masks, s, LABELS, samples=50),
                 lambda: losses.WeightedBinaryCrossentropy.from_labels(masks)):
        with pytest.raises(DataError, match="255.*Divide by 255"):
            call()
    with_nan = y.astype(float)
    with_nan[7, 2] = np.nan
    with pytest.raises(DataError, match=r"NaN.*index \(7, 2\)"):
        metrics.roc_auc_per_class(with_nan, s, LABELS)  # not "no positives for C"
    logits = np.log(s + 1e-3) - np.log(1 - s + 1e-3)
    with pytest.raises(DataError, match="sigmoid"):
        metrics.choose_thresholds(y, logits, LABELS)  # a threshold clamped to 1.0 before
    with pytest.raises(DataError, match="divide by 255"):
        metrics.threshold_metrics(y, np.round(s * 255), pd.Series(0.5, index=LABELS), LABELS)
    # AUC ranks scores: logits are fine there and give the probabilities' AUC
    assert (metrics.roc_auc_per_class(y, logits, LABELS).to_numpy()
            == pytest.approx(metrics.roc_auc_per_class(y, s, LABELS).to_numpy()))
    with pytest.raises(ValueError, match="no value for C"):
        metrics.threshold_metrics(y, s, pd.Series({"A": 0.5, "B": 0.5}), LABELS)


def test_published_auroc_says_which_split_each_column_used():
    table = metrics.published_auroc()
    splits = table.attrs["splits"]
    assert set(splits) == set(table.columns) == set(table.attrs["sources"])
    assert "official" in splits["wang2017"] and "not the official" in splits["chexnet2017"]
    assert table.loc["Atelectasis", "chexnet2017"] == 0.8094 and table["wang2017"].notna().sum() == 14
    assert not any("../shared" in text for text in table.attrs["sources"].values())


def test_load_classifier_needs_no_other_import(fresh_interpreter):
    """A fresh process that imports only helpers.models can load a model saved with the weighted loss."""
    lines = fresh_interpreter.stdout.splitlines()
    assert fresh_interpreter.returncode == 0, fresh_interpreter.stderr[-2000:]
    assert "LOADED WeightedBinaryCrossentropy" in lines, fresh_interpreter.stdout[-2000:]


def test_per_class_metrics_pair_dataframe_columns_by_name_not_position():
    rng = np.random.default_rng(0)
    names = ["Atelectasis", "Effusion", "Mass"]
    y = rng.integers(0, 2, (80, 3))
    scores = np.clip(y * 0.4 + rng.random((80, 3)) * 0.6, 0, 1)
    truth, shuffled = (pd.DataFrame(y, columns=names),
                       pd.DataFrame(scores, columns=names)[["Mass", "Atelectasis", "Effusion"]])
    expected = metrics.roc_auc_per_class(y, scores, names)
    pd.testing.assert_series_equal(metrics.roc_auc_per_class(truth, shuffled, names), expected)
    np.testing.assert_allclose(expected.to_numpy(), [roc_auc_score(y[:, j], scores[:, j]) for j in range(3)])
    pd.testing.assert_series_equal(metrics.choose_thresholds(truth, shuffled, names),
                                   metrics.choose_thresholds(y, scores, names))
    pd.testing.assert_series_equal(metrics.expected_calibration_error(truth, shuffled, per_class=True),
                                   metrics.expected_calibration_error(y, scores, per_class=True, labels=names))
