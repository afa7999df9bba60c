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
# # 02 · DenseNet121 for fourteen chest X-ray findings
#
# **Description:** Train a DenseNet121 for the fourteen findings and judge it: AUROC per finding with patient-level intervals, thresholds chosen on validation.<br>
# **Needs:** notebook 01's split and loss ideas; it saves the classifier that 04 to 07 and 09 load.<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 02_densenet_transfer`.
#
# The classifier end to end: a DenseNet121 pretrained on a source task (ImageNet when its weights are
# in the Keras cache, otherwise a larger synthetic chest set with other labels that the series makes
# offline) becomes the fourteen-finding classifier, trained with the weighted binary cross-entropy of
# notebook 01, first with the backbone frozen and then fine-tuned; evaluated per finding with ROC
# curves, AUROCs with patient-level confidence intervals, and decision thresholds chosen on validation.
# Notebook 02b measures the choices taken here on trust: what the pretraining is worth, how deep to
# fine-tune, what DenseNet's dense blocks do, and weighting against oversampling.
#
# **What CheXNet did, and what differs here.** Rajpurkar et al. fine-tuned the whole DenseNet121 end to
# end from ImageNet weights (no frozen phase), on 224 px images, and for their fourteen-finding model
# minimised the *unweighted* binary cross-entropy; their weighted loss belongs to the binary pneumonia
# task. They used their own random patient split (70/10/20), not the official NIH lists that Wang et
# al. 2017 used. This series weights the loss (so that a 0.5 threshold means something for rare
# findings), trains in two phases (frozen backbone, then the last blocks) to fit a CPU, uses smaller
# images outside the `full` profile, and in `full` trains and tests on the official split.
#
# **You will:** see why unweighted BCE fails rare findings; pretrain a backbone on a source task (or
# load it); build a flat DenseNet121 classifier from it; freeze and unfreeze it by block
# (BatchNormalization kept in inference mode); plot fourteen ROC curves; choose per-finding thresholds
# on validation and report sensitivity, specificity, PPV and NPV on test; save the model, its
# thresholds and its model card for notebooks 04 to 07 and 09.
#
# **You need:** notebook 01's ideas (the data is prepared here again with the same helpers).
# ImageNet weights are used when they are in the Keras cache (`~/.keras/models/`); offline the source
# is the synthetic source task of section 3, pretrained once and cached under the models folder (the
# first run pays for it and prints its cost; later runs load it).
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `02_densenet_transfer` (smoke and
# lab profiles, measured on a 2-core CPU); the lab time is with the source backbone cached (`make prepare`
# pretrains it once).
#
# Built from Georgieva's lecture (DenseNet, vanishing gradients, resampling or weighting), Engelhard's
# lecture (replace the head, fine-tune, freeze early layers; more data, fine-tune more layers), the Deep MedIA report (per-disease thresholds, the AUC table
# against NIH), Rajpurkar et al., *CheXNet: Radiologist-Level Pneumonia Detection on Chest X-Rays with
# Deep Learning*, arXiv:1711.05225, 2017, and Wang et al., *ChestX-ray8: Hospital-scale Chest X-ray
# Database and Benchmarks*, CVPR 2017; Huang et al., *Densely Connected Convolutional Networks*, CVPR
# 2017; Raghu et al., *Transfusion: Understanding Transfer Learning for Medical Imaging*, NeurIPS 2019.

# %% [markdown]
# ## Setup

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

from helpers import config, datasets, losses, metrics, model_card, models, preprocessing, side_files, splits, synthetic, transfer
from helpers.exercises import densenet_transfer as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")  # quiet the retracing notices that every new small model triggers
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # a partial NIH copy is fine: rows whose image is absent are left out and counted ("all": refuse)
image_size = cfg.pick(smoke=64, lab=128, full=224)
last_block = 5  # 5: all of DenseNet121 (features input/32 wide); 4: cut after block 4 (input/16)
use_imagenet = cfg.pick(smoke=False, lab=models.imagenet_weights_path().is_file(), full=True)
max_train_images = cfg.pick(smoke=48, lab=None, full=None)  # None: the whole training split
batch_size = cfg.pick(smoke=48, lab=16, full=32)  # smoke: its 48 training images in one batch, one eager step an epoch
epochs_phase1 = cfg.pick(smoke=30, lab=100, full=20)  # the head alone, on features computed once: an epoch costs milliseconds
epochs_phase2 = cfg.pick(smoke=1, lab=2, full=25)
learning_rate = 1e-3
finetune_learning_rate = cfg.pick(smoke=2e-4, lab=2e-4, full=1e-4)
finetune_blocks = 5  # phase 2 unfreezes the last blocks: 5 = all (BatchNorm stays in inference mode)
run_eagerly = cfg.pick(smoke=True, lab=False, full=False)  # a few steps: cheaper than tracing DenseNet's training graph
sweep_size = cfg.pick(smoke=32, lab=64, full=128)  # image size of the source pretraining (and of notebook 02b)
source_patients = cfg.pick(smoke=10, lab=600, full=1000)  # the synthetic source set (about 3 images a patient)
source_epochs = cfg.pick(smoke=1, lab=6, full=10)
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # "official": NIH's lists, as Wang et al.
bootstrap_samples = cfg.pick(smoke=50, lab=200, full=1000)
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, image_size={image_size}, source={'ImageNet' if use_imagenet else 'synthetic source task'}, "
      f"split={split_method}, epochs {epochs_phase1}+{epochs_phase2}, bootstrap samples={bootstrap_samples}, eager={run_eagerly}")
