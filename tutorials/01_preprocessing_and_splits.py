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
# **Description:** Read NIH ChestX-ray14 (or its synthetic copy in the same layout), split it by patient, and measure what leakage, class imbalance and augmentation do.<br>
# **Needs:** nothing: this is where the series starts.<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: 01_preprocessing_and_splits`.
#
# From the files of NIH ChestX-ray14 to a `tf.data` pipeline a model can train on, without the two
# mistakes that quietly ruin medical-imaging results: **patient leakage** between the splits, and
# **class imbalance** left untreated.
#
# **You will:** meet the real dataset through its real metadata (112,120 images, 30,805 patients:
# prevalence, co-occurrence, the long tail of follow-ups, AP and PA films, age and sex); measure how noisy
# its text-mined labels are against a radiologist panel; read the NIH layout and its labels; split by
# patient with every finding present in validation and test; *measure* what a leaky split does to a
# score; fit normalisation on the training split only; compute the weights of the weighted binary
# cross-entropy; choose augmentations that are safe for chest X-rays; build and time the input pipeline.
#
# **You need:** nothing but this repository. The real NIH metadata (no images, about 1 MB) ships in
# `helpers/data/nih/`. For pictures, the notebook writes a synthetic dataset in the exact NIH layout
# (same file names, CSV columns, box file) and reads it with the same code that reads the real files;
# set `MEDXAI_DATA_DIR` to use your copy of the real images (a partial copy works).
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `01_preprocessing_and_splits` (smoke and
# lab profiles, measured on a 2-core CPU).
#
# Built from Georgieva's lecture *Deep Learning for Medical Imaging* (lecture 7, Universidade de Aveiro:
# standardisation, weighted BCE, patient overlap, set sampling, augmentation, ground truth and
# consensus), Passantino's *Deep MedIA Senior Design Technical Report* (Bucknell University), Wang et
# al., *ChestX-ray8*, CVPR 2017 (the dataset) and Majkowska et al., *Chest radiograph interpretation
# with deep learning models: assessment with radiologist-adjudicated reference standards and
# population-adjusted evaluation*, Radiology 2020 (the radiologist panel).

# %% [markdown]
# ## Setup
#
# All imports live here; the shared code comes from the `helpers` package, imported by module so
# that you always see where a function lives.

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
import sklearn
import tensorflow as tf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import cohen_kappa_score, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from helpers import config, datasets, dicom, errors, preprocessing, splits, synthetic, viz
from helpers.exercises import preprocessing_and_splits as exercises  # this notebook's exercise checks

print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, scikit-learn {sklearn.__version__}")

# %% [markdown]
# ## Configuration
#
# Every knob of the notebook, with its value for each profile (`smoke` for CI, `lab` for a laptop,
# `full` for the real data). Papermill can override this cell: it is tagged `parameters`.

# %% tags=["parameters"]
cfg = config.load()
image_size = cfg.pick(smoke=64, lab=128, full=224)  # model input, pixels per side
images_mode = "present"  # "present": a partial copy is fine, absent images are left out and counted; "all": every image must be there
leak_size = 32  # the tiny thumbnails the leakage experiment compares, pixels per side
leak_max_images = cfg.pick(smoke=None, lab=None, full=6000)  # None: every image
neighbours = 5  # k of the k-nearest-neighbour classifier in the leakage experiment
min_repeat_patients = 10  # patients with several images the leakage experiment needs (a copy may have one image each)
val_fraction, test_fraction = 0.1, 0.2
batch_size = cfg.pick(smoke=16, lab=32, full=32)
cache = cfg.pick(smoke="memory", lab="memory", full="disk")  # where tf.data keeps decoded images after the first epoch
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, image_size={image_size}, images_mode={images_mode!r}, leak_size={leak_size}, "
      f"leak_max_images={leak_max_images}, neighbours={neighbours}, val/test fractions={val_fraction}/{test_fraction}, "
      f"batch_size={batch_size}, cache={cache!r}, seed={seed}, data={'synthetic' if cfg.synthetic else cfg.data_dir}")
config.seed_everything(seed)

# %% [markdown]
# ## 1. The real dataset's shape, from its real metadata
#
# Before any picture: what does ChestX-ray14 look like as a table? The NIH's own
# `Data_Entry_2017_v2020.csv` and `BBox_List_2017.csv` ship with the series (NIH Clinical Center, the
# data provider; Wang et al., CVPR 2017). `images="none"` reads them without any image: the
# metadata-only mode of the same reader that reads your copy.

# %%
real = datasets.read_nih(datasets.NIH_METADATA_DIR, images="none")
real_labels = real.entries[list(datasets.LABELS)]
print(real)
assert len(real.entries) == 112_120 and real.entries.patient_id.nunique() == 30_805
assert len(real.boxes) == 984 and real.boxes.image_index.nunique() == 880

