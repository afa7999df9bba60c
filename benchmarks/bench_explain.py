"""Saliency speed: explain.grad_cam against tf-keras-vis Gradcam, and integrated gradients against their floor.

(1) `explain.grad_cam` and tf-keras-vis `Gradcam` on the same flat DenseNet121 classifier, the same
batch and class: tf-keras-vis rebuilds a feature-extracting model and runs it eagerly on every call;
`explain` compiles one function per model and layer and reuses it. Target: ratio at most 1.0.
(2) `explain.integrated_gradients` with 64 steps on one image against the floor any implementation
must pay: one batched forward-and-backward pass over 64 images (the compiled gradient function
called once). Target: ratio at most 1.3.
(3) A map computed once, as notebooks 06 and 07 do: the first `explain.grad_cam` on a new copy of the
model, compiled (trace, optimise, run) vs `model.run_eagerly = True` (the Python body run eagerly).
Target: ratio compiled / eager at least 1.5; it also prints after how many calls compiling pays back.
Parts 1 and 2 are warmed up (traced) first; the fastest of interleaved repeats is kept. Ratios print last.
Run: `.venv/bin/python benchmarks/bench_explain.py`.
"""

from __future__ import annotations

import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from helpers import config, explain, models

import timing  # benchmarks/timing.py, beside this script

IMAGE_SIZE = 64  # the smoke profile's classifier: the comparison, not the absolute time, is the point
BATCH = 8  # Grad-CAM images per call
STEPS = 64  # integrated-gradient steps
REPEATS = 9


def main():
    warnings.filterwarnings("ignore")
    tf.get_logger().setLevel("ERROR")
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    cfg = config.load()
    config.seed_everything(cfg.seed)
    model = models.densenet121_classifier(14, IMAGE_SIZE, weights=None)
    layer = explain.last_conv_layer(model)
    rng = np.random.default_rng(cfg.seed)
    images = rng.random((BATCH, IMAGE_SIZE, IMAGE_SIZE, 1)).astype(np.float32)
    classes = np.arange(BATCH) % 14
    print(f"DenseNet121 at {IMAGE_SIZE} px, Grad-CAM layer {layer!r}, batch {BATCH}; integrated gradients "
          f"{STEPS} steps")

    gradcam = Gradcam(model)
    score = CategoricalScore(classes.tolist())

    def ours_cam():
        return explain.grad_cam(model, images, classes, layer_name=layer, upsampling="align_corners")

    def theirs_cam():
        return gradcam(score, images, penultimate_layer=layer, seek_penultimate_conv_layer=False)

    assert np.abs(ours_cam() - theirs_cam()).max() < 1e-4  # warm-up, and the same answer
    cam_times = timing.interleaved({"tf-keras-vis Gradcam": theirs_cam, "explain.grad_cam": ours_cam}, REPEATS)

    # The floor sees the very images integrated gradients feed the model: the straight path from black.
    path = np.linspace(0.0, 1.0, STEPS, dtype=np.float32)[:, None, None, None] * images[:1]
    weights = np.zeros((STEPS, 14), np.float32)
    weights[:, 3] = 1.0
    gradient = explain.gradient_function(model)

    def floor():
        scores, grads = gradient(tf.constant(path), tf.constant(weights))
        return scores.numpy(), grads.numpy()

    def integrated():
        return explain.integrated_gradients(model, images[:1], 3, steps=STEPS, batch_size=STEPS, tolerance=1.0)

    floor(), integrated()  # warm-up
    ig_times = timing.interleaved({"one pass over 64 images": floor, "integrated_gradients": integrated}, REPEATS)

    def first_map(eager: bool) -> float:
        fresh = keras.models.clone_model(model)  # nothing compiled for it yet
        fresh.set_weights(model.get_weights())
        fresh.run_eagerly = eager
        start = time.perf_counter()
        explain.grad_cam(fresh, images, classes, layer_name=layer)
        return time.perf_counter() - start

    first = {"first map, compiled": [], "first map, eager": []}
    for _ in range(3):
        for name in first:
            first[name].append(first_map(name.endswith("eager")))
    first = {name: min(values) for name, values in first.items()}

    for name, seconds in {**cam_times, **ig_times, **first}.items():
        print(f"{name:25s} {seconds:7.3f} s")
    cam_ratio = cam_times["explain.grad_cam"] / cam_times["tf-keras-vis Gradcam"]
    ig_ratio = ig_times["integrated_gradients"] / ig_times["one pass over 64 images"]
    print(f"time ratio explain.grad_cam / tf-keras-vis Gradcam: {cam_ratio:.2f} (target <= 1.0)")
    once_ratio = first["first map, compiled"] / first["first map, eager"]
    again = cam_times["explain.grad_cam"]  # a compiled call once traced
    pays_back = (first["first map, compiled"] - again) / max(first["first map, eager"] - again, 1e-9)
    print(f"time ratio first map compiled / eager: {once_ratio:.2f} (target >= 1.5); compiling pays back from about "
          f"{pays_back:.1f} calls on")
    print(f"time ratio integrated_gradients ({STEPS} steps) / one batched pass over {STEPS} images: {ig_ratio:.2f} "
          "(target <= 1.3)")


if __name__ == "__main__":
    main()
