"""Segmentation (notebook 03): U-Net, Dice losses, DRIVE preprocessing, patches, sliding window, FOV metrics."""

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from helpers import fundus, losses, metrics, models, preprocessing, synthetic, uncertainty, viz
from helpers.errors import DataError

# ---------------------------------------------------------------------------------- losses


Y = np.array([[1, 1, 0, 0], [0, 1, 0, 0]], np.float32).reshape(2, 2, 2, 1)
P = np.array([[0.9, 0.4, 0.2, 0.0], [0.1, 0.7, 0.0, 0.3]], np.float32).reshape(2, 2, 2, 1)


def test_dice_loss_matches_a_hand_computation():
    # intersection 0.9 + 0.4 + 0.7 = 2.0; sum(y) = 3; sum(p) = 2.6
    assert float(losses.DiceLoss(smooth=0.0)(Y, P)) == pytest.approx(1 - 4.0 / 5.6, abs=1e-6)
    assert float(losses.DiceLoss(smooth=1.0)(Y, P)) == pytest.approx(1 - 5.0 / 6.6, abs=1e-6)
    # with smooth=0 it is Keras' own Dice over the whole batch
    assert float(losses.DiceLoss(smooth=0.0)(Y, P)) == pytest.approx(float(keras.losses.Dice()(Y, P)), abs=1e-5)
    assert float(losses.DiceLoss()(Y, Y)) == pytest.approx(0.0, abs=1e-6)
    assert float(losses.DiceLoss(smooth=0.0)(Y, 1 - Y)) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="smooth must be >= 0"):
        losses.DiceLoss(smooth=-1)


def test_dice_bce_is_dice_plus_weighted_bce():
    p = np.clip(P, 1e-7, 1 - 1e-7)
    bce = -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p))
    dice = 1 - 5.0 / 6.6
    assert float(losses.DiceBCELoss()(Y, P)) == pytest.approx(dice + bce, abs=1e-5)
    assert float(losses.DiceBCELoss(bce_weight=0.5)(Y, P)) == pytest.approx(dice + 0.5 * bce, abs=1e-5)
    assert float(keras.losses.BinaryCrossentropy()(Y, P)) == pytest.approx(bce, abs=1e-4)


# ---------------------------------------------------------------------------------- U-Net


DROPOUTS = ["enc1_dropout", "enc2_dropout", "enc3_dropout", "enc4_dropout", "bottleneck_dropout",
            "dec4_dropout", "dec3_dropout", "dec2_dropout", "dec1_dropout"]  # fmt: skip


def test_unet_is_fully_convolutional_with_named_dropout():
    model = models.unet(base_filters=4)
    assert models.dropout_layer_names(model) == DROPOUTS
    assert model.output_shape == (None, None, None, 1)
    image = np.random.default_rng(0).random((584, 565), np.float32)
    padded, (height, width) = preprocessing.pad_to_multiple(image, 16)
    assert padded.shape == (592, 576) and (height, width) == (584, 565)
    np.testing.assert_array_equal(padded[:584, :565], image)
    np.testing.assert_array_equal(padded[584:590, 0], image[582:576:-1, 0])  # reflection, not zeros
    out = model.predict(padded[None, ..., None], verbose=0)
    assert out.shape == (1, 592, 576, 1) and 0 <= out.min() and out.max() <= 1
    patch = padded[None, :48, :48, None]
    # dropout is off at inference, on when asked for (what MC dropout in notebook 04 relies on)
    np.testing.assert_array_equal(model(patch, training=False), model(patch, training=False))
    assert not np.allclose(model(patch, training=True), model(patch, training=True))
    assert models.dropout_layer_names(models.unet(base_filters=4, dropout_rate=0.0)) == []
    with_bn = models.unet(base_filters=4, depth=2, batch_norm=True)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in with_bn.layers)
    with pytest.raises(ValueError, match=r"input size 50 is not divisible by 2\*\*depth = 16"):
        models.unet(input_shape=(50, 64, 1))


