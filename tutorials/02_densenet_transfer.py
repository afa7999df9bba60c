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
# Transfer learning from CheXNet's starting point, an ImageNet DenseNet121 with a new fourteen-output
# sigmoid head, trained here with the weighted binary cross-entropy of notebook 01, first with the
# backbone frozen and then fine-tuned; evaluated per finding with ROC curves, AUCs with patient-level
# confidence intervals, and decision thresholds chosen on validation.
#
# **What CheXNet did, and what differs here.** Rajpurkar et al. fine-tuned the whole DenseNet121 end to
# end from ImageNet weights (no frozen phase), on 224 px images, and for their fourteen-finding model
# minimised the *unweighted* binary cross-entropy; their weighted loss belongs to the binary pneumonia
# task. They used their own random patient split (70/10/20), not the official NIH lists that Wang et
# al. 2017 used. This series weights the loss (so that a 0.5 threshold means something for rare
# findings), trains in two phases (frozen backbone, then the last blocks) to fit a CPU, uses smaller
# images outside the `full` profile, and in `full` trains and tests on the official split.
#
# **You will:** build a flat DenseNet121 classifier; see why unweighted BCE fails rare findings;
# freeze and unfreeze the backbone by block (BatchNormalization kept in inference mode); train with
# early stopping, checkpoints and a learning-rate schedule; plot fourteen ROC curves; choose
# per-class thresholds on validation and report sensitivity, specificity, PPV and NPV on test;
# save the model for notebooks 04 to 06 and load it back.
#
# **You need:** notebook 01's ideas (the data is prepared here again with the same helpers).
# ImageNet weights are used when they are in the Keras cache (`~/.keras/models/`); offline and
# without them the lab profile trains from random initialisation, which works on the synthetic
# findings but is slower to learn.
#
# **Run time on a 2-core CPU:** smoke about 1 min, lab about 7 min.
#
# Built from Georgieva's lecture (DenseNet, weighted BCE), Engelhard's lecture (replace the head,
# fine-tune, freeze early layers), the Deep MedIA report (per-disease thresholds, the AUC table
# against NIH), Rajpurkar et al., *CheXNet: Radiologist-Level Pneumonia Detection on Chest X-Rays with
# Deep Learning*, arXiv:1711.05225, 2017, and Wang et al., *ChestX-ray8: Hospital-scale Chest X-ray
# Database and Benchmarks*, CVPR 2017.

# %% [markdown]
# ## Setup

# %%
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers import config, datasets, exercises, losses, metrics, models, preprocessing, report, splits, synthetic

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
batch_size = cfg.pick(smoke=16, lab=16, full=32)
epochs_phase1 = cfg.pick(smoke=1, lab=9, full=5)
epochs_phase2 = cfg.pick(smoke=1, lab=3, full=25)
learning_rate = 1e-3
finetune_learning_rate = cfg.pick(smoke=2e-4, lab=2e-4, full=1e-4)
finetune_blocks = 2  # with ImageNet weights: unfreeze the last two dense blocks in phase 2
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # "official": NIH's lists, as Wang et al.
bootstrap_samples = cfg.pick(smoke=50, lab=200, full=1000)
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, image_size={image_size}, ImageNet weights={'yes' if use_imagenet else 'no (random init)'}, "
      f"split={split_method}, epochs {epochs_phase1}+{epochs_phase2}, bootstrap samples={bootstrap_samples}")
config.seed_everything(seed)
labels = list(datasets.LABELS)
cfg.models_dir.mkdir(parents=True, exist_ok=True)
model_path = cfg.models_dir / models.CLASSIFIER_FILE

# %% [markdown]
# ## 1. Data: the patient-level split of notebook 01
#
# To compare with Wang et al. 2017, train and test on their split: NIH's official lists
# (`test_list.txt`, and validation carved patient-level out of `train_val_list.txt`). Without the
# lists, or in the smaller profiles, the stratified patient split of notebook 01.

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
if len(nih.skipped):
    print(f"{len(nih.skipped)} rows left out (a partial copy: images absent); reading {len(nih.entries)} images")
if split_method == "official" and nih.official_split is not None:
    split = splits.official_split(nih, val_fraction=0.1, seed=seed)
    split_used = "official NIH lists"
