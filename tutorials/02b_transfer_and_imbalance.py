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
# # 02b · Transfer learning and class imbalance, measured
#
# **Description:** Measure what a pretrained backbone is worth at three label budgets and how deep to fine-tune it, see why DenseNet's gradients survive its depth, and compare plain BCE, weighted BCE and oversampling on the rare findings.<br>
# **Needs:** notebook 02's ideas and its cached source backbone (without it, this notebook pretrains the backbone first and prints what that cost); no later notebook needs this one.<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 02b_transfer_and_imbalance`.
#
# Notebook 02 built the classifier on choices it took on trust: start from a pretrained backbone,
# fine-tune all of it once the head is trained, weight the loss, use DenseNet at all. This notebook
# measures each of them on the same synthetic chest X-rays, at a smaller image size (`sweep_size`) so
# that every regime trains in minutes on a CPU: DenseNet's dense blocks read off the Keras model and
# their gradients against a plain deep CNN; from scratch, frozen features and fine-tuned at 10%, 30%
# and 100% of the training labels; how many blocks to fine-tune; and plain BCE, weighted BCE and
# oversampling in `tf.data` on the four rarest findings.
#
# **You will:** read DenseNet's dense blocks, growth rate and transition layers off the Keras model and
# measure its gradients against a plain deep CNN; measure what pretraining is worth (from scratch,
# frozen features, fine-tuned) at three label budgets, and how deep to fine-tune; compare plain BCE,
# weighted BCE and oversampling on the rare findings.
#
# **You need:** notebook 02 (its source backbone is cached in the models folder; `make prepare`
# caches it too). ImageNet weights are used instead when they are in the Keras cache
# (`~/.keras/models/`), as in notebook 02.
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `02b_transfer_and_imbalance` (smoke and
# lab profiles, measured on a 2-core CPU), with notebook 02's source backbone cached.
#
# Built from Georgieva's lecture (DenseNet, vanishing gradients, resampling or weighting), Engelhard's
# lecture (replace the head, fine-tune, freeze early layers; more data, fine-tune more layers), the
# Deep MedIA report (a fixed number of images per class); Huang et al., *Densely Connected
# Convolutional Networks*, CVPR 2017; Yosinski et al., *How transferable are features in deep neural
# networks?*, NeurIPS 2014; Raghu et al., *Transfusion: Understanding Transfer Learning for Medical
# Imaging*, NeurIPS 2019.

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

from helpers import config, datasets, losses, metrics, models, preprocessing, splits, synthetic, transfer
from helpers.exercises import transfer_and_imbalance as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")  # quiet the retracing notices that every new small model triggers
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # a partial NIH copy is fine: rows whose image is absent are left out and counted ("all": refuse)
use_imagenet = cfg.pick(smoke=False, lab=models.imagenet_weights_path().is_file(), full=True)
max_train_images = cfg.pick(smoke=48, lab=None, full=None)  # None: the whole training split
batch_size = cfg.pick(smoke=48, lab=16, full=32)
learning_rate = 1e-3
finetune_learning_rate = cfg.pick(smoke=2e-4, lab=2e-4, full=1e-4)
run_eagerly = cfg.pick(smoke=True, lab=False, full=False)  # a few steps: cheaper than tracing DenseNet's training graph
sweep_size = cfg.pick(smoke=32, lab=64, full=128)  # as notebook 02: the size its source backbone was pretrained at
source_patients = cfg.pick(smoke=10, lab=600, full=1000)  # as notebook 02, so that its cached backbone is found
source_epochs = cfg.pick(smoke=1, lab=6, full=10)
label_budgets = cfg.pick(smoke=(1.0,), lab=(0.1, 0.3, 1.0), full=(0.1, 0.3, 1.0))  # shares of the training labels, whole patients
sweep_epochs = cfg.pick(smoke=1, lab=2, full=10)
freeze_budget = cfg.pick(smoke=1.0, lab=0.3, full=0.3)  # the label budget of the freeze-depth sweep (one of label_budgets)
freeze_depths = cfg.pick(smoke=(1,), lab=(1,), full=(1, 2, 3))  # dense blocks fine-tuned between "head only" and "all"
pretraining_margin = 0.05  # AUROC by which pretraining must beat scratch at the smallest budget
oversample_to = 0.15  # section 5: the frequency each of the four rarest findings is raised to
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # as in notebook 02
seed = cfg.seed

# %%
assert freeze_budget in label_budgets, f"freeze_budget {freeze_budget} must be one of label_budgets {label_budgets}"
print(f"profile={cfg.profile}, source={'ImageNet' if use_imagenet else 'synthetic source task'}, split={split_method}, "
      f"eager={run_eagerly}")
print(f"at {sweep_size} px: source {source_patients} patients x {source_epochs} epochs, budgets {label_budgets}, "
      f"{sweep_epochs} epochs each, freeze-depth sweep at {freeze_budget:.0%}")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)

