"""localiser: masks made from boxes, and the cached small U-Net trained on them."""

import numpy as np
import pandas as pd
import pytest

from helpers import boxes, localiser
from helpers.errors import DataError


def _table(rows):
    return pd.DataFrame(rows, columns=["image_index", "label", "x", "y", "w", "h", "image_width", "image_height"])


def test_box_masks_match_hand_drawn_masks():
    table = _table([("a.png", "Mass", 10, 20, 30, 40, 100, 100),  # at 10 px: columns 1..3, rows 2..5
                    ("a.png", "Nodule", 70, 70, 10, 10, 100, 100),  # columns 7, rows 7
                    ("c.png", "Mass", 0, 0, 50, 50, 100, 100)])  # an image not asked for: not used
    masks = localiser.box_masks(table, ["a.png", "b.png"], 10)
    expected = np.zeros((2, 10, 10, 1), np.float32)
    expected[0, 2:6, 1:4, 0] = 1
    expected[0, 7, 7, 0] = 1
    np.testing.assert_array_equal(masks, expected)  # b.png has no box: all zero


def test_box_masks_keep_non_square_boxes_in_place():
    table = _table([("a.png", "Mass", 0, 50, 100, 50, 200, 100)])  # left half of the width, bottom half of the height
    mask = localiser.box_masks(table, ["a.png"], 8)[0, ..., 0]
    assert mask[4:, :4].all() and mask.sum() == 16


def test_trained_localiser_finds_a_bright_square_and_is_reused_from_the_cache(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 0.2, (24, 16, 16, 1)).astype(np.float32)
    masks = np.zeros_like(images)
    for i in range(len(images)):
        x, y = rng.integers(0, 10, 2)
        images[i, y:y + 6, x:x + 6] += 0.7
        masks[i, y:y + 6, x:x + 6] = 1
    path = tmp_path / "loc.keras"
    model, info = localiser.train_or_load(path, images, masks, epochs=20, base_filters=4, depth=2, seed=0)
    assert not info["loaded"] and info["seconds"] > 0 and path.is_file()
    test = np.full((1, 16, 16, 1), 0.1, np.float32)
    test[0, 8:14, 2:8] += 0.7
    found = boxes.probability_to_boxes(model.predict(test, verbose=0)[0, ..., 0], 16)
    best = boxes.choose_box(found, "largest")
    assert best is not None and boxes.iou(tuple(best[["x", "y", "w", "h"]]), (2, 8, 6, 6)) > 0.5
    again, info2 = localiser.train_or_load(path, images, masks, epochs=20, base_filters=4, depth=2, seed=0)
    assert info2["loaded"] and info2["seconds"] == info["seconds"]
    np.testing.assert_allclose(again.predict(test, verbose=0), model.predict(test, verbose=0), atol=1e-6)

    class Retrained(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Retrained

    monkeypatch.setattr(localiser, "build", refuse)  # other settings must train again, not reuse a stale cache
    with pytest.raises(Retrained):
        localiser.train_or_load(path, images, masks, epochs=21, base_filters=4, depth=2, seed=0)
    with pytest.raises(Retrained):
        localiser.train_or_load(path, images, np.roll(masks, 1, axis=0), epochs=20, base_filters=4, depth=2, seed=0)


def test_bad_inputs_are_named():
    images = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(DataError, match="no training image holds a box"):
        localiser.train_or_load("/nonexistent/x.keras", images, np.zeros_like(images), epochs=1)
    with pytest.raises(ValueError, match="must match the images"):
        localiser.train_or_load("/nonexistent/x.keras", images, np.ones((2, 8, 8, 1)), epochs=1)
    with pytest.raises(DataError, match="masks"):
        localiser.train_or_load("/nonexistent/x.keras", images, np.full_like(images, 255), epochs=1)
    with pytest.raises(ValueError, match="missing"):
        localiser.box_masks(pd.DataFrame({"image_index": ["a"], "x": [1]}), ["a"], 8)
