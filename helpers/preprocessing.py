"""Reading images, normalisation, class weights, augmentation and tf.data pipelines."""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from helpers.errors import DataError


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Read a PNG, TIFF or GIF (grey, RGB, RGBA, palette; 8 or 16 bit) to float32 HxWxC in [0, 1]. Taught in 01_preprocessing_and_splits."""
    path = Path(path)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}.")
    if not path.is_file():
        raise DataError(f"{path}: image file not found. Check the path, or restore the file from the dataset.")
    try:
        with Image.open(path) as img:
            img.load()
            array = _to_float(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{path}: cannot decode the image ({err}). The file is corrupt or truncated: "
            "download it again or remove its row from the CSV."
        ) from None
    if channels == 1 and array.shape[-1] == 3:
        # ITU-R 601 luma, the weights PIL and OpenCV use for RGB -> grey.
        array = (array @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    elif channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def _to_float(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        data = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        return (np.clip(data / scale, 0, 1).astype(np.float32))[..., None]
    if mode == "F":
        return np.asarray(img, dtype=np.float32)[..., None]
    if mode in ("1", "L"):
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    if mode == "LA":
        return (np.asarray(img.convert("L"), dtype=np.float32) / 255.0)[..., None]
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "RGBA":
        # The few RGBA X-rays of ChestX-ray14 are opaque grey: the alpha channel carries nothing.
        img = img.convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    array = np.asarray(img, dtype=np.float32) / 255.0
    if np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 1], array[..., 2]):
        return array[..., :1]
    return array


# --------------------------------------------------------------------------------------------
# Normalisation: statistics come from the training split only.
# --------------------------------------------------------------------------------------------

def fit_normalization(images: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the training images' pixels (never of val or test). Taught in 01_preprocessing_and_splits."""
    images = np.asarray(images, dtype=np.float64)
    if images.size == 0:
        raise DataError("Cannot fit normalisation on an empty training split.")
    std = float(images.std())
    if std == 0.0:
        raise DataError("The training images are constant (standard deviation 0): nothing to normalise.")
    return float(images.mean()), std


def normalization_layer(mean: float, std: float):
    """A Keras Normalization layer with the given training statistics, saved inside the model. Taught in 01_preprocessing_and_splits."""
    return keras.layers.Normalization(mean=mean, variance=std**2, name="normalization")


def imagenet_preprocess(images):
    """Images in [0, 1] (grey or RGB) to the input DenseNet121's ImageNet weights expect. Taught in 01_preprocessing_and_splits."""
    images = keras.ops.convert_to_tensor(images, dtype="float32")
    if images.shape[-1] == 1:
        images = keras.ops.repeat(images, 3, axis=-1)
    # DenseNet was trained in "torch" mode: x/255, then ImageNet mean and std per channel.
    return keras.applications.densenet.preprocess_input(images * 255.0)


# --------------------------------------------------------------------------------------------
# Class imbalance: the weights of the weighted binary cross-entropy.
# --------------------------------------------------------------------------------------------