# %% [markdown]
# **Prevalence.** Over half the films carry *No Finding*; Infiltration is on about one in six, Hernia on
# one in five hundred. That ratio is the class imbalance every later notebook has to live with.

# %%
real_prevalence = real_labels.mean().sort_values()
real_no_finding = (real_labels.sum(axis=1) == 0).mean()
ax = real_prevalence.plot.barh(figsize=(6, 4), title=f"Real prevalence per finding ({real_no_finding:.0%} No Finding)")
ax.set_xlabel("fraction of the 112,120 images")
plt.show()
print(f"most common {real_prevalence.index[-1]} {real_prevalence.iloc[-1]:.1%}, rarest {real_prevalence.index[0]} "
      f"{real_prevalence.iloc[0]:.2%}: {real_prevalence.iloc[-1] / real_prevalence.iloc[0]:.0f} to 1")
assert real_prevalence.iloc[-1] / real_prevalence.iloc[0] > 50, "the real imbalance spans well over an order of magnitude"

# %% [markdown]
# **Co-occurrence.** Findings come together. Read a row as "given this finding": the colour says how
# often the column's finding is on the same film. A single-label (softmax) model could not say so.

# %%
together = real_labels.to_numpy(dtype=np.int64).T @ real_labels.to_numpy(dtype=np.int64)
given_row = together / np.diag(together)[:, None]
fig, ax = plt.subplots(figsize=(6.5, 5.5))
shown = ax.imshow(np.where(np.eye(len(datasets.LABELS), dtype=bool), np.nan, given_row), cmap="magma", vmin=0)
ax.set_xticks(range(len(datasets.LABELS)), datasets.LABELS, rotation=90)
ax.set_yticks(range(len(datasets.LABELS)), datasets.LABELS)
ax.set_title("P(column finding | row finding)")
fig.colorbar(shown, ax=ax, shrink=0.8)
plt.show()
row, col = np.unravel_index(np.nanargmax(np.where(np.eye(len(datasets.LABELS), dtype=bool), np.nan, given_row)), given_row.shape)
print(f"{(real_labels.sum(axis=1) > 1).mean():.1%} of films carry two or more findings; the strongest pair: "
      f"{given_row[row, col]:.0%} of {datasets.LABELS[row]} films also show {datasets.LABELS[col]}")

# %% [markdown]
# **Images per patient: a long tail.** Most patients have one film; some have over a hundred
# follow-ups. Those patients dominate any image-level split, which is why the split must be by patient.
# The follow-up number matters too: later films are of sicker patients.

# %%
real_per_patient = real.entries.groupby("patient_id").size()
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].hist(real_per_patient, bins=np.arange(1, real_per_patient.max() + 2), log=True)
axes[0].set(xlabel="images of the patient", ylabel="patients (log)", title="Images per patient")
stage = pd.cut(real.entries.follow_up, [-1, 0, 2, 5, 10, 20, 50, 1000], labels=["0", "1-2", "3-5", "6-10", "11-20", "21-50", ">50"])
sick_by_stage = (real_labels.sum(axis=1) > 0).groupby(stage, observed=True).mean()
sick_by_stage.plot.bar(ax=axes[1], title="Films with a finding, by follow-up number", rot=0)
axes[1].set(xlabel="follow-up #", ylabel="share with a finding")
plt.tight_layout()
plt.show()
many = int((real_per_patient > 100).sum())
print(f"{(real_per_patient == 1).mean():.0%} of patients have one film; {many} have over 100 (the most: "
      f"{real_per_patient.max()}); {real_per_patient[real_per_patient > 100].sum():,} films belong to those {many}")
print(f"films with a finding: {sick_by_stage.iloc[0]:.0%} at the first visit, {sick_by_stage.iloc[-1]:.0%} beyond the 50th")
assert many > 0 and sick_by_stage.iloc[-1] > sick_by_stage.iloc[0] + 0.2, "later follow-ups should be markedly sicker"

# %% [markdown]
# **AP and PA.** A PA film is taken standing, in the radiology department; an AP film is often taken at
# the bedside, of a patient too sick to stand. The share of AP films per finding shows it: a model can
# learn "AP film, so probably Edema" from the projection alone, a shortcut that fails on another
# hospital's mix of views.

# %%
is_ap = real.entries.view == "AP"
ap_share = pd.Series({label: is_ap[real_labels[label] == 1].mean() for label in datasets.LABELS}).sort_values()
ax = ap_share.plot.barh(figsize=(6, 4), title="Share of AP (bedside) films among each finding's positives")
ax.axvline(is_ap.mean(), color="grey", linestyle=":", label=f"all films {is_ap.mean():.0%}")
ax.legend(loc="lower right")
plt.show()
print(f"{ap_share.index[-1]}: {ap_share.iloc[-1]:.0%} AP; {ap_share.index[0]}: {ap_share.iloc[0]:.0%} AP; all films {is_ap.mean():.0%}")
assert ap_share.iloc[-1] - ap_share.iloc[0] > 0.3, "the projection should differ strongly between findings"