# %% [markdown]
# ## 1. Data, and the pretrained backbone
#
# The same patient-level split as notebook 02 (`splits.classifier_split`), the images in memory at
# `sweep_size` px, and the backbone notebook 02 pretrained on the source task (coarse finding groups
# on a larger synthetic set from another seed), read from the models folder; ImageNet's when its
# weights are in the Keras cache. The backbone's pooled features of every image are computed once
# here: sections 3 and 5 train heads on them.

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
split, split_used = splits.classifier_split(nih, split_method, val_fraction=0.1, test_fraction=0.2, seed=seed)
if max_train_images:
    split["train"] = split["train"].iloc[:max_train_images]
print(f"{split_used}:", {name: len(part) for name, part in split.items()})


def sweep_arrays(part):
    """Images at sweep_size and labels of a split, in memory."""
    data = preprocessing.image_dataset(part.path, part[finding_names].values, image_size=sweep_size, batch_size=64)
    return np.concatenate([x for x, _ in data.as_numpy_iterator()]), part[finding_names].values.astype("float32")


sweep_train, y_train = sweep_arrays(split["train"])
sweep_val, y_val = sweep_arrays(split["val"])
sweep_test, y_test = sweep_arrays(split["test"])
print(f"images in memory at {sweep_size} px: {len(sweep_train)} train, {len(sweep_val)} val, {len(sweep_test)} test")

# %%
backbone, source_info = transfer.pretrained_backbone(
    cfg, image_size=sweep_size, patients=source_patients, epochs=source_epochs, batch_size=32,
    imagenet=use_imagenet, run_eagerly=run_eagerly)
how = "loaded from the cache" if source_info["from_cache"] else f"pretrained on {source_info['images']} source images"
print(f"source: {source_info['source']}, {how} in {source_info['seconds']:.0f} s")


def in_batches(network, images):
    """Outputs of a network on images, 64 at a time, in inference mode."""
    return np.concatenate([keras.ops.convert_to_numpy(network(images[i:i + 64], training=False)) for i in range(0, len(images), 64)])


pooled = keras.Model(backbone.input, backbone.get_layer("avg_pool").output)
frozen_train, frozen_val, frozen_test = (in_batches(pooled, images) for images in (sweep_train, sweep_val, sweep_test))
print(f"pooled features: {frozen_train.shape[1]} numbers per image")

