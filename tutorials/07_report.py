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
# # 07 · One image in, one report out
#
# **Description:** One image (PNG or DICOM) in, one report out, with its confidence, heatmap, boxes and model card; then the upload page.<br>
# **Needs:** 02's classifier, 03's U-Net and 04's referral files (`make prepare` makes them; without them the report says what it falls back on).<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 07_report`.
#
# Notebooks 02 to 06 each answered one question about a chest X-ray: which findings (02), how sure
# (04), where the model looked (05), which box (06). A clinician asks them all at once, about one
# image, which is usually a DICOM file. This notebook puts the pieces together into a report: the 14
# probabilities, the decisions at the thresholds chosen on validation, the MC-dropout uncertainty per
# finding, a "refer to a radiologist" flag with its rule stated, and a Grad-CAM heatmap and a box for
# each finding predicted present, and for no other. The same for a fundus photograph and the vessel
# U-Net: the vessel map, the epistemic map and the flag.
#
# **You will:** build the report step by step and check each step against the helper; run the
# backbone once per image and sample only the dropout head; get Grad-CAM from the same forward pass;
# render the report as a figure, an HTML page and JSON, and from the command line; judge it against
# the truth of synthetic test films (does the refer flag catch the errors?); apply it to a real chest
# radiograph (DICOM) and a real fundus photograph, and measure whether the uncertainty rises on them.
#
# **You need:** notebooks 02, 03 and 04 run first (their models, thresholds and referral threshold are
# saved beside each other in the model cache). Without them this notebook trains small stand-ins, and
# the numbers mean little: its checks are then reported, not asserted.
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `07_report` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Passantino, *Deep MedIA Senior Design Technical Report* (Bucknell University: one program,
# image in, findings out, a box for present findings only), Seo, *Visualizing Uncertainty and Saliency
# Maps of Deep Convolutional Neural Networks for Medical Imaging Applications* (Ryerson University: the
# prediction, its uncertainty and its saliency shown together), Gal and Ghahramani, *Dropout as a
# Bayesian Approximation*, ICML 2016, Leibig et al., *Leveraging uncertainty information from deep
# neural networks for disease detection*, Scientific Reports 2017 (referral), Selvaraju et al.,
# *Grad-CAM*, ICCV 2017, and Wang et al., *ChestX-ray8*, CVPR 2017 (the image sizes).

# %% [markdown]
# ## Setup

# %%
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("helpers") is None:  # only where the series' package is absent, e.g. on Colab
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "medxai-helpers @ git+https://github.com/medxai/medxai"])
    importlib.invalidate_caches()

import json
import tempfile
import time
import warnings
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from IPython.display import HTML, Image, display
from skimage import data as skimage_data

from helpers import boxes, config, datasets, dicom, explain, fundus, metrics, models, preprocessing, report, side_files, splits, synthetic, uncertainty
from helpers.exercises import report as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # a partial NIH copy is fine: rows whose image is absent are left out and counted
mc_samples = cfg.pick(smoke=10, lab=20, full=20)  # T for a stand-in; a saved model's T is the one its referral was set with
test_images = cfg.pick(smoke=20, lab=120, full=400)  # synthetic (or real) test films reported one by one
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # as in notebooks 02 and 04
stand_in_images = cfg.pick(smoke=32, lab=256, full=1024)  # training films for a stand-in if notebook 02 has not run
stand_in_size = cfg.pick(smoke=64, lab=128, full=224)  # the stand-in's input side, as notebook 02's image_size
fundus_samples = cfg.pick(smoke=4, lab=10, full=20)  # T for the U-Net on a whole photograph
fundus_side = cfg.pick(smoke=288, lab=584, full=584)  # the photograph's larger side (DRIVE's is 584)
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, T={mc_samples}, test films={test_images}, split={split_method}, stand-in {stand_in_images} "
      f"films at {stand_in_size} px, fundus T={fundus_samples} at {fundus_side} px, seed={seed}")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)
classifier_path = cfg.models_dir / models.CLASSIFIER_FILE
unet_path = cfg.models_dir / models.UNET_FILE

