"""Transfer learning measured offline: a source task the series can make, a cached pretrained backbone, label
budgets."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from helpers import config, datasets, losses, models, preprocessing, synthetic
from helpers.errors import DataError, check_finite, check_labels

# The source task: coarse groups of findings, not the fourteen findings themselves. A network that tells
# "something is there" and "what kind of thing" (an opacity, a focal lesion, the pleura, the heart and the
# lung's structure) has learnt the features the fourteen-finding task needs, without having seen its labels.
SOURCE_GROUPS: dict[str, tuple[str, ...]] = {
    "any finding": tuple(datasets.LABELS),
    "opacity": ("Atelectasis", "Consolidation", "Edema", "Infiltration", "Pneumonia"),
    "focal lesion": ("Mass", "Nodule"),
    "pleura": ("Effusion", "Pleural_Thickening", "Pneumothorax"),
    "heart and lung structure": ("Cardiomegaly", "Emphysema", "Fibrosis", "Hernia"),
}
# The source set is drawn from another seed: other synthetic people (their anatomy and findings come from
# this seed), although the generator numbers patients from 1 in both sets.
SOURCE_SEED_OFFSET = 1000


def source_labels(y, labels, groups: dict[str, tuple[str, ...]] = SOURCE_GROUPS) -> np.ndarray:
    """Group labels of the source task: 1 where an image has any finding of the group, as an (images, groups) array.

    Taught in 02_densenet_transfer.
    """
    y = check_labels(y, "source labels")
    labels = list(labels)
    if y.ndim != 2 or y.shape[1] != len(labels):
        raise DataError(f"source labels: expected an (images, {len(labels)}) array for the labels {labels[:3]}..., "
                        f"got shape {y.shape}.")
    columns = []
    for group, members in groups.items():
        unknown = [m for m in members if m not in labels]
        if unknown or not members:
            raise DataError(
                f"source group {group!r}: {'no findings' if not members else 'unknown findings ' + repr(unknown)}; "
                f"use names from {labels}."
            )
        columns.append(y[:, [labels.index(m) for m in members]].max(axis=1))
    return np.stack(columns, axis=1).astype("float32")


def source_dataset(cfg: config.Config, patients: int) -> Path:
    """Folder of the synthetic source chest set (another seed, ``patients`` patients, the profile's image size up to 256
    px), written once and cached.

    Taught in 02_densenet_transfer.
    """
    if int(patients) < 2:
        raise ValueError(f"patients must be at least 2 for a source set, not {patients!r}.")
    # the synthetic images of the profile, but never above 256 px: the backbone is pretrained at 128 px at most
    params = {"patients": int(patients), "image_size": min(256, synthetic.NIH_SIZES[cfg.profile]["image_size"])}
    seed = cfg.seed + SOURCE_SEED_OFFSET
    path = cfg.cache_dir / "synthetic" / cfg.profile / f"nih_source_{patients}p_seed{seed}"
    return synthetic._generate(path, "nih", params, seed)


def backbone_file(cfg: config.Config, image_size: int, patients: int, epochs: int) -> Path:
    """Cache file of the source-pretrained DenseNet121, keyed by profile, image size, source size, epochs and seed.

    Taught in 02_densenet_transfer.
    """
    return cfg.models_dir / (f"densenet121_source_{cfg.profile}_{image_size}px_{patients}p_"
                             f"{epochs}ep_seed{cfg.seed}.keras")


@contextlib.contextmanager
def _one_writer(path: Path):
    """An exclusive lock beside ``path`` while it is looked up or written (POSIX ``flock``; the system drops it if the
    process dies). ``make test`` runs notebooks 02 and 02b side by side: the second to ask waits, then loads what the
    first pretrained, instead of pretraining the same backbone again. Without ``fcntl`` (Windows) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # Windows: both may pretrain; os.replace still keeps the file whole
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def pretrained_backbone(cfg: config.Config, *, image_size: int, patients: int, epochs: int, batch_size: int = 16,
                        imagenet: bool = False, run_eagerly: bool = False, verbose: int = 0):
    """DenseNet121 pretrained on the source task (or ImageNet), from the models cache when there; returns (model, info).

    Taught in 02_densenet_transfer.
    """
    if imagenet:
        start = time.perf_counter()
        model = models.densenet121_classifier(len(SOURCE_GROUPS), image_size, weights="imagenet")
        return model, {"source": "ImageNet", "seconds": time.perf_counter() - start, "from_cache": True, "images": 0}
    path = backbone_file(cfg, image_size, patients, epochs)
    start = time.perf_counter()
    with _one_writer(path):
        if path.is_file():
            model = models.load_model(path, hint="Delete it to pretrain again.")
            return model, {"source": "synthetic source task", "seconds": time.perf_counter() - start,
                           "from_cache": True, "images": None, "path": path}
        root = source_dataset(cfg, patients)
        entries = datasets.read_nih(root).entries
        y = source_labels(entries[list(datasets.LABELS)].values, datasets.LABELS)
        data = preprocessing.image_dataset(entries.path, y, image_size=image_size, batch_size=batch_size, shuffle=True,
                                           augment=preprocessing.augmentation("chest_xray", seed=cfg.seed),
                                           seed=cfg.seed)
        keras.utils.set_random_seed(cfg.seed)
        model = models.densenet121_classifier(len(SOURCE_GROUPS), image_size, weights=None, name="densenet121_source")
        model.compile(keras.optimizers.Adam(1e-3), losses.WeightedBinaryCrossentropy.from_labels(y),
                      run_eagerly=run_eagerly)
        model.fit(data, epochs=epochs, shuffle=False, verbose=verbose)  # the dataset shuffles itself
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.keras")  # written aside, then renamed: a reader
        model.save(partial)  # never sees a half-written file (and where nothing locks, the last writer wins whole)
        os.replace(partial, path)
    return model, {"source": "synthetic source task", "seconds": time.perf_counter() - start, "from_cache": False,
                   "images": len(entries), "path": path}


