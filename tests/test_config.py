"""config: profiles, paths, and the rule that only config.py reads the environment."""

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import config
from helpers.errors import DataError

HELPERS = Path(__file__).resolve().parents[1] / "helpers"


def test_default_profile_is_lab(tmp_path):
    cfg = config.load({"MEDXAI_CACHE_DIR": str(tmp_path)})
    assert cfg.profile == "lab"
    assert cfg.pick(smoke=1, lab=8, full=60) == 8
    assert cfg.synthetic
    assert cfg.dataset_dir("nih") == tmp_path / "synthetic" / "lab" / "nih"


@pytest.mark.parametrize("profile, expected", [("smoke", 1), ("LAB", 8), (" full ", 60)])
def test_pick_follows_profile(profile, expected):
    assert config.load({"MEDXAI_PROFILE": profile}).pick(smoke=1, lab=8, full=60) == expected


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(config.ConfigError, match=r"Unknown profile 'fast'.*smoke, lab, full"):
        config.load({"MEDXAI_PROFILE": "fast"})


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(config.ConfigError, match="is not a folder"):
        config.load({"MEDXAI_DATA_DIR": str(tmp_path / "nowhere")})


def test_real_data_dir_is_used_in_any_profile(tmp_path):
    (tmp_path / "drive").mkdir()
    cfg = config.load({"MEDXAI_DATA_DIR": str(tmp_path), "MEDXAI_PROFILE": "smoke"})
    assert not cfg.synthetic
    assert cfg.dataset_dir("drive") == tmp_path.resolve() / "drive"


def test_data_dir_with_one_dataset_says_which_folder_is_missing(tmp_path):
    (tmp_path / "drive").mkdir()
    cfg = config.load({"MEDXAI_DATA_DIR": str(tmp_path)})
    assert cfg.has_dataset("drive") and not cfg.has_dataset("nih")
    with pytest.raises(config.ConfigError) as err:
        cfg.dataset_dir("nih")
    message = str(err.value)
    assert "no nih/ folder (it holds drive/ only)" in message
    assert "helpers/data/manifests/nih.md" in message and "unset MEDXAI_DATA_DIR" in message
    assert isinstance(err.value, DataError)  # data readers that catch DataError see it too
    (tmp_path / "nih").mkdir()
    assert cfg.has_dataset("nih") and cfg.dataset_dir("nih") == tmp_path.resolve() / "nih"


def test_has_dataset_without_data_dir():
    assert config.load({"MEDXAI_PROFILE": "smoke"}).has_dataset("nih")  # synthetic data is written on demand
    assert not config.load({"MEDXAI_PROFILE": "full"}).has_dataset("drive")  # full reads only real data
    with pytest.raises(config.ConfigError, match="Unknown dataset 'chexpert'"):
        config.load({}).has_dataset("chexpert")


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3", "4.5"])
def test_seed_must_be_in_range(seed):
    with pytest.raises(config.ConfigError, match=r"0 to 4294967295 \(2\*\*32 - 1\)"):
        config.load({"MEDXAI_SEED": seed})
    assert config.load({"MEDXAI_SEED": "4294967295"}).seed == 2**32 - 1


def test_seed_of_a_config_built_in_code_is_checked():
    with pytest.raises(config.ConfigError, match="out of range"):
        config.Config(seed=-5)
    assert config.Config(seed=np.int64(7)).seed == 7


def test_cache_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "cache.txt"
    blocker.write_text("not a folder")
    for where in (blocker, blocker / "below"):
        with pytest.raises(config.ConfigError) as err:
            config.load({"MEDXAI_CACHE_DIR": str(where)})
        assert str(blocker) in str(err.value) and "is a file, not a folder" in str(err.value)
    assert config.load({"MEDXAI_CACHE_DIR": str(tmp_path / "new")}).cache_dir == tmp_path / "new"


def test_full_profile_without_data_says_what_to_do():
    cfg = config.load({"MEDXAI_PROFILE": "full"})
    with pytest.raises(config.ConfigError, match="set MEDXAI_DATA_DIR"):
        cfg.dataset_dir("nih")


def test_bad_seed_and_unknown_dataset():
    with pytest.raises(config.ConfigError, match="MEDXAI_SEED must be a whole number"):
        config.load({"MEDXAI_SEED": "abc"})
    with pytest.raises(config.ConfigError, match="Unknown dataset 'chexpert'"):
        config.load({}).dataset_dir("chexpert")


def test_only_config_reads_the_environment():
    offenders = [
        str(p.relative_to(HELPERS))
        for p in HELPERS.rglob("*.py")
        if p.name != "config.py" and re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())
    ]
    assert offenders == [], f"only helpers/config.py may read the environment: {offenders}"


def test_public_functions_have_docstrings_ending_with_the_notebook_that_teaches_them():
    """A short summary first; "Taught in NN_name." on its own last line (the d2l pattern), not squeezed into the
    first."""
    import ast

    missing = []
    for path in sorted(HELPERS.rglob("*.py")):  # the packages (exercises, ...) too
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            lines = (ast.get_docstring(node) or "").strip().splitlines()
            taught = re.fullmatch(r"Taught in \d\d[a-z]?_[a-z0-9_]+\.", lines[-1]) if lines else None
            if len(lines) < 3 or not taught or "Taught in" in lines[0]:
                missing.append(f"{path.relative_to(HELPERS)}:{node.lineno} {node.name}")
    assert missing == [], ("public names whose docstring does not end with its own line 'Taught in NN_name.' after a "
                           "summary line and a blank line:\n" + "\n".join(missing))


def test_synthetic_copy_keeps_cache_and_seed_and_drops_the_real_data(tmp_path):
    (tmp_path / "data").mkdir()
    cfg = config.load({"MEDXAI_PROFILE": "full", "MEDXAI_DATA_DIR": str(tmp_path / "data"),
                       "MEDXAI_CACHE_DIR": str(tmp_path / "cache"), "MEDXAI_SEED": "7"})
    copy = cfg.synthetic_copy("smoke")
    assert not cfg.synthetic and copy.synthetic and copy.profile == "smoke"
    assert (copy.cache_dir, copy.seed) == (cfg.cache_dir, 7)
    assert copy.dataset_dir("nih") == cfg.cache_dir / "synthetic" / "smoke" / "nih"
