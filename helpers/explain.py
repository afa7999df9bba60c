"""Saliency maps: vanilla and guided gradients, SmoothGrad, integrated gradients, Grad-CAM and Grad-CAM++.

Every method explains one *score* per image, a scalar of the model's output:

* a classifier: the probability of ``class_index`` (one index, or one per image);
* a segmentation model: ``region`` given, the sum of the predicted probability inside a box
  ``(x, y, w, h)`` or a mask (HxW) of the output.

Grad-CAM and Grad-CAM++ explain the score *before* the output activation (the logit of a sigmoid head), as
Selvaraju et al. and Chattopadhay et al. define them: the probability's gradient carries p (1 - p), which
vanishes on confident findings, and Grad-CAM++'s closed form is exact only for the logit.

The gradient functions are compiled once per model (and per Grad-CAM layer) and reused, so a second
call costs one batched forward-and-backward pass. The model must be flat (its layers directly in its
graph, as ``models.densenet121_classifier`` and ``models.unet`` build them).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from helpers.errors import check_finite

BASELINES = ("black", "blurred", "noise")
UPSAMPLING = ("bilinear", "align_corners")
_EPSILON = 1e-7  # keras.backend.epsilon(): the min-max normalisation of tf-keras-vis uses it too

_gradient_fns: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_cam_fns: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_guided_models: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class ExplainError(ValueError):
    """A model, layer, class or image that a saliency method cannot use, with what to do instead.

    Taught in 05_saliency.
    """


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def check_flat(model: keras.Model) -> None:
    """Raise ExplainError when a model holds another model as a layer (Grad-CAM cannot reach inside).

    Taught in 05_saliency.
    """
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        raise ExplainError(
            f"{model.name} is nested: layer(s) {', '.join(nested)} are whole models, so their inner feature maps "
            "and activations are out of reach. Build it flat: pass input_tensor= to keras.applications (as "
            "models.densenet121_classifier does), or rebuild with keras.Model(inputs, outputs) on the inner layers."
        )


def feature_map_layers(model: keras.Model) -> list[str]:
    """Names of the layers whose output is a spatial feature map (batch, height, width, channels), first to last.

    Taught in 05_saliency.
    """
    names = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4:
            names.append(layer.name)
    return names


def last_conv_layer(model: keras.Model) -> str:
    """The last spatial feature map of a flat model before its output (``relu`` in DenseNet121): Grad-CAM's default
    layer.

    Taught in 05_saliency.
    """
    check_flat(model)
    output_names = {t._keras_history[0].name for t in model.outputs}  # the output layer itself explains nothing
    candidates = [name for name in feature_map_layers(model) if name not in output_names]
    if not candidates:
        raise ExplainError(f"{model.name} has no layer with a (batch, height, width, channels) output: "
                           "Grad-CAM needs one.")
    return candidates[-1]


def _check_layer(model: keras.Model, layer_name: str | None) -> str:
    if layer_name is None:
        return last_conv_layer(model)
    candidates = [n for n in feature_map_layers(model) if n not in {t._keras_history[0].name for t in model.outputs}]
    names = {layer.name for layer in model.layers}
    shown = ", ".join(candidates[-8:])
    if layer_name not in names:
        raise ExplainError(
            f"{model.name} has no layer named {layer_name!r}. The last convolutional feature maps are: {shown} "
            f"(explain.feature_map_layers(model) lists all {len(candidates)})."
        )
    if layer_name not in candidates:
        shape = model.get_layer(layer_name).output.shape
        raise ExplainError(
            f"layer {layer_name!r} is not convolutional: its output {tuple(shape)} has no height and width. "
            f"Grad-CAM needs a spatial feature map; the last ones are: {shown}."
        )
    return layer_name


def _check_images(model: keras.Model, images) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if images.ndim != len(expected) + 1:
        raise ExplainError(
            f"images must be a batch shaped (images,) + {expected}, not {images.shape}; "
            "for one image add the batch axis: image[None]."
        )
    wrong = [(got, want) for got, want in zip(images.shape[1:], expected) if want is not None and got != want]
    if wrong:
        raise ExplainError(
            f"images are {images.shape[1:]} but {model.name} takes {expected}: resize them to the model's input size "
            "(preprocessing.decode_png(path, image_size) does it when reading)."
        )
    if not np.isfinite(images).all():
        raise ExplainError("images contain NaN or infinity.")
    return images


def _output_weights(model: keras.Model, images: np.ndarray, class_index=None, region=None) -> np.ndarray:
    """The weight of each output element in the score: a one-hot class, or a box/mask on the output map."""
    out_shape = (model.compute_output_shape(images.shape) if None in model.output_shape[1:]
                 else (len(images),) + tuple(model.output_shape[1:]))
    out_shape = tuple(int(s) for s in out_shape)
    count = len(images)
    if (class_index is None) == (region is None):
        raise ExplainError("give exactly one target: class_index= for a classifier, or region= (a box or mask) "
                           "for a segmentation.")
    if class_index is not None:
        if len(out_shape) != 2:
            raise ExplainError(
                f"{model.name} outputs a map {out_shape[1:]}, not classes: pass region=(x, y, w, h) or a mask instead "
                "of class_index."
            )
        classes = out_shape[1]
        try:
            index = np.broadcast_to(np.asarray(class_index), (count,))
        except ValueError:
            raise ExplainError(f"class_index has {np.size(class_index)} values for {count} images: give one index, or "
                               "one per image.") from None
        if not np.issubdtype(index.dtype, np.integer) and index.dtype != bool:
            raise ExplainError(f"class_index {class_index!r} is not a whole number: an output's position, e.g. "
                               "class_index=2 or labels.index('Effusion')"
                               f"{' (int(...) of a float)' if np.issubdtype(index.dtype, np.floating) else ''}.")
        if index.dtype == bool or (index < 0).any() or (index >= classes).any():
            raise ExplainError(f"class_index {class_index!r} is out of range: {model.name} has {classes} outputs (0 to "
                               f"{classes - 1}).")
        weights = np.zeros(out_shape, np.float32)
        weights[np.arange(count), index] = 1.0
        return weights
    if len(out_shape) != 4:
        raise ExplainError(f"region= is for a segmentation output (a map); {model.name} outputs {out_shape[1:]}: "
                           "use class_index=.")
    height, width = out_shape[1:3]
    if isinstance(region, (tuple, list)) and len(region) == 4 and np.ndim(region[0]) == 0:
        x, y, w, h = (float(v) for v in region)
        if w <= 0 or h <= 0 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ExplainError(f"box {region} is empty or outside the {width}x{height} output.")
        mask = np.zeros((height, width), np.float32)
        mask[max(0, int(round(y))):int(round(y + h)), max(0, int(round(x))):int(round(x + w))] = 1.0
    else:
        mask = np.asarray(region, np.float32)
        if mask.shape[-2:] != (height, width) and mask.shape[-3:-1] != (height, width):
            raise ExplainError(f"region mask {mask.shape} must be {height}x{width}, the output's size.")
        if mask.ndim == 3 and mask.shape[-1] == 1:
            mask = mask[..., 0]
    weights = np.broadcast_to(mask[..., None], out_shape).astype(np.float32)
    if weights.sum() == 0:
        raise ExplainError("region is empty: the score would be 0 and every gradient 0.")
    return weights


# --------------------------------------------------------------------------------------------
# Compiled gradient functions (one per model), guided ReLU and the guided copy
# --------------------------------------------------------------------------------------------


def _inputs(model: keras.Model):
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _signature(model: keras.Model):
    return [
        tf.TensorSpec((None,) + tuple(model.input_shape[1:]), tf.float32),
        tf.TensorSpec((None,) + tuple(model.output_shape[1:]), tf.float32),
    ]


def _score(outputs, weights):
    return tf.reduce_sum(outputs * weights, axis=list(range(1, len(outputs.shape))))


def gradient_function(model: keras.Model) -> Callable:
    """The compiled (images, output weights) -> (scores, d score / d image) function of a model, built once and cached.

    Taught in 05_saliency.
    """
    check_flat(model)
    fn = _gradient_fns.get(model)
    if fn is None:

        # autograph=False: Keras layers need no Python-to-graph conversion, and skipping it traces DenseNet
        # about five times faster.
        @tf.function(input_signature=_signature(model), reduce_retracing=True, autograph=False)
        def fn(images, weights):
            with tf.GradientTape() as tape:
                tape.watch(images)
                scores = _score(model(images, training=False), weights)
            return scores, tape.gradient(scores, images)

        _gradient_fns[model] = fn
    return fn


def _runner(model: keras.Model, fn) -> Callable:
    """``fn`` as compiled, or its plain Python body where the model is set to run eagerly (``model.run_eagerly``).

    As Keras's own ``predict`` does. A map computed once is cheaper eagerly: DenseNet121's first compiled Grad-CAM
    (trace, optimise, run) takes about four eager ones, and compiling pays back from about the fifth call
    (``benchmarks/bench_explain.py``).
    """
    return fn.python_function if getattr(model, "run_eagerly", False) else fn


def _output_layer(model: keras.Model):
    return model.outputs[0]._keras_history[0]


def _pre_activation(layer, inputs):
    """The output layer's value before its activation (the logit of a sigmoid head), same variables."""
    if isinstance(layer, keras.layers.Activation):
        return inputs
    saved = layer.activation
    layer.activation = keras.activations.linear  # only while this call is traced: the graph keeps the variables
    try:
        return layer.call(inputs)
    finally:
        layer.activation = saved