print(f"source backbone at {sweep_size} px: {source_patients} patients x {source_epochs} epochs, unless cached")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)
cfg.models_dir.mkdir(parents=True, exist_ok=True)
model_path = cfg.models_dir / models.CLASSIFIER_FILE

# %% [markdown]
# ## 1. Data: the patient-level split
#
# To compare with Wang et al. 2017, train and test on their split: NIH's official lists
# (`test_list.txt`, and validation carved patient-level out of `train_val_list.txt`, stratified as in
# notebook 01); the `full` profile does. The smaller profiles use notebook 01's stratified patient
# split: at their sizes a list would leave a rare finding with one patient outside the test list, and
# validation without it. The lists matter beyond the comparison: every image of NIH's box file is in
# the test list (notebook 06 relies on it). `splits.classifier_split` is this step, which notebooks 04 to
# 07 repeat to find the same test films; without the lists it falls back on the patient split and
# says so.

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
if len(nih.skipped):
    print(f"{len(nih.skipped)} rows left out (a partial copy: images absent); reading {len(nih.entries)} images")
split, split_used = splits.classifier_split(nih, split_method, val_fraction=0.1, test_fraction=0.2, seed=seed)
if max_train_images:
    split["train"] = split["train"].iloc[:max_train_images]
augment = preprocessing.augmentation("chest_xray", seed=seed)


def pipeline(part, training=False):
    """A split as a tf.data pipeline of (images in [0, 1], 14 labels)."""
    return preprocessing.image_dataset(
        part.path, part[finding_names].values, image_size=image_size, batch_size=batch_size,
        shuffle=training, augment=augment if training else None, seed=seed,
    )


train_ds, val_ds, test_ds = pipeline(split["train"], True), pipeline(split["val"]), pipeline(split["test"])
y_train, y_val, y_test = (split[name][finding_names].values for name in ("train", "val", "test"))
print(f"{split_used}:", {name: len(part) for name, part in split.items()})

# %% [markdown]
# ## 2. Why the loss must be weighted
#
# A model that answers "no" to every finding is right most of the time. Score two fixed sets of
# predictions on the training labels: a lazy model that predicts each finding's prevalence for every
# image, and a useful one that ranks every true positive above every negative but is unsure (0.6 for
# positives, 0.4 for negatives). Plain BCE prefers the lazy model; the weighted BCE does not.

# %%
prevalence = y_train.mean(axis=0)
lazy = np.tile(prevalence, (len(y_train), 1)).astype("float32")
useful = np.where(y_train == 1, 0.6, 0.4).astype("float32")
plain_bce = keras.losses.BinaryCrossentropy()
weighted_bce = losses.WeightedBinaryCrossentropy.from_labels(y_train)
loss_demo = pd.DataFrame(
    {"plain BCE": [float(plain_bce(y_train, lazy)), float(plain_bce(y_train, useful))],
     "weighted BCE": [float(weighted_bce(y_train, lazy)), float(weighted_bce(y_train, useful))]},
    index=["lazy: always the prevalence", "useful: positives ranked first"],
)
loss_demo.round(4)

