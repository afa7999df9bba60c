"""Report speed: one 224-px chest radiograph through the whole report against one plain predict plus one Grad-CAM.

The report (`report.ChestReporter.report`): read the image, one backbone pass (feature map, pooled features and
probabilities together), T = 20 samples of the dropout head, the uncertainty decomposition, a Grad-CAM map and a
box for every finding predicted present (three here: the thresholds are set just below three probabilities). The
baseline: `model.predict` on the same 224-px input and one `explain.grad_cam`, what a bare "prediction and a
heatmap" costs. The report runs its backbone once and reads Grad-CAM off the same pass, so it should cost no more
than the baseline; target: ratio at most 2.0.

What each referral signal costs per image (notebook 04 section 6.1 compares them): the report with the saved
signal `expected_errors` (computed from the probabilities the report already has) and with the mean mutual
information of the last-layer dropout head (T samples of one dense layer on the pooled features) are timed side
by side; and, for the variants notebook 04 does not train on a CPU, dropout through the network or a T-member
deep ensemble, the cost of their T backbone passes per image (the one 224-px image tiled T times through
DenseNet121, what each sample of such a model needs). The image is the real DICOM chest CR of pydicom-data, read once
(its DICOM decoding and the resize to 1024 and 224 px are timed apart and printed, not in the ratio); the model is
a DenseNet121 with random weights (the timing does not depend on them). Both sides are warmed up (traced) first;
the fastest of interleaved repeats is kept. The ratio prints last.
Run: `.venv/bin/python benchmarks/bench_report.py`.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import config, datasets, dicom, explain, models, referral, report

import timing  # benchmarks/timing.py, beside this script

IMAGE_SIZE = 224
SAMPLES = 20  # T
PRESENT = 3  # findings predicted present, each with a Grad-CAM map and a box
REPEATS = 7


def main():
    warnings.filterwarnings("ignore")
    tf.get_logger().setLevel("ERROR")
    cfg = config.load()
    config.seed_everything(cfg.seed)
    labels = list(datasets.LABELS)
    model = models.densenet121_classifier(len(labels), IMAGE_SIZE, weights=None)
    start = time.perf_counter()
    radiograph = dicom.read_radiograph(dicom.example_path("RG1_UNCR.dcm"))
    image = dicom.to_model_input(radiograph, IMAGE_SIZE)
    read_time = time.perf_counter() - start
    batch = image[None]

    probabilities = np.asarray(model.predict(batch, verbose=0))[0]
    top = np.argsort(-probabilities)[:PRESENT]
    thresholds = pd.Series(0.999, index=labels)
    thresholds.iloc[top] = probabilities[top] - 1e-3  # exactly PRESENT findings present
    chest = report.ChestReporter(model, thresholds, samples=SAMPLES)
    recalibration = referral.Recalibration(np.ones(len(labels)), np.zeros(len(labels)))
    by_errors = report.ChestReporter(model, thresholds, samples=SAMPLES, referral={
        "signal": "expected_errors", "recalibration": recalibration.to_dict(), "threshold": 1.0, "refer_at": 0.2,
        "samples": SAMPLES, "images": 100, "chosen_on": "validation"})
    tiled = tf.constant(np.repeat(batch, SAMPLES, axis=0))
    backbone = tf.function(lambda x: model(x, training=False))
    print(f"DenseNet121 at {IMAGE_SIZE} px, T={SAMPLES}, {PRESENT} findings present; the DICOM read and resized in "
          f"{read_time:.2f} s (not in the ratio)")

    def whole_report():
        return chest.report(image[..., 0], source_name="RG1_UNCR.dcm")

    def report_expected_errors():
        return by_errors.report(image[..., 0], source_name="RG1_UNCR.dcm")

    def t_backbone_passes():
        return backbone(tiled).numpy()

    def predict_and_grad_cam():
        scores = model.predict(batch, verbose=0)
        return scores, explain.grad_cam(model, batch, class_index=int(top[0]))

    result = whole_report()  # warm-up, and the report is what it should be
    assert result.present == [labels[j] for j in sorted(top)], result.present
    assert "expected number of wrong decisions" in report_expected_errors().refer_reason
    predict_and_grad_cam()
    t_backbone_passes()
    times = timing.interleaved({"predict + one Grad-CAM": predict_and_grad_cam, "whole report": whole_report,
                                "report, expected errors": report_expected_errors,
                                f"{SAMPLES} backbone passes": t_backbone_passes}, REPEATS)
    start = time.perf_counter()
    report.to_html(result)
    render_time = time.perf_counter() - start

    for name, seconds in times.items():
        print(f"{name:25s} {seconds:7.3f} s")
    print(f"{'rendering (HTML + figure)':25s} {render_time:7.3f} s (not in the ratio)")
    plain = times["predict + one Grad-CAM"]
    print(f"per image by referral signal, relative to predict + one Grad-CAM: expected errors "
          f"{times['report, expected errors'] / plain:.2f}, mutual information of the head (T={SAMPLES}) "
          f"{times['whole report'] / plain:.2f}, dropout through the network or a {SAMPLES}-member ensemble "
          f"(T={SAMPLES} backbone passes alone) {times[f'{SAMPLES} backbone passes'] / plain:.2f}")
    ratio = times["whole report"] / plain
    print(f"time ratio whole report (T={SAMPLES}, {PRESENT} Grad-CAMs) / predict + one Grad-CAM: "
          f"{ratio:.2f} (target <= 2.0)")


if __name__ == "__main__":
    main()
