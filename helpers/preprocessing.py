"""Reading images, normalisation, class weights, augmentation and tf.data pipelines."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import NamedTuple

import cv2
import keras
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from helpers import errors
from helpers.errors import DataError


def read_image(path: str | Path, channels: int | None = None) -> np.ndarray:
    """Read a PNG, TIFF or GIF (grey, RGB, RGBA, palette; 8 or 16 bit) to float32 HxWxC in [0, 1].

    Integers are scaled by the file's bit depth (255, 65535), never by what the pixels hold; a grey PNG's sBIT
    chunk (significant bits) is honoured. Floats (TIFF mode F) are taken as they are and must lie in [0, 1].

    Taught in 01_preprocessing_and_splits.
    """
    path = Path(path)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}.")
    if not path.is_file():
        raise DataError(f"{path}: image file not found. Check the path, or restore the file from the dataset.")
    try:
        with Image.open(path) as img:
            img.load()
            array = _to_float(img, path, _png_sbit(path) if img.format == "PNG" else None)
    except DataError:
        raise
    except Image.DecompressionBombError as err:
        raise DataError(
            f"{path}: refused as a possible decompression bomb ({err}). If you trust this file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS before reading it; otherwise leave it out (in a dataset, remove its row "
            "from the CSV)."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{path}: cannot decode the image ({err}). It is not a PNG, TIFF, GIF or JPEG image, or it is corrupt "
            "or truncated: export or download it again, or, in a dataset, remove its row from the CSV."
        ) from None
    if channels == 1 and array.shape[-1] == 3:
        # ITU-R 601 luma, the weights PIL and OpenCV use for RGB -> grey.
        array = (array @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    elif channels == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def _png_sbit(path: Path) -> int | None:
    """The first value of a PNG's sBIT chunk (significant bits of the grey or red channel), None without one.

    PIL does not read sBIT (Pillow 13 leaves it out of ``img.info``), so the chunks before the image data are walked
    here.
    """
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = handle.read(8)
            if len(head) < 8 or head[4:] in (b"IDAT", b"IEND"):
                return None
            length = int.from_bytes(head[:4], "big")
            if head[4:] == b"sBIT":
                data = handle.read(length)
                return data[0] if data else None
            handle.seek(length + 4, 1)  # the chunk's data and CRC


def _scale(data: np.ndarray, depth: int, sbit: int | None, path: Path, mode: str) -> np.ndarray:
    """Integers to [0, 1] by the bit depth, or by 2**sbit - 1 when a PNG's sBIT says fewer bits carry the image."""
    top = 2**depth - 1
    low, high = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if low < 0 or high > top:
        raise DataError(f"{path}: a mode {mode} image with values from {low} to {high}, outside the 0 to {top} of "
                        f"{depth}-bit data. Save it as an 8- or 16-bit grey PNG (values scaled to 0-{top}), or read it "
                        "yourself and scale it to [0, 1].")
    if sbit is not None and 0 < sbit < depth:
        shift = depth - sbit
        kept = data >> shift
        # The PNG standard (sample depth scaling) asks encoders to scale samples up to the full depth, by a left
        # shift, bit replication or exact rounding; sBIT then only says how many bits were there. Those are read
        # by the depth; samples left unscaled (all within 0 to 2**sbit - 1) by 2**sbit - 1.
        replicated, at = np.zeros_like(data), depth - sbit
        while at > -sbit:
            replicated |= (kept << at) if at >= 0 else (kept >> -at)
            at -= sbit
        exact = np.rint(kept * (top / (2**sbit - 1))).astype(data.dtype)
        if not any(np.array_equal(data, scaled) for scaled in (kept << shift, replicated, exact)):
            if high > 2**sbit - 1:
                raise DataError(f"{path}: its sBIT chunk says {sbit} significant bits, but the values reach {high} "
                                f"(above {2**sbit - 1}) and are not {sbit}-bit values scaled to {depth} bits either. "
                                "The file is inconsistent: save it again without sBIT, or with the right one.")
            top = 2**sbit - 1
    elif sbit is None and depth == 16 and 0 < high < 2**12:
        warnings.warn(f"{path}: a 16-bit image whose values stay below {2**12} (at most {high}): if it holds 10- or "
                      "12-bit detector data it reads near black, since the scale comes from the bit depth, not the "
                      "pixels. Save it with an sBIT chunk that says how many bits are used, or scale it to 16 bits.",
                      UserWarning, stacklevel=4)
    return (data.astype(np.float64) / top).astype(np.float32)