# %%
assert loss_demo["plain BCE"].idxmin() == "lazy: always the prevalence"
assert loss_demo["weighted BCE"].idxmin() == "useful: positives ranked first"
print("Plain BCE rewards the lazy answer; weighted BCE rewards the useful one.")

# %% [markdown]
# ## 3. The model: one flat DenseNet121, started from a pretrained backbone
#
# `models.densenet121_classifier` takes grey images in [0, 1], repeats them to three channels,
# applies the ImageNet statistics inside the model (so a saved model carries its preprocessing),
# runs DenseNet121 without its top, averages the last feature map and ends in fourteen sigmoids.
# The backbone's layers sit directly in the model's graph, not nested as one layer: Grad-CAM in
# notebook 05 needs to read the inner feature maps.
#
# **Resolution.** The last feature map is input/32 wide: 4x4 at 128 px, 7x7 at 224 px. That grid is
# all the resolution Grad-CAM and the boxes of notebook 06 will get. `last_block=4` cuts the network
# after dense block 4 (input/16: 8x8 at 128 px): twice the heatmap resolution, fewer parameters,
# but a less abstract feature map.
#
# **The starting point.** CheXNet started from ImageNet. Offline there is no ImageNet file, so the
# series makes its own source task: a larger synthetic chest set drawn from another seed (other
# synthetic people: their anatomy and findings come from that seed, although the generator numbers
# patients from 1 in both sets, so no source patient is one of ours), labelled not with the fourteen
# findings but with five coarse groups (`transfer.SOURCE_GROUPS`: any finding, opacity, focal lesion,
# pleura, heart and lung structure). It is a different task on related images, as ImageNet is a
# different task on unrelated ones; closer to the target than ImageNet. (Raghu et al. found
# that ImageNet pretraining helps medical images less than often assumed, mostly by speeding up training.) DenseNet121
# is pretrained on it once, at `sweep_size` px, and cached in the models folder; with ImageNet
# weights in the Keras cache, the same cell uses ImageNet instead.

# %%
backbone, source_info = transfer.pretrained_backbone(
    cfg, image_size=sweep_size, patients=source_patients, epochs=source_epochs, batch_size=32,
    imagenet=use_imagenet, run_eagerly=run_eagerly)
how = "loaded from the cache" if source_info["from_cache"] else f"pretrained on {source_info['images']} source images"
print(f"source: {source_info['source']}, {how} in {source_info['seconds']:.0f} s")

# %%
weights = "imagenet" if use_imagenet else None
strategy = models.strategy()  # MirroredStrategy over several GPUs, else the default strategy
mixed = models.use_mixed_precision()  # mixed_float16 on a GPU (the sigmoid outputs stay float32); off on a CPU
print(f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__}), mixed precision: {mixed}")
with strategy.scope():  # the variables of the model and its optimizer live on every replica
    model = models.densenet121_classifier(len(finding_names), image_size, weights=weights, last_block=last_block)
    if not use_imagenet:  # every layer but the fourteen-output head comes from the source task
        copied = transfer.copy_backbone(backbone, model)
        print(f"{copied} layers copied from the source backbone (pretrained at {sweep_size} px; the weights do not depend on the image size)")
feature_layer = models.feature_layer_name(model)
print(f"{len(model.layers)} layers, feature map '{feature_layer}': {model.get_layer(feature_layer).output.shape}")

# %% [markdown]
# ## 4. Training, phase 1: the head on features computed once
#
# Phase 1 freezes the pretrained backbone and trains only the new head: the random head would
# otherwise send large gradients into good features. A frozen backbone gives the same features for
# the same image every epoch, so compute them once and train the head on them: the "feature
# extraction" route of the Keras transfer-learning guide. It costs one pass over the images instead of
# one per epoch, so the head gets `epochs_phase1` epochs in seconds; the price is no augmentation in
# this phase. The head trained here is the model's own `predictions` layer, shared with a two-layer
# model on the features. (Frozen BatchNormalization layers run in inference mode: Keras 3 does this
# for `trainable=False`, so their moving statistics stay those of the source task.)

