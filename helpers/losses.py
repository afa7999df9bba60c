"""Losses of the series, registered so that a saved ``.keras`` model loads back without custom_objects."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from helpers import errors


@keras.saving.register_keras_serializable(package="medxai")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Per-class weighted BCE ``-(w_p y log p + w_n (1-y) log(1-p))`` averaged over classes.

    Taught in 02_densenet_transfer.
    """

    def __init__(self, pos_weights, neg_weights, epsilon: float = 1e-7, name: str = "weighted_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weights = [float(w) for w in np.ravel(pos_weights)]
        self.neg_weights = [float(w) for w in np.ravel(neg_weights)]
        if len(self.pos_weights) != len(self.neg_weights):
            raise ValueError(
                f"pos_weights has {len(self.pos_weights)} classes but neg_weights has {len(self.neg_weights)}."
            )
        self.epsilon = float(epsilon)

    @classmethod
    def from_labels(cls, labels, **kwargs) -> WeightedBinaryCrossentropy:
        """Fit ``w_p = negatives/total`` and ``w_n = positives/total`` on training labels.

        Taught in 02_densenet_transfer.
        """
        labels = errors.check_labels(labels, "training labels").astype(np.float64)
        if labels.ndim != 2 or len(labels) == 0:
            raise ValueError(f"training labels must be a non-empty (images, classes) array, not shape {labels.shape}.")
        positive = labels.mean(axis=0)
        return cls(1.0 - positive, positive, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != len(self.pos_weights):
            raise ValueError(
                f"The model predicts {y_pred.shape[-1]} classes but the loss was fitted on {len(self.pos_weights)}."
            )
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        w_p = ops.convert_to_tensor(self.pos_weights, dtype=p.dtype)
        w_n = ops.convert_to_tensor(self.neg_weights, dtype=p.dtype)
        loss = -(w_p * y_true * ops.log(p) + w_n * (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(loss, axis=-1)

    def get_config(self):
        return {**super().get_config(), "pos_weights": self.pos_weights, "neg_weights": self.neg_weights,
                "epsilon": self.epsilon}


# --------------------------------------------------------------------------------------------
# Segmentation: soft Dice, and Dice + binary cross-entropy (notebook 03)
# --------------------------------------------------------------------------------------------


def _soft_dice(y_true, y_pred, smooth: float):
    """Soft Dice coefficient over every pixel of the batch: (2 sum(y p) + s) / (sum(y) + sum(p) + s)."""
    y_true = ops.cast(y_true, y_pred.dtype)
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + smooth) / (ops.sum(y_true) + ops.sum(y_pred) + smooth)


@keras.saving.register_keras_serializable(package="medxai")
class DiceLoss(keras.losses.Loss):
    """Soft Dice loss ``1 - (2 sum(y p) + s) / (sum(y) + sum(p) + s)`` over all pixels of the batch.

    One value per batch, so Keras ``sample_weight`` can only rescale it; to restrict it to the field of
    view, multiply ``y`` and ``p`` by the FOV mask (notebook 03 measures that it barely matters, since a
    pixel with y = 0 and p = 0 adds nothing to either sum).

    Taught in 03_unet_vessels.
    """

    def __init__(self, smooth: float = 1.0, name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, not {smooth!r}.")
        self.smooth = float(smooth)

    def call(self, y_true, y_pred):
        # One Dice over the whole batch (as keras.losses.Dice with axis=None), not a mean of per-patch
        # Dice values: a patch with no vessel would otherwise count as a full miss for any p > 0.
        return 1.0 - _soft_dice(y_true, y_pred, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="medxai")
class DiceBCELoss(keras.losses.Loss):
    """Soft Dice loss plus ``bce_weight`` times the mean binary cross-entropy over all pixels.

    Taught in 03_unet_vessels.
    """

    def __init__(self, smooth: float = 1.0, bce_weight: float = 1.0, epsilon: float = 1e-7, name: str = "dice_bce_loss",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if smooth < 0 or bce_weight < 0:
            raise ValueError(f"smooth and bce_weight must be >= 0, got {smooth!r} and {bce_weight!r}.")
        self.smooth = float(smooth)
        self.bce_weight = float(bce_weight)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        bce = -ops.mean(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return 1.0 - _soft_dice(y_true, y_pred, self.smooth) + self.bce_weight * bce

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "bce_weight": self.bce_weight, "epsilon": self.epsilon}


# --------------------------------------------------------------------------------------------
# Aleatoric uncertainty learned by the model: the heteroscedastic sampled-logit loss (notebook 04)
# --------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="medxai")
class HeteroscedasticBCE(keras.losses.Loss):
    """Kendall-Gal sampled-logit loss: ``-log mean_t p(y | mu + sigma eps_t)`` for a (logit mean, log-variance) output.

    Taught in 04_mc_dropout_uncertainty.
    """

    def __init__(self, samples: int = 20, seed: int | None = None, name: str = "heteroscedastic_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if int(samples) < 1:
            raise ValueError(f"samples must be >= 1, not {samples!r}.")
        self.samples = int(samples)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, y_true, y_pred):
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != 2:
            raise ValueError(
                f"HeteroscedasticBCE needs 2 output channels (logit mean, log-variance), got {y_pred.shape[-1]}."
            )
        y_true = ops.cast(y_true, y_pred.dtype)[..., 0]
        mean, log_variance = y_pred[..., 0], y_pred[..., 1]
        std = ops.exp(0.5 * log_variance)
        noise = keras.random.normal((self.samples,) + tuple(ops.shape(mean)), dtype=mean.dtype,
                                    seed=self.seed_generator)
        logits = mean[None] + std[None] * noise
        # log p(y | logit) = -BCE(y, logit), computed stably from the logit
        log_likelihood = -(ops.maximum(logits, 0.0) - logits * y_true[None] + ops.log1p(ops.exp(-ops.abs(logits))))
        # log of the mean likelihood over the samples (logsumexp - log T), then the mean over pixels
        per_pixel = ops.logsumexp(log_likelihood, axis=0) - np.log(self.samples)
        return -ops.mean(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "samples": self.samples, "seed": self.seed}


# --------------------------------------------------------------------------------------------
# The other answer to rare findings: oversample them in the input pipeline (notebook 02)
# --------------------------------------------------------------------------------------------


def oversampling_weights(labels, targets: dict, names=None, exact: bool = True) -> np.ndarray:
    """Mixture weights (all images, then each target finding's positives) giving each target its requested frequency
    (``exact=False``: the nearest reachable).

    Drawing from the whole set with probability ``w0`` and from the positives of target finding ``j`` with
    probability ``w_j`` shows finding ``k`` with frequency ``f_k = w0 p_k + sum_j w_j q_jk`` (``p_k`` its
    prevalence, ``q_jk`` its share among finding ``j``'s positives): a linear system in the ``w_j``.

    Taught in 02b_transfer_and_imbalance.
    """
    y = errors.check_labels(labels, "oversampling labels").astype(np.float64)
    if y.ndim != 2 or not len(y):
        raise errors.DataError("oversampling labels must be a non-empty (images, findings) array, "
                               f"not shape {y.shape}.")
    names = list(names) if names is not None else list(range(y.shape[1]))
    columns, wanted = [], []
    for key, frequency in targets.items():
        if key not in names:
            raise errors.DataError(f"oversampling target {key!r} is not a finding here; use one of {names}.")
        j = names.index(key)
        if not 0.0 < float(frequency) < 1.0:
            raise ValueError(f"oversampling target {key!r}: the requested frequency must be in (0, 1), "
                             f"not {frequency!r}.")
        if y[:, j].sum() == 0:
            raise errors.DataError(f"oversampling target {key!r}: no positive image to oversample; "
                                   "drop it from targets.")
        columns.append(j)
        wanted.append(float(frequency))
    if not columns:
        raise ValueError("oversampling targets are empty: name at least one finding and its requested frequency.")
    prevalence = y.mean(axis=0)[columns]
    share = np.stack([y[y[:, j] == 1][:, columns].mean(axis=0) for j in columns], axis=1)  # [k, j] = q_jk
    system = share - prevalence[:, None]
    if not exact:  # the nearest reachable frequencies: non-negative weights that sum to at most 1
        from scipy.optimize import lsq_linear

        w = lsq_linear(system, np.array(wanted) - prevalence, bounds=(0.0, 1.0)).x
        w = w / max(1.0, w.sum())
        return np.concatenate([[1.0 - w.sum()], w])
    if np.linalg.matrix_rank(system) < len(columns):
        raise errors.DataError(
            f"oversampling targets {list(targets)}: these findings always occur together here, so their frequencies "
            "cannot be set apart; request one of them only, or pass exact=False for the nearest reachable."
        )
    w = np.linalg.solve(system, np.array(wanted) - prevalence)
    if (w < -1e-9).any() or w.sum() > 1 + 1e-9:
        found = ", ".join(f"{names[j]}: {p:.3f}" for j, p in zip(columns, prevalence))
        raise ValueError(
            f"oversampling cannot reach the requested frequencies {dict(targets)} (prevalences {found}): it can only "
            "raise a finding above its prevalence, and findings that occur together raise each other. Request "
            "frequencies above the prevalences and lower than their sum allows, or pass exact=False for the nearest "
            "reachable."
        )
    w = np.clip(w, 0.0, None)
    return np.concatenate([[1.0 - w.sum()], w])


def expected_frequencies(labels, weights, targets: dict, names=None) -> np.ndarray:
    """Frequency of every finding in a stream mixed with ``weights`` (from oversampling_weights), computed from the
    labels.

    Taught in 02b_transfer_and_imbalance.
    """
    y = errors.check_labels(labels, "oversampling labels").astype(np.float64)
    names = list(names) if names is not None else list(range(y.shape[1]))
    pools = [y] + [y[y[:, names.index(key)] == 1] for key in targets]
    return sum(w * pool.mean(axis=0) for w, pool in zip(weights, pools))


def oversampled_dataset(inputs, labels, targets: dict, names=None, seed: int = 42, exact: bool = True):
    """An endless, unbatched tf.data stream of (input, labels) in which each target finding appears at its requested
    frequency.

    Taught in 02b_transfer_and_imbalance.
    """
    import tensorflow as tf

    y = errors.check_labels(labels, "oversampling labels")
    inputs = np.asarray(inputs)
    if len(inputs) != len(y):
        raise errors.DataError(f"oversampled_dataset: {len(inputs)} inputs but {len(y)} label rows.")
    weights = oversampling_weights(y, targets, names, exact=exact)
    names = list(names) if names is not None else list(range(y.shape[1]))
    pools = [np.arange(len(y))] + [np.flatnonzero(y[:, names.index(key)] == 1) for key in targets]
    streams = [
        tf.data.Dataset.from_tensor_slices((inputs[pool], y[pool])).repeat().shuffle(max(len(pool), 2), seed=seed + i)
        for i, pool in enumerate(pools)
    ]
    return tf.data.Dataset.sample_from_datasets(streams, weights=[float(w) for w in weights], seed=seed)