def check_logit_head(model: keras.Model) -> str:
    """Raise ExplainError unless the model's output layer exposes a pre-activation (Dense/Conv with an activation, or an
    Activation layer); return its name.

    Taught in 05_saliency.
    """
    layer = _output_layer(model)
    if _has_logit_head(model):
        return layer.name
    raise ExplainError(
        f"{model.name}: the output layer {layer.name!r} ({type(layer).__name__}) has no activation to strip, so the "
        "score before the sigmoid (the logit Grad-CAM++ needs) is out of reach. End the model with a Dense or Conv "
        "layer that has an activation, or with an Activation layer."
    )


def _has_logit_head(model: keras.Model) -> bool:
    layer = _output_layer(model)
    return isinstance(layer, keras.layers.Activation) or hasattr(layer, "activation")


def _cam_function(model: keras.Model, layer_name: str) -> Callable:
    """(images, weights, on_logit) -> (scores, features, d score / d features), one trace per model and layer.

    ``on_logit`` (0.0 or 1.0) picks the score: the probability or the output layer's pre-activation
    (Grad-CAM's default and Grad-CAM++). Both run through one graph: score = (1 - on_logit) p + on_logit z, and
    the factor 0 or 1 leaves the chosen gradient exact, so DenseNet is traced once per layer, not twice.
    """
    per_model = _cam_fns.setdefault(model, {})
    fn = per_model.get(layer_name)
    if fn is None:
        head = _output_layer(model) if _has_logit_head(model) else None
        last = head.input if head is not None else model.outputs[0]
        extractor = keras.Model(_inputs(model), [model.get_layer(layer_name).output, last])

        # autograph=False: Keras layers need no Python-to-graph conversion, and skipping it traces DenseNet
        # about five times faster.
        @tf.function(input_signature=_signature(model) + [tf.TensorSpec((), tf.float32)], reduce_retracing=True,
                     autograph=False)
        def fn(images, weights, on_logit):
            with tf.GradientTape() as tape:
                features, outputs = extractor(images, training=False)
                if head is not None:
                    logits = _pre_activation(head, outputs)
                    outputs = (1.0 - on_logit) * head.activation(logits) + on_logit * logits
                scores = _score(outputs, weights)
            return scores, features, tape.gradient(scores, features)

        per_model[layer_name] = fn
    return fn