# %%
models.set_trainable_blocks(model, 0)
trainable, frozen = models.count_parameters(model)
print(f"phase 1: {trainable:,} trainable and {frozen:,} frozen parameters")
start = time.perf_counter()
features_model = keras.Model(model.input, model.get_layer("avg_pool").output)
features_model.run_eagerly = run_eagerly  # a few dozen images: cheaper than tracing the prediction step
plain_train_ds = preprocessing.image_dataset(split["train"].path, y_train, image_size=image_size, batch_size=batch_size)
train_features, val_features, test_features = (features_model.predict(ds, verbose=0) for ds in (plain_train_ds, val_ds, test_ds))
print(f"pooled features of {len(train_features) + len(val_features) + len(test_features)} images: "
      f"{train_features.shape[1]} numbers each, in {time.perf_counter() - start:.0f} s")


def auc_metric():
    """Keras's mean AUROC over the fourteen findings, the number the checkpoint watches."""
    return keras.metrics.AUC(multi_label=True, num_labels=len(finding_names), name="auc")


keras.utils.set_random_seed(seed)
head = keras.Sequential([keras.Input(train_features.shape[1:]), model.get_layer("predictions")])  # the model's own head layer
with strategy.scope():
    head.compile(keras.optimizers.Adam(learning_rate), weighted_bce, metrics=[auc_metric()])
start = time.perf_counter()
history1 = head.fit(train_features, y_train, validation_data=(val_features, y_val), epochs=epochs_phase1,
                    batch_size=32, verbose=0)
with strategy.scope():  # compiled before saving, so that the checkpoint carries its loss if phase 2 never beats it
    model.compile(keras.optimizers.Adam(learning_rate), weighted_bce, metrics=[auc_metric()])
model.save(model_path)  # the checkpoint phase 2 must beat
print(f"phase 1: {epochs_phase1} epochs in {time.perf_counter() - start:.0f} s; "
      f"validation AUC {history1.history['val_auc'][-1]:.3f}, saved to {model_path.name}")

# %% [markdown]
# ## 5. Training, phase 2: fine-tuning with a lower learning rate
#
# Unfreeze the last `finetune_blocks` blocks (5: all of them; BatchNormalization still in inference
# mode) and continue at a lower learning rate, now on augmented images. Changing what is trainable
# needs a recompile. The checkpoint keeps the best epoch by validation AUC, phase 1's head included.
# Notebook 02b measures how deep to fine-tune at a smaller label budget; with all the training labels
# here, the lecture's rule (more data, fine-tune more layers) points to all of them.

# %%
models.set_trainable_blocks(model, finetune_blocks)
with strategy.scope():
    model.compile(keras.optimizers.Adam(finetune_learning_rate), weighted_bce, metrics=[auc_metric()], run_eagerly=run_eagerly)
trainable, frozen = models.count_parameters(model)
print(f"phase 2: {trainable:,} trainable and {frozen:,} frozen parameters, learning rate {finetune_learning_rate}")
callbacks = [
    keras.callbacks.ModelCheckpoint(model_path, monitor="val_auc", mode="max", save_best_only=True,
                                    initial_value_threshold=history1.history["val_auc"][-1]),  # keep phase 1's unless beaten
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5),
    keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=4, restore_best_weights=True),
]
start = time.perf_counter()
history2 = model.fit(train_ds, validation_data=val_ds, epochs=epochs_phase2, callbacks=callbacks, shuffle=False, verbose=2)
print(f"phase 2: {time.perf_counter() - start:.0f} s")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for ax, history, title in ((axes[0], history1, "phase 1: the head on cached features"), (axes[1], history2, "phase 2: fine-tuning")):
    curves = pd.DataFrame(history.history, index=np.arange(1, len(history.history["loss"]) + 1))
    curves[["loss", "val_loss"]].plot(ax=ax, marker="." if len(curves) < 20 else None)
    ax.set(title=title, xlabel="epoch", ylabel="weighted BCE")
plt.tight_layout()
plt.show()
print("validation AUC by phase-2 epoch:", np.round(history2.history["val_auc"], 3))

