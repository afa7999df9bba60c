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
# # 04 · Monte-Carlo dropout: how sure is the model?
#
# **Description:** Give each prediction a confidence: MC dropout, the entropy decomposition, calibration, and referral that catches errors.<br>
# **Needs:** 03's U-Net and 02's classifier (a small stand-in is trained here when one is missing).<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 04_mc_dropout_uncertainty`.
#
# A model that answers every question with the same assurance is not safe to act on. Keep dropout
# **on** at test time, ask the same question T times, and the spread of the answers measures what the
# model does not know. We do it for the vessel U-Net of notebook 03 (per pixel) and the chest X-ray
# DenseNet of notebook 02 (per finding), then check that the uncertainty is worth something: are the
# errors where the model is unsure, does referring the unsure cases to a human help, does it rise on
# inputs the model has never seen?
#
# **You will:** write an always-on dropout layer and see why `model(x, training=True)` is the wrong
# shortcut (it also switches BatchNormalization to batch statistics); draw T samples in one compiled
# call; split the predictive entropy into aleatoric (expected entropy) and epistemic (mutual
# information) parts; draw Seo's Figure 1 (mean, epistemic, aleatoric maps) and see that uncertain
# vessels come out thin; learn aleatoric uncertainty directly with a heteroscedastic head (Kendall and
# Gal 2017); add dropout to a DenseNet that had none; plot reliability diagrams and the expected
# calibration error; draw referral curves; feed the models noise, blur, low contrast and the other
# modality; find how many samples are enough.
#
# **You need:** notebooks 02 and 03 run first (their saved models are reused; without them this
# notebook trains a small U-Net and uses an untrained DenseNet, and the numbers mean little).
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `04_mc_dropout_uncertainty` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Seo, *Visualizing Uncertainty and Saliency Maps of Deep Convolutional Neural Networks for
# Medical Imaging Applications*, Ryerson University (MC-dropout epistemic and aleatoric maps for a DRIVE
# U-Net, Figure 1), Gal and Ghahramani, *Dropout as a Bayesian Approximation*, ICML 2016,
# Kendall and Gal, *What Uncertainties Do We Need in Bayesian Deep Learning for Computer Vision?*,
# NeurIPS 2017 (the heteroscedastic loss), Leibig et al., *Leveraging uncertainty information from deep
# neural networks for disease detection*, Scientific Reports 2017 (referral curves), and Guo et al.,
# *On Calibration of Modern Neural Networks*, ICML 2017 (reliability diagrams, ECE).

# %% [markdown]
# ## Plan: core and optional
#
# Eight sections do not fit one 90-minute lab. The **core** sections (1, 2, 4, 6) carry the thread
# from dropout at test time to the referral threshold that notebook 07's report uses, and fit a
# session; the **optional** ones (3, 5, 7, 8) are a second session or homework. Optional sections use
# what the core ones computed, never the reverse: skip any of them and the rest still runs.
#
# | Section | Part | Reading, discussion (min, planned) |
# |---|---|---|
# | Setup, configuration | core | 5 |
# | 1. Dropout at test time, the BatchNormalization trap | core | 10 |
# | 2. The U-Net under MC dropout (2.1-2.5, Seo's Figure 1) | core | 25 |
# | 3. A heteroscedastic head | optional | 10 |
# | 4. The DenseNet under MC dropout | core | 10 |
# | 5. Calibration | optional | 12 |
# | 6. Referral of chest X-rays | core | 15 |
# | 7. Inputs the models have never seen | optional | 10 |
# | 8. How many samples are enough? | optional | 5 |
# | **core** | | **65** |
# | **optional** | | **37** |
#
# Reading and discussion: an estimate for a class working through the text and the outputs together. The
# computing comes on top: measured per section in `TIMINGS.md` beside this notebook (section
# `04_mc_dropout_uncertainty`). Core: about 70 minutes, leaving 20 for the summary and an exercise.

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

import cv2
import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import skimage.color
import skimage.data
import tensorflow as tf
from mapie.risk_control import MultiLabelClassificationController
from sklearn.metrics import roc_auc_score

from helpers import (config, conformal, datasets, familiarity, fundus, losses, metrics, model_card, models,
                     dicom, preprocessing, referral, report, side_files, splits, synthetic, uncertainty, viz)
from helpers.exercises import mc_dropout_uncertainty as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # a partial NIH copy is fine: rows whose image is absent are left out and counted ("all": refuse)
mc_samples = cfg.pick(smoke=5, lab=30, full=50)  # T: stochastic forward passes per input
test_photographs = cfg.pick(smoke=1, lab=4, full=20)  # DRIVE test photographs sampled at full size
head_dropout_rate = 0.3  # dropout inserted before the DenseNet's head
head_epochs = cfg.pick(smoke=10, lab=20, full=60)  # fine-tuning the head with dropout on, on pooled features
max_train_images = cfg.pick(smoke=48, lab=None, full=None)  # chest X-rays for the head's fine-tuning (None: all)
ood_images = cfg.pick(smoke=4, lab=40, full=200)  # chest X-rays per out-of-distribution kind
hetero_patches_per_image = cfg.pick(smoke=8, lab=120, full=2000)  # patches to train the heteroscedastic U-Net
hetero_epochs = cfg.pick(smoke=1, lab=2, full=20)
hetero_samples = 20  # logit samples inside the heteroscedastic loss
refer_at = 0.2  # the fraction of the most uncertain cases handed to a human in the assertions
batch_size = cfg.pick(smoke=16, lab=8, full=8)  # rows per compiled call of full 592x576 images
val_photographs = cfg.pick(smoke=1, lab=2, full=4)  # validation photographs for the full-image threshold
check_samples = cfg.pick(smoke=30, lab=30, full=50)  # T of the whole-clone vs head-only comparison
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # as in notebook 02
run_eagerly = cfg.pick(smoke=True, lab=False, full=False)  # a few dozen films or patches: cheaper than tracing, as in notebook 02
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, T={mc_samples}, test photographs={test_photographs}, validation photographs={val_photographs}, "
      f"head dropout={head_dropout_rate}, head epochs={head_epochs}, split={split_method}")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)
unet_path = cfg.models_dir / models.UNET_FILE
classifier_path = cfg.models_dir / models.CLASSIFIER_FILE

# %% [markdown]
# ## 1. Dropout at test time, and the BatchNormalization trap (core)
#
# Dropout zeroes a random part of a layer's units during training; at test time Keras switches it off.
# MC dropout keeps it on: each forward pass uses another random sub-network, and the spread of their
# answers approximates the posterior over the weights (Gal and Ghahramani 2016).
#
# The tempting shortcut, `model(x, training=True)`, turns on dropout **and every other layer that
# behaves differently in training**: BatchNormalization then normalises with the statistics of the
# current batch instead of its moving averages, so the answer depends on which other images share the
# batch. Instead, make dropout stochastic on its own: a `Dropout` whose `call` ignores the flag.


# %%
class AlwaysOnDropout(keras.layers.Dropout):
    """Dropout that is active whatever ``training`` says: the rest of the model stays in inference mode."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


ones = np.ones((2, 8), "float32")
mine, helper = AlwaysOnDropout(0.5, seed=7), uncertainty.MCDropout(0.5, seed=7)
assert np.array_equal(np.asarray(mine(ones, training=False)), np.asarray(helper(ones, training=False)))
print("always-on dropout at inference:\n", np.asarray(helper(ones, training=False)))

# %% [markdown]
# The DenseNet of notebook 02 has no dropout at all, yet `training=True` changes its answers: that is
# BatchNormalization using batch statistics. (A BatchNormalization layer frozen with `trainable=False`
# stays in inference mode in Keras 3; notebook 02 trains them when it has no ImageNet weights.)

# %%
if classifier_path.is_file():
    classifier = models.load_classifier(classifier_path, finding_names)
    classifier_trained = True
else:
    print(f"{classifier_path} is missing: run notebook 02 first. Continuing with an untrained DenseNet121.")
    classifier = models.densenet121_classifier(len(finding_names), cfg.pick(smoke=64, lab=128, full=224), weights=None)
    classifier_trained = False
image_size = classifier.input_shape[1]
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
if len(nih.skipped):
    print(f"{len(nih.skipped)} rows left out (a partial copy: images absent); reading {len(nih.entries)} images")
split, split_used = splits.classifier_split(nih, split_method, seed=seed)  # the same test images as notebook 02
if max_train_images:
    split["train"] = split["train"].iloc[:max_train_images]


def pipeline(part):
    """A split as a tf.data pipeline of (images in [0, 1], 14 labels), in order."""
    return preprocessing.image_dataset(part.path, part[finding_names].values, image_size=image_size, batch_size=32)


chest = np.concatenate([x for x, _ in pipeline(split["test"].iloc[:ood_images])])
bn_trainable = any(l.trainable for l in classifier.layers if isinstance(l, keras.layers.BatchNormalization))
batch_stats = np.asarray(classifier(chest[:4], training=True))
inference = np.asarray(classifier(chest[:4], training=False))
print(f"no dropout anywhere, yet training=True moves the probabilities by up to {np.abs(batch_stats - inference).max():.3f}")
if bn_trainable:
    assert np.abs(batch_stats - inference).max() > 1e-3

# %% [markdown]
# ## 2. The U-Net of notebook 03 under MC dropout (core)
#
# Notebook 03 saved the U-Net with a named `Dropout` layer after each block (the cell below lists them)
# and its preprocessing settings beside it.
# `uncertainty.with_mc_dropout` clones the model with each `Dropout` replaced by an `MCDropout` of the same
# name and rate (`keras.models.clone_model` with a `clone_function`) and copies the trained weights.
# If the file is missing, a small U-Net is trained here for a minute.

# %%
drive = fundus.read_drive(synthetic.ensure(cfg, "drive"))
settings = side_files.load_settings(unet_path)  # notebook 03's preprocessing; its defaults where the file is absent
grey_method, clahe_clip, clahe_tile = settings["grey_method"], settings["clahe_clip"], settings["clahe_tile"]


def prepare(rgb):
    """Notebook 03's preprocessing: green channel, CLAHE; HxWx1 in [0, 1] (the model standardises)."""
    return preprocessing.clahe(preprocessing.fundus_to_grey(rgb, grey_method), clip_limit=clahe_clip, tile=clahe_tile)[..., None]