@tf.custom_gradient
def guided_relu(x):
    """ReLU whose gradient passes only where the input and the incoming gradient are both positive (Springenberg 2014).

    Taught in 05_saliency.
    """

    def grad(upstream):
        return upstream * tf.cast(x > 0, upstream.dtype) * tf.cast(upstream > 0, upstream.dtype)

    return tf.nn.relu(x), grad


def _is_relu(fn) -> bool:
    return fn is keras.activations.relu or getattr(fn, "__name__", "") == "relu"


def guided_model(model: keras.Model) -> keras.Model:
    """A copy of a flat model with every ReLU swapped for guided_relu, weights copied; the original is untouched.

    Taught in 05_saliency.
    """
    check_flat(model)
    cached = _guided_models.get(model)
    if cached is not None:
        return cached

    def swap(layer):
        if isinstance(layer, keras.layers.ReLU) or (isinstance(layer, keras.layers.Activation)
                                                    and _is_relu(layer.activation)):
            return keras.layers.Activation(guided_relu, name=layer.name)
        clone = layer.__class__.from_config(layer.get_config())
        if _is_relu(getattr(clone, "activation", None)):
            clone.activation = guided_relu  # e.g. Conv2D(..., activation="relu")
        return clone

    guided = keras.models.clone_model(model, clone_function=swap)
    for layer in model.layers:
        if layer.weights:
            guided.get_layer(layer.name).set_weights(layer.get_weights())
    _guided_models[model] = guided
    return guided


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


