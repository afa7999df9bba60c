"""Where the time of an MC count goes: T dropout samples through uncertainty.mc_predict vs T deterministic
passes of the same images (the same arithmetic), and the T x N watersheds that turn samples into counts.

Run: .venv/bin/python benchmarks/bench_mc_counting.py   (prints the ratios last)
Also timed: the dropout model through Keras's model.predict (same rows, same masks, Keras's loop).
Target: sampling costs at most 2.5x the deterministic passes of the same rows (the dropout masks are
drawn over every activation they cover; the compiled call tiles the T samples). The watersheds are
reported as a share of the whole MC count. On a shared machine the ratios move by +-50% between runs.
The U-Net is untrained (timing only); the watershed runs on the true foreground and cores of the images,
each sample perturbed by noise, so the instance maps have the synthetic data's number of nuclei.
"""

from __future__ import annotations


import numpy as np

from helpers import cells, config, instances, uncertainty
from helpers.synthetic import cells as synthetic_cells
from timing import interleaved

SAMPLES = 20
IMAGES = 8
SIZE = 128
REPEATS = 5


def main() -> None:
    cfg = config.load()
    config.seed_everything(cfg.seed)
    rendered = [synthetic_cells.render(cfg.seed, i, SIZE) for i in range(IMAGES)]
    images = np.stack([grey for grey, _ in rendered])[..., None].astype("float32") / 255
    model = cells.nuclei_unet(base_filters=8, depth=3, dropout_rate=0.15)
    mc_model = uncertainty.with_mc_dropout(model)
    # the deterministic model sees the same T x N rows in one batch of the same size as mc_predict's
    tiled = np.repeat(images, SAMPLES, axis=0)

    def sampled():
        return uncertainty.mc_predict(mc_model, images, samples=SAMPLES, batch_size=SAMPLES * IMAGES)

    def deterministic():
        return model.predict(tiled, batch_size=SAMPLES * IMAGES, verbose=0)

    def dropout_via_predict():  # the MC model through Keras's predict: the same masks, Keras's loop
        return mc_model.predict(tiled, batch_size=SAMPLES * IMAGES, verbose=0)

    rng = np.random.default_rng(cfg.seed)
    targets = [np.stack(instances.nucleus_targets(labels)) for _, labels in rendered]
    noisy = [[np.clip(t + rng.normal(0, 0.15, t.shape), 0, 1) for t in targets] for _ in range(SAMPLES)]

    def watersheds():
        return [[instances.instances_from_maps(m[0], m[1]).max() for m in sample] for sample in noisy]

    runs = {"mc_predict": sampled, "deterministic": deterministic, "MC via predict": dropout_via_predict,
            "watersheds": watersheds}
    for run in runs.values():  # warm-up: tracing and first allocations
        run()
    best = interleaved(runs, REPEATS)
    print(f"{IMAGES} images of {SIZE}x{SIZE}, T = {SAMPLES}, best of {REPEATS}:")
    for name, seconds in best.items():
        print(f"  {name:14s} {seconds * 1000:8.1f} ms")
    total = best["mc_predict"] + best["watersheds"]
    ratio = best["mc_predict"] / best["deterministic"]
    print(f"sampling / deterministic passes: {ratio:.2f} (target <= 2.5); watersheds are "
          f"{best['watersheds'] / total:.0%} of the MC count ({SAMPLES * IMAGES} instance maps, "
          f"{best['watersheds'] / (SAMPLES * IMAGES) * 1000:.1f} ms each)")


if __name__ == "__main__":
    main()
