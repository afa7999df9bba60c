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
# # 09 · Your own films: external validation, recalibration, subgroups and a shortcut
#
# **Description:** Take the classifier to a site's own images: external validation, recalibration, subgroups and shortcuts.<br>
# **Needs:** 02's classifier (a stand-in when it is missing) and, for the referral rates, 04's files.<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 09_your_own_films`.
#
# A model trained at one hospital meets another hospital's films: another detector, another mix of
# bedside and standing films, other patients. Before anyone acts on its answers there, three questions:
# does it still separate sick from healthy films, and are its probabilities still probabilities? For
# whom does it fail? Is it looking at the disease, or at something that travelled with the disease
# where it was trained?
#
# **You will:** read a PACS export (DICOM files in study folders, any names) and its label file, with
# every refused file listed by row and every patient ID replaced by a pseudonym; score notebook 02's
# model on the site beside its model card (AUROC with patient-level intervals); measure its calibration
# (reliability diagram, recalibration intercept and slope) and recalibrate it on local films; compare
# the imported thresholds with thresholds re-chosen on local films, judged on other local films, with
# the predictive values at the site's prevalence; audit subgroups (sex, age band, view) with an
# interval on every gap; plant a shortcut (a corner marker that travels with one finding), catch it with
# Grad-CAM and by masking it, and watch it fail at the site; adapt the model to the site with a few
# local labels.
#
# **You need:** notebook 02's classifier in the model cache (without it, a stand-in is trained briefly:
# its numbers then mean little and the checks that need a real model are reported, not asserted). By
# default the site is a synthetic external site written as a PACS export (DICOM headers with names and
# record numbers to pseudonymise, two films the reader must refuse); set `MEDXAI_DATA_DIR` to a folder
# holding `site/` (your export and its `labels.csv`, laid out as `helpers/data/manifests/site.md`
# describes) to use your own.
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `09_your_own_films` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Zech et al., *Variable generalization performance of a deep learning model to detect
# pneumonia in chest radiographs: a cross-sectional study*, PLOS Medicine 2018 (site shortcuts),
# DeGrave, Janizek and Lee, *AI for radiographic COVID-19 detection selects shortcuts over signal*,
# Nature Machine Intelligence 2021 (shortcuts found with saliency and by editing the image),
# Seyyed-Kalantari et al., *Underdiagnosis bias of artificial intelligence algorithms applied to chest
# radiographs in under-served patient populations*, Nature Medicine 2021 (subgroup audits of models
# trained on ChestX-ray14), Van Calster et al., *A calibration hierarchy for risk models was defined:
# from utopia to empirical data*, Journal of Clinical Epidemiology 2016 (the calibration line), and
# Selvaraju et al., *Grad-CAM*, ICCV 2017.

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
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit

from helpers import (config, datasets, explain, external, losses, metrics, models, preprocessing, referral,
                     report, side_files, site, splits, synthetic, transfer, uncertainty, viz)
from helpers.exercises import your_own_films as exercises  # this notebook's exercise checks

tf.get_logger().setLevel("ERROR")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
started = time.perf_counter()

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
images_mode = "present"  # the training site may be a partial NIH copy
labels_file = None  # None: labels.csv in the site folder
local_share = 0.5  # share of the site's patients that may set anything (thresholds, recalibration, heads); the rest judge
bootstrap_samples = cfg.pick(smoke=50, lab=300, full=1000)  # patient-bootstrap replicates of each interval
subgroup_samples = cfg.pick(smoke=20, lab=150, full=500)
budgets = (0.25, 0.5, 1.0)  # shares of the local labelled patients the adapted heads may use
stand_in_images = cfg.pick(smoke=32, lab=128, full=256)  # training films of a stand-in, if notebook 02 has not run
shortcut_finding = "Infiltration"  # the commonest finding the site labels: enough positives in every profile
shortcut_size = cfg.pick(smoke=48, lab=64, full=64)  # the shortcut experiment's small CNN sees films this size
shortcut_epochs = cfg.pick(smoke=15, lab=12, full=12)
marker_rates = (0.9, 0.05)  # share of the training site's films with the marker: with the finding, without it
shortcut_margin = cfg.pick(smoke=0.15, lab=0.2, full=0.2)  # AUROC the marker must be worth, asserted
split_method = cfg.pick(smoke="patient", lab="patient", full="official")  # notebook 02's split of the training site
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, local share {local_share:.0%}, bootstrap {bootstrap_samples}, budgets {budgets}, "
      f"shortcut: {shortcut_finding} at {shortcut_size} px, {shortcut_epochs} epochs, marker on "
      f"{marker_rates[0]:.0%} / {marker_rates[1]:.0%} of films with / without it")