def class_weights(labels: np.ndarray, names=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class weights ``w_p = negatives/total`` and ``w_n = positives/total`` from the training labels. Taught in 01_preprocessing_and_splits."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise DataError(f"class_weights needs a non-empty (images, classes) array, got shape {labels.shape}.")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError("class_weights needs 0/1 labels; found other values.")
    positive = labels.mean(axis=0)
    absent = np.flatnonzero((positive == 0) | (positive == 1))
    if absent.size:
        named = [names[i] if names is not None else str(i) for i in absent]
        warnings.warn(
            f"Classes {named} are all-negative or all-positive in the training split: their weighted "
            "loss term is zero for one side. Use a split that has both (datasets.patient_split).",
            stacklevel=2,
        )
    return (1.0 - positive).astype(np.float32), positive.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Augmentation with Keras preprocessing layers.
# --------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="medxai")
class RandomRot90(keras.layers.Layer):
    """Rotate each square image by a random multiple of 90 degrees while training. Taught in 01_preprocessing_and_splits."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        ops = keras.ops
        k = keras.random.randint((ops.shape(images)[0],), 0, 4, seed=self._generator)
        rotations = ops.stack([ops.rot90(images, k=i, axes=(1, 2)) for i in range(4)], axis=1)
        onehot = ops.one_hot(k, 4, dtype=images.dtype)[:, :, None, None, None]
        return ops.sum(rotations * onehot, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


AUGMENTATIONS = ("hflip", "vflip", "rot90", "rotate", "shift", "zoom", "contrast", "brightness", "erase", "shear")
PRESETS = {
    # Upright PA films: the heart sits on the patient's left, the diaphragm below. Flips and 90-degree
    # turns make images no scanner produces (and a flipped heart is dextrocardia, a real finding).
    "chest_xray": ("rotate", "shift", "zoom", "contrast", "brightness", "erase", "shear"),
    # A fundus photograph has no fixed up: flips and quarter turns are plausible.
    "fundus": ("hflip", "vflip", "rot90", "contrast", "brightness"),
    # Everything in the lecture's list (../shared/references/002), for comparison.
    "all": AUGMENTATIONS,
}


def augmentation(preset: str | tuple = "chest_xray", seed: int | None = None):
    """A keras.Sequential of random layers for images in [0, 1]: a preset name or a tuple of AUGMENTATIONS. Taught in 01_preprocessing_and_splits."""
    steps = PRESETS.get(preset) if isinstance(preset, str) else tuple(preset)
    if steps is None:
        raise ValueError(f"Unknown augmentation preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    unknown = sorted(set(steps) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"Unknown augmentations {unknown}: choose from {', '.join(AUGMENTATIONS)}.")
    L = keras.layers
    make = {
        "hflip": lambda: L.RandomFlip("horizontal", seed=seed),
        "vflip": lambda: L.RandomFlip("vertical", seed=seed),
        "rot90": lambda: RandomRot90(seed=seed),
        "rotate": lambda: L.RandomRotation(5 / 360, fill_mode="constant", seed=seed),
        "shift": lambda: L.RandomTranslation(0.05, 0.05, fill_mode="constant", seed=seed),
        "zoom": lambda: L.RandomZoom(0.1, fill_mode="constant", seed=seed),
        "contrast": lambda: L.RandomContrast(0.2, value_range=(0, 1), seed=seed),
        "brightness": lambda: L.RandomBrightness(0.1, value_range=(0, 1), seed=seed),
        "erase": lambda: L.RandomErasing(factor=0.5, scale=(0.01, 0.04), fill_value=0.0, value_range=(0, 1), seed=seed),
        "shear": lambda: L.RandomShear(x_factor=0.1, y_factor=0.1, fill_mode="constant", seed=seed),
    }
    return keras.Sequential([make[name]() for name in steps], name=f"augment_{preset if isinstance(preset, str) else 'custom'}")


# --------------------------------------------------------------------------------------------
# tf.data input pipeline.
# --------------------------------------------------------------------------------------------

def decode_png(path, image_size: int, channels: int = 1):
    """Read and decode one PNG (8 or 16 bit, grey or RGBA) and resize it, as float32 in [0, 1]. Taught in 01_preprocessing_and_splits."""
    raw = tf.io.read_file(path)
    image = tf.io.decode_png(raw, channels=channels, dtype=tf.uint16)
    image = tf.cast(image, tf.float32) / 65535.0
    return tf.image.resize(image, (image_size, image_size), antialias=True)


def image_dataset(
    paths,
    labels=None,
    *,
    image_size: int,
    batch_size: int = 32,
    channels: int = 1,
    shuffle: bool = False,
    augment=None,
    cache: bool = True,
    seed: int = 42,
):
    """A tf.data pipeline: parallel PNG decode and resize, cache, shuffle, batch, augment, prefetch. Taught in 01_preprocessing_and_splits."""
    paths = [str(p) for p in paths]
    if not paths:
        raise DataError("image_dataset got no images: the split is empty.")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float32)
        if len(labels) != len(paths):
            raise DataError(f"image_dataset got {len(paths)} images but {len(labels)} label rows.")
    items = tf.data.Dataset.from_tensor_slices(paths if labels is None else (paths, labels))
    autotune = tf.data.AUTOTUNE
    if labels is None:
        ds = items.map(lambda p: decode_png(p, image_size, channels), num_parallel_calls=autotune)
    else:
        ds = items.map(lambda p, y: (decode_png(p, image_size, channels), y), num_parallel_calls=autotune)
    if cache:
        ds = ds.cache()  # decoded once: later epochs read from memory
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        if labels is None:
            ds = ds.map(lambda x: augment(x, training=True), num_parallel_calls=autotune)
        else:
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=autotune)
    return ds.prefetch(autotune)