# %% [markdown]
# **Age and sex.** Adults of all ages, slightly more men.

# %%
fig, ax = plt.subplots(figsize=(6, 2.8))
for sex, part in real.entries.groupby("gender"):
    ax.hist(part.age, bins=range(0, 100, 5), alpha=0.6, label=f"{sex} ({len(part) / len(real.entries):.0%})")
ax.set(xlabel="age at the film (years)", ylabel="films", title="Age and sex")
ax.legend()
plt.show()
print(f"median age {real.entries.age.median():.0f}, range {real.entries.age.min()}-{real.entries.age.max()}")

# %% [markdown]
# **The patient-level split on the real label matrix.** `patient_split` balances all fourteen findings
# across train, validation and test while keeping each patient on one side. How well? Per finding, the
# largest relative gap between a split's prevalence and the whole dataset's, beside a random split by
# image (which balances by luck, and leaks patients).

# %%
start = time.perf_counter()
real_split = splits.patient_split(real.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
split_seconds = time.perf_counter() - start
real_random = splits.random_split(real.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
splits.assert_no_patient_overlap(**real_split)


def worst_gap(parts):
    """Per finding: the largest |split prevalence / overall prevalence - 1| over the splits."""
    overall = real_labels.mean()
    return pd.concat([(p[list(datasets.LABELS)].mean() / overall - 1).abs() for p in parts.values()], axis=1).max(axis=1)


balance = pd.DataFrame({"patient split (stratified)": worst_gap(real_split), "random image split": worst_gap(real_random)})
ax = balance.plot.barh(figsize=(6, 4.5), title="Worst relative prevalence gap across splits")
ax.set_xlabel("max |split prevalence / overall - 1|")
plt.show()
real_leak = len(set(real_random["train"].patient_id) & set(real_random["test"].patient_id))
print(f"patient split in {split_seconds:.1f} s, worst gap {balance.iloc[:, 0].max():.1%}; random image split: "
      f"worst gap {balance.iloc[:, 1].max():.1%}, and {real_leak:,} patients in both its train and test")
assert balance.iloc[:, 0].max() < 0.15 and real_leak > 1000

# %% [markdown]
# ## 2. How right are the labels? Mined labels against a radiologist panel
#
# NIH's labels were mined from the radiology reports by text processing, not read off the films; Wang et
# al. estimate them over 90% accurate, and the Deep MedIA report repeats "about 90%". Ground truth, the
# lecture says, is a consensus of readers. Google had three radiologists read 4,376 of these films and
# adjudicate four findings (Majkowska et al., Radiology 2020); their labels ship with the series.
# Compare, on the same films, the NIH label with the panel's, for the findings they share.

# %%
panel = datasets.read_google_labels()
nih_on_panel = real.entries.set_index("image_index").loc[panel.image_index, list(datasets.LABELS)]  # the NIH labels of the same films
shared_findings = {  # the panel's finding: the NIH findings that mean it
    "Pneumothorax": ["Pneumothorax"],
    "Nodule_or_mass": ["Nodule", "Mass"],
    "Airspace_opacity": ["Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"],
}
noise_rows = {}
for finding, nih_names in shared_findings.items():
    truth = panel[finding].to_numpy(bool)
    mined = nih_on_panel[nih_names].to_numpy().any(axis=1)
    noise_rows[finding] = {
        "panel positives": int(truth.sum()), "NIH positives": int(mined.sum()),
        "agreement": (truth == mined).mean(), "kappa": cohen_kappa_score(truth, mined),
        "NIH sensitivity": (truth & mined).sum() / truth.sum(), "NIH PPV": (truth & mined).sum() / mined.sum(),
    }
noise = pd.DataFrame(noise_rows).T
noise.round(3)

# %% [markdown]
# Agreement looks high for a rare finding because both sources say "no" on most films; Cohen's kappa
# corrects for that chance agreement.

# %%
pneumothorax = noise.loc["Pneumothorax"]
print(f"Pneumothorax: agreement {pneumothorax['agreement']:.1%}, yet kappa {pneumothorax['kappa']:.2f}; the mined label "
      f"finds {pneumothorax['NIH sensitivity']:.0%} of the panel's cases and {1 - pneumothorax['NIH PPV']:.0%} of its positives are not cases")
assert pneumothorax["agreement"] > 0.9 and pneumothorax["kappa"] < 0.6, "high agreement, low kappa: the rare-finding trap"

# %% [markdown]
# **What the noise does to the best AUROC a model can show.** Take a perfect model: its score *is* the
# panel's verdict. Scored against the NIH labels, as NIH results are scored, it cannot reach 1. For a 0/1
# score the AUROC is $(\text{TPR} + \text{TNR}) / 2$, the rates counted against the NIH labels:

# %%
ceiling = {}
for finding, nih_names in shared_findings.items():
    truth = panel[finding].to_numpy(bool)
    mined = nih_on_panel[nih_names].to_numpy().any(axis=1)
    by_hand = ((truth & mined).sum() / mined.sum() + (~truth & ~mined).sum() / (~mined).sum()) / 2
    ceiling[finding] = roc_auc_score(mined, truth)
    assert abs(ceiling[finding] - by_hand) < 1e-12, "scikit-learn and the hand formula must agree"
noise["perfect model's AUROC on NIH labels"] = pd.Series(ceiling)
print(noise.iloc[:, -1].round(3).to_string())
if noise.iloc[:, -1].max() < 0.8:
    print(f"A model that reads films exactly as the panel does would score at most {noise.iloc[:, -1].max():.2f} AUROC against "
          "the NIH labels on these films: NIH AUROCs measure agreement with the report mining as much as with disease.")

# %% [markdown]
# Two cautions. Google chose these 4,376 films (its validation and test sets), not at random, so the rates
# describe these films, not the whole dataset; and the panel's "airspace opacity" is broader than any one
# NIH finding. The lesson stands: against NIH labels, a test AUROC near 0.8 can be near the best any
# model can show, and a model that scores 0.95 on them has learnt the labels' habits.

# %% [markdown]
# ## 3. Data: the NIH ChestX-ray14 layout, with pictures
#
# The real release has `images/NNNNNNNN_NNN.png` (patient number, follow-up number), the label table
# `Data_Entry_2017_v2020.csv` (older copies: `Data_Entry_2017.csv`), the box list `BBox_List_2017.csv`
# and the official split lists. Without `MEDXAI_DATA_DIR`, the series writes a synthetic dataset in
# exactly that layout (smaller images; the real ones are 1024x1024), learnable on a laptop.

# %%
nih_dir = synthetic.ensure(cfg, "nih")
print(nih_dir)
print(sorted(p.name for p in nih_dir.iterdir() if not p.name.startswith(".")))

# %% [markdown]
# The CSV header is not tidy: `OriginalImage[Width,Height]` is split across two columns by its own
# comma, and the 2017 file ends every line with an extra comma. The box file is worse: its coordinates
# sit in columns 3 to 6 under the broken name `Bbox [x,y,w,h]`, and it spells *Infiltration* as
# `Infiltrate`. Look before you parse (the 2020 file's name wins when both are there):

# %%
entry_csv = sorted(nih_dir.glob("Data_Entry_2017*.csv"))[-1]
for path in (entry_csv, nih_dir / "BBox_List_2017.csv"):
    with open(path) as f:
        print(path.name, "|", f.readline().rstrip(), "|", f.readline().rstrip())

# %% [markdown]
# `datasets.read_nih` maps those columns by position, checks the header text, checks that every
# image named in the CSV exists and is a complete PNG, and turns the label strings into one 0/1
# column per finding. Nothing is dropped silently: a bad row is an error naming the row, or, if you
# ask for `errors="skip"`, a line in `nih.skipped`. With `images="present"` (this notebook's
# `images_mode`) a partial copy, say one of the twelve image archives or the Kaggle 5% sample, is
# read as it is: the rows whose image is absent are left out, and counted.

# %%
start = time.perf_counter()
nih = datasets.read_nih(nih_dir, images=images_mode)
print(f"{len(nih.entries)} images of {nih.entries.patient_id.nunique()} patients, {len(nih.boxes)} boxes, "
      f"read in {time.perf_counter() - start:.1f} s; rows left out: {len(nih.skipped)}")
if len(nih.skipped):
    print(nih.skipped.reason.value_counts().head().to_string())
nih.entries.head(3)

# %% [markdown]
# ## 4. Labels: fourteen findings, multi-label
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
absent = list(prevalence.index[prevalence == 0])
if cfg.synthetic:
    assert not absent, "every finding should occur at least once in the synthetic set"
elif absent:  # a partial real copy may hold no film of a rare finding
    print(f"this copy holds no film of {', '.join(absent)}: those findings cannot be trained or scored on it")
print(f"most common {prevalence.index[-1]} {prevalence.iloc[-1]:.1%}, rarest {prevalence.index[0]} {prevalence.iloc[0]:.1%}: "
      f"a ratio of {prevalence.iloc[-1] / prevalence.iloc[0]:.0f} to 1")

# %% [markdown]
# ## 5. Images per patient
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
# ## 6. Look at the images, with their boxes
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
viz.image_grid(images, titles=[", ".join(sorted({b[4] for b in image_boxes})) for image_boxes in boxes], boxes=boxes, ncols=4)
plt.show()

# %% [markdown]
# **A real chest radiograph, as a hospital stores it.** Hospitals keep DICOM files, not PNGs: the pixel
# values pass through the modality LUT (rescale slope and intercept), then the VOI LUT or window that the
# radiographer chose, and a `MONOCHROME1` image stores dense bone as *low* values, so it must be
# inverted. `dicom.read_radiograph` does those steps with pydicom's own functions, and
# `dicom.to_model_input` resizes the way the NIH PNGs were made (1024x1024, 8 bits) before the model's
# size. This one is a real PA chest CR (`RG1_UNCR.dcm`, 15-bit, MONOCHROME1) from the `pydicom-data`
# package; the printout carries no patient name or ID unless you ask for them (`keep_identity=True`).

# %%
radiograph = dicom.read_radiograph(dicom.example_path("RG1_UNCR.dcm"))
print(radiograph)
model_input = dicom.to_model_input(radiograph, image_size)
fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
axes[0].imshow(radiograph.image, cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"real CR, {radiograph.photometric}")
axes[1].imshow(model_input[..., 0], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(f"as the model sees it, {image_size} px")
axes[2].imshow(images[0][..., 0], cmap="gray", vmin=0, vmax=1)
axes[2].set_title("a synthetic film of the series")
for ax in axes:
    ax.axis("off")
plt.show()
height = model_input.shape[0]
spine = model_input[height // 4 : 3 * height // 4, height // 2 - height // 16 : height // 2 + height // 16].mean()
lungs = model_input[height // 4 : 3 * height // 4, height // 5 : height // 3].mean()
print(f"after the inversion, spine and mediastinum {spine:.2f} vs a lung field {lungs:.2f}")
assert spine > lungs + 0.05, "dense tissue must be bright: was MONOCHROME1 inverted?"

# %% [markdown]
# ## 7. Splits: by image (leaky) or by patient
#
# A random split by image puts different images of one patient on both sides. A patient-level split
# keeps every patient on one side, and, stratified, still puts every finding (even the rare ones) in
# validation and test: "sample an equal % of the minority class for test and validation"
# (Georgieva, lecture 7).

# %%
leaky = splits.random_split(nih.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
# a partial real copy may hold a finding on one or two patients only: said, not refused
split = splits.patient_split(nih.entries, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                             rare="raise" if cfg.synthetic else "warn")
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
repeat_patients = int((nih.entries.patient_id.value_counts() > 1).sum())
splits.assert_no_patient_overlap(**split)
try:
    splits.assert_no_patient_overlap(**leaky)
except errors.PatientLeakageError as err:
    leak_message = str(err)
    print(leak_message[:300])
else:
    if repeat_patients >= min_repeat_patients:
        raise AssertionError("a random image-level split of patients with several images should leak")
    print(f"no leak: this copy has {repeat_patients} patient(s) with more than one image, so an image-level split "
          "cannot put one patient on both sides (a sample with one image per patient is common). The leakage "
          "experiment below needs patients with several images; it is skipped here.")

# %%
per_split = pd.DataFrame({name: s[list(datasets.LABELS)].sum() for name, s in split.items()})
per_split.columns = [f"{c} positives" for c in per_split.columns]
patients_with = {label: nih.entries.loc[nih.entries[label] == 1, "patient_id"].nunique() for label in datasets.LABELS}
placeable = [label for label, n in patients_with.items() if n >= len(split)]  # fewer patients than splits: cannot
assert (per_split.loc[placeable] > 0).all().all(), "every finding with a patient per split must appear in every split"
if len(placeable) < len(datasets.LABELS):
    print(f"findings with fewer patients than splits (cannot be in every split): "
          f"{', '.join(f'{k} ({v})' for k, v in patients_with.items() if k not in placeable)}")
per_split.T

# %% [markdown]
# The real release also ships its own patient-level split (`train_val_list.txt`, `test_list.txt`).
# Use it when you compare with published numbers; `official_split` carves validation from its
# training part, by patient.

# %%
if nih.official_split is not None:
    official = splits.official_split(nih, val_fraction=val_fraction, seed=seed)
    splits.assert_no_patient_overlap(**official)
    print({name: len(s) for name, s in official.items()})

# %% [markdown]
# ## 8. The cost of leakage, in numbers
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
    """Mean AUROC over the findings present in the test part, and how often the nearest training image is the same patient."""
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


leaky_auc, leaky_same = knn_auroc(leaky) if repeat_patients >= min_repeat_patients else (np.nan, np.nan)
patient_auc, patient_same = knn_auroc(split)
cost = pd.DataFrame(
    {"mean AUROC on test": [leaky_auc, patient_auc], "nearest neighbour is the same patient": [leaky_same, patient_same]},
    index=["random split (leaky)", "patient split"],
)
cost.round(3)

# %%
ax = cost["mean AUROC on test"].plot.barh(figsize=(6, 2), xlim=(0.4, 1.0), title="The same classifier, two splits")
ax.axvline(0.5, color="grey", linestyle=":")
viz.export_figure(ax, "leakage_bars")
plt.show()
assert patient_same == 0.0, "a patient split has no same-patient neighbours"
if repeat_patients >= min_repeat_patients:
    print(f"Leakage inflates the score by {leaky_auc - patient_auc:+.3f} AUC: "
          f"{leaky_same:.0%} of leaky test images had their own patient as nearest neighbour.")
    assert leaky_auc - patient_auc >= 0.05, "the random split should inflate the AUC clearly"
else:
    print(f"only {repeat_patients} patient(s) with several images: no leaky split to compare (patient split: "
          f"mean AUC {patient_auc:.3f})")

# %% [markdown]
# ## 9. Normalisation: statistics from the training split only
#
# Standardise the pixels to mean 0 and standard deviation 1 (Georgieva, lecture 7). The mean and
# standard deviation come from the **training** images only: computing them on everything lets the
# test set shape the model's input, a quieter form of leakage. For a pretrained DenseNet use
# `preprocessing.imagenet_preprocess` instead: the ImageNet statistics the weights were trained with.

# %% [markdown]
# At full scale the training split does not fit in memory (78,000 images at 224 px are 16 GB as float32),
# so `fit_normalization` streams: give it the PNG paths and it decodes a batch at a time, keeping only
# running sums in float64. Check first, on a part small enough for memory, that streaming gives the same
# numbers as NumPy on the whole array:

# %%
def load(part, limit=None):
    """Images of a split at the model's input size, as one float32 array (small splits only)."""
    paths = list(part.path[:limit]) if limit else list(part.path)
    return np.concatenate([x for x in preprocessing.image_dataset(paths, image_size=image_size, batch_size=64)])


check_images = load(split["train"], limit=256)
streamed = preprocessing.fit_normalization(split["train"].path[:256], image_size=image_size)
in_memory = (check_images.astype(np.float64).mean(), check_images.astype(np.float64).std())
print(f"streamed mean {streamed[0]:.6f}, std {streamed[1]:.6f}; NumPy on the array: {in_memory[0]:.6f}, {in_memory[1]:.6f}")
assert np.allclose(streamed, in_memory, rtol=0, atol=1e-6)

# %%
start = time.perf_counter()
mean, std = preprocessing.fit_normalization(split["train"].path, image_size=image_size)
normalize = preprocessing.normalization_layer(mean, std)
print(f"train statistics from {len(split['train'])} images, streamed in {time.perf_counter() - start:.1f} s: mean {mean:.3f}, std {std:.3f}")
train_z = np.asarray(normalize(load(split["train"], limit=512)))
val_z = np.asarray(normalize(load(split["val"])))
print(f"after normalising with them: train (first 512) {train_z.mean():+.3f} ± {train_z.std():.3f}, val {val_z.mean():+.3f} ± {val_z.std():.3f}")
assert abs(val_z.mean()) < 0.5 and abs(val_z.std() - 1) < 0.5, "validation should land near 0 and 1 with training statistics"

# %% [markdown]
# Validation lands *near* 0 and 1, not exactly: that small difference is honest. A pipeline whose
# validation set is exactly standardised has looked at it.

# %% [markdown]
# ## 10. Class imbalance: the weights of the weighted binary cross-entropy
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
# ## 11. Augmentation, and the horizontal-flip trade-off
#
# The lecture lists horizontal and vertical flips, 90° rotations, contrast, brightness, random
# erasing and shear. **Vertical flips and 90° rotations** produce films no scanner makes (PA films are
# upright): the series never uses them on chest films. The **horizontal flip** is a real trade-off:
# Rajpurkar et al. (*CheXNet: radiologist-level pneumonia detection on chest X-rays with deep
# learning*, arXiv 2017) trained with random horizontal flips, and most findings (effusion, pneumonia,
# a nodule) occur on either side, so a flip looks like free extra data. Against it:
#
# * **the heart is on the left.** A flipped film shows the heart on the right: *dextrocardia*, a real
#   but rare anatomy. The model meets mostly films that do not exist, and the heart's place is part of
#   what cardiomegaly means.
# * **laterality.** A finding has a side, and so does its box: a flipped film's box must move to the
#   other side with it (x becomes width - x - w), and a finding that always sits on one side (the
#   heart's) ends up on the wrong one. A report that says "left" would be wrong.
# * **the L/R marker.** The radiographer's lead letter reads mirrored on a flipped film: a cue a
#   network can learn instead of anatomy.
#
# Two cheap measurements on our films (the synthetic set has no L/R marker, so they measure the
# anatomy alone). First: can a *linear* model on the 32x32 thumbnails of section 8 tell a flipped film
# from an unflipped one, trained on training-split patients and tested on test-split patients? If it
# can, flipped films are a population the model never meets in practice.

# %%
flip_thumbs = features.to_numpy().reshape(-1, leak_size, leak_size)
flip_x = np.concatenate([flip_thumbs, flip_thumbs[:, :, ::-1]]).reshape(2 * len(flip_thumbs), -1)
flip_y = np.repeat([0, 1], len(flip_thumbs))  # 1: flipped
flip_patient = np.tile(entries.set_index("image_index").loc[features.index, "patient_id"].to_numpy(), 2)
flip_train, flip_test = np.isin(flip_patient, split["train"].patient_id), np.isin(flip_patient, split["test"].patient_id)
detector = LogisticRegression(C=0.1, max_iter=2000).fit(flip_x[flip_train], flip_y[flip_train])
flip_accuracy = detector.score(flip_x[flip_test], flip_y[flip_test])
print(f"flipped or not, told apart on {flip_test.sum()} test-patient films (half of them flipped) with accuracy "
      f"{flip_accuracy:.3f} by a logistic regression on {flip_x.shape[1]} pixels (chance 0.5)")
if flip_accuracy >= 0.8:
    print("A flip is plain to see, even for a linear model: flipped films are a population the model never meets.")
else:
    print("A linear model cannot tell flipped films apart reliably here.")
assert flip_accuracy >= 0.75, f"the flip detector scores only {flip_accuracy:.3f} (chance 0.5)"

# %% [markdown]
# Second: where do the boxes lie? The image's left half is the *patient's right* (a PA film is seen as
# if facing the patient). A flip swaps the two shares.

# %%
box_side = nih.boxes.assign(on_image_left=(nih.boxes.x + nih.boxes.w / 2) < nih.boxes.image_width / 2)
sides = box_side.groupby("label").on_image_left.agg(["mean", "size"])
sides.columns = ["share on the image's left (patient's right)", "boxes"]
sides["after a flip"] = 1 - sides.iloc[:, 0]
sides.round(2)

# %%
if "Cardiomegaly" in sides.index:
    heart_left = sides.loc["Cardiomegaly"].iloc[0]
    print(f"Cardiomegaly boxes on the image's left: {heart_left:.0%}; after a flip: {1 - heart_left:.0%} "
          f"(of {int(sides.loc['Cardiomegaly', 'boxes'])} boxes)")
    assert heart_left <= 0.1, "the heart's box should lie on the patient's left, the image's right"
two_sided = sides[(sides.iloc[:, 0] > 0.25) & (sides.iloc[:, 0] < 0.75)].index.tolist()
print(f"findings found on both sides (25-75% on either): {two_sided}: for these a flip is plausible anatomy, "
      "but their boxes must still move")

# %% [markdown]
# **What the series does.** No horizontal flip for chest films: the flip is detectable (the accuracy
# above), the heart's box always changes side, and a flip buys little that small shifts, rotations and
# contrast changes do not. If you do flip, as CheXNet did, flip the boxes with the image and keep
# side-bound findings out of it. The `chest_xray` preset keeps small rotations, shifts, zoom,
# contrast, brightness, a small random erasure and a mild shear; the `fundus` preset (notebook 03)
# keeps flips and quarter turns, because a fundus photograph has no fixed up.

# %%
augment = preprocessing.augmentation("chest_xray", seed=seed)
print([layer.name for layer in augment.layers])
example = check_images[:1]
augmented = [np.asarray(augment(example, training=True))[0] for _ in range(7)]
flipped = np.asarray(keras.layers.RandomFlip("horizontal", seed=1)(np.repeat(example, 8, 0), training=True))
flipped = flipped[np.argmax(np.abs(flipped - example).reshape(8, -1).sum(1))]
viz.image_grid([example[0], *augmented, flipped], titles=["original"] + ["chest_xray preset"] * 7 + ["horizontal flip: heart on the right"], ncols=5)
plt.show()
assert not np.allclose(augmented[0], example[0]), "augmentation should change the image"

# %% [markdown]
# ## 12. The `tf.data` pipeline
#
# `image_dataset` decodes the PNGs in parallel, resizes them, caches the decoded images, shuffles,
# batches, augments on the batch, and prefetches so that the next batch is ready while the model trains
# on this one. The second epoch reads from the cache: in memory for a laptop-sized set, on disk
# (`cache="disk"`, the `full` profile) for the real one, whose decoded images do not fit in RAM.

# %%
train_ds = preprocessing.image_dataset(
    split["train"].path, split["train"][list(datasets.LABELS)].values,
    image_size=image_size, batch_size=batch_size, shuffle=True, augment=augment, seed=seed,
    cache=cache, cache_dir=cfg.cache_dir / "tf_data" / cfg.profile,
)
epoch_seconds = []
for epoch in range(2):
    start = time.perf_counter()
    count = sum(int(x.shape[0]) for x, _ in train_ds)
    epoch_seconds.append(time.perf_counter() - start)
    print(f"epoch {epoch + 1}: {count} images in {epoch_seconds[-1]:.2f} s = {count / epoch_seconds[-1]:.0f} images/s")
images_batch, labels_batch = next(iter(train_ds))
print("batch:", images_batch.shape, images_batch.dtype, labels_batch.shape)
assert count == len(split["train"]), "every training image should come out of the pipeline once per epoch"

# %% [markdown]
# ## Summary
#
# * The real ChestX-ray14, from its shipped metadata: over half the films show no finding, the
#   commonest finding is about a hundred times as frequent as the rarest, patients range from one film
#   to well over a hundred, later follow-ups and AP (bedside) films are sicker: a model can learn the
#   projection instead of the disease.
# * The text-mined labels disagree with a radiologist panel far more than "90% accurate" suggests for
#   the rare findings: agreement is high, kappa is low, and a model that reads films exactly like the
#   panel scores well below 1 AUROC against the NIH labels (section 2).
# * The NIH layout has traps (split header names, a trailing column, `Infiltrate` vs `Infiltration`):
#   one reader handles them, for the real files and the synthetic ones alike.
# * Split **by patient**, stratified so that every finding is in validation and test, and check it
#   with `assert_no_patient_overlap`. A random split inflated a nearest-neighbour classifier's AUC
#   here by the amount printed in section 6, with no better model behind it.
# * Normalisation statistics come from the training split only.
# * Weighted BCE with $w_p$ = negatives/total and $w_n$ = positives/total balances rare findings.
# * Augment with transformations a scanner could produce. A horizontal flip is a trade-off (CheXNet
#   used it): a linear model tells flipped films apart (section 11), the heart's box changes side,
#   so the series does not flip chest films.
#
# Next: notebook 02 trains DenseNet121 on these splits.
#
# ## Exercises
#
# Write each answer in the cell that starts `# Exercise N`, between the two marker lines. Its check
# (`helpers.exercises`) runs your function on small inputs it builds itself, compares it with a
# reference, and says what is wrong until it is right; the cell after it applies your function to this
# notebook's data. Questions marked *discussion* have no check: a model answer is in the instructor's
# guide.
#
# 1. **Your own patient split.** Write a split that assigns whole patients at random (no
#    stratification). Which findings go missing from validation?
# 2. **Leakage and k.** Re-run section 8 with `neighbours = 1` and `neighbours = 25`. Which k inflates
#    the leaky score most, and why? (Discussion.)
# 3. **Weights by hand.** Write `w_p` and `w_n` per finding from training labels, and read Hernia's.
# 4. **Unsafe augmentation.** Add `"hflip"` to the chest preset (`preprocessing.augmentation((...))`)
#    and find, in the grid, the image whose heart moved. Why is that flip unsafe here? (Discussion.)

# %%
# Exercise 1: write patient_split(entries, val_fraction, test_fraction, seed) -> {"train", "val", "test"}.
def patient_split(entries, val_fraction, test_fraction, seed):
    """Whole patients drawn at random into val and test (those fractions of the patients), the rest in train."""
    ### BEGIN SOLUTION
    patients = np.random.default_rng(seed).permutation(entries.patient_id.unique())
    n_val, n_test = round(len(patients) * val_fraction), round(len(patients) * test_fraction)
    drawn = {"val": patients[:n_val], "test": patients[n_val:n_val + n_test], "train": patients[n_val + n_test:]}
    return {name: entries[entries.patient_id.isin(ids)] for name, ids in drawn.items()}
    ### END SOLUTION


exercises.check_patient_split(patient_split)

# %%
your_split = patient_split(nih.entries, val_fraction, test_fraction, seed)
splits.assert_no_patient_overlap(**your_split)
missing = {name: [lab for lab in datasets.LABELS if part[lab].sum() == 0] for name, part in your_split.items()}
print(f"your split: {', '.join(f'{name} {len(part)} images' for name, part in your_split.items())}; "
      f"findings without a positive image: {missing}")

# %%
# Exercise 3: write class_weights(labels) -> (w_p, w_n), one weight per column of an (images, findings) 0/1 array.
def class_weights(labels):
    """w_p = negatives / total and w_n = positives / total, per finding."""
    ### BEGIN SOLUTION
    positive = np.asarray(labels, np.float64).mean(axis=0)
    return 1.0 - positive, positive
    ### END SOLUTION


exercises.check_class_weights(class_weights)

# %%
your_w_p, your_w_n = class_weights(split["train"][list(datasets.LABELS)].values)
hernia = datasets.LABELS.index("Hernia")
print(f"Hernia in split['train']: w_p = {your_w_p[hernia]:.3f}, w_n = {your_w_n[hernia]:.3f} "
      f"(section 10: {w_p[hernia]:.3f}, {w_n[hernia]:.3f})")
assert np.allclose(your_w_p, w_p) and np.allclose(your_w_n, w_n), "your weights passed the check but differ from section 10's"

# %% [markdown]
# ## Cleanup

# %%
plt.close("all")