def test_unet_saved_with_dice_loss_loads_without_custom_objects(tmp_path):
    model = models.unet(base_filters=4, depth=2, normalization=(0.4, 0.2))
    model.compile(optimizer="adam", loss=losses.DiceLoss(smooth=2.0))
    x = np.random.default_rng(1).random((4, 16, 16, 1)).astype(np.float32)
    model.fit(x, (x > 0.5).astype(np.float32), epochs=1, verbose=0)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, losses.DiceLoss) and loaded.loss.smooth == 2.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert models.dropout_layer_names(loaded) == ["enc1_dropout", "enc2_dropout", "bottleneck_dropout", "dec2_dropout",
                                                  "dec1_dropout"]
    combined = losses.DiceBCELoss.from_config(losses.DiceBCELoss(smooth=0.5, bce_weight=0.3).get_config())
    assert (combined.smooth, combined.bce_weight) == (0.5, 0.3)


# ---------------------------------------------------------------------------------- preprocessing


def test_green_luma_and_clahe():
    rng = np.random.default_rng(2)
    rgb = rng.random((40, 30, 3)).astype(np.float32)
    np.testing.assert_array_equal(preprocessing.fundus_to_grey(rgb), rgb[..., 1])
    np.testing.assert_allclose(preprocessing.fundus_to_grey(rgb, "luma"), rgb @ [0.299, 0.587, 0.114], atol=1e-6)
    with pytest.raises(ValueError, match="'green' or 'luma'"):
        preprocessing.fundus_to_grey(rgb, "red")
    with pytest.raises(ValueError, match="HxWx3 RGB"):
        preprocessing.fundus_to_grey(rgb[..., 0])
    # a low-contrast image: CLAHE spreads its values
    flat = (0.45 + 0.1 * rng.random((64, 64))).astype(np.float32)
    out = preprocessing.clahe(flat, clip_limit=2.0, tile=4)
    assert out.dtype == np.float32 and out.shape == flat.shape and 0 <= out.min() and out.max() <= 1
    assert out.std() > 2 * flat.std()
    assert preprocessing.clahe(flat[..., None]).shape == (64, 64, 1)