def _to_float(img: Image.Image, path: Path | str = "image", sbit: int | None = None) -> np.ndarray:
    """A PIL image as float32 HxWxC in [0, 1], scaled by its bit depth (or a PNG's sBIT), never by its content."""
    mode = img.mode
    path = Path(path)
    if mode.startswith("I;16") or mode == "I":
        # I;16*: 16-bit files. I: 32-bit integers, in practice 16-bit data widened: read as 16-bit, refused above.
        data = np.asarray(img).astype(np.int64)
        return _scale(data, 16, sbit, path, mode)[..., None]
    if mode == "F":
        data = errors.check_finite(np.asarray(img, dtype=np.float32), f"{path} pixels")
        low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
        if low < 0 or high > 1:
            raise DataError(f"{path}: a 32-bit float image (mode F) with values from {low:g} to {high:g}, outside "
                            "[0, 1]; floats are read as they are, since their scale is not in the file. Scale it to "
                            "[0, 1] before saving (divide by the detector's maximum, e.g. 65535 for 16-bit data), or "
                            "save it as a 16-bit grey PNG.")
        return data[..., None]
    if mode in ("1", "L", "LA"):
        data = np.asarray(img.convert("L")).astype(np.int64)
        return _scale(data, 8, sbit if mode != "1" else None, path, mode)[..., None]
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

