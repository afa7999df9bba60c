"""The DRIVE retinal vessel dataset (Staal et al., IEEE TMI 2004): its records, photographs, vessel masks and field of
view.

The same reader takes the real download and the synthetic copy (``helpers.synthetic.drive``) in the layout of
``helpers/data/manifests/drive.md``: ``training/`` (21-40) and ``test/`` (01-20), each with ``images/``, ``1st_manual/``
and ``mask/``; the test set also has ``2nd_manual/``, the second observer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from helpers.errors import DataError

_MAX_SHOWN = 10  # distinct mask values listed in a message


@dataclass
class DriveRecord:
    """One DRIVE image with its vessel annotation(s) and field-of-view mask.

    Taught in 03_unet_vessels.
    """

    id: int
    split: str
    image: Path
    manual: Path
    mask: Path
    manual2: Path | None = None


@dataclass
class DriveDataset:
    """The DRIVE training (21-40) and test (01-20) records of one folder.

    Taught in 03_unet_vessels.
    """

    root: Path
    train: list[DriveRecord]
    test: list[DriveRecord]


_DRIVE_PATTERNS = {
    "training": {
        "image": ("images", "{id}_training.tif"),
        "manual": ("1st_manual", "{id}_manual1.gif"),
        "mask": ("mask", "{id}_training_mask.gif"),
    },
    "test": {
        "image": ("images", "{id}_test.tif"),
        "manual": ("1st_manual", "{id}_manual1.gif"),
        "mask": ("mask", "{id}_test_mask.gif"),
        "manual2": ("2nd_manual", "{id}_manual2.gif"),
    },
}


def read_drive(root: str | Path) -> DriveDataset:
    """Find the DRIVE records under ``root`` (training/ and test/), naming every missing file.

    Taught in 03_unet_vessels.
    """
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found. Point read_drive at the folder holding training/ and test/.")
    records: dict[str, list[DriveRecord]] = {}
    missing: list[str] = []
    for split, kinds in _DRIVE_PATTERNS.items():
        ids: dict[int, str] = {}
        for kind, (folder, pattern) in kinds.items():
            regex = re.compile("^" + re.escape(pattern).replace(re.escape("{id}"), r"(\d+)") + "$")
            directory = root / split / folder
            if directory.is_dir():
                for entry in os.scandir(directory):
                    match = regex.match(entry.name)
                    if match:
                        ids.setdefault(int(match.group(1)), match.group(1))
        if not ids:
            missing.append(f"{split}/images/NN_{split}.tif (no {split} images at all)")
            records[split] = []
            continue
        out = []
        for number in sorted(ids):
            paths = {kind: root / split / folder / pattern.format(id=ids[number])
                     for kind, (folder, pattern) in kinds.items()}
            for kind in ("image", "manual", "mask"):
                if not paths[kind].is_file():
                    missing.append(str(paths[kind].relative_to(root)))
            manual2 = paths.get("manual2")
            out.append(
                DriveRecord(
                    id=number, split=split, image=paths["image"], manual=paths["manual"], mask=paths["mask"],
                    manual2=manual2 if manual2 is not None and manual2.is_file() else None,
                )
            )
        records[split] = out
    if missing:
        raise DataError(
            f"{root}: {len(missing)} DRIVE file(s) missing:\n  " + "\n  ".join(missing)
            + "\nRestore them from the DRIVE download (layout in helpers/data/manifests/drive.md)."
        )
    return DriveDataset(root=root, train=records["training"], test=records["test"])


def _read_mask(path: Path) -> np.ndarray:
    """A binary mask as a bool array, from the raw values Pillow gives (palette indices for P mode)."""
    if not path.is_file():
        raise DataError(f"{path}: mask file not found. Restore it from the DRIVE download.")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            raw = np.asarray(img)
            palette = img.getpalette() if mode == "P" else None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the mask ({err}): the file is corrupt; restore it.") from None
    if raw.dtype == bool:
        raw = raw.astype(np.uint8)
    if raw.ndim == 3:
        if raw.shape[-1] in (2, 4):
            raw = raw[..., :-1]
        if not all(np.array_equal(raw[..., 0], raw[..., c]) for c in range(1, raw.shape[-1])):
            raise DataError(f"{path}: mask is a colour image (mode {mode}): expected a single-channel 0/1 or "
                            "0/255 mask.")
        raw = raw[..., 0]
    values = np.unique(raw)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(str(v) for v in values[:_MAX_SHOWN]) + (" ..." if len(values) > _MAX_SHOWN else "")
        raise DataError(
            f"{path}: mask is not binary: found values {shown} (mode {mode}); expected only 0/1 or 0/255. "
            "Was it resized or saved with smoothing? Restore the original file."
        )
    if palette is not None and len(values) == 2:
        on, off = int(values[1]), 0
        if 3 * on + 2 < len(palette) and sum(palette[3 * on:3 * on + 3]) < sum(palette[3 * off:3 * off + 3]):
            raise DataError(
                f"{path}: the palette draws index {on} darker than index 0 (an inverted mask?): expected "
                "vessels/field of view to be the bright value."
            )
    return raw > 0


def load_drive(record: DriveRecord) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load one DRIVE record: image float32 HxWx3 in [0, 1], vessels bool HxW, field of view bool HxW.

    Taught in 03_unet_vessels.
    """
    from helpers.preprocessing import read_image  # imported here: it loads TensorFlow

    image = read_image(record.image, channels=3)
    vessels = _read_mask(Path(record.manual))
    fov = _read_mask(Path(record.mask))
    size = image.shape[:2]
    for path, mask in ((record.manual, vessels), (record.mask, fov)):
        if mask.shape != size:
            raise DataError(
                f"Size mismatch: {record.image} is {size[1]}x{size[0]} (WxH) but {path} is "
                f"{mask.shape[1]}x{mask.shape[0]}: the image and its masks must match pixel for pixel."
            )
    if not fov.any():
        raise DataError(f"{record.mask}: the field-of-view mask is all zero; restore the original file.")
    return image, vessels, fov


def load_second_observer(record: DriveRecord, shape: tuple[int, int]) -> np.ndarray | None:
    """The second observer's vessel mask (test images only; palette GIF, 0/1) as bool HxW, or None where DRIVE has none.

    Taught in 03_unet_vessels.
    """
    if record.manual2 is None:
        return None
    vessels2 = _read_mask(Path(record.manual2))
    if vessels2.shape != tuple(shape[:2]):
        raise DataError(
            f"Size mismatch: {record.image} is {shape[1]}x{shape[0]} (WxH) but {record.manual2} is "
            f"{vessels2.shape[1]}x{vessels2.shape[0]}: the image and its masks must match pixel for pixel."
        )
    return vessels2