# %% [markdown]
# ## 6. Save, and load back
#
# The checkpoint holds the best epoch by validation AUC. It loads back with `safe_mode=True` and
# no `custom_objects`: the weighted loss is registered as serialisable. Notebooks 04 to 06 reuse it.

# %%
model = models.load_classifier(model_path, finding_names)
model.run_eagerly = run_eagerly  # two predictions of a few dozen images: cheaper than tracing
val_scores = model.predict(val_ds, verbose=0)
test_scores = model.predict(test_ds, verbose=0)
print(f"loaded {model_path.name} ({model_path.stat().st_size / 1e6:.0f} MB); loss: {type(model.loss).__name__}")
# the loss's class weights, fitted on the training labels, must survive the round trip
assert np.allclose(model.loss.pos_weights, weighted_bce.pos_weights) and np.allclose(model.loss.neg_weights, weighted_bce.neg_weights)

# %% [markdown]
# ## 7. Evaluation: AUROC per finding, with 95% bootstrap intervals by patient
#
# A patient's images are not independent: follow-ups look alike and share findings. Resampling
# images would treat them as independent evidence and make the interval too narrow, so the bootstrap
# draws **patients** with replacement and keeps all of their images (`groups=` the patient IDs). A
# replicate with no positive (or no negative) for a finding cannot score it; `valid` counts the
# usable replicates, and with fewer than 90% of them usable the interval is left blank (nan) with a
# warning: such an interval would describe only the lucky replicates.

# %%
auc_table = metrics.bootstrap_auc(y_test, test_scores, finding_names, samples=bootstrap_samples, seed=seed,
                                  groups=split["test"]["patient_id"].to_numpy())
mean_auc = auc_table["AUROC"].mean()
print(f"mean AUROC on test: {mean_auc:.3f} ({split['test']['patient_id'].nunique()} patients, {len(y_test)} images); "
      f"an interval for {auc_table['low'].notna().sum()} of {len(finding_names)} findings")
auc_table.round(3)

# %%
curves_roc = metrics.roc_curves(y_test, test_scores, finding_names)
fig, axes = plt.subplots(2, 7, figsize=(17, 5.5), sharex=True, sharey=True)
for ax, label in zip(axes.flat, finding_names):
    if label in curves_roc:
        fpr, tpr = curves_roc[label]
        ax.plot(fpr, tpr)
        ax.set_title(f"{label}\nAUC {auc_table.loc[label, 'AUROC']:.2f}", fontsize=9)
    else:
        ax.set_title(f"{label}\n(no positives)", fontsize=9)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
fig.supxlabel("false positive rate (1 - specificity)")
fig.supylabel("sensitivity")
plt.tight_layout()
plt.show()

# %%
if cfg.profile == "lab" and cfg.synthetic:
    judged = auc_table[auc_table["positives"] >= 10]  # with fewer positive images one AUC says little (see its interval)
    print(f"judged one by one: {len(judged)} findings with at least 10 positive test images; "
          f"too few to judge alone: {', '.join(auc_table.index.difference(judged.index)) or 'none'}")
    assert mean_auc >= 0.80, f"mean AUROC {mean_auc:.3f} should reach 0.80 on the synthetic findings"
    assert (judged["AUROC"] > 0.6).all(), judged["AUROC"].sort_values().head(3)

# %% [markdown]
# ## 8. Thresholds: chosen on validation, judged on test
#
# A probability becomes a decision at a threshold, one per finding. Choose it on the
# **validation** split (here by Youden's J: the point of the ROC curve farthest above the
# diagonal; `method="f1"` maximises F1 instead), never on test, then report on test what a
# clinician would ask: of the sick, how many found (sensitivity); of the healthy, how many cleared
# (specificity); of the alarms, how many real (PPV); of the all-clears, how many right (NPV).

# %%
thresholds = metrics.choose_thresholds(y_val, val_scores, finding_names, method="youden")
decisions = metrics.threshold_metrics(y_test, test_scores, thresholds, finding_names)
decisions.round(2)

# %% [markdown]
# The thresholds travel with the model: saved beside it as JSON, with the label order and the method,
# for the report of notebook 07, which decides "present" at these values and refuses a model without them.

