"""Input pipeline: tf.data (parallel decode, cache, prefetch) against a plain Python loop.

Both read the same PNGs of the synthetic NIH-layout set, resize them to the model input and batch
them, for three epochs (what a short training run asks of its input). Prints images/s for each and,
last, the speed ratio. Run: `MEDXAI_PROFILE=lab .venv/bin/python benchmarks/bench_input_pipeline.py`.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from helpers import config, datasets, preprocessing, synthetic

EPOCHS = 3
BATCH = 32


def python_loop(paths, labels, image_size):
    """The way a first script does it: read each file, resize, stack, every epoch."""
    count = 0
    for _ in range(EPOCHS):
        for start in range(0, len(paths), BATCH):
            batch = [preprocessing.read_image(p, channels=1) for p in paths[start : start + BATCH]]
            x = tf.image.resize(np.stack(batch), (image_size, image_size), antialias=True)
            count += int(x.shape[0])
    return count


def tf_data(paths, labels, image_size):
    ds = preprocessing.image_dataset(paths, labels, image_size=image_size, batch_size=BATCH, shuffle=True)
    count = 0
    for _ in range(EPOCHS):
        for x, _ in ds:
            count += int(x.shape[0])
    return count


def main():
    cfg = config.load()
    nih = datasets.read_nih(synthetic.ensure(cfg, "nih"))
    paths, labels = list(nih.entries.path), nih.labels
    image_size = cfg.pick(smoke=64, lab=128, full=224)
    print(f"{len(paths)} images, {EPOCHS} epochs, batch {BATCH}, resized to {image_size} px, profile {cfg.profile}")
    results = {}
    for name, run in (("python loop", python_loop), ("tf.data", tf_data)):
        start = time.perf_counter()
        count = run(paths, labels, image_size)
        seconds = time.perf_counter() - start
        results[name] = count / seconds
        print(f"{name:12s} {count} images in {seconds:6.2f} s = {results[name]:7.0f} images/s")
    print(f"speed ratio tf.data / python loop: {results['tf.data'] / results['python loop']:.1f}x")


if __name__ == "__main__":
    main()