else:
    if split_method == "official":
        print("This copy of the dataset has no official lists (train_val_list.txt, test_list.txt): "
              "using the patient split instead, so the comparison with Wang et al. is not like for like.")
    split = splits.patient_split(nih.entries, val_fraction=0.1, test_fraction=0.2, seed=seed)
    split_used = "stratified patient split 70/10/20"
if max_train_images:
    split["train"] = split["train"].iloc[:max_train_images]
augment = preprocessing.augmentation("chest_xray", seed=seed)


def pipeline(part, training=False):
    """A split as a tf.data pipeline of (images in [0, 1], 14 labels)."""
    return preprocessing.image_dataset(
        part.path, part[labels].values, image_size=image_size, batch_size=batch_size,
        shuffle=training, augment=augment if training else None, seed=seed,
    )


train_ds, val_ds, test_ds = pipeline(split["train"], True), pipeline(split["val"]), pipeline(split["test"])
y_train, y_val, y_test = (split[name][labels].values for name in ("train", "val", "test"))
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
# ## 3. The model: one flat DenseNet121
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

# %%
weights = "imagenet" if use_imagenet else None
strategy = models.strategy()  # MirroredStrategy over several GPUs, else the default strategy
mixed = models.use_mixed_precision()  # mixed_float16 on a GPU (the sigmoid outputs stay float32); off on a CPU
print(f"{strategy.num_replicas_in_sync} replica(s) ({type(strategy).__name__}), mixed precision: {mixed}")
with strategy.scope():  # the variables of the model and its optimizer live on every replica
    model = models.densenet121_classifier(len(labels), image_size, weights=weights, last_block=last_block)
feature_layer = models.feature_layer_name(model)
print(f"{len(model.layers)} layers, feature map '{feature_layer}': {model.get_layer(feature_layer).output.shape}")

# %% [markdown]
# ## 4. Training, phase 1
#
# With ImageNet weights, phase 1 freezes the backbone and trains only the new head: the random
# head would otherwise send large gradients into good features. Frozen BatchNormalization layers
# run in inference mode (Keras 3 does this for `trainable=False`), so their moving statistics stay
# those of ImageNet. Without ImageNet weights there is nothing to protect: phase 1 trains everything.

# %%
phase1_blocks = 0 if use_imagenet else 5
models.set_trainable_blocks(model, phase1_blocks, train_batchnorm=not use_imagenet)
trainable, frozen = models.count_parameters(model)
print(f"phase 1: {trainable:,} trainable and {frozen:,} frozen parameters")
with strategy.scope():
    model.compile(
        keras.optimizers.Adam(learning_rate), weighted_bce,
        metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(labels), name="auc")],
    )
callbacks = [
    keras.callbacks.ModelCheckpoint(model_path, monitor="val_auc", mode="max", save_best_only=True),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5),
    keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=4, restore_best_weights=True),
]
start = time.perf_counter()
history1 = model.fit(train_ds, validation_data=val_ds, epochs=epochs_phase1, callbacks=callbacks, shuffle=False, verbose=2)
print(f"phase 1: {time.perf_counter() - start:.0f} s")

# %% [markdown]
# ## 5. Training, phase 2: fine-tuning with a lower learning rate
#
# With ImageNet weights: unfreeze the last `finetune_blocks` dense blocks (BatchNormalization still
# in inference mode) and continue at a lower learning rate. Changing what is trainable needs a
# recompile. Without ImageNet weights nothing is frozen, so only the learning rate drops (and the
# compiled training step, expensive to build for DenseNet's 400-odd layers, is kept).

# %%
if use_imagenet:
    models.set_trainable_blocks(model, finetune_blocks)
    with strategy.scope():
        model.compile(
            keras.optimizers.Adam(finetune_learning_rate), weighted_bce,
            metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(labels), name="auc")],
        )
else:
    model.optimizer.learning_rate.assign(finetune_learning_rate)