# %% [markdown]
# ## 2. DenseNet inside: dense blocks, growth rate, transition layers
#
# Huang et al. (CVPR 2017) connect each layer of a **dense block** to all earlier layers of the block:
# layer ℓ receives the concatenation of the block's input and the outputs of layers 1 to ℓ-1, and adds
# its own `k` new channels, the **growth rate** (32 in DenseNet121). Each layer is BN-ReLU-1x1 conv
# (4k channels, the bottleneck) then BN-ReLU-3x3 conv (k channels). Between blocks, a **transition
# layer** (BN-ReLU, 1x1 conv halving the channels: compression 0.5, then 2x2 average pooling) halves
# the grid. DenseNet121 has blocks of 6, 12, 24 and 16 layers.
#
# **Keras numbers them differently.** `conv1_*` is the stem (7x7 conv and max pooling); the paper's dense
# blocks 1-4 are Keras's `conv2_*` to `conv5_*`, and its transition layers 1-3 are `pool2_*`, `pool3_*`,
# `pool4_*`. So the paper's "dense block 3 + transition 3" ends at Keras's `pool4_pool`, and the last
# dense block (the paper's 4) is `conv5_*`, followed by the final `bn` and `relu`. The table reads the
# channel counts off the model's concatenation layers `convN_blockM_concat`.

# %%
keras.utils.set_random_seed(seed)
densenet = models.densenet121_classifier(len(finding_names), sweep_size)  # untrained: the block table and the probe
block_table = models.dense_block_table(densenet)
assert list(block_table["growth per layer"]) == [32] * 4  # every layer adds k = 32 channels
assert block_table.loc["dense block 1", "channels out"] == 64 + 6 * 32 == 256  # the stem's 64, plus 6 layers of 32
assert block_table.loc["dense block 1", "after transition"] == 256 // 2  # compression 0.5
assert block_table.loc["dense block 3", "channels out"] == 256 + 24 * 32 == 1024 and block_table.loc["dense block 3", "transition"].startswith("pool4")
block_table

# %% [markdown]
# **Why it trains.** The gradient of the loss must cross every layer on its way back to the first
# ones; in a long chain it shrinks or grows by a factor at every layer. Dense connections give every
# layer a short path to the output. Measured here at initialisation, on one batch: the root-mean-square
# gradient of the convolution kernels in each block (1 = stem, 2-5 = dense blocks 1-4) for DenseNet121
# and for a **plain CNN** with DenseNet121's layers in the same order (`models.plain_cnn`: the same stem,
# the same BN-ReLU-1x1 conv (128)-BN-ReLU-3x3 conv (32) layers, 6/12/24/16 of them, the same
# transition layers) but without concatenation: each layer feeds only the next. Twice: with
# BatchNormalization, as in DenseNet, and without it.

# %%
probe_images, probe_labels = sweep_val[:16], y_val[:16]  # validation images: depth, not size, is what is probed
gradient_table = pd.DataFrame({
    "DenseNet121": models.gradient_norms_by_block(densenet, probe_images, probe_labels),
    "plain CNN": models.gradient_norms_by_block(models.plain_cnn(sweep_size), probe_images, probe_labels),
    "plain CNN, no BatchNorm": models.gradient_norms_by_block(models.plain_cnn(sweep_size, batch_norm=False), probe_images, probe_labels),
})
gradient_table.index.name = "block"
spread = gradient_table.max() / gradient_table.min()
print("largest / smallest block gradient:", {name: f"{value:.3g}" for name, value in spread.items()})
gradient_table

# %%
assert spread["plain CNN"] > 1000 * spread["DenseNet121"], spread
assert gradient_table["plain CNN, no BatchNorm"].max() < 1e-6 * gradient_table["DenseNet121"].min(), gradient_table
print(f"With BatchNorm, the plain chain's gradient grows {spread['plain CNN']:.1e}-fold from the last block to the first; "
      f"DenseNet121's blocks stay within a factor of {spread['DenseNet121']:.0f}. Without BatchNorm the plain chain's "
      f"gradient vanishes (largest {gradient_table['plain CNN, no BatchNorm'].max():.1e}).")

# %% [markdown]
# Measured, the problem of the plain chain is not always "vanishing": with BatchNormalization its
# gradient at initialisation **explodes** towards the first layers, without it the signal dies and the
# gradient vanishes. Either way, its blocks would learn at wildly different speeds. Dense connections
# keep every block within a modest factor of the others.