# %% [markdown]
# ## 1. The pieces, saved beside the model
#
# The report needs four things from earlier notebooks, kept as files beside the classifier:
#
# | file | from | what |
# |---|---|---|
# | `densenet121_nih.keras` | 02 | the classifier, loaded in Keras safe mode |
# | `densenet121_nih.thresholds.json` | 02 | one threshold per finding, chosen on validation, with the label order |
# | `densenet121_nih.mc_head.keras` | 04 | the dense head fine-tuned with dropout on pooled features |
# | `densenet121_nih.referral.json` | 04 | the mean mutual information above which the most uncertain 20% of *validation* images were referred, with T and the image count |

# %%
for suffix in (".keras", side_files.THRESHOLDS_SUFFIX, side_files.MC_HEAD_SUFFIX, side_files.REFERRAL_SUFFIX):
    path = side_files.side_file(classifier_path, suffix)
    print(f"{path.name:38s} {'present' if path.is_file() else 'missing'}")
classifier_trained = classifier_path.is_file() and side_files.side_file(classifier_path, side_files.THRESHOLDS_SUFFIX).is_file()

# %% [markdown]
# The synthetic NIH split of notebooks 02 and 04 gives the test films (and, if notebook 02 has not run,
# the training films of a stand-in).

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
split, split_used = splits.classifier_split(nih, split_method, seed=seed)
test = split["test"].iloc[:test_images]
print({name: len(part) for name, part in split.items()}, f"-> {len(test)} test films reported")

# %% [markdown]
# A report refuses a model without thresholds (it could only guess 0.5, which the weighted loss of
# notebook 02 does not make meaningful), and says what to do:

# %%
with tempfile.TemporaryDirectory() as folder:
    bare = Path(folder) / "bare.keras"
    models.densenet121_classifier(len(finding_names), 32, weights=None).save(bare)
    try:
        report.ChestReporter.load(bare)
    except report.ReportError as err:
        print(f"ReportError: {err}")

# %% [markdown]
# Load the real pieces, or build a stand-in (one epoch on a few films, thresholds chosen on validation
# as notebook 02 chooses them, no referral threshold). The mean box of each finding, saved by notebook
# 06 beside the classifier from boxed films it does not score, lets the report use the Deep MedIA box
# heuristic; without that file the report takes the largest box and says so in its notes. (The box file
# cannot be averaged here: every NIH box is on a test film, so the training split has none.)

# %%
start = time.perf_counter()
if classifier_trained:
    chest = report.ChestReporter.load(classifier_path, cfg=cfg, seed=seed)  # T from 04's referral file, box sizes from 06
else:
    train = split["train"].iloc[:stand_in_images]
    stand_in = models.classifier_or_stand_in(classifier_path, finding_names, stand_in_size, train.path, train[finding_names].values)
    val = split["val"]
    val_scores = stand_in.predict(preprocessing.load_images(val.path, stand_in.input_shape[1]), verbose=0)
    chest = report.ChestReporter(stand_in, metrics.choose_thresholds(val[finding_names].values, val_scores, finding_names).fillna(0.5),
                                 samples=mc_samples, name="stand-in", seed=seed)
print(f"box sizes: {len(chest.box_sizes)} findings from notebook 06" if chest.box_sizes else
      "box sizes: none saved by notebook 06 beside this classifier, so each box is the largest component (the report says so)")
image_size = chest.size
print(f"{chest.name}: {image_size} px input, thresholds {chest.threshold_method}, T={chest.samples}, referral "
      f"{'from notebook 04, set on its ' + str(chest.referral.get('chosen_on', 'unrecorded')) + ' images' if chest.referral else 'absent'}; "
      f"ready in {time.perf_counter() - start:.0f} s")
for note in chest.notes:
    print("note:", note)

# %% [markdown]
# ## 2. One film, step by step
#
# Take a test film with at least one finding. The report reads it as `preprocessing.image_dataset`
# reads a PNG (bilinear resize with antialiasing), and keeps a larger copy for display.

# %%
sick = test[test[finding_names].sum(axis=1) > 0]
row = (sick if len(sick) else test).iloc[0]
item = report.read_chest(row.path, image_size)
truth = [label for label in finding_names if row[label] == 1]
pipeline = next(iter(preprocessing.image_dataset([row.path], image_size=image_size, batch_size=1, cache=None)))[0].numpy()
assert np.allclose(item.model, pipeline, atol=1e-5), "the report must read a PNG as the training pipeline did"
print(f"truth: {truth or 'no finding'}; model input {item.model.shape}, displayed {item.display.shape}")

# %% [markdown]
# **The backbone runs once.** One forward pass returns the last feature map (Grad-CAM's layer), the
# pooled features (the head's input) and the 14 probabilities. The probabilities must be the model's
# own, and the decision is `probability >= threshold`.