class _Moments:
    """Exact running mean and variance in float64, batch by batch (Chan, Golub and LeVeque's pairwise update)."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, batch: np.ndarray) -> None:
        n = batch.size
        if n == 0:
            return
        mean = float(batch.mean())
        m2 = float(np.square(batch - mean).sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total


def _is_paths(items) -> bool:
    """True for a non-empty list, tuple, array or pandas Series of file paths."""
    if isinstance(items, (str, os.PathLike)) or not hasattr(items, "__len__") or isinstance(items, tf.data.Dataset):
        return False
    if hasattr(items, "dtype"):
        try:
            kind = np.dtype(items.dtype).kind
        except TypeError:  # pandas' own string dtype (the default for text columns in pandas 3)
            kind = "O"
        if kind not in "OUS":
            return False
    first = next(iter(items), None) if len(items) else None
    return isinstance(first, (str, os.PathLike))


def _batches(images, image_size, channels, batch_size):
    """Yield (name, array) for each batch of ``images``: an array, PNG paths, a tf.data dataset or an iterable of
    batches."""
    if _is_paths(images):
        if image_size is None:
            raise ValueError("fit_normalization got file paths: pass image_size= (the size the model reads them at).")
        images = image_dataset(list(images), image_size=image_size, batch_size=batch_size, channels=channels,
                               cache=None)
    elif isinstance(images, np.ndarray) or (isinstance(images, (list, tuple)) and images and np.isscalar(images[0])):
        images = np.atleast_1d(np.asarray(images))
        if images.dtype.kind not in "biuf" or not np.isfinite(images).all():
            errors.check_finite(images, "fit_normalization images")  # raises, naming the first bad position
        # in chunks: a float64 copy of a whole training split would double its memory
        step = max(1, len(images) // 16) if images.ndim > 1 else max(1, images.size)
        for start in range(0, max(len(images), 1), step):
            yield "fit_normalization images", images[start : start + step]
        return
    for index, batch in enumerate(images):
        if isinstance(batch, (tuple, list)) and not np.isscalar(batch[0]):
            batch = batch[0]  # (images, labels) from a labelled dataset
        yield f"fit_normalization batch {index}", batch


def fit_normalization(images, image_size: int | None = None, channels: int = 1,
                      batch_size: int = 64) -> tuple[float, float]:
    """Mean and std of the training pixels (never val or test), from an array, an iterable of batches, a tf.data dataset
    or PNG paths (with image_size), streamed in float64.

    Taught in 01_preprocessing_and_splits.
    """
    moments = _Moments()
    try:
        for what, batch in _batches(images, image_size, channels, batch_size):
            moments.add(errors.check_finite(batch, what))
    except tf.errors.OpError as err:
        raise _named(err) from None
    if moments.count == 0:
        raise DataError("Cannot fit normalisation on an empty training split.")
    std = float(np.sqrt(moments.m2 / moments.count))
    if std == 0.0:
        raise DataError("The training images are constant (standard deviation 0): nothing to normalise.")
    return moments.mean, std


def normalization_layer(mean: float, std: float):
    """A Keras Normalization layer with the given training statistics, saved inside the model.

    Taught in 01_preprocessing_and_splits.
    """
    return keras.layers.Normalization(mean=mean, variance=std**2, name="normalization")


def imagenet_preprocess(images):
    """Images in [0, 1] (grey or RGB) to the input DenseNet121's ImageNet weights expect.

    Taught in 01_preprocessing_and_splits.
    """
    images = keras.ops.convert_to_tensor(images, dtype="float32")
    if images.shape[-1] == 1:
        images = keras.ops.repeat(images, 3, axis=-1)
    # DenseNet was trained in "torch" mode: x/255, then ImageNet mean and std per channel.
    return keras.applications.densenet.preprocess_input(images * 255.0)


# --------------------------------------------------------------------------------------------
# Class imbalance: the weights of the weighted binary cross-entropy.
# --------------------------------------------------------------------------------------------

def class_weights(labels: np.ndarray, names=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class weights ``w_p = negatives/total`` and ``w_n = positives/total`` from the training labels.

    Taught in 01_preprocessing_and_splits.
    """
    labels = errors.check_labels(labels, "class_weights labels").astype(np.float64)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise DataError(f"class_weights needs a non-empty (images, classes) array, got shape {labels.shape}.")
    positive = labels.mean(axis=0)
    absent = np.flatnonzero((positive == 0) | (positive == 1))
    if absent.size:
        named = [names[i] if names is not None else str(i) for i in absent]
        warnings.warn(
            f"Classes {named} are all-negative or all-positive in the training split: their weighted "
            "loss term is zero for one side. Use a split that has both (splits.patient_split).",
            stacklevel=2,
        )
    return (1.0 - positive).astype(np.float32), positive.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Augmentation with Keras preprocessing layers.
# --------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="medxai")
class RandomRot90(keras.layers.Layer):
    """Rotate each square image by a random multiple of 90 degrees while training.

    Taught in 01_preprocessing_and_splits.
    """

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
    # Every augmentation the series offers, for comparison.
    "all": AUGMENTATIONS,
}


def augmentation(preset: str | tuple = "chest_xray", seed: int | None = None):
    """A keras.Sequential of random layers for images in [0, 1]: a preset name or a tuple of AUGMENTATIONS.

    Taught in 01_preprocessing_and_splits.
    """
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
    return keras.Sequential([make[name]() for name in steps],
                            name=f"augment_{preset if isinstance(preset, str) else 'custom'}")


# --------------------------------------------------------------------------------------------
# tf.data input pipeline.
# --------------------------------------------------------------------------------------------

def decode_png(path, image_size: int, channels: int = 1):
    """Read and decode one PNG (8 or 16 bit, grey or RGBA) and resize it, as float32 in [0, 1].

    Taught in 01_preprocessing_and_splits.
    """
    raw = tf.io.read_file(path)
    image = tf.io.decode_png(raw, channels=channels, dtype=tf.uint16)
    image = tf.cast(image, tf.float32) / 65535.0
    return tf.image.resize(image, (image_size, image_size), antialias=True)