# %% [markdown]
# ## 3. Transfer learning measured: from scratch, frozen features, fine-tuned
#
# Engelhard's lecture: fine-tuning a pretrained model tends to be at least as good as learning from
# scratch, and pays most when labels are few. Measure it at three label budgets: 10%, 30% and 100% of
# the training images, whole patients (`transfer.budget_subset`; the smaller budgets nested in the
# larger). Three regimes, all at `sweep_size` px (4x cheaper than notebook 02's image size in lab), without
# augmentation, scored by mean AUROC on the test split over the findings it holds both ways:
#
# * **from scratch**: DenseNet121 from random initialisation, trained end to end;
# * **frozen**: the pretrained backbone's pooled features, extracted once, and one logistic regression
#   per finding on them (a finding without positives in the budget scores 0: chance);
# * **fine-tuned**: DenseNet121 started from the pretrained backbone, trained end to end at a lower
#   learning rate.
#
# From scratch and fine-tuned share one compiled model, reset to their starting weights before each
# run (`transfer.set_start`), so the training step is built once. Each run gets the same shuffled
# batches from a `tf.data` pipeline with its own seed. Re-seeding TensorFlow before each run
# (`keras.utils.set_random_seed`) would give the same batches too, but it made every later run of the
# same model about three times slower here (15 s instead of 4.6 s for 200 images x 2 epochs): the
# training step is built again.

# %%
scored = [j for j in range(len(finding_names)) if 0 < y_test[:, j].sum() < len(y_test)]


def mean_test_auc(scores):
    """Mean AUROC on the test split over the findings it holds both ways."""
    return float(metrics.roc_auc_per_class(y_test[:, scored], np.asarray(scores)[:, scored], [finding_names[j] for j in scored]).mean())


def shuffled(images, y):
    """The same shuffled batches for every run (reshuffled each epoch): a dataset seeded on its own."""
    return tf.data.Dataset.from_tensor_slices((images, y)).shuffle(len(images), seed=seed).batch(batch_size)


keras.utils.set_random_seed(seed)
sweep_model = models.densenet121_classifier(len(finding_names), sweep_size, weights=None, name="sweep")
sweep_model.compile(keras.optimizers.Adam(learning_rate), losses.WeightedBinaryCrossentropy.from_labels(y_train), run_eagerly=run_eagerly)
scratch_start = sweep_model.get_weights()
transfer.copy_backbone(backbone, sweep_model)
pretrained_start = sweep_model.get_weights()
budget_rows = {fraction: transfer.budget_subset(split["train"], fraction, seed=seed) for fraction in label_budgets}
rows, start = {}, time.perf_counter()
for fraction, part in budget_rows.items():
    keep = np.flatnonzero(split["train"].index.isin(part.index))
    row = {"images": len(keep), "patients": part["patient_id"].nunique()}
    row["frozen"] = mean_test_auc(transfer.linear_heads(frozen_train[keep], y_train[keep], frozen_test))
    for regime, weights_start, rate in (("from scratch", scratch_start, learning_rate), ("fine-tuned", pretrained_start, finetune_learning_rate)):
        transfer.set_start(sweep_model, weights_start, rate)
        sweep_model.fit(shuffled(sweep_train[keep], y_train[keep]), epochs=sweep_epochs, shuffle=False, verbose=0)
        row[regime] = mean_test_auc(in_batches(sweep_model, sweep_test))
    rows[fraction] = row
transfer_table = pd.DataFrame(rows).T[["images", "patients", "from scratch", "frozen", "fine-tuned"]]
transfer_table.index.name = "label budget"
print(f"{len(label_budgets)} budgets x 3 regimes in {time.perf_counter() - start:.0f} s; AUC over {len(scored)} findings")
transfer_table.round(3)

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for regime in ("from scratch", "frozen", "fine-tuned"):
    ax.plot(transfer_table.index * 100, transfer_table[regime], marker="o", label=regime)
ax.axhline(0.5, color="grey", linestyle=":")
ax.set(xscale="log", xlabel="training labels used (%)", ylabel="mean AUROC on test",
       title=f"source: {source_info['source']}")
