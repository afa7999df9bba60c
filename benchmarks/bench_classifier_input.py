"""DenseNet121 training speed: fed from PNG files through the helpers pipeline, against tensors in memory.

The same model, batch size and images; two epochs each after a warm-up. The pipeline decodes in
parallel, caches and prefetches, so that the model should never wait for its input: the ratio
(pipeline images/s divided by in-memory images/s) should be at least 0.9. Prints the ratio last.
Run: `MEDXAI_PROFILE=lab .venv/bin/python benchmarks/bench_classifier_input.py`.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from helpers import config, datasets, models, preprocessing, synthetic

EPOCHS = 2
BATCH = 16
ROUNDS = 2


def images_per_second(fit, count) -> float:
    start = time.perf_counter()
    fit()
    return EPOCHS * count / (time.perf_counter() - start)


def main():
    cfg = config.load()
    config.seed_everything(cfg.seed)
    image_size = cfg.pick(smoke=64, lab=128, full=224)
    count = cfg.pick(smoke=64, lab=192, full=512)
    nih = datasets.read_nih(synthetic.ensure(cfg, "nih"))
    entries = nih.entries.iloc[:count]
    labels = entries[list(datasets.LABELS)].values.astype("float32")
    model = models.densenet121_classifier(len(datasets.LABELS), image_size, weights=None)
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")

    def from_files():
        """A fresh pipeline over the PNG files: its first epoch decodes them, the second reads the cache."""
        return preprocessing.image_dataset(entries.path, labels, image_size=image_size, batch_size=BATCH, shuffle=True)

    in_memory = np.concatenate([x for x, _ in from_files()])  # the same images, decoded once, as one array
    # Warm-up: build both training steps (tf.data input and array input) before timing anything.
    model.fit(from_files().take(2), epochs=1, verbose=0, shuffle=False)
    model.fit(in_memory[: 2 * BATCH], labels[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)

    print(f"DenseNet121 at {image_size} px, {count} images, batch {BATCH}, {EPOCHS} epochs, profile {cfg.profile}")
    files_rates, memory_rates = [], []
    for _ in range(ROUNDS):  # interleaved, best of each: the machine's other load hits both alike
        files_rates.append(images_per_second(
            lambda: model.fit(from_files(), epochs=EPOCHS, verbose=0, shuffle=False), count))
        memory_rates.append(images_per_second(
            lambda: model.fit(in_memory, labels, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=True), count
        ))
    from_files_rate, from_memory = max(files_rates), max(memory_rates)
    print("rounds (images/s): files " + ", ".join(f"{r:.1f}" for r in files_rates)
          + "; memory " + ", ".join(f"{r:.1f}" for r in memory_rates))
    print(f"from PNG files via tf.data  {from_files_rate:6.1f} images/s")
    print(f"from tensors in memory      {from_memory:6.1f} images/s")
    print(f"ratio pipeline / in-memory: {from_files_rate / from_memory:.2f}")


if __name__ == "__main__":
    main()
