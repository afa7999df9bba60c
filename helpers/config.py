"""Profiles, paths and seeds: the only module of the series that reads the environment.

Environment variables (all optional):

``MEDXAI_PROFILE``    ``smoke`` (CI), ``lab`` (default: a laptop, minutes) or ``full`` (real data).
``MEDXAI_DATA_DIR``   a folder holding the real datasets as ``nih/`` and ``drive/``; unset, the
                      series writes synthetic datasets in the same layouts under the cache.
``MEDXAI_CACHE_DIR``  where synthetic data and the models passed between notebooks are kept
                      (default ``~/.cache/medxai``).
``MEDXAI_SEED``       the seed of every random choice (default 42).
``MEDXAI_FIGURES_DIR`` a folder where ``viz.export_figure`` writes the key plots as PNG and SVG (``make
                      figures``); unset, figure export is off.
"""

from __future__ import annotations

import numbers
import os
import random
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from helpers.errors import DataError

PROFILES = ("smoke", "lab", "full")
DEFAULT_PROFILE = "lab"
# dsb2018: nuclei (notebook 08); site: a site's own films and labels (09)
DATASETS = ("nih", "drive", "dsb2018", "site")
DEFAULT_SEED = 42
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding and keras.utils.set_random_seed take 0 .. 2**32 - 1


class ConfigError(ValueError):
    """A setting in the environment that the series cannot use.

    Taught in 01_preprocessing_and_splits.
    """


class MissingDatasetError(ConfigError, DataError):
    """MEDXAI_DATA_DIR is set but lacks the dataset's folder: a ConfigError, and a DataError for data readers.

    Taught in 01_preprocessing_and_splits.
    """


