"""A stand-in classifier's few training steps: run eagerly (what `models.classifier_or_stand_in` does up to
`models.EAGER_STEPS` steps) vs traced into a graph first (Keras's default), on the same DenseNet121 and batches.

Run: .venv/bin/python benchmarks/bench_stand_in.py   (prints the time ratio traced / eager last; target >= 1.5)
Notebooks 04 to 09 train a stand-in when notebook 02 has not run (Colab, a class starting mid-series, the `full`
path tests): two steps of 16 images at 64 px. Tracing DenseNet121's training step costs more than those steps.
Each way builds a fresh model in this process, alternately, so both see the same load.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from helpers import config, losses, models

IMAGES, SIZE, REPEATS = 32, 64, 2


def train(eager: bool, x: np.ndarray, y: np.ndarray) -> float:
    """Seconds to build, compile and fit one epoch of a fresh stand-in."""
    start = time.perf_counter()
    model = models.densenet121_classifier(y.shape[1], SIZE, weights=None)
    model.compile(keras.optimizers.Adam(1e-3), losses.WeightedBinaryCrossentropy.from_labels(y), run_eagerly=eager)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    return time.perf_counter() - start


def main() -> None:
    cfg = config.load()
    rng = np.random.default_rng(cfg.seed)
    x = rng.random((IMAGES, SIZE, SIZE, 1)).astype("float32")
    y = (rng.random((IMAGES, 14)) < 0.2).astype("float32")
    times = {"eager": [], "traced": []}
    for _ in range(REPEATS):
        for name in times:
            times[name].append(train(name == "eager", x, y))
    eager, traced = min(times["eager"]), min(times["traced"])
    steps = -(-IMAGES // 16)
    print(f"{steps} training steps of {IMAGES} images at {SIZE} px (models.EAGER_STEPS = {models.EAGER_STEPS}), "
          f"best of {REPEATS}:")
    print(f"  eager  {eager:6.1f} s")
    print(f"  traced {traced:6.1f} s")
    print(f"time ratio traced / eager: {traced / eager:.2f} (target >= 1.5)")


if __name__ == "__main__":
    main()
