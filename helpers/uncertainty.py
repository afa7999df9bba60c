"""Monte-Carlo dropout: the MCDropout layer and models that carry it, sampling, the entropy / mutual-information
decomposition, referral curves; the heteroscedastic U-Net (notebook 04)."""

from __future__ import annotations

import weakref
from typing import Callable, NamedTuple, Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import errors, models

EPSILON = 1e-7
REFERRAL_FRACTIONS = tuple(np.round(np.arange(0.0, 0.51, 0.05), 2))


@keras.saving.register_keras_serializable(package="medxai")
class MCDropout(keras.layers.Dropout):
    """Dropout that stays on at test time, whatever ``training`` says, so BatchNorm can stay in inference mode.

    Taught in 04_mc_dropout_uncertainty.
    """

    def call(self, inputs, training=None):
        # Only this layer is forced into training behaviour; the rest of the model (BatchNormalization
        # above all) follows the ``training`` flag of the call, False at inference.
        return super().call(inputs, training=True)


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy the weights layer by layer (matched by name) from ``source`` to ``target``."""
    for layer in target.layers:
        try:
            original = source.get_layer(layer.name)
        except ValueError:
            continue
        if layer.weights:
            layer.set_weights(original.get_weights())


def with_mc_dropout(model: keras.Model, rate: float | None = None) -> keras.Model:
    """A copy of ``model`` whose Dropout layers are MCDropout (same names, same or given rate), trained weights copied.

    Taught in 04_mc_dropout_uncertainty.
    """
    if not models.dropout_layer_names(model):
        raise ValueError(
            f"{model.name} has no Dropout layer: MC dropout would return the same answer T times. "
            "Add one first (uncertainty.insert_mc_dropout puts one before the output layer)."
        )
    if rate is not None and not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), not {rate!r}.")

    def clone_layer(layer):
        if isinstance(layer, keras.layers.Dropout):
            return MCDropout(layer.rate if rate is None else rate, noise_shape=layer.noise_shape, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    _copy_weights(model, clone)
    return clone


def insert_mc_dropout(model: keras.Model, rate: float = 0.2, before: str = "predictions",
                      name: str = "mc_dropout") -> keras.Model:
    """A model that shares ``model``'s layers up to the output layer ``before``, with an MCDropout in front of a copy of
    that layer.

    Taught in 04_mc_dropout_uncertainty.
    """
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be in (0, 1), not {rate!r}.")
    head = model.get_layer(before)  # raises ValueError naming the layer if it is absent
    if len(model.outputs) != 1 or head.output is not model.outputs[0]:
        raise ValueError(f"'{before}' is not the output layer of {model.name}: dropout can only be inserted before the "
                         "last layer.")
    new_head = head.__class__.from_config(head.get_config())
    outputs = new_head(MCDropout(rate, name=name)(head.input))
    new_head.set_weights(head.get_weights())  # a copy: fine-tuning the new head leaves the original untouched
    return keras.Model(model.inputs, outputs, name=f"{model.name}_mc")


def heteroscedastic_unet(**unet_kwargs) -> keras.Model:
    """The U-Net of notebook 03 with a 2-channel linear head: per-pixel logit mean and log-variance (Kendall and Gal
    2017).

    Taught in 04_mc_dropout_uncertainty.
    """
    base = models.unet(**{"name": "heteroscedastic_unet", **unet_kwargs})
    features = base.get_layer("vessels").input
    outputs = keras.layers.Conv2D(2, 1, dtype="float32", name="logit_and_log_variance")(features)
    return keras.Model(base.inputs, outputs, name=base.name)


# One compiled forward pass per model (and per input signature), reused across calls.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _dropout_layers(model) -> list:
    """Every Dropout layer of ``model``, nested models included."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(_dropout_layers(layer))
    return found


