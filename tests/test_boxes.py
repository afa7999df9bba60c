"""boxes: IoU and IoBB against hand computations, heatmaps to boxes, heuristics, the T(IoBB) table."""

import numpy as np
import pandas as pd
import pytest

from helpers import boxes
from helpers.errors import DataError


# --- IoU and IoBB by hand ------------------------------------------------------------------

@pytest.mark.parametrize(
    "a, b, expected_iou, expected_iobb",
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0, 1.0),  # identical
        ((2, 2, 4, 4), (0, 0, 10, 10), 16 / 100, 1.0),  # prediction nested inside the truth
        ((0, 0, 10, 10), (2, 2, 4, 4), 16 / 100, 16 / 100),  # truth nested inside the prediction
        ((0, 0, 10, 10), (20, 20, 5, 5), 0.0, 0.0),  # disjoint
        ((0, 0, 10, 10), (10, 0, 10, 10), 0.0, 0.0),  # touching along an edge: no shared area
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150, 50 / 100),  # half overlap
        ((0, 0, 4, 2), (2, 1, 4, 2), 2 / 14, 2 / 8),  # corner overlap, 2x1 shared
    ],
)
def test_iou_and_iobb_match_hand_computations(a, b, expected_iou, expected_iobb):
    assert boxes.iou(a, b) == pytest.approx(expected_iou)
    assert boxes.iou(b, a) == pytest.approx(expected_iou)  # IoU is symmetric
    assert boxes.iobb(a, b) == pytest.approx(expected_iobb)


def test_iobb_is_not_symmetric_and_rewards_small_predictions():
    small, big = (4, 4, 2, 2), (0, 0, 10, 10)
    assert boxes.iobb(small, big) == 1.0
    assert boxes.iobb(big, small) == pytest.approx(0.04)
    assert boxes.iou(small, big) == pytest.approx(0.04)


def test_scale_box_round_trip_and_values():
    box = (100.5, 200.0, 50.0, 25.0)
    small = boxes.scale_box(box, 1024, 128)
    assert small == pytest.approx((12.5625, 25.0, 6.25, 3.125))
    assert boxes.scale_box(small, 128, 1024) == pytest.approx(box)
    assert boxes.scale_box(box, (1000, 500), (100, 100)) == pytest.approx((10.05, 40.0, 5.0, 5.0))
    # IoU does not change when both boxes move to another size; it must be one space for both.
    truth = (90, 190, 60, 40)
    assert boxes.iou(small, boxes.scale_box(truth, 1024, 128)) == pytest.approx(boxes.iou(box, truth))


# --- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [(0, 0, 0, 5), (0, 0, 5, -1), (0, 0, -3, 4)])
def test_zero_or_negative_width_is_refused(bad):
    with pytest.raises(ValueError, match="must be positive"):
        boxes.iou(bad, (0, 0, 5, 5))
    with pytest.raises(ValueError, match="must be positive"):
        boxes.iobb((0, 0, 5, 5), bad)
    with pytest.raises(ValueError, match="must be positive"):
        boxes.scale_box(bad, 10, 20)


def test_box_outside_the_image_is_clipped_with_a_warning():
    with pytest.warns(UserWarning, match="clipped to"):
        clipped = boxes.check_box((-10, 90, 30, 20), (100, 100))
    assert clipped == (0.0, 90.0, 20.0, 10.0)
    with pytest.warns(UserWarning, match="clipped"):
        assert boxes.iobb((90, 90, 20, 20), (90, 90, 10, 10), image_size=100) == 1.0
    with pytest.raises(ValueError, match="entirely outside"):
        boxes.check_box((200, 200, 5, 5), 100)


def test_heatmap_of_the_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="2-D map"):
        boxes.heatmap_to_boxes(np.zeros((2, 4, 4)), 64)
    with pytest.raises(ValueError, match="2-D map"):
        boxes.heatmap_to_boxes(np.zeros(16), 64)
    with pytest.raises(ValueError, match="threshold method"):
        boxes.heatmap_to_boxes(np.ones((4, 4)), 64, method="mean")


# --- heatmap to boxes ----------------------------------------------------------------------

def _blobs():
    """A 32x32 heatmap with two square blobs of known extent and heat."""
    heatmap = np.zeros((32, 32), np.float32)
    heatmap[4:12, 6:10] = 1.0  # x 6..10, y 4..12: a 4x8 blob, peak heat
    heatmap[20:30, 16:30] = 0.6  # x 16..30, y 20..30: a 14x10 blob, cooler and larger
    return heatmap