def load_photographs(records):
    """Preprocessed photographs, vessel masks and FOV masks of some DRIVE records."""
    loaded = [fundus.load_drive(record) for record in records]
    return [prepare(rgb) for rgb, _, _ in loaded], [v for _, v, _ in loaded], [f for _, _, f in loaded]


# notebook 03's validation photographs; without them, the last training photograph is held out
val_ids = set(settings.get("val_ids", [])) or {drive.train[-1].id}
train_grey, train_vessels, train_fov = load_photographs([r for r in drive.train if r.id not in val_ids])
val_grey, val_vessels, val_fov = load_photographs([r for r in drive.train if r.id in val_ids][:val_photographs])
if unet_path.is_file():
    unet = models.load_model(unet_path)
else:
    print(f"{unet_path} is missing: run notebook 03 first. Training a small U-Net here instead.")
    inside = np.concatenate([g[..., 0][f] for g, f in zip(train_grey, train_fov)])
    unet = models.unet(base_filters=8, depth=4, dropout_rate=0.1, normalization=preprocessing.fit_normalization(inside))
    fallback = preprocessing.sample_patches(train_grey, train_vessels, train_fov, 48, 150 * len(train_grey), seed=seed)
    unet.compile(keras.optimizers.Adam(1e-3), losses.DiceLoss())
    unet.fit(fallback.images, fallback.masks, epochs=cfg.pick(smoke=1, lab=3, full=30), batch_size=32, verbose=2)
mc_unet = uncertainty.with_mc_dropout(unet)
dropout_names = models.dropout_layer_names(mc_unet)
print(f"{len(dropout_names)} MC dropout layers: {dropout_names}")

# %% [markdown]
# The full 565x584 photographs go through the fully convolutional U-Net in one piece, padded (by
# reflection) to a multiple of 16 and cropped back.

# %%
test_grey, test_vessels, test_fov = load_photographs(drive.test[:test_photographs])
height, width = test_grey[0].shape[:2]
padded = np.stack([preprocessing.pad_to_multiple(g, 16)[0] for g in test_grey])
deterministic = np.asarray(unet.predict(padded, batch_size=2, verbose=0))[:, :height, :width, 0]
print(f"{len(padded)} photographs padded to {padded.shape[1:3]}")

# %% [markdown]
# **The threshold must come from the same kind of inference.** Notebook 03 chose its threshold on
# sliding-window predictions of the deterministic model; here the answer is the mean of T dropout
# samples over the whole photograph, a differently distributed score. So choose the best-F1 threshold
# again, on the validation photographs predicted exactly as the test photographs will be: full image,
# MC mean.

# %%
val_padded = np.stack([preprocessing.pad_to_multiple(g, 16)[0] for g in val_grey])
val_samples = uncertainty.mc_predict(mc_unet, val_padded, samples=mc_samples, batch_size=batch_size)[:, :, :height, :width, 0]
val_mean = val_samples.mean(0)  # the samples are kept: section 6 sets the fundus referral level on them
threshold = metrics.best_f1_threshold(np.stack(val_vessels), val_mean, np.stack(val_fov))
sliding_threshold = settings.get("threshold")
print(f"threshold on {len(val_grey)} validation photograph(s), full image, MC mean of T={mc_samples}: {threshold:.3f}"
      + (f" (notebook 03's, from deterministic sliding windows: {sliding_threshold:.3f})" if sliding_threshold is not None else ""))

# %% [markdown]
# ### 2.1 T samples: by hand, then in one compiled call
#
# By hand: a Python loop of T forward passes of the MC model (`training=False`: only MCDropout is
# random). The helper `uncertainty.mc_predict` repeats each image T times, cuts the rows into batches of
# `batch_size` and runs them through one `tf.function`: few large calls instead of T small ones.

# %%
one = padded[:1]
start = time.perf_counter()
by_hand = np.stack([np.asarray(mc_unet(one, training=False)) for _ in range(mc_samples)])
hand_seconds = time.perf_counter() - start
start = time.perf_counter()
sampled = uncertainty.mc_predict(mc_unet, one, samples=mc_samples, batch_size=batch_size)
helper_seconds = time.perf_counter() - start
print(f"by hand {hand_seconds:.1f} s, mc_predict {helper_seconds:.1f} s (first call includes tracing); shapes {by_hand.shape}, {sampled.shape}")
assert not np.allclose(sampled[0], sampled[1]), "with dropout on, two samples differ"

# %% [markdown]
# Two independent sets of T samples: single samples disagree a lot, their means much less.

# %%
again = uncertainty.mc_predict(mc_unet, one, samples=mc_samples, batch_size=batch_size)
single_gap = np.abs(sampled[0] - again[0]).mean()
mean_gap = np.abs(sampled.mean(0) - again.mean(0)).mean()
hand_gap = np.abs(by_hand.mean(0) - sampled.mean(0)).mean()
print(f"mean |difference| per pixel: one sample vs one sample {single_gap:.4f}, mean of {mc_samples} vs mean of "
      f"{mc_samples} {mean_gap:.4f} (by hand vs helper {hand_gap:.4f})")
assert mean_gap < single_gap and hand_gap < single_gap

# %% [markdown]
# ### 2.2 Total = aleatoric + epistemic
#
# For one sigmoid output with samples $p_1, \dots, p_T$ and mean $\bar p = \frac1T\sum_{t=1}^T p_t$, with the
# binary entropy in nats
#
# $$H(p) = -p\log p - (1-p)\log(1-p),$$
#
# the predictive entropy splits into two parts (the decomposition Seo maps for DRIVE):
#
# $$\underbrace{H(\bar p)}_{\text{total}} \;=\; \underbrace{\frac1T\sum_{t=1}^T H(p_t)}_{\text{aleatoric}}
# \;+\; \underbrace{H(\bar p) - \frac1T\sum_{t=1}^T H(p_t)}_{\text{epistemic}}.$$
#
# * **total** (predictive entropy): how unsure the averaged answer is;
# * **aleatoric** (expected entropy): the mean over the samples of each sample's own entropy, high
#   when every sub-network answers near 0.5 even if they all agree: noise in the data, a pixel on a
#   vessel's edge. It is *not* the spread of the samples;
# * **epistemic** (mutual information between the answer and the weights): the sub-networks
#   *disagree* (the spread of the samples is what feeds it), the model does not know; more data would
#   reduce it. It is never negative, since $H$ is concave (Jensen's inequality).
#
# By hand, then the helper:

# %%
samples_all = uncertainty.mc_predict(mc_unet, padded, samples=mc_samples, batch_size=batch_size)[:, :, :height, :width, 0].astype(np.float64)


def entropy(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)  # float64: in float32, 1 - 1e-7 rounds to 1
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


mean_by_hand = samples_all.mean(0)
total_by_hand = entropy(mean_by_hand)
aleatoric_by_hand = entropy(samples_all).mean(0)
seg = uncertainty.decompose(samples_all)
assert np.allclose(seg.total, total_by_hand) and np.allclose(seg.aleatoric, aleatoric_by_hand)
print(f"inside the FOV: total {seg.total[np.stack(test_fov)].mean():.4f} = aleatoric {seg.aleatoric[np.stack(test_fov)].mean():.4f} "
      f"+ epistemic {seg.epistemic[np.stack(test_fov)].mean():.4f} nats; variance {seg.variance[np.stack(test_fov)].mean():.5f}")

