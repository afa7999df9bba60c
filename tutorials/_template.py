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
# # NN · Title: what the reader can do at the end
#
# **Description:** one sentence: what this notebook teaches, on which data.<br>
# **Needs:** which earlier notebook's saved model this one loads (and what it does without it), or
# "nothing: it writes its own synthetic data".<br>
# **Session:** the minute-by-minute plan for a 90-minute lab, and whether it fits one, is in `TIMINGS.md`, section `Plan: NN_name`.
#
# **You will:** the three to five things the reader does, each a section below.
#
# **Run time:** see `TIMINGS.md` beside this notebook, section `NN_name` (smoke and lab profiles, measured
# on a 2-core CPU).
#
# Built from: author, *title*, venue (which part of this notebook comes from it).

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

import keras
import numpy as np
import tensorflow as tf

from helpers import config, datasets, synthetic

tf.get_logger().setLevel("ERROR")
print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")

# %% [markdown]
# ## Configuration

# %% tags=["parameters"]
cfg = config.load()
image_size = cfg.pick(smoke=32, lab=128, full=224)  # every size, count and epoch the profiles scale
seed = cfg.seed

# %%
print(f"profile={cfg.profile}, image size {image_size}")
config.seed_everything(seed)

# %% [markdown]
# ## 1. The data
#
# A heading and one or two sentences, then the code that shows it at once.

# %%
nih = datasets.read_nih(synthetic.ensure(cfg, "nih"))
print(f"{len(nih.entries)} images of {nih.entries.patient_id.nunique()} patients")
assert nih.entries.patient_id.nunique() > 1, "a split needs more than one patient"

# %% [markdown]
# ## Summary
#
# - One line per thing the reader can now do.

# %% [markdown]
# ## Exercises
#
# 1. An exercise with a check (`helpers.exercises`), its worked answer between the solution markers that
#    `tools/make_student.py` names (nbgrader's), so that `make student` can take it out.
