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
# # 05 · Saliency: where did the model look?
#
# **Description:** See what the classifier looked at: CAM, gradients, SmoothGrad, integrated gradients, Grad-CAM and Grad-CAM++, and the checks that tell a map from an edge detector.<br>
# **Needs:** 02's classifier and 03's U-Net (stand-ins when they are missing).<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 05_saliency`.
#
# Six ways to turn a prediction into a picture of the pixels behind it: vanilla and guided gradients,
# SmoothGrad, integrated gradients, Grad-CAM and Grad-CAM++, for the chest X-ray classifier of
# notebook 02 and the vessel U-Net of notebook 03. Then the two questions every saliency map must
# answer before anyone trusts it: does it depend on the model at all, and does it point at the finding?
#
# **You will:** write each method by hand and check it against `helpers.explain` and against
# tf-keras-vis; make guided backpropagation with a custom ReLU gradient on a copy of the model; smooth
# any method with SmoothGrad; check integrated gradients' completeness with two baselines; explain a
# *region* of a segmentation; randomise the model layer by layer from the top (Adebayo et al. 2018) and
# watch the maps change; score every method where the true location is known (heat inside the box, the
# pointing game) against a random heatmap.
#
# **You need:** notebook 02's classifier and notebook 03's U-Net in the model cache (without the
# classifier this notebook trains a small one briefly, so it still runs; its maps mean little).
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `05_saliency` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Seo, *Visualizing Uncertainty and Saliency Maps of Deep Convolutional Neural Networks for
# Medical Imaging Applications* (Ryerson University; section 3.2 and Figure 2: every method and its
# smoothed version side by side on a chest X-ray), Georgieva, *Deep Learning for Medical Imaging*
# (lecture 7, Complements of Machine Learning, Universidade de Aveiro: Grad-CAM upsampled bilinearly,
# guided Grad-CAM), and the papers of each method: Simonyan, Vedaldi and Zisserman, *Deep inside
# convolutional networks* (ICLR workshop 2014; gradients); Springenberg et al., *Striving for
# simplicity: the all convolutional net* (ICLR workshop 2015; guided backpropagation); Smilkov et al.,
# *SmoothGrad: removing noise by adding noise* (ICML workshop 2017); Sundararajan, Taly and Yan,
# *Axiomatic attribution for deep networks* (ICML 2017; integrated gradients); Selvaraju et al.,
# *Grad-CAM: visual explanations from deep networks via gradient-based localization* (ICCV 2017);
# Chattopadhay et al., *Grad-CAM++: generalized gradient-based visual explanations for deep
# convolutional networks* (WACV 2018); Wang et al., *Score-CAM* (CVPR workshops 2020); Adebayo et al.,
# *Sanity checks for saliency maps* (NeurIPS 2018); Zhang et al., *Top-down neural attention by
# excitation backprop* (IJCV 2018; the pointing game).

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
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.stats
import tensorflow as tf
import tf_keras_vis
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.scores import CategoricalScore

from helpers import boxes as box_tools, config, datasets, explain, fundus, models, preprocessing, side_files, splits, synthetic, viz
from helpers.exercises import saliency as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")
warnings.filterwarnings("ignore", message="The structure of `inputs`")  # Keras noise when tf-keras-vis calls a model
warnings.filterwarnings("ignore", category=DeprecationWarning, module="tf_keras_vis")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, tf-keras-vis {tf_keras_vis.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # a partial NIH copy is fine: rows whose image is absent are left out and counted ("all": refuse)
image_size = cfg.pick(smoke=64, lab=128, full=224)  # must match the classifier notebook 02 saved
show_count = cfg.pick(smoke=2, lab=4, full=6)  # test images with a finding, shown method by method
eval_count = cfg.pick(smoke=8, lab=64, full=400)  # test images with a box, for the localisation scores
smooth_samples = cfg.pick(smoke=4, lab=16, full=50)  # SmoothGrad: noisy copies per image
noise_level = 0.05  # SmoothGrad: noise std / image range (Smilkov et al. use 10-20%; see section 6 for why less here)
ig_steps = cfg.pick(smoke=16, lab=64, full=128)  # integrated gradients: points on the path
ig_eval_steps = cfg.pick(smoke=8, lab=16, full=64)  # ... in the localisation comparison (many images)
ig_tolerance = 0.05  # completeness: |sum of attributions - (f(x) - f(baseline))| within 5%
scorecam_channels = cfg.pick(smoke=8, lab=32, full=256)  # Score-CAM: feature maps kept (max_N)
unet_crop = cfg.pick(smoke=64, lab=128, full=256)  # fundus crop explained by the U-Net (multiple of 16)
localisation_layer = models.DENSENET_FEATURES[4]  # section 12's second Grad-CAM: block 4, input/16 (8x8 at 128 px)
randomisation_stages = (1, 10, 40, 121)  # cascading test: top-most convolutional layers randomised
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # as in notebook 02
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, image_size={image_size}, images shown={show_count}, evaluated={eval_count}, "
      f"SmoothGrad samples={smooth_samples} (noise {noise_level:.0%}), IG steps={ig_steps}/{ig_eval_steps}, "
      f"Score-CAM channels={scorecam_channels}, U-Net crop={unet_crop}, localisation layer={localisation_layer}, seed={seed}")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)
classifier_path = cfg.models_dir / models.CLASSIFIER_FILE
unet_path = cfg.models_dir / models.UNET_FILE

# %% [markdown]
# ## 1. Data: test images whose finding has a box
#
# The synthetic set draws every finding of its test films with a known box (`BBox_List_2017.csv`; NIH
# boxed 880 real images, all in its test list), in the PNG's own pixels; `boxes.scaled_boxes` moves it to the model's input size (x and
# w by the width, y and h by the height). For each image we explain the class of its first box.

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
if len(nih.skipped):
    print(f"{len(nih.skipped)} rows left out (a partial copy: images absent); reading {len(nih.entries)} images")
split, split_used = splits.classifier_split(nih, split_method, seed=seed)  # notebook 02's split: the same test films
test_boxes = nih.boxes[nih.boxes.image_index.isin(split["test"].image_index)]
test_boxes = test_boxes.drop_duplicates("image_index").reset_index(drop=True)  # one finding per image
test_boxes["box"] = box_tools.scaled_boxes(test_boxes, image_size)
test_boxes["class_index"] = [finding_names.index(label) for label in test_boxes.label]
print(f"{len(test_boxes)} test images with a box; findings: {test_boxes.label.value_counts().to_dict()}")