# %% [markdown]
# ### 2.3 Seo's Figure 1: mean prediction, epistemic and aleatoric maps

# %%
zoom = (slice(200, 360), slice(330, 490))
panels = [(test_grey[0][..., 0], "photograph (CLAHE)"), (test_vessels[0], "vessels (1st observer)"),
          (seg.mean[0], f"MC mean, T={mc_samples}"), (seg.epistemic[0], "epistemic (mutual information)"),
          (seg.aleatoric[0], "aleatoric (expected entropy)")]
fig, axes = plt.subplots(2, 5, figsize=(18, 7.5))
for column, (picture, title) in enumerate(panels):
    for row, view in enumerate((np.s_[:, :], zoom)):
        shown = axes[row, column].imshow(picture[view], cmap="gray" if column < 3 else "magma")
        axes[row, column].set_title(title if row == 0 else "zoom", fontsize=10)
        axes[row, column].axis("off")
        if column >= 3:  # the uncertainty maps: their scale, in nats
            fig.colorbar(shown, ax=axes[row, column], fraction=0.046, pad=0.02, label="nats")
plt.tight_layout()
viz.export_figure(fig, "seo_figure1")
plt.show()

# %% [markdown]
# Look for the epistemic uncertainty along the vessels' edges and on the thin ones, and compare the
# aleatoric map (the mean entropy of the samples). Seo's observation: where the model is uncertain
# about a vessel, the segmentation comes out **thin**. Measure it: among the true vessel pixels, how
# many does the mean prediction mark as vessel, in the most and in the least uncertain quarter?

# %%
truth, fov_all = np.stack(test_vessels), np.stack(test_fov)
predicted = seg.mean >= threshold
vessel_uncertainty = seg.epistemic[truth & fov_all]
low, high = np.quantile(vessel_uncertainty, [0.25, 0.75])
found = predicted[truth & fov_all]
thin = pd.Series({"least uncertain quarter": found[vessel_uncertainty <= low].mean(),
                  "most uncertain quarter": found[vessel_uncertainty >= high].mean()},
                 name="share of the true vessel marked as vessel")
print(thin.round(3).to_string())
if thin["most uncertain quarter"] < thin["least uncertain quarter"]:
    print("Where the model is unsure, it marks less of the vessel's width: the segmentation comes out thin.")
else:
    print("Here the most uncertain vessel pixels are not marked less often: Seo's observation does not show.")

# %% [markdown]
# ### 2.4 Is the model unsure where it is wrong?
#
# Per pixel inside the FOV: is the uncertainty higher on the misclassified pixels? The AUROC of
# the uncertainty as a detector of errors answers in one number (0.5: no better than chance).

# %%
wrong = (predicted != truth)[fov_all]
pixel_epistemic = seg.epistemic[fov_all]
error_auroc = roc_auc_score(wrong, pixel_epistemic)
by_correctness = pd.Series({"wrong pixels": pixel_epistemic[wrong].mean(), "correct pixels": pixel_epistemic[~wrong].mean()},
                           name="mean epistemic")
print(by_correctness.to_string())
print(f"{wrong.mean():.2%} of the FOV pixels are wrong; AUROC of epistemic uncertainty as an error detector: {error_auroc:.3f}")
if cfg.profile == "lab":
    assert by_correctness["wrong pixels"] > by_correctness["correct pixels"]
    assert error_auroc > 0.6, f"uncertainty should detect errors better than chance (AUROC {error_auroc:.3f})"

# %% [markdown]
# ### 2.5 Referral: hand the most uncertain pixels to a human
#
# Sort the pixels by uncertainty, refer the most uncertain fraction (0 to 50%) and score the rest.
# A useful uncertainty makes the curve climb faster than referring at random. By hand for one
# fraction, then the helper for all:

# %%
def accuracy(t, s):
    return float(np.mean((s >= threshold) == t))


def dice(t, s):
    p = s >= threshold
    return float(2 * (p & t).sum() / max(2 * (p & t).sum() + (p & ~t).sum() + (~p & t).sum(), 1))


pixel_truth, pixel_score = truth[fov_all], seg.mean[fov_all]
keep = np.argsort(pixel_epistemic, kind="stable")[: len(pixel_epistemic) - int(round(refer_at * len(pixel_epistemic)))]
pixel_curve = pd.DataFrame({
    "accuracy": uncertainty.referral_curve(pixel_truth, pixel_score, pixel_epistemic, accuracy)["metric"],
    "Dice": uncertainty.referral_curve(pixel_truth, pixel_score, pixel_epistemic, dice)["metric"],
    "accuracy, random referral": uncertainty.random_referral(pixel_truth, pixel_score, accuracy, repeats=3, seed=seed)["metric"],
})
assert np.isclose(pixel_curve.loc[refer_at, "accuracy"], accuracy(pixel_truth[keep], pixel_score[keep]))
error_ratio = (1 - pixel_curve.loc[refer_at, "accuracy, random referral"]) / max(1 - pixel_curve.loc[refer_at, "accuracy"], 1e-9)
print(f"referring the {refer_at:.0%} most uncertain pixels leaves {error_ratio:.1f}x fewer errors than referring as many at random")
if cfg.profile == "lab" and unet_path.is_file():  # notebook 03's U-Net, not a stand-in
    assert error_ratio >= 2, "referring the most uncertain pixels should at least halve the errors left, against random referral"
pixel_curve.iloc[::2].round(4)

# %% [markdown]
# ## 3. Aleatoric uncertainty learned directly: a heteroscedastic head (optional)
#
# MC dropout estimates aleatoric uncertainty as the expected entropy: the mean over the samples of
# each sample's binary entropy (the spread of the samples goes to the epistemic part). Kendall and Gal
# (2017) let the network predict it instead: two outputs per pixel, a logit mean $\mu$ and a log-variance
# $s = \log\sigma^2$. Training samples logits $\mu + \sigma\epsilon_t$, $\epsilon_t \sim N(0, 1)$ and
# maximises the mean likelihood: $\mathcal{L} = -\log \frac1T \sum_t p(y \mid \mu + \sigma \epsilon_t)$.
# Where the label is hard to predict (a vessel's edge), a large $\sigma$ costs less than a confident
# mistake, so the model learns to raise it there. By hand on a few pixels, then `losses.HeteroscedasticBCE`:

# %%
rng = np.random.default_rng(seed)
y_small = (rng.random((2, 4, 4, 1)) > 0.5).astype("float32")
pred_small = np.concatenate([rng.normal(0, 2, (2, 4, 4, 1)), rng.normal(0, 1, (2, 4, 4, 1))], axis=-1).astype("float32")
eps = rng.standard_normal((4000,) + y_small.shape[:-1])
logits = pred_small[..., 0] + np.exp(0.5 * pred_small[..., 1]) * eps
likelihood = np.where(y_small[..., 0] == 1, 1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(logits)))
loss_by_hand = -np.log(likelihood.mean(0)).mean()
loss_helper = float(losses.HeteroscedasticBCE(samples=4000, seed=seed)(y_small, pred_small))
print(f"by hand {loss_by_hand:.4f}, helper {loss_helper:.4f} (both Monte-Carlo estimates)")
assert abs(loss_by_hand - loss_helper) < 0.02

# %% [markdown]
# The two-headed U-Net starts from notebook 03's weights: every layer is copied, the mean channel of the
# new head takes the old sigmoid head's weights divided by `logit_scale` (a sigmoid's input is a logit),
# and the log-variance channel starts at -4 (sigma 0.14) everywhere. Why divide: the Dice loss never
# punishes over-confidence, so notebook 03's logits are huge (tens), and sigma would have to reach tens
# before a sampled logit could change sides; divided by 10 the ranking of the pixels is the same and a
# short fine-tuning on patches only has to learn where to raise sigma.

# %%
hetero_patches = preprocessing.sample_patches(train_grey, train_vessels, train_fov, 48,
                                              hetero_patches_per_image * len(train_grey), seed=seed)
unet_normalization = ((settings["normalization"]["mean"], settings["normalization"]["std"]) if "normalization" in settings
                      else preprocessing.fit_normalization(np.concatenate([g[..., 0][f] for g, f in zip(train_grey, train_fov)])))
hetero = uncertainty.heteroscedastic_unet(base_filters=unet.get_layer("enc1_conv1").filters, depth=4, dropout_rate=0.1,
                                     normalization=unet_normalization)
for layer in hetero.layers:
    if layer.weights and layer.name in [l.name for l in unet.layers]:
        layer.set_weights(unet.get_layer(layer.name).get_weights())
logit_scale = 10.0
kernel, bias = unet.get_layer("vessels").get_weights()
hetero.get_layer("logit_and_log_variance").set_weights([np.concatenate([kernel / logit_scale, np.zeros_like(kernel)], axis=-1),
                                                        np.array([bias[0] / logit_scale, -4.0], "float32")])