def normalize(heatmaps, what: str = "heatmap") -> np.ndarray:
    """Min-max scale each map to [0, 1]; a flat map (no positive evidence) comes back as zeros with a warning, never
    NaN.

    Taught in 05_saliency.
    """
    heatmaps = check_finite(heatmaps, what).astype(np.float32)
    axes = tuple(range(1, heatmaps.ndim))
    low = heatmaps.min(axis=axes, keepdims=True)
    span = heatmaps.max(axis=axes, keepdims=True) - low
    flat = span.reshape(-1) <= _EPSILON
    if flat.any():
        warnings.warn(
            f"{what} of image(s) {np.flatnonzero(flat).tolist()} is flat (all zero: no positive gradient for this "
            "target); returned as zeros. The model may not respond to this class here at all.",
            stacklevel=3,
        )
    out = (heatmaps - low) / (span + _EPSILON)
    out[flat] = 0.0
    return out


def _batched(fn, images: np.ndarray, weights: np.ndarray, batch_size: int):
    scores, grads = [], []
    for start in range(0, len(images), batch_size):
        s, g = fn(tf.constant(images[start:start + batch_size]), tf.constant(weights[start:start + batch_size]))
        scores.append(s.numpy())
        grads.append(g.numpy())
    return np.concatenate(scores), np.concatenate(grads)


def _finish(maps: np.ndarray, normalize_map: bool, what: str) -> np.ndarray:
    return normalize(maps, what) if normalize_map else maps


def vanilla_gradients(model, images, class_index=None, region=None, *, normalize_map=True, batch_size=32) -> np.ndarray:
    """Saliency of Simonyan et al. 2013: |d score / d pixel|, the maximum over channels, one HxW map per image.

    Taught in 05_saliency.
    """
    images = _check_images(model, images)
    weights = _output_weights(model, images, class_index, region)
    _, grads = _batched(_runner(model, gradient_function(model)), images, weights, batch_size)
    return _finish(np.abs(grads).max(axis=-1), normalize_map, "vanilla gradient")


def guided_backprop(model, images, class_index=None, region=None, *, normalize_map=True, batch_size=32) -> np.ndarray:
    """Guided backpropagation (Springenberg et al. 2014): the gradient through guided ReLUs, |.| max over channels.

    Taught in 05_saliency.
    """
    images = _check_images(model, images)
    weights = _output_weights(model, images, class_index, region)
    _, grads = _batched(_runner(model, gradient_function(guided_model(model))), images, weights, batch_size)
    return _finish(np.abs(grads).max(axis=-1), normalize_map, "guided backpropagation")