config.seed_everything(seed)
finding_names = list(datasets.LABELS)

# %% [markdown]
# ## 1. The imported model and its card
#
# The model of notebook 02 with the files saved beside it (thresholds, notebook 04's referral rule and
# unfamiliar-input check, the model card). The card says what the model was trained on and how it
# scored there: the figures the site is compared with.

# %%
classifier_path = cfg.models_dir / models.CLASSIFIER_FILE
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"), images=images_mode)
split, split_used = splits.classifier_split(nih, split_method, seed=seed)
classifier_trained = classifier_path.is_file() and side_files.side_file(classifier_path, side_files.THRESHOLDS_SUFFIX).is_file()
if classifier_trained:
    chest = report.ChestReporter.load(classifier_path, cfg=cfg, seed=seed)
else:
    train = split["train"].iloc[:stand_in_images]
    stand_in = models.classifier_or_stand_in(classifier_path, finding_names, 64, train.path, train[finding_names].values)
    val_scores = stand_in.predict(preprocessing.load_images(split["val"].path, stand_in.input_shape[1]), verbose=0)
    chest = report.ChestReporter(stand_in, metrics.choose_thresholds(split["val"][finding_names].values, val_scores, finding_names).fillna(0.5),
                                 name="stand-in", seed=seed)
card = chest.card or {}
print(f"{chest.name}: {chest.size} px; {card.get('training_data', {}).get('kind', 'no card')} training data, "
      f"split: {card.get('split', 'unrecorded')}")

# %% [markdown]
# ## 2. The site's export
#
# `site.read_site` reads a folder as a PACS export leaves it and one label row per film (the template is
# `helpers/data/manifests/site_labels.csv`). Each file goes through the chest report's reader, so the
# same checks apply (format by content, DICOM body part and view, grey levels, LUTs); a refused file is
# listed by its row in the label file, never by its name. Patient IDs become keyed pseudonyms, drawn
# afresh at every read: they keep a patient's films together and cannot be looked up.

# %%
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    site_data = site.read_site(synthetic.ensure(cfg, "site"), labels_file, image_size=chest.size)
for warning in said:
    print("note:", warning.message)
print(site_data.summary())
site_data.refused[["row", "reason"]]

# %%
assert "patient_id" not in site_data.entries.columns and site_data.entries.patient.str.startswith("patient-").all()
site_labels = site_data.labels
y_site = site_data.entries[site_labels].to_numpy(float)
patients = pd.factorize(site_data.entries.patient)[0]  # 0, 1, ... in order of first row: the same splits on every run
prevalence = pd.DataFrame({"site": np.nanmean(y_site, axis=0),
                           "training site (test split)": split["test"][site_labels].mean().to_numpy()}, index=site_labels)
prevalence.round(3).T

# %% [markdown]
# ## 3. Does it still discriminate? AUROC at the site beside the card
#
# One backbone pass gives the probabilities and the pooled features used later. Each AUROC has a 95%
# interval from resampling the site's **patients** (their films are not independent), beside the card's
# test figure from the training site.

# %%
outputs = [chest.features(site_data.images[i:i + 64]) for i in range(0, len(site_data.images), 64)]
pooled = np.concatenate([o[1] for o in outputs])
probs_all = np.concatenate([o[2] for o in outputs])
probs = probs_all[:, [finding_names.index(label) for label in site_labels]]


def site_auroc(y, p, names, groups):
    """metrics.bootstrap_auc per finding on the films labelled for it (a blank label leaves a film out)."""
    parts = []
    for j, label in enumerate(names):
        known = ~np.isnan(y[:, j])
        parts.append(metrics.bootstrap_auc(y[known, j:j + 1].astype(int), p[known, j:j + 1], [label], samples=bootstrap_samples,
                                           seed=seed, groups=groups[known], min_valid=1))
    return pd.concat(parts)


