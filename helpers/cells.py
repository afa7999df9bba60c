"""Nuclei images in the 2018 Data Science Bowl (BBBC038) layout: the reader, its checks, splits, the two-output U-Net.

Layout (the real ``stage1_train.zip`` unpacks to it; ``helpers.synthetic.cells`` writes it)::

    <root>/[stage1_train/]<image_id>/images/<image_id>.png
    <root>/[stage1_train/]<image_id>/masks/<mask_id>.png      one binary mask per nucleus

``read_nuclei`` finds the records and names every folder that breaks the layout; ``load_nuclei``
decodes one image and stacks its masks into an instance label map, naming the mask file that is of
the wrong size, empty, not binary, or overlapping another.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from helpers.errors import DataError

TRAIN_FOLDER = "stage1_train"
OVERLAP_MODES = ("raise", "first")
MAX_NUCLEUS_SHARE = 0.25  # a mask covering more of its image is refused: no nucleus of the Bowl comes close
_MAX_LISTED = 10


@dataclass(frozen=True)
class NucleiRecord:
    """One image of the nuclei dataset: its ID, image file and one mask file per nucleus.

    Taught in 08_cells_counting.
    """

    id: str
    image: Path
    masks: tuple[Path, ...]


@dataclass(frozen=True)
class NucleiDataset:
    """The records of one nuclei folder, sorted by image ID.

    Taught in 08_cells_counting.
    """

    root: Path
    records: list[NucleiRecord]


def read_nuclei(root) -> NucleiDataset:
    """Find every ``<id>/images/<id>.png`` with its ``<id>/masks/*.png`` under ``root`` (or root/stage1_train), naming
    each broken folder.

    Taught in 08_cells_counting.
    """
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(
            f"{root}: folder not found. Point read_nuclei at the unpacked stage1_train/ folder (or the folder "
            "holding it); the layout is in helpers/data/manifests/dsb2018.md."
        )
    base = root / TRAIN_FOLDER if (root / TRAIN_FOLDER).is_dir() else root
    folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    records, problems = [], []
    for folder in folders:
        image = folder / "images" / f"{folder.name}.png"
        masks = tuple(sorted(p for p in (folder / "masks").glob("*.png"))) if (folder / "masks").is_dir() else ()
        if not image.is_file():
            found = sorted(p.name for p in (folder / "images").glob("*")) if (folder / "images").is_dir() else []
            problems.append(
                f"{image.relative_to(base)} is missing" + (f" (images/ holds {', '.join(found[:3])})" if found else "")
            )
        elif not masks:
            problems.append(f"{folder.name}/masks/ has no PNG mask: an image without masks cannot be scored or "
                            "trained on")
        else:
            records.append(NucleiRecord(folder.name, image, masks))
    if problems:
        shown = (problems[:_MAX_LISTED]
                 + ([f"... and {len(problems) - _MAX_LISTED} more"] if len(problems) > _MAX_LISTED else []))
        raise DataError(
            f"{base}: {len(problems)} image folder(s) break the Data Science Bowl layout "
            "(<id>/images/<id>.png and <id>/masks/*.png):\n  " + "\n  ".join(shown)
            + "\nRestore them from the download, or move them out of the folder (helpers/data/manifests/dsb2018.md)."
        )
    if not records:
        raise DataError(
            f"{base}: no image folders (<id>/images/<id>.png with <id>/masks/*.png) found. Point read_nuclei at "
            "the unpacked stage1_train/ folder; test folders without masks cannot be read."
        )
    return NucleiDataset(root=base, records=records)


def _decode(path: Path, what: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} file not found. Restore it from the download.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the {what} ({err}): the file is corrupt or not a PNG; "
                        "restore it.") from None


KINDS = ("fluorescence", "brightfield", "histology")  # the Bowl's three kinds of image


def image_kind(pixels) -> str:
    """Which of the Bowl's kinds an HxWxC [0, 1] image is: histology (stained, coloured), brightfield (light
    background), fluorescence (dark background).

    Taught in 08_cells_counting.
    """
    pixels = np.asarray(pixels, np.float32)
    if pixels.ndim == 3 and pixels.shape[-1] >= 3:
        colour = pixels[..., :3]
        if float((colour.max(axis=-1) - colour.min(axis=-1)).mean()) > 0.06:  # stain: channels differ
            return "histology"
    grey = pixels.mean(axis=-1) if pixels.ndim == 3 else pixels
    return "brightfield" if float(np.median(grey)) > 0.5 else "fluorescence"


def load_image(path, bright_nuclei: bool = True) -> np.ndarray:
    """A nuclei image as grey float32 HxW in [0, 1], nuclei bright on a dark background as in fluorescence.

    8- or 16-bit, grey, RGB or RGBA (alpha dropped, channels averaged), scaled by the file's bit depth (and a
    PNG's sBIT), as ``preprocessing.read_image`` does, never by its content. Brightfield and histology images
    (dark nuclei on a light background, ``image_kind``) are inverted unless ``bright_nuclei=False``, so one model
    convention covers the three kinds.

    Taught in 08_cells_counting.
    """
    from helpers import preprocessing  # the one reader of image files and their bit depth

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found. Restore it from the download.")
    try:
        with Image.open(path) as img:
            mode = img.mode
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: cannot read the image ({err}): the file is corrupt or not a PNG; "
                        "restore it.") from None
    if mode == "1":
        raise DataError(f"{path}: a 1-bit (black and white) picture, which looks like a mask, not a microscope image.")
    raw = preprocessing.read_image(path)
    if min(raw.shape[:2]) < 8:
        raise DataError(f"{path}: an image of shape {raw.shape[:2]}; expected a 2-D picture at least 8 pixels on "
                        "each side.")
    grey = raw.mean(axis=-1).astype(np.float32)
    if bright_nuclei and image_kind(raw) != "fluorescence":
        grey = 1.0 - grey
    return grey


def kind_of(record: "NucleiRecord") -> str:
    """The kind (fluorescence, brightfield, histology) of a record's image.

    Taught in 08_cells_counting.
    """
    from helpers import preprocessing

    return image_kind(preprocessing.read_image(record.image))


def acquisition_groups(images, kinds, *, tolerance: float = 0.002, known=None) -> np.ndarray:
    """One group number per image: the user's groups where ``known`` gives them, else images of one size and kind whose
    intensity statistics (mean, spread, 1st and 99th percentiles) agree within ``tolerance``, as crops of one
    acquisition do.

    Taught in 08_cells_counting.
    """
    if known is not None:
        known = list(known)
        if len(known) != len(images):
            raise ValueError(f"known must give one group per image ({len(images)}), not {len(known)}.")
        return np.unique(np.asarray(known, dtype=str), return_inverse=True)[1]
    keys, groups = {}, []
    for image, kind in zip(images, kinds):
        image = np.asarray(image, np.float32)
        stats = (image.mean(), image.std(), *np.percentile(image, [1, 99]))
        key = (image.shape, kind, *(int(round(float(v) / tolerance)) for v in stats))
        groups.append(keys.setdefault(key, len(keys)))
    return np.asarray(groups)


def _mask(path: Path, shape: tuple[int, int], image: Path) -> np.ndarray:
    raw = _decode(path, "mask")
    if raw.ndim == 3:
        if not raw[..., 0].any() and raw.any():
            names = {2: "grey, alpha", 3: "red, green, blue", 4: "red, green, blue, alpha"}.get(raw.shape[-1], "")
            where = [k for k in range(raw.shape[-1]) if raw[..., k].any()]
            shown = ", ".join(names.split(", ")[k] if names else str(k) for k in where)
            raise DataError(f"{path}: the mask's first channel is empty; its pixels are in channel(s) {shown}. A "
                            "nucleus mask is read from its grey (first) channel: save it as a grey PNG, "
                            "255 inside the nucleus.")
        raw = raw[..., 0]
    if raw.shape != shape:
        raise DataError(
            f"{path}: the mask is {raw.shape[1]}x{raw.shape[0]} (WxH) but its image {image.name} is "
            f"{shape[1]}x{shape[0]}: a mask must match its image pixel for pixel. Was one of them resized?"
        )
    values = np.unique(raw)
    if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}
            or set(values.tolist()) <= {False, True}):
        shown = ", ".join(str(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        raise DataError(
            f"{path}: the mask is not binary: found values {shown}; expected 0 and 255 (or 0 and 1). "
            "Was it resized with smoothing? Restore the original file."
        )
    mask = raw > 0
    if not mask.any():
        raise DataError(f"{path}: the mask is empty (all zero): a nucleus mask needs at least one pixel. "
                        "Delete the file or restore it.")
    if mask.mean() > MAX_NUCLEUS_SHARE:
        raise DataError(f"{path}: the mask covers {mask.mean():.0%} of its image {image.name}, more than the "
                        f"{MAX_NUCLEUS_SHARE:.0%} a nucleus may: a corrupt export, or a mask saved inverted (255 "
                        "outside the nucleus). Restore the file, or invert it if the nucleus is the part that is 0.")
    return mask


def load_nuclei(record: NucleiRecord, overlap: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """One record as (grey image float32 HxW in [0, 1], instance labels int32 HxW, 0 = background, k = the k-th mask
    file).

    Taught in 08_cells_counting.
    """
    if overlap not in OVERLAP_MODES:
        raise ValueError(f"overlap must be 'raise' or 'first' (the earlier mask keeps shared pixels), not {overlap!r}.")
    image = load_image(record.image)
    if not record.masks:
        raise DataError(f"{record.image}: this image has no masks; pass a record from read_nuclei.")
    labels = np.zeros(image.shape, np.int32)
    for k, path in enumerate(record.masks, start=1):
        mask = _mask(Path(path), image.shape, Path(record.image))
        taken = mask & (labels > 0)
        if taken.any():
            if overlap == "raise":
                other = record.masks[int(np.bincount(labels[taken]).argmax()) - 1]
                share = taken.sum() / mask.sum()
                cause = ("the same nucleus saved twice (a duplicate file)" if share > 0.9 else
                         "masks drawn by hand that touch, or resized with smoothing")
                raise DataError(
                    f"{path}: overlaps {Path(other).name} on {int(taken.sum())} pixel(s) ({share:.0%} of it); the Data "
                    f"Science Bowl masks do not overlap. The likely cause: {cause}. Fix the masks; only when the "
                    "overlap is a few border pixels, pass overlap='first' to give them to the earlier mask."
                )
            mask &= ~taken
        labels[mask] = k
    return image, labels


# optional, beside stage1_train/: image_id,group (the experiment or acquisition of each image)
GROUPS_FILE = "groups.csv"


def read_groups(root) -> dict | None:
    """The user's groups (``groups.csv`` in ``root`` or beside it, e.g. beside ``stage1_train/``: ``image_id,group``),
    or None without the file.

    Taught in 08_cells_counting.
    """
    import csv

    root = Path(root)
    path = next((folder / GROUPS_FILE for folder in (root, root.parent) if (folder / GROUPS_FILE).is_file()), None)
    if path is None:
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or {"image_id", "group"} - set(rows[0]):
        raise DataError(f"{path}: expected the columns image_id,group (one row per image), "
                        f"found {list(rows[0]) if rows else 'no rows'}.")
    return {row["image_id"].strip(): row["group"].strip() for row in rows}


def split_groups(records, groups, fractions=(0.6, 0.15, 0.25), seed: int = 42) -> dict[str, list[NucleiRecord]]:
    """Records cut into train / val / test by whole groups (acquisitions, experiments): no group on two sides.

    Groups are shuffled (``seed``) and dealt, largest first, to the part furthest below its share of the images,
    so the parts come near ``fractions`` by image count. Fewer than three groups cannot fill three parts.

    Taught in 08_cells_counting.
    """
    records, groups = list(records), np.asarray(groups)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions <= 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise ValueError("fractions must be three positive numbers (train, val, test) that add up to 1, "
                         f"not {tuple(fractions)}.")
    if groups.shape != (len(records),):
        raise ValueError(f"groups must hold one group per record ({len(records)}), not shape {groups.shape}.")
    names = ("train", "val", "test")
    unique = np.random.default_rng(seed).permutation(np.unique(groups))
    if len(unique) < 3:
        raise ValueError(f"{len(unique)} group(s): a train / val / test split by group needs at least 3 groups.")
    sizes = {g: int((groups == g).sum()) for g in unique}
    order = sorted(unique, key=lambda g: -sizes[g])  # stable: ties keep the shuffled order
    taken, parts = np.zeros(3), {name: [] for name in names}
    for k, g in enumerate(order):
        empty = [i for i in range(3) if taken[i] == 0]
        s = empty[-1] if empty and len(order) - k <= len(empty) else int(np.argmax(fractions * len(records) - taken))
        taken[s] += sizes[g]
        parts[names[s]].extend(r for r, h in zip(records, groups) if h == g)
    return parts


def split_records(records, fractions=(0.6, 0.15, 0.25), seed: int = 42, strata=None) -> dict[str, list[NucleiRecord]]:
    """Records cut into train / val / test by ``fractions`` at random (``seed``), or stratified: alike in ``strata``
    (e.g. nuclei counts).

    With ``strata`` (one number per record), records are sorted by it and dealt in consecutive blocks
    (of 3 for thirds, 4 for (0.5, 0.25, 0.25)), each block shuffled and shared by the fractions, so the
    three parts span the same range: validation and test images are then drawn alike, and the records
    stay exchangeable within a block.

    Taught in 08_cells_counting.
    """
    records = list(records)
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions <= 0).any() or abs(fractions.sum() - 1) > 1e-6:
        raise ValueError("fractions must be three positive numbers (train, val, test) that add up to 1, "
                         f"not {tuple(fractions)}.")
    if len(records) < 3:
        raise ValueError(f"{len(records)} record(s): a train / val / test split needs at least 3.")
    rng = np.random.default_rng(seed)
    names = ("train", "val", "test")
    if strata is None:
        order = rng.permutation(len(records))
        n_val = max(1, int(round(fractions[1] * len(records))))
        n_test = max(1, int(round(fractions[2] * len(records))))
        n_train = len(records) - n_val - n_test
        if n_train < 1:
            raise ValueError(f"{len(records)} records leave no training image with fractions {tuple(fractions)}.")
        parts = np.split(order, [n_train, n_train + n_val])
        return {name: [records[i] for i in part] for name, part in zip(names, parts)}
    values = np.asarray(strata, dtype=float) if not isinstance(strata, np.ndarray) else strata.astype(float)
    if values.shape != (len(records),) or not np.isfinite(values).all():
        raise ValueError(f"strata must hold one finite number per record ({len(records)}), not shape {values.shape}.")
    block = int(round(1 / fractions.min()))
    share = np.maximum(np.round(fractions * block).astype(int), 1)
    share[0] = block - share[1:].sum()  # what is left of a block goes to training
    if share[0] < 1 or len(records) < block:
        raise ValueError(f"fractions {tuple(fractions)} with {len(records)} records leave no training image; "
                         "use fewer, larger parts.")
    pattern = np.repeat(np.arange(3), share)
    order = np.argsort(values + rng.random(len(values)) * 1e-9, kind="stable")  # ties broken at random
    parts: dict[str, list] = {name: [] for name in names}
    for start in range(0, len(order), block):
        chunk = order[start:start + block]
        labels = rng.permutation(pattern)[: len(chunk)] if len(chunk) == block else np.zeros(len(chunk), int)
        for index, part in zip(chunk, labels):
            parts[names[part]].append(records[index])
    return parts


def nuclei_unet(base_filters: int = 8, depth: int = 3, dropout_rate: float = 0.1, normalization=None):
    """models.unet with a 2-channel sigmoid head: channel 0 the nucleus foreground, channel 1 the nucleus cores
    (markers).

    Taught in 08_cells_counting.
    """
    import keras

    from helpers import models

    base = models.unet(
        base_filters=base_filters, depth=depth, dropout_rate=dropout_rate, normalization=normalization,
        name="nuclei_unet"
    )
    features = base.get_layer("vessels").input
    outputs = keras.layers.Conv2D(2, 1, activation="sigmoid", dtype="float32", name="foreground_and_cores")(features)
    return keras.Model(base.inputs, outputs, name=base.name)
