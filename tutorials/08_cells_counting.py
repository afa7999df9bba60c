# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Cells: segmentation and counting, each count with its uncertainty
#
# **Description:** Segment and count nuclei in microscopy images, each count with an interval.<br>
# **Needs:** nothing: it stands on its own.<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 08_cells_counting`.
#
# Counting nuclei is an everyday task in pathology and cell-biology labs: how many cells, how dense,
# how many dividing. A count without an interval is as hard to trust as a diagnosis without a
# confidence. Here a small U-Net marks each nucleus and its core, a watershed turns the pixels into
# objects, and MC dropout turns one count into T counts, hence an interval, which we check for honesty.
#
# **You will:** read the 2018 Data Science Bowl layout (one image, one mask per nucleus), its three
# kinds of image, and split it so that crops of one acquisition stay together; build the
# classical baseline (Otsu threshold, distance transform, watershed: no learning); train a U-Net with
# two outputs (foreground and nucleus cores, the cores split touching nuclei); turn probabilities into
# instances; score counts (absolute and relative error), matching at IoU 0.5 (precision, recall, F1)
# and the Bowl's mean average precision over IoU 0.5 to 0.95; draw T dropout samples, hence T instance
# maps and T counts per image, tile by tile in bounded memory; calibrate the 90% count interval on
# validation images and measure its coverage on test images; rate each nucleus by its mean mutual information and ask whether the
# uncertain nuclei are the wrong ones; see where the uncertainty sits.
#
# **You need:** nothing but this repository. By default the notebook writes a synthetic fluorescence
# dataset in the exact Data Science Bowl layout (folders named by 64-hex-digit IDs, RGBA PNG images,
# one 0/255 PNG per nucleus) and reads it with the code that reads the real one; set `MEDXAI_DATA_DIR`
# to a folder holding `dsb2018/` (the unpacked `stage1_train/`) to use the real data.
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `08_cells_counting` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Seo, *Visualizing Uncertainty and Saliency Maps of Deep Convolutional Neural Networks for
# Medical Imaging Applications*, Ryerson University (segmentation and counting of cells with an
# uncertainty per measurement as the next use case), Caicedo et al., *Nucleus segmentation across
# imaging experiments: the 2018 Data Science Bowl*, Nature Methods 2019 (the data layout and the score),
# Ronneberger et al., *U-Net*, MICCAI 2015, Gal and Ghahramani, *Dropout as a Bayesian Approximation*,
# ICML 2016, and Angelopoulos and Bates, *A Gentle Introduction to Conformal Prediction and
# Distribution-Free Uncertainty Quantification*, Foundations and Trends in Machine Learning 2023.

# %% [markdown]
# ## Setup
#
# All imports live here; the shared code comes from the `helpers` package, imported by module.

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:  # only where the series' package is absent, e.g. on Colab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "medxai-helpers @ git+https://github.com/medxai/medxai"])
    importlib.invalidate_caches()

import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from skimage.segmentation import find_boundaries
from sklearn.metrics import roc_auc_score

from helpers import cells, config, instances, models, preprocessing, synthetic, uncertainty
from helpers.exercises import cells_counting as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
started = time.perf_counter()

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
patch_size = 64  # training crops; the U-Net is fully convolutional and predicts whole images
steps_per_epoch = cfg.pick(smoke=16, lab=30, full=60)  # batches of training crops per epoch
epochs = cfg.pick(smoke=10, lab=14, full=40)
batch_size = 16
base_filters = cfg.pick(smoke=4, lab=12, full=16)  # filters of the first U-Net level (depth 3)
dropout_rate = 0.15
mc_samples = cfg.pick(smoke=8, lab=16, full=30)  # T: dropout samples per image
split_fractions = cfg.pick(smoke=[0.5, 0.25, 0.25], lab=[0.34, 0.33, 0.33], full=[0.6, 0.2, 0.2])  # train, val, test
level = 0.9  # the count interval's nominal coverage
coverage_bounds = cfg.pick(smoke=[0.5, 1.0], lab=[0.80, 0.97], full=[0.80, 0.97])  # asserted test coverage (12 test images in smoke: loose)
margin = cfg.pick(smoke=0.05, lab=0.1, full=0.1)  # how far above chance (0.5) the error detector's AUROC must be
clumped_at = 0.75  # an image is clumped when at least this share of its nuclei touch another
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, crops {patch_size}px x {steps_per_epoch * batch_size} per epoch x {epochs} epochs, "
      f"base filters={base_filters}, dropout={dropout_rate}, T={mc_samples}, interval {level:.0%} "
      f"(asserted coverage {coverage_bounds[0]:.0%}-{coverage_bounds[1]:.0%}), AUROC margin {margin}")
