"""Sliding-window inference: what the overlap handling costs on top of the bare forward passes.

`preprocessing.predict_full_image` pads a 565x584 DRIVE-sized image by reflection, cuts it into
overlapping windows, predicts them in batches and averages the overlaps. The bare run feeds the
same number of windows, already stacked in one array, to the same model with the same batch size:
what any sliding window has to pay. Prints pixels per second for each and, last, the time ratio
(target: at most 1.5). Run: `.venv/bin/python benchmarks/bench_sliding_window.py`.
"""

from __future__ import annotations


import numpy as np

from helpers import config, models, preprocessing

import timing  # benchmarks/timing.py, beside this script

HEIGHT, WIDTH = 584, 565  # DRIVE
PATCH, STRIDE, BATCH = 48, 24, 64  # notebook 03's lab settings
REPEATS = 7


def main():
    cfg = config.load()
    config.seed_everything(cfg.seed)
    model = models.unet(base_filters=8, depth=4)
    image = np.random.default_rng(cfg.seed).random((HEIGHT, WIDTH)).astype(np.float32)
    margin = PATCH - STRIDE
    windows = (len(preprocessing.window_starts(HEIGHT + 2 * margin, PATCH, STRIDE))
               * len(preprocessing.window_starts(WIDTH + 2 * margin, PATCH, STRIDE)))  # fmt: skip
    stacked = np.random.default_rng(cfg.seed + 1).random((windows, PATCH, PATCH, 1)).astype(np.float32)
    print(f"U-Net (base 8, depth 4), image {WIDTH}x{HEIGHT}, patch {PATCH}, stride {STRIDE}: {windows} windows "
          f"({windows * PATCH * PATCH / (HEIGHT * WIDTH):.1f} window pixels per image pixel), batch {BATCH}")

    def sliding():
        return preprocessing.predict_full_image(model, image, PATCH, STRIDE, batch_size=BATCH)

    def bare():
        return model.predict(stacked, batch_size=BATCH, verbose=0)

    sliding(), bare()  # warm up: trace the predict function for both batch shapes
    results = timing.interleaved({"bare forward passes": bare, "predict_full_image": sliding}, REPEATS)
    for name, seconds in results.items():
        print(f"{name:20s} {seconds:6.3f} s = {HEIGHT * WIDTH / seconds / 1e6:6.3f} M image pixels/s")
    print("time ratio predict_full_image / bare forward passes: "
          f"{results['predict_full_image'] / results['bare forward passes']:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