# %%
feature_map, pooled, probabilities = chest.features(item.model[None])
assert np.allclose(probabilities, chest.model(item.model[None], training=False), atol=1e-5)
present = probabilities[0] >= chest.thresholds.to_numpy()
print(f"feature map {feature_map.shape}, pooled {pooled.shape}; predicted present: "
      f"{[l for l, p in zip(finding_names, present) if p] or 'none'}")

# %% [markdown]
# **Only the head is sampled.** T passes of the dropout head on the pooled features cost T small matrix
# products, not T DenseNets. Notebook 04 checked that this samples the same distribution as dropout
# in the whole model (tests/test_report.py checks it again, exactly, with one seed). The decomposition
# is notebook 04's: mean, spread, mutual information (epistemic).

# %%
start = time.perf_counter()
draws = chest.sample_head(pooled)[:, 0]
parts = uncertainty.decompose(draws)
head_time = time.perf_counter() - start
print(f"{len(draws)} head samples in {head_time * 1000:.0f} ms; mean mutual information {parts.epistemic.mean():.2e} nats")

# %% [markdown]
# **Grad-CAM from the same pass.** Between the feature map $A$ and the logit there are only global
# average pooling and one dense layer: $z = w \cdot \mathrm{mean}_{ij} A_{ij} + b$, $p = \sigma(z)$. The
# logit's gradient is the same at every position, $w_k / (hw)$, so Grad-CAM's channel weights (Selvaraju
# et al., who differentiate the score before the output non-linearity) need no backward pass. The
# probability's gradient would carry $p(1-p)$, which vanishes on the most confident findings (notebook 05). Check it against `explain.grad_cam` of notebook 05 on the present
# findings (or the two most probable, when none is present).

# %%
shown = [j for j in np.flatnonzero(present)] or list(np.argsort(-probabilities[0])[:2])
chest.model.run_eagerly = True  # one reference Grad-CAM: explain runs it eagerly, no gradient graph to trace
with warnings.catch_warnings():  # a flat map (no positive evidence) warns; compared all the same
    warnings.simplefilter("ignore", UserWarning)
    closed = chest.grad_cam(item.model, feature_map[0], shown)
    reference = explain.grad_cam(chest.model, np.repeat(item.model[None], len(shown), 0), class_index=shown,
                                 layer_name=chest.layer_name)
chest.model.run_eagerly = False  # back to compiled: a head without the closed form takes this path in every report
gap = float(np.abs(closed - reference).max())
print(f"closed form vs explain.grad_cam on {len(shown)} finding(s): largest difference {gap:.1e}")
assert gap < 1e-3

# %% [markdown]
# A box per map: upsample, threshold at half the maximum, one box per connected component, then choose
# one (notebook 06: the Deep MedIA heuristic when the finding's mean box is saved, else the largest).

# %%
height, width = item.display.shape
label = finding_names[shown[0]]
candidates = boxes.heatmap_to_boxes(closed[0], (width, height), threshold=report.BOX_THRESHOLD)
if label in chest.box_sizes:
    mean_w, mean_h = chest.box_sizes[label]
    chosen = boxes.choose_box(candidates, "deep_media", mean_size=(mean_w * width, mean_h * height))
else:
    chosen = boxes.choose_box(candidates, "largest")
print(f"{label}: {len(candidates)} candidate box(es); chosen {None if chosen is None else tuple(chosen[['x', 'y', 'w', 'h']])} "
      f"({'Deep MedIA' if label in chest.box_sizes else 'largest: no mean box saved'})")

# %% [markdown]
# ## 3. The report, in one call
#
# `ChestReporter.report` does all of the above. With the same seed the dropout draws repeat, so its
# table must equal the steps above.

# %%
result = chest.report(row.path)
assert np.allclose(result.findings["probability"], probabilities[0], atol=1e-6)
assert np.allclose(result.findings["mutual_information"], parts.epistemic, atol=1e-9)
assert set(result.heatmaps) == set(result.present) and set(result.boxes) <= set(result.present)
if chosen is not None:  # the box chosen step by step above is the report's
    assert np.allclose(result.boxes[label], tuple(chosen[["x", "y", "w", "h"]]), atol=1e-3), (result.boxes, chosen)
print(result.refer_reason)
result.findings.round(4)

