"""Notebook 02b's repeated training runs: re-seeding TensorFlow before each fit vs a seeded tf.data pipeline.

Sections 3 and 4 of notebook 02b train one compiled DenseNet121 several times from reset weights, and
each run must see the same shuffled batches. Two ways to get them: `keras.utils.set_random_seed(seed)`
before every `fit` on arrays, or a `tf.data` pipeline whose shuffle carries its own seed. Both give
identical batches; the first makes TensorFlow build the training step again at each fit. Also: the
frozen-feature heads, one logistic regression per finding with scikit-learn's default solver (lbfgs) vs
liblinear, on pooled DenseNet features. Prints both ratios.
Run: `MEDXAI_PROFILE=smoke .venv/bin/python benchmarks/bench_transfer_runs.py`.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from helpers import losses, models, transfer

SIZE, IMAGES, EPOCHS, BATCH, RUNS, SEED = 64, 200, 2, 16, 3, 42


def fits(model, start_weights, x, y, reseed: bool) -> float:
    """Seconds for RUNS runs from the same start, each on the same shuffled batches."""
    began = time.perf_counter()
    for _ in range(RUNS):
        transfer.set_start(model, start_weights, 1e-3)
        if reseed:
            keras.utils.set_random_seed(SEED)
            model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
        else:
            batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=SEED).batch(BATCH)
            model.fit(batches, epochs=EPOCHS, verbose=0, shuffle=False)  # the dataset shuffles
    return time.perf_counter() - began


def heads(features, y, test_features, y_test, solver: str) -> tuple[float, float]:
    """(seconds, mean test AUC) of `transfer.linear_heads`, one logistic regression per finding, with this solver."""
    began = time.perf_counter()
    scores = transfer.linear_heads(features, y, test_features, solver=solver)
    seconds = time.perf_counter() - began
    return seconds, float(np.mean([roc_auc_score(y_test[:, j], scores[:, j]) for j in range(y.shape[1])]))


def main():
    rng = np.random.default_rng(SEED)
    x = rng.random((IMAGES, SIZE, SIZE, 1), dtype=np.float32)
    y = (rng.random((IMAGES, 14)) < 0.2).astype("float32")
    keras.utils.set_random_seed(SEED)
    model = models.densenet121_classifier(14, SIZE, weights=None, name="bench")
    model.compile(keras.optimizers.Adam(1e-3), losses.WeightedBinaryCrossentropy.from_labels(y))
    start_weights = model.get_weights()
    # the first traces, paid by both ways
    model.fit(x[:BATCH * 2], y[:BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)
    model.fit(tf.data.Dataset.from_tensor_slices((x[:BATCH * 2], y[:BATCH * 2])).batch(BATCH), epochs=1, verbose=0,
              shuffle=False)
    seconds = {"tf.data": fits(model, start_weights, x, y, reseed=False),
               "re-seeded": fits(model, start_weights, x, y, reseed=True)}
    print(f"{RUNS} runs of {EPOCHS} epochs on {IMAGES} images at {SIZE} px: "
          + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()))
    print(f"re-seeded / tf.data: {seconds['re-seeded'] / seconds['tf.data']:.2f}")

    # frozen-feature heads: 657 x 1024 pooled features, as in lab, with a signal in 14 directions
    features = rng.normal(size=(845, 1024)).astype("float32")
    labels = (rng.random((845, 14)) < 0.15).astype("float32")
    features[:, :14] += 1.5 * labels
    lbfgs = heads(features[:657], labels[:657], features[657:], labels[657:], "lbfgs")
    liblinear = heads(features[:657], labels[:657], features[657:], labels[657:], "liblinear")
    print(f"14 logistic regressions on 657 x 1024 features: lbfgs {lbfgs[0]:.2f} s (AUC {lbfgs[1]:.3f}), "
          f"liblinear {liblinear[0]:.2f} s (AUC {liblinear[1]:.3f})")
    print(f"lbfgs / liblinear: {lbfgs[0] / liblinear[0]:.1f}")


if __name__ == "__main__":
    main()