config.seed_everything(seed)

# %% [markdown]
# ## 1. The data: one image, one mask per nucleus
#
# The 2018 Data Science Bowl (BBBC038) gives each image a folder named by its ID, with the image in
# `images/` and **one binary PNG per nucleus** in `masks/`. Stacking the masks gives an *instance map*:
# 0 for background, k for the k-th nucleus. `cells.read_nuclei` checks the layout and `cells.load_nuclei`
# each mask (same size as the image, binary, not empty, not overlapping another), naming the file at fault.
#
# The Bowl mixes three **kinds** of image: fluorescence (bright nuclei on black), brightfield and
# histology (dark, stained nuclei on a light field). `cells.image_kind` tells them apart and
# `cells.load_image` inverts the light-field kinds, so one model convention serves all three. Many Bowl
# images are **crops of one acquisition**: dealt out one by one, related crops land on both sides and
# the test then measures new crops of known experiments, not new images. `cells.acquisition_groups`
# groups images of one size and kind with near-identical intensity statistics (or reads your
# `groups.csv`: image_id,group), and the split then keeps each group on one side.

# %%
dataset = cells.read_nuclei(synthetic.ensure(cfg, "dsb2018"))
loaded = {r.id: cells.load_nuclei(r) for r in dataset.records}
kinds = pd.Series({r.id: cells.kind_of(r) for r in dataset.records})  # brightfield and histology come inverted
counts = pd.Series({i: int(instance_map.max()) for i, (_, instance_map) in loaded.items()})
known = cells.read_groups(dataset.root)
groups = cells.acquisition_groups([loaded[r.id][0] for r in dataset.records], kinds[[r.id for r in dataset.records]],
                                  known=None if known is None else [known.get(r.id, r.id) for r in dataset.records])
if len(set(groups)) < len(groups):  # some images share an acquisition: they go to one side together
    split = cells.split_groups(dataset.records, groups, fractions=split_fractions, seed=seed)
    split_kind = f"by {len(set(groups))} acquisition groups ({'from ' + cells.GROUPS_FILE if known else 'same size, kind and intensity'})"
else:  # every image its own acquisition: stratified by the number of nuclei, validation and test drawn alike
    split = cells.split_records(dataset.records, fractions=split_fractions, seed=seed, strata=[counts[r.id] for r in dataset.records])
    split_kind = "by image, stratified by nuclei count (every image its own acquisition)"
touching = pd.Series({i: instances.touching_fraction(instance_map) for i, (_, instance_map) in loaded.items()})
print(f"{len(dataset.records)} images in {dataset.root}; split {split_kind}: " + ", ".join(f"{k} {len(v)}" for k, v in split.items()))
print("kinds: " + ", ".join(f"{kind} {n}" for kind, n in kinds.value_counts().items())
      + ("; the synthetic default holds fluorescence only" if cfg.synthetic else ""))
print(f"nuclei per image: min {counts.min()}, median {counts.median():.0f}, max {counts.max()}; "
      f"{(touching >= clumped_at).mean():.0%} of images are clumped (>= {clumped_at:.0%} of nuclei touch another)")