# %% [markdown]
# Three renderings: a one-page figure (PNG), a self-contained HTML page (the figure embedded) and JSON.

# %%
display(Image(report.figure_png(result), width=760))

# %%
page = report.to_html(result)
print(f"HTML page: {len(page) / 1e3:.0f} kB, self-contained; JSON:")
print(report.to_json(result)[:600], "...")

# %% [markdown]
# The same from a terminal, for many files at once (a progress bar, one line per bad file, the others
# still reported, exit code 1 if any failed):
#
# ```
# python -m helpers.report scans/*.dcm photo.png --model ~/.cache/medxai/models/lab/densenet121_nih.keras --out reports/
# ```

# %% [markdown]
# ## 4. Synthetic test films: the report against the truth
#
# Report every test film and compare the decisions with the labels. An image's errors are its wrong
# decisions (false alarms and misses). The refer flag is worth something only if the images it refers
# hold more errors than the ones it lets through: measure it. Its cut-off was set by notebook 04 on
# validation images, so these test films, which set nothing, judge it out of sample.

# %%
start = time.perf_counter()
reports = [chest.report(path) for path in test.path]
elapsed = time.perf_counter() - start
decided = np.stack([r.findings["present"].to_numpy() for r in reports])
truth_table = test[finding_names].to_numpy() == 1
errors_per_image = (decided != truth_table).sum(axis=1)
referred = np.array([r.refer for r in reports])
mi = np.array([r.findings["mutual_information"].mean() for r in reports])
print(f"{len(reports)} reports in {elapsed:.1f} s ({elapsed / len(reports) * 1000:.0f} ms each); "
      f"referred {referred.sum()} ({referred.mean():.0%})")

# %%
scores = np.stack([r.findings["probability"].to_numpy() for r in reports])
per_finding = metrics.threshold_metrics(truth_table.astype(float), scores, chest.thresholds, finding_names)
per_finding[["sensitivity", "specificity"]].round(2).T

# %%
caught = pd.DataFrame({
    "images": [referred.sum(), (~referred).sum()],
    "errors per image": [errors_per_image[referred].mean() if referred.any() else np.nan,
                         errors_per_image[~referred].mean() if (~referred).any() else np.nan],
    "mean mutual information": [mi[referred].mean() if referred.any() else np.nan, mi[~referred].mean() if (~referred).any() else np.nan],
}, index=["referred", "not referred"])
caught

# %% [markdown]
# Per decision rather than per image: are the wrong decisions the uncertain ones? Compare the mutual
# information of wrong and right decisions (the chance level of this rank comparison is 0.5).

# %%
finding_mi = np.stack([r.findings["mutual_information"].to_numpy() for r in reports])
wrong = decided != truth_table
separation = float(metrics.roc_auc_per_class(wrong.reshape(-1, 1).astype(float), finding_mi.reshape(-1, 1), ["wrong"]).iloc[0]) \
    if 0 < wrong.sum() < wrong.size else float("nan")
both = referred.any() and (~referred).any()
catches = both and caught.loc["referred", "errors per image"] > caught.loc["not referred", "errors per image"]
print(f"wrong decisions rank above right ones by mutual information with AUROC {separation:.2f}")
if not both:
    print("the flag referred every image or none here: nothing to compare (without notebook 04's threshold every image is referred)")
elif catches:
    print("the referred images hold more errors per image than those let through: the flag catches errors")
else:
    print("the referred images do not hold more errors than the others here: the flag is not catching errors")

# %% [markdown]
# No assert here, on purpose: whether the flag catches errors is a property of the trained classifier, and
# this section measures it rather than assumes it. The flag refers by the signal notebook 04 chose on its
# validation films (its rule is in every reason above): the margin or the expected wrong decisions of this
# same classifier, or the dropout head's mutual information. When it was the mutual information, the
# series' lab runs went both ways (the referred films held more errors with one classifier and fewer with
# another: 1.7 against 3.5 errors per image, AUROC 0.55); section 6.1 of notebook 04 shows why it lost to
# the classifier's own margin.

# %% [markdown]
# ## 5. A real chest radiograph
#
# The DICOM of notebook 01 (a PA chest CR from the `pydicom-data` package: 15-bit, MONOCHROME1). The
# report reads it through the modality and VOI LUTs, inverts MONOCHROME1 and resizes it as the NIH PNGs
# were made (`dicom.to_model_input`). Nothing identifying the patient is read into the report.