ax.set_xticks([f * 100 for f in label_budgets], [f"{f:.0%}" for f in label_budgets])
ax.legend()
plt.tight_layout()
plt.show()

# %%
smallest = transfer_table.iloc[0]
pretraining_gain = max(smallest["frozen"], smallest["fine-tuned"]) - smallest["from scratch"]
print(f"at {transfer_table.index[0]:.0%} of the labels ({int(smallest['images'])} images): best pretrained regime "
      f"{max(smallest['frozen'], smallest['fine-tuned']):.3f} vs from scratch {smallest['from scratch']:.3f} ({pretraining_gain:+.3f})")
if source_patients >= 300 or use_imagenet:  # smoke's source (10 patients, one epoch) only exercises the code: it teaches nothing
    assert pretraining_gain > pretraining_margin, f"pretraining should beat training from scratch by {pretraining_margin} AUC at the smallest budget"
    print(f"Pretraining beats training from scratch by more than {pretraining_margin} AUC at the smallest budget.")
else:
    print(f"(a {source_patients}-patient source set trained for {source_epochs} epoch(s) only runs the code; the effect is asserted from lab sizes on)")

# %% [markdown]
# ## 4. How deep to fine-tune
#
# "More data, fine-tune more layers; the best depth should be explored." At the `freeze_budget` label
# budget, fine-tune from a given block on and keep the earlier ones frozen (their BatchNormalization in
# inference mode): the head only (the frozen regime above), the last `blocks` dense blocks for each entry
# of `freeze_depths`, and everything (the fine-tuned regime above). One block is dense block 4 (Keras
# `conv5_*`); two add dense block 3 (`conv4_*`, with the transition `pool4_*`). Each depth needs its own
# training graph, about 15 s to trace on 2 cores, so lab tries one block and `full` tries one to three.

# %%
part = budget_rows[freeze_budget]
keep = np.flatnonzero(split["train"].index.isin(part.index))
depth_scores = {"head only": transfer_table.loc[freeze_budget, "frozen"]}
for blocks in freeze_depths:
    name = f"from dense block {5 - blocks} (conv{6 - blocks})"
    sweep_model.set_weights(pretrained_start)
    models.set_trainable_blocks(sweep_model, blocks, train_batchnorm=True)
    sweep_model.compile(keras.optimizers.Adam(finetune_learning_rate), losses.WeightedBinaryCrossentropy.from_labels(y_train),
                        run_eagerly=run_eagerly)
    sweep_model.fit(shuffled(sweep_train[keep], y_train[keep]), epochs=sweep_epochs, shuffle=False, verbose=0)
    depth_scores[name] = mean_test_auc(in_batches(sweep_model, sweep_test))
depth_scores["all blocks"] = transfer_table.loc[freeze_budget, "fine-tuned"]
depth_table = pd.Series(depth_scores, name=f"mean AUROC at {freeze_budget:.0%} of the labels")
ax = depth_table.plot.barh(figsize=(6, 2.5), xlim=(0.4, 1.0), title=depth_table.name)
ax.axvline(transfer_table.loc[freeze_budget, "from scratch"], color="grey", linestyle=":", label="from scratch")
ax.legend()
plt.tight_layout()
plt.show()
depth_table.round(3)

# %%
gain_by_budget = transfer_table["fine-tuned"] - transfer_table["frozen"]
print("fine-tuned minus frozen, by budget:", {f"{k:.0%}": round(v, 3) for k, v in gain_by_budget.items()})
print(f"test AUROC by depth at {freeze_budget:.0%}: " + ", ".join(f"{k} {v:.3f}" for k, v in depth_table.items())
      + " (a measurement, not a choice: to pick a depth, compare them on validation, then score the one picked on test)")
if len(gain_by_budget) < 2:
    print("One label budget: nothing to compare across budgets (the lab profile runs three).")
