"""Instances (notebook 08): IoU, matching and the Data Science Bowl AP against hand computations; watersheds, counts,
intervals."""

import math
import re

import numpy as np
import pytest
from scipy import ndimage as ndi
from sklearn.metrics import roc_auc_score

from helpers import instances
from helpers.synthetic import cells as synthetic_cells
from helpers.errors import DataError

# Two true nuclei and three predictions on a 6x6 grid (hand-drawn, areas counted in the comments).
TRUE = np.array([
    [1, 1, 1, 0, 0, 0],
    [1, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 2, 2],
    [0, 0, 0, 0, 2, 2],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
])  # true 1: 6 px; true 2: 4 px
PRED = np.array([
    [5, 5, 5, 0, 0, 0],
    [5, 5, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 7],
    [0, 0, 0, 0, 0, 7],
    [0, 0, 0, 0, 0, 0],
    [9, 9, 0, 0, 0, 0],
])  # pred 5: 5 px inside true 1 -> IoU 5/6; pred 7: 2 px inside true 2 -> IoU 2/4; pred 9: nothing


def test_iou_matrix_matches_a_hand_count():
    iou, true_ids, pred_ids = instances.iou_matrix(TRUE, PRED)
    assert true_ids.tolist() == [1, 2] and pred_ids.tolist() == [5, 7, 9]
    np.testing.assert_allclose(iou, [[5 / 6, 0, 0], [0, 2 / 4, 0]], atol=1e-12)


def test_match_at_iou_half_is_strict_and_gives_hand_precision_recall_f1():
    # IoU 2/4 = 0.5 is not *above* 0.5: only pred 5 hits. TP 1, FP 2, FN 1.
    m = instances.match_instances(TRUE, PRED, 0.5)
    assert (m.tp, m.fp, m.fn) == (1, 2, 1)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 2)
    assert m.f1 == pytest.approx(2 * 1 / (2 * 1 + 2 + 1))
    assert m.pairs == [(1, 5, pytest.approx(5 / 6))]
    assert dict(zip(m.pred_ids.tolist(), m.pred_hit.tolist())) == {5: True, 7: False, 9: False}
    # at 0.4 pred 7 hits too (the Hungarian path, below 0.5)
    low = instances.match_instances(TRUE, PRED, 0.4)
    assert (low.tp, low.fp, low.fn) == (2, 1, 0)


def test_hungarian_below_half_picks_the_best_one_to_one_pairing():
    # one true object of 8 px, two predictions each covering half of it: IoU 4/8 each; only one may match
    true = np.zeros((2, 4), int)
    true[:] = 1
    pred = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    m = instances.match_instances(true, pred, 0.3)
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)


def test_average_precision_matches_the_bowl_formula_by_hand():
    # thresholds 0.5..0.95: pred 5 (IoU 0.833) hits at 0.5..0.8 (7 thresholds), nothing hits at 0.85..0.95
    expected = (7 * (1 / (1 + 2 + 1)) + 3 * (0 / (0 + 3 + 2))) / 10
    assert instances.average_precision(TRUE, PRED) == pytest.approx(expected)
    assert instances.average_precision(TRUE, PRED, thresholds=[0.5, 0.9]) == pytest.approx((0.25 + 0.0) / 2)
    assert instances.average_precision(TRUE, TRUE) == 1.0
    assert instances.average_precision(np.zeros((4, 4), int), np.zeros((4, 4), int)) == 1.0
    assert instances.average_precision(TRUE, np.zeros_like(TRUE)) == 0.0


