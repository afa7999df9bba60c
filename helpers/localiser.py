"""A supervised localiser: a small U-Net trained on masks made from the NIH boxes (the second route of Deep MedIA).

Passantino's *Deep MedIA Senior Design Technical Report* (Bucknell University) located findings two
ways: Grad-CAM boxes from the classifier (weakly supervised) and a segmentation network (Mask R-CNN)
trained on masks made from the radiologists' boxes. This module is the series' affordable version of
the second route: mask = 1 inside every box of an image, one class-agnostic channel (which finding a
box belongs to comes from the classifier), a small U-Net of ``helpers.models``, cached beside the
other models. Boxes come out of its probability map through ``boxes.probability_to_boxes``.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from helpers import boxes as _boxes
from helpers import losses, models, side_files
from helpers.errors import DataError, check_finite, check_labels

LOCALISER_FILE = "localiser_nih.keras"  # under cfg.models_dir; its settings and training time in localiser_nih.json
_BOX_COLUMNS = ("image_index", "x", "y", "w", "h", "image_width", "image_height")


def box_masks(box_table: pd.DataFrame, image_indices, size: int) -> np.ndarray:
    """Masks (images, size, size, 1) with 1 inside every box of each image (any finding) and 0 elsewhere, in
    image_indices order.

    ``box_table`` is NIH's box table (``read_nih(...).boxes``); boxes are moved from each PNG's own
    size to ``size``. An image with no row in the table gets an all-zero mask: only give images whose
    findings were all boxed (in the real NIH release most findings carry no box, so a zero mask there
    would teach "nothing here" where the truth is "not drawn").

    Taught in 06_boxes_iobb.
    """
    missing = set(_BOX_COLUMNS) - set(box_table.columns)
    if missing:
        raise ValueError(f"box_masks: the box table needs columns {', '.join(_BOX_COLUMNS)} (missing "
                         f"{sorted(missing)}); pass read_nih(...).boxes.")
    size = int(size)
    if size < 1:
        raise ValueError(f"box_masks: size must be a positive number of pixels, not {size!r}.")
    image_indices = list(image_indices)
    position = {name: i for i, name in enumerate(image_indices)}
    masks = np.zeros((len(image_indices), size, size, 1), np.float32)
    rows = box_table[box_table.image_index.isin(position)]  # boxes of other images are not used
    for row, (x, y, w, h) in zip(rows.itertuples(), _boxes.scaled_boxes(rows, size)):
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        x1, y1 = int(np.ceil(x + w)), int(np.ceil(y + h))
        masks[position[row.image_index], max(y0, 0):min(y1, size), max(x0, 0):min(x1, size), 0] = 1.0
    return masks


def build(image_size: int, base_filters: int = 8, depth: int = 3, normalization=None) -> keras.Model:
    """A small U-Net (models.unet, no dropout) with one sigmoid channel: P(pixel inside a box).

    Taught in 06_boxes_iobb.
    """
    return models.unet((int(image_size), int(image_size), 1), base_filters=base_filters, depth=depth, dropout_rate=0.0,
                       name="localiser", normalization=normalization)


def _settings_path(path: Path) -> Path:
    return side_files.side_file(path, side_files.SETTINGS_SUFFIX)  # its training settings: the cache key


def train_or_load(path, images, masks, *, epochs: int, base_filters: int = 8, depth: int = 3, batch_size: int = 16,
                  learning_rate: float = 3e-3, seed: int = 42) -> tuple[keras.Model, dict]:
    """The localiser cached at path if it was trained with these settings and data, else trained (Adam, Dice + BCE) and
    saved; (model, settings with training seconds).

    Taught in 06_boxes_iobb.
    """
    path = Path(path)
    images = check_finite(images, "localiser training images").astype(np.float32)
    masks = check_labels(masks, "localiser training masks (1 inside a box, 0 outside)").astype(np.float32)
    if images.ndim != 4 or images.shape[-1] != 1 or images.shape[1] != images.shape[2]:
        raise ValueError(f"localiser training images must be (images, size, size, 1), not shape {images.shape}: "
                         "use preprocessing.load_images(paths, size).")
    if masks.shape != images.shape:
        raise ValueError(f"localiser masks {masks.shape} must match the images {images.shape}: build them with "
                         "localiser.box_masks(boxes, image_indices, size) for the same images and size.")
    if len(images) == 0 or masks.sum() == 0:
        raise DataError("the localiser has nothing to learn: no training image holds a box. Check that the training "
                        "split has boxed images (read_nih(...).boxes) and that image_indices match them.")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs!r}.")
    data = hashlib.sha1(images.tobytes() + masks.tobytes()).hexdigest()[:16]  # other images or boxes: train again
    settings = {"image_size": int(images.shape[1]), "images": int(len(images)), "box_pixels": int(masks.sum()),
                "data_sha1": data, "epochs": int(epochs), "base_filters": int(base_filters), "depth": int(depth),
                "batch_size": int(batch_size), "learning_rate": float(learning_rate), "seed": int(seed)}
    saved = _settings_path(path)
    if path.is_file() and saved.is_file():
        try:
            previous = json.loads(saved.read_text())
        except ValueError:
            previous = {}
        if {k: previous.get(k) for k in settings} == settings:
            return models.load_model(path, hint="Delete it to train the localiser again."), {**previous, "loaded": True}
    keras.utils.set_random_seed(int(seed))
    mean, std = float(images.mean()), float(images.std()) or 1.0
    model = build(images.shape[1], base_filters, depth, normalization=(mean, std))
    model.compile(keras.optimizers.Adam(learning_rate), losses.DiceBCELoss())  # Dice: boxes cover a tenth of the film
    start = time.perf_counter()
    history = model.fit(images, masks, epochs=int(epochs), batch_size=int(batch_size), shuffle=True, verbose=0)
    settings["seconds"] = round(time.perf_counter() - start, 2)
    settings["final_loss"] = float(history.history["loss"][-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    saved.write_text(json.dumps(settings, indent=1))
    return model, {**settings, "loaded": False}