with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="bootstrap_auc")
    at_site = site_auroc(y_site, probs, site_labels, patients)
card_metrics = pd.DataFrame(card.get("metrics", {})).T.reindex(index=site_labels, columns=["test_auroc", "test_positives"])
discrimination = pd.DataFrame({"site AUROC": at_site["AUROC"], "low": at_site["low"], "high": at_site["high"],
                               "site positives": at_site["positives"],
                               "card test AUROC": card_metrics["test_auroc"].astype(float),
                               "card positives": card_metrics["test_positives"].astype(float)})
discrimination["drop"] = discrimination["card test AUROC"] - discrimination["site AUROC"]
discrimination.round(3)

# %%
mean_drop = discrimination["drop"].mean()
print(f"mean AUROC over the site's {len(site_labels)} findings: site {discrimination['site AUROC'].mean():.3f}, "
      f"card {discrimination['card test AUROC'].mean():.3f} (drop {mean_drop:+.3f})")
below = discrimination.index[discrimination["high"] < discrimination["card test AUROC"]]
print(f"findings whose site interval lies below the card's figure: {', '.join(below) if len(below) else 'none'}")

# %% [markdown]
# ## 4. Are the probabilities still probabilities? Calibration and recalibration
#
# A reliability diagram over the site's findings, and per finding the **calibration line**: the
# logistic regression of the outcome on the logit of the probability (`external.calibration_line`).
# Intercept 0 and slope 1 is calibrated; a slope below 1 means the probabilities are too extreme for
# this site. Nothing is re-fitted on the films that judge it: the site's patients are split once into a
# **local calibration** part (`local_share`) that may set things, and a **local test** part.

# %%
local_fit, local_test = next(GroupShuffleSplit(n_splits=1, train_size=local_share, random_state=seed)
                             .split(probs, groups=patients))
print(f"local calibration part: {len(local_fit)} films of {len(set(patients[local_fit]))} patients; "
      f"local test part: {len(local_test)} films of {len(set(patients[local_test]))} patients")
lines = {}
for j, label in enumerate(site_labels):
    known = ~np.isnan(y_site[:, j])
    if len(np.unique(y_site[known, j])) == 2:
        lines[label] = external.calibration_line(y_site[known, j], probs[known, j])
lines = pd.DataFrame(lines, index=["intercept", "slope"]).T
lines.round(2)

# %%
recalibration = referral.Recalibration.fit(np.nan_to_num(y_site[local_fit]).astype(int), probs[local_fit])
recalibrated = recalibration(probs)
known_test = ~np.isnan(y_site[local_test]).any(axis=1)
ece = {name: metrics.expected_calibration_error(y_site[local_test][known_test], p[local_test][known_test])
       for name, p in (("imported", probs), ("recalibrated on local films", recalibrated))}
fig, ax = plt.subplots(figsize=(4, 4))
viz.reliability_diagram(ax, {f"{name} (ECE {value:.3f})": metrics.reliability_table(y_site[local_test][known_test],
                                                                                   p[local_test][known_test])
                             for (name, value), p in zip(ece.items(), (probs, recalibrated))},
                        title="local test films, every site finding")
plt.show()
print(f"expected calibration error on the local test films: imported {ece['imported']:.4f}, recalibrated "
      f"{ece['recalibrated on local films']:.4f} (Platt scaling per finding fitted on the local calibration part)")

# %% [markdown]
# ## 5. Thresholds: imported or re-chosen, and what they mean at this prevalence
#
# The imported thresholds were chosen on the training site's validation films. Re-chosen on the local
# calibration part (Youden's J, as notebook 02) and both judged on the local test part: sensitivity,
# specificity, and the predictive values at the site's prevalence, what a clinician reads as "how often
# is a positive call right".

# %%
imported = chest.thresholds[site_labels]
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*no positive|.*both outcomes")
    rechosen = metrics.choose_thresholds(np.nan_to_num(y_site[local_fit]).astype(int), probs[local_fit], site_labels).fillna(imported)