def _png_pixels(raw):
    """Width x height from a PNG's IHDR chunk (bytes 16-24, big-endian), without decoding the image."""
    size = tf.cast(tf.io.decode_raw(tf.strings.substr(raw, 16, 8), tf.uint8), tf.int64)
    width = size[0] * 2**24 + size[1] * 2**16 + size[2] * 2**8 + size[3]
    height = size[4] * 2**24 + size[5] * 2**16 + size[6] * 2**8 + size[7]
    return width * height


def _decoded_in_order(paths: list[str], image_size: int, channels: int, labels=None):
    """Every image (with its label row) in path order, decoded in parallel; a file that fails names itself instead of
    stopping the run anonymously.

    tf.data cannot catch an op's error inside the graph, and the decoder's own message ("Invalid PNG
    data, size 4228") names no file. So a failing element is dropped (``ignore_errors``) and the gap
    it leaves in the running index is what raises, with that index's path in the message. A sentinel
    after the last element catches a failure of the last file. The check compares two integers per
    image: it costs nothing beside the decode.
    """
    table = tf.constant(paths)
    count = len(paths)
    shape = (image_size, image_size, channels)
    # A PNG header may announce any size; decoding a 100 000 x 100 000 "bomb" would exhaust the memory.
    # The limit is PIL's (as in read_image), checked on the header before anything is decoded.
    max_pixels = Image.MAX_IMAGE_PIXELS or 2**62
    limit = tf.constant(max_pixels, tf.int64)

    def decode(index):
        raw = tf.io.read_file(table[index])
        too_big = _png_pixels(raw) > limit
        image = tf.cond(too_big, lambda: tf.zeros(shape), lambda: tf.ensure_shape(
            tf.image.resize(tf.cast(tf.io.decode_png(raw, channels=channels, dtype=tf.uint16), tf.float32) / 65535.0,
                            (image_size, image_size), antialias=True), shape))
        return index, too_big, image

    decoded = tf.data.Dataset.range(count).map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    decoded = decoded.ignore_errors().concatenate(
        tf.data.Dataset.from_tensors((tf.constant(count, tf.int64), tf.constant(False), tf.zeros(shape)))
    )

    label_table = None if labels is None else tf.constant(labels)

    def check(expected, item):
        index, too_big, image = item
        path = table[tf.minimum(expected, count - 1)]
        decode_failed = tf.debugging.Assert(tf.equal(index, expected), [tf.strings.join([
            path, ": cannot read or decode this PNG (corrupt or truncated data). Open it with PIL to see, "
            "then replace the file or remove its row from the split"])])
        with tf.control_dependencies([decode_failed]):
            bomb = tf.debugging.Assert(tf.logical_not(too_big), [tf.strings.join([
                path, f": the PNG header announces more than {max_pixels} pixels, the decompression-bomb limit of PIL; "
                "check the file, or raise PIL.Image.MAX_IMAGE_PIXELS before building the pipeline if you trust it"])])
        with tf.control_dependencies([bomb]):
            image = tf.identity(image)
        return image if label_table is None else (image, tf.gather(label_table, expected))

    # ignore_errors leaves the length unknown to tf.data; it is count (a gap raises above), and saying so lets
    # Keras know the number of batches instead of warning that the input "ran out of data" at the end
    return tf.data.Dataset.zip(tf.data.Dataset.range(count + 1), decoded).take(count).map(
        check, num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True).apply(tf.data.experimental.assert_cardinality(count))


_TF_MESSAGE = re.compile(r"assertion failed: \[(.*?)\]", re.S)


def _named(err: Exception) -> DataError:
    """The DataError to raise for a tf.data error: our message naming the file if the pipeline wrote one."""
    found = _TF_MESSAGE.search(str(err))
    if found:
        return DataError(found.group(1) + ".")
    return DataError(f"the input pipeline failed: {str(err).splitlines()[0]}")


CACHES = ("memory", "disk", None)