elif gain_by_budget.iloc[-1] > gain_by_budget.iloc[0] + 0.02:
    print("More labels, more to gain from fine-tuning the backbone rather than freezing it: the lecture's rule holds here.")
else:
    print("Here fine-tuning does not gain more over frozen features as the labels grow: the rule is not borne out at these sizes.")

# %% [markdown]
# ## 5. Plain BCE, weighted BCE or oversampling: what each does to the rare findings
#
# Georgieva's lecture gives two answers to rare classes: resample the data (its solution 1) or
# weight the loss (solution 3); the Deep MedIA report sampled a fixed number of images per class.
# Retraining the whole network three times would take too long here, so compare them where they act
# most directly: three fresh heads on the pretrained backbone's pooled features of section 1, everything
# else equal.
# One is trained with plain BCE on the data as it is, one with the weighted BCE, and one with plain BCE
# on a stream in which each of the four rarest findings is oversampled to `oversample_to` of the
# images. `losses.oversampled_dataset` builds that stream with `tf.data.Dataset.sample_from_datasets`,
# mixing the whole set with each rare finding's positives in the proportions that give the requested
# frequencies. Each head gets its own thresholds, chosen on validation by Youden's J as in notebook 02.

# %%
prevalence = y_train.mean(axis=0)
plain_bce = keras.losses.BinaryCrossentropy()
weighted_bce = losses.WeightedBinaryCrossentropy.from_labels(y_train)
rarest = list(pd.Series(prevalence, index=finding_names)[prevalence > 0].sort_values().index[:4])  # the rarest that have a positive to oversample
targets = {name: oversample_to for name in rarest}
# exact=False: findings that share images raise each other, so the nearest reachable frequencies are used
stream = losses.oversampled_dataset(frozen_train, y_train, targets, names=finding_names, seed=seed, exact=False)
mixture = losses.oversampling_weights(y_train, targets, names=finding_names, exact=False)
drawn = np.stack([y for _, y in stream.take(3000).as_numpy_iterator()]).mean(axis=0)
frequencies = pd.DataFrame({"in the training labels": prevalence, "requested": oversample_to,
                            "reachable": losses.expected_frequencies(y_train, mixture, targets, names=finding_names),
                            "drawn (3000 draws)": drawn}, index=finding_names).loc[rarest]
assert (frequencies["drawn (3000 draws)"] - frequencies["reachable"]).abs().max() < 0.03, frequencies
assert (frequencies["drawn (3000 draws)"] > 2 * frequencies["in the training labels"]).all(), frequencies
frequencies.round(3)


# %%
def train_head(loss, data=None):
    """A fresh sigmoid head on the frozen pooled features, trained with the given loss (on ``data``, a stream, if given)."""
    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input(frozen_train.shape[1:]), keras.layers.Dense(len(finding_names), activation="sigmoid")])
    head.compile(keras.optimizers.Adam(1e-2 if len(y_train) < 200 else 1e-3), loss)  # a few dozen images: larger steps
    steps = max(300, 60 * int(np.ceil(len(y_train) / 64)))  # 60 passes over the data, and at least 300 steps
    if data is None:  # the plain data as an endless shuffled stream too, so both are trained in steps
        data = tf.data.Dataset.from_tensor_slices((frozen_train, y_train)).shuffle(len(y_train), seed=seed).repeat()
    head.fit(data.batch(64), steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)  # one long epoch; the stream shuffles
    return np.asarray(head(frozen_val, training=False)), np.asarray(head(frozen_test, training=False))  # features in memory: a call each


heads = {"plain BCE": train_head(plain_bce), "weighted BCE": train_head(weighted_bce),
         "oversampled": train_head(plain_bce, stream)}
