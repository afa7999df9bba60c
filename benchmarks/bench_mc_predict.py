"""MC-dropout sampling: uncertainty.mc_predict (T samples tiled into one compiled call) vs the naive
Python loop ``[model(x, training=True) for _ in range(T)]``, on the same U-Net and batch.

Run: .venv/bin/python benchmarks/bench_mc_predict.py   (prints the speed ratio last; target >= 2x)
The U-Net has no BatchNormalization, so both ways sample the same distribution and their means agree
within sampling error (with BatchNorm the naive loop would also be wrong, not only slow).
"""

from __future__ import annotations

import time

import numpy as np

from helpers import config, losses, models, uncertainty  # noqa: F401 (losses registers DiceLoss for loading)

SAMPLES = 20
BATCH = 16
PATCH = 48
REPEATS = 3


def main() -> None:
    cfg = config.load()
    path = cfg.models_dir / models.UNET_FILE
    if path.is_file():
        model = models.load_model(path)
        source = str(path)
    else:
        config.seed_everything(cfg.seed)
        model = models.unet(base_filters=8, depth=4, dropout_rate=0.1)
        source = "a fresh U-Net (run notebook 03 for the trained one)"
    mc_model = uncertainty.with_mc_dropout(model)
    x = np.random.default_rng(cfg.seed).random((BATCH, PATCH, PATCH, 1)).astype("float32")

    def naive():
        return np.stack([np.asarray(model(x, training=True)) for _ in range(SAMPLES)])

    def tiled():
        return uncertainty.mc_predict(mc_model, x, samples=SAMPLES, batch_size=SAMPLES * BATCH)

    naive(), tiled()  # warm-up: tracing and first allocations
    timings = {}
    for name, fn in (("naive loop", naive), ("mc_predict", tiled)):
        best = np.inf
        for _ in range(REPEATS):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    # the same mean within sampling error: 100 samples of each way, compared pixel by pixel in
    # standard errors of the difference of two means
    draws = {name: np.concatenate([fn() for _ in range(5)])
             for name, fn in (("naive loop", naive), ("mc_predict", tiled))}
    a, b = draws["naive loop"], draws["mc_predict"]
    difference = np.abs(a.mean(0) - b.mean(0))
    standard_error = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b)) + 1e-6
    z = difference / standard_error
    worst = np.unravel_index(np.argmax(difference), difference.shape)
    print(f"model: {source}; batch {BATCH} x {PATCH}x{PATCH}, T = {SAMPLES}, best of {REPEATS}")
    for name, seconds in timings.items():
        print(f"  {name:11s} {seconds * 1000:7.1f} ms")
    print(f"max |mean(naive) - mean(mc_predict)| = {difference.max():.4f} (tolerance there, 5 standard errors: "
          f"{5 * standard_error[worst]:.4f}); largest difference in standard errors {z.max():.2f} over {z.size} pixels "
          f"-> {'same mean' if z.max() < 5 else 'DIFFERENT MEANS'}")
    print(f"speed ratio (naive / mc_predict): {timings['naive loop'] / timings['mc_predict']:.1f}x")


if __name__ == "__main__":
    main()
