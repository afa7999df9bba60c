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
# # 01 · Chest X-rays: preprocessing and patient-level splits
#
# From the files of NIH ChestX-ray14 to a `tf.data` pipeline a model can train on, without the two
# mistakes that quietly ruin medical-imaging results: **patient leakage** between the splits, and
# **class imbalance** left untreated.
#
# **You will:** read the NIH layout and its labels; count images per patient; split by patient with
# every finding present in validation and test; *measure* what a leaky split does to a score; fit
# normalisation on the training split only; compute the weights of the weighted binary cross-entropy;
# choose augmentations that are safe for chest X-rays; build and time the input pipeline.
#
# **You need:** nothing but this repository. By default the notebook writes a synthetic dataset in
# the exact NIH layout (same file names, CSV columns, box file) and reads it with the same code that
# reads the real files; set `MEDXAI_DATA_DIR` to use the real data.
#
# **Run time on a 2-core CPU:** smoke under 1 min, lab about 2 min.
#
# Built from Georgieva's lecture *Deep Learning for Medical Imaging* (`../shared/references/002`:
# standardisation, weighted BCE, patient overlap, set sampling, augmentation) and Wang et al.,
# *ChestX-ray8*, CVPR 2017 (the dataset).

# %% [markdown]
# ## Setup
#
# All imports live here; the shared code comes from the `helpers` package, imported by module so
# that you always see where a function lives.

# %%
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sklearn
import tensorflow as tf
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from helpers import config, datasets, errors, preprocessing, synthetic, viz

print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, scikit-learn {sklearn.__version__}")

# %% [markdown]
# ## Configuration
#
# Every knob of the notebook, with its value for each profile (`smoke` for CI, `lab` for a laptop,
# `full` for the real data). Papermill can override this cell: it is tagged `parameters`.

# %% tags=["parameters"]
cfg = config.load()
image_size = cfg.pick(smoke=64, lab=128, full=224)  # model input, pixels per side
leak_size = 32  # the tiny thumbnails the leakage experiment compares, pixels per side
leak_max_images = cfg.pick(smoke=None, lab=None, full=6000)  # None: every image
neighbours = 5  # k of the k-nearest-neighbour classifier in the leakage experiment
val_fraction, test_fraction = 0.1, 0.2
batch_size = cfg.pick(smoke=16, lab=32, full=32)
seed = cfg.seed
print(f"profile={cfg.profile}, image_size={image_size}, data={'synthetic' if cfg.synthetic else cfg.data_dir}")

# %%
config.seed_everything(seed)

# %% [markdown]
# ## 1. Data: the NIH ChestX-ray14 layout
#
# The real release has `images/NNNNNNNN_NNN.png` (patient number, follow-up number), the label table
# `Data_Entry_2017.csv`, the box list `BBox_List_2017.csv` and the official split lists. Ours is
# written in exactly that layout (smaller images; the real ones are 1024x1024).

# %%
nih_dir = synthetic.ensure(cfg, "nih")
print(nih_dir)
print(sorted(p.name for p in nih_dir.iterdir() if not p.name.startswith(".")))

# %% [markdown]
# The CSV header is not tidy: `OriginalImage[Width,Height]` is split across two columns by its own
# comma, and the 2017 file ends every line with an extra comma. The box file is worse: its coordinates
# sit in columns 3 to 6 under the broken name `Bbox [x,y,w,h]`, and it spells *Infiltration* as
# `Infiltrate`. Look before you parse:

# %%
for name in ("Data_Entry_2017.csv", "BBox_List_2017.csv"):
    with open(nih_dir / name) as f:
        print(name, "|", f.readline().rstrip(), "|", f.readline().rstrip())

# %% [markdown]
# `datasets.read_nih` maps those columns by position, checks the header text, checks that every
# image named in the CSV exists and is a complete PNG, and turns the label strings into one 0/1
# column per finding. Nothing is dropped silently: a bad row is an error naming the row, or, if you
# ask for `errors="skip"`, a line in `nih.skipped`.