# %%
real = chest.report(dicom.example_path("RG1_UNCR.dcm"))
print(json.dumps(real.details), "|", real.refer_reason)
print(real.unfamiliar or "within what the model has seen (or no unfamiliar-input check saved by notebook 04)")
display(Image(report.figure_png(real), width=760))

# %% [markdown]
# Models trained on synthetic films now meet real anatomy. Does the uncertainty rise? Place the real
# film's mean mutual information among the synthetic test films'.

# %%
real_mi = float(real.findings["mutual_information"].mean())
rank = float((mi < real_mi).mean())
print(f"real radiograph: mean mutual information {real_mi:.2e} nats, {real_mi / mi.mean():.1f}x the synthetic test "
      f"films' mean ({mi.mean():.2e}); {rank:.0%} of the synthetic films lie below it")
if rank >= 0.95:
    print("the uncertainty rises on the real film: it lies above 95% of the synthetic test films")
else:
    print("the uncertainty does not single out the real film: it lies within the synthetic test films' range, "
          "so the flag alone would not warn that this image is unlike anything the model saw")

# %% [markdown]
# ## 6. A real fundus photograph
#
# `skimage.data.retina()` (public domain, CC0) is a real colour fundus photograph, 1411 x 1411. The
# fundus report prepares it as notebook 03 prepared DRIVE (green channel, CLAHE), resized so its larger
# side matches DRIVE's, and samples the whole U-Net (dropout after every block) T times.

# %%
if unet_path.is_file():
    fundus_reporter = report.FundusReporter.load(unet_path, samples=fundus_samples, cfg=cfg)
    unet_trained = True
else:
    print(f"{unet_path} is missing: run notebook 03 first. An untrained U-Net stands in; its maps are noise.")
    fundus_reporter = report.FundusReporter(models.unet(base_filters=8, depth=4, dropout_rate=0.1), samples=fundus_samples)
    unet_trained = False
fundus_reporter.side = fundus_side
retina = skimage_data.retina().astype("float32") / 255.0
real_fundus = fundus_reporter.report(retina, source_name="skimage retina")
print(real_fundus.refer_reason)
display(Image(report.figure_png(real_fundus), width=640))

# %% [markdown]
# Against a synthetic DRIVE test photograph of the kind the U-Net was trained on:

# %%
drive = fundus.read_drive(synthetic.ensure(cfg, "drive"))
rgb, _, _ = fundus.load_drive(drive.test[0])
synthetic_fundus = fundus_reporter.report(rgb, source_name=f"synthetic DRIVE test {drive.test[0].id}")
levels = pd.Series({"synthetic DRIVE": synthetic_fundus.findings["mean_epistemic"].iloc[0],
                    "skimage retina (real)": real_fundus.findings["mean_epistemic"].iloc[0]}, name="mean epistemic (FOV)")
fundus_ratio = levels.iloc[1] / levels.iloc[0]
print(f"real / synthetic epistemic uncertainty: {fundus_ratio:.2f}x")
levels.round(5)

# %% [markdown]
# ## 7. What the report can and cannot be trusted for
#
# The numbers above decide what may be said; the lines below are printed from them.

# %%
print(f"* Decisions: on {len(test)} synthetic test films the mean sensitivity is {per_finding['sensitivity'].mean():.2f} "
      f"and specificity {per_finding['specificity'].mean():.2f} at the validation thresholds; "
      f"{'a trained model' if classifier_trained else 'a stand-in: these numbers mean little'}.")
if both:
    print(f"* Referral: referred images hold {caught.iloc[0, 1]:.2f} errors each, the others {caught.iloc[1, 1]:.2f}: "
          f"the flag {'does' if catches else 'does not'} concentrate the errors here.")
print(f"* Real chest film: uncertainty {'above' if rank >= 0.95 else 'within'} the synthetic range ({rank:.0%} of the "
      f"synthetic films below it); real fundus photograph: {fundus_ratio:.1f}x the synthetic one.")
unflagged = [name for name, flagged in (("the chest radiograph", rank >= 0.95), ("the fundus photograph", fundus_ratio >= 1.5))
             if not flagged]
if unflagged:
    print(f"* MC dropout did not single out {' and '.join(unflagged)} as unfamiliar (a rise of less than 1.5x, or within "
          "the synthetic range): a calm answer on a real image is not evidence that the model understood it.")
else:
    print("* The uncertainty rose on both real images: here MC dropout noticed that they are unlike the training pictures.")