start_logits = np.asarray(hetero(padded[:1], training=False))[0, :height, :width, 0]  # one photograph: a call
start_probability = 1 / (1 + np.exp(-np.clip(start_logits * logit_scale, -60, 60)))
assert np.allclose(start_probability, deterministic[0], atol=1e-4), "the mean channel starts as notebook 03's U-Net"
hetero.compile(keras.optimizers.Adam(1e-3), losses.HeteroscedasticBCE(samples=hetero_samples, seed=seed), run_eagerly=run_eagerly)
start = time.perf_counter()
hetero_history = hetero.fit(hetero_patches.images, hetero_patches.masks, epochs=hetero_epochs, batch_size=32, verbose=2)
print(f"{len(hetero_patches.images)} patches, {hetero_epochs} epoch(s) in {time.perf_counter() - start:.0f} s")

# %%
out = np.asarray(hetero(padded[:1], training=False))[0, :height, :width]
sigma = np.exp(0.5 * out[..., 1])
hetero_probability = 1 / (1 + np.exp(-np.clip(out[..., 0], -60, 60)))
inside0 = test_fov[0]
agreement = np.corrcoef(sigma[inside0], seg.aleatoric[0][inside0])[0, 1]
hetero_wrong = ((hetero_probability >= 0.5) != test_vessels[0])[inside0]  # trained with BCE now: 0.5
sigma_auroc = roc_auc_score(hetero_wrong, sigma[inside0]) if 0 < hetero_wrong.mean() < 1 else np.nan
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, picture, title in zip(axes, (hetero_probability, sigma, seg.aleatoric[0]),
                              ("heteroscedastic: sigmoid(mu)", "heteroscedastic: sigma (learned aleatoric)",
                               "MC dropout: aleatoric (expected entropy)")):
    shown = ax.imshow(picture[zoom], cmap="gray" if "mu" in title else "magma")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label="probability" if "mu" in title else "nats" if "MC" in title else "sigma (logit)")
plt.tight_layout()
plt.show()
print(f"learned sigma inside the FOV: correlation with the MC aleatoric map {agreement:+.2f}; "
      f"AUROC as a detector of its own errors {sigma_auroc:.3f}")
assert np.isfinite(out).all(), "the heteroscedastic fine-tuning diverged (NaN or infinite outputs)"

# %% [markdown]
# ## 4. The DenseNet of notebook 02 under MC dropout (core)
#
# DenseNet121 has no dropout layer, so MC dropout has nothing to sample: `uncertainty.mc_predict`
# says so instead of returning T identical answers.

# %%
try:
    uncertainty.mc_predict(classifier, chest[:2], samples=3)
except ValueError as err:
    print(f"ValueError: {err}")

# %% [markdown]
# `uncertainty.insert_mc_dropout` puts an `MCDropout` between the pooled features and a copy of the trained
# head, sharing the backbone. The limitation: this head never saw dropout during training, so its
# weights are not those of a dropout network and its spread means little. Fine-tune the head with
# dropout on. That is cheap: the backbone is frozen, so compute the pooled features once and train the
# 1024 x 14 head on them. The same trick makes sampling cheap: only the head is random, so T samples
# cost T passes of the head, not of DenseNet.

# %%
mc_classifier = uncertainty.insert_mc_dropout(classifier, rate=head_dropout_rate)
head = keras.Sequential([keras.Input(classifier.get_layer("avg_pool").output.shape[1:]),
                         mc_classifier.get_layer("mc_dropout"), mc_classifier.layers[-1]], name="mc_head")
features_model = keras.Model(classifier.input, classifier.get_layer("avg_pool").output)
features_model.run_eagerly = run_eagerly  # a few dozen films: cheaper than tracing the prediction step
start = time.perf_counter()
features = {name: features_model.predict(pipeline(part), verbose=0) for name, part in split.items()}
y = {name: part[finding_names].values for name, part in split.items()}
print(f"pooled features {({k: v.shape for k, v in features.items()})} in {time.perf_counter() - start:.0f} s")

# %%
original_head = classifier.get_layer("predictions")
before = np.asarray(original_head(features["test"]))  # the model of notebook 02, deterministic
head.compile(keras.optimizers.Adam(1e-3), losses.WeightedBinaryCrossentropy.from_labels(y["train"]))
head_history = head.fit(features["train"], y["train"], validation_data=(features["val"], y["val"]),
                        epochs=head_epochs, batch_size=64, verbose=0)
print(f"head fine-tuned with dropout {head_dropout_rate}: val loss {head_history.history['val_loss'][0]:.3f} -> "
      f"{head_history.history['val_loss'][-1]:.3f}")
assert np.array_equal(np.asarray(original_head(features["test"])), before), "fine-tuning the copy changed notebook 02's head"

# %% [markdown]
# Check that sampling the head on pooled features is the same as sampling the whole clone on images:
# the two means must agree within sampling error. The standard error of the difference of two means
# comes from the samples themselves, $\sqrt{s_1^2/T_1 + s_2^2/T_2}$. With 28 outputs compared and the
# standard error itself estimated from 30 samples, chance alone passes 4 standard errors now and then
# (about once in 90 runs) but 5 almost never (below once in 1000); a real difference, such as dropout
# in another place, does not shrink as T grows and soon exceeds it.

# %%
few = chest[:2]
mc_classifier.run_eagerly = True  # sampled once, in one batch: no graph to trace (mc_predict honours it, as predict does)
whole_draws = uncertainty.mc_predict(mc_classifier, few, samples=check_samples)
head_draws = uncertainty.mc_predict(head, features_model.predict(few, verbose=0), samples=200)
standard_error = np.sqrt(whole_draws.var(0, ddof=1) / len(whole_draws) + head_draws.var(0, ddof=1) / len(head_draws)) + 1e-6
z = np.abs(whole_draws.mean(0) - head_draws.mean(0)) / standard_error
print(f"whole clone (T={check_samples}) vs head only (T=200): largest gap {z.max():.2f} standard errors "
      f"(max |difference| {np.abs(whole_draws.mean(0) - head_draws.mean(0)).max():.4f})")
assert z.max() < 5, "the head-only shortcut samples a different distribution from the whole clone"
cls = uncertainty.decompose(uncertainty.mc_predict(head, features["test"], samples=mc_samples))
kernel, bias = (np.asarray(w) for w in head.layers[-1].weights)
dropout_off = 1 / (1 + np.exp(-(features["test"] @ kernel + bias)))  # inverted dropout: no rescaling at test time
print(f"test images {len(cls.mean)}; mean epistemic per finding {cls.epistemic.mean():.4f}, aleatoric {cls.aleatoric.mean():.4f}")

# %% [markdown]
# ## 5. Calibration: does 0.8 mean 80%? (optional)
#
# A reliability diagram bins the predictions by probability and plots the observed frequency of the
# positive class in each bin against the mean predicted probability; perfectly calibrated points sit
# on the diagonal. The expected calibration error (ECE) is the count-weighted mean gap. By hand with
# ten equal bins, then `metrics.expected_calibration_error`:

# %%
def ece_by_hand(y_true, y_prob, bins=10):
    y_true, y_prob = np.ravel(y_true), np.ravel(y_prob)
    index = np.minimum((y_prob * bins).astype(int), bins - 1)  # equal-width bins (edge cases aside)
    gaps = [abs(y_true[index == b].mean() - y_prob[index == b].mean()) * (index == b).mean()
            for b in range(bins) if (index == b).any()]
    return float(np.sum(gaps))


assert np.isclose(ece_by_hand(y["test"], before), metrics.expected_calibration_error(y["test"], before), atol=1e-3)
predictions = {"02 model (no dropout)": before, "fine-tuned head, dropout off": dropout_off, f"MC mean, T={mc_samples}": cls.mean}
calibration = pd.Series({name: metrics.expected_calibration_error(y["test"], p) for name, p in predictions.items()}, name="ECE")
segmentation_ece = pd.Series({"U-Net, deterministic": metrics.expected_calibration_error(truth[fov_all], deterministic[fov_all]),
                              "U-Net, MC mean": metrics.expected_calibration_error(truth[fov_all], seg.mean[fov_all])}, name="ECE")
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
viz.reliability_diagram(axes[0], {f"{k} (ECE {v:.3f})": metrics.reliability_table(y["test"], predictions[k]) for k, v in calibration.items()},
                        title="chest X-rays, all findings")
viz.reliability_diagram(axes[1], {"U-Net, deterministic": metrics.reliability_table(truth[fov_all], deterministic[fov_all]),
                                  "U-Net, MC mean": metrics.reliability_table(truth[fov_all], seg.mean[fov_all])},
                        title="vessel pixels inside the FOV")