head_scores = {name: test for name, (_, test) in heads.items()}
columns = {}
for name, (val_s, test_s) in heads.items():
    cuts = metrics.choose_thresholds(y_val, val_s, finding_names, method="youden")
    columns[f"AUC, {name}"] = metrics.roc_auc_per_class(y_test, test_s, finding_names)
    columns[f"sensitivity at 0.5, {name}"] = metrics.threshold_metrics(y_test, test_s, pd.Series(0.5, index=finding_names), finding_names)["sensitivity"]
    columns[f"sensitivity at its validation threshold, {name}"] = metrics.threshold_metrics(y_test, test_s, cuts, finding_names)["sensitivity"]
head_table = pd.DataFrame(columns).loc[rarest]
head_table.T.round(3)

# %%
sensitivity_gain = (head_table["sensitivity at 0.5, weighted BCE"] - head_table["sensitivity at 0.5, plain BCE"]).mean()
auc_change = (head_table["AUC, weighted BCE"] - head_table["AUC, plain BCE"]).abs().mean()
print(f"On the four rarest findings, weighting changes sensitivity at 0.5 by {sensitivity_gain:+.2f} on average "
      f"and the AUC by {auc_change:.3f} (mean absolute change).")
if np.isfinite(auc_change) and auc_change < abs(sensitivity_gain):
    print("The AUC, a ranking measure, moves less than the decisions at 0.5 do.")
rare_columns = [finding_names.index(name) for name in rarest]
rare_positive = y_test[:, rare_columns] == 1
base_rate = {name: float(s[:, rare_columns].mean()) for name, s in head_scores.items()}  # over every test image
mean_score = {name: float(s[:, rare_columns][rare_positive].mean()) for name, s in head_scores.items()}
print("mean score of the rare findings on every test image: "
      + ", ".join(f"{name} {value:.3f}" for name, value in base_rate.items()))
print(f"... on their {int(rare_positive.sum())} positive labels: "
      + ", ".join(f"{name} {value:.2f}" for name, value in mean_score.items()))
# Plain BCE pulls a rare finding's scores towards its prevalence; weighting and oversampling both push back.
# With 20 or more positive labels their mean score is the measure; with fewer it is noise, and the mean score
# over every test image (the base rate the head learned) is judged instead.
enough = rare_positive.sum() >= 20
measure, what = (mean_score, "positives") if enough else (base_rate, "base rate")
lift = {name: measure[name] - measure["plain BCE"] for name in ("weighted BCE", "oversampled")}
print(f"lift over plain BCE ({what}): " + ", ".join(f"{name} {value:+.3f}" for name, value in lift.items()))
assert lift["weighted BCE"] > (0.05 if enough else 0.5 * measure["plain BCE"]), "the weighted loss should lift the rare findings' scores"
assert lift["oversampled"] > 0, "oversampling should lift the rare findings' scores"
if lift["oversampled"] < 0.5 * lift["weighted BCE"]:
    print("Oversampling moves these scores less than half as far as weighting: it shows the same few positives again.")
if len(y_train) >= 200:  # smoke's 48 training images are too few to promise the decisions at 0.5
    assert sensitivity_gain > 0, "the weighted head should find more rare positives at threshold 0.5"

# %%
summary = pd.DataFrame({name: {"mean AUC": head_table[f"AUC, {name}"].mean(),
                               "mean sensitivity at its validation threshold": head_table[f"sensitivity at its validation threshold, {name}"].mean()}
                        for name in heads}).T
print(summary.round(3))
ranked = summary["mean AUC"].dropna().sort_values(ascending=False)
if len(ranked) == len(heads) and ranked.iloc[0] - ranked.iloc[1] > 0.02:
    print(f"On these rare findings, {ranked.index[0]} ranks best (by {ranked.iloc[0] - ranked.iloc[1]:.3f} AUC over the next).")
elif len(ranked) == len(heads):
    print(f"The three heads rank the rare findings within {ranked.iloc[0] - ranked.iloc[-1]:.3f} AUC of one another: "
          "here the choice moves the decisions, not the ranking.")

