"""config: profiles, paths, and the rule that only config.py reads the environment."""

import re
from pathlib import Path

import pytest

from helpers import config

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
    cfg = config.load({"MEDXAI_DATA_DIR": str(tmp_path), "MEDXAI_PROFILE": "smoke"})
    assert not cfg.synthetic
    assert cfg.dataset_dir("drive") == tmp_path.resolve() / "drive"


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
        p.name
        for p in HELPERS.glob("*.py")
        if p.name != "config.py" and re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text())
    ]
    assert offenders == [], f"only helpers/config.py may read the environment: {offenders}"


def test_public_functions_have_one_line_docstrings_naming_a_notebook():
    import ast

    missing = []
    for path in sorted(HELPERS.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) or node.name.startswith("_"):
                continue
            lines = (ast.get_docstring(node) or "").strip().splitlines()
            if not lines or not re.search(r"Taught in \d\d_[a-z0-9_]+\.$", lines[0]):
                missing.append(f"{path.name}:{node.lineno} {node.name}")
    assert missing == [], "public names whose first docstring line does not end with 'Taught in NN_name.':\n" + "\n".join(missing)
