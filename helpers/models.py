"""Models of the series: the DenseNet121 chest X-ray classifier (notebook 02), the U-Net (03), loading saved models.

Monte-Carlo dropout and the heteroscedastic U-Net are in ``helpers.uncertainty``.
"""


from __future__ import annotations

import re
import socket
import urllib.parse
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np

from helpers import config
from helpers.errors import DataError
from helpers import losses as _losses  # noqa: F401  registers the custom losses, so a saved model loads back

if TYPE_CHECKING:  # the tables two functions return; pandas is imported where they build them
    import pandas as pd

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DENSENET_WEIGHTS_FILE = "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
DENSENET_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/densenet/" + DENSENET_WEIGHTS_FILE
)
# The layer whose output ends each dense block (after its BatchNorm + ReLU): the feature map a head,
# Grad-CAM or a box reads. Block 5 is the full network (input/32 wide); block 4 is input/16 wide.
DENSENET_FEATURES = {4: "pool4_relu", 5: "relu"}
# File name under cfg.models_dir of the chest X-ray classifier notebook 02 trains and 04-06 reuse.
CLASSIFIER_FILE = "densenet121_nih.keras"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in the Keras cache nor downloadable from here.

    Taught in 02_densenet_transfer.
    """


def imagenet_weights_path() -> Path:
    """Where Keras keeps DenseNet121's ImageNet weights (no top) once downloaded.

    Taught in 02_densenet_transfer.
    """
    return config.keras_home() / "models" / DENSENET_WEIGHTS_FILE


def _reachable(url: str, timeout: float) -> bool:
    host = urllib.parse.urlparse(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_weights(weights, timeout: float = 3.0):
    """``"imagenet"`` to the cached file (or a download, if reachable), a path checked, ``None`` kept.

    Taught in 02_densenet_transfer.
    """
    if weights is None:
        return None
    if weights != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(f"{path}: weights file not found. Pass an existing .h5 file, "
                                          "'imagenet' or None.")
        return str(path)
    cached = imagenet_weights_path()
    if cached.is_file():
        return str(cached)
    if _reachable(DENSENET_WEIGHTS_URL, timeout):
        return "imagenet"  # Keras downloads it into the cache, once
    raise WeightsUnavailableError(
        f"DenseNet121's ImageNet weights are not in the Keras cache ({cached}) and the download server cannot be "
        f"reached from here. Either copy {DENSENET_WEIGHTS_FILE} from a machine with internet "
        "(it appears in ~/.keras/models/ after `keras.applications.DenseNet121(include_top=False)`) to "
        f"{cached.parent}/, or continue with weights=None: random initialisation, which the lab profile "
        "uses (slower to learn, no transfer)."
    )


MIN_DENSENET_SIZE = 32  # five halvings leave a 1x1 map; smaller fails inside Keras's pooling


def densenet121_classifier(
    num_classes: int = 14,
    image_size: int = 224,
    weights=None,
    channels: int = 1,
    last_block: int = 5,
    dropout_rate: float = 0.0,
    name: str = "densenet121_chestxray",
) -> keras.Model:
    """DenseNet121 + global average pooling + sigmoid head, as one flat functional model on [0, 1] images.

    Taught in 02_densenet_transfer.
    """
    if last_block not in DENSENET_FEATURES:
        raise ValueError(f"last_block must be one of {sorted(DENSENET_FEATURES)}, not {last_block!r}.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), not {channels!r}.")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < MIN_DENSENET_SIZE:
        raise ValueError(f"image_size {image_size!r} is too small for DenseNet121: it halves the image five times, so "
                         f"it needs at least {MIN_DENSENET_SIZE} pixels a side (the series uses 64 to 224).")
    resolved = resolve_weights(weights)
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = inputs
    if channels == 1:
        # ImageNet filters expect three channels: the grey image is fed three times.
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    # The model takes [0, 1] images and applies the ImageNet statistics itself ("torch" mode),
    # so a saved model carries its own preprocessing.
    x = keras.layers.Normalization(
        mean=list(IMAGENET_MEAN), variance=[s**2 for s in IMAGENET_STD], name="imagenet_normalization"
    )(x)
    backbone = keras.applications.DenseNet121(include_top=False, weights=resolved, input_tensor=x)
    features = backbone.get_layer(DENSENET_FEATURES[last_block]).output
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name="head_dropout")(x)
    # float32 whatever the global policy: under mixed_float16 a float16 sigmoid rounds 0.9996 to 1.
    outputs = keras.layers.Dense(num_classes, activation="sigmoid", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def feature_layer_name(model: keras.Model) -> str:
    """Name of the last convolutional feature map of a classifier built here (for Grad-CAM and boxes).

    Taught in 02_densenet_transfer.
    """
    for layer_name in (DENSENET_FEATURES[5], DENSENET_FEATURES[4]):
        try:
            model.get_layer(layer_name)
            return layer_name
        except ValueError:
            continue
    raise ValueError(f"{model.name} has none of the DenseNet feature layers {sorted(DENSENET_FEATURES.values())}.")


def _block_of(layer) -> int | None:
    """Dense block (1-5) a DenseNet121 layer belongs to (a transition layer poolK_ counts with block K); None outside
    the backbone."""
    name = layer.name
    if isinstance(layer, keras.layers.ZeroPadding2D) or name.startswith(("conv1_", "pool1")):
        return 1
    for block in (2, 3, 4, 5):
        if name.startswith((f"conv{block}_", f"pool{block}_")):
            return block
    return 5 if name in ("bn", "relu") else None


def set_trainable_blocks(model: keras.Model, blocks: int, train_batchnorm: bool = False) -> list[str]:
    """Make the last ``blocks`` dense blocks trainable (0 freezes the backbone, 5 frees all); BatchNorm stays in
    inference mode unless asked.

    Taught in 02_densenet_transfer.
    """
    if not 0 <= blocks <= 5:
        raise ValueError(f"blocks must be between 0 (frozen backbone) and 5 (all), not {blocks!r}.")
    first_trainable = 6 - blocks
    trainable = []
    for layer in model.layers:
        block = _block_of(layer)
        if block is None:
            continue
        on = block >= first_trainable
        if isinstance(layer, keras.layers.BatchNormalization) and not train_batchnorm:
            # Keras 3: a BatchNormalization with trainable=False runs in inference mode,
            # using (and keeping) the moving statistics, which fine-tuning must not disturb.
            on = False
        layer.trainable = on
        if on and layer.weights:
            trainable.append(layer.name)
    return trainable


class ModelFileError(DataError):
    """A file or folder that is not a ``.keras`` model this series can load safely.

    Taught in 02_densenet_transfer.
    """


_HDF5 = b"\x89HDF\r\n\x1a\n"


def _describe(path: Path) -> str:
    """What a file that is not a .keras archive looks like from its first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "an empty file"
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"GIF8", "a GIF image"), (b"II*\x00", "a TIFF image"),
                        (b"MM\x00*", "a TIFF image"), (b"\xff\xd8", "a JPEG image"), (b"\x1f\x8b", "a gzip file"),
                        (b"%PDF", "a PDF document")):
        if head.startswith(magic):
            return kind
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown kind"
    first = text.strip().splitlines()[0][:60] if text.strip() else ""
    return f"a text file (it starts {first!r})"