def copy_backbone(source: keras.Model, target: keras.Model, skip: tuple[str, ...] = ("predictions",)) -> int:
    """Copy the weights of every layer the two models share by name and shape (the head skipped); returns how many
    layers.

    Taught in 02_densenet_transfer.
    """
    copied = 0
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        try:
            original = source.get_layer(layer.name)
        except ValueError:
            continue
        values = original.get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ValueError(f"layer {layer.name!r}: shapes {[v.shape for v in values]} in the source, "
                             f"{[tuple(w.shape) for w in layer.weights]} in the target; build both with the same "
                             "last_block.")
        layer.set_weights(values)
        copied += 1
    if not copied:
        raise ValueError(f"{source.name} and {target.name} share no layer by name: nothing was transferred.")
    return copied


def budget_subset(frame: pd.DataFrame, fraction: float, seed: int = 42, group: str = "patient_id") -> pd.DataFrame:
    """A patient-level share of a split (whole patients, about ``fraction`` of the images; smaller budgets nested in
    larger ones).

    Taught in 02b_transfer_and_imbalance.
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1] (the share of the training labels to keep), not {fraction!r}.")
    if group not in frame.columns:
        raise DataError(f"budget_subset: the table has no {group!r} column (found {list(frame.columns)[:6]}...); "
                        "pass group= the patient column.")
    if fraction == 1.0:
        return frame
    patients = frame[group].drop_duplicates().to_numpy()
    order = np.random.default_rng(seed).permutation(len(patients))  # the same order for every fraction: nested
    counts = frame[group].value_counts()
    goal, taken, kept = fraction * len(frame), 0, []
    for i in order:
        if taken >= goal:
            break
        kept.append(patients[i])
        taken += int(counts[patients[i]])
    return frame[frame[group].isin(kept)]


def set_start(model: keras.Model, weights: list, learning_rate: float) -> None:
    """Put a compiled model back to ``weights`` with a fresh optimizer state, without recompiling.

    Taught in 02b_transfer_and_imbalance.
    """
    model.set_weights(weights)
    optimizer = model.optimizer
    for variable in optimizer.variables:
        if "learning_rate" not in variable.path:
            variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate.assign(learning_rate)


def linear_heads(train_features, y_train, eval_features, C: float = 0.1, solver: str = "liblinear") -> np.ndarray:
    """Scores of one logistic regression per finding on frozen features (a finding without both outcomes in training
    scores 0).

    Taught in 02b_transfer_and_imbalance.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_features = check_finite(train_features, "training features")
    eval_features = check_finite(eval_features, "evaluation features")
    y_train = check_labels(y_train, "training labels")
    if len(train_features) != len(y_train):
        raise DataError(f"linear_heads: {len(train_features)} feature rows but {len(y_train)} label rows.")
    scaler = StandardScaler().fit(train_features)
    a, b = scaler.transform(train_features), scaler.transform(eval_features)
    scores = np.zeros((len(b), y_train.shape[1]))
    for j in range(y_train.shape[1]):
        if 0 < y_train[:, j].sum() < len(y_train):
            # liblinear: the same AUC as lbfgs on 657 x 1024 features (0.939 vs 0.936), 12x faster on 2 cores
            scores[:, j] = (LogisticRegression(C=C, solver=solver, max_iter=2000).fit(a, y_train[:, j])
                            .predict_proba(b)[:, 1])
    return scores