def image_dataset(
    paths,
    labels=None,
    *,
    image_size: int,
    batch_size: int = 32,
    channels: int = 1,
    shuffle: bool = False,
    augment=None,
    cache: str | bool | None = "memory",
    cache_dir=None,
    seed: int = 42,
):
    """A tf.data pipeline: parallel PNG decode and resize (a failing file is named), cache in memory or on disk,
    shuffle, batch, augment, prefetch.

    Taught in 01_preprocessing_and_splits.
    """
    paths = [str(p) for p in paths]
    cache = {True: "memory", False: None}.get(cache, cache) if isinstance(cache, bool) else cache
    if cache not in CACHES:
        raise ValueError(f"cache must be 'memory', 'disk' or None, not {cache!r}.")
    if cache == "disk" and cache_dir is None:
        raise ValueError("cache='disk' needs cache_dir=, a folder for the cache files (tens of GB at full scale).")
    if not paths:
        raise DataError("image_dataset got no images: the split is empty.")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(
            f"{missing[0]}: image file not found ({len(missing)} of {len(paths)} files missing). "
            "Check the data folder (manifests.verify lists every missing file) or restore the files."
        )
    if labels is not None:
        labels = errors.check_labels(labels, "image_dataset labels")
        if len(labels) != len(paths):
            raise DataError(f"image_dataset got {len(paths)} images but {len(labels)} label rows.")
    autotune = tf.data.AUTOTUNE
    ds = _decoded_in_order(paths, image_size, channels, labels)
    if cache == "memory":
        ds = ds.cache()  # decoded once: later epochs read from memory
    elif cache == "disk":
        # Decoded once into files under cache_dir: later epochs (and later runs with the same files) read them.
        # The file name fingerprints the paths, labels and size, so two splits never share a cache.
        folder = Path(cache_dir)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha1("\n".join(paths).encode())
        digest.update(b"" if labels is None else labels.tobytes())
        ds = ds.cache(str(folder / f"images_{image_size}px_{channels}ch_{len(paths)}_{digest.hexdigest()[:12]}"))
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        if labels is None:
            ds = ds.map(lambda x: augment(x, training=True), num_parallel_calls=autotune)
        else:
            ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=autotune)
    return ds.prefetch(autotune)


# --------------------------------------------------------------------------------------------
# DRIVE: fundus photographs to one grey channel, CLAHE, patches, sliding-window inference.
# --------------------------------------------------------------------------------------------



LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as read_image(..., channels=1)


def fundus_to_grey(image, method: str = "green") -> np.ndarray:
    """An RGB fundus photograph (HxWx3 in [0, 1]) to one HxW float32 channel: the green channel or the luma.

    Taught in 03_unet_vessels.
    """
    if method not in ("green", "luma"):
        raise ValueError(f"method must be 'green' or 'luma', not {method!r}.")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"fundus_to_grey needs an HxWx3 RGB image, got shape {image.shape}.")
    if method == "green":
        # Vessels absorb green light most: the green channel has the best vessel/background contrast.
        return image[..., 1].copy()
    return image @ np.asarray(LUMA, dtype=np.float32)


def _check_unit_range(image: np.ndarray, what: str) -> None:
    """Raise DataError unless the image lies in [0, 1], with the likely cause (8-bit, 16-bit, standardised)."""
    low, high = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
    tolerance = 1e-6
    if low >= -tolerance and high <= 1 + tolerance:
        return
    if low < -tolerance:
        hint = "a standardised image? apply it to the image in [0, 1], before standardising"
    elif high <= 255:
        hint = "an 8-bit image? divide by 255 (read_image returns [0, 1])"
    else:
        hint = "a 16-bit image? divide by 65535 (read_image returns [0, 1])"
    raise DataError(f"{what}: values from {low:g} to {high:g}, but it expects an image in [0, 1] ({hint}).")