plt.tight_layout()
plt.show()
pd.concat([calibration, segmentation_ece]).round(4)

# %% [markdown]
# One pooled ECE mixes fourteen findings, most of them easy negatives near 0; a rare finding can be badly
# calibrated and barely move it. Per finding (`per_class=True`):

# %%
per_finding = pd.DataFrame({name: metrics.expected_calibration_error(y["test"], p, per_class=True, labels=finding_names)
                            for name, p in predictions.items()})
mc_name = f"MC mean, T={mc_samples}"
change = calibration[mc_name] - calibration["fine-tuned head, dropout off"]
effect = "barely changes" if abs(change) < 0.002 else ("lowers" if change < 0 else "raises")
print(f"pooled ECE: MC averaging {effect} it here "
      f"({calibration['fine-tuned head, dropout off']:.4f} -> {calibration[mc_name]:.4f}); "
      f"per finding it is lower for {(per_finding[mc_name] < per_finding['fine-tuned head, dropout off']).sum()} of {len(finding_names)}")
per_finding.round(3)

# %% [markdown]
# Averaging over dropout samples pulls over-confident probabilities towards the middle, which often
# lowers the ECE (the line above says whether it did here). The weighted BCE of notebook 02 deliberately shifts the rare findings' probabilities
# up (so that 0.5 is a useful threshold), so the classifier is miscalibrated on purpose; MC averaging
# cannot undo that, and a post-hoc method (temperature or Platt scaling on validation) would.

# %% [markdown]
# ## 6. Referral of chest X-rays (core)
#
# One uncertainty per image: the mean over the fourteen findings of the mutual information. Refer the
# most uncertain images; on the images kept, score the decisions (each finding called present at 0.5 of
# the MC mean: the share that are right) and the mean AUROC over the findings. The two can disagree:
# the AUROC ranks images against each other, and referral removes the hardest positives from the ranking.
# Measured, not asserted: for the series' lab classifiers it has been close to random referral (+0.018
# AUROC and −0.017 decisions with one, +0.000 and −0.014 with another), unlike the vessel pixels of
# section 2, whose errors the U-Net's uncertainty finds (asserted there).

# %%
scored = [j for j in range(len(finding_names)) if y["test"][:, j].sum() >= 3]


def mean_auroc(t, s):
    cols = [j for j in scored if 0 < t[:, j].sum() < len(t)]
    return float(np.mean([roc_auc_score(t[:, j], s[:, j]) for j in cols]))


def decision_accuracy(t, s):
    return float(((s >= 0.5) == (t == 1)).mean())


image_uncertainty = cls.epistemic.mean(axis=1)
image_curve = pd.DataFrame({
    "decisions right, refer by epistemic": uncertainty.referral_curve(y["test"], cls.mean, image_uncertainty, decision_accuracy)["metric"],
    "decisions right, random referral": uncertainty.random_referral(y["test"], cls.mean, decision_accuracy, repeats=5, seed=seed)["metric"],
    "mean AUROC, refer by epistemic": uncertainty.referral_curve(y["test"], cls.mean, image_uncertainty, mean_auroc)["metric"],
    "mean AUROC, refer by total": uncertainty.referral_curve(y["test"], cls.mean, cls.total.mean(axis=1), mean_auroc)["metric"],
    "mean AUROC, random referral": uncertainty.random_referral(y["test"], cls.mean, mean_auroc, repeats=5, seed=seed)["metric"],
})
for name, curve, title in (("referral_curves", image_curve, "chest X-rays: referral curves"),
                           ("referral_curves_pixels", pixel_curve[["accuracy", "accuracy, random referral"]],
                            "vessel pixels: referral curve")):
    ax = curve.plot(figsize=(5.5, 3.6), marker=".", title=title, xlabel="fraction referred (most uncertain first)")
    plt.tight_layout()
    viz.export_figure(ax, name)
    plt.show()
at_refer = image_curve.loc[refer_at]
accuracy_gain = at_refer["decisions right, refer by epistemic"] - image_curve.loc[0.0, "decisions right, refer by epistemic"]
over_random = at_refer["decisions right, refer by epistemic"] - at_refer["decisions right, random referral"]
gain = at_refer["mean AUROC, refer by epistemic"] - image_curve.loc[0.0, "mean AUROC, refer by epistemic"]
print(f"referring the {refer_at:.0%} most uncertain images: decisions right on the kept images {accuracy_gain:+.3f} "
      f"({over_random:+.3f} against random referral); their mean AUROC {gain:+.3f}")
if gain <= 0 < accuracy_gain:
    print("The decisions on the kept images improve while their AUROC does not: referral took away hard cases, "
          "positives among them, and the ranking of what is left is no easier.")
auroc_over_random = at_refer["mean AUROC, refer by epistemic"] - at_refer["mean AUROC, random referral"]
print(f"against random referral of as many images: decisions {over_random:+.3f}, mean AUROC {auroc_over_random:+.3f}")
if min(over_random, auroc_over_random) > 0:
    print("Referral by uncertainty beats random referral on both.")
elif max(over_random, auroc_over_random) > 0:
    print("Referral by uncertainty beats random referral on one measure only: with a few hundred test images the "
          "two can disagree; look at the whole curves, not one point.")
else:
    print("Referral by uncertainty does not beat random referral here, on either measure.")

# %% [markdown]
# ### 6.1 Which signal finds the wrong decisions?
#
# The report decides each finding with notebook 02's model at notebook 02's thresholds, so that is what a
# referral must catch: a **wrong decision** is a finding called present that is absent, or the reverse.
# Random referral of 20% of the films leaves, in expectation, 80% of the wrong decisions; a signal earns
# its place when it leaves fewer. The ratio below divides the two (above 1: better than random), with a
# 95% interval from resampling test patients. Four signals (Geifman and El-Yaniv, "Selective
# Classification for Deep Neural Networks", NeurIPS 2017, for the first two):
#
# - `margin`: the smallest distance, in logits, between a probability and its threshold;
# - `expected_errors`: the wrong decisions a film should hold if its probabilities were calibrated, with
#   Platt scaling per finding fitted on the validation films (`referral.Recalibration`);
# - the mutual information of the dropout head above, whose dropout sits after the pooled features only:
#   a **last-layer** approximation (a Bayesian logistic regression on fixed features), fitted with three
#   seeds. It holds no uncertainty about the backbone.
#
# First the closed form for random referral, against 200 random draws:

# %%
if classifier_trained:
    decision_thresholds = side_files.load_thresholds(classifier_path, finding_names)[0].to_numpy()
else:
    decision_thresholds = np.full(len(finding_names), 0.5)
probs = {"val": np.asarray(original_head(features["val"])), "test": before}
wrong_images = {name: referral.wrong_decisions(y[name], probs[name], decision_thresholds) for name in probs}
draws = [wrong_images["test"][~referral.referred(np.random.default_rng(r).random(len(wrong_images["test"])), refer_at)].sum()
         for r in range(200)]
kept_share = 1 - referral.referred(wrong_images["test"], refer_at).mean()
print(f"test films {len(wrong_images['test'])}, wrong decisions {wrong_images['test'].sum()}; random referral of {refer_at:.0%} leaves "
      f"{np.mean(draws):.1f} on average over 200 draws, the closed form {kept_share * wrong_images['test'].sum():.1f}")
assert abs(np.mean(draws) - kept_share * wrong_images["test"].sum()) <= 4 * np.std(draws) / np.sqrt(len(draws)) + 1e-9

# %%
def dropout_head(head_seed):
    """Notebook 02's head behind MCDropout, fine-tuned on pooled features with one seed."""
    keras.utils.set_random_seed(head_seed)
    copy = keras.Sequential([keras.Input(features["train"].shape[1:]), uncertainty.MCDropout(head_dropout_rate, name="mc_dropout"),
                             keras.layers.Dense(len(finding_names), activation="sigmoid")], name=f"mc_head_seed{head_seed}")
    copy.layers[-1].set_weights(original_head.get_weights())
    copy.compile(keras.optimizers.Adam(1e-3), losses.WeightedBinaryCrossentropy.from_labels(y["train"]))
    copy.fit(features["train"], y["train"], epochs=head_epochs, batch_size=64, verbose=0)
    return copy


recalibration = referral.Recalibration.fit(y["val"], probs["val"])
signals = {name: {s: referral.signal(s, probs[name], decision_thresholds, recalibration)
                  for s in ("margin", "expected_errors")} for name in probs}
start = time.perf_counter()
for head_seed in (seed, seed + 1, seed + 2):
    seeded = dropout_head(head_seed)
    for name in probs:
        draws_mc = uncertainty.mc_predict(seeded, features[name], samples=mc_samples)
        signals[name][f"mutual information, seed {head_seed}"] = uncertainty.decompose(draws_mc).epistemic.mean(axis=1)