trainable, frozen = models.count_parameters(model)
print(f"phase 2: {trainable:,} trainable and {frozen:,} frozen parameters, learning rate {finetune_learning_rate}")
callbacks[0].best = max(history1.history["val_auc"])  # keep the phase-1 checkpoint unless phase 2 beats it
start = time.perf_counter()
history2 = model.fit(train_ds, validation_data=val_ds, epochs=epochs_phase2, callbacks=callbacks, shuffle=False, verbose=2)
print(f"phase 2: {time.perf_counter() - start:.0f} s")

# %%
curves = pd.concat([pd.DataFrame(history1.history), pd.DataFrame(history2.history)], ignore_index=True)
curves.index += 1
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
curves[["loss", "val_loss"]].plot(ax=axes[0], title="weighted BCE", marker=".")
curves[["auc", "val_auc"]].plot(ax=axes[1], title="mean ROC AUC", marker=".")
for ax in axes:
    ax.axvline(len(history1.history["loss"]) + 0.5, color="grey", linestyle=":")
    ax.set_xlabel("epoch")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Save, and load back
#
# The checkpoint holds the best epoch by validation AUC. It loads back with `safe_mode=True` and
# no `custom_objects`: the weighted loss is registered as serialisable. Notebooks 04 to 06 reuse it.

# %%
model = models.load_classifier(model_path, labels)
val_scores = model.predict(val_ds, verbose=0)
test_scores = model.predict(test_ds, verbose=0)
print(f"loaded {model_path.name} ({model_path.stat().st_size / 1e6:.0f} MB); loss: {type(model.loss).__name__}")
# the loss's class weights, fitted on the training labels, must survive the round trip
assert np.allclose(model.loss.pos_weights, weighted_bce.pos_weights) and np.allclose(model.loss.neg_weights, weighted_bce.neg_weights)

# %% [markdown]
# ## 7. Evaluation: ROC AUC per finding, with 95% bootstrap intervals by patient
#
# A patient's images are not independent: follow-ups look alike and share findings. Resampling
# images would treat them as independent evidence and make the interval too narrow, so the bootstrap
# draws **patients** with replacement and keeps all of their images (`groups=` the patient IDs). A
# replicate with no positive (or no negative) for a finding cannot score it; `valid` counts the
# usable replicates, and with fewer than 90% of them usable the interval is left blank (nan) with a
# warning: such an interval would describe only the lucky replicates.

# %%
auc_table = metrics.bootstrap_auc(y_test, test_scores, labels, samples=bootstrap_samples, seed=seed,
                                  groups=split["test"]["patient_id"].to_numpy())
mean_auc = auc_table["ROC AUC"].mean()
print(f"mean ROC AUC on test: {mean_auc:.3f} ({split['test']['patient_id'].nunique()} patients, {len(y_test)} images); "
      f"an interval for {auc_table['low'].notna().sum()} of {len(labels)} findings")
auc_table.round(3)

# %%
curves_roc = metrics.roc_curves(y_test, test_scores, labels)
fig, axes = plt.subplots(2, 7, figsize=(17, 5.5), sharex=True, sharey=True)
for ax, label in zip(axes.flat, labels):
    if label in curves_roc:
        fpr, tpr = curves_roc[label]
        ax.plot(fpr, tpr)
        ax.set_title(f"{label}\nAUC {auc_table.loc[label, 'ROC AUC']:.2f}", fontsize=9)
    else:
        ax.set_title(f"{label}\n(no positives)", fontsize=9)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
fig.supxlabel("false positive rate (1 - specificity)")
fig.supylabel("sensitivity")
plt.tight_layout()
plt.show()

# %%
if cfg.profile == "lab" and cfg.synthetic:
    with_positives = auc_table.dropna(subset=["ROC AUC"])
    assert mean_auc >= 0.80, f"mean AUROC {mean_auc:.3f} should reach 0.80 on the synthetic findings"
    assert (with_positives["ROC AUC"] > 0.6).all(), with_positives["ROC AUC"].sort_values().head(3)

# %% [markdown]
# ## 8. Thresholds: chosen on validation, judged on test
#
# A probability becomes a decision at a threshold, one per finding. Choose it on the
# **validation** split (here by Youden's J: the point of the ROC curve farthest above the
# diagonal; `method="f1"` maximises F1 instead), never on test, then report on test what a
# clinician would ask: of the sick, how many found (sensitivity); of the healthy, how many cleared
# (specificity); of the alarms, how many real (PPV); of the all-clears, how many right (NPV).