def _disc_fov(height, width):
    yy, xx = np.mgrid[0:height, 0:width]
    return (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (0.45 * min(height, width)) ** 2


def test_patch_centres_lie_inside_the_fov_and_augmentation_is_joint():
    rng = np.random.default_rng(3)
    images = [rng.random((70, 60), np.float32), rng.random((64, 80), np.float32)]
    fovs = [_disc_fov(70, 60), _disc_fov(64, 80)]
    masks = [image > 0.7 for image in images]
    patches = preprocessing.sample_patches(images, masks, fovs, patch_size=16, count=101, seed=4)
    assert patches.images.shape == (101, 16, 16, 1) and patches.masks.shape == patches.fovs.shape == (101, 16, 16, 1)
    index, rows, cols = patches.centres.T
    assert sorted(np.bincount(index).tolist()) == [50, 51]
    assert all(fovs[i][r, c] for i, r, c in patches.centres)
    # whatever flip or turn a patch got, its mask is still the thresholded image: augmented jointly
    np.testing.assert_array_equal(patches.masks, (patches.images > 0.7).astype(np.float32))
    assert set(np.unique(patches.fovs)) <= {0.0, 1.0}
    plain = preprocessing.sample_patches(images, masks, fovs, patch_size=16, count=10, seed=4, augment=False)
    for patch, (i, r, c) in zip(plain.images, plain.centres):
        assert patch[8, 8, 0] == images[i][r, c]  # the centre pixel sits at (p // 2, p // 2)
    again = preprocessing.sample_patches(images, masks, fovs, patch_size=16, count=101, seed=4)
    np.testing.assert_array_equal(again.images, patches.images)


def test_sample_patches_bad_input_names_the_image():
    image, fov = np.zeros((40, 40), np.float32), _disc_fov(40, 40)
    mask = np.zeros((40, 40), bool)
    with pytest.raises(ValueError, match=r"21_training\.tif: patch_size 48 is larger than the image \(40x40"):
        preprocessing.sample_patches([image], [mask], [fov], 48, 5, names=["21_training.tif"])
    with pytest.raises(ValueError, match=r"21_training\.tif: the vessel mask is 39x40 but the image is 40x40"):
        preprocessing.sample_patches([image], [mask[:, :39]], [fov], 16, 5, names=["21_training.tif"])
    with pytest.raises(ValueError, match=r"image 0: the FOV mask is not binary"):
        preprocessing.sample_patches([image], [mask], [fov * 0.5], 16, 5)
    with pytest.raises(ValueError, match=r"image 0: the FOV mask is empty"):
        preprocessing.sample_patches([image], [mask], [np.zeros_like(fov)], 16, 5)


# ---------------------------------------------------------------------------------- sliding window


def identity_model():
    """A 1x1 convolution with weight 1 and bias 0, no activation: returns its input's first channel."""
    inputs = keras.Input((None, None, 2))
    conv = keras.layers.Conv2D(1, 1, use_bias=False)
    outputs = conv(inputs)
    conv.set_weights([np.array([1.0, 0.0], np.float32).reshape(1, 1, 2, 1)])
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("patch_size, stride", [(48, 24), (48, 48), (64, 16), (48, 7)])
def test_sliding_window_reconstructs_the_image_exactly(patch_size, stride):
    rng = np.random.default_rng(5)
    image = rng.random((584, 565, 2), np.float32)
    out = preprocessing.predict_full_image(identity_model(), image, patch_size, stride, batch_size=256)
    assert out.shape == (584, 565) and out.dtype == np.float32
    np.testing.assert_allclose(out, image[..., 0], rtol=0, atol=1e-6)


class RampModel:
    """Not a function of the pixels: predicts a ramp over the patch's own coordinates, and counts predict calls."""

    def __init__(self, patch_size):
        self.ramp = np.arange(patch_size * patch_size, dtype=np.float32).reshape(patch_size, patch_size)
        self.calls = []

    def predict(self, x, batch_size, verbose=0):
        self.calls.append((len(x), batch_size))
        return np.broadcast_to(self.ramp[None, :, :, None], x.shape[:3] + (1,)).copy()


def test_sliding_window_averages_every_covering_window():
    height, width, patch_size, stride = 37, 50, 16, 5
    model = RampModel(patch_size)
    out = preprocessing.predict_full_image(model, np.zeros((height, width)), patch_size, stride, batch_size=7)
    # brute force: pad by patch - stride, windows every `stride` plus one flush with the end
    margin = patch_size - stride
    total, count = (np.zeros((height + 2 * margin, width + 2 * margin)),
                    np.zeros((height + 2 * margin, width + 2 * margin)))
    row_starts = sorted(set(range(0, total.shape[0] - patch_size + 1, stride)) | {total.shape[0] - patch_size})
    col_starts = sorted(set(range(0, total.shape[1] - patch_size + 1, stride)) | {total.shape[1] - patch_size})
    for r in row_starts:
        for c in col_starts:
            total[r : r + patch_size, c : c + patch_size] += model.ramp
            count[r : r + patch_size, c : c + patch_size] += 1
    expected = (total / count)[margin : margin + height, margin : margin + width]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert count[margin : margin + height, margin : margin + width].min() >= (patch_size // stride) ** 2
    # one batched predict call for all windows, not one per patch
    assert model.calls == [(len(row_starts) * len(col_starts), 7)]


@pytest.mark.parametrize(
    "patch_size, stride, message",
    [
        (64, 32, r"01_test\.tif: patch_size 64 is larger than the image \(50x40, WxH\)"),
        (32, 33, r"01_test\.tif: stride 33 is larger than patch_size 32"),
        (32, 0, r"01_test\.tif: stride must be a positive whole number of pixels, not 0"),
        (0, 1, r"01_test\.tif: patch_size must be a positive whole number of pixels, not 0"),
    ],
)
def test_sliding_window_bad_input(patch_size, stride, message):
    with pytest.raises(ValueError, match=message):
        preprocessing.predict_full_image(RampModel(8), np.zeros((40, 50)), patch_size, stride, source="01_test.tif")


# ---------------------------------------------------------------------------------- metrics inside the FOV


def small_example():
    """4x4 image; FOV is the inner 2x2 plus two pixels; outside the FOV: background predicted 0."""
    vessels = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], bool)
    fov = np.array([[0, 0, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0]], bool)
    scores = np.array([[0.0, 0.0, 0.0, 0.0], [0.6, 0.9, 0.3, 0.0], [0.0, 0.8, 0.55, 0.2], [0.0, 0.0, 0.0, 0.0]])
    return vessels, scores, fov