print(f"three dropout heads fine-tuned and sampled (T={mc_samples}) in {time.perf_counter() - start:.0f} s")
test_groups = split["test"]["patient_id"].to_numpy()
comparison = referral.compare(wrong_images["test"], signals["test"], refer_at, groups=test_groups,
                              samples=cfg.pick(smoke=200, lab=1000, full=1000), seed=seed)
comparison.round(2)

# %% [markdown]
# Which signal the report uses is a choice, so it is made on the **validation** films (the one that leaves
# the fewest wrong decisions there), and the table above, on test, judges it once.

# %%
on_validation = pd.Series({s: referral.ratio(wrong_images["val"], signals["val"][s], refer_at)
                           for s in ("margin", "expected_errors", f"mutual information, seed {seed}")})
chosen_signal = on_validation.idxmax()
chosen_row = comparison.loc[chosen_signal]
print("ratio on validation films: " + ", ".join(f"{k} {v:.2f}" for k, v in on_validation.items()))
print(f"chosen on validation: {chosen_signal}; on test it leaves {chosen_row['errors left']:.0f} wrong decisions against "
      f"{chosen_row['random leaves']:.0f} for random referral: ratio {chosen_row['ratio']:.2f} [{chosen_row['low']:.2f}, {chosen_row['high']:.2f}]")
mi_rows = comparison.loc[[k for k in comparison.index if k.startswith("mutual information")]]
print(f"last-layer MC dropout over three seeds: ratio {mi_rows['ratio'].mean():.2f} (seeds {', '.join(f'{v:.2f}' for v in mi_rows['ratio'])})")
if chosen_row["low"] > 1:
    print(f"Referral by {chosen_signal} beats random referral on the test films (the interval lies above 1)"
          + (", by at least the 1.5x the series aims for." if chosen_row["ratio"] >= 1.5 else "; the series' goal of 1.5x is not reached."))
else:
    print(f"The interval of {chosen_signal} reaches 1: on these test films no signal is shown to beat random referral.")

# %% [markdown]
# Two signals hold uncertainty about the backbone too, and both are named by the literature as the ones to
# beat: **dropout through the network** (MC dropout in DenseNet's transition layers, fine-tuned with
# BatchNorm in inference mode) and a **deep ensemble** of independently trained DenseNets
# (Lakshminarayanan et al., "Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles",
# NeurIPS 2017). Each sample then needs its own pass through the backbone, and training needs three more
# fine-tunings of notebook 02. What that costs per film, measured here against the head's samples:

# %%
few_images = chest[:8]
features_model.predict(few_images, verbose=0)  # traced once (a warm-up where it runs eagerly), not timed
start = time.perf_counter()
pooled_few = features_model.predict(few_images, verbose=0)
backbone_s = (time.perf_counter() - start) / len(few_images)
uncertainty.mc_predict(head, pooled_few, samples=mc_samples)
start = time.perf_counter()
uncertainty.mc_predict(head, pooled_few, samples=mc_samples)
head_s = (time.perf_counter() - start) / len(few_images)
print(f"per film: one backbone pass {backbone_s * 1e3:.0f} ms; T={mc_samples} samples of the head {head_s * 1e3:.1f} ms; "
      f"T={mc_samples} backbone passes (dropout through the network, or as many ensemble members) "
      f"{mc_samples * backbone_s * 1e3:.0f} ms, {mc_samples * backbone_s / (backbone_s + head_s):.0f}x the report's sampling")

# %% [markdown]
# On a laptop CPU that is a report of seconds instead of a fraction of one, and three more fine-tunings
# of the backbone in this session, so the series does not train them here; exercise 5 asks you to on a
# GPU. The deterministic signal chosen above is what the report uses.

# %% [markdown]
# ### 6.2 Per finding: present, absent or uncertain, with a guarantee
#
# A referral acts on the whole film. Conformal risk control (Angelopoulos et al., "Conformal Risk
# Control", ICLR 2024) acts per finding: on the validation films, choose the largest threshold below which
# at most $\alpha$ of the films **with** the finding are called absent, counting the rule's own
# finite-sample correction; the same on the films without it bounds the "present" calls. Between the two
# the finding is **uncertain**. `conformal.calibrate` does it; MAPIE's multi-label controller (risk
# `recall`, method `crc`) implements the same rule on a grid of thresholds, and the two must agree there.

# %%
alpha = 0.1
decisions = conformal.calibrate(y["val"], probs["val"], finding_names, alpha=alpha)
grid = np.arange(0, 1, 0.01)
checked = [j for j, label in enumerate(finding_names) if label not in decisions.too_few]
for j in checked:
    scores = probs["val"][y["val"][:, j] == 1, j][:, None]
    controller = MultiLabelClassificationController(predict_function=lambda x: x, risk="recall", method="crc",
                                                    target_level=1 - alpha, predict_params=grid)
    mapie_lambda = float(np.ravel(controller.calibrate(scores, np.ones_like(scores, dtype=int)).best_predict_param)[0])
    ours = conformal.lower_threshold(scores, alpha, grid=grid)
    assert abs(ours - mapie_lambda) < 1e-9, f"{finding_names[j]}: ours {ours}, MAPIE {mapie_lambda}"
print(f"MAPIE and conformal.lower_threshold agree for the {len(checked)} findings with enough validation films; "
      f"too few to guarantee {alpha:.0%} (kept uncertain on that side): {', '.join(decisions.too_few) or 'none'}")
print(decisions.guarantee())

# %%
judged = conformal.judge(decisions, y["test"], probs["test"])
coverage = conformal.pooled_coverage(decisions, y["test"], probs["test"])
print(f"test: {coverage:.1%} of the positive findings are not called absent (nominal {1 - alpha:.0%}); "
      f"{judged['uncertain'].mean():.0%} of the decisions are uncertain")
if abs(coverage - (1 - alpha)) <= 0.02:
    print("The coverage on test is within 2 points of nominal.")
elif coverage > 1 - alpha:
    print("The coverage on test is above nominal: conservative here (findings with too few validation films are never called absent).")
else:
    print("The coverage on test is below nominal by more than 2 points: validation and test films differ, or too few positives.")
judged.round(3)

# %% [markdown]
# The report of notebook 07 refers an image with this rule, so its numbers are saved beside the models.
# The cut-off is a number chosen from data, so it is chosen on the **validation** images, never on the
# test images that judge it: the mean mutual information above which the most uncertain `refer_at` of
# the validation images are referred. The test images then say what share it really refers (near
# `refer_at` only when validation and test look alike). Saved with it: the split, the image count, T and
# the rule; the head fine-tuned with dropout (the report samples it on one backbone pass); and, for the
# U-Net, the mean epistemic uncertainty inside the field of view of the validation photographs (the fundus
# report refers a photograph well above it).

# %%
validation_uncertainty = uncertainty.decompose(
    uncertainty.mc_predict(head, features["val"], samples=mc_samples)).epistemic.mean(axis=1)
refer_limit = report.referral_threshold(validation_uncertainty, refer_at)
referred_val = int((validation_uncertainty > refer_limit).sum())
assert referred_val <= round(refer_at * len(validation_uncertainty)), (
    f"{referred_val} validation images lie above the limit, more than {refer_at:.0%} of them")
referred_share = float((image_uncertainty > refer_limit).mean())  # judged once, on test
unet_level = float(uncertainty.decompose(val_samples.astype(np.float64)).epistemic[np.stack(val_fov)].mean())  # validation, not test
if classifier_trained and not chosen_signal.startswith("mutual information"):  # the deciding classifier's own signal
    refer_limit = report.referral_threshold(signals["val"][chosen_signal], refer_at)
    referred_share = float((signals["test"][chosen_signal] > refer_limit).mean())
    side_files.save_referral(classifier_path, refer_limit, refer_at=refer_at, samples=mc_samples, images=len(wrong_images["val"]),
                         split="validation", signal=chosen_signal, rule=referral.DESCRIPTIONS[chosen_signal],
                         recalibration=recalibration.to_dict(), test_ratio=[float(chosen_row[c]) for c in ("ratio", "low", "high")])
elif classifier_trained:
    side_files.save_referral(classifier_path, refer_limit, refer_at=refer_at, samples=mc_samples,
                         images=len(validation_uncertainty), split="validation")
    head.save(side_files.side_file(classifier_path, side_files.MC_HEAD_SUFFIX))
    if model_card.card_path(classifier_path).is_file():  # notebook 02's card: add the referral rule, the unfamiliar-input cut-off
        model_card.update_card(classifier_path, referral=side_files.load_referral(classifier_path))
if unet_path.is_file():
    side_files.save_referral(unet_path, unet_level, refer_at=refer_at, samples=mc_samples, images=len(fov_all),
                         rule="mean epistemic uncertainty inside the field of view of the validation photographs", split="validation")
    if model_card.card_path(unet_path).is_file():  # notebook 03's card
        model_card.update_card(unet_path, referral={**side_files.load_referral(unet_path),
                                                    "refer_above": f"{report.FUNDUS_REFER_FACTOR:g} times this level"})