def check_mc_model(model) -> int:
    """Raise a clear ValueError unless ``model`` has MCDropout layers; return how many it has.

    Taught in 04_mc_dropout_uncertainty.
    """
    dropout = _dropout_layers(model)
    if not dropout:
        raise ValueError(
            f"{model.name} has no Dropout layer, so every MC sample would be the same deterministic answer. "
            "Insert one (uncertainty.insert_mc_dropout) and fine-tune it before sampling."
        )
    mc = [layer for layer in dropout if isinstance(layer, MCDropout)]
    if not mc:
        raise ValueError(
            f"{model.name} has {len(dropout)} Dropout layer(s), but plain Dropout is off at inference. "
            "Convert them with uncertainty.with_mc_dropout(model) (weights kept); do not call model(x, training=True), "
            "which also switches BatchNormalization to batch statistics."
        )
    if all(layer.rate == 0 for layer in mc):
        raise ValueError(f"{model.name}: every MCDropout layer has rate 0, so the samples would all be equal.")
    return len(mc)


def _check_images(model, images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    expected = tuple(model.inputs[0].shape)
    if images.ndim != len(expected):
        raise ValueError(
            f"images have rank {images.ndim} {images.shape}, but {model.name} takes rank {len(expected)} "
            f"{expected} (a batch: add a leading axis for one image)."
        )
    for axis, (got, want) in enumerate(zip(images.shape[1:], expected[1:]), start=1):
        if want is not None and got != want:
            raise ValueError(f"images have shape {images.shape}, but {model.name} takes {expected}: "
                             f"axis {axis} differs.")
    if len(images) == 0:
        raise ValueError("images is empty: nothing to predict.")
    if not np.isfinite(images).all():
        errors.check_finite(images, "images")  # raises, naming the first bad (image, row, column, channel)
    return images


def _compiled_forward(model, shape):
    per_model = _COMPILED.setdefault(model, {})
    if shape not in per_model:
        signature = [tf.TensorSpec((None,) + shape, tf.float32)]
        # training=False: BatchNormalization uses its moving statistics; only MCDropout stays on.
        owner = weakref.ref(model)  # no strong reference back to the key, so the model can be freed
        per_model[shape] = tf.function(lambda x: owner()(x, training=False), input_signature=signature)
    return per_model[shape]


def mc_predict(model, images, samples: int = 20, batch_size: int = 256) -> np.ndarray:
    """T stochastic passes (MCDropout on, BatchNorm in inference mode), tiled into few compiled calls; shape (T, N,
    ...). A model set to run eagerly (``model.run_eagerly = True``, for one call on a big model) is called plainly.

    Taught in 04_mc_dropout_uncertainty.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"samples must be a whole number >= 2 (a spread needs two draws), not {samples!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size!r}.")
    check_mc_model(model)
    images = _check_images(model, images)
    # model.run_eagerly = True (one call or two on a big model): plain calls, no graph to trace
    forward = (lambda x: model(x, training=False)) if model.run_eagerly else _compiled_forward(model, images.shape[1:])
    # Each image repeated T times, consecutive: one row per (image, sample), cut into batches of
    # batch_size rows, so that T samples of several images share one compiled call.
    rows = np.repeat(np.arange(len(images)), samples)
    outputs = [forward(tf.constant(images[rows[i : i + batch_size]])).numpy() for i in range(0, len(rows), batch_size)]
    stacked = np.concatenate(outputs).reshape((len(images), samples) + outputs[0].shape[1:])
    return np.moveaxis(stacked, 1, 0)


def mc_predict_tiled(model, image, samples: int = 20, *, tile: int = 256, margin: int = 48, multiple: int = 8,
                     chunk: int | None = None, pixel_budget: int = 2**20, out_dtype=np.float16) -> np.ndarray:
    """T dropout samples of one whole image of any size, tile by tile and ``chunk`` samples at a time: (T, H, W, K).

    Peak memory is set by ``tile``, ``margin`` and ``chunk`` (the network's activations for ``chunk`` windows of
    ``tile + 2 margin`` pixels a side) and by the result itself (T x H x W x K in ``out_dtype``; float16 halves
    it), never by the image's activations at full size. Each pixel's T values come from one window, so they are
    T draws of the network there, as untiled sampling gives (dropout masks are independent per position).
    ``chunk=None``: as many samples per call as keep ``pixel_budget`` window pixels in flight (all T for a small
    image, a few for a large tile).

    Taught in 08_cells_counting.
    """
    from helpers import preprocessing

    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise ValueError(f"samples must be a whole number >= 2 (a spread needs two draws), not {samples!r}.")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, not {chunk!r}.")
    check_mc_model(model)

    def sample_window(window):
        step = chunk or max(1, int(pixel_budget) // (window.shape[0] * window.shape[1]))
        draws, left = [], int(samples)
        while left > 0:
            draws.append(
                mc_predict(model, window[None], samples=max(2, min(step, left)), batch_size=max(2, step))[:, 0])
            left -= len(draws[-1])
        return np.concatenate(draws)[:samples].astype(out_dtype)

    return preprocessing.predict_tiled(sample_window, image, tile=tile, margin=margin, multiple=multiple,
                                       out_dtype=out_dtype)


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1.0 - EPSILON)
    return -(p * np.log(p) + (1.0 - p) * np.log(1.0 - p))


class Uncertainty(NamedTuple):
    """Per-output MC summary: mean, total (predictive entropy), aleatoric, epistemic (mutual information), variance.

    Taught in 04_mc_dropout_uncertainty.
    """

    mean: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    variance: np.ndarray


def decompose(samples) -> Uncertainty:
    """Split sigmoid MC samples (T first) into predictive entropy = expected entropy (aleatoric) + mutual information
    (epistemic), in nats.

    Taught in 04_mc_dropout_uncertainty.
    """
    shape = np.shape(samples)
    if len(shape) < 2 or shape[0] < 2:
        raise ValueError(f"samples must have shape (T >= 2, ...) with the MC samples first, not {shape}.")
    samples = errors.check_probabilities(samples, "MC samples (sigmoid outputs, T first)")
    mean = samples.mean(axis=0)
    total = _binary_entropy(mean)
    aleatoric = _binary_entropy(samples).mean(axis=0)
    # Jensen: total >= aleatoric; clip the float round-off below zero
    epistemic = np.maximum(total - aleatoric, 0.0)
    return Uncertainty(mean, total, aleatoric, epistemic, samples.var(axis=0))


def referral_curve(
    y_true, y_score, uncertainty, metric: Callable[[np.ndarray, np.ndarray], float],
    fractions: Sequence[float] = REFERRAL_FRACTIONS,
) -> pd.DataFrame:
    """The metric on the cases kept when the most uncertain fraction is referred to a human, per fraction.

    Taught in 04_mc_dropout_uncertainty.
    """
    y_true, y_score, uncertainty = np.asarray(y_true), np.asarray(y_score), np.asarray(uncertainty)
    if len(y_true) != len(y_score) or len(y_true) != len(uncertainty) or uncertainty.ndim != 1:
        raise ValueError(
            f"y_true {y_true.shape}, y_score {y_score.shape} and uncertainty {uncertainty.shape} need the same length "
            "(one uncertainty per case)."
        )
    # a NaN sorts last, so it would silently count as the most uncertain case: refuse it, naming the case
    uncertainty = errors.check_finite(uncertainty, "uncertainty (one per case)")
    fractions = errors.check_finite(fractions, "fractions")
    if fractions.ndim != 1 or fractions.size == 0 or fractions.min() < 0 or fractions.max() >= 1:
        raise ValueError("fractions must lie in [0, 1): something has to be kept.")
    order = np.argsort(uncertainty, kind="stable")  # most certain first
    rows = []
    for fraction in fractions:
        kept = order[: len(order) - int(round(fraction * len(order)))]
        rows.append({"referred": fraction, "kept": len(kept), "metric": float(metric(y_true[kept], y_score[kept]))})
    return pd.DataFrame(rows).set_index("referred")


def random_referral(y_true, y_score, metric, fractions=REFERRAL_FRACTIONS, repeats: int = 20,
                    seed: int = 42) -> pd.DataFrame:
    """The referral curve of a random (uncertainty-blind) choice, averaged over ``repeats`` draws: the baseline.

    Taught in 04_mc_dropout_uncertainty.
    """
    rng = np.random.default_rng(seed)
    curves = [referral_curve(y_true, y_score, rng.random(len(y_true)), metric, fractions)["metric"]
              for _ in range(repeats)]
    return pd.concat(curves, axis=1).mean(axis=1).to_frame("metric")