def smoothgrad(method: Callable, model, images, class_index=None, region=None, *, samples=16, noise_level=0.2,
               seed=0, normalize_map=True, batch_size=32) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017): the mean of ``method``'s maps over noisy copies, noise std = noise_level x
    (max - min).

    Taught in 05_saliency.
    """
    images = _check_images(model, images)
    if samples < 1:
        raise ExplainError(f"samples must be >= 1, not {samples!r}.")
    rng = np.random.default_rng(seed)
    axes = tuple(range(1, images.ndim))
    sigma = noise_level * (images.max(axis=axes, keepdims=True) - images.min(axis=axes, keepdims=True))
    # All noisy copies of all images in one batch (samples x images), so the compiled function runs full batches.
    noisy = (images[None] + rng.normal(size=(samples,) + images.shape).astype(np.float32) * sigma[None]).reshape(
        (-1,) + images.shape[1:])
    index = None if class_index is None else np.tile(np.broadcast_to(np.asarray(class_index), (len(images),)), samples)
    maps = method(model, noisy, index, region, normalize_map=False, batch_size=batch_size)
    maps = maps.reshape((samples, len(images)) + maps.shape[1:]).mean(axis=0)
    return _finish(maps, normalize_map, f"SmoothGrad ({getattr(method, '__name__', 'method')})")


# --------------------------------------------------------------------------------------------
# Integrated gradients
# --------------------------------------------------------------------------------------------


def make_baseline(images, kind: str = "black", *, sigma: float | None = None, seed: int = 0) -> np.ndarray:
    """The reference image of integrated gradients: ``black`` (zeros), ``blurred`` (Gaussian, sigma = width/16) or
    uniform ``noise``.

    Taught in 05_saliency.
    """
    images = np.asarray(images, np.float32)
    if kind == "black":
        return np.zeros_like(images)
    if kind == "blurred":
        sigma = sigma if sigma is not None else images.shape[2] / 16
        return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma, 0)).astype(np.float32)
    if kind == "noise":
        return np.random.default_rng(seed).uniform(images.min(), images.max(), images.shape).astype(np.float32)
    raise ExplainError(f"baseline must be one of {', '.join(BASELINES)} or an array, not {kind!r}.")


@dataclass
class IntegratedGradients:
    """Integrated-gradient attributions with their completeness check (sum of attributions against f(x) - f(baseline)).

    Taught in 05_saliency.
    """

    attributions: np.ndarray  # (images, height, width, channels), signed
    scores: np.ndarray  # f(x)
    baseline_scores: np.ndarray  # f(baseline)
    tolerance: float

    @property
    def sums(self) -> np.ndarray:
        """Sum of each image's attributions: by completeness it should equal f(x) - f(baseline).

        Taught in 05_saliency.
        """
        return self.attributions.reshape(len(self.attributions), -1).sum(axis=1)

    @property
    def relative_error(self) -> np.ndarray:
        """|sum - (f(x) - f(baseline))| / |f(x) - f(baseline)| per image (the gap floored at 1e-3).

        Taught in 05_saliency.
        """
        gap = self.scores - self.baseline_scores
        return np.abs(self.sums - gap) / np.maximum(np.abs(gap), 1e-3)

    @property
    def complete(self) -> np.ndarray:
        """True per image where the completeness error is within the tolerance.

        Taught in 05_saliency.
        """
        return self.relative_error <= self.tolerance

    def heatmap(self, normalize_map: bool = True, positive_only: bool = False) -> np.ndarray:
        """HxW map per image: |attribution| summed over channels (or only the positive part).

        Taught in 05_saliency.
        """
        a = self.attributions.sum(axis=-1)
        maps = np.maximum(a, 0) if positive_only else np.abs(a)
        return _finish(maps, normalize_map, "integrated gradients")


def integrated_gradients(model, images, class_index=None, region=None, *, baseline="black", steps=32,
                         tolerance=0.05, batch_size=64, seed=0) -> IntegratedGradients:
    """Integrated gradients (Sundararajan et al. 2017), trapezoidal rule over ``steps`` points, batched; warns if
    completeness fails.

    Taught in 05_saliency.
    """
    images = _check_images(model, images)
    if steps < 2:
        raise ExplainError(f"steps must be >= 2 (the path's two ends at least), not {steps!r}.")
    if isinstance(baseline, str):
        base = make_baseline(images, baseline, seed=seed)
    else:
        try:
            base = np.broadcast_to(np.asarray(baseline, np.float32), images.shape)
        except ValueError:
            raise ExplainError(f"baseline of shape {np.shape(baseline)} does not fit the images {images.shape}: give "
                               f"one image's shape {images.shape[1:]}, the batch's, "
                               f"or a name ({', '.join(BASELINES)}).") from None
    weights = _output_weights(model, images, class_index, region)
    fn = _runner(model, gradient_function(model))
    alphas = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    # Trapezoid weights: the path's two ends count half. The ends also give f(baseline) and f(x) for free.
    trapezoid = np.full(steps, 1.0 / (steps - 1), np.float32)
    trapezoid[[0, -1]] /= 2
    attributions = np.zeros_like(images)
    scores, baseline_scores = np.zeros(len(images), np.float32), np.zeros(len(images), np.float32)
    # Rows = (image, step) pairs, cut into batches of batch_size: one compiled call per batch.
    rows = np.stack(np.meshgrid(np.arange(len(images)), np.arange(steps), indexing="ij"), -1).reshape(-1, 2)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        i, k = chunk[:, 0], chunk[:, 1]
        a = alphas[k].reshape((-1,) + (1,) * (images.ndim - 1))
        path = base[i] + a * (images[i] - base[i])
        s, g = fn(tf.constant(path), tf.constant(weights[i]))
        s, g = s.numpy(), g.numpy()
        np.add.at(attributions, i, g * trapezoid[k].reshape(a.shape))
        scores[i[k == steps - 1]] = s[k == steps - 1]
        baseline_scores[i[k == 0]] = s[k == 0]
    attributions *= images - base
    result = IntegratedGradients(attributions, scores, baseline_scores, tolerance)
    if not result.complete.all():
        bad = np.flatnonzero(~result.complete)
        warnings.warn(
            f"integrated gradients: completeness off by more than {tolerance:.0%} for image(s) {bad.tolist()} "
            f"(errors {np.round(result.relative_error[bad], 3).tolist()}): use more steps.",
            stacklevel=2,
        )
    return result


# --------------------------------------------------------------------------------------------
# Grad-CAM, guided Grad-CAM, Grad-CAM++
# --------------------------------------------------------------------------------------------


def upsample(maps, size, method: str = "bilinear") -> np.ndarray:
    """Resize (images, h, w) maps to ``size`` (height, width): half-pixel ``bilinear``, or ``align_corners`` as
    tf-keras-vis does.

    Taught in 05_saliency.
    """
    maps = np.asarray(maps, np.float32)
    height, width = size
    if method == "bilinear":
        return tf.image.resize(maps[..., None], (height, width), method="bilinear").numpy()[..., 0]
    if method == "align_corners":
        # scipy's zoom (order 1) maps corner pixel to corner pixel, as tf_keras_vis.gradcam does.
        factors = (1.0, height / maps.shape[1], width / maps.shape[2])
        return ndimage.zoom(maps, factors, order=1)
    raise ExplainError(f"upsampling must be one of {', '.join(UPSAMPLING)}, not {method!r}.")


def _cam_inputs(model, images, class_index, region, layer_name, batch_size, logit=False):
    images = _check_images(model, images)
    check_flat(model)
    layer_name = _check_layer(model, layer_name)
    if logit and not _has_logit_head(model):
        layer = _output_layer(model)
        raise ExplainError(
            f"{model.name}: the output layer {layer.name!r} ({type(layer).__name__}) has no activation to strip, so "
            "the score before the sigmoid (the logit) is out of reach. End the model with a Dense or Conv layer that "
            "has an activation, or with an Activation layer; for Grad-CAM, score='probability' explains the "
            "output as it is."
        )
    weights = _output_weights(model, images, class_index, region)
    fn = _runner(model, _cam_function(model, layer_name))
    on_logit = tf.constant(1.0 if logit else 0.0)
    features, grads = [], []
    for start in range(0, len(images), batch_size):
        _, f, g = fn(tf.constant(images[start:start + batch_size]), tf.constant(weights[start:start + batch_size]),
                     on_logit)
        features.append(f.numpy())
        grads.append(g.numpy())
    return images, np.concatenate(features), np.concatenate(grads)


SCORES = ("logit", "probability")


def grad_cam(model, images, class_index=None, region=None, *, layer_name=None, normalize_map=True,
             upsampling="bilinear", batch_size=32, score: str = "logit") -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k mean(d score/d A_k) A_k) at a feature layer, upsampled to the input.

    ``score="logit"`` (the default, as the paper defines it: the class score before the output non-linearity)
    differentiates the output layer's pre-activation. ``score="probability"`` differentiates the sigmoid
    output instead: its gradient carries the factor p (1 - p), which vanishes as p nears 0 or 1, so the most
    confident findings get a map that is numerically flat (notebook 05 shows it).

    Taught in 05_saliency.
    """
    if score not in SCORES:
        raise ExplainError(f"score must be one of {', '.join(SCORES)}, not {score!r}.")
    images, features, grads = _cam_inputs(model, images, class_index, region, layer_name, batch_size,
                                          logit=score == "logit")
    channel_weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((features * channel_weights).sum(axis=-1), 0)
    return _finish(upsample(cam, images.shape[1:3], upsampling), normalize_map, "Grad-CAM")