def clahe(image, clip_limit: float = 2.0, tile: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV, on uint8) of an HxW image in [0, 1]; float32 in [0, 1]
    back.

    Taught in 03_unet_vessels.
    """
    image = errors.check_finite(image, "clahe image").astype(np.float32)
    squeeze = image.ndim == 3 and image.shape[-1] == 1
    grey = image[..., 0] if squeeze else image
    if grey.ndim != 2:
        raise ValueError(f"clahe needs one grey channel (HxW or HxWx1), got shape {image.shape}.")
    _check_unit_range(grey, "clahe image")
    if clip_limit <= 0 or int(tile) < 1:
        raise ValueError(f"clip_limit must be > 0 and tile >= 1, got clip_limit={clip_limit!r}, tile={tile!r}.")
    as_uint8 = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
    equalised = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile), int(tile))).apply(as_uint8)
    out = equalised.astype(np.float32) / 255.0
    return out[..., None] if squeeze else out


def _as_hwc(image, what: str = "image") -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"{what} must be HxW or HxWxC, got shape {image.shape}.")
    return image


def _name(source) -> str:
    return f"{source}: " if source is not None else ""


def _check_window(shape, patch_size: int, stride: int | None, source=None) -> None:
    height, width = shape[:2]
    if not isinstance(patch_size, (int, np.integer)) or patch_size <= 0:
        raise ValueError(f"{_name(source)}patch_size must be a positive whole number of pixels, not {patch_size!r}.")
    if patch_size > min(height, width):
        raise ValueError(
            f"{_name(source)}patch_size {patch_size} is larger than the image ({width}x{height}, WxH): "
            f"choose a patch of at most {min(height, width)} pixels."
        )
    if stride is not None:
        if not isinstance(stride, (int, np.integer)) or stride <= 0:
            raise ValueError(f"{_name(source)}stride must be a positive whole number of pixels, not {stride!r}.")
        if stride > patch_size:
            raise ValueError(
                f"{_name(source)}stride {stride} is larger than patch_size {patch_size}: pixels between the "
                "windows would never be predicted. Use stride <= patch_size (patch_size // 2 is common)."
            )


def pad_to_multiple(image, multiple: int, mode: str = "reflect") -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an HxW(xC) image at the bottom and right to a multiple of ``multiple`` (a U-Net needs 2**depth); returns
    (padded, (H, W)).

    Taught in 03_unet_vessels.
    """
    image = np.asarray(image)
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, not {multiple!r}.")
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode=mode), (height, width)


class Patches(NamedTuple):
    """Training patches: images (N,p,p,C), masks and fovs (N,p,p,1) float32, centres (N,3) as (image, row, col).

    Taught in 03_unet_vessels.
    """

    images: np.ndarray
    masks: np.ndarray
    fovs: np.ndarray
    centres: np.ndarray