judged = {name: external.at_thresholds(y_site[local_test], probs[local_test], t, site_labels)
          for name, t in (("imported", imported), ("re-chosen locally", rechosen))}
pd.concat(judged, axis=1).round(3)

# %%
sensitivity = {name: table["sensitivity"].mean() for name, table in judged.items()}
print(f"mean sensitivity on the local test films: imported thresholds {sensitivity['imported']:.3f}, "
      f"re-chosen {sensitivity['re-chosen locally']:.3f}; mean specificity "
      f"{judged['imported']['specificity'].mean():.3f} vs {judged['re-chosen locally']['specificity'].mean():.3f}")

# %% [markdown]
# ## 6. The referral and the unfamiliar-input check at the site
#
# Notebook 04 set the referral cut-off to refer the most uncertain share of its validation films, and
# the unfamiliar-input cut-off so that 1% of them lie beyond it. At a new site both rates move: many
# more films "outside what this model has seen" says the site's films differ from the training films.

# %%
mean_mi = uncertainty.decompose(chest.sample_head(pooled)).epistemic.mean(axis=1)  # per film, the head's T samples
refer_values = np.array([chest.refer_signal(p, mi) for p, mi in zip(probs_all, mean_mi)])
if chest.referral is None:
    print("no referral rule saved beside this model (notebook 04): every film would be referred")
else:
    referred_share = float((refer_values > chest.referral["threshold"]).mean())
    print(f"referred at the site by {chest.referral.get('signal', 'mutual_information')}: {referred_share:.0%} of "
          f"{len(refer_values)} films, against {chest.referral.get('refer_at', float('nan')):.0%} of the "
          f"{chest.referral.get('chosen_on', '?')} films that set the cut-off")
if chest.familiar is not None:
    outside = chest.familiar.distance(pooled) > chest.familiar.cutoff
    print(f"outside what this model has seen: {outside.mean():.0%} of the site's films, against 1% of the validation films")
else:
    print("no unfamiliar-input check saved beside this model (notebook 04)")

# %% [markdown]
# ## 7. For whom does it fail? Subgroups
#
# For each group of sex, age band and view: the mean AUROC over the site's findings and the pooled
# sensitivity at the imported thresholds, each against the rest of the site's films, with a patient
# bootstrap interval on the gap (`external.subgroup_table`). A gap is called **found** only when its
# interval excludes zero; a group too small to score a finding leaves it out. Models trained on
# ChestX-ray14 under-diagnose some groups (Seyyed-Kalantari et al. 2021): this is the audit that shows it.

# %%
audits = {}
for column in ("sex", "age_band", "view"):
    groups = site_data.entries[column]
    if groups.notna().sum() == 0:
        print(f"{column}: not in this site's label file, not audited")
        continue
    audits[column] = external.subgroup_table(np.nan_to_num(y_site), probs, imported, site_labels, groups.to_numpy(),
                                             patients, samples=subgroup_samples, seed=seed)
shown_columns = ["films", "AUROC", "AUROC gap", "low", "high", "sensitivity gap", "sens low", "sens high", "found"]
audit = pd.concat(audits, names=["by", "group"]) if audits else pd.DataFrame(columns=shown_columns)
audit[shown_columns].round(3)

# %%
found = audit[audit["found"].astype(bool)]
for (by, group), row in found.iterrows():
    print(f"{by} {group}: AUROC {row['AUROC']:.3f} against {row['AUROC rest']:.3f} for the rest (gap {row['AUROC gap']:+.3f}, "
          f"95% [{row['low']:+.3f}, {row['high']:+.3f}]); sensitivity gap {row['sensitivity gap']:+.3f} "
          f"[{row['sens low']:+.3f}, {row['sens high']:+.3f}]")
if not audits:
    print("no sex, age or view in this site's label file: no subgroup audit (add the columns to audit the model)")
elif not len(found):
    print("no subgroup gap whose interval excludes zero")

# %% [markdown]
# The synthetic site plants one disparity: films of patients aged 60 and over come from a low-dose
# protocol (noisier, blurred, flatter). The audit must find it, from the lab profile on, where a real
# classifier and enough films make the interval narrow enough (the smoke profile's model is a sketch).