# %%
thresholds = metrics.choose_thresholds(y_val, val_scores, labels, method="youden")
decisions = metrics.threshold_metrics(y_test, test_scores, thresholds, labels)
decisions.round(2)

# %% [markdown]
# The thresholds travel with the model: saved beside it as JSON, with the label order and the method,
# for the report of notebook 07, which decides "present" at these values and refuses a model without them.

# %%
thresholds_file = report.save_thresholds(model_path, thresholds, method="youden")
print(f"saved {thresholds_file.name}: {len(thresholds)} thresholds, chosen on validation by Youden's J")

# %% [markdown]
# The PPV of rare findings is low even when sensitivity and specificity look good: with 4% prevalence,
# a 90%-specific test raises mostly false alarms. That is the base rate, not a bug.

# %% [markdown]
# ## 9. Plain or weighted BCE: what it does to the rare findings
#
# Retraining the whole network twice would take too long here, so compare the two losses where
# they act most directly: two fresh heads on the trained network's pooled features, one trained with
# plain BCE, one with the weighted BCE, everything else equal. Look at the rarest findings.

# %%
features_model = keras.Model(model.input, model.get_layer("avg_pool").output)
plain_train_ds = preprocessing.image_dataset(split["train"].path, y_train, image_size=image_size, batch_size=batch_size)
train_features = features_model.predict(plain_train_ds, verbose=0)
test_features = features_model.predict(test_ds, verbose=0)


def train_head(loss):
    """A fresh sigmoid head on the frozen pooled features, trained with the given loss."""
    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input(train_features.shape[1:]), keras.layers.Dense(len(labels), activation="sigmoid")])
    head.compile(keras.optimizers.Adam(1e-3), loss)
    head.fit(train_features, y_train, epochs=cfg.pick(smoke=300, lab=60, full=60), batch_size=64, verbose=0)  # smoke: 48 images, one step an epoch
    return head.predict(test_features, verbose=0)


head_scores = {"plain BCE": train_head(plain_bce), "weighted BCE": train_head(weighted_bce)}
rarest = list(pd.Series(prevalence, index=labels).sort_values().index[:4])
at_half = {name: metrics.threshold_metrics(y_test, s, pd.Series(0.5, index=labels), labels) for name, s in head_scores.items()}
head_table = pd.DataFrame({
    **{f"AUC, {name}": metrics.roc_auc_per_class(y_test, s, labels) for name, s in head_scores.items()},
    **{f"sensitivity at 0.5, {name}": t["sensitivity"] for name, t in at_half.items()},
}).loc[rarest]
head_table.round(3)

# %%
sensitivity_gain = (head_table["sensitivity at 0.5, weighted BCE"] - head_table["sensitivity at 0.5, plain BCE"]).mean()
auc_change = (head_table["AUC, weighted BCE"] - head_table["AUC, plain BCE"]).abs().mean()
print(f"On the four rarest findings, weighting changes sensitivity at 0.5 by {sensitivity_gain:+.2f} on average "
      f"and the AUC by {auc_change:.3f} (mean absolute change).")
if np.isfinite(auc_change) and auc_change < abs(sensitivity_gain):
    print("The AUC, a ranking measure, moves less than the decisions at 0.5 do.")
rare_columns = [labels.index(name) for name in rarest]
rare_positive = y_test[:, rare_columns] == 1
mean_score = {name: float(s[:, rare_columns][rare_positive].mean()) for name, s in head_scores.items()}
print(f"mean score of the rare findings' positive test images: plain {mean_score['plain BCE']:.2f}, weighted {mean_score['weighted BCE']:.2f}")
# Plain BCE pulls a rare finding's scores towards its prevalence; the weighted loss lets its positives weigh as much as the negatives.
assert mean_score["weighted BCE"] > mean_score["plain BCE"] + 0.05, "the weighted loss should lift the rare findings' positives"
if cfg.profile != "smoke":  # 48 training images are too few to promise the decisions at 0.5
    assert sensitivity_gain > 0, "the weighted head should find more rare positives at threshold 0.5"