# %%
start = time.perf_counter()
nih = datasets.read_nih(nih_dir)
print(f"{len(nih.entries)} images of {nih.entries.patient_id.nunique()} patients, "
      f"{len(nih.boxes)} boxes, read in {time.perf_counter() - start:.1f} s; skipped rows: {len(nih.skipped)}")
nih.entries.head(3)

# %% [markdown]
# ## 2. Labels: fourteen findings, multi-label
#
# `Finding Labels` holds `|`-separated findings; `No Finding` means none of the fourteen. One image
# can carry several, so each finding is its own yes/no question (fourteen sigmoid outputs later, not
# one softmax).

# %%
datasets.parse_labels(pd.Series(["Cardiomegaly|Effusion", "No Finding", "Hernia"])).loc[
    :, ["Cardiomegaly", "Effusion", "Hernia", "Mass"]
]

# %%
prevalence = nih.entries[list(datasets.LABELS)].mean().sort_values()
no_finding = (nih.entries[list(datasets.LABELS)].sum(axis=1) == 0).mean()
ax = prevalence.plot.barh(figsize=(6, 4), title=f"Prevalence per finding ({no_finding:.0%} of images: No Finding)")
ax.set_xlabel("fraction of images")
plt.show()
assert (prevalence > 0).all(), "every finding should occur at least once"
print(f"most common {prevalence.index[-1]} {prevalence.iloc[-1]:.1%}, rarest {prevalence.index[0]} {prevalence.iloc[0]:.1%}: "
      f"a ratio of {prevalence.iloc[-1] / prevalence.iloc[0]:.0f} to 1")

# %% [markdown]
# ## 3. Images per patient
#
# Most patients have several images (follow-up visits). Their images share the patient's anatomy,
# and often the same chronic finding: that is what makes an image-level split leak.

# %%
per_patient = nih.entries.groupby("patient_id").size()
ax = per_patient.value_counts().sort_index().plot.bar(figsize=(6, 3), title="Images per patient")
ax.set_xlabel("images of the patient")
ax.set_ylabel("patients")
plt.show()
print(f"{per_patient.mean():.1f} images per patient on average; "
      f"{(per_patient > 1).mean():.0%} of patients have more than one")

# %% [markdown]
# ## 4. Look at the images, with their boxes
#
# `read_image` reads any of the PNG flavours the release contains (8-bit grey, and the few RGBA
# images) to float32 in [0, 1]. The boxes of `BBox_List_2017.csv` are in the PNG's pixel space.

# %%
with_boxes = nih.boxes.image_index.unique()[:8]
rows = nih.entries.set_index("image_index").loc[with_boxes]
images = [preprocessing.read_image(path, channels=1) for path in rows.path]
boxes = [
    [(b.x, b.y, b.w, b.h, b.label) for b in nih.boxes[nih.boxes.image_index == name].itertuples()]
    for name in with_boxes
]
viz.image_grid(images, titles=list(with_boxes), boxes=boxes, ncols=4)
plt.show()

# %% [markdown]
# ## 5. Splits: by image (leaky) or by patient
#
# A random split by image puts different images of one patient on both sides. A patient-level split
# keeps every patient on one side, and, stratified, still puts every finding (even the rare ones) in
# validation and test: "sample an equal % of the minority class for test and validation"
# (Georgieva, lecture 7).