# %%
if cfg.synthetic and classifier_trained and cfg.profile != "smoke":
    planted = audit.loc[("age_band", "60+")]
    assert planted["found"] and planted["AUROC gap"] < 0, f"the planted disparity was not found: {planted.to_dict()}"
    print("the planted disparity (60+, low-dose films) is found")

# %% [markdown]
# ## 8. A shortcut, planted and caught
#
# Portable films often carry a marker in a corner; if portable films are also the sicker ones, the
# marker travels with the finding, and a model may learn the marker (Zech et al. 2018; DeGrave et al.
# 2021). We plant one: at the training site, a bright square in the corner of 90% of the films with
# `shortcut_finding` and 5% of the others. A small CNN learns the finding from those films. Then four
# checks, each of which could fail:
#
# 1. at the training site, where the marker travels with the finding, the test AUROC is close to the
#    marker's own (the AUROC of "marker or not" as the score);
# 2. Grad-CAM (notebook 05) puts at least three times the marker's share of the film on the marker;
# 3. masking the marker's corner costs AUROC;
# 4. at the external site, where a marker is on films at random, the AUROC falls.

# %%
finding_index = finding_names.index(shortcut_finding)
train_part = pd.concat([split["train"], split["val"]])
rng = np.random.default_rng(seed)


def marked(images, truth):
    """Films with the marker where the training site puts it (most films with the finding, few without), and where."""
    where = rng.random(len(truth)) < np.where(truth == 1, marker_rates[0], marker_rates[1])
    return external.add_marker(images, where), where


y_train = train_part[shortcut_finding].to_numpy()
y_test = split["test"][shortcut_finding].to_numpy()
x_train, _ = marked(preprocessing.load_images(train_part.path, shortcut_size), y_train)
x_test_clean = preprocessing.load_images(split["test"].path, shortcut_size)
x_test, test_marked = marked(x_test_clean, y_test)
print(f"training site: {len(y_train)} training films ({y_train.sum()} with {shortcut_finding}), {len(y_test)} test films")

# %%
keras.utils.set_random_seed(seed)
shortcut_model = keras.Sequential([
    keras.Input((shortcut_size, shortcut_size, 1)),
    keras.layers.Conv2D(16, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu"), keras.layers.MaxPooling2D(),
    keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="features"),
    keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid"),
], name="shortcut_cnn")
shortcut_model.compile(keras.optimizers.Adam(3e-3), "binary_crossentropy")
start = time.perf_counter()
shortcut_model.fit(x_train, y_train, epochs=shortcut_epochs, batch_size=32, verbose=0,
                   class_weight={0: 1.0, 1: float((y_train == 0).sum() / max(y_train.sum(), 1))})
print(f"small CNN ({shortcut_model.count_params():,} parameters) trained in {time.perf_counter() - start:.0f} s")

# %%
def auroc(model, images, truth):
    return roc_auc_score(truth, model.predict(images, verbose=0)[:, 0])


site_small = tf.image.resize(site_data.images, (shortcut_size, shortcut_size), antialias=True).numpy()  # read once, in section 2
y_external = site_data.entries[shortcut_finding].to_numpy(float)
x_external = external.add_marker(site_small, np.random.default_rng(seed + 1).random(len(y_external)) < 0.5)
known = ~np.isnan(y_external)
shortcut = pd.Series({
    "training site, marker travels with the finding": auroc(shortcut_model, x_test, y_test),
    "training site, marker corner masked": auroc(shortcut_model, external.mask_marker(x_test), y_test),
    "training site, no marker at all": auroc(shortcut_model, x_test_clean, y_test),
    "external site, marker at random": auroc(shortcut_model, x_external[known], y_external[known]),
}, name=f"{shortcut_finding} AUROC")
shortcut.round(3).to_frame()

# %%
with_marker = np.flatnonzero((y_test == 1) & test_marked)  # test films with the finding and the marker
cams = explain.grad_cam(shortcut_model, x_test[with_marker], class_index=0, layer_name="features")
region = external.marker_region(shortcut_size)
share = external.heat_share(cams, region)
print(f"Grad-CAM on {len(with_marker)} marked test films with {shortcut_finding}: {share.mean():.0%} of the heat on the "
      f"marker, which covers {region.mean():.1%} of the film ({share.mean() / region.mean():.0f}x its share)")