def test_heatmap_to_boxes_recovers_known_blobs():
    found = boxes.heatmap_to_boxes(_blobs(), 32, threshold=0.3)  # same size: no resampling blur
    found = found.sort_values("y").reset_index(drop=True)
    assert len(found) == 2
    assert tuple(found.loc[0, ["x", "y", "w", "h"]]) == (6, 4, 4, 8)
    assert tuple(found.loc[1, ["x", "y", "w", "h"]]) == (16, 20, 14, 10)
    assert found.loc[0, "peak_heat"] == 255 and found.loc[1, "mean_heat"] == pytest.approx(153, abs=1)
    # Upsampled 8 times into a 256x128 image: the boxes scale with it (within the bilinear blur).
    big = boxes.heatmap_to_boxes(_blobs(), (256, 128), threshold=0.3).sort_values("y").reset_index(drop=True)
    assert len(big) == 2
    expected = boxes.scale_box((6, 4, 4, 8), 32, (256, 128))
    assert np.allclose(big.loc[0, ["x", "y", "w", "h"]].astype(float), expected, atol=8)
    assert boxes.iou(tuple(big.loc[0, ["x", "y", "w", "h"]]), expected) > 0.7


def test_threshold_methods():
    heat = boxes.heat_image(_blobs(), 32)
    assert heat.dtype == np.uint8 and heat.max() == 255 and heat.min() == 0
    assert boxes.threshold_mask(heat, 0.7, "fraction")[0].sum() == 32  # only the hot 4x8 blob
    assert boxes.threshold_mask(heat, 100, "fixed")[0].sum() == 32 + 140
    mask, level = boxes.threshold_mask(heat, method="otsu")
    assert 0 <= level < 153 and mask.sum() == 32 + 140
    assert len(boxes.heatmap_to_boxes(np.full((4, 4), 0.3), 64)) == 0  # a flat map holds no location


# --- heuristics ----------------------------------------------------------------------------

def _candidates():
    return pd.DataFrame(
        {"x": [0, 50, 10, 70], "y": [0, 50, 60, 5], "w": [80, 10, 30, 20], "h": [80, 10, 28, 22],
         "area": [6400, 100, 840, 440], "mean_heat": [120.0, 250.0, 180.0, 200.0], "peak_heat": [255.0] * 4}
    )


def test_heuristics_choose_the_right_box():
    table = _candidates()
    assert boxes.choose_box(table, "largest").name == 0
    assert boxes.choose_box(table, "mean_heat").name == 1
    # Mean training box 30x30: the two closest in size are rows 2 and 3; of those, row 3 is hotter.
    assert boxes.choose_box(table, "deep_media", mean_size=(30, 30), keep=2).name == 3
    # With keep=1 only the closest in size survives.
    assert boxes.choose_box(table, "deep_media", mean_size=(30, 30), keep=1).name == 2
    # With all kept, it is the mean-heat choice.
    assert boxes.choose_box(table, "deep_media", mean_size=(30, 30), keep=5).name == 1
    assert boxes.choose_box(table.iloc[:0], "largest") is None
    with pytest.raises(ValueError, match="mean_size"):
        boxes.choose_box(table, "deep_media")
    with pytest.raises(ValueError, match="heuristic must be one of"):
        boxes.choose_box(table, "biggest")


def test_mean_box_sizes_rescale():
    truth = pd.DataFrame({"label": ["Mass", "Mass", "Nodule"], "w": [100, 300, 40], "h": [50, 150, 40],
                          "image_width": [1024] * 3, "image_height": [1024] * 3})
    sizes = boxes.mean_box_sizes(truth)
    assert tuple(sizes.loc["Mass"]) == (200, 100)
    assert tuple(boxes.mean_box_sizes(truth, 128).loc["Nodule"]) == (5, 5)


# --- the T(IoBB) table ---------------------------------------------------------------------