def grad_cam_plus_plus(model, images, class_index=None, region=None, *, layer_name=None, normalize_map=True,
                       upsampling="bilinear", batch_size=32) -> np.ndarray:
    """Grad-CAM++ (Chattopadhay et al., WACV 2018) on the pre-sigmoid score (the logit), alphas normalised over positive
    gradients.

    The closed form of alpha (second and third derivatives as powers of the first) is exact for
    Y = exp(S) with S the logit, a piecewise-linear function of the feature map; for the sigmoid
    probability it is not. So the gradients are those of the output layer's pre-activation (for a
    region of a segmentation, the sum of the logits inside it). As in the authors' code, alpha is
    normalised per channel over the positions where the gradient is positive, the only ones that
    enter the weights. The common factor exp(S) cancels and is left out.

    Taught in 05_saliency.
    """
    images, features, grads = _cam_inputs(model, images, class_index, region, layer_name, batch_size, logit=True)
    features, grads = features.astype(np.float64), grads.astype(np.float64)  # cubed gradients: keep the round-off small
    second, third = grads**2, grads**3
    global_sum = features.sum(axis=(1, 2), keepdims=True)
    denominator = 2 * second + third * global_sum
    alphas = second / np.where(denominator != 0, denominator, 1.0)
    positive = np.maximum(grads, 0)
    norm = np.where(positive > 0, alphas, 0.0).sum(axis=(1, 2), keepdims=True)
    alphas /= np.where(norm != 0, norm, 1.0)
    channel_weights = (positive * alphas).sum(axis=(1, 2), keepdims=True)
    cam = np.maximum((features * channel_weights).sum(axis=-1), 0)
    return _finish(upsample(cam, images.shape[1:3], upsampling), normalize_map, "Grad-CAM++")