# %%
thresholds_file = side_files.save_thresholds(model_path, thresholds, method="youden")
print(f"saved {thresholds_file.name}: {len(thresholds)} thresholds, chosen on validation by Youden's J")

# %% [markdown]
# So does a **model card**: what the model was trained on (synthetic images, or the real copy and
# where it came from), the profile, the split, the image size, and per finding the validation and test
# AUROC with their patient-level intervals, with the versions and the date. Every report of
# notebook 07 carries it, and a model trained on synthetic images applied to a real radiograph says
# "not for clinical use". Notebooks 04 and 06 add what they measure to it.

# %%
val_auc_table = metrics.bootstrap_auc(y_val, val_scores, finding_names, samples=bootstrap_samples, seed=seed,
                                      groups=split["val"]["patient_id"].to_numpy())
training_data = {
    "kind": "synthetic" if cfg.synthetic else "real",
    "source": "helpers.synthetic (NIH ChestX-ray14 layout)" if cfg.synthetic else "NIH ChestX-ray14 (helpers/data/manifests/nih.md)",
    "copy": None if cfg.synthetic else str(nih.root), "images": len(split["train"]),
    "patients": int(split["train"]["patient_id"].nunique()), "rows_left_out": len(nih.skipped),
}
card_file = model_card.write_card(
    model_path, training_data=training_data, profile=cfg.profile, split=split_used, image_size=image_size, labels=finding_names,
    metrics=model_card.metrics_table(val_auc_table, auc_table),
    thresholds={"method": "youden", "chosen_on": "validation", "file": thresholds_file.name},
    architecture="DenseNet121", pretrained="ImageNet" if use_imagenet else "synthetic source task",
    split_sizes={name: len(part) for name, part in split.items()}, seed=seed,
)
print(model_card.summary_line(model_card.read_card(model_path), real_input=False), f"(saved {card_file.name})")

# %% [markdown]
# The PPV of rare findings is low even when sensitivity and specificity look good: with 4% prevalence,
# a 90%-specific test raises mostly false alarms. That is the base rate, not a bug.

# %% [markdown]
# ## 9. Beside the published results
#
# On the real data (`full` profile), our AUCs sit beside Wang et al. 2017, CheXNet and its
# reproduction, and the Deep MedIA report (sources in `helpers/data/manifests/published_auroc.json`). They were
# not all measured on the same test images: only Wang et al. used the official split, so only that
# column is like for like with ours in `full`. On synthetic data the comparison means nothing, and the
# table shows ours alone.

# %%
published = metrics.published_auroc()
splits_used = pd.Series({**published.attrs["splits"], "ours": split_used}, name="test split")
if cfg.synthetic:
    comparison_table = auc_table[["AUROC"]].rename(columns={"AUROC": "ours (synthetic)"})
else:
    comparison_table = published.join(auc_table["AUROC"].rename("ours"))
splits_used.to_frame()

# %%
comparison_table.round(3)

# %% [markdown]
# ## Summary
#
# * DenseNet121 becomes a fourteen-finding classifier by replacing its head with fourteen sigmoids;
#   built flat, its inner feature maps stay reachable for Grad-CAM.
# * Plain BCE rewards predicting "no" for rare findings; the weighted BCE of notebook 01 does not.
# * Transfer learning in two phases: the head alone on the frozen backbone's features, computed once,
#   then the last blocks at a lower learning rate on augmented images, BatchNormalization kept in
#   inference mode. Offline, the backbone comes from a source task the series
#   makes (coarse finding groups on a larger synthetic set from another seed), pretrained once and cached.
# * What the pretraining is worth, how deep to fine-tune, why DenseNet trains, and weighting against
#   oversampling are measured in notebook 02b.
# * Report per finding: AUROC with a patient-level bootstrap interval (a handful of positive
#   patients means a wide one, or none), and thresholds chosen on validation with sensitivity,
#   specificity, PPV and NPV on test.
# * Compare with published numbers only on the same split: Wang et al. used the official lists,
#   CheXNet its own random patient split, with an unweighted loss and end-to-end fine-tuning.
# * The model is saved as `.keras` and loads back safely; notebooks 04 to 06 start from it.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's data. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **Weighted BCE by hand.** Write the loss of section 2 in NumPy and compare it with the model's
#    loss on the validation scores.
# 2. **Thresholds.** Write Youden's threshold for one finding, then choose the thresholds with
#    `method="f1"` instead: which metric moves most on test, and why? (Why: discussion.)
# 3. **Resolution.** Set `last_block = 4` and rebuild: the cell below prints the feature map's shape and
#    the number of parameters. Notebook 05 shows what this does to Grad-CAM. (Discussion.)
# 4. **ImageNet.** On a machine with internet, run `keras.applications.DenseNet121(include_top=False)`
#    once, copy `~/.keras/models/` here, and re-run: how many epochs does phase 1 need now? (Discussion.)