# %%
shown = [counts.idxmin(), counts.index[np.argsort(counts.values)[len(counts) // 2]], touching.idxmax(), counts.idxmax()]
fig, axes = plt.subplots(2, 4, figsize=(12, 6))
for ax_img, ax_lab, image_id in zip(axes[0], axes[1], shown):
    image, instance_map = loaded[image_id]
    ax_img.imshow(image, cmap="gray")
    ax_img.set_title(f"{image_id[:8]}: {instance_map.max()} nuclei")
    ax_lab.imshow(np.where(instance_map > 0, instance_map % 17 + 1, 0), cmap="nipy_spectral", interpolation="nearest")
    ax_lab.set_title(f"instances, {touching[image_id]:.0%} touching")
for ax in axes.ravel():
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The classical baseline: Otsu, distance transform, watershed
#
# No learning: smooth, threshold at Otsu's level (the grey value that best separates two classes),
# fill holes, and split touching blobs by flooding the inverted distance transform from its peaks
# (`instances.classical_instances`). It works on isolated bright nuclei; clumps, dim nuclei beside
# bright ones and uneven background are where it fails.

# %%
test_ids = [r.id for r in split["test"]]
true_test = [loaded[i][1] for i in test_ids]
classical = [instances.classical_instances(loaded[i][0]) for i in test_ids]
example = int(np.argmax([touching[i] for i in test_ids]))
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, instance_map, title in zip(axes, (true_test[example], classical[example]), ("truth", "Otsu + watershed")):
    ax.imshow(loaded[test_ids[example]][0], cmap="gray")
    ax.contour(find_boundaries(instance_map), levels=[0.5], colors="yellow", linewidths=0.6)
    ax.set_title(f"{title}: {instance_map.max()} nuclei")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 3. A U-Net with two outputs: foreground and cores
#
# One foreground map cannot separate two touching nuclei: their pixels form one blob. A second output
# learns each nucleus's **core** (its pixels at least half as deep inside as its deepest point,
# `instances.nucleus_targets`): cores of touching nuclei do not touch, so each core becomes a marker
# and a watershed grows it over the foreground. `cells.nuclei_unet` is `models.unet` (dropout after the
# first convolution of each block) with a two-channel sigmoid head.

# %%
def with_targets(image_id):
    """One image and its two targets as H x W x 3: image, foreground, cores."""
    image, instance_map = loaded[image_id]
    return np.dstack([image, *instances.nucleus_targets(instance_map)])


train = [with_targets(r.id) for r in split["train"]]  # the real images differ in size: a list, not an array
rng = np.random.default_rng(seed)


def crops():
    """Endless batches of random crops with the same random flip and quarter turn for image and targets."""
    while True:
        picked = [train[k] for k in rng.integers(len(train), size=batch_size)]
        corners = [(rng.integers(a.shape[0] - patch_size + 1), rng.integers(a.shape[1] - patch_size + 1)) for a in picked]
        out = np.stack([a[y:y + patch_size, x:x + patch_size] for a, (y, x) in zip(picked, corners)])
        out = np.rot90(out, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            out = out[:, :, ::-1]
        yield np.ascontiguousarray(out[..., :1]), np.ascontiguousarray(out[..., 1:])


pixels = np.concatenate([a[..., 0].ravel() for a in train])
normalization = (float(pixels.mean()), float(pixels.std()))
model = cells.nuclei_unet(base_filters=base_filters, depth=3, dropout_rate=dropout_rate, normalization=normalization)
model.compile(keras.optimizers.Adam(2e-3), "binary_crossentropy")
print(f"{model.count_params():,} parameters; dropout layers: {len(models.dropout_layer_names(model))}")
start = time.perf_counter()
history = model.fit(crops(), steps_per_epoch=steps_per_epoch, epochs=epochs, shuffle=False, verbose=0)  # crops are random
print(f"trained in {time.perf_counter() - start:.0f} s; loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}")
assert history.history["loss"][-1] < 0.8 * history.history["loss"][0], "the training loss did not fall"

# %% [markdown]
# ## 4. T dropout samples, T instance maps, T counts
#
# `uncertainty.with_mc_dropout` keeps dropout on at test time (BatchNormalization, if any, stays in inference
# mode). Each sample's two maps give one instance map and one count; the mean of the samples gives *the*
# prediction we score. Sampling a whole image at once keeps the network's activations for T full-size
# copies in memory together: a 2,048-pixel microscopy image then asks for tens of gigabytes.
# `uncertainty.mc_predict_tiled` samples **tile by tile** (256-pixel tiles, each seen with 48 pixels of
# context and only its centre kept, the overlap-tile strategy of the U-Net paper) and a few samples at a
# time, so memory is set by the tile, not the image (`benchmarks/bench_mc_memory.py` measures it). A
# small image is one tile with all T samples in one call.

# %%
mc_model = uncertainty.with_mc_dropout(model)


def mc_sample(ids):
    """MC samples of some images, one (T, H, W, 2) float16 array per image, tile by tile."""
    return [uncertainty.mc_predict_tiled(mc_model, loaded[i][0], samples=mc_samples) for i in ids]


def sample_instances(samples):
    """Per image its T sample instance maps, the counts (T, images), and the instance maps of the mean prediction."""
    maps = [[instances.instances_from_maps(s[..., 0], s[..., 1]) for s in image] for image in samples]
    counts = np.array([[m.max() for m in image] for image in maps], dtype=float).T
    return maps, counts, [instances.instances_from_maps(*np.moveaxis(image.mean(axis=0), -1, 0)) for image in samples]


start = time.perf_counter()
val_ids = [r.id for r in split["val"]]
_, val_counts, _ = sample_instances(mc_sample(val_ids))  # validation needs only the counts: its samples are not kept
test_samples = mc_sample(test_ids)
test_maps, test_counts, learned = sample_instances(test_samples)
mc_seconds = time.perf_counter() - start
print(f"{mc_samples} samples x {len(val_ids) + len(test_ids)} images -> {val_counts.size + test_counts.size} instance maps in {mc_seconds:.0f} s")
print(f"peak resident memory so far: {models.peak_memory_mib() or float('nan'):.0f} MiB")

# %% [markdown]
# ## 5. Scores: counts, matching at IoU 0.5, the Bowl's mean AP
#
# * **Count error**: predicted minus true count; its mean absolute value (MAE) and the mean of
#   |error| / true count.
# * **Matching at IoU 0.5**: a predicted nucleus is a true positive when its intersection over union with
#   a true nucleus is above 0.5 (unique: no nucleus can pass 0.5 with two others). Precision, recall, F1.
# * **Data Science Bowl AP**: TP / (TP + FP + FN) at IoU thresholds 0.5, 0.55, ..., 0.95, averaged; then
#   averaged over images. It rewards outlines, not only counts.

# %%
true_counts = np.array([instance_map.max() for instance_map in true_test], dtype=float)
clumped = np.array([touching[i] >= clumped_at for i in test_ids])


def score(predicted, subset):
    """Count errors, F1 at IoU 0.5 and the Bowl AP of some instance maps, on a subset of the test images."""
    picked = np.flatnonzero(subset)
    errors = instances.count_errors(true_counts[picked], [predicted[j].max() for j in picked])
    f1 = np.mean([instances.match_instances(true_test[j], predicted[j]).f1 for j in picked])
    ap = np.mean([instances.average_precision(true_test[j], predicted[j]) for j in picked])
    return {"count MAE": errors["MAE"], "relative error": errors["relative error"], "F1 @ IoU 0.5": f1, "mean AP 0.5:0.95": ap}


everything = np.ones(len(test_ids), bool)
table = pd.DataFrame({
    ("all", "classical"): score(classical, everything), ("all", "U-Net"): score(learned, everything),
    ("clumped", "classical"): score(classical, clumped), ("clumped", "U-Net"): score(learned, clumped),
}).T
print(f"{len(test_ids)} test images, {clumped.sum()} clumped")
table.round(3)

# %% [markdown]
# The same scores per kind of image, with how many test images each kind has (a kind the data does not
# hold has no row):

# %%
test_kinds = kinds[test_ids].to_numpy()
by_kind = pd.DataFrame({(kind, "U-Net"): {"test images": int((test_kinds == kind).sum()), **score(learned, test_kinds == kind)}
                        for kind in cells.KINDS if (test_kinds == kind).any()}).T
by_kind.round(3)

# %%
mae_classical, mae_learned = table.loc[("clumped", "classical"), "count MAE"], table.loc[("clumped", "U-Net"), "count MAE"]
assert clumped.sum() >= 2, "too few clumped test images to compare"
if cfg.synthetic:  # asserted on the synthetic set; on your images (three kinds, few test images) it is measured
    assert mae_learned < mae_classical, f"on clumped images the U-Net's count MAE {mae_learned:.1f} does not beat Otsu + watershed's {mae_classical:.1f}"
print(f"on clumped images the U-Net counts with MAE {mae_learned:.1f} against {mae_classical:.1f} for Otsu + watershed "
      f"({mae_classical / max(mae_learned, 1e-9):.1f}x {'smaller' if mae_learned < mae_classical else 'larger: it does not beat the baseline here'})")

# %% [markdown]
# ## 6. Is the count's interval honest?
#
# The T counts of one image give a spread; their central 90% is the *raw* interval. Dropout samples
# explain only part of the error (the model's uncertainty, not the watershed's systematic mistakes or the
# annotation's), so raw intervals are usually too narrow. Split conformal prediction fixes the width on
# images the model has not trained on: on validation, find the factor k such that mean count +- k x spread
# covers 90% of the true counts (with the finite-sample correction), then check the coverage on test.
# The spread is the standard deviation of the T counts, at least one nucleus. The guarantee needs
# validation and test images that are exchangeable; the split of section 1 dealt them alike by nuclei
# count, which also keeps one unlucky split (all the dense images in test) from deciding the result.
# With acquisition groups the split keeps each group on one side, and the coverage then holds for images
# of **new acquisitions**; dealt one by one, it would hold only for new crops of the same experiments.

# %%
mean, low, high = instances.count_interval(test_counts, level)
raw_coverage = instances.coverage(true_counts, low, high)
val_true = np.array([loaded[i][1].max() for i in val_ids], dtype=float)
spread_val = np.maximum(val_counts.std(axis=0), 1.0)
k = instances.conformal_scale(val_true, val_counts.mean(axis=0), spread_val, level)
spread_test = np.maximum(test_counts.std(axis=0), 1.0)
cal_low, cal_high = np.maximum(mean - k * spread_test, 0), mean + k * spread_test  # a count is never negative
cal_coverage = instances.coverage(true_counts, cal_low, cal_high)
print(f"raw {level:.0%} intervals of the T counts cover the true count on {raw_coverage:.0%} of {len(test_ids)} test images")
print(f"calibrated on {len(val_ids)} validation images (k = {k:.2f} spreads): coverage {cal_coverage:.0%}, measured on "
      + ("images of acquisitions the model never saw (split by group)" if len(set(groups)) < len(groups)
         else "new images (each its own acquisition)"))

# %%
order = np.argsort(true_counts)
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.errorbar(np.arange(len(order)), mean[order], yerr=[mean[order] - cal_low[order], cal_high[order] - mean[order]],
            fmt="o", ms=3, color="tab:blue", label=f"U-Net mean count, calibrated {level:.0%} interval")
ax.scatter(np.arange(len(order)), true_counts[order], marker="x", color="black", label="true count", zorder=3)
ax.set_xlabel("test image (by true count)")
ax.set_ylabel("nuclei")
ax.legend()
plt.show()

# %%
low_bound, high_bound = coverage_bounds
if cfg.synthetic:  # asserted on the synthetic set; on your images, measured and said below
    assert low_bound <= cal_coverage <= high_bound, (
        f"calibrated {level:.0%} intervals cover {cal_coverage:.0%} of test images, outside {low_bound:.0%}-{high_bound:.0%}")
honest = 0.80 <= cal_coverage <= 0.97
print(f"calibrated intervals {'are' if honest else 'are not'} honest on these {len(test_ids)} images: {cal_coverage:.0%} against {level:.0%} nominal"
      + ("" if raw_coverage >= 0.8 else f"; the raw dropout intervals were too narrow ({raw_coverage:.0%})"))

# %% [markdown]
# ## 7. Which nuclei are uncertain, and are they the wrong ones?
#
# Two ways to rate one predicted nucleus (from the mean prediction):
#
# * **mean mutual information** inside it: per pixel, the mutual information between the foreground
#   prediction and the dropout mask (epistemic uncertainty, `uncertainty.decompose`), averaged over the
#   nucleus (`instances.per_instance_mean`);
# * **instability**: the share of the T sample instance maps in which no object matches it at IoU above
#   0.5 (`instances.instance_stability`): does the nucleus survive the dropout samples as one object?
#
# A predicted nucleus is *wrong* when no true nucleus matches it at IoU above 0.5 (a fragment, a merger
# of two, a false detection). A useful uncertainty ranks wrong nuclei above right ones: AUROC above 0.5.

# %%
mutual_information = [uncertainty.decompose(image[..., 0]).epistemic for image in test_samples]
rows = []
for j, instance_map in enumerate(learned):
    match = instances.match_instances(true_test[j], instance_map)
    mi = instances.per_instance_mean(instance_map, mutual_information[j])
    stable = instances.instance_stability(instance_map, test_maps[j])
    rows += [{"image": j, "nucleus": int(p), "pixels": int((instance_map == p).sum()), "mutual information": m,
              "instability": 1 - s, "wrong": not h} for p, m, s, h in zip(match.pred_ids, mi, stable, match.pred_hit)]
nuclei = pd.DataFrame(rows)
both = nuclei["wrong"].nunique() == 2
auroc = {name: roc_auc_score(nuclei["wrong"], nuclei[name]) if both else float("nan")
         for name in ("mutual information", "instability", "pixels")}
print(f"{len(nuclei)} predicted nuclei, {nuclei['wrong'].mean():.0%} wrong; AUROC as an error detector: "
      + ", ".join(f"{name} {value:.3f}" for name, value in auroc.items()))
nuclei.groupby("wrong")[["mutual information", "instability", "pixels"]].mean().round(4)

# %% [markdown]
# Why the two can disagree: the mutual information is highest on every nucleus's border and lowest
# inside, so its mean mostly measures how much of a nucleus is border, while a merger of two nuclei is a
# large blob whose foreground is confident. A counter's mistakes are mistakes about *objects*; the
# object-level question (does this nucleus come back, as one object, in every dropout sample?) asks
# about them directly. The `pixels` column says how much of either score is only size.

# %%
if cfg.synthetic:  # asserted on the synthetic set; on your images, measured
    assert auroc["instability"] > 0.5 + margin, f"instability detects wrong nuclei with AUROC {auroc['instability']:.3f}, not better than chance + {margin}"
mi_useful = auroc["mutual information"] > 0.5 + margin
stable_useful = auroc["instability"] > 0.5 + margin
print((f"unstable nuclei are more often wrong: AUROC {auroc['instability']:.3f} > {0.5 + margin:.2f}" if stable_useful else
       f"instability does not detect the wrong nuclei here (AUROC {auroc['instability']:.3f})") + "; the mean mutual information "
      + (f"also detects them (AUROC {auroc['mutual information']:.3f})" if mi_useful
         else f"does not (AUROC {auroc['mutual information']:.3f}, within {margin} of chance or below)"))

# %% [markdown]
# ## 8. Where the uncertainty sits
#
# The most clumped test image and the one with the widest interval for its count: the image, the mutual information,
# and the predicted nuclei (green: matched at IoU 0.5; red: wrong), with the true outlines in yellow.

# %%
widest = int(np.argmax(spread_test / np.maximum(true_counts, 1)))
picked = list(dict.fromkeys([example, widest]))
fig, axes = plt.subplots(len(picked), 3, figsize=(11, 3.7 * len(picked)), squeeze=False)
for row, j in zip(axes, picked):
    instance_map = learned[j]
    wrong_ids = nuclei.query("image == @j and wrong")["nucleus"].to_numpy()
    row[0].imshow(loaded[test_ids[j]][0], cmap="gray")
    row[0].set_title(f"true {int(true_counts[j])}, counted {mean[j]:.0f} [{cal_low[j]:.0f}, {cal_high[j]:.0f}]")
    shown_mi = row[1].imshow(mutual_information[j], cmap="magma")
    plt.colorbar(shown_mi, ax=row[1], fraction=0.046)
    row[1].set_title("mutual information (nats)")
    row[2].imshow(loaded[test_ids[j]][0], cmap="gray")
    row[2].contour(find_boundaries(true_test[j]), levels=[0.5], colors="yellow", linewidths=0.5)
    row[2].contour(find_boundaries(np.where(np.isin(instance_map, wrong_ids), 0, instance_map)), levels=[0.5], colors="lime", linewidths=0.7)
    row[2].contour(find_boundaries(np.where(np.isin(instance_map, wrong_ids), instance_map, 0)), levels=[0.5], colors="red", linewidths=0.9)
    row[2].set_title(f"{len(wrong_ids)} of {instance_map.max()} predicted nuclei wrong (red)")
    for ax in row:
        ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary

# %%
elapsed = time.perf_counter() - started
print(f"count MAE on all test images: U-Net {table.loc[('all', 'U-Net'), 'count MAE']:.1f}, "
      f"classical {table.loc[('all', 'classical'), 'count MAE']:.1f}; on clumped images {mae_learned:.1f} vs {mae_classical:.1f}")
print(f"mean AP 0.5:0.95: U-Net {table.loc[('all', 'U-Net'), 'mean AP 0.5:0.95']:.3f}, classical {table.loc[('all', 'classical'), 'mean AP 0.5:0.95']:.3f}")
print(f"{level:.0%} count intervals: raw coverage {raw_coverage:.0%}, calibrated {cal_coverage:.0%} (k = {k:.2f})")
print(f"AUROC as a detector of wrong nuclei: instability {auroc['instability']:.3f}, mean mutual information {auroc['mutual information']:.3f}")
print(f"run time {elapsed:.0f} s (MC sampling and watersheds {mc_seconds:.0f} s); largest image "
      f"{max(loaded[i][0].shape for i in loaded)}; peak resident memory {models.peak_memory_mib() or float('nan'):.0f} MiB")

# %% [markdown]
# * Whole images are sampled tile by tile, a few samples at a time: memory is set by the tile, not by
#   the image, so real microscopy images of 2,000 pixels run on a laptop. Brightfield and histology
#   images are inverted to the fluorescence convention; crops of one acquisition stay on one side of
#   the split, so the test measures new acquisitions.
# * A count is a segmentation first: the foreground alone merges touching nuclei; learned **cores** as
#   watershed markers split them, where the distance transform of an Otsu mask splits clumps at random.
# * Score counts (MAE, relative error) *and* objects (F1 at IoU 0.5, the Bowl's mean AP over 0.5 to
#   0.95): a right count can hide a merger and a split that cancel out.
# * T dropout samples give T instance maps and T counts: the count's spread. Dropout sees only the
#   model's part of the error, so the raw interval is checked, not trusted; calibrated on validation
#   images (split conformal), a 90% interval is built to cover 90% of new images, which is what "90%"
#   has to mean, and section 6 measures how close it comes on the test images.
# * Per nucleus, the pixel uncertainty averaged inside it mostly measures how much of it is border; the
#   object-level instability (is it found again, as one object, in each dropout sample?) is what ranks
#   the wrong nuclei (fragments, mergers, false detections) above the right ones. The pixel uncertainty
#   sits on borders, clumps and blurred nuclei (section 8).
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's images. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **AP by hand.** Write the Bowl's score of one image: the IoU of every (true, predicted) pair from
#    the two label maps, a hit when IoU > t, TP / (TP + FP + FN) per threshold, their mean. Apply it to
#    the first test image at 0.5 and 0.75.
# 2. **Foreground only.** Build instances from the foreground channel alone (`instances.classical_instances`
#    on the mean foreground probability). How much worse is the count on clumped images? (Discussion.)
# 3. **Per-image intervals.** Write the split-conformal factor k of section 6. Then replace the spread by
#    the raw interval's half-width and calibrate again: does the coverage change, and which images get
#    wider intervals? (Discussion.)
# 4. **How many samples?** Repeat section 6 with T = 4 and T = 40. How do the raw coverage, k and the
#    AUROC of section 7 move? (Discussion.)
# 5. **Real data.** Point `MEDXAI_DATA_DIR` at a folder with `dsb2018/stage1_train/` and run again. Which
#    images (brightfield, stained tissue) break the classical baseline, and does the U-Net's interval say
#    so? (Discussion.)

# %%
# Exercise 1: write ap_by_hand(true_labels, pred_labels, thresholds), the Bowl's score of one image.
def ap_by_hand(true_labels, pred_labels, thresholds):
    """Mean over the thresholds t of TP / (TP + FP + FN), a hit when IoU > t; label 0 is background."""
    ### BEGIN SOLUTION
    true_ids, t = np.unique(true_labels, return_inverse=True)
    pred_ids, p = np.unique(pred_labels, return_inverse=True)
    table = np.zeros((len(true_ids), len(pred_ids)))
    np.add.at(table, (t.ravel(), p.ravel()), 1)  # pixels shared by each (true, predicted) pair of labels
    keep_t, keep_p = true_ids > 0, pred_ids > 0
    inter = table[np.ix_(keep_t, keep_p)]
    iou = inter / (table.sum(1)[keep_t][:, None] + table.sum(0)[keep_p][None, :] - inter)
    hits = [int((iou > threshold).sum()) for threshold in thresholds]  # IoU > 0.5 pairs each nucleus once
    return float(np.mean([tp / (iou.shape[0] + iou.shape[1] - tp) for tp in hits]))
    ### END SOLUTION


exercises.check_ap_by_hand(ap_by_hand)

# %%
mine = ap_by_hand(true_test[0], learned[0], [0.5, 0.75])
reference = instances.average_precision(true_test[0], learned[0], thresholds=[0.5, 0.75])
print(f"first test image, U-Net: your AP at 0.5 and 0.75 {mine:.4f}, instances.average_precision {reference:.4f}")
assert abs(mine - reference) < 1e-12, "your score passed the check but differs from instances.average_precision here"

# %%
# Exercise 3: write conformal_k(true_counts, centre, spread, level), the split-conformal factor of section 6.
def conformal_k(true_counts, centre, spread, level):
    """The sorted scores |true - centre| / spread, taken at rank ceil((n + 1) level), 1-based."""
    ### BEGIN SOLUTION
    scores = np.sort(np.abs(np.asarray(true_counts, float) - centre) / spread)
    rank = int(np.ceil((len(scores) + 1) * level - 1e-9))  # - 1e-9: 10 x 0.9 must give rank 9 in floating point
    return float(scores[rank - 1])
    ### END SOLUTION


exercises.check_conformal_k(conformal_k)

# %%
your_k = conformal_k(val_true, val_counts.mean(axis=0), spread_val, level)
print(f"section 6's validation images: your k {your_k:.3f}, instances.conformal_scale {k:.3f}")
assert abs(your_k - k) < 1e-9, "your k passed the check but differs from section 6's on the validation images"

