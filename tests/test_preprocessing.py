"""preprocessing: image reading, normalisation, class weights, augmentation, the tf.data pipeline."""

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import preprocessing
from helpers.errors import DataError

GREY = (np.arange(48 * 40).reshape(40, 48) * 7 % 256).astype(np.uint8)




@pytest.fixture
def images(tmp_path):
    rgb = np.dstack([GREY, 255 - GREY, GREY // 2])
    Image.fromarray(GREY).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([GREY, GREY, GREY, np.full_like(GREY, 255)]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(GREY.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.tif")
    Image.fromarray((GREY > 128).astype(np.uint8) * 255).convert("P").save(tmp_path / "mask.gif")
    return tmp_path


@pytest.mark.parametrize("name", ["grey.png", "rgba.png", "grey16.png"])
def test_grey_8bit_16bit_and_rgba_read_the_same(images, name):
    array = preprocessing.read_image(images / name)
    assert array.dtype == np.float32 and array.shape == (40, 48, 1)
    np.testing.assert_allclose(array[..., 0], GREY / 255.0, atol=1e-6)


def test_rgb_tiff_and_channel_conversion(images):
    rgb = preprocessing.read_image(images / "rgb.tif")
    assert rgb.shape == (40, 48, 3)
    np.testing.assert_allclose(rgb[..., 1], (255 - GREY) / 255.0, atol=1e-6)
    grey = preprocessing.read_image(images / "rgb.tif", channels=1)
    expected = (0.299 * GREY + 0.587 * (255 - GREY) + 0.114 * (GREY // 2)) / 255.0
    np.testing.assert_allclose(grey[..., 0], expected, atol=1e-5)
    assert preprocessing.read_image(images / "grey.png", channels=3).shape == (40, 48, 3)


def test_missing_and_truncated_files_name_the_file(images):
    with pytest.raises(DataError, match=r"nothere\.png: image file not found"):
        preprocessing.read_image(images / "nothere.png")
    data = (images / "grey.png").read_bytes()
    (images / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.png: cannot decode the image.*corrupt or truncated"):
        preprocessing.read_image(images / "cut.png")


def test_normalization_fits_train_only_and_layer_applies_it():
    rng = np.random.default_rng(0)
    train = rng.normal(0.4, 0.1, size=(20, 8, 8, 1))
    mean, std = preprocessing.fit_normalization(train)
    assert mean == pytest.approx(train.mean()) and std == pytest.approx(train.std())
    out = np.asarray(preprocessing.normalization_layer(mean, std)(train.astype("float32")))
    assert abs(out.mean()) < 1e-4 and out.std() == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(DataError, match="constant"):
        preprocessing.fit_normalization(np.ones((3, 4, 4)))


def test_class_weights_match_hand_computation():
    labels = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    with pytest.warns(UserWarning, match=r"\['B'\]"):
        w_p, w_n = preprocessing.class_weights(labels, names=["A", "B", "C"])
    np.testing.assert_allclose(w_p, [2 / 4, 4 / 4, 3 / 4])
    np.testing.assert_allclose(w_n, [2 / 4, 0 / 4, 1 / 4])
    # The point of the weights: positives and negatives contribute equally to the loss.
    positive = labels.mean(0)
    np.testing.assert_allclose(w_p * positive, w_n * (1 - positive))
    with pytest.raises(DataError, match=r"values 0.5, 1 found where only 0 and 1"):
        preprocessing.class_weights(np.array([[0.5, 1.0]]))


def test_imagenet_preprocess_matches_keras_on_rgb_and_expands_grey():
    grey = np.random.default_rng(1).random((2, 8, 8, 1)).astype("float32")
    out = np.asarray(preprocessing.imagenet_preprocess(grey))
    expected = keras.applications.densenet.preprocess_input(np.repeat(grey, 3, -1) * 255.0)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # torch mode: channel 0 is (x - 0.485) / 0.229
    np.testing.assert_allclose(out[..., 0], (grey[..., 0] - 0.485) / 0.229, atol=1e-5)


def test_augmentation_presets_and_errors():
    names = [layer.__class__.__name__ for layer in preprocessing.augmentation("chest_xray").layers]
    assert "RandomFlip" not in names and "RandomRot90" not in names
    assert "RandomFlip" in [layer.__class__.__name__ for layer in preprocessing.augmentation("fundus").layers]
    with pytest.raises(ValueError, match="Unknown augmentation preset 'xray'"):
        preprocessing.augmentation("xray")
    with pytest.raises(ValueError, match=r"Unknown augmentations \['twirl'\]"):
        preprocessing.augmentation(("contrast", "twirl"))
    batch = np.random.default_rng(2).random((4, 16, 16, 1)).astype("float32")
    out = np.asarray(preprocessing.augmentation("all", seed=3)(batch, training=True))
    assert out.shape == batch.shape and not np.allclose(out, batch)
    np.testing.assert_array_equal(np.asarray(preprocessing.augmentation("all")(batch, training=False)), batch)


def test_rot90_turns_by_quarters_and_round_trips_through_keras_file(tmp_path):
    batch = np.random.default_rng(4).random((16, 6, 6, 1)).astype("float32")
    layer = preprocessing.RandomRot90(seed=5)
    out = np.asarray(layer(batch, training=True))
    turns = []
    for x, y in zip(batch, out):
        matches = [k for k in range(4) if np.array_equal(np.rot90(x, k, axes=(0, 1)), y)]
        assert matches, "RandomRot90 produced something that is not a quarter turn"
        turns.append(matches[0])
    assert len(set(turns)) > 1, "16 images all turned the same way"
    model = keras.Sequential([keras.Input((6, 6, 1)), preprocessing.RandomRot90(seed=1)])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[0], preprocessing.RandomRot90)


def test_pipeline_decodes_like_read_image(images, tmp_path):
    paths = [images / "grey.png", images / "rgba.png", images / "grey16.png"]
    labels = np.eye(3)
    ds = preprocessing.image_dataset(paths, labels, image_size=40, batch_size=2)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [2, 1]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), labels)
    # decode + resize to 40x40 (from 40x48): compare with PIL read + the same resize
    ref = keras.ops.image.resize(preprocessing.read_image(paths[0])[None], (40, 40), antialias=True)
    for i in range(3):
        np.testing.assert_allclose(x[i], np.asarray(ref)[0], atol=2e-3)
    with pytest.raises(DataError, match="split is empty"):
        preprocessing.image_dataset([], image_size=8)
    with pytest.raises(DataError, match="3 images but 2 label rows"):
        preprocessing.image_dataset(paths, labels[:2], image_size=8)


# ---------------------------------------------------------------- full scale: streaming statistics, disk cache


def test_streaming_normalization_matches_the_in_memory_fit(tmp_path):
    # an offset of 1000 makes the naive sum-of-squares formula lose digits; the running moments must not
    rng = np.random.default_rng(7)
    images = 1000.0 + rng.normal(0.0, 0.05, size=(37, 16, 16, 1))
    reference = (images.mean(), images.std())  # numpy, float64, all in memory
    uneven = [images[:1], images[1:20], images[20:21], images[21:]]
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros((37, 2)))).batch(8)  # (x, y) batches
    for source in (images, uneven, iter(uneven), dataset):
        mean, std = preprocessing.fit_normalization(source)
        assert mean == pytest.approx(reference[0], abs=1e-6) and std == pytest.approx(reference[1], rel=1e-6)
    # PNG paths, decoded by the pipeline: the same numbers as the decoded images held in memory
    pixels = (rng.random((5, 24, 24)) * 255).astype(np.uint8)
    paths = []
    for i, array in enumerate(pixels):
        Image.fromarray(array).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    in_memory = preprocessing.fit_normalization(preprocessing.load_images(paths, 24))
    streamed = preprocessing.fit_normalization(paths, image_size=24, batch_size=2)
    np.testing.assert_allclose(streamed, in_memory, atol=1e-6)
    np.testing.assert_allclose(in_memory, (pixels.mean() / 255, pixels.std() / 255), atol=1e-6)


def test_disk_cache_serves_later_epochs_without_the_files(tmp_path):
    paths = []
    for i in range(3):
        Image.fromarray(GREY[:, :40] // (i + 1)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    labels = np.eye(3)
    cached = preprocessing.image_dataset(paths, labels, image_size=20, batch_size=2, cache="disk",
                                         cache_dir=tmp_path / "cache")
    uncached = preprocessing.image_dataset(paths, labels, image_size=20, batch_size=2, cache=None)
    first = np.concatenate([x for x, _ in cached])
    assert list((tmp_path / "cache").glob("images_20px_1ch_3*.index")), "the cache files should be under cache_dir"
    for path in paths:
        path.unlink()
    np.testing.assert_array_equal(np.concatenate([x for x, _ in cached]), first)  # read back from disk
    with pytest.raises(Exception, match=r"0\.png: cannot read or decode"):
        list(uncached)  # without a cache the second epoch needs the files


def test_pipeline_failure_names_the_file_inside_model_fit(tmp_path):
    """model.fit iterates the dataset itself: the error that stops it names the broken file."""
    paths = []
    for i in range(4):
        Image.fromarray(GREY[:, :40]).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    data = bytearray(paths[2].read_bytes())
    start = data.find(b"IDAT") + 12
    data[start : start + 30] = bytes(b ^ 0xFF for b in data[start : start + 30])
    paths[2].write_bytes(bytes(data))
    model = keras.Sequential(
        [keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(2, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    ds = preprocessing.image_dataset(paths, np.eye(4)[:, :2], image_size=16, batch_size=2)
    with pytest.raises(Exception, match=r"2\.png: cannot read or decode this PNG \(corrupt"):
        model.fit(ds, epochs=1, verbose=0, shuffle=False)


def test_disk_caches_of_two_splits_do_not_mix(tmp_path):
    """Two splits of the same size and image size, cached in one folder, each read back their own images."""
    for i in range(4):
        Image.fromarray(np.full((16, 16), 40 * (i + 1), np.uint8)).save(tmp_path / f"{i}.png")
    first, second = [tmp_path / "0.png", tmp_path / "1.png"], [tmp_path / "2.png", tmp_path / "3.png"]
    means = []
    for split in (first, second):
        ds = preprocessing.image_dataset(split, image_size=8, batch_size=2, cache="disk", cache_dir=tmp_path / "cache")
        means.append(float(np.concatenate(list(ds)).mean()))
    np.testing.assert_allclose(means, [60 / 255, 140 / 255], atol=1e-3)
    assert len(list((tmp_path / "cache").glob("*.index"))) == 2


# ---- scales from the file, never from the pixels (issue 19) ----------------------------------------------------


def test_float_tiff_outside_0_1_is_refused_naming_the_file_and_the_range(tmp_path):
    Image.fromarray(np.array([[0.0, 1200.5], [3000.0, 4095.0]], np.float32)).save(tmp_path / "raw.tif")
    with pytest.raises(DataError, match=r"raw\.tif: a 32-bit float image \(mode F\) with values from 0 to 4095, "
                                        r"outside \[0, 1\].*Scale it to \[0, 1\]"):
        preprocessing.read_image(tmp_path / "raw.tif")
    Image.fromarray(np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)).save(tmp_path / "unit.tif")
    np.testing.assert_allclose(preprocessing.read_image(tmp_path / "unit.tif")[..., 0], [[0, 0.25], [0.5, 1]])


def test_32bit_integer_images_are_16bit_data_scaled_by_65535_whatever_they_hold(tmp_path):
    dark = np.array([[0, 100], [200, 255]], np.int32)  # once read as 8-bit (/255) because no pixel passed 255
    Image.fromarray(dark).save(tmp_path / "dark.tif")
    assert Image.open(tmp_path / "dark.tif").mode == "I"
    with pytest.warns(UserWarning, match="below 4096"):  # scaled by the depth all the same, and said
        np.testing.assert_allclose(preprocessing.read_image(tmp_path / "dark.tif")[..., 0], dark / 65535.0, rtol=1e-6)
    Image.fromarray(np.array([[0, 70000]], np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(DataError, match=r"wide\.tif: a mode I image with values from 0 to 70000, outside the 0 to "
                                        r"65535 of 16-bit data"):
        preprocessing.read_image(tmp_path / "wide.tif")
    # A 16-bit PNG: one pixel above 255 or not, the scale is 65535.
    Image.fromarray(np.array([[0, 255]], np.uint16)).save(tmp_path / "low16.png")
    with pytest.warns(UserWarning, match="low16.png.*below 4096"):
        np.testing.assert_allclose(preprocessing.read_image(tmp_path / "low16.png")[0, :, 0], [0, 255 / 65535],
                                   rtol=1e-6)


def _png_with_sbit(path, pixels, sbit):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add(b"sBIT", bytes([sbit]))
    Image.fromarray(pixels).save(path, pnginfo=info)
    return path


def test_png_sbit_scales_unscaled_samples_and_leaves_standard_scaled_ones(tmp_path):
    twelve = (np.arange(64).reshape(8, 8) * 65).astype(np.uint16)  # 0 to 4095: 12-bit values, not scaled up
    assert preprocessing._png_sbit(_png_with_sbit(tmp_path / "raw12.png", twelve, 12)) == 12
    np.testing.assert_allclose(preprocessing.read_image(tmp_path / "raw12.png")[..., 0], twelve / 4095.0, rtol=1e-6)
    # Scaled to 16 bits as the PNG standard asks (left shift, or bit replication): sBIT only informs, read by 65535.
    for name, scaled in [("shift.png", twelve << 4), ("repl.png", (twelve << 4) | (twelve >> 8))]:
        _png_with_sbit(tmp_path / name, scaled.astype(np.uint16), 12)
        np.testing.assert_allclose(preprocessing.read_image(tmp_path / name)[..., 0], scaled / 65535.0, rtol=1e-6)
    odd = twelve.copy()
    odd[0, 0] = 60000
    with pytest.raises(DataError,
                       match=r"odd\.png: its sBIT chunk says 12 significant bits, but the values reach 60000"):
        preprocessing.read_image(_png_with_sbit(tmp_path / "odd.png", odd, 12))
    Image.fromarray(twelve).save(tmp_path / "plain.png")
    assert preprocessing._png_sbit(tmp_path / "plain.png") is None  # no sBIT: the depth, 65535