fig = viz.image_grid([viz.heatmap_overlay(x_test[i, ..., 0], c) for i, c in zip(with_marker[:4], cams[:4])],
                     titles=[f"heat on marker {s:.0%}" for s in share[:4]])
plt.show()

# %%
travels, marker_alone = shortcut.iloc[0], roc_auc_score(y_test, test_marked)  # the marker itself as the score
print(f"the marker alone scores AUROC {marker_alone:.3f} on these test films; the model {travels:.3f}")
assert travels >= marker_alone - 0.15, f"the shortcut model scores only {travels:.3f} where the marker travels with the finding"
assert share.mean() >= 3 * region.mean(), "Grad-CAM does not point at the marker"
assert travels - shortcut.iloc[1] >= shortcut_margin, "masking the marker should cost AUROC"
assert travels - shortcut.iloc[3] >= shortcut_margin, "the shortcut should fail at the external site"
print(f"caught: masking the marker costs {travels - shortcut.iloc[1]:.3f} AUROC, the external site "
      f"{travels - shortcut.iloc[3]:.3f}")

# %% [markdown]
# ## 9. Adapting to the site
#
# With some local labels, the imported backbone's pooled features can feed a new head per finding
# (`transfer.linear_heads`, logistic regressions). Trained on 25%, 50% and all of the local
# calibration part's patients, judged on the local test part, against the imported model unchanged
# and a small CNN trained from scratch on all local calibration films.

# %%
fit_patients = np.array(sorted(set(patients[local_fit])))
local_y = np.nan_to_num(y_site).astype(int)
adapted = {"imported model": probs[local_test]}
for budget in budgets:
    chosen = set(np.random.default_rng(seed).permutation(fit_patients)[:max(2, int(round(budget * len(fit_patients))))])
    rows = np.array([i for i in local_fit if patients[i] in chosen])
    adapted[f"new heads, {budget:.0%} of local patients ({len(rows)} films)"] = transfer.linear_heads(
        pooled[rows], local_y[rows], pooled[local_test])
keras.utils.set_random_seed(seed)
scratch = keras.models.clone_model(shortcut_model)
scratch = keras.Sequential([*scratch.layers[:-1], keras.layers.Dense(len(site_labels), activation="sigmoid")], name="scratch_cnn")
scratch.compile(keras.optimizers.Adam(3e-3), losses.WeightedBinaryCrossentropy.from_labels(local_y[local_fit]))  # notebook 02's loss
scratch.fit(site_small[local_fit], local_y[local_fit], epochs=shortcut_epochs, batch_size=32, verbose=0)
adapted["small CNN from scratch, all local patients"] = np.asarray(scratch(site_small[local_test], training=False))
scores = pd.DataFrame({name: [roc_auc_score(local_y[local_test, j], p[:, j]) if 0 < local_y[local_test, j].sum() < len(local_test)
                              else np.nan for j in range(len(site_labels))] for name, p in adapted.items()}, index=site_labels)
scores.loc["mean"] = scores.mean()
scores.round(3).T

# %%
best = f"new heads, {budgets[-1]:.0%} of local patients"
best = next(name for name in adapted if name.startswith(best))
gap, low, high = external.mean_auc_gap(local_y[local_test], adapted[best], adapted["imported model"], patients[local_test],
                                       samples=bootstrap_samples, seed=seed)
print(f"new heads on all local patients minus the imported model: mean AUROC {gap:+.3f} (95% [{low:+.3f}, {high:+.3f}])")
if low > 0:
    print("Re-fitting the heads on local labels helps at this site (the interval lies above zero).")
elif high < 0:
    print("Re-fitting the heads on local labels is worse than the imported model here (the interval lies below zero).")
else:
    print("No difference is shown between the re-fitted heads and the imported model (the interval spans zero).")