# %% [markdown]
# Plain BCE pushes the rare findings' probabilities towards their prevalence, so at 0.5 it finds
# almost none: the ranking (AUC) can survive, the decisions do not. Weighted BCE centres the
# probabilities so that 0.5 means something for every finding.

# %% [markdown]
# ## 10. Beside the published results
#
# On the real data (`full` profile), our AUCs sit beside Wang et al. 2017, CheXNet and its
# reproduction, and the Deep MedIA report (sources in `data_manifests/published_auroc.json`). They were
# not all measured on the same test images: only Wang et al. used the official split, so only that
# column is like for like with ours in `full`. On synthetic data the comparison means nothing, and the
# table shows ours alone.

# %%
published = metrics.published_auroc()
splits_used = pd.Series({**published.attrs["splits"], "ours": split_used}, name="test split")
if cfg.synthetic:
    comparison_table = auc_table[["ROC AUC"]].rename(columns={"ROC AUC": "ours (synthetic)"})
else:
    comparison_table = published.join(auc_table["ROC AUC"].rename("ours"))
splits_used.to_frame()

# %%
comparison_table.round(3)

# %% [markdown]
# ## Summary
#
# * DenseNet121 becomes a fourteen-finding classifier by replacing its head with fourteen sigmoids;
#   built flat, its inner feature maps stay reachable for Grad-CAM.
# * Plain BCE rewards predicting "no" for rare findings; the weighted BCE of notebook 01 does not.
# * Transfer learning in two phases: frozen backbone, then the last blocks at a lower learning rate,
#   BatchNormalization kept in inference mode.
# * Report per finding: ROC AUC with a patient-level bootstrap interval (a handful of positive
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
# 2. **Plain BCE.** Section 9 compared the losses on the head alone: retrain the whole model with
#    `keras.losses.BinaryCrossentropy()` and compare the sensitivity of the three rarest findings at 0.5. Which model finds more of them, and at what price?
#    (Discussion.)
# 3. **Thresholds.** Write Youden's threshold for one finding, then choose the thresholds with
#    `method="f1"` instead: which metric moves most on test, and why? (Why: discussion.)
# 4. **Resolution.** Set `last_block = 4` and rebuild: the cell below prints the feature map's shape and
#    the number of parameters. Notebook 05 shows what this does to Grad-CAM. (Discussion.)
# 5. **ImageNet.** On a machine with internet, run `keras.applications.DenseNet121(include_top=False)`
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
# Exercise 3: write youden_threshold(truth, scores) for one finding: the t maximising sensitivity + specificity - 1.
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
both = [j for j in range(len(labels)) if 0 < y_val[:, j].sum() < len(y_val)]  # J needs positives and negatives
mine = pd.Series({labels[j]: youden_threshold(y_val[:, j], val_scores[:, j]) for j in both}).reindex(labels)


def validation_j(cuts):
    """Youden's J per finding on validation at the given thresholds."""
    table = metrics.threshold_metrics(y_val, val_scores, cuts, labels)
    return table.sensitivity + table.specificity - 1


shortfall = (validation_j(thresholds) - validation_j(mine)).dropna()
assert (shortfall <= 1e-12).all(), f"section 8's threshold beats yours on validation J for {list(shortfall[shortfall > 1e-12].index)}"
f1_thresholds = metrics.choose_thresholds(y_val, val_scores, labels, method="f1")
moved = (metrics.threshold_metrics(y_test, test_scores, f1_thresholds, labels) - decisions)[
    ["sensitivity", "specificity", "PPV", "NPV"]].abs().mean()
print(f"your Youden thresholds reach section 8's J on validation for {len(both)} findings; with F1 thresholds instead, "
      f"the metric that moves most on test is {moved.idxmax()} (mean change {moved.max():.3f})")

# %%
# Exercise 4: the cut model's feature map and size, beside the full model's.
cut = models.densenet121_classifier(len(labels), image_size, weights=None, last_block=4)
print(f"last_block=4: {cut.count_params():,} parameters, feature map {cut.get_layer('pool4_relu').output.shape[1:3]}; "
      f"last_block=5: {model.count_params():,} parameters, feature map {model.get_layer(feature_layer).output.shape[1:3]}")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