def test_iobb_table_fractions_and_no_boxes():
    results = pd.DataFrame({
        "image_index": ["a", "b", "c", "d", "d", "e"],
        "label": ["Mass", "Mass", "Mass", "Nodule", "Nodule", "Nodule"],
        "iobb": [0.05, 0.3, 0.8, 0.2, 0.6, 0.0],  # d has two truth boxes: its best (0.6) counts; e found none (0)
    })
    table = boxes.iobb_table(results, thresholds=(0.1, 0.5))
    assert table.loc[(0.1, "ours"), "Mass"] == pytest.approx(2 / 3)
    assert table.loc[(0.5, "ours"), "Mass"] == pytest.approx(1 / 3)
    assert table.loc[(0.5, "ours"), "Nodule"] == pytest.approx(1 / 2)
    assert table.loc[(0.1, "ours"), "Cardiomegaly"] == "no boxes"
    assert list(table.columns[:3]) == ["Atelectasis", "Cardiomegaly", "Effusion"]
    assert boxes.counts(results).loc[["Mass", "Nodule", "Effusion"]].tolist() == [3, 2, 0]


def test_iobb_table_counts_strictly_above_t():
    # Wang et al. count a localisation as correct when IoBB > T: a value of exactly T is a miss.
    results = pd.DataFrame({"label": ["Mass"] * 4, "iobb": [0.25, 0.5, 0.5000001, 0.9]})
    table = boxes.iobb_table(results, thresholds=(0.25, 0.5, 0.9))
    assert table.loc[(0.25, "ours"), "Mass"] == pytest.approx(3 / 4)
    assert table.loc[(0.5, "ours"), "Mass"] == pytest.approx(2 / 4)
    assert table.loc[(0.9, "ours"), "Mass"] == 0.0


def test_iobb_table_reads_known_spellings_and_refuses_unknown_labels():
    results = pd.DataFrame({"label": ["Infiltrate", "infiltration", "mass", "MASS"], "iobb": [0.6, 0.2, 0.7, 0.1]})
    table = boxes.iobb_table(results, thresholds=(0.5,))
    assert table.loc[(0.5, "ours"), "Infiltration"] == pytest.approx(1 / 2)  # not dropped as "no boxes"
    assert table.loc[(0.5, "ours"), "Mass"] == pytest.approx(1 / 2)
    assert boxes.counts(results).loc[["Infiltration", "Mass"]].tolist() == [2, 2]
    bad = pd.DataFrame({"label": ["Mass", "Pneumonitis"], "iobb": [0.5, 0.5]})
    with pytest.raises(DataError, match="'Pneumonitis'.*Atelectasis.*Infiltration.*Pneumothorax"):
        boxes.iobb_table(bad)
    with pytest.raises(DataError, match="Hernia"):  # a finding of the 14, but NIH drew no box for it
        boxes.iobb_table(pd.DataFrame({"label": ["Hernia"], "iobb": [0.5]}))


def test_iobb_table_refuses_nan_and_out_of_range_values():
    nan = pd.DataFrame({"label": ["Mass", "Mass"], "iobb": [0.3, np.nan]})
    with pytest.raises(DataError, match=r"results\['iobb'\].*0 where no box was found.*1 NaN.*index 1"):
        boxes.iobb_table(nan)
    with pytest.raises(DataError, match="divide by 100"):
        boxes.iobb_table(pd.DataFrame({"label": ["Mass"], "iobb": [30.5]}))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        boxes.iobb_table(pd.DataFrame({"label": ["Mass"], "iobb": [0.3]}), thresholds=(1.0,))


def test_scaled_boxes_use_the_height_for_y_and_h():
    table = pd.DataFrame(
        {"x": [50.0], "y": [20.0], "w": [100.0], "h": [40.0], "image_width": [200], "image_height": [100]})
    assert boxes.scaled_boxes(table, 64) == [pytest.approx((16.0, 12.8, 32.0, 25.6))]
    assert boxes.scaled_boxes(table, (100, 200)) == [pytest.approx((25.0, 40.0, 50.0, 80.0))]


def test_nan_heatmap_and_box_are_refused():
    heatmap = np.ones((4, 4))
    heatmap[2, 3] = np.nan
    with pytest.raises(DataError, match=r"heatmap \(4, 4\).*NaN.*\(2, 3\)"):
        boxes.heatmap_to_boxes(heatmap, 64)
    with pytest.raises(DataError, match="NaN"):
        boxes.iou((0, np.nan, 4, 4), (0, 0, 4, 4))


