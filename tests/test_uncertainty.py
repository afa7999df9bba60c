"""uncertainty, MCDropout, the heteroscedastic loss and calibration: against hand computations."""

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from helpers import losses, metrics, uncertainty
from helpers.errors import DataError


def small_bn_model(rate=0.5, seed=0):
    """Conv + BatchNorm (with non-trivial moving statistics) + Dropout + sigmoid head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.Dropout(rate, name="drop")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", name="out")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.3, "float32"))
    bn.moving_variance.assign(np.full(4, 2.0, "float32"))
    return model


def images(n=3, seed=1):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype("float32")


def test_mc_dropout_layer_is_on_at_inference_and_off_at_rate_zero():
    x = np.ones((2, 100), "float32")
    layer = uncertainty.MCDropout(0.5)
    assert (np.asarray(layer(x, training=False)) == 0).any()
    assert np.array_equal(np.asarray(uncertainty.MCDropout(0.0)(x, training=False)), x)


def test_batchnorm_stays_in_inference_mode_and_its_statistics_are_untouched():
    model = small_bn_model()
    mc = uncertainty.with_mc_dropout(model, rate=None)
    assert [type(mc.get_layer("drop"))] == [uncertainty.MCDropout]
    x = images()
    # With dropout rate 0 the MC model must equal the deterministic inference-mode model exactly.
    zero = uncertainty.with_mc_dropout(model)
    zero.get_layer("drop").rate = 0.0
    expected = np.asarray(model(x, training=False))
    assert np.allclose(np.asarray(zero(x, training=False)), expected, atol=1e-6)
    # ... and by hand: BatchNorm with the moving statistics, not the batch's.
    bn = model.get_layer("bn")
    conv = np.asarray(model.get_layer("conv")(x))
    normed = (conv - 0.3) / np.sqrt(2.0 + bn.epsilon) * np.asarray(bn.gamma) + np.asarray(bn.beta)
    w, b = (np.asarray(v) for v in model.get_layer("out").weights)
    by_hand = 1 / (1 + np.exp(-(np.maximum(normed, 0) @ w[0, 0] + b)))
    assert np.allclose(by_hand, expected, atol=1e-5)
    # the common bug differs: training=True uses the batch statistics
    with_batch_stats = np.asarray(uncertainty.with_mc_dropout(model, rate=0.01)(x, training=True))
    assert not np.allclose(with_batch_stats, expected, atol=1e-2)
    before = [np.asarray(v).copy() for v in mc.get_layer("bn").weights]
    draws = uncertainty.mc_predict(mc, x, samples=8)
    assert draws.shape == (8, 3, 8, 8, 1)
    for old, new in zip(before, mc.get_layer("bn").weights):
        assert np.array_equal(old, np.asarray(new)), "MC sampling must not update BatchNorm's moving statistics"


def test_mc_predict_samples_differ_and_mean_converges_to_the_dropout_expectation():
    mc = uncertainty.with_mc_dropout(small_bn_model(rate=0.5))
    x = images(2)
    a, b = uncertainty.mc_predict(mc, x, samples=4), uncertainty.mc_predict(mc, x, samples=4)
    assert not np.allclose(a, b)
    assert not np.allclose(a[0], a[1]), "the T samples of one call must differ"
    many = uncertainty.mc_predict(mc, x, samples=400, batch_size=100)
    half1, half2 = many[:200].mean(0), many[200:].mean(0)
    assert np.abs(half1 - half2).max() < 0.1
    # several compiled calls (small batch_size) give the same layout: (T, N, ...)
    chunked = uncertainty.mc_predict(mc, x, samples=6, batch_size=5)
    assert chunked.shape == (6, 2, 8, 8, 1)


def test_weights_are_copied_into_the_clone():
    model = small_bn_model()
    mc = uncertainty.with_mc_dropout(model)
    for name in ("conv", "bn", "out"):
        for a, b in zip(model.get_layer(name).weights, mc.get_layer(name).weights):
            assert np.array_equal(np.asarray(a), np.asarray(b))


def test_bad_inputs_say_what_is_wrong():
    model = small_bn_model()
    mc = uncertainty.with_mc_dropout(model)
    with pytest.raises(ValueError, match="samples must be a whole number >= 2"):
        uncertainty.mc_predict(mc, images(), samples=1)
    with pytest.raises(ValueError, match="plain Dropout is off at inference"):
        uncertainty.mc_predict(model, images(), samples=3)
    plain = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 1)])
    with pytest.raises(ValueError, match="has no Dropout layer"):
        uncertainty.mc_predict(plain, images(), samples=3)
    with pytest.raises(ValueError, match="has no Dropout layer"):
        uncertainty.with_mc_dropout(plain)
    with pytest.raises(ValueError, match="rank 3"):
        uncertainty.mc_predict(mc, images()[0], samples=3)
    with pytest.raises(ValueError, match="axis 3 differs"):
        uncertainty.mc_predict(mc, np.zeros((2, 8, 8, 3), "float32"), samples=3)


def test_decompose_matches_a_hand_computation():
    samples = np.array([[0.9, 0.5], [0.7, 0.5], [0.8, 0.5]])  # T=3, two outputs

    def h(p):
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))

    u = uncertainty.decompose(samples)
    assert np.allclose(u.mean, [0.8, 0.5])
    assert np.allclose(u.total, [h(0.8), np.log(2)])
    assert np.allclose(u.aleatoric, [(h(0.9) + h(0.7) + h(0.8)) / 3, np.log(2)])
    assert np.allclose(u.epistemic, u.total - u.aleatoric) and u.epistemic[0] > 0
    assert np.isclose(u.epistemic[1], 0.0), "agreeing samples carry no epistemic uncertainty"
    assert np.allclose(u.variance, [np.var([0.9, 0.7, 0.8]), 0.0])
    with pytest.raises(ValueError, match="T >= 2"):
        uncertainty.decompose(samples[:1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        uncertainty.decompose(samples + 1)


def test_referral_curve_by_hand():
    y = np.array([1, 0, 1, 0])
    score = np.array([0.9, 0.1, 0.2, 0.8])  # the last two are wrong ...
    unsure = np.array([0.1, 0.2, 0.9, 0.8])  # ... and the most uncertain
    curve = uncertainty.referral_curve(y, score, unsure, roc_auc_score, fractions=[0.0, 0.5])
    assert np.isclose(curve.loc[0.0, "metric"], roc_auc_score(y, score))
    assert curve.loc[0.5, "kept"] == 2 and curve.loc[0.5, "metric"] == 1.0
    with pytest.raises(ValueError, match="same length"):
        uncertainty.referral_curve(y, score, unsure[:3], roc_auc_score)
    baseline = uncertainty.random_referral(y, score, lambda t, s: float(np.mean((s > 0.5) == t)), fractions=[0.0])
    assert np.isclose(baseline.loc[0.0, "metric"], 0.5)


def test_expected_calibration_error_by_hand():
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.15, 0.85, 0.95, 0.95])
    # bins of width 0.5: [0.05, 0.15, 0.15] -> conf 0.35/3, freq 1/3; [0.85, 0.95, 0.95] -> conf 2.75/3, freq 2/3
    ece = metrics.expected_calibration_error(y, p, bins=2)
    assert np.isclose(ece, 0.5 * abs(1 / 3 - 0.35 / 3) + 0.5 * abs(2 / 3 - 2.75 / 3))
    table = metrics.reliability_table(y, p, bins=10)
    assert list(table["count"]) == [1, 2, 1, 2] and table["count"].sum() == 6
    assert metrics.expected_calibration_error([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.expected_calibration_error(y, p[:3])


def test_expected_calibration_error_per_class_by_hand():
    y = np.array([[0, 1], [0, 1], [1, 0], [1, 1]])
    p = np.array([[0.1, 0.9], [0.3, 0.6], [0.8, 0.2], [0.9, 0.7]])
    # class A, bins of width 0.5: [0.1, 0.3] -> conf 0.2, freq 0; [0.8, 0.9] -> conf 0.85, freq 1
    ece_a = 0.5 * 0.2 + 0.5 * 0.15
    # class B: [0.2] -> conf 0.2, freq 0; [0.9, 0.6, 0.7] -> conf 2.2/3, freq 1
    ece_b = 0.25 * 0.2 + 0.75 * (1 - 2.2 / 3)
    per_class = metrics.expected_calibration_error(y, p, bins=2, per_class=True, labels=["A", "B"])
    assert per_class.to_dict() == pytest.approx({"A": ece_a, "B": ece_b})
    # pooled: all eight predictions in one set of bins; [0.1 0.3 0.2] conf 0.2 freq 0, the rest 0.8 and 1
    pooled = 3 / 8 * 0.2 + 5 / 8 * (1 - (0.9 + 0.6 + 0.8 + 0.9 + 0.7) / 5)
    assert metrics.expected_calibration_error(y, p, bins=2) == pytest.approx(pooled)
    assert list(metrics.expected_calibration_error(y, p, bins=2, per_class=True).index) == [0, 1]
    with pytest.raises(ValueError, match="per_class=True needs"):
        metrics.expected_calibration_error(y[:, 0], p[:, 0], per_class=True)
    with pytest.raises(ValueError, match="2 classes in the arrays but 3 label names"):
        metrics.expected_calibration_error(y, p, per_class=True, labels=["A", "B", "C"])


def test_calibration_uses_the_shared_checks():
    y, p = np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9])
    with pytest.raises(DataError, match="y_true.*255.*Divide by 255"):
        metrics.expected_calibration_error(y * 255, p)
    with pytest.raises(DataError, match="y_prob.*sigmoid"):
        metrics.reliability_table(y, p - 1)
    with pytest.raises(DataError, match=r"NaN.*index \(2, 1\)"):
        metrics.expected_calibration_error(np.zeros((3, 2)), np.array([[0.1, 0.2], [0.3, 0.4], [0.5, np.nan]]),
                                           per_class=True)


def test_nan_uncertainty_and_nan_samples_are_refused_with_their_position():
    y, score = np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.2, 0.8])
    with pytest.raises(DataError, match=r"uncertainty.*NaN.*index 2"):
        uncertainty.referral_curve(y, score, np.array([0.1, 0.2, np.nan, 0.8]), roc_auc_score)
    samples = np.full((3, 2, 4), 0.5)
    samples[1, 0, 3] = np.nan
    with pytest.raises(DataError, match=r"MC samples.*NaN.*index \(1, 0, 3\)"):
        uncertainty.decompose(samples)
    with pytest.raises(DataError, match="sigmoid"):
        uncertainty.decompose(np.full((3, 2), -1.5))  # logits, not probabilities


def test_heteroscedastic_loss_reduces_to_bce_without_variance_and_rewards_variance_on_errors():
    y = np.array([[[[1.0]], [[0.0]]]], "float32").reshape(1, 2, 1, 1)
    logits = np.array([2.0, 1.0], "float32").reshape(1, 2, 1, 1)
    certain = np.concatenate([logits, np.full_like(logits, -30.0)], axis=-1)
    loss = losses.HeteroscedasticBCE(samples=50, seed=0)
    p = 1 / (1 + np.exp(-np.array([2.0, 1.0])))
    bce = -(np.log(p[0]) + np.log(1 - p[1])) / 2
    assert np.isclose(float(loss(y, certain)), bce, atol=1e-4)
    # a confidently wrong pixel costs less when the model admits a large variance there
    wrong_y = np.zeros((1, 1, 1, 1), "float32")
    sure = np.array([6.0, -30.0], "float32").reshape(1, 1, 1, 2)
    unsure = np.array([6.0, 4.0], "float32").reshape(1, 1, 1, 2)
    assert float(loss(wrong_y, unsure)) < float(loss(wrong_y, sure))
    with pytest.raises(ValueError, match="2 output channels"):
        loss(y, logits)


def test_saved_models_load_back_without_custom_objects(tmp_path):
    hetero = uncertainty.heteroscedastic_unet(input_shape=(16, 16, 1), base_filters=2, depth=1)
    hetero.compile("adam", losses.HeteroscedasticBCE(samples=3))
    mc = uncertainty.with_mc_dropout(hetero)
    mc.compile("adam", losses.HeteroscedasticBCE(samples=3))
    mc.save(tmp_path / "h.keras")
    back = keras.models.load_model(tmp_path / "h.keras", safe_mode=True)
    assert isinstance(back.get_layer("enc1_dropout"), uncertainty.MCDropout)
    assert isinstance(back.loss, losses.HeteroscedasticBCE)
    assert back.output_shape == (None, 16, 16, 2)


def test_insert_mc_dropout_keeps_the_head_weights_and_the_original_untouched():
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, name="avg_pool")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid", name="predictions")(hidden))
    mc = uncertainty.insert_mc_dropout(model, rate=0.3)
    assert isinstance(mc.get_layer("mc_dropout"), uncertainty.MCDropout)
    for a, b in zip(model.get_layer("predictions").weights, mc.layers[-1].weights):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert mc.layers[-1] is not model.get_layer("predictions")
    with pytest.raises(ValueError, match="not the output layer"):
        uncertainty.insert_mc_dropout(model, before="avg_pool")
    draws = uncertainty.mc_predict(mc, np.ones((3, 5), "float32"), samples=5)
    assert draws.shape == (5, 3, 2) and draws.std(0).max() > 0
    assert isinstance(pd.DataFrame(draws[:, 0]), pd.DataFrame)