# %% [markdown]
# Plain BCE pushes the rare findings' probabilities towards their prevalence, so at 0.5 it finds
# almost none: the ranking (AUC) can survive, the decisions do not. Weighted BCE centres the
# probabilities so that 0.5 means something for every finding; oversampling does the same by changing
# what the head sees (the rare findings' prior rises to the requested frequency), at the price of
# showing the same few positive images again and again. A threshold chosen on validation repairs
# much of plain BCE's damage to the decisions, which is why the table reports both.


# %% [markdown]
# ## Summary
#
# * DenseNet121: dense blocks whose layers each add 32 channels (the growth rate), transition layers
#   that halve channels and grid; Keras's `conv2`-`conv5` and `pool2`-`pool4` are the paper's dense blocks
#   1-4 and transitions 1-3. At initialisation its blocks' gradients stay within a modest factor of one
#   another; a plain chain of the same layers explodes (with BatchNorm) or vanishes (without).
# * What pretraining is worth is measured, not assumed: from scratch, frozen features and fine-tuned
#   at three label budgets (section 3), and the depth of fine-tuning at one budget (section 4). A
#   comparison scored on test is a measurement; to *choose* a depth, compare on validation.
# * Rare findings: plain BCE, weighted BCE and oversampling in `tf.data` compared on the same frozen
#   features; weighting and oversampling both lift the rare findings' scores, and a threshold chosen
#   on validation repairs much of plain BCE's damage to the decisions (section 5).
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's data. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **DenseNet's channels by hand.** Count the channels leaving each dense block from the stem's
#    width, the layers per block, the growth rate and the compression, and compare with section 2's table.
# 2. **Oversampling weight by hand.** For one finding, the share of draws from its positives that
#    raises it to a requested frequency; compare with `losses.oversampling_weights`.
# 3. **Plain BCE.** Section 5 compared the losses on the head alone: retrain notebook 02's whole model
#    with `keras.losses.BinaryCrossentropy()` and compare the sensitivity of the three rarest findings
#    at 0.5. Which model finds more of them, and at what price? (Discussion.)
# 4. **How deep.** Set `freeze_depths = (1, 2, 3)` and `freeze_budget = 1.0`, and re-run section 4:
#    does the best depth (judged on validation AUROC, then scored on test) move as the labels grow?
#    (Discussion.)

# %%
# Exercise 1: write densenet_channels(stem, layers, growth, compression): the channels leaving each dense block.
def densenet_channels(stem, layers, growth, compression):
    """A list with one number per dense block; a transition scales the channels by compression between blocks."""
    ### BEGIN SOLUTION
    out, entering = [], stem
    for index, count in enumerate(layers):
        out.append(entering + count * growth)
        entering = int(out[-1] * compression)
    return out
    ### END SOLUTION


exercises.check_densenet_channels(densenet_channels)

# %%
mine = densenet_channels(64, (6, 12, 24, 16), 32, 0.5)
print("your count:", mine, "| read off the model:", list(block_table["channels out"]))
assert mine == list(block_table["channels out"]), "your count passed the check but differs from DenseNet121's layers"


# %%
# Exercise 2: write oversampling_weight(y, target): the share of draws from one finding's positives.
def oversampling_weight(y, target):
    """y: 0/1 labels of one finding over the training images; target: its requested frequency in the stream."""
    ### BEGIN SOLUTION
    prevalence = float(np.mean(y))
    return (target - prevalence) / (1 - prevalence)
    ### END SOLUTION


exercises.check_oversampling_weight(oversampling_weight)

# %%
rare = rarest[0]
column = y_train[:, finding_names.index(rare)]
library = losses.oversampling_weights(column[:, None], {0: oversample_to})[1]
print(f"{rare}: prevalence {column.mean():.3f}; to reach {oversample_to:.0%}, draw from its positives with "
      f"probability {oversampling_weight(column, oversample_to):.4f} (losses.oversampling_weights: {library:.4f})")
assert abs(oversampling_weight(column, oversample_to) - library) < 1e-9

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