def _hdf5_kind(path: Path) -> str:
    try:
        import h5py

        with h5py.File(path, "r") as handle:
            return "model" if "model_config" in handle.attrs else "weights"
    except Exception:  # an unreadable HDF5 file: treat it as a legacy model file
        return "model"


def _check_model_file(path: Path, hint: str) -> None:
    """Raise ModelFileError (or FileNotFoundError) saying what ``path`` is when it is not a .keras archive."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise ModelFileError(
                f"{path}: a TensorFlow SavedModel folder, which Keras 3 cannot load as a model. In the TensorFlow "
                "and Keras version that wrote it, load it with tf.keras.models.load_model and save it with "
                "model.save('name.keras'); for inference only, keras.layers.TFSMLayer(path, "
                "call_endpoint='serving_default') wraps it as a layer."
            )
        raise ModelFileError(f"{path}: a folder, not a model file. Pass the .keras file inside it.")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved model here. {hint}")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == _HDF5:
        if _hdf5_kind(path) == "weights":
            raise ModelFileError(
                f"{path}: an HDF5 file of weights only, not a model. Build the model first (e.g. "
                "models.densenet121_classifier or models.unet with the same settings) and call "
                "model.load_weights on it."
            )
        raise ModelFileError(
            f"{path}: a legacy HDF5 model file (.h5), which this series does not load (it bypasses Keras safe "
            "mode). Load it with keras.models.load_model(path, compile=False) in the Keras version that "
            "wrote it and save it again with model.save('name.keras')."
        )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path}: not a Keras model file (.keras is a zip archive); found {_describe(path)}. "
            "Was it saved with model.save('name.keras')?"
        )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if "config.json" not in names:
        listed = ", ".join(sorted(names)[:4]) or "nothing"
        raise ModelFileError(
            f"{path}: a zip archive but not a Keras model (no config.json inside; it holds {listed}). "
            "Was it saved with model.save('name.keras')?"
        )


_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def load_model(path, custom_objects=None,
               hint: str = "Check the path, or run the notebook that saves it.") -> keras.Model:
    """Load a ``.keras`` model in Keras safe mode, or say what the file is instead (legacy .h5, SavedModel, unregistered
    layer) and what to do.

    Taught in 02_densenet_transfer.
    """
    from helpers import uncertainty  # noqa: F401  registers MCDropout, which a saved MC model holds

    path = Path(path)
    _check_model_file(path, hint)
    try:
        with warnings.catch_warnings():
            # the optimizer's saved slots serve only to resume that training; a model loaded to predict, or
            # compiled again, does not use them, and Keras's warning about them reads like an error
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, custom_objects=custom_objects, safe_mode=True)
    except Exception as err:  # a model Keras cannot rebuild fails in many places inside Keras
        message = str(err)
        unknown = _UNKNOWN_CLASS.search(message)
        if unknown:
            name = unknown.group(1)
            raise ModelFileError(
                f"{path}: the model uses {name!r}, a custom class that is not registered in this Python session. "
                "Import the module that defines it (the class must be decorated with "
                "@keras.saving.register_keras_serializable) before loading, or pass "
                f"custom_objects={{{name.split('>')[-1]!r}: TheClass}} to models.load_model."
            ) from None
        if "Lambda" in message and "safe_mode" in message:
            raise ModelFileError(
                f"{path}: the model holds a Lambda layer (arbitrary Python code), which safe mode refuses to run. "
                "Rebuild the model with a registered layer in place of the Lambda and save it again."
            ) from None
        first = message.strip().splitlines()[0][:200] if message.strip() else type(err).__name__
        raise ModelFileError(
            f"{path}: a .keras archive that Keras could not rebuild ({type(err).__name__}: {first}). It may be "
            "damaged, or written by another Keras version: save it again from the notebook that trained it."
        ) from None


def load_classifier(path, labels) -> keras.Model:
    """Load a saved ``.keras`` classifier safely and check it predicts one output per label.

    Taught in 02_densenet_transfer.
    """
    model = load_model(path, hint="Run notebook 02 (it saves the model) or check the path.")
    outputs = model.output_shape[-1]
    if outputs != len(labels):
        raise ModelFileError(
            f"{path}: the model predicts {outputs} outputs but there are {len(labels)} labels; "
            "it was trained for another label set."
        )
    return model


# --------------------------------------------------------------------------------------------
# Several GPUs, mixed precision
# --------------------------------------------------------------------------------------------


def strategy(devices=None):
    """MirroredStrategy over several GPUs (or the given devices), else TensorFlow's default strategy; build and compile
    inside ``with strategy().scope():``.

    Taught in 03_unet_vessels.
    """
    import tensorflow as tf

    if devices is not None:
        devices = list(devices)
        if len(devices) < 2:
            raise ValueError(f"strategy(devices=...) needs at least two devices to mirror, got {devices!r}.")
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


def use_mixed_precision() -> bool:
    """Turn on the ``mixed_float16`` policy when a GPU is present (output layers stay float32); returns whether it did.

    Taught in 03_unet_vessels.
    """
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return False  # on a CPU float16 is slower, not faster
    keras.mixed_precision.set_global_policy("mixed_float16")
    return True


def peak_memory_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the platform does not say).

    Taught in 08_cells_counting.
    """
    import sys

    try:
        import resource  # Unix
    except ImportError:  # Windows: the peak working set
        try:
            import psutil

            return float(psutil.Process().memory_info().peak_wset) / 2**20
        except (ImportError, AttributeError):
            return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux


def count_parameters(model: keras.Model) -> tuple[int, int]:
    """(trainable, frozen) parameter counts, to check what a freeze did.

    Taught in 02_densenet_transfer.
    """
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return trainable, frozen


# --------------------------------------------------------------------------------------------
# U-Net for retinal vessel segmentation (notebook 03; notebook 04 samples it with MC dropout)
# --------------------------------------------------------------------------------------------

# File name under cfg.models_dir of the vessel U-Net notebook 03 trains and notebook 04 reuses.
UNET_FILE = "unet_drive.keras"


def _unet_block(x, filters: int, prefix: str, dropout_rate: float, batch_norm: bool):
    """Two 3x3 convolutions (+ BatchNorm) + ReLU, with dropout between them (as in orobix/retina-unet)."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm, name=f"{prefix}_conv{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
        if i == 1 and dropout_rate:
            x = keras.layers.Dropout(dropout_rate, name=f"{prefix}_dropout")(x)
    return x


def unet(
    input_shape=(None, None, 1),
    base_filters: int = 16,
    depth: int = 4,
    dropout_rate: float = 0.1,
    batch_norm: bool = False,
    name: str = "unet",
    normalization: tuple[float, float] | None = None,
) -> keras.Model:
    """Fully convolutional U-Net (Ronneberger 2015; nine levels at depth 4) with named dropout per block and a 1-channel
    sigmoid output.

    Taught in 03_unet_vessels.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a whole number >= 1, not {depth!r}.")
    if base_filters < 1:
        raise ValueError(f"base_filters must be >= 1, not {base_filters!r}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1), not {dropout_rate!r}.")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), not {input_shape!r}.")
    multiple = 2**depth
    for size in input_shape[:2]:
        if size is not None and size % multiple:
            raise ValueError(
                f"input size {size} is not divisible by 2**depth = {multiple}: each of the {depth} poolings halves it. "
                f"Pad the image (preprocessing.pad_to_multiple) or use patches of a multiple of {multiple}."
            )
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if normalization is not None:
        # The training statistics travel inside the saved model: it takes the [0, 1] image.
        mean, std = normalization
        x = keras.layers.Normalization(mean=mean, variance=std**2, name="normalization")(x)
    skips = []
    for level in range(1, depth + 1):  # contracting path
        x = _unet_block(x, base_filters * 2 ** (level - 1), f"enc{level}", dropout_rate, batch_norm)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = _unet_block(x, base_filters * 2**depth, "bottleneck", dropout_rate, batch_norm)
    for level in range(depth, 0, -1):  # expanding path, with the skip connections
        filters = base_filters * 2 ** (level - 1)
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"dec{level}_up")(x)
        x = keras.layers.Concatenate(name=f"dec{level}_concat")([skips[level - 1], x])
        x = _unet_block(x, filters, f"dec{level}", dropout_rate, batch_norm)
    # float32 under mixed precision
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="vessels")(x)
    return keras.Model(inputs, outputs, name=name)