def sample_patches(images, masks, fovs, patch_size: int, count: int, seed: int = 42, augment: bool = True,
                   names=None) -> Patches:
    """``count`` random square patches centred inside the FOV, spread evenly over the images, with the same flip/quarter
    turn for image, mask and FOV.

    Taught in 03_unet_vessels.
    """
    images = [_as_hwc(image) for image in images]
    masks = [np.asarray(mask) for mask in masks]
    fovs = [np.asarray(fov) for fov in fovs]
    if not images:
        raise ValueError("sample_patches got no images.")
    if not len(images) == len(masks) == len(fovs):
        raise ValueError(f"sample_patches got {len(images)} images, {len(masks)} masks and {len(fovs)} FOV masks: "
                         "one of each per image.")
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive whole number of patches, not {count!r}.")
    channels = {image.shape[-1] for image in images}
    if len(channels) != 1:
        raise ValueError(f"the images have different channel counts {sorted(channels)}.")
    rng = np.random.default_rng(seed)
    per_image = np.full(len(images), count // len(images))
    per_image[rng.permutation(len(images))[: count % len(images)]] += 1
    half = patch_size // 2
    out_x = np.empty((count, patch_size, patch_size, images[0].shape[-1]), np.float32)
    out_y = np.empty((count, patch_size, patch_size, 1), np.float32)
    out_f = np.empty((count, patch_size, patch_size, 1), np.float32)
    centres = np.empty((count, 3), np.int64)
    n = 0
    if names is not None and len(names) != len(images):
        raise ValueError(f"sample_patches got {len(images)} images but {len(names)} names.")
    for index, (image, mask, fov) in enumerate(zip(images, masks, fovs)):
        source = names[index] if names is not None else f"image {index}"
        _check_window(image.shape, patch_size, None, source=source)
        for what, m in (("vessel mask", mask), ("FOV mask", fov)):
            if m.shape != image.shape[:2]:
                raise ValueError(f"{source}: the {what} is {m.shape[1]}x{m.shape[0]} but the image is "
                                 f"{image.shape[1]}x{image.shape[0]} (WxH): they must match pixel for pixel.")
            if not np.isin(m, (0, 1)).all():
                raise ValueError(f"{source}: the {what} is not binary (values other than 0/1 or False/True).")
        rows, cols = np.nonzero(fov)
        if rows.size == 0:
            raise ValueError(f"{source}: the FOV mask is empty: no pixel to centre a patch on.")
        # Reflection padding: a patch centred near the border still has patch_size x patch_size pixels.
        stack = np.concatenate([image, mask[..., None].astype(np.float32), fov[..., None].astype(np.float32)], -1)
        stack = np.pad(stack, ((half, patch_size - half), (half, patch_size - half), (0, 0)), mode="reflect")
        picks = rng.integers(0, rows.size, per_image[index])
        for r, c in zip(rows[picks], cols[picks]):
            window = stack[r : r + patch_size, c : c + patch_size]  # centre (r, c) sits at (half, half)
            if augment:
                # one of the 8 symmetries of the square, the same for the image and its masks
                window = np.rot90(window, k=int(rng.integers(4)))
                if rng.integers(2):
                    window = window[:, ::-1]
            out_x[n], out_y[n], out_f[n] = window[..., :-2], window[..., -2:-1], window[..., -1:]
            centres[n] = (index, r, c)
            n += 1
    return Patches(out_x, out_y, out_f, centres)


def window_starts(length: int, patch_size: int, stride: int) -> np.ndarray:
    """Start offsets of the sliding windows along one padded axis of ``length`` pixels (the last one flush with the
    end).

    Taught in 03_unet_vessels.
    """
    starts = np.arange(0, length - patch_size + 1, stride)
    if starts[-1] != length - patch_size:
        starts = np.append(starts, length - patch_size)
    return starts


def predict_full_image(model, image, patch_size: int, stride: int, batch_size: int = 64, source=None) -> np.ndarray:
    """Sliding-window inference on an image of any size: overlapping patches (reflection-padded borders), batched
    predictions averaged per pixel; HxW float32.

    Taught in 03_unet_vessels.
    """
    image = _as_hwc(errors.check_finite(image, f"{_name(source)}predict_full_image image".lstrip()))
    _check_window(image.shape, patch_size, stride, source=source)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size!r}.")
    height, width, channels = image.shape
    # Every pixel, border pixels included, gets the same (patch_size / stride)**2 windows: pad by
    # patch_size - stride on each side, mirroring the image so the padding looks like fundus.
    margin = patch_size - stride
    padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    rows = window_starts(padded.shape[0], patch_size, stride)
    cols = window_starts(padded.shape[1], patch_size, stride)
    views = np.lib.stride_tricks.sliding_window_view(padded, (patch_size, patch_size), axis=(0, 1))
    patches = views[rows[:, None], cols[None, :]]  # (rows, cols, C, p, p): one copy, no Python loop
    patches = np.ascontiguousarray(patches.reshape(-1, channels, patch_size, patch_size).transpose(0, 2, 3, 1))
    predictions = np.asarray(model.predict(patches, batch_size=batch_size, verbose=0), dtype=np.float32)
    if predictions.shape[:3] != patches.shape[:3]:
        raise ValueError(
            f"{_name(source)}the model returned shape {predictions.shape[1:]} for {patch_size}x{patch_size} patches: "
            "sliding-window inference needs a model whose output has its input's height and width."
        )
    predictions = predictions[..., 0].reshape(len(rows), len(cols), patch_size, patch_size)
    total = np.zeros(padded.shape[:2], np.float32)
    counts = np.zeros(padded.shape[:2], np.float32)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            total[r : r + patch_size, c : c + patch_size] += predictions[i, j]
            counts[r : r + patch_size, c : c + patch_size] += 1.0
    return (total / counts)[margin : margin + height, margin : margin + width]