def test_iobb_table_beside_the_published_rows():
    results = pd.DataFrame({"label": ["Cardiomegaly"] * 4, "iou": [0.1, 0.3, 0.6, 0.95]})
    table = boxes.iobb_table(results, value="iou", published=True)
    assert table.loc[(0.1, "NIH"), "Cardiomegaly"] == pytest.approx(0.9931)
    assert table.loc[(0.9, "Deep MedIA"), "Cardiomegaly"] == pytest.approx(0.3)
    assert table.loc[(0.5, "ours"), "Cardiomegaly"] == pytest.approx(0.5)
    assert table.loc[(0.5, "ours"), "Mass"] == "no boxes"
    assert [s for t, s in table.index[:3]] == ["ours", "Deep MedIA", "NIH"]
    assert len(table) == 15
    with pytest.raises(ValueError, match="missing"):
        boxes.iobb_table(results, value="iobb")


# --- A segmentation output to boxes, and the box sizes saved for the report --------------------

def test_probability_to_boxes_thresholds_the_probability_not_its_maximum():
    prob = np.zeros((8, 8))
    prob[2:4, 2:6] = 0.9  # one shape, 4 wide and 2 high in an 8x8 map: 32x16 at 64 px
    prob[6, 6] = 0.3  # below 0.5: no box, although a min-max stretch would keep it at threshold 0.3
    found = boxes.probability_to_boxes(prob, 64, threshold=0.5)
    assert len(found) == 1
    x, y, w, h = found.loc[0, ["x", "y", "w", "h"]]
    assert abs(x - 16) <= 2 and abs(y - 16) <= 2 and abs(w - 32) <= 4 and abs(h - 16) <= 4
    assert found.loc[0, "peak_heat"] == pytest.approx(0.9 * 255, abs=1)
    assert len(boxes.probability_to_boxes(np.full((8, 8), 0.4), 64)) == 0  # nothing above 0.5: no box at all


def test_box_sizes_written_by_06_are_what_the_report_reads(tmp_path):
    import json

    from helpers import side_files

    train = pd.DataFrame({"label": ["Mass", "Mass", "Nodule"], "w": [20.0, 40.0, 8.0], "h": [10.0, 30.0, 8.0],
                          "image_width": [100, 200, 64], "image_height": [100, 200, 64]})
    model_path = tmp_path / "densenet121_nih.keras"
    written = boxes.save_box_sizes(model_path, train)
    assert written == side_files.side_file(model_path, side_files.BOX_SIZES_SUFFIX)
    read = {k: tuple(v) for k, v in json.loads(written.read_text()).items()}
    assert read["Mass"] == pytest.approx((0.2, 0.125))  # (20/100 + 40/200) / 2, (10/100 + 30/200) / 2 by hand
    assert read["Nodule"] == pytest.approx((0.125, 0.125))
    assert boxes.load_box_sizes(model_path) == read  # what report.ChestReporter.load calls
    assert boxes.load_box_sizes(tmp_path / "other.keras") == {}
    written.write_text('{"Mass": [40, 20]}')  # sizes saved in pixels by mistake
    with pytest.raises(DataError, match="fractions of the image side"):
        boxes.load_box_sizes(model_path)


def _boxed(patients: int, per_patient: int = 2):
    entries = pd.DataFrame({"image_index": [f"{p:08d}_{k:03d}.png" for p in range(patients)
                                            for k in range(per_patient)],
                            "patient_id": [p for p in range(patients) for _ in range(per_patient)]})
    table = pd.DataFrame({"image_index": entries.image_index, "label": "Mass", "x": 1.0, "y": 1.0, "w": 5.0, "h": 5.0})
    return entries, table


def test_fit_score_split_keeps_every_box_and_no_patient_on_both_sides():
    entries, table = _boxed(30)
    fit, score = boxes.fit_score_split(table, entries, score_fraction=0.5, seed=1)
    patient = entries.set_index("image_index").patient_id
    assert len(fit) + len(score) == len(table)
    assert sorted(pd.concat([fit, score]).image_index) == sorted(table.image_index)
    assert not set(patient.loc[fit.image_index]) & set(patient.loc[score.image_index])
    assert len(set(patient.loc[score.image_index])) == 15  # half the patients, as asked
    again = boxes.fit_score_split(table, entries, score_fraction=0.5, seed=1)
    assert again[1].equals(score)  # the seed fixes it


def test_fit_score_split_refuses_boxes_of_unknown_images_and_bad_fractions():
    entries, table = _boxed(4)
    with pytest.raises(DataError, match="not in the entries"):
        boxes.fit_score_split(table.assign(image_index="elsewhere.png"), entries)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        boxes.fit_score_split(table, entries, score_fraction=1.0)
    fit, score = boxes.fit_score_split(table[:2], entries)  # one patient: nothing to fit on, all scored
    assert len(fit) == 0 and len(score) == 2