def test_fov_metrics_by_hand_and_against_sklearn():
    vessels, scores, fov = small_example()
    m = metrics.segmentation_metrics(vessels, scores, fov, threshold=0.5)
    # inside the FOV (6 pixels): truth 0 1 1 | 1 0 0 ; predicted (>= 0.5) 1 1 0 | 1 1 0
    tp, fp, fn, tn = 2, 2, 1, 1
    assert m["Dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["accuracy"] == pytest.approx((tp + tn) / 6)
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["pixels"] == 6
    truth, score = vessels[fov], scores[fov]
    assert m["AUC-ROC"] == pytest.approx(roc_auc_score(truth, score))
    assert m["AUC-PR"] == pytest.approx(average_precision_score(truth, score))
    assert m["Dice"] == pytest.approx(f1_score(truth, score >= 0.5))
    # the same prediction scored over the whole image looks much better: the black background
    # outside the FOV is 10 free true negatives
    whole = metrics.segmentation_metrics(vessels, scores, np.ones_like(fov))
    assert (whole["accuracy"] == pytest.approx(accuracy_score(vessels.ravel(), scores.ravel() >= 0.5))
            == pytest.approx(13 / 16))
    assert whole["specificity"] == pytest.approx(11 / 13)
    assert whole["accuracy"] > m["accuracy"] + 0.3 and whole["specificity"] > m["specificity"] + 0.3
    assert whole["AUC-ROC"] != pytest.approx(m["AUC-ROC"])


def test_fov_metrics_on_a_stack_pool_every_pixel():
    rng = np.random.default_rng(6)
    vessels = rng.random((3, 20, 20)) < 0.2
    scores = np.clip(vessels * 0.4 + rng.random((3, 20, 20)) * 0.6, 0, 1)
    fov = np.stack([_disc_fov(20, 20)] * 3)
    m = metrics.segmentation_metrics(vessels, scores[..., None], fov, threshold=0.45)
    assert m["AUC-ROC"] == pytest.approx(roc_auc_score(vessels[fov], scores[fov]))
    assert m["Dice"] == pytest.approx(f1_score(vessels[fov], scores[fov] >= 0.45))


def test_best_f1_threshold_matches_brute_force():
    rng = np.random.default_rng(7)
    vessels = rng.random((30, 30)) < 0.15
    scores = np.round(np.clip(vessels * 0.35 + rng.random((30, 30)) * 0.65, 0, 1), 3)  # with ties
    fov = _disc_fov(30, 30)
    chosen = metrics.best_f1_threshold(vessels, scores, fov)
    truth, score = vessels[fov], scores[fov]
    candidates = np.unique(score)
    f1s = [f1_score(truth, score >= t) for t in candidates]
    assert max(f1s) > f1_score(truth, score >= 0.5)  # the search is worth it here
    assert chosen == pytest.approx(candidates[int(np.argmax(f1s))])
    assert metrics.segmentation_metrics(vessels, scores, fov, threshold=chosen)["Dice"] == pytest.approx(max(f1s))


def test_metrics_bad_input():
    vessels, scores, fov = small_example()
    with pytest.raises(ValueError, match="must have the same shape"):
        metrics.segmentation_metrics(vessels, scores[:3], fov)
    with pytest.raises(DataError, match="the vessel mask: values 0, 0.5 found where only 0 and 1"):
        metrics.segmentation_metrics(vessels * 0.5, scores, fov)
    with pytest.raises(DataError, match="the vessel mask: values 0, 255.*Divide by 255"):
        metrics.best_f1_threshold(vessels.astype(np.uint8) * 255, scores, fov)
    with pytest.raises(DataError, match="the FOV mask: values 0, 2"):
        metrics.segmentation_metrics(vessels, scores, fov * 2)
    with pytest.raises(ValueError, match="the FOV mask is empty"):
        metrics.best_f1_threshold(vessels, scores, np.zeros_like(fov))
    with pytest.raises(DataError, match=r"probabilities inside the FOV: 6 NaN value\(s\), the first at index \(1, 0\)"):
        metrics.segmentation_metrics(vessels, np.where(fov, np.nan, 0), fov)
    # outside the FOV anything goes (it is not scored), e.g. NaN padding
    assert metrics.segmentation_metrics(vessels, np.where(fov, scores, np.nan), fov)["pixels"] == 6
    with pytest.raises(DataError, match="an 8-bit map.*divide by 255"):
        metrics.segmentation_metrics(vessels, np.round(scores * 255).astype(np.uint8), fov)
    with pytest.raises(DataError, match="logits"):
        metrics.best_f1_threshold(vessels, scores * 8 - 4, fov)
    with pytest.raises(ValueError, match="threshold must lie in"):
        metrics.segmentation_metrics(vessels, scores, fov, threshold=128)


def test_overlay_colours():
    vessels, scores, fov = small_example()
    picture = viz.segmentation_overlay(vessels, scores >= 0.5, fov)
    assert tuple(picture[1, 1]) == viz.OVERLAY_COLORS["TP"] and tuple(picture[1, 0]) == viz.OVERLAY_COLORS["FP"]
    assert (tuple(picture[1, 2]) == viz.OVERLAY_COLORS["FN"]
            and tuple(picture[0, 0]) == viz.OVERLAY_COLORS["outside FOV"])


def test_published_drive_results():
    table, dice_losses = metrics.published_drive()
    assert table.loc["orobix_retina_unet", "AUC-ROC"] == 0.9790 and table.loc["orobix_retina_unet", "Dice"] == 0.8161
    assert dice_losses.loc["seo_dice_loss"].tolist() == [0.22, 0.26]
    assert "orobix/retina-unet" in table.attrs["sources"]["orobix_retina_unet"]


# ---------------------------------------------------------------------------------- DRIVE files


def test_second_observer_loads_and_a_bad_one_names_the_file(tmp_path):
    root = synthetic.write_drive(tmp_path / "drive", train_ids=[21], test_ids=[1])
    record = fundus.read_drive(root).test[0]
    image, vessels, fov = fundus.load_drive(record)
    second = fundus.load_second_observer(record, image.shape)
    assert second.shape == vessels.shape == (584, 565) and second.dtype == bool
    assert 0.5 < second.sum() / vessels.sum() < 1.2 and (second & vessels).sum() > 0.5 * vessels.sum()
    assert fundus.load_second_observer(fundus.read_drive(root).train[0], image.shape) is None
    Image.fromarray(np.zeros((584, 564), np.uint8)).save(record.manual2)
    with pytest.raises(DataError, match=r"01_test\.tif is 565x584 \(WxH\) but .*01_manual2\.gif is 564x584"):
        fundus.load_second_observer(record, image.shape)


# ---------------------------------------------------------------------------------- several GPUs, mixed precision


def test_outputs_stay_float32_under_mixed_precision():
    """Under mixed_float16 the hidden layers compute in float16 but every output head returns float32."""
    assert models.use_mixed_precision() is False  # this CPU-only machine: the policy is left alone
    assert keras.mixed_precision.global_policy().name == "float32"
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        built = {
            "unet": models.unet(base_filters=4, depth=2),
            "heteroscedastic_unet": uncertainty.heteroscedastic_unet(base_filters=4, depth=2),
            "densenet121_classifier": models.densenet121_classifier(3, image_size=32, last_block=4),
        }
        for name, model in built.items():
            assert model.layers[-1].dtype_policy.name == "float32", name
            assert model.outputs[0].dtype == "float32", f"{name} returns {model.outputs[0].dtype}"
            hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][0]
            assert hidden.compute_dtype == "float16", f"{name}: the policy did not reach the hidden layers"
        x = np.random.default_rng(0).random((2, 16, 16, 1)).astype("float32")
        out = np.asarray(built["unet"](x))
        assert out.dtype == np.float32 and np.isfinite(out).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_mirrored_strategy_fits_a_unet_on_two_logical_cpus(fresh_interpreter):
    """Two logical CPU devices must be declared before TensorFlow starts: a fresh interpreter (tests/conftest.py)."""
    import re

    assert fresh_interpreter.returncode == 0, fresh_interpreter.stderr[-3000:]
    found = re.search(r"REPLICAS (\d+) (\w+) LOSS (\S+)", fresh_interpreter.stdout)
    assert found, fresh_interpreter.stdout[-2000:]
    assert found.group(1) == "2" and found.group(2) == "MirroredStrategy"
    assert np.isfinite(float(found.group(3))) and float(found.group(3)) > 0


def test_load_model_takes_the_custom_objects_its_message_suggests(tmp_path):
    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    model = keras.Sequential([keras.Input((4,)), Twice(), keras.layers.Dense(1)])
    model.save(tmp_path / "twice.keras")
    with pytest.raises(models.ModelFileError, match=r"custom_objects=\{'Twice': TheClass\}"):
        models.load_model(tmp_path / "twice.keras")
    loaded = models.load_model(tmp_path / "twice.keras", custom_objects={"Twice": Twice})
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