print(f"refer when {chosen_signal} is above {refer_limit:.3g}, set on {len(validation_uncertainty)} validation "
      f"images; it refers {referred_share:.0%} of the {len(image_uncertainty)} test images. "
      f"U-Net in-distribution epistemic {unet_level:.5f}; saved beside the models: "
      f"{'classifier' if classifier_trained else 'not the stand-in classifier'}, {'U-Net' if unet_path.is_file() else 'not the stand-in U-Net'}")

# %% [markdown]
# ## 7. Inputs the models have never seen (optional)
#
# Epistemic uncertainty should rise off the training distribution. Four kinds for the chest model:
# Gaussian noise, blur, low contrast, and a fundus photograph (green channel, resized) fed to the chest
# model; and a chest X-ray (and a noisy photograph) fed to the vessel U-Net.

# %%
noise_rng = np.random.default_rng(seed)
fundus_small = np.stack([cv2.resize(g[..., 0], (image_size, image_size), interpolation=cv2.INTER_AREA)
                         for g in (test_grey + train_grey)])[..., None]
kinds = {
    "in distribution": chest,
    "Gaussian noise": np.clip(chest + noise_rng.normal(0, 0.2, chest.shape), 0, 1),
    "blur": np.stack([cv2.GaussianBlur(x, (0, 0), image_size / 32)[..., None] for x in chest]),
    "low contrast": 0.5 + 0.25 * (chest - 0.5),
    "fundus photograph": fundus_small[np.arange(len(chest)) % len(fundus_small)],
}
# one predict call for all kinds (the backbone is deterministic), then T samples of the head per kind
kind_features = np.split(features_model.predict(np.concatenate(list(kinds.values())).astype("float32"), verbose=0), len(kinds))
ood_chest = pd.Series({name: uncertainty.decompose(uncertainty.mc_predict(head, f, samples=mc_samples)).epistemic.mean()
                       for name, f in zip(kinds, kind_features)}, name="DenseNet: mean epistemic")
ood_chest.round(5)

# %%
chest_for_unet = cv2.resize(chest[0, ..., 0], (padded.shape[2], padded.shape[1]))[None, ..., None]
noisy_fundus = np.clip(padded[:1] + noise_rng.normal(0, 0.2, padded[:1].shape), 0, 1).astype("float32")
unet_kinds = {"in distribution (FOV)": (padded[:1], np.pad(test_fov[0], ((0, padded.shape[1] - height), (0, padded.shape[2] - width)))),
              "noisy photograph (FOV)": (noisy_fundus, None), "chest X-ray": (chest_for_unet.astype("float32"), None)}
unet_kinds["noisy photograph (FOV)"] = (noisy_fundus, unet_kinds["in distribution (FOV)"][1])
ood_unet = pd.Series({name: uncertainty.decompose(uncertainty.mc_predict(mc_unet, images, samples=mc_samples, batch_size=batch_size)[:, 0, ..., 0])
                      .epistemic[mask if mask is not None else np.s_[:, :]].mean()
                      for name, (images, mask) in unet_kinds.items()}, name="U-Net: mean epistemic")
ood_unet.round(5)

# %%
chest_ratio = ood_chest.drop("in distribution") / ood_chest["in distribution"]
unet_ratio = ood_unet.drop("in distribution (FOV)") / ood_unet["in distribution (FOV)"]
for model_name, ratio in (("DenseNet", chest_ratio), ("U-Net", unet_ratio)):
    print(f"{model_name}: epistemic uncertainty off distribution / in distribution: "
          + ", ".join(f"{kind} {value:.1f}x" for kind, value in ratio.items()))
    if (ratio <= 1).any():
        print(f"  no warning from {model_name}'s MC dropout for: {', '.join(ratio[ratio <= 1].index)}")
if cfg.profile == "lab" and unet_path.is_file():  # the U-Net of notebook 03, not a stand-in
    assert unet_ratio["noisy photograph (FOV)"] > 2, "noise inside the field of view should at least double the U-Net's epistemic uncertainty"

# %% [markdown]
# Read the table, not only the assertion: not every strange input raises the uncertainty. A model can
# be confidently wrong off distribution. The U-Net tends to call a chest X-ray "no vessel" everywhere,
# with little disagreement between its sub-networks; the DenseNet's dropout acts on pooled features, and
# an input that shrinks those features (a blurred, dimmed or foreign image) shrinks the disagreement too:
# in some lab runs every one of the four kinds scored below the real X-rays. MC dropout is a cheap
# warning light, not an out-of-distribution detector; noise inside the photograph's field of view is
# what the U-Net flags reliably (asserted in lab: more than twice the in-distribution level).

# %% [markdown]
# ### 7.1 A distance from the training films
#
# What dropout's spread misses, a density of the features can see (Lee et al., "A Simple Unified Framework
# for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018; Mukhoti et al., "Deep
# Deterministic Uncertainty", CVPR 2023): fit one Gaussian to the pooled features of the **training**
# films (Ledoit-Wolf shrinkage keeps its 1024 x 1024 covariance invertible with fewer films than
# features), and score an image by its Mahalanobis distance to it. The cut-off is the 99% quantile of the
# **validation** films' distances. Then each kind of unfamiliar input against the test films, as AUROC:
# real files (pydicom-data's chest CR `RG1_UNCR.dcm` and extremity CR `RG3_UNCR.dcm`; scikit-image's
# fundus photograph and microscopy images), the synthetic cells of notebook 08, and altered test films. The
# synthetic set draws no lateral views; a crop of one half of the film, stretched, stands in for one.

# %%
familiar = familiarity.Familiarity.fit(features["train"])
cutoff = familiar.set_cutoff(features["val"])


def as_input(grey):
    """A grey image in [0, 1] at the classifier's input size, as the report reads one."""
    return report.read_chest(np.asarray(grey, np.float32), image_size).model