# %%
leaky = datasets.random_split(nih.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
split = datasets.patient_split(nih.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
sizes = pd.DataFrame({name: [len(s), s.patient_id.nunique()] for name, s in split.items()}, index=["images", "patients"])
sizes

# %% [markdown]
# `assert_no_patient_overlap` is the check to run on every split you make. It passes on the
# patient-level split and fails loudly, naming the patients, on the random one:

# %% [markdown]
# The check by hand is one set intersection per pair of splits:

# %%
shared = set(leaky["train"].patient_id) & set(leaky["test"].patient_id)
print(f"random split: {len(shared)} patients in both train and test; patient split:",
      len(set(split["train"].patient_id) & set(split["test"].patient_id)))

# %%
datasets.assert_no_patient_overlap(**split)
try:
    datasets.assert_no_patient_overlap(**leaky)
except errors.PatientLeakageError as err:
    leak_message = str(err)
    print(leak_message[:300])
else:
    raise AssertionError("a random image-level split of patients with several images should leak")

# %%
per_split = pd.DataFrame({name: s[list(datasets.LABELS)].sum() for name, s in split.items()})
per_split.columns = [f"{c} positives" for c in per_split.columns]
assert (per_split > 0).all().all(), "every finding must appear in every split"
per_split.T

# %% [markdown]
# The real release also ships its own patient-level split (`train_val_list.txt`, `test_list.txt`).
# Use it when you compare with published numbers; `official_split` carves validation from its
# training part, by patient.

# %%
if nih.official_split is not None:
    official = datasets.official_split(nih, val_fraction=val_fraction, seed=seed)
    datasets.assert_no_patient_overlap(**official)
    print({name: len(s) for name, s in official.items()})

# %% [markdown]
# ## 6. The cost of leakage, in numbers
#
# A k-nearest-neighbour classifier on 32x32 thumbnails knows nothing about disease: it answers with
# the labels of the most similar training images. Under a random split the most similar image is
# often *the same patient's other image*, with the same chronic finding, so the classifier looks
# good. Under a patient split it has to generalise, and the score drops to what the method is worth.

# %%
entries = nih.entries if leak_max_images is None else nih.entries.sample(leak_max_images, random_state=seed)
thumbs = np.stack([preprocessing.read_image(p, channels=1)[..., 0] for p in entries.path])
thumbs = np.stack([tf.image.resize(t[..., None], (leak_size, leak_size), antialias=True).numpy().ravel() for t in thumbs])
features = pd.DataFrame(thumbs, index=entries.image_index)
print(f"{features.shape[0]} thumbnails of {leak_size}x{leak_size} = {features.shape[1]} features each")


# %%
def knn_auroc(parts):
    """Mean ROC AUC over the findings present in the test part, and how often the nearest training image is the same patient."""
    train, test = parts["train"], parts["test"]
    train, test = train[train.image_index.isin(features.index)], test[test.image_index.isin(features.index)]
    x_train, x_test = features.loc[train.image_index].values, features.loc[test.image_index].values
    model = KNeighborsClassifier(n_neighbors=neighbours).fit(x_train, train[list(datasets.LABELS)].values)
    scores = np.stack([p[:, 1] if p.shape[1] == 2 else np.zeros(len(x_test)) for p in model.predict_proba(x_test)], axis=1)
    truth = test[list(datasets.LABELS)].values
    aucs = [roc_auc_score(truth[:, j], scores[:, j]) for j in range(truth.shape[1]) if 0 < truth[:, j].sum() < len(truth)]
    nearest = model.kneighbors(x_test, n_neighbors=1, return_distance=False)[:, 0]
    same_patient = (train.patient_id.values[nearest] == test.patient_id.values).mean()
    return np.mean(aucs), same_patient


leaky_auc, leaky_same = knn_auroc(leaky)
patient_auc, patient_same = knn_auroc(split)
cost = pd.DataFrame(
    {"mean ROC AUC on test": [leaky_auc, patient_auc], "nearest neighbour is the same patient": [leaky_same, patient_same]},
    index=["random split (leaky)", "patient split"],
)
cost.round(3)

# %%
ax = cost["mean ROC AUC on test"].plot.barh(figsize=(6, 2), xlim=(0.4, 1.0), title="The same classifier, two splits")
ax.axvline(0.5, color="grey", linestyle=":")
plt.show()
print(f"Leakage inflates the score by {leaky_auc - patient_auc:+.3f} AUC: "
      f"{leaky_same:.0%} of leaky test images had their own patient as nearest neighbour.")
assert patient_same == 0.0, "a patient split has no same-patient neighbours"
assert leaky_auc - patient_auc >= 0.05, "the random split should inflate the AUC clearly"

# %% [markdown]
# ## 7. Normalisation: statistics from the training split only
#
# Standardise the pixels to mean 0 and standard deviation 1 (Georgieva, lecture 7). The mean and
# standard deviation come from the **training** images only: computing them on everything lets the
# test set shape the model's input, a quieter form of leakage. For a pretrained DenseNet use
# `preprocessing.imagenet_preprocess` instead: the ImageNet statistics the weights were trained with.

# %%
def load(part, limit=None):
    """Images of a split at the model's input size, as one float32 array."""
    paths = list(part.path[:limit]) if limit else list(part.path)
    return np.concatenate([x for x in preprocessing.image_dataset(paths, image_size=image_size, batch_size=64)])


train_images = load(split["train"])
mean, std = preprocessing.fit_normalization(train_images)
normalize = preprocessing.normalization_layer(mean, std)
val_images = load(split["val"])
train_z, val_z = np.asarray(normalize(train_images)), np.asarray(normalize(val_images))
print(f"train statistics: mean {mean:.3f}, std {std:.3f}")
print(f"after normalising with them: train {train_z.mean():+.3f} ± {train_z.std():.3f}, val {val_z.mean():+.3f} ± {val_z.std():.3f}")
assert abs(train_z.mean()) < 1e-3 and abs(train_z.std() - 1) < 1e-3

# %% [markdown]
# Validation lands *near* 0 and 1, not exactly: that small difference is honest. A pipeline whose
# validation set is exactly standardised has looked at it.

# %% [markdown]
# ## 8. Class imbalance: the weights of the weighted binary cross-entropy
#
# With a rare finding, a model that always answers "no" already has a low loss. The weighted
# binary cross-entropy
# $\mathcal{L}(x) = -\big(w_p\, y \log f(x) + w_n (1-y) \log(1 - f(x))\big)$ with
# $w_p = \frac{\text{negatives}}{\text{total}}$ and $w_n = \frac{\text{positives}}{\text{total}}$ per
# class, counted on the training split, makes positives and negatives weigh the same in total.

# %% [markdown]
# By hand first: count, per class, the negatives and the positives of the training split.

# %%
train_labels = split["train"][list(datasets.LABELS)].values
w_p_by_hand = (train_labels == 0).sum(axis=0) / len(train_labels)
w_n_by_hand = (train_labels == 1).sum(axis=0) / len(train_labels)
print("Hernia by hand: w_p =", round(w_p_by_hand[-1], 3), " w_n =", round(w_n_by_hand[-1], 3))

# %% [markdown]
# `preprocessing.class_weights` does the same (and warns if a class has no positives in training):

# %%
w_p, w_n = preprocessing.class_weights(train_labels, names=datasets.LABELS)
assert np.allclose(w_p, w_p_by_hand) and np.allclose(w_n, w_n_by_hand)
frequency = train_labels.mean(axis=0)
weights = pd.DataFrame(
    {"positive fraction": frequency, "w_p": w_p, "w_n": w_n,
     "positive share of loss": w_p * frequency, "negative share of loss": w_n * (1 - frequency)},
    index=datasets.LABELS,
)
weights.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
unweighted = pd.DataFrame({"positives": frequency, "negatives": 1 - frequency}, index=datasets.LABELS)
unweighted.plot.barh(stacked=True, ax=axes[0], title="Unweighted: share of the loss", legend=False)
weights[["positive share of loss", "negative share of loss"]].plot.barh(stacked=True, ax=axes[1], title="Weighted", legend=False)
axes[1].legend(["positives", "negatives"], loc="lower right")
plt.tight_layout()
plt.show()
assert np.allclose(w_p * frequency, w_n * (1 - frequency)), "weighted contributions must balance"

# %% [markdown]
# ## 9. Augmentation, and which flips are unsafe for chest X-rays
#
# The lecture lists horizontal and vertical flips, 90° rotations, contrast, brightness, random
# erasing and shear. For chest X-rays, not all of them are harmless:
#
# * a **horizontal flip** puts the heart on the right: that is *dextrocardia*, a real (rare) finding,
#   and the heart's position is part of what defines cardiomegaly. The model learns less anatomy.
# * **vertical flips and 90° rotations** produce films no scanner makes: PA films are upright.
#
# So the `chest_xray` preset keeps small rotations, shifts, zoom, contrast, brightness, a small random
# erasure and a mild shear; the `fundus` preset (notebook 03) keeps flips and quarter turns, because a
# fundus photograph has no fixed up.

# %%
augment = preprocessing.augmentation("chest_xray", seed=seed)
print([layer.name for layer in augment.layers])
example = train_images[:1]
augmented = [np.asarray(augment(example, training=True))[0] for _ in range(7)]
flipped = np.asarray(keras.layers.RandomFlip("horizontal", seed=1)(np.repeat(example, 8, 0), training=True))
flipped = flipped[np.argmax(np.abs(flipped - example).reshape(8, -1).sum(1))]
viz.image_grid([example[0], *augmented, flipped], titles=["original"] + ["chest_xray preset"] * 7 + ["horizontal flip: heart on the right"], ncols=5)
plt.show()
assert not np.allclose(augmented[0], example[0]), "augmentation should change the image"

# %% [markdown]
# ## 10. The `tf.data` pipeline
#
# `image_dataset` decodes the PNGs in parallel, resizes them, caches the decoded images in memory,
# shuffles, batches, augments on the batch, and prefetches so that the next batch is ready while
# the model trains on this one. The second epoch reads from the cache.

# %%
train_ds = preprocessing.image_dataset(
    split["train"].path, split["train"][list(datasets.LABELS)].values,
    image_size=image_size, batch_size=batch_size, shuffle=True, augment=augment, seed=seed,
)
epoch_seconds = []
for epoch in range(2):
    start = time.perf_counter()
    count = sum(int(x.shape[0]) for x, _ in train_ds)
    epoch_seconds.append(time.perf_counter() - start)
    print(f"epoch {epoch + 1}: {count} images in {epoch_seconds[-1]:.2f} s = {count / epoch_seconds[-1]:.0f} images/s")
images_batch, labels_batch = next(iter(train_ds))
print("batch:", images_batch.shape, images_batch.dtype, labels_batch.shape)
assert images_batch.shape[1:] == (image_size, image_size, 1) and labels_batch.shape[1] == len(datasets.LABELS)
assert count == len(split["train"])

# %% [markdown]
# ## Summary
#
# * The NIH layout has traps (split header names, a trailing column, `Infiltrate` vs `Infiltration`):
#   one reader handles them, for the real files and the synthetic ones alike.
# * Split **by patient**, stratified so that every finding is in validation and test, and check it
#   with `assert_no_patient_overlap`. A random split inflated a nearest-neighbour classifier's AUC
#   here by the amount printed in section 6, with no better model behind it.
# * Normalisation statistics come from the training split only.
# * Weighted BCE with $w_p$ = negatives/total and $w_n$ = positives/total balances rare findings.
# * Augment with transformations a scanner could produce: no horizontal flips for chest X-rays.
#
# Next: notebook 02 trains DenseNet121 on these splits.
#
# ## Exercises
#
# Each exercise has a check you can run; as shipped, the cells use the helpers' answers so that the
# notebook runs top to bottom. Replace them with your own code.
#
# 1. **Your own patient split.** Write a split that assigns whole patients at random (no
#    stratification) and check it for leakage. Which findings go missing from validation?
# 2. **Leakage and k.** Re-run section 6 with `neighbours = 1` and `neighbours = 25`. Which k inflates
#    the leaky score most, and why?
# 3. **Weights by hand.** Compute `w_p` and `w_n` for Hernia yourself from `split["train"]`.
# 4. **Unsafe augmentation.** Add `"hflip"` to the chest preset (`preprocessing.augmentation((...))`)
#    and find, in the grid, the image whose heart moved.

# %%
# Exercise 1: replace with your own split of nih.entries by patient.
my_split = split
datasets.assert_no_patient_overlap(**my_split)
missing = {name: [lab for lab in datasets.LABELS if part[lab].sum() == 0] for name, part in my_split.items()}
print("Exercise 1 check passed: no patient overlap. Findings missing per split:", missing)

# %%
# Exercise 3: replace with your own computation.
my_w_p, my_w_n = w_p[datasets.LABELS.index("Hernia")], w_n[datasets.LABELS.index("Hernia")]
hernia = split["train"]["Hernia"]
assert np.isclose(my_w_p, (hernia == 0).mean()) and np.isclose(my_w_n, (hernia == 1).mean())
print(f"Exercise 3 check passed: Hernia w_p={my_w_p:.3f}, w_n={my_w_n:.3f}")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