@dataclass(frozen=True)
class Config:
    """The settings of one run: profile, where the data and caches live, the seed.

    Taught in 01_preprocessing_and_splits.
    """

    profile: str = DEFAULT_PROFILE
    data_dir: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "medxai"
    seed: int = DEFAULT_SEED
    figures_dir: Path | None = None  # viz.export_figure writes here; None: figure export is off

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(
                f"Unknown profile {self.profile!r}: choose one of {', '.join(PROFILES)} "
                "(for example MEDXAI_PROFILE=lab)."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(
                f"seed {self.seed!r} is out of range: a seed is a whole number from 0 to {MAX_SEED} (2**32 - 1), "
                "for example MEDXAI_SEED=42."
            )

    def pick(self, *, smoke: Any, lab: Any, full: Any) -> Any:
        """Return the value for the active profile, e.g. ``cfg.pick(smoke=1, lab=8, full=60)``.

        Taught in 01_preprocessing_and_splits.
        """
        return {"smoke": smoke, "lab": lab, "full": full}[self.profile]

    def synthetic_copy(self, profile: str = "smoke") -> "Config":
        """These settings on the synthetic data of ``profile`` (the same cache and seed): where a real copy lacks what a
        section needs to show its method.

        Taught in 06_boxes_iobb.
        """
        return dataclasses.replace(self, data_dir=None, profile=profile)

    @property
    def synthetic(self) -> bool:
        """True when the series runs on its generated datasets rather than on MEDXAI_DATA_DIR.

        Taught in 01_preprocessing_and_splits.
        """
        return self.data_dir is None

    def has_dataset(self, name: str) -> bool:
        """True when dataset ``name`` can be read: MEDXAI_DATA_DIR holds ``name/``, or, without it, the synthetic one
        (not in the full profile).

        Taught in 01_preprocessing_and_splits.
        """
        if name not in DATASETS:
            raise ConfigError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
        if self.data_dir is not None:
            return (self.data_dir / name).is_dir()
        return self.profile != "full"

    def dataset_dir(self, name: str) -> Path:
        """Folder of dataset ``name`` (``nih`` or ``drive``): the real copy or the synthetic one.

        With MEDXAI_DATA_DIR set, a missing ``name/`` folder under it raises MissingDatasetError (a
        ConfigError) saying what to do; ``has_dataset(name)`` asks first without raising.

        Taught in 01_preprocessing_and_splits.
        """
        if name not in DATASETS:
            raise ConfigError(f"Unknown dataset {name!r}: choose one of {', '.join(DATASETS)}.")
        if self.data_dir is not None:
            path = self.data_dir / name
            if not path.is_dir():
                others = [d for d in DATASETS if d != name and (self.data_dir / d).is_dir()]
                holds = f" (it holds {', '.join(o + '/' for o in others)} only)" if others else ""
                raise MissingDatasetError(
                    f"MEDXAI_DATA_DIR={str(self.data_dir)!r} has no {name}/ folder{holds}: {path} is missing. "
                    f"Lay the real {name.upper()} data out there as helpers/data/manifests/{name}.md says, or unset "
                    "MEDXAI_DATA_DIR to run on the synthetic data."
                )
            return path
        if self.profile == "full":
            raise ConfigError(
                "The full profile reads the real datasets: set MEDXAI_DATA_DIR to a folder that "
                f"holds {name}/ (see helpers/data/manifests/ and the README), or run with "
                "MEDXAI_PROFILE=lab to use the synthetic data."
            )
        return self.cache_dir / "synthetic" / self.profile / name

    @property
    def models_dir(self) -> Path:
        """Folder where notebooks save models that later notebooks load.

        Taught in 02_densenet_transfer.
        """
        return self.cache_dir / "models" / self.profile


def load(environ: Mapping[str, str] | None = None) -> Config:
    """Read the settings from the environment (or from ``environ``).

    Taught in 01_preprocessing_and_splits.
    """
    env = os.environ if environ is None else environ
    profile = env.get("MEDXAI_PROFILE", "").strip().lower() or DEFAULT_PROFILE
    data_dir = env.get("MEDXAI_DATA_DIR", "").strip()
    cache_dir = env.get("MEDXAI_CACHE_DIR", "").strip()
    seed_text = env.get("MEDXAI_SEED", "").strip() or str(DEFAULT_SEED)
    figures_text = env.get("MEDXAI_FIGURES_DIR", "").strip()
    try:
        seed = int(seed_text)
    except ValueError:
        raise ConfigError(
            f"MEDXAI_SEED must be a whole number from 0 to {MAX_SEED} (2**32 - 1), not {seed_text!r}."
        ) from None
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"MEDXAI_SEED={seed_text} is out of range: use a whole number from 0 to {MAX_SEED} "
                          "(2**32 - 1).")
    if data_dir and not Path(data_dir).expanduser().is_dir():
        raise ConfigError(
            f"MEDXAI_DATA_DIR={data_dir!r} is not a folder. Point it at the folder that holds "
            "nih/ and drive/, or unset it to use the synthetic datasets."
        )
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else Config.cache_dir
    blocked = next((p for p in (cache, *cache.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        source = f"MEDXAI_CACHE_DIR={cache_dir!r}" if cache_dir else f"the default cache folder {str(cache)!r}"
        raise ConfigError(
            f"{source}: {blocked} is a file, not a folder, so nothing can be cached there. Point "
            "MEDXAI_CACHE_DIR at a folder (it is created if absent), or move the file away."
        )
    figures = Path(figures_text).expanduser().resolve() if figures_text else None
    blocked = figures and next((p for p in (figures, *figures.parents) if p.exists() and not p.is_dir()), None)
    if blocked:
        raise ConfigError(
            f"MEDXAI_FIGURES_DIR={figures_text!r}: {blocked} is a file, not a folder, so no figure can be "
            "written there. Point MEDXAI_FIGURES_DIR at a folder (it is created if absent), or unset it to "
            "turn figure export off."
        )
    return Config(
        profile=profile,
        data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
        cache_dir=cache,
        seed=seed,
        figures_dir=figures,
    )


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras/TensorFlow so a notebook gives the same numbers twice.

    Taught in 01_preprocessing_and_splits.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import keras
    except ImportError:  # the data-only helpers work without TensorFlow
        return
    keras.utils.set_random_seed(seed)


def keras_home(environ: Mapping[str, str] | None = None) -> Path:
    """The Keras cache folder (``$KERAS_HOME`` or ``~/.keras``) where pretrained weights are looked up.

    Taught in 02_densenet_transfer.
    """
    env = os.environ if environ is None else environ
    home = env.get("KERAS_HOME", "").strip()
    return Path(home).expanduser() if home else Path.home() / ".keras"
