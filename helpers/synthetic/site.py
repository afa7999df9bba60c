"""A synthetic "external site": a PACS-style export of DICOM chest films and its label CSV, for notebook 09.

The films come from the synthetic NIH generator with other patients (another seed), then pass through this
site's acquisition: another contrast curve and more noise, portable AP films noisier and magnified, a higher
prevalence (fewer healthy films), and the age, sex and view of real NIH rows (the metadata that ships with
the series). One disparity is planted for the subgroup audit to find: films of patients aged 60 and over
are degraded (a low-dose protocol: noise and blur). The files are written as a PACS export is: study
folders with ``IM0001.dcm`` in each, patient names and record numbers in the headers (the reader must
pseudonymise them), two films whose headers say they are not frontal chests (the reader must refuse them),
and a label file with a column the series does not use. Taught in 09_your_own_films.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

NAME = "site"
LABEL_FILE = "labels.csv"
SITE_FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax")
SIZES: dict[str, dict] = {  # profile -> writer arguments; the training site's image size, another set of patients
    "smoke": dict(patients=60, image_size=128),
    "lab": dict(patients=240, image_size=256),
    "full": dict(patients=240, image_size=256),
}
DEGRADED_FROM_AGE = 60  # the planted disparity: films of patients this old or older
HEALTHY_KEPT = 0.6  # share of "No Finding" films the site keeps: its prevalence is higher than the training site's
_SEED_OFFSET = 9_000  # the site's patients: the training generator with another seed


def _acquire(image: np.ndarray, view: str, degraded: bool, rng: np.random.Generator) -> np.ndarray:
    """The site's acquisition of one [0, 1] film: contrast, noise, AP magnification, the planted degradation."""
    x = np.clip(image, 0, 1) ** 1.25  # another detector's contrast curve
    size = x.shape[0]
    if view == "AP":  # portable: closer source, the chest a little larger in the film, noisier
        scale = 1.06
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), 0.0, scale)
        x = cv2.warpAffine(x.astype(np.float32), matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    noise = 0.02 if view == "PA" else 0.035
    if degraded:
        x = cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigmaX=size / 90)
        x = 0.5 + 0.6 * (x - 0.5)  # a flatter exposure
        noise += 0.09
    return np.clip(x + rng.normal(0, noise, x.shape), 0, 1)


@functools.lru_cache(maxsize=1)
def _real_adults():
    """The adults of the real NIH metadata the package ships (112,120 rows, read and checked once per process)."""
    from helpers import datasets

    real = datasets.read_nih(datasets.NIH_METADATA_DIR, images="none").entries
    return real[(real["age"] >= 18) & (real["age"] <= 90)][["patient_id", "age", "gender", "view"]].copy()


def write_site(root, *, patients: int, image_size: int, seed: int = 42) -> Path:
    """Write the synthetic external site (DICOM files in study folders and labels.csv) under ``root``.

    Taught in 09_your_own_films.
    """
    from helpers import dicom, synthetic

    root = Path(root)
    site_seed = int(seed) + _SEED_OFFSET
    records = synthetic._nih_plan(patients, site_seed)
    rng = np.random.default_rng([site_seed, 1])
    adults = _real_adults()
    people = adults.drop_duplicates("patient_id").sample(n=patients, random_state=site_seed,
                                                         replace=len(adults) < patients)
    views = adults["view"].to_numpy()
    rows = ["file,patient_id," + ",".join(SITE_FINDINGS) + ",sex,age,view,accession"]
    anatomy, cache, current, study = None, {}, None, 0
    for rec in records:
        if not rec["labels"] and rng.random() > HEALTHY_KEPT:
            continue
        person = people.iloc[rec["patient"] - 1]
        if rec["patient"] != current:
            current, anatomy, cache = rec["patient"], synthetic._anatomy(site_seed, rec["patient"], image_size), {}
        image, _ = synthetic._render_chest(anatomy, site_seed, rec, cache)
        view = str(views[rng.integers(len(views))])
        age = int(person["age"]) + int(rec["followup"] > 0)
        film = _acquire(image.astype(np.float64) / 255.0, view, age >= DEGRADED_FROM_AGE, rng)
        study += 1
        folder = root / f"STUDY{study:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        stored = np.rint(film * 4095).astype(np.uint16)  # 12-bit detector data in 16-bit words
        mrn = f"MRN{700000 + rec['patient']:07d}"
        dicom.write_dicom(folder / "IM0001.dcm", stored, modality="DX", bits_stored=12, BodyPartExamined="CHEST",
                          ViewPosition=view, PatientSex=str(person["gender"]), PatientAge=f"{age:03d}Y",
                          PatientID=mrn, PatientName=f"SITE^PATIENT{rec['patient']:04d}",
                          WindowCenter=2048, WindowWidth=4096, InstitutionName="External Site Hospital")
        marks = ",".join(str(int(label in rec["labels"])) for label in SITE_FINDINGS)
        rows.append(f"STUDY{study:04d}/IM0001.dcm,{mrn},{marks},{person['gender']},{age},{view},A{study:06d}")
    # two films the reader must refuse: their headers say they are not frontal chests
    for body_part, view, name in (("HAND", "PA", "hand"), ("CHEST", "LL", "lateral")):
        study += 1
        folder = root / f"STUDY{study:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        dicom.write_dicom(folder / "IM0001.dcm", np.full((image_size, image_size), 1800, np.uint16) +
                          rng.integers(0, 400, (image_size, image_size)).astype(np.uint16), modality="DX",
                          bits_stored=12, BodyPartExamined=body_part, ViewPosition=view,
                          PatientID=f"MRN{800000 + study:07d}")
        rows.append(f"STUDY{study:04d}/IM0001.dcm,MRN{800000 + study:07d}," + ",".join("0" for _ in SITE_FINDINGS)
                    + f",F,50,{view},A{study:06d}")
    (root / LABEL_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root