def test_average_precision_agrees_with_a_brute_force_loop_on_synthetic_nuclei():
    _, truth = synthetic_cells.render(3, 5, 96)
    shifted = np.roll(truth, 1, axis=1)  # every nucleus moved one pixel: IoUs spread over the thresholds
    ious = []
    for t in np.unique(truth)[1:]:
        a = truth == t
        best = max((np.sum(a & (shifted == p)) / np.sum(a | (shifted == p)) for p in np.unique(shifted[a]) if p),
                   default=0)
        ious.append(best)
    n_true, n_pred = truth.max(), len(np.unique(shifted)) - 1
    brute = np.mean(
        [sum(i > t for i in ious) / (n_true + n_pred - sum(i > t for i in ious)) for t in instances.DSB_THRESHOLDS])
    assert instances.average_precision(truth, shifted) == pytest.approx(brute, abs=1e-12)


def test_counts_and_relabel():
    assert instances.count_instances(PRED) == 3
    relabelled = instances.relabel(PRED)
    assert sorted(np.unique(relabelled).tolist()) == [0, 1, 2, 3]
    assert instances.match_instances(PRED, relabelled).f1 == 1.0


def test_count_errors_by_hand():
    errors = instances.count_errors([10, 20, 0], [12, 15, 1])
    assert errors["MAE"] == pytest.approx((2 + 5 + 1) / 3)
    assert errors["relative error"] == pytest.approx((2 / 10 + 5 / 20) / 2)  # the image with no nuclei left out
    assert errors["bias"] == pytest.approx((2 - 5 + 1) / 3)


def test_nucleus_targets_split_two_touching_discs_into_two_cores():
    yy, xx = np.mgrid[:40, :60]
    labels = np.where((yy - 20) ** 2 + (xx - 20) ** 2 < 100, 1, 0)
    labels = np.where(((yy - 20) ** 2 + (xx - 37) ** 2 < 100) & (labels == 0), 2, labels)
    foreground, cores = instances.nucleus_targets(labels)
    np.testing.assert_array_equal(foreground, labels > 0)
    assert ndi.label(foreground)[1] == 1 and ndi.label(cores)[1] == 2
    assert set(np.unique(labels[cores > 0])) == {1, 2}
    # the watershed from the cores gives back the two nuclei
    found = instances.instances_from_maps(foreground, cores)
    assert instances.match_instances(labels, found).tp == 2


def test_instances_from_maps_keeps_a_blob_without_core_and_drops_specks():
    foreground = np.zeros((20, 20))
    foreground[2:8, 2:8] = 0.9  # a nucleus whose core the model missed
    foreground[12:18, 12:18] = 0.9
    foreground[0, 19] = 0.9  # a one-pixel speck
    cores = np.zeros((20, 20))
    cores[14:16, 14:16] = 0.9
    labels = instances.instances_from_maps(foreground, cores, min_size=4)
    assert instances.count_instances(labels) == 2 and labels[0, 19] == 0