# %% [markdown]
# ## Summary
#
# * A site's export is read as it comes (`site.read_site`): the chest report's checks on every file,
#   refused files listed by their row, patient IDs pseudonymised in memory, unused columns named.
# * External validation before use: AUROC per finding with patient-level intervals beside the model
#   card's; calibration (reliability diagram, the calibration line's intercept and slope) and
#   recalibration fitted on local films and judged on others; imported against locally re-chosen
#   thresholds, with PPV and NPV at the site's prevalence; the referral and unfamiliar-input rates.
# * A subgroup audit reports a gap only when its interval excludes zero; the synthetic site's planted
#   low-dose protocol for the 60+ band is what it must find.
# * A shortcut is caught three ways: Grad-CAM on the marker, the AUROC lost when the marker is masked,
#   and the AUROC lost at a site where the marker does not travel with the finding.
# * Local labels can adapt the heads; judge the gain with a paired interval on local test films.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right. Questions marked *discussion* have no check: a
# model answer is in the instructor's guide.
#
# 1. **Predictive values.** Write PPV and NPV from sensitivity, specificity and prevalence, and apply
#    them to the site's rarest finding (of those the imported thresholds call present on some film).
# 2. **The calibration line.** Write the logistic recalibration (intercept, slope) with scikit-learn and
#    apply it to the site's commonest finding, before and after the recalibration of section 4.
# 3. **Labels for some findings only.** Your site labels three findings, not seven. What changes in
#    sections 3 to 9, and what can you no longer say about the model? (Discussion.)
# 4. **Another shortcut.** At the training site, AP (bedside) films are the sicker ones. Which checks of
#    section 8 would show that the model reads the view, and what would you mask? (Discussion.)

# %%
# Exercise 1: write predictive_values(sensitivity, specificity, prevalence) -> (PPV, NPV).
def predictive_values(sensitivity, specificity, prevalence):
    """Bayes' rule: PPV = P(finding | called present), NPV = P(no finding | called absent)."""
    ### BEGIN SOLUTION
    ppv = sensitivity * prevalence / (sensitivity * prevalence + (1 - specificity) * (1 - prevalence))
    npv = specificity * (1 - prevalence) / (specificity * (1 - prevalence) + (1 - sensitivity) * prevalence)
    return ppv, npv
    ### END SOLUTION


exercises.check_predictive_values(predictive_values)

# %%
calls = judged["imported"]
called = calls.index[(calls["positives"] > 0) & (calls["sensitivity"] + (1 - calls["specificity"]) > 0)]  # some film called present
rarest = prevalence.loc[called, "site"].idxmin()
row = calls.loc[rarest]
mine = predictive_values(row["sensitivity"], row["specificity"], prevalence.loc[rarest, "site"])
print(f"{rarest} (site prevalence {prevalence.loc[rarest, 'site']:.1%}): PPV {mine[0]:.3f}, NPV {mine[1]:.3f} by your function")

# %%
# Exercise 2: write calibration_line(y_true, y_prob) -> (intercept, slope) of logit P(y) = a + b logit(p).
def calibration_line(y_true, y_prob):
    """A logistic regression of the outcome on the logit of the probability, without penalty."""
    ### BEGIN SOLUTION
    p = np.clip(np.asarray(y_prob, np.float64), 1e-6, 1 - 1e-6)
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(np.log(p / (1 - p))[:, None], np.asarray(y_true))
    return float(fitted.intercept_[0]), float(fitted.coef_[0, 0])
    ### END SOLUTION


exercises.check_calibration_line(calibration_line)

# %%
commonest = prevalence["site"].idxmax()
j = site_labels.index(commonest)
test_known = local_test[~np.isnan(y_site[local_test, j])]
before_line = calibration_line(y_site[test_known, j], probs[test_known, j])
after_line = calibration_line(y_site[test_known, j], recalibrated[test_known, j])
print(f"{commonest} on the local test films: intercept {before_line[0]:+.2f}, slope {before_line[1]:.2f} imported; "
      f"{after_line[0]:+.2f}, {after_line[1]:.2f} after recalibration on the local calibration films")

# %% [markdown]
# ## Cleanup
#
# The site's synthetic export and the models stay in the cache for the next run.

# %%
print(f"notebook run time {time.perf_counter() - started:.0f} s")