def dropout_layer_names(model: keras.Model) -> list[str]:
    """Names of a model's Dropout layers (enc1_dropout ... dec1_dropout in a U-Net built here), for MC-dropout sampling.

    Taught in 03_unet_vessels.
    """
    return [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


EAGER_STEPS = 16  # up to this many training steps, a stand-in trains eagerly


def classifier_or_stand_in(path, labels, image_size: int, train_paths, train_labels, epochs: int = 1) -> keras.Model:
    """Notebook 02's saved classifier, or (if it has not run) a stand-in trained briefly so later notebooks still run.

    Taught in 05_saliency.
    """
    from helpers import preprocessing

    path = Path(path)
    if path.is_file():
        return load_classifier(path, labels)
    print(f"{path} is missing: training a small stand-in (run notebook 02 for a real one; its maps will be near noise)")
    model = densenet121_classifier(len(labels), image_size, weights=None)
    train_labels = np.asarray(train_labels, dtype="float32")
    # a handful of steps runs eagerly: tracing DenseNet121's training step costs more than it saves (measured on
    # 2 cores: one epoch of 32 images at 64 px, 18 s eager against 88 s traced)
    steps = -(-len(train_labels) // 16) * epochs
    model.compile(keras.optimizers.Adam(1e-3), _losses.WeightedBinaryCrossentropy.from_labels(train_labels),
                  run_eagerly=steps <= EAGER_STEPS)
    data = preprocessing.image_dataset(train_paths, train_labels, image_size=image_size, batch_size=16, shuffle=True)
    model.fit(data, epochs=epochs, shuffle=False, verbose=2)  # the dataset shuffles itself
    return model


# --------------------------------------------------------------------------------------------
# DenseNet inside: dense blocks, growth rate, transition layers; a plain CNN to compare gradients
# --------------------------------------------------------------------------------------------

# Layers per dense block in DenseNet121 (Huang et al. 2017, Table 1). Keras numbers the dense blocks
# conv2..conv5 (conv1 is the stem) and the transition layers after them pool2..pool4: the paper's
# "dense block 1 + transition 1" is Keras's conv2_* + pool2_*, its last dense block (4) is conv5_*.
DENSENET121_BLOCKS = {2: 6, 3: 12, 4: 24, 5: 16}


def dense_block_table(model: keras.Model) -> "pd.DataFrame":
    """Channels entering and leaving each dense block, per-layer growth and after its transition, read from a
    DenseNet121's layers.

    Taught in 02b_transfer_and_imbalance.
    """
    import pandas as pd

    rows = []
    for block, layers in DENSENET121_BLOCKS.items():
        try:
            concat = [model.get_layer(f"conv{block}_block{i}_concat").output.shape[-1] for i in range(1, layers + 1)]
        except ValueError as err:
            raise ValueError(f"{model.name} is not a DenseNet121 built here: {err}") from None
        first = model.get_layer(f"conv{block}_block1_concat").input[0].shape[-1]
        growth = sorted({b - a for a, b in zip([first] + concat[:-1], concat)})
        transition = model.get_layer(f"pool{block}_pool").output.shape[-1] if block < 5 else None
        rows.append({"paper": f"dense block {block - 1}", "keras layers": f"conv{block}_block1..{layers}_*",
                     "layers": layers, "channels in": first,
                     "growth per layer": growth[0] if len(growth) == 1 else growth,
                     "channels out": concat[-1],
                     "transition": f"pool{block}_conv + pool{block}_pool" if block < 5 else "-",
                     "after transition": transition,
                     "grid": tuple(model.get_layer(f"conv{block}_block1_concat").output.shape[1:3])})
    return pd.DataFrame(rows).set_index("paper")


def plain_cnn(image_size: int, num_classes: int = 14, blocks=DENSENET121_BLOCKS, growth: int = 32,
              batch_norm: bool = True, name: str = "plain_cnn") -> keras.Model:
    """DenseNet121's layers in the same order without dense connections: each layer feeds only the next (BatchNorm
    optional).

    Taught in 02b_transfer_and_imbalance.
    """

    def bn(x, layer_name):
        return keras.layers.BatchNormalization(epsilon=1.001e-5, name=layer_name)(x) if batch_norm else x

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = keras.layers.Concatenate(name="grey_to_rgb")([inputs, inputs, inputs])
    x = keras.layers.ZeroPadding2D(3, name="zero_padding2d")(x)
    x = keras.layers.Conv2D(64, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = bn(x, "conv1_bn")
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name="zero_padding2d_1")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for block, layers in blocks.items():
        # DenseNet's BN-ReLU-1x1 conv (4 x growth)-BN-ReLU-3x3 conv (growth), not concatenated
        for i in range(1, layers + 1):
            p = f"conv{block}_block{i}"
            x = bn(x, f"{p}_0_bn")
            x = keras.layers.Activation("relu", name=f"{p}_0_relu")(x)
            x = keras.layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{p}_1_conv")(x)
            x = bn(x, f"{p}_1_bn")
            x = keras.layers.Activation("relu", name=f"{p}_1_relu")(x)
            x = keras.layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{p}_2_conv")(x)
        if block < max(blocks):
            x = bn(x, f"pool{block}_bn")
            x = keras.layers.Activation("relu", name=f"pool{block}_relu")(x)
            x = keras.layers.Conv2D(growth, 1, use_bias=False, name=f"pool{block}_conv")(x)
            x = keras.layers.AveragePooling2D(2, strides=2, name=f"pool{block}_pool")(x)
    x = bn(x, "bn")
    x = keras.layers.Activation("relu", name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="sigmoid", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def gradient_norms_by_block(model: keras.Model, images, labels) -> "pd.Series":
    """Root-mean-square gradient of the BCE loss over the convolution kernels of each block (1 = stem, 2-5 = dense
    blocks), on one batch.

    Taught in 02b_transfer_and_imbalance.
    """
    import pandas as pd
    import tensorflow as tf

    from helpers import errors

    images = errors.check_finite(images, "images").astype("float32")
    labels = errors.check_labels(labels, "labels")
    if len(images) != len(labels):
        raise errors.DataError(f"gradient_norms_by_block: {len(images)} images but {len(labels)} label rows.")
    kernels = [(l, _block_of(l)) for l in model.layers if isinstance(l, keras.layers.Conv2D) and _block_of(l)]
    variables = [l.kernel for l, _ in kernels]
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(labels, model(images, training=True))
        loss = tf.reduce_mean(loss)
    grads = tape.gradient(loss, variables)
    squares, counts = {}, {}
    for (layer, block), g in zip(kernels, grads):
        squares[block] = squares.get(block, 0.0) + float(tf.reduce_sum(tf.square(g)))
        counts[block] = counts.get(block, 0) + int(np.prod(g.shape))
    return pd.Series({b: np.sqrt(squares[b] / counts[b]) for b in sorted(squares)}, name="RMS gradient")