def test_classical_baseline_finds_isolated_nuclei():
    image = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    for cy, cx in ((12, 12), (12, 50), (50, 12), (50, 50)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = 0.8
    labels = instances.classical_instances(image)
    assert instances.count_instances(labels) == 4
    assert instances.classical_instances(np.zeros((8, 8))).max() == 0  # flat: nothing, no crash


def test_touching_fraction_by_hand():
    labels = np.array([[1, 2, 0, 3], [0, 0, 0, 0], [4, 0, 0, 0]])
    assert instances.touching_fraction(labels) == pytest.approx(2 / 4)
    diagonal = np.array([[1, 0], [0, 2]])
    assert instances.touching_fraction(diagonal) == 1.0
    assert instances.touching_fraction(np.array([[0, 1], [2, 0]])) == 1.0  # the other diagonal
    assert instances.touching_fraction(np.zeros((3, 3), int)) == 0.0


def test_count_interval_and_coverage_by_hand():
    counts = np.array([[10, 20], [12, 20], [14, 26]], float)  # T = 3 samples of 2 images
    mean, low, high = instances.count_interval(counts, 0.5)
    np.testing.assert_allclose(mean, [12, 22])
    np.testing.assert_allclose(low, np.quantile(counts, 0.25, axis=0))
    np.testing.assert_allclose(high, np.quantile(counts, 0.75, axis=0))
    assert instances.coverage([12, 30], low, high) == 0.5


def test_conformal_scale_is_the_corrected_quantile_and_covers_new_draws():
    true, centre, spread = np.arange(1, 10.0), np.zeros(9), np.ones(9)
    # scores 1..9; rank ceil(10 * 0.9) = 9 -> 9.0; ceil(10 * 0.5) = 5 -> 5.0
    assert instances.conformal_scale(true, centre, spread, 0.9) == 9.0
    assert instances.conformal_scale(true, centre, spread, 0.5) == 5.0
    with pytest.raises(ValueError, match="too few"):
        instances.conformal_scale(true[:5], centre[:5], spread[:5], 0.9)
    # exchangeable draws: the calibrated interval covers about 90% of new ones
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(400):
        errors = rng.normal(0, 3, 60)
        k = instances.conformal_scale(errors[:30], np.zeros(30), np.ones(30), 0.9)
        covered.append(np.mean(np.abs(errors[30:]) <= k))
    assert 0.88 <= np.mean(covered) <= 0.95


def test_per_instance_mean_and_stability():
    values = np.arange(36, dtype=float).reshape(6, 6)
    means = instances.per_instance_mean(PRED, values)
    np.testing.assert_allclose(means, [np.mean([0, 1, 2, 6, 7]), np.mean([17, 23]), np.mean([30, 31])])
    # pred 5 is found in both samples, pred 7 in one, pred 9 in none
    sample_a = np.where(PRED == 9, 0, PRED)
    sample_b = np.where(PRED == 5, PRED, 0)
    np.testing.assert_allclose(instances.instance_stability(PRED, [sample_a, sample_b]), [1.0, 0.5, 0.0])


def test_stability_ranks_wrong_nuclei_on_perturbed_maps():
    # a reference with some objects that samples reproduce and some that they do not: AUROC 1
    _, truth = synthetic_cells.render(1, 2, 96)
    n = truth.max()
    unstable = np.arange(1, n + 1) % 3 == 0
    samples = [np.where(np.isin(truth, np.flatnonzero(unstable) + 1), 0, truth) for _ in range(4)]
    assert roc_auc_score(unstable, -instances.instance_stability(truth, samples)) == 1.0


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: instances.match_instances(TRUE > 0, PRED), DataError, "boolean mask"),
        (lambda: instances.match_instances(TRUE * 0.5, PRED), DataError, "whole numbers"),
        (lambda: instances.match_instances(TRUE, PRED[:5]), ValueError, "same shape"),
        (lambda: instances.match_instances(TRUE, PRED, 1.0), ValueError, "[0, 1)"),
        (lambda: instances.instances_from_maps(np.full((4, 4), 255.0), np.zeros((4, 4))), DataError, "divide by 255"),
        (lambda: instances.count_interval(np.ones((1, 3)), 0.9), ValueError, "T >= 2"),
        (lambda: instances.count_interval(np.ones((4, 3)), 90), ValueError, "pass 0.9"),
    ],
)
def test_bad_inputs_are_named(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_dsb_thresholds_are_the_bowls():
    assert len(instances.DSB_THRESHOLDS) == 10
    assert instances.DSB_THRESHOLDS[0] == 0.5 and math.isclose(instances.DSB_THRESHOLDS[-1], 0.95)


def test_huge_label_ids_are_numbers_not_table_sizes():
    labels = np.zeros((8, 8), np.int64)
    labels[1:4, 1:4] = 2**33  # an id this large once asked numpy for a 64 GB lookup table
    labels[5:8, 5:8] = 7
    assert instances.count_instances(labels) == 2
    assert set(np.unique(instances.relabel(labels))) == {0, 1, 2}
    assert instances.relabel(labels)[2, 2] == 2 and instances.relabel(labels)[6, 6] == 1  # order of the old ids kept
    foreground, cores = instances.nucleus_targets(labels)
    assert foreground.sum() == 18 and cores.sum() >= 2
    assert instances.average_precision(labels, instances.relabel(labels)) == 1.0