def tile_windows(height: int, width: int, tile: int,
                 margin: int) -> list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """The overlap-tile plan of an image: per tile, (core r0, r1, c0, c1) and (window r0, r1, c0, c1), the window being
    the core plus ``margin`` of context, clipped to the image.

    Taught in 08_cells_counting.
    """
    if tile < 1 or margin < 0:
        raise ValueError(f"tile must be >= 1 and margin >= 0, not tile={tile!r}, margin={margin!r}.")
    plan = []
    for r0 in range(0, height, tile):
        for c0 in range(0, width, tile):
            r1, c1 = min(r0 + tile, height), min(c0 + tile, width)
            plan.append(
                ((r0, r1, c0, c1),
                 (max(0, r0 - margin), min(height, r1 + margin), max(0, c0 - margin), min(width, c1 + margin))))
    return plan


def predict_tiled(predict, image, *, tile: int = 256, margin: int = 48, multiple: int = 8,
                  out_dtype=np.float32) -> np.ndarray:
    """Predict a large HxWxC image tile by tile (the overlap-tile strategy of Ronneberger et al.): memory set by the
    tile, not the image.

    The image is padded (reflect) at the bottom and right to a multiple of ``multiple`` (2**depth for a U-Net);
    each tile is predicted inside a window of ``margin`` pixels of context on every side, clipped to the image,
    and only its core is kept, so a fully convolutional model gives the untiled answer wherever its receptive
    field fits in the margin. ``predict(window)`` takes (h, w, C) and returns (..., h, w, K): leading axes (such as
    T dropout samples) are kept. ``tile`` and ``margin`` must be multiples of ``multiple``, so every window
    starts on the pooling grid of the whole image. Returns (..., H, W, K) in ``out_dtype``.

    Taught in 08_cells_counting.
    """
    for name, value in (("tile", tile), ("margin", margin)):
        if value % multiple:
            raise ValueError(f"{name}={value} must be a multiple of {multiple} (the model's pooling grid).")
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = image[..., None]
    padded, (height, width) = pad_to_multiple(image, multiple)
    out = None
    for (r0, r1, c0, c1), (w0, w1, v0, v1) in tile_windows(padded.shape[0], padded.shape[1], tile, margin):
        result = np.asarray(predict(padded[w0:w1, v0:v1]))
        if result.shape[-3:-1] != (w1 - w0, v1 - v0):
            raise ValueError(f"predict returned shape {result.shape} for a {w1 - w0}x{v1 - v0} window: it must keep "
                             "the window's height and width in its last axes but one.")
        if out is None:
            out = np.zeros(result.shape[:-3] + padded.shape[:2] + result.shape[-1:], out_dtype)
        out[..., r0:r1, c0:c1, :] = result[..., r0 - w0:r1 - w0, c0 - v0:c1 - v0, :]
    return out[..., :height, :width, :]


def load_images(paths, image_size: int, channels: int = 1) -> np.ndarray:
    """PNG files as one float32 array (images, size, size, channels) in [0, 1], decoded by the tf.data pipeline.

    Taught in 05_saliency.
    """
    batches = image_dataset(paths, image_size=image_size, batch_size=64, channels=channels, cache=None)
    try:
        return np.concatenate([np.asarray(batch) for batch in batches])
    except tf.errors.OpError as err:
        raise _named(err) from None