def guided_grad_cam(model, images, class_index=None, region=None, *, layer_name=None, normalize_map=True,
                    batch_size=32) -> np.ndarray:
    """Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM, fine detail where the class evidence is.

    Taught in 05_saliency.
    """
    cam = grad_cam(model, images, class_index, region, layer_name=layer_name, normalize_map=False,
                   batch_size=batch_size)
    guided = guided_backprop(model, images, class_index, region, normalize_map=False, batch_size=batch_size)
    return _finish(cam * guided, normalize_map, "guided Grad-CAM")


# --------------------------------------------------------------------------------------------
# tf-keras-vis ScoreCAM on a sigmoid head, sanity checks, localisation scores
# --------------------------------------------------------------------------------------------


def sigmoid_as_softmax(model: keras.Model, class_index: int) -> keras.Model:
    """A flat model whose two outputs [log p, log(1-p)] of one sigmoid class make softmax give back [p, 1-p] (for
    tf-keras-vis ScoreCAM).

    Taught in 05_saliency.
    """
    check_flat(model)
    classes = model.output_shape[-1]
    if not 0 <= int(class_index) < classes:
        raise ExplainError(f"class_index {class_index!r} is out of range: {model.name} has {classes} outputs (0 to "
                           f"{classes - 1}).")
    p = model.outputs[0][:, int(class_index):int(class_index) + 1]
    p = keras.ops.clip(p, 1e-7, 1 - 1e-7)
    logits = keras.layers.Concatenate(name="log_p_log_1_minus_p")([keras.ops.log(p), keras.ops.log(1 - p)])
    return keras.Model(_inputs(model), logits, name=f"{model.name}_class{int(class_index)}_two_way")


@contextlib.contextmanager
def randomized(model: keras.Model, layer_names, seed: int = 0):
    """Context manager: re-draw the named layers' kernels and biases (normal, each weight's own std), restore them on
    exit.

    Taught in 05_saliency.
    """
    rng = np.random.default_rng(seed)
    saved = []
    try:
        for name in layer_names:
            layer = model.get_layer(name)
            if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Conv2DTranspose)):
                continue
            for variable in layer.trainable_weights:
                value = variable.numpy()
                saved.append((variable, value))
                scale = value.std() if value.std() > 0 else 0.05
                variable.assign(rng.normal(0.0, scale, value.shape).astype(value.dtype))
        # The variables change in place, so the compiled gradient functions are reused, not retraced.
        yield [name for name in layer_names
               if isinstance(model.get_layer(name),
                             (keras.layers.Conv2D, keras.layers.Dense, keras.layers.Conv2DTranspose))]
    finally:
        for variable, value in saved:
            variable.assign(value)


def rank_correlation(first, second) -> np.ndarray:
    """Spearman rank correlation between two stacks of maps, one value per image.

    Taught in 05_saliency.
    """
    from scipy.stats import spearmanr

    first, second = np.asarray(first), np.asarray(second)
    if first.shape != second.shape:
        raise ExplainError(f"maps {first.shape} and {second.shape} must have the same shape.")
    values = []
    for a, b in zip(first.reshape(len(first), -1), second.reshape(len(second), -1)):
        values.append(0.0 if a.std() == 0 or b.std() == 0 else spearmanr(a, b).statistic)
    return np.asarray(values, np.float64)


