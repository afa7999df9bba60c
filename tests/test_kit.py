"""The instructor's kit: figure export (viz.export_figure, MEDXAI_FIGURES_DIR), the section-times table and the installer's plan."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from helpers import config, viz  # noqa: E402


def _figure():
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1, 2], [0.9, 0.4, 0.1], marker="o")
    ax.set_title("rank correlation")
    return fig


def test_export_writes_a_decodable_png_and_an_svg(tmp_path):
    fig = _figure()
    png, svg = viz.export_figure(fig, "randomisation_curve", folder=tmp_path / "figures")
    plt.close(fig)
    assert (png.name, svg.name) == ("randomisation_curve.png", "randomisation_curve.svg")
    with Image.open(png) as image:
        image.load()
        width, height = image.size
    # 4 x 2 inches at 200 dpi, trimmed by bbox_inches="tight": within 25% of 800 x 400 pixels, not 100 dpi's 400 x 200
    assert 600 <= width <= 900 and 300 <= height <= 450, (width, height)
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "rank correlation" in svg.read_text(encoding="utf-8") or root.find(".//{http://www.w3.org/2000/svg}path") is not None


def test_export_is_a_noop_when_off(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDXAI_FIGURES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    fig = _figure()
    assert viz.export_figure(fig, "leakage_bars") is None
    plt.close(fig)
    assert list(tmp_path.rglob("*")) == []


def test_export_follows_the_environment_and_takes_an_axes(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDXAI_FIGURES_DIR", str(tmp_path / "build" / "figures"))
    fig = _figure()
    paths = viz.export_figure(fig.axes[0], "referral_curves")  # pandas' DataFrame.plot returns an Axes
    plt.close(fig)
    assert paths == (tmp_path / "build" / "figures" / "referral_curves.png", tmp_path / "build" / "figures" / "referral_curves.svg")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_export_svg_is_the_same_bytes_twice(tmp_path):
    fig = _figure()
    first = viz.export_figure(fig, "iobb_bars", folder=tmp_path / "a")[1].read_bytes()
    second = viz.export_figure(fig, "iobb_bars", folder=tmp_path / "b")[1].read_bytes()
    plt.close(fig)
    assert first == second


def test_figures_dir_setting(tmp_path, monkeypatch):
    assert config.load({"MEDXAI_CACHE_DIR": str(tmp_path)}).figures_dir is None
    assert config.load({"MEDXAI_CACHE_DIR": str(tmp_path), "MEDXAI_FIGURES_DIR": "  "}).figures_dir is None
    monkeypatch.chdir(tmp_path)
    cfg = config.load({"MEDXAI_CACHE_DIR": str(tmp_path), "MEDXAI_FIGURES_DIR": "build/figures"})
    assert cfg.figures_dir == tmp_path.resolve() / "build" / "figures"  # resolved where it was read, not where a notebook runs
    assert not cfg.figures_dir.exists()  # created by the first export, not by reading the setting


def test_export_rejects_an_image_array(tmp_path):
    with pytest.raises(TypeError, match=r"export_figure\('slide'\) needs a matplotlib Figure.*ndarray"):
        viz.export_figure(np.zeros((4, 4)), "slide", folder=tmp_path)