shown = test_boxes.iloc[:show_count]
images = preprocessing.load_images(shown.path, image_size)
boxes = list(shown.box)
class_index = shown.class_index.to_numpy()
fig = viz.image_grid(images, titles=list(shown.label), boxes=[[b + (label, "truth")] for b, label in zip(boxes, shown.label)])
plt.show()

# %% [markdown]
# ## 2. The classifier of notebook 02
#
# A flat DenseNet121 (its layers directly in the graph, so the feature maps are reachable) with 14
# sigmoids. If notebook 02 has not run, a small one is trained here for a minute so the notebook
# still runs end to end; its maps are then close to noise, and the localisation checks of section 12
# are reported but not asserted.

# %%
classifier_trained = classifier_path.is_file()  # False: a stand-in, whose maps say little
start = time.perf_counter()
train = split["train"].iloc[: cfg.pick(smoke=32, lab=256, full=1024)]  # used only if notebook 02's model is missing
model = models.classifier_or_stand_in(classifier_path, finding_names, image_size, train.path, train[finding_names].values)
print(f"classifier ready in {time.perf_counter() - start:.0f} s")
assert model.input_shape[1:3] == (image_size, image_size), f"the classifier takes {model.input_shape}: set image_size"
feature_layer = explain.last_conv_layer(model)
# A few images: call the model (Keras's advice for one batch); predict traces a graph that pays back over many.
probabilities = np.asarray(model(images, training=False))[np.arange(len(images)), class_index]
print(f"Grad-CAM layer found automatically: {feature_layer!r} {model.get_layer(feature_layer).output.shape}; "
      f"predicted probability of the boxed finding: {np.round(probabilities, 2).tolist()}")
assert feature_layer == models.feature_layer_name(model)

# %% [markdown]
# ## 3. Vanilla gradients (Simonyan et al. 2013)
#
# How much would the score change if one pixel changed? The gradient of the class probability with
# respect to the input image; the map is its absolute value (the maximum over channels for colour).
# By hand, with a `GradientTape`:

# %%
def gradients_by_hand(model, images, class_index):
    """|d p(class) / d pixel|, max over channels, min-max scaled per image."""
    images = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(images)  # the input is not a variable: ask the tape to follow it
        scores = tf.gather(model(images, training=False), class_index, axis=1, batch_dims=1)
    maps = tf.reduce_max(tf.abs(tape.gradient(scores, images)), axis=-1).numpy()
    low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low + 1e-7)


by_hand = gradients_by_hand(model, images, class_index)
vanilla = explain.vanilla_gradients(model, images, class_index)
print(f"by hand vs explain.vanilla_gradients: max difference {np.abs(by_hand - vanilla).max():.1e}")
assert np.allclose(by_hand, vanilla, atol=1e-4)

# %% [markdown]
# ## 4. Guided backpropagation (Springenberg et al. 2014) (optional)
#
# On the way back, a ReLU passes the gradient where its *input* was positive. Guided backpropagation
# also blocks the *negative gradients*: only what would increase the score flows back. That is a
# custom gradient for ReLU:

# %%
@tf.custom_gradient
def guided_relu_by_hand(x):
    def grad(upstream):
        return upstream * tf.cast(x > 0, upstream.dtype) * tf.cast(upstream > 0, upstream.dtype)
    return tf.nn.relu(x), grad


x, upstream = tf.constant([-1.0, 2.0, 3.0]), tf.constant([1.0, -1.0, 2.0])
for relu in (tf.nn.relu, guided_relu_by_hand, explain.guided_relu):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = relu(x)
    print(f"{relu.__name__:14s} gradient: {tape.gradient(y, x, output_gradients=upstream).numpy()}")
# ReLU passes [0, -1, 2]; guided ReLU also stops the -1.

# %% [markdown]
# DenseNet's ReLUs are `Activation("relu")` layers. `explain.guided_model` clones the model with each of
# them swapped for the guided ReLU and copies the weights: the original model is untouched.

# %%
start = time.perf_counter()
guided = explain.guided_model(model)
swapped = [layer.name for layer in guided.layers if getattr(layer, "activation", None) is explain.guided_relu]
print(f"guided copy in {time.perf_counter() - start:.0f} s: {len(swapped)} ReLUs swapped; original still plain: "
      f"{model.get_layer(feature_layer).activation is keras.activations.relu}")
# Forward, the copy is the same model (called directly: a one-off predict() would compile a function).
assert np.allclose(guided(images, training=False), model(images, training=False), atol=1e-5)
guided_maps = explain.guided_backprop(model, images, class_index)

# %% [markdown]
# ## 5. Grad-CAM, Grad-CAM++ and guided Grad-CAM
#
# Grad-CAM (Selvaraju et al. 2017) weighs each channel k of the last feature map A by the average of its
# gradient, adds them up and keeps the positive part: ReLU(sum_k mean(dy/dA_k) A_k). The paper's y is
# the class score *before* the output non-linearity: for our sigmoid head the logit z, the Dense layer's
# pre-activation (why it matters is shown below). By hand:

# %%
def grad_cam_by_hand(model, images, class_index, layer_name):
    """Grad-CAM of the logit at layer_name, bilinearly upsampled to the input, min-max scaled."""
    head = model.get_layer("predictions")
    extractor = keras.Model(model.input, [model.get_layer(layer_name).output, head.input])
    with tf.GradientTape() as tape:
        features, pooled = extractor(tf.constant(images), training=False)
        logits = tf.matmul(pooled, head.kernel) + head.bias  # the score before the sigmoid
        scores = tf.gather(logits, class_index, axis=1, batch_dims=1)
    grads = tape.gradient(scores, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # one weight per channel
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    low, high = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    return (cam - low) / (high - low + 1e-7)


cam_by_hand = grad_cam_by_hand(model, images, class_index, feature_layer)
cam = explain.grad_cam(model, images, class_index, layer_name=feature_layer)
print(f"by hand vs explain.grad_cam: max difference {np.abs(cam_by_hand - cam).max():.1e}")
assert np.allclose(cam_by_hand, cam, atol=1e-4)

# %% [markdown]
# **CAM**, the method Grad-CAM generalises (Zhou et al., *Learning Deep Features for Discriminative
# Localization*, CVPR 2016), needs no gradient at all. With a global-average-pooling head the logit is
# z = sum_k w_k mean(A_k) + b, so the map sum_k w_k A_k says exactly how much each cell adds to it, and
# Grad-CAM's channel weights are the same w_k over the map's area h*w. Check it on the raw maps, before
# any scaling:

# %%
dense_kernel = model.get_layer("predictions").kernel.numpy()  # (channels, findings)
feature_maps = np.asarray(keras.Model(model.input, model.get_layer(feature_layer).output)(images, training=False))  # one call: no predict()
cam_raw = np.einsum("bhwk,kb->bhw", feature_maps, dense_kernel[:, class_index])  # each image with its own finding
class_activation_map = explain.upsample(np.maximum(cam_raw, 0), images.shape[1:3])
area = cam_raw.shape[1] * cam_raw.shape[2]
grad_cam_raw = explain.grad_cam(model, images, class_index, layer_name=feature_layer, normalize_map=False)
error = np.abs(grad_cam_raw - class_activation_map / area).max() / max(np.abs(grad_cam_raw).max(), 1e-30)
print(f"Grad-CAM vs CAM/(h w) on the raw maps: largest difference {error:.1e} of the largest value")
assert error < 1e-3, "with a GAP + dense head, Grad-CAM of the logit must be CAM over the map's area"

# %% [markdown]
# **Why the logit.** The gradient of the probability p = sigmoid(z) is p(1 - p) times the logit's, one
# positive number per image: the min-max scaled maps are the same, *until p saturates*. For a finding
# the model is sure of, p(1 - p) is tiny (in float32, p rounds to exactly 1 for z above about 17), the
# probability's map is numerically flat and the most confident finding loses its heatmap and its box.
# A copy of the classifier whose bias makes one film's finding confident (p = 1 - 1e-6) shows it:

# %%
k = int(np.argmax(cam.reshape(len(cam), -1).max(axis=1)))  # a film whose map shows something
target = int(class_index[k])
confident_model = keras.models.clone_model(model)
confident_model.set_weights(model.get_weights())
confident_model.run_eagerly = True  # two maps of one film: explain runs it eagerly, no gradient graph to trace
head_kernel, head_bias = confident_model.get_layer("predictions").get_weights()
pooled_one = np.asarray(keras.Model(model.input, model.get_layer("predictions").input)(images[k:k + 1], training=False))[0]
head_bias[target] = np.log(1e6) - pooled_one @ head_kernel[:, target]  # logit 13.8: p = 1 - 1e-6
confident_model.get_layer("predictions").set_weights([head_kernel, head_bias])
p_confident = float(confident_model(images[k:k + 1], training=False)[0, target])
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    on_probability = explain.grad_cam(confident_model, images[k:k + 1], target, layer_name=feature_layer, score="probability")
on_logit = explain.grad_cam(confident_model, images[k:k + 1], target, layer_name=feature_layer)
print(f"p = {p_confident:.7f}: Grad-CAM of the probability has maximum {on_probability.max():.2f} "
      f"({'flat, with a warning' if said else 'not flat'}); of the logit {on_logit.max():.2f}, "
      f"the same map as before the bias moved: {np.abs(on_logit[0] - cam[k]).max():.1e}")
if cam[k].max() > 0:
    assert on_logit.max() > 0.99 and np.allclose(on_logit[0], cam[k], atol=1e-3), "the logit's map must survive the confident bias"
else:
    print("every film's map is flat for this model, so there is no map to keep: train it longer (lab profile)")

# %% [markdown]
# **The resolution limit.** DenseNet121 divides the image by 32: at 128 px the last feature map is 4x4
# (2x2 in the smoke profile), so Grad-CAM has 16 cells to say where a finding is, then interpolates. A
# nodule of 10 px cannot be resolved, only the quarter of the lung it sits in. Remedies: a larger input
# (224 px gives 7x7), an earlier layer (`layer_name="pool4_relu"`, input/16), or guided Grad-CAM, which
# multiplies the coarse map by the pixel-fine guided gradient.

# %%
grid = model.get_layer(feature_layer).output.shape[1]
print(f"feature map {grid}x{grid} at {image_size} px: one Grad-CAM cell covers {image_size // grid}x{image_size // grid} pixels")
cam_pp = explain.grad_cam_plus_plus(model, images, class_index)
guided_cam = explain.guided_grad_cam(model, images, class_index)
fig = viz.saliency_grid(images, {"Grad-CAM": cam, "Grad-CAM++": cam_pp, "guided Grad-CAM": guided_cam}, boxes=boxes,
                        row_titles=[f"{label} p={p:.2f}" for label, p in zip(shown.label, probabilities)])
plt.show()

# %% [markdown]
# **Grad-CAM++** (Chattopadhay et al., WACV 2018) weighs each *position* of a channel too: w_k =
# sum_ij alpha_ij^k ReLU(dS/dA_ij^k), with alpha = g² / (2 g² + g³ sum_ab A_ab^k) and g = dS/dA. That
# closed form assumes S is the score *before* the output activation (exp(S) with S linear in the
# feature map): for our sigmoid head, the **logit**, not the probability. As in the authors' code,
# alpha is normalised over the positions where the gradient is positive. By hand, from the logit
# (the Dense layer's pre-activation):

# %%
def grad_cam_plus_plus_by_hand(model, images, class_index, layer_name):
    """Grad-CAM++ on the logit of a sigmoid Dense head, upsampled bilinearly, min-max scaled."""
    head = model.get_layer("predictions")
    extractor = keras.Model(model.input, [model.get_layer(layer_name).output, head.input])
    with tf.GradientTape() as tape:
        features, pooled = extractor(tf.constant(images), training=False)
        logits = tf.gather(keras.ops.matmul(pooled, head.kernel) + head.bias, class_index, axis=1, batch_dims=1)  # before the sigmoid
    g = tape.gradient(logits, features).numpy().astype("float64")
    a = features.numpy().astype("float64")
    denominator = 2 * g**2 + g**3 * a.sum(axis=(1, 2), keepdims=True)
    alpha = g**2 / np.where(denominator != 0, denominator, 1.0)
    norm = np.where(g > 0, alpha, 0.0).sum(axis=(1, 2), keepdims=True)  # over positive gradients
    alpha /= np.where(norm != 0, norm, 1.0)
    cam = np.maximum(((alpha * np.maximum(g, 0)).sum(axis=(1, 2), keepdims=True) * a).sum(axis=-1), 0)
    cam = tf.image.resize(cam[..., None], images.shape[1:3], method="bilinear")[..., 0].numpy()
    low, high = cam.min(axis=(1, 2), keepdims=True), cam.max(axis=(1, 2), keepdims=True)
    return (cam - low) / (high - low + 1e-7)


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a map may be flat (zeros): both sides handle it alike
    pp_by_hand = grad_cam_plus_plus_by_hand(model, images, class_index, localisation_layer)
    pp_block4 = explain.grad_cam_plus_plus(model, images, class_index, layer_name=localisation_layer)
    cam_block4 = explain.grad_cam(model, images, class_index, layer_name=localisation_layer)
print(f"by hand vs explain.grad_cam_plus_plus at {localisation_layer}: max difference {np.abs(pp_by_hand - pp_block4).max():.1e}")
assert np.allclose(pp_by_hand, pp_block4, atol=1e-4)

# %% [markdown]
# **Where Grad-CAM++ differs from Grad-CAM.** At the last layer, global average pooling gives every
# position of a channel the same logit gradient: alpha is then the same everywhere, and Grad-CAM++ is
# Grad-CAM without the negatively weighted channels. At block 4 the gradient varies over positions
# (a whole dense block lies between it and the pooling), so the two maps can differ in where they put
# the heat. The numbers say how much, per image:

# %%
pp_vs_cam = pd.DataFrame({
    "finding": list(shown.label),
    f"rank corr. at {feature_layer}": explain.rank_correlation(cam, cam_pp),
    f"rank corr. at {localisation_layer}": explain.rank_correlation(cam_block4, pp_block4),
    f"max |diff| at {localisation_layer}": np.abs(cam_block4 - pp_block4).max(axis=(1, 2)),
})
differs = pp_vs_cam[f"max |diff| at {localisation_layer}"].max() > 0.1
print(f"at {localisation_layer}, Grad-CAM++ {'differs visibly from' if differs else 'stays within 0.1 of'} Grad-CAM "
      f"(largest difference {pp_vs_cam[f'max |diff| at {localisation_layer}'].max():.2f} on the [0, 1] maps)")
fig = viz.saliency_grid(images, {f"Grad-CAM {localisation_layer}": cam_block4, f"Grad-CAM++ {localisation_layer}": pp_block4,
                                 "|difference|": np.abs(cam_block4 - pp_block4)}, boxes=boxes, row_titles=list(shown.label))
plt.show()
pp_vs_cam.round(3)

# %% [markdown]
# ## 6. SmoothGrad (Smilkov et al. 2017)
#
# Gradients are noisy: a tiny change of the input flips many ReLUs. SmoothGrad averages the map over
# copies of the image with Gaussian noise. It wraps any method; the noisy copies of all images go
# through the model in full batches. Smilkov et al. use noise of 10-20% of the image's range, but our
# classifier never saw noise in training: at 20% its probability for every finding collapses to ~0,
# the sigmoid saturates, every gradient underflows to zero and the maps come back empty (with a
# warning). **Check the prediction on the noisy copies**: the noise must not change the answer you explain.
# A model whose probability moves a lot at 5% is brittle to noise, which is itself worth knowing before
# trusting any of its maps (the cell says which it is here).

# %%
start = time.perf_counter()
smooth_vanilla = explain.smoothgrad(explain.vanilla_gradients, model, images, class_index, samples=smooth_samples,
                                    noise_level=noise_level, seed=seed)
smooth_guided = explain.smoothgrad(explain.guided_backprop, model, images, class_index, samples=smooth_samples,
                                   noise_level=noise_level, seed=seed)
smooth_cam = explain.smoothgrad(explain.grad_cam, model, images, class_index, samples=smooth_samples,
                                noise_level=noise_level, seed=seed)
print(f"SmoothGrad, 3 methods x {smooth_samples} samples x {len(images)} images: {time.perf_counter() - start:.1f} s")
for level in (noise_level, 0.2):
    noisy = images + np.random.default_rng(seed).normal(size=images.shape).astype("float32") * level
    noisy_probabilities = np.asarray(model(noisy, training=False))[np.arange(len(images)), class_index]
    shift = np.abs(noisy_probabilities - probabilities).max()
    print(f"noise {level:.0%} of the range: probability of the finding {np.round(noisy_probabilities, 3).tolist()} "
          f"(clean: {np.round(probabilities, 3).tolist()}): {'brittle' if shift > 0.1 else 'stable'}, largest shift {shift:.3f}")

# %% [markdown]
# ## 7. Integrated gradients (Sundararajan et al. 2017)
#
# A gradient is local; integrated gradients add up the gradient along a straight path from a
# *baseline* x' (an image that means "nothing") to the image x:
# IG_i = (x_i - x'_i) * integral over a in [0, 1] of df/dx_i(x' + a (x - x')). The trapezoidal rule on
# `ig_steps` points computes the integral; **completeness** checks it: the attributions must add up to
# f(x) - f(x'). By hand, for one image:

# %%
def integrated_gradients_by_hand(model, image, class_index, baseline, steps):
    alphas = np.linspace(0, 1, steps, dtype=np.float32)[:, None, None, None]
    path = tf.constant(baseline + alphas * (image - baseline))  # all the steps in one batch
    with tf.GradientTape() as tape:
        tape.watch(path)
        scores = model(path, training=False)[:, class_index]
    grads = tape.gradient(scores, path).numpy()
    integral = (grads[:-1] + grads[1:]).sum(axis=0) / 2 / (steps - 1)  # trapezoidal rule
    return (image - baseline) * integral, scores.numpy()


black = np.zeros_like(images[0])
ig_hand, path_scores = integrated_gradients_by_hand(model, images[0], class_index[0], black, ig_steps)
ig_black = explain.integrated_gradients(model, images, class_index, baseline="black", steps=ig_steps, tolerance=ig_tolerance)
print(f"by hand: sum {ig_hand.sum():.4f}, f(x) - f(black) = {path_scores[-1] - path_scores[0]:.4f}; "
      f"explain: max difference {np.abs(ig_hand - ig_black.attributions[0]).max():.1e}")
assert np.allclose(ig_hand, ig_black.attributions[0], atol=1e-5)

# %% [markdown]
# The baseline matters: black says "what makes this image more than darkness", a blurred copy says
# "what makes it more than its blurred self" (edges and small findings), noise is a third choice.

# %%
ig_blurred = explain.integrated_gradients(model, images, class_index, baseline="blurred", steps=ig_steps, tolerance=ig_tolerance)
completeness = pd.DataFrame({
    "finding": list(shown.label), "f(x)": ig_black.scores,
    "f(black)": ig_black.baseline_scores, "sum IG black": ig_black.sums, "error black": ig_black.relative_error,
    "f(blurred)": ig_blurred.baseline_scores, "sum IG blurred": ig_blurred.sums, "error blurred": ig_blurred.relative_error,
})
completeness.round(4)

# %% [markdown]
# The check is the method's own test (Sundararajan et al.): where an image misses the tolerance, the
# Riemann sum has too few steps on a steep part of the path, so compute that image again with four times
# as many. A small gap f(x) - f(baseline) is the hard case: the same absolute error is a larger share of it.

# %%
for name, result, baseline in (("black", ig_black, "black"), ("blurred", ig_blurred, "blurred")):
    redo = np.flatnonzero(~result.complete)
    if redo.size:
        finer = explain.integrated_gradients(model, images[redo], class_index[redo], baseline=baseline, steps=4 * ig_steps, tolerance=ig_tolerance)
        print(f"{name}: {redo.size} image(s) over {ig_tolerance:.0%} at {ig_steps} steps; at {4 * ig_steps}: "
              f"{np.round(result.relative_error[redo], 3).tolist()} -> {np.round(finer.relative_error, 3).tolist()}")
        completeness.loc[redo, f"error {name}"] = finer.relative_error
worst = completeness[["error black", "error blurred"]].to_numpy().max()
print(f"worst completeness error, each image at the steps it needed: {worst:.2%} (tolerance {ig_tolerance:.0%})")
if cfg.profile != "smoke":  # 16 to 64 steps in smoke are too few to promise it
    assert worst <= ig_tolerance, completeness

# %% [markdown]
# ## 8. All methods side by side, plain and smoothed
#
# As in Seo's Figure 2: every method and its SmoothGrad version on the same images, the true box drawn.
# Gradient maps are speckled and sharp; Grad-CAM maps are blobs at the 4x4 grid's resolution.

# %%
methods = {
    "gradient": vanilla, "SmoothGrad": smooth_vanilla,
    "guided": guided_maps, "guided SG": smooth_guided,
    "IG black": ig_black.heatmap(), "IG blurred": ig_blurred.heatmap(),
    "Grad-CAM": cam, "Grad-CAM SG": smooth_cam, "Grad-CAM++": cam_pp, "guided Grad-CAM": guided_cam,
}
fig = viz.saliency_grid(images, methods, boxes=boxes, row_titles=list(shown.label), size=1.6)
plt.show()

# %% [markdown]
# ## 9. The same with tf-keras-vis (optional)
#
# tf-keras-vis implements these methods too. On the same model and class the helpers must agree with
# it. One difference is deliberate: tf-keras-vis upsamples with `scipy.ndimage.zoom(order=1)`, which
# pins the corner cells to the corner pixels and stretches the grid (at 4x4 -> 128 a cell centre moves
# by up to 16 px); `explain` uses half-pixel bilinear resizing, which keeps each cell over the pixels it
# saw. With `upsampling="align_corners"` the helpers reproduce tf-keras-vis. Its Grad-CAM++ differs on
# purpose: it uses the probability (not the logit) and normalises alpha over all positions (not only
# the positive-gradient ones). At the last layer neither matters (after global average pooling alpha
# is constant over a channel, so both normalise to the same weights), and the two must agree; at block
# 4 they part.

# %%
score = CategoricalScore(class_index.tolist())
start = time.perf_counter()
vis_cam = Gradcam(model)(score, images, penultimate_layer=feature_layer, seek_penultimate_conv_layer=False)
vis_saliency = Saliency(model)(score, images)
vis_cam_pp = GradcamPlusPlus(model)(score, images, penultimate_layer=feature_layer, seek_penultimate_conv_layer=False)
vis_pp_block4 = GradcamPlusPlus(model)(score, images, penultimate_layer=localisation_layer, seek_penultimate_conv_layer=False)
vis_smooth = Saliency(model)(score, images, smooth_samples=smooth_samples, smooth_noise=noise_level)
print(f"tf-keras-vis, four methods: {time.perf_counter() - start:.1f} s")
agreement = pd.Series({
    "Grad-CAM (align_corners)": np.abs(explain.grad_cam(model, images, class_index, upsampling="align_corners",
                                                        score="probability") - vis_cam).max(),
    "Grad-CAM (half-pixel)": np.abs(cam - vis_cam).max(),
    "saliency": np.abs(vanilla - vis_saliency).max(),
    "Grad-CAM++ (align_corners)": np.abs(explain.grad_cam_plus_plus(model, images, class_index, upsampling="align_corners") - vis_cam_pp).max(),
    f"Grad-CAM++ at {localisation_layer} (align_corners)": np.abs(explain.grad_cam_plus_plus(
        model, images, class_index, layer_name=localisation_layer, upsampling="align_corners") - vis_pp_block4).max(),
    "SmoothGrad: rank correlation": explain.rank_correlation(smooth_vanilla, vis_smooth).mean(),
}, name="max |helpers - tf-keras-vis|")
agreement.round(6)

# %%
assert agreement["Grad-CAM (align_corners)"] < 1e-4 and agreement["saliency"] < 1e-4
assert agreement["Grad-CAM++ (align_corners)"] < 1e-3  # float32 cubes in tf-keras-vis, float64 here
block4_gap = agreement[f"Grad-CAM++ at {localisation_layer} (align_corners)"]
print("explain.grad_cam, explain.vanilla_gradients and (at the last layer) explain.grad_cam_plus_plus match tf-keras-vis; "
      f"at {localisation_layer} Grad-CAM++ {'differs by' if block4_gap > 1e-3 else 'still agrees within'} {block4_gap:.3f}.")

# %% [markdown]
# **Score-CAM on a sigmoid head.** Score-CAM (Wang et al. 2020) masks the image with each upsampled
# feature map and scores the masked images. tf-keras-vis passes the outputs through **softmax** before
# scoring, which suits a single-label softmax head. Ours has 14 independent sigmoids: a softmax across
# them mixes the findings (a higher Effusion probability would lower "Nodule"'s score). The fix:
# `explain.sigmoid_as_softmax(model, c)` adds two outputs, [log p_c, log(1 - p_c)], whose softmax is
# exactly [p_c, 1 - p_c]; class 0 of that model is the probability we want.

# %%
two_way = explain.sigmoid_as_softmax(model, int(class_index[0]))
two_way.run_eagerly = True  # Score-CAM predicts a batch or two: cheaper eagerly than tracing predict
print(f"softmax of the two-way head: {keras.ops.softmax(two_way(images[:1]))[0, 0]:.4f}, "
      f"the sigmoid: {model(images[:1])[0, class_index[0]]:.4f}, softmax over the 14 sigmoids: "
      f"{keras.ops.softmax(model(images[:1]))[0, class_index[0]]:.4f}")
start = time.perf_counter()
keras.config.disable_interactive_logging()  # tf-keras-vis calls predict() without verbose=0: no progress bar here
try:
    score_cam = Scorecam(two_way)(CategoricalScore([0]), images[:1], penultimate_layer=feature_layer,
                                  seek_penultimate_conv_layer=False, max_N=scorecam_channels)
finally:
    keras.config.enable_interactive_logging()
print(f"Score-CAM on {scorecam_channels} feature maps: {time.perf_counter() - start:.1f} s")
fig = viz.saliency_grid(images[:1], {"Score-CAM (two-way head)": score_cam, "Grad-CAM": vis_cam[:1], "tf-keras-vis SmoothGrad": vis_smooth[:1]},
                        boxes=boxes[:1])
plt.show()

# %% [markdown]
# ## 10. Segmentation: what makes the U-Net see a vessel here? (optional)
#
# For a segmentation the score is a sum over a **region** of the output: the predicted vessel
# probability inside a box (or a mask). Every method then explains that region. The U-Net of notebook
# 03 is fully convolutional, so it takes a crop of a preprocessed test photograph.

# %%
drive = fundus.read_drive(synthetic.ensure(cfg, "drive"))
rgb, vessels, fov = fundus.load_drive(drive.test[0])
settings = side_files.load_settings(unet_path)  # notebook 03's preprocessing; its defaults where the file is absent
grey = preprocessing.clahe(preprocessing.fundus_to_grey(rgb, settings["grey_method"]), settings["clahe_clip"], settings["clahe_tile"])
top, left = (np.array(grey.shape) - unet_crop) // 2  # the centre of the photograph, where vessels cross
crop = grey[top:top + unet_crop, left:left + unet_crop][None, ..., None].astype("float32")
if unet_path.is_file():
    unet = models.load_model(unet_path)
else:
    print(f"{unet_path} is missing: an untrained U-Net stands in (run notebook 03)")
    unet = models.unet(base_filters=8)
vessel_probability = np.asarray(unet(crop, training=False))[0, ..., 0]
# The region: a box around the brightest predicted vessel pixels in the crop's centre.
cy, cx = np.unravel_index(np.argmax(vessel_probability[unet_crop // 4:-unet_crop // 4, unet_crop // 4:-unet_crop // 4]), (unet_crop // 2,) * 2)
region = (cx + unet_crop // 4 - 6, cy + unet_crop // 4 - 6, 12, 12)
print(f"region {region}: predicted vessel probability inside sums to {explain.box_mask(region, crop.shape[1:3]).astype(float).ravel() @ vessel_probability.ravel():.1f}")

# %%
unet_maps = {
    "gradient": explain.vanilla_gradients(unet, crop, region=region),
    "IG black": explain.integrated_gradients(unet, crop, region=region, steps=ig_steps, tolerance=ig_tolerance).heatmap(),
    "Grad-CAM (last decoder)": explain.grad_cam(unet, crop, region=region),
    "Grad-CAM (bottleneck)": explain.grad_cam(unet, crop, region=region, layer_name="bottleneck_relu2"),
}
fig = viz.saliency_grid(crop, {"vessel probability": vessel_probability[None], **unet_maps}, boxes=[region], size=2.4)
plt.show()
print(f"automatic Grad-CAM layer of the U-Net: {explain.last_conv_layer(unet)!r} (full resolution); the bottleneck is "
      f"{unet_crop // 16}x{unet_crop // 16} at this {unet_crop}-px crop")
near = (region[0] - 8, region[1] - 8, region[2] + 16, region[3] + 16)  # the box grown by 8 px on each side
near_share = pd.Series({name: explain.heat_in_box(maps, [near])[0] for name, maps in unet_maps.items()}, name="heat within 8 px of the box")
near_share.round(3)

# %% [markdown]
# A vessel pixel's probability depends only on the pixels within the U-Net's receptive field, most on
# the vessel itself: the gradient and integrated gradients should keep most of their heat near the box
# (the table measures it, against the box's small share of the crop). The bottleneck's Grad-CAM is
# coarse (input/16) and spreads over the context the deepest layer combines.

# %% [markdown]
# ## 11. Sanity check: randomise the model, cascading from the top (Adebayo et al. 2018)
#
# A saliency map that explains the *model* must change when the model's weights are destroyed. Re-draw
# the weights of the top 1, 10, 40 and finally all 121 convolutional and dense layers (the ones nearest
# the output first), and compare each map with the original by Spearman rank correlation. The weights
# change in place inside `explain.randomized` (so the compiled functions are reused) and come back on exit.

# %%
weighted_layers = [layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))][::-1]
original = {"gradient": vanilla, "guided": guided_maps, "Grad-CAM": cam}
rows = []
for count in randomisation_stages:
    top_layers = weighted_layers[:count]
    with explain.randomized(model, top_layers, seed=seed), explain.randomized(guided, top_layers, seed=seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a destroyed model often gives flat Grad-CAM maps: zeros, warned
            random_maps = {
                "gradient": explain.vanilla_gradients(model, images, class_index),
                "guided": explain.guided_backprop(model, images, class_index),
                "Grad-CAM": explain.grad_cam(model, images, class_index),
            }
    rows.append({"randomised": f"top {count} ({top_layers[-1]})",
                 **{name: explain.rank_correlation(original[name], maps).mean() for name, maps in random_maps.items()}})
randomisation = pd.DataFrame(rows).set_index("randomised")
assert np.allclose(explain.vanilla_gradients(model, images, class_index), vanilla, atol=1e-5), "weights restored"
randomisation.round(3)

# %%
ax = randomisation.reset_index(drop=True).plot(marker="o", figsize=(7, 3), title="rank correlation with the trained model's map")
ax.set_xticks(range(len(randomisation)), [name.split(" (")[0] for name in randomisation.index])  # the layers are in the table
ax.set_xlabel("layers randomised, from the output down")
ax.axhline(0.5, color="grey", linestyle=":")
ax.set_ylabel("Spearman")
viz.export_figure(ax, "randomisation_curve")  # for slides: writes PNG and SVG only under `make figures`
plt.show()
final = randomisation.iloc[-1]
print(f"fully randomised: gradient {final['gradient']:.2f}, guided {final['guided']:.2f}, Grad-CAM {final['Grad-CAM']:.2f}")
if cfg.profile == "lab" or randomisation.nunique().max() > 1:
    assert final["gradient"] < 0.5 and final["Grad-CAM"] < 0.5, randomisation
else:  # a smoke-sized model can saturate: every randomised model then gives the same flat maps
    print("the randomised maps did not change from stage to stage (a saturated smoke-sized model): nothing to judge here")

# %% [markdown]
# **Reading it.** The gradient and Grad-CAM maps lose their ranks as the layers go: they depend on what
# the model learned. A map that barely changes when the weights are destroyed is a **warning sign**: it
# shows the image (edges, bright structures), not the model's reasoning. Adebayo et al. found guided
# backpropagation to be such a method on ImageNet models: watch its column above, and never present a
# method that has not passed this test as "what the model looked at".

# %% [markdown]
# ## 12. Do the maps point at the finding?
#
# On the synthetic set the true location of every finding is known. Two scores per method, on
# `eval_count` test images: the **fraction of the heat inside the true box** (the unnormalised map's
# positive mass), and the **pointing game** (Zhang et al. 2018): a hit when the map's maximum falls in
# the box. An upsampled map's maximum is rarely one pixel (an edge cell becomes a flat plateau reaching
# the border), so `explain.pointing_game` counts a hit when *any* maximal pixel is in the box; `argmax`
# would judge only the plateau's top-left pixel. A uniform random heatmap hits with probability equal
# to the box's area fraction: that is the bar to clear. Grad-CAM runs twice: at the last feature map (`relu`, 4x4) and at block 4
# (`pool4_relu`, 8x8), to measure the resolution limit of section 5.

# %%
evaluated = test_boxes.iloc[:eval_count]
eval_images = preprocessing.load_images(evaluated.path, image_size)
eval_boxes = list(evaluated.box)
eval_classes = evaluated.class_index.to_numpy()
start = time.perf_counter()
eval_maps = {
    "gradient": explain.vanilla_gradients(model, eval_images, eval_classes, normalize_map=False),
    "guided": explain.guided_backprop(model, eval_images, eval_classes, normalize_map=False),
    "IG black": explain.integrated_gradients(model, eval_images, eval_classes, steps=ig_eval_steps, tolerance=1.0).heatmap(normalize_map=False),
    "Grad-CAM": explain.grad_cam(model, eval_images, eval_classes, normalize_map=False),
    f"Grad-CAM {localisation_layer}": explain.grad_cam(model, eval_images, eval_classes, layer_name=localisation_layer, normalize_map=False),
    "Grad-CAM++": explain.grad_cam_plus_plus(model, eval_images, eval_classes, normalize_map=False),
    "guided Grad-CAM": explain.guided_grad_cam(model, eval_images, eval_classes, normalize_map=False),
    "random": np.random.default_rng(seed).uniform(size=eval_images.shape[:3]),
}
print(f"{len(eval_maps)} methods on {len(eval_images)} images: {time.perf_counter() - start:.0f} s")
box_fractions = [explain.box_mask(b, eval_images.shape[1:3]).mean() for b in eval_boxes]  # a random map hits image i with this probability
area_fraction = np.mean(box_fractions)
localisation = pd.DataFrame({
    "heat in box": {name: explain.heat_in_box(maps, eval_boxes).mean() for name, maps in eval_maps.items()},
    "pointing game": {name: explain.pointing_game(maps, eval_boxes).mean() for name, maps in eval_maps.items()},
})
print(f"box area fraction (the random heatmap's expected score on both): {area_fraction:.3f}")
localisation.round(3)

# %% [markdown]
# **The resolution limit, measured.** Upsampled bilinearly, a map with one hot cell peaks at that
# cell's centre, or, for a cell on the edge of the grid, on the plateau from the centre to the border.
# A box that no such peak reaches can never be hit, however good the model: at 4x4 the centres sit
# 32 px apart, and a nodule's 20 px box often falls between them. `explain.pointing_ceiling` makes each
# cell the single maximum in turn, upsamples it as Grad-CAM does and plays the pointing game: the
# ceiling is the fraction of boxes some cell can hit.

# %%
last_cells, block4_cells = grid, model.get_layer(localisation_layer).output.shape[1]
ceilings = {"Grad-CAM": explain.pointing_ceiling(eval_boxes, last_cells, eval_images.shape[1:3]).mean(),
            f"Grad-CAM {localisation_layer}": explain.pointing_ceiling(eval_boxes, block4_cells, eval_images.shape[1:3]).mean()}
for name, ceiling in ceilings.items():
    print(f"{name:22s} pointing game {localisation.loc[name, 'pointing game']:.2f}, ceiling {ceiling:.2f}")

# %%
hit_rate = localisation.loc["Grad-CAM", "pointing game"]
hit_rate_block4 = localisation.loc[f"Grad-CAM {localisation_layer}", "pointing game"]
print(f"Grad-CAM pointing game: last layer ({last_cells}x{last_cells}) {hit_rate:.2f}, {localisation_layer} "
      f"({block4_cells}x{block4_cells}) {hit_rate_block4:.2f}, against {area_fraction:.2f} for a random heatmap")
# A random heatmap hits image i with probability p_i, its box's area fraction (`box_fractions`): its number
# of hits follows the Poisson binomial distribution. The chance that it hits at least as often as Grad-CAM:
chance_of = {name: float(scipy.stats.poisson_binom(box_fractions).sf(round(rate * len(eval_boxes)) - 1))
             for name, rate in ((localisation_layer, hit_rate_block4), ("the last layer", hit_rate))}
for name, p_value in chance_of.items():
    print(f"Grad-CAM at {name}: a random heatmap scores as many hits with probability {p_value:.1e}: "
          f"{'beats' if p_value < 1e-3 else 'does not clearly beat'} random pointing")
if cfg.profile == "lab" and cfg.synthetic and classifier_trained:
    # Notebook 02's model only (a stand-in's maps are near noise). Asserted for Grad-CAM at input/16; at
    # input/32 (4x4) the grid alone caps the score (ceiling above).
    assert chance_of[localisation_layer] < 1e-3, localisation

# %% [markdown]
# The pointing game rewards one pixel, the heat fraction the whole map: a sharp gradient map can hit the
# box with its peak while spreading most of its mass over the ribs. Per finding, expect large boxes
# (effusion, cardiomegaly) to be easy and nodules hard, with the 4x4 grid capping last-layer Grad-CAM on
# the small ones; the table shows whether this run bears it out (few images per finding in smoke).

# %%
per_finding = pd.DataFrame({
    "images": evaluated.label.value_counts(),
    "Grad-CAM hit": pd.Series(explain.pointing_game(eval_maps["Grad-CAM"], eval_boxes), index=evaluated.index).groupby(evaluated.label).mean(),
    f"Grad-CAM {localisation_layer} hit": pd.Series(explain.pointing_game(eval_maps[f"Grad-CAM {localisation_layer}"], eval_boxes), index=evaluated.index).groupby(evaluated.label).mean(),
    "gradient hit": pd.Series(explain.pointing_game(eval_maps["gradient"], eval_boxes), index=evaluated.index).groupby(evaluated.label).mean(),
    "box area": pd.Series([explain.box_mask(b, eval_images.shape[1:3]).mean() for b in eval_boxes], index=evaluated.index).groupby(evaluated.label).mean(),
})
per_finding.round(2)

# %% [markdown]
# ## Summary
#
# * Gradients ask which pixels would change the score; guided backpropagation keeps only the positive
#   paths (a custom ReLU gradient on a copy of the model); SmoothGrad averages any method over noisy
#   copies; integrated gradients add the gradient up along a path from a baseline, and completeness
#   (attributions sum to f(x) - f(baseline)) checks the integral.
# * Grad-CAM weighs the last feature map's channels by their mean gradient: class-specific and robust,
#   but only as fine as that map (4x4 at 128 px for DenseNet121): a box no cell's peak reaches can
#   never be hit (`explain.pointing_ceiling`). Block 4's 8x8 map can raise that ceiling; guided Grad-CAM
#   adds pixel detail.
# * Grad-CAM++ explains the logit (its closed form is exact only there) and weighs positions as well as
#   channels: after global average pooling it barely differs from Grad-CAM at the last layer, more so
#   at block 4.
# * The pointing game counts every maximal pixel: `argmax` alone favours the top-left of a plateau.
# * For a segmentation, explain a region: the sum of the predicted probability in a box or mask.
# * The helpers match tf-keras-vis (Grad-CAM and saliency within 1e-4; Grad-CAM++ differs on purpose);
#   its Score-CAM needs a two-way head to suit sigmoid outputs.
# * Trust a method only if it passes the randomisation test (the map must change when the model is
#   destroyed) and, where the truth is known, points at the finding more often than a random map.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's images. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **Resolution.** Write Grad-CAM's map from one image's feature maps and their gradients, and apply
#    it at `pool4_relu` (8x8 at 128 px). Then try Grad-CAM++ there too, and `pool3_relu` (16x16): when
#    does a finer map stop helping? (When: discussion.)
# 2. **Baselines.** Write integrated gradients for any gradient function, and run it from a noise
#    baseline: is completeness still met, and how does the map differ from the black baseline's?
#    (How: discussion.)
# 3. **Smoothing.** Raise `smooth_samples` to 50: how much does the SmoothGrad map still change (rank
#    correlation between 16 and 50 samples)? (Discussion.)
# 4. **Sanity.** Randomise only the classification head (`["predictions"]`): which maps change, which
#    do not, and why is that already informative? (Discussion.)

# %%
# Exercise 1: write grad_cam_map(features, gradients) for one image's (h, w, k) arrays -> (h, w) raw map.
def grad_cam_map(features, gradients):
    """ReLU(sum over channels k of mean(gradient_k) * feature_k): one weight per channel."""
    ### BEGIN SOLUTION
    weights = np.asarray(gradients).mean(axis=(0, 1))
    return np.maximum((np.asarray(features) * weights).sum(axis=-1), 0)
    ### END SOLUTION


exercises.check_grad_cam_map(grad_cam_map)

# %%
output_layer = model.get_layer("predictions")  # Dense(14, sigmoid): Grad-CAM takes the score before its sigmoid
extractor = keras.Model(model.input, [model.get_layer(localisation_layer).output, output_layer.input])
with tf.GradientTape() as tape:
    block4, pooled = extractor(tf.constant(images), training=False)
    logits = tf.matmul(pooled, output_layer.kernel) + output_layer.bias
    class_scores = tf.gather(logits, class_index, axis=1, batch_dims=1)
block4_gradients = tape.gradient(class_scores, block4).numpy()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # a flat map comes back as zeros
    your_cam_block4 = explain.normalize(explain.upsample(np.stack([grad_cam_map(a, g) for a, g in zip(block4.numpy(), block4_gradients)]),
                                                images.shape[1:3]))
print(f"your Grad-CAM at {localisation_layer} vs explain.grad_cam: max difference {np.abs(your_cam_block4 - cam_block4).max():.1e}; "
      f"pointing game on the shown images {explain.pointing_game(your_cam_block4, boxes).mean():.2f}, "
      f"ceiling {explain.pointing_ceiling(boxes, block4_cells, images.shape[1:3]).mean():.2f}")
assert np.allclose(your_cam_block4, cam_block4, atol=1e-4), "your map passed the check but differs from explain.grad_cam at block 4"

# %%
# Exercise 2: write integrated_gradients(gradient, x, baseline, steps) -> attributions shaped like x.
def integrated_gradients(gradient, x, baseline, steps):
    """(x - baseline) times the mean of gradient() at steps points on the straight path baseline -> x."""
    ### BEGIN SOLUTION
    x, baseline = np.asarray(x, np.float32), np.asarray(baseline, np.float32)
    alphas = np.linspace(0.0, 1.0, steps).reshape((-1,) + (1,) * x.ndim)
    grads = np.asarray(gradient(baseline + alphas * (x - baseline)))
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2  # the trapezoid rule: the two ends count half
    return (x - baseline) * np.tensordot(weights, grads, axes=1)
    ### END SOLUTION


exercises.check_integrated_gradients(integrated_gradients)

# %%
gradient_of = explain.gradient_function(model)  # compiled: (points, output weights) -> (scores, gradients)
one_hot = np.eye(model.output_shape[-1], dtype=np.float32)[class_index[:1]]
model_gradient = lambda points: gradient_of(tf.constant(points, tf.float32), tf.constant(np.repeat(one_hot, len(points), 0)))[1].numpy()  # noqa: E731
noise = explain.make_baseline(images[:1], "noise", seed=seed)
attributions = integrated_gradients(model_gradient, images[0], noise[0], ig_steps)
gap = float(probabilities[0] - gradient_of(tf.constant(noise), tf.constant(one_hot))[0].numpy()[0])
completeness_error = abs(attributions.sum() - gap) / max(abs(gap), 1e-3)
print(f"noise baseline, first image: attributions sum to {attributions.sum():.4f}, f(x) - f(baseline) = {gap:.4f}; "
      f"completeness error {completeness_error:.1%}, {'within' if completeness_error <= ig_tolerance else 'outside'} "
      f"the {ig_tolerance:.0%} tolerance at {ig_steps} steps")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