def box_mask(box, size) -> np.ndarray:
    """Boolean HxW mask of a box ``(x, y, w, h)`` in the map's pixels (pixels whose centre lies inside).

    Taught in 05_saliency.
    """
    height, width = size
    x, y, w, h = (float(v) for v in box[:4])
    cols, rows = np.arange(width) + 0.5, np.arange(height) + 0.5
    return ((rows >= y) & (rows <= y + h))[:, None] & ((cols >= x) & (cols <= x + w))[None, :]


def _maps_and_boxes(heatmaps, boxes, what: str) -> np.ndarray:
    heatmaps = check_finite(heatmaps, f"{what}: heatmaps")
    if heatmaps.ndim != 3:
        raise ExplainError(f"{what}: heatmaps must be a stack (images, height, width), not shape {heatmaps.shape}; "
                           "for one map use heatmap[None].")
    if len(heatmaps) != len(boxes):
        raise ExplainError(f"{what}: {len(heatmaps)} maps but {len(boxes)} boxes; give one box per map.")
    for i, box in enumerate(boxes):
        check_finite(box[:4], f"{what}: box {i}")
    return heatmaps


def heat_in_box(heatmaps, boxes) -> np.ndarray:
    """Fraction of each non-negative map's total heat inside its box (x, y, w, h); 0 for an empty map.

    Taught in 05_saliency.
    """
    heatmaps = _maps_and_boxes(heatmaps, boxes, "heat_in_box")
    if (heatmaps < 0).any():
        raise ExplainError("heat_in_box needs non-negative maps (take np.abs or the positive part first).")
    out = []
    for heatmap, box in zip(heatmaps, boxes):
        total = heatmap.sum()
        out.append(heatmap[box_mask(box, heatmap.shape)].sum() / total if total > 0 else 0.0)
    return np.asarray(out)


def maximal_pixels(heatmap, tolerance: float = 1e-5) -> np.ndarray:
    """Boolean mask of the pixels within ``tolerance`` x (max - min) of a 2-D map's maximum: the whole plateau, not one
    pixel.

    Taught in 05_saliency.
    """
    heatmap = np.asarray(heatmap, np.float64)
    peak = heatmap.max()
    return heatmap >= peak - tolerance * (peak - heatmap.min())


def pointing_game(heatmaps, boxes, tolerance: float = 1e-5) -> np.ndarray:
    """True per image where ANY maximal pixel (within tolerance x range of the peak) lies in the box; an all-zero map
    misses.

    An upsampled map's maximum is seldom one pixel: bilinear upsampling turns an edge cell of the
    feature grid into a flat plateau reaching the border, and an inner cell into a few equal pixels
    round its centre. ``argmax`` would judge the first of them only (the top-left one), which is a bias
    towards the image's top-left corner, not a property of the map. Every pixel of the plateau counts.

    Taught in 05_saliency.
    """
    heatmaps = _maps_and_boxes(heatmaps, boxes, "pointing_game")
    if not 0 <= tolerance < 1:
        raise ExplainError(f"pointing_game: tolerance is a fraction of the map's range in [0, 1), not {tolerance!r}.")
    hits = []
    for heatmap, box in zip(heatmaps, boxes):
        inside = box_mask(box, heatmap.shape) & maximal_pixels(heatmap, tolerance)
        hits.append(bool(heatmap.max() > 0 and inside.any()))
    return np.asarray(hits)


def pointing_ceiling(boxes, cells, size, upsampling: str = "bilinear") -> np.ndarray:
    """Per box, whether a map peaked at one cell of a cells x cells feature grid, upsampled to size (h, w), can hit it
    at all.

    Each cell in turn is made the single maximum, upsampled as Grad-CAM upsamples, and judged by the
    pointing game: a box no cell's plateau reaches can never be hit at this resolution.

    Taught in 05_saliency.
    """
    height, width = (int(v) for v in size)
    rows, cols = (cells, cells) if np.isscalar(cells) else (int(cells[0]), int(cells[1]))
    peaks = np.eye(rows * cols, dtype=np.float32).reshape(rows * cols, rows, cols)
    maps = upsample(peaks, (height, width), upsampling)
    return np.asarray([pointing_game(maps, [box] * len(maps)).any() for box in boxes])