# %% [markdown]
# What the report **cannot** be trusted for, whatever the numbers say: a diagnosis. The models learnt
# from synthetic pictures (or from ChestX-ray14's labels, mined from reports with errors, in the full
# profile); the thresholds and the referral rule were set on one validation and test split; the
# mutual information measures the disagreement of dropout sub-networks, not the distance from the
# training data, so a real image can be confidently wrong (section 5). A heatmap shows what raised the
# score, not where the disease is, and a box drawn from it inherits that (notebook 06's IoBB table).
# What it **can** be used for: to see, on one image at a time, what the model says, how much its
# sub-networks disagree and what it looked at, as a teaching and auditing tool.

# %% [markdown]
# ## Summary
#
# * The report of one image: probabilities, decisions at the validation thresholds (saved by notebook
#   02), MC-dropout mean, spread and mutual information, a refer flag with its rule and threshold
#   (saved by notebook 04), and a Grad-CAM map and a box for present findings only.
# * One backbone pass per image: the dropout head is sampled on the pooled features, and Grad-CAM
#   through global average pooling and a dense head has a closed form (checked against notebook 05's).
# * DICOM in through the modality and VOI LUTs, resized as the NIH PNGs were; no patient identity out
#   unless asked (`--keep-identity`).
# * Renderers: a figure (PNG), one self-contained HTML page, JSON; `python -m helpers.report` for many
#   files; `benchmarks/bench_report.py` times it against a plain predict plus one Grad-CAM.
# * On real images the uncertainty measured here may or may not rise: read section 7's lines.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's reports. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **Your own rule.** Refer an image when *any* finding's mutual information exceeds a limit, instead
#    of the mean. Set the limit on validation films (so that it refers the most uncertain 20% of them),
#    then count how many test films it refers.
# 2. **Back to the original pixels.** A box of the report is in the displayed image's pixels; give it
#    in the pixels of the original DICOM (1841 wide, 1955 high), e.g. to draw it in a viewer.
# 3. **The rate of referral.** Change notebook 04's `refer_at` to 0.1 and rerun 04 and this notebook:
#    how many synthetic films are referred now, and why not exactly 10%? (Discussion.)

# %%
# Exercise 1: write refer_any(findings, limit) -> True when any finding's mutual information is above limit.
def refer_any(findings, limit):
    """findings: a report's table, with a 'mutual_information' column (one row per finding)."""
    ### BEGIN SOLUTION
    return bool((findings["mutual_information"] > limit).any())
    ### END SOLUTION


exercises.check_refer_any(refer_any)

# %%
val_images = split["val"].iloc[:test_images]
_, val_pooled, _ = chest.features(np.stack([report.read_chest(path, chest.size).model for path in val_images.path]))
val_mi = uncertainty.decompose(chest.sample_head(val_pooled)).epistemic  # (films, findings)
limit = report.referral_threshold(val_mi.max(axis=1), 0.2)  # set on validation, never on the films it judges
referred_val = sum(refer_any(pd.DataFrame({"mutual_information": row}), limit) for row in val_mi)
referred_test = sum(refer_any(r.findings, limit) for r in reports)
print(f"limit {limit:.2e} nats, set on {len(val_images)} validation films (refers {referred_val} of them); "
      f"it refers {referred_test} of the {len(reports)} test films ({referred_test / len(reports):.0%})")
assert referred_val <= round(0.2 * len(val_images)), "the limit refers more validation films than it was set to"

# %%
# Exercise 2: write to_original(box, displayed, original): (x, y, w, h) from the displayed image's pixels to the original's.
def to_original(box, displayed, original):
    """displayed and original are image shapes, (height, width)."""
    ### BEGIN SOLUTION
    (x, y, w, h), (dh, dw), (oh, ow) = box, displayed, original
    return (x * ow / dw, y * oh / dh, w * ow / dw, h * oh / dh)
    ### END SOLUTION


exercises.check_to_original(to_original)

# %%
example_box = next(iter(real.boxes.values()), (128.0, 64.0, 256.0, 192.0))
mine = to_original(example_box, real.image.shape[:2], real.details["original_size"])
print(f"{tuple(round(v) for v in example_box)} in the displayed image -> {tuple(round(v) for v in mine)} in the DICOM's pixels "
      f"({real.details['original_size'][1]} wide, {real.details['original_size'][0]} high)")

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
keras.backend.clear_session()