cells_folder = synthetic.ensure(cfg, "dsb2018")
cell_files = sorted(cells_folder.rglob("images/*.png"))[:ood_images]
unfamiliar_kinds = {
    "real chest CR (RG1)": [report.read_chest(dicom.example_path("RG1_UNCR.dcm"), image_size).model],
    "real extremity CR (RG3)": [report.read_chest(dicom.example_path("RG3_UNCR.dcm"), image_size, allow_non_chest=True).model],
    "real fundus photograph": [as_input(skimage.data.retina()[..., 1] / 255)],
    "real microscopy": [as_input(skimage.data.cell() / 255), as_input(skimage.color.rgb2gray(skimage.data.immunohistochemistry()))],
    "synthetic cells": [as_input(np.squeeze(preprocessing.read_image(f, channels=1))) for f in cell_files],
    "blur": list(kinds["blur"]),
    "Gaussian noise": list(kinds["Gaussian noise"]),
    "inverted": list(1 - chest),
    "rotated 90 degrees": list(np.rot90(chest, axes=(1, 2))),
    "half film (lateral stand-in)": [cv2.resize(x[:, : image_size // 2, 0], (image_size, image_size))[..., None] for x in chest],
}
test_distance = familiar.distance(features["test"])
# one predict call for all kinds, as above, then split back by kind
counts = [len(images) for images in unfamiliar_kinds.values()]
kind_pooled = np.split(features_model.predict(np.concatenate([np.stack(images) for images in unfamiliar_kinds.values()])
                                              .astype("float32"), verbose=0), np.cumsum(counts)[:-1])
rows = {}
for (kind, images), pooled in zip(unfamiliar_kinds.items(), kind_pooled):
    distance = familiar.distance(pooled)
    rows[kind] = {"images": len(images), "AUROC": roc_auc_score(np.r_[np.zeros(len(test_distance)), np.ones(len(distance))],
                                                                np.r_[test_distance, distance]),
                  "flagged": float((distance > cutoff).mean())}
unfamiliar_table = pd.DataFrame(rows).T
print(f"cut-off {cutoff:.4g} (99% of {len(features['val'])} validation films below it); test films flagged "
      f"{(test_distance > cutoff).mean():.0%}; AUROC per kind:")
unfamiliar_table.round(3)

# %%
low = unfamiliar_table.index[unfamiliar_table["AUROC"] < 0.95].tolist()
print(f"mean AUROC over the kinds {unfamiliar_table['AUROC'].mean():.3f}; "
      + (f"below 0.95: {', '.join(low)}" if low else "every kind at 0.95 or above")
      + f"; the real chest CR is {'flagged' if unfamiliar_table.loc['real chest CR (RG1)', 'flagged'] else 'NOT flagged'}")
if cfg.profile != "smoke":  # smoke's few films give a rough Gaussian; from lab on the distance must see the noise and the cells
    assert unfamiliar_table.loc[["Gaussian noise", "synthetic cells"], "AUROC"].min() > 0.9, unfamiliar_table
if classifier_trained:
    familiar.save(side_files.side_file(classifier_path, side_files.FAMILIAR_SUFFIX))
    if model_card.card_path(classifier_path).is_file():
        model_card.update_card(classifier_path, unfamiliar_input={"rule": familiar.rule(),
                                                                  "auroc": unfamiliar_table["AUROC"].round(4).to_dict()})
    print(f"saved beside the classifier; the report will say: {familiar.rule()}")

# %% [markdown]
# ## 8. How many samples are enough? (optional)
#
# The MC estimate is itself random. Repeat it ten times for each T and watch the spread (the standard
# deviation over repeats) of each image's mean epistemic uncertainty shrink, roughly as $1/\sqrt T$.

# %%
t_values = cfg.pick(smoke=[2, 5, 10, 20], lab=[2, 5, 10, 20, 50, 100], full=[2, 5, 10, 20, 50, 100, 200])
subset = features["test"][:50]
spread = {}
for t in t_values:
    repeats = np.stack([uncertainty.decompose(uncertainty.mc_predict(head, subset, samples=t)).epistemic.mean(1) for _ in range(10)])
    spread[t] = {"spread of epistemic": repeats.std(0).mean(), "mean epistemic": repeats.mean()}
spread = pd.DataFrame.from_dict(spread, orient="index")
ax = spread["spread of epistemic"].plot(marker="o", logx=True, logy=True, figsize=(6, 3.5), title="MC estimate's spread against T")
ax.plot(t_values, spread["spread of epistemic"].iloc[0] * np.sqrt(t_values[0] / np.array(t_values)), ":", color="grey", label="1/sqrt(T)")
ax.set_xlabel("T (samples)")
ax.legend()
plt.show()
assert spread["spread of epistemic"].iloc[-1] < spread["spread of epistemic"].iloc[0]
spread.round(5)

# %% [markdown]
# The mutual information is biased low for small T (with two samples it is often near zero), and the
# spread shrinks slowly: 20 to 50 samples is the usual compromise; past that, the cost grows faster
# than the estimate improves.

# %% [markdown]
# ## Summary
#
# * MC dropout: keep dropout on at test time (an `MCDropout` layer), BatchNormalization in inference
#   mode; `model(x, training=True)` gets the second half wrong.
# * T samples are cheapest in few large compiled calls (`uncertainty.mc_predict`,
#   `benchmarks/bench_mc_predict.py`), and, when only the head is random, on cached features.
# * Predictive entropy = expected entropy (aleatoric) + mutual information (epistemic). Epistemic
#   uncertainty lines the vessels and is higher on the misclassified pixels; uncertain vessels come out
#   thin (Seo's Figure 1).
# * A heteroscedastic head learns aleatoric uncertainty directly with the sampled-logit loss.
# * A network without dropout needs it inserted **and** the head fine-tuned with it.
# * Check calibration with a reliability diagram and the ECE; use uncertainty to refer cases, and
#   compare the referral curve with random referral. Off distribution, measure before trusting it:
#   noise raises the U-Net's uncertainty, but strange inputs can lower the classifier's.
# * For the chest films, refer by what the deciding classifier itself says (its margin or expected wrong
#   decisions), chosen on validation and judged on test against random referral with an interval;
#   dropout at the head only is a last-layer approximation and has to earn its place in the same table.
# * Conformal risk control turns each finding into present, absent or uncertain with a stated
#   false-negative guarantee (ours matches MAPIE); a Mahalanobis distance on the pooled features names
#   inputs unlike the training films, which dropout's spread does not.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's samples. Questions marked *discussion* have no check: a model answer is in the
# instructor's guide.
#
# 1. **Bits.** Write the total uncertainty in bits instead of nats, and apply it to the vessel pixels.
#    (A pixel whose samples average 0.5 carries exactly 1 bit.)
# 2. **Variance or mutual information.** Write Spearman's rank correlation: how closely does the
#    predictive variance rank the pixels like the mutual information? Why not exactly? (Why: discussion.)
# 3. **Dropout rate.** The cell below samples the fine-tuned head with dropout 0.5 instead of 0.3: does
#    the epistemic uncertainty rise? Would it still after fine-tuning the head at 0.5? (Discussion.)
# 4. **Temperature scaling.** Write the fit of one temperature T (probabilities sigmoid(logit / T)),
#    fit it on the validation logits of notebook 02's head and compare the test ECE before and after.
# 5. **Backbone uncertainty** (discussion; a GPU). Train notebook 02's classifier with three seeds, a
#    small deep ensemble, and add the spread of the members' probabilities as a signal in section 6.1.
#    Does it beat the expected wrong decisions by enough to pay for the cost printed there?

# %%
# Exercise 1: write entropy_bits(samples) for sigmoid MC samples (T first) -> the entropy of their mean, in bits.
def entropy_bits(samples):
    """Total (predictive) uncertainty per output in bits; p clipped to [1e-7, 1 - 1e-7]."""
    ### BEGIN SOLUTION
    p = np.clip(np.asarray(samples, np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    ### END SOLUTION


exercises.check_entropy_bits(entropy_bits)

# %%
bits = entropy_bits(samples_all)
print(f"vessel photographs: total uncertainty up to {bits.max():.3f} bits, {bits[fov_all].mean():.4f} bits on average inside the FOV")
assert np.allclose(bits, seg.total / np.log(2), atol=1e-5), "your bits passed the check but differ from section 2's nats / ln 2"

# %%
# Exercise 2: write spearman(a, b), Spearman's rank correlation with tied values given their mean rank.
def spearman(a, b):
    """Pearson's correlation of the ranks (pandas' .rank() gives ties their mean rank)."""
    ### BEGIN SOLUTION
    return float(np.corrcoef(pd.Series(np.ravel(a)).rank(), pd.Series(np.ravel(b)).rank())[0, 1])
    ### END SOLUTION


exercises.check_spearman(spearman)

# %%
rank_correlation = spearman(seg.variance[fov_all], seg.epistemic[fov_all])
print(f"Spearman correlation of variance and mutual information inside the FOV: {rank_correlation:.3f} "
      f"({'they rank the pixels much alike' if rank_correlation > 0.5 else 'they rank the pixels differently'})")

# %%
# Exercise 3: the same fine-tuned head's weights, sampled with dropout 0.5.
keras.utils.set_random_seed(seed)
wide = keras.Sequential([keras.Input(features["train"].shape[1:]), uncertainty.MCDropout(0.5),
                         keras.layers.Dense(len(finding_names), activation="sigmoid")])
wide.layers[-1].set_weights(head.layers[-1].get_weights())
wide_epistemic = uncertainty.decompose(uncertainty.mc_predict(wide, features["test"], samples=mc_samples)).epistemic.mean()
print(f"mean epistemic uncertainty of the chest X-ray findings: {cls.epistemic.mean():.4f} at dropout {head_dropout_rate} "
      f"-> {wide_epistemic:.4f} at 0.5 ({'rises' if wide_epistemic > cls.epistemic.mean() else 'does not rise'})")

# %%
# Exercise 4: write fit_temperature(logits, labels) -> the T > 0 minimising the mean BCE of sigmoid(logits / T).
def fit_temperature(logits, finding_names):
    """One temperature for every output: a search on log T (the NLL has one minimum)."""
    ### BEGIN SOLUTION
    z, y = np.ravel(logits).astype(np.float64), np.ravel(finding_names).astype(np.float64)
    nll = lambda log_t: np.mean(np.logaddexp(0.0, z / np.exp(log_t)) - y * z / np.exp(log_t))  # noqa: E731
    low, high = np.log(0.05), np.log(20.0)
    for _ in range(60):  # golden-section search
        a, b = high - 0.618 * (high - low), low + 0.618 * (high - low)
        low, high = (low, b) if nll(a) < nll(b) else (a, high)
    return float(np.exp((low + high) / 2))
    ### END SOLUTION


exercises.check_fit_temperature(fit_temperature)

# %%
kernel_02, bias_02 = (np.asarray(w) for w in original_head.weights)
val_logits, test_logits = (features[name] @ kernel_02 + bias_02 for name in ("val", "test"))
assert np.allclose(1 / (1 + np.exp(-test_logits)), before, atol=1e-5), "these are not the logits of notebook 02's head"
temperature = fit_temperature(val_logits, y["val"])
ece_before = metrics.expected_calibration_error(y["test"], before)
ece_after = metrics.expected_calibration_error(y["test"], 1 / (1 + np.exp(-test_logits / temperature)))
print(f"T = {temperature:.2f} fitted on {len(val_logits)} validation images: test ECE {ece_before:.4f} -> {ece_after:.4f} "
      f"({'better' if ece_after < ece_before else 'not better'} calibrated)")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