# %%
# Exercise 1: write bce_by_hand(y, p, w_p, w_n), the weighted BCE of a batch in NumPy: one number.
def bce_by_hand(y, p, w_p, w_n):
    """-(w_p y log p + w_n (1 - y) log(1 - p)), p clipped to [1e-7, 1 - 1e-7], averaged over findings and images."""
    ### BEGIN SOLUTION
    y, q = np.asarray(y, np.float64), np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return float(np.mean(-(np.asarray(w_p) * y * np.log(q) + np.asarray(w_n) * (1 - y) * np.log(1 - q))))
    ### END SOLUTION


exercises.check_bce_by_hand(bce_by_hand)

# %%
mine = bce_by_hand(y_val, val_scores, weighted_bce.pos_weights, weighted_bce.neg_weights)
theirs = float(weighted_bce(y_val.astype("float32"), val_scores))
print(f"validation scores: your weighted BCE {mine:.5f}, losses.WeightedBinaryCrossentropy {theirs:.5f}")
assert abs(mine - theirs) <= 1e-4 * max(1.0, theirs), "your loss passed the check but differs from the model's on validation"

# %%
# Exercise 2: write youden_threshold(truth, scores) for one finding: the t maximising sensitivity + specificity - 1.
def youden_threshold(truth, scores):
    """A finding is called present when its score is >= t."""
    ### BEGIN SOLUTION
    truth, scores = np.asarray(truth, bool), np.asarray(scores, np.float64)
    cuts = np.unique(scores)
    sensitivity = np.array([(scores[truth] >= t).mean() for t in cuts])
    specificity = np.array([(scores[~truth] < t).mean() for t in cuts])
    return float(cuts[np.argmax(sensitivity + specificity - 1)])
    ### END SOLUTION


exercises.check_youden_threshold(youden_threshold)

# %%
both = [j for j in range(len(finding_names)) if 0 < y_val[:, j].sum() < len(y_val)]  # J needs positives and negatives
mine = pd.Series({finding_names[j]: youden_threshold(y_val[:, j], val_scores[:, j]) for j in both}).reindex(finding_names)


def validation_j(cuts):
    """Youden's J per finding on validation at the given thresholds."""
    table = metrics.threshold_metrics(y_val, val_scores, cuts, finding_names)
    return table.sensitivity + table.specificity - 1


shortfall = (validation_j(thresholds) - validation_j(mine)).dropna()
assert (shortfall <= 1e-12).all(), f"section 8's threshold beats yours on validation J for {list(shortfall[shortfall > 1e-12].index)}"
f1_thresholds = metrics.choose_thresholds(y_val, val_scores, finding_names, method="f1")
moved = (metrics.threshold_metrics(y_test, test_scores, f1_thresholds, finding_names) - decisions)[
    ["sensitivity", "specificity", "PPV", "NPV"]].abs().mean()
print(f"your Youden thresholds reach section 8's J on validation for {len(both)} findings; with F1 thresholds instead, "
      f"the metric that moves most on test is {moved.idxmax()} (mean change {moved.max():.3f})")

# %%
# Exercise 3: the model cut after block 4, from the trained model's own layers (no new weights), beside the full model.
trunk = keras.Model(model.input, model.get_layer("pool4_relu").output)
cut_parameters = trunk.count_params() + trunk.output.shape[-1] * len(finding_names) + len(finding_names)  # + a new head on block 4
print(f"last_block=4: {cut_parameters:,} parameters, feature map {trunk.output.shape[1:3]}; "
      f"last_block=5: {model.count_params():,} parameters, feature map {model.get_layer(feature_layer).output.shape[1:3]}")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
