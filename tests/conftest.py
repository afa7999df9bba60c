"""Shared fixtures: headless Chromium for the browser tests of the upload page and of the course site, and one fresh
interpreter for the checks that need TensorFlow started anew."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

REQUIRE_BROWSER = os.environ.get("MEDXAI_REQUIRE_BROWSER") == "1"  # set by .ci/run: a missing browser fails there


def skip_or_fail(reason: str):
    """Skip, saying why; under MEDXAI_REQUIRE_BROWSER=1 fail instead (CI must run the browser tests)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (MEDXAI_REQUIRE_BROWSER=1: CI must run the browser tests)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Selenium and its chromedriver, with the console log kept."""
    if importlib.util.find_spec("selenium") is None:
        skip_or_fail("selenium is not installed: run `make app-install` (requirements-app.txt) for the browser test")
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                    None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        skip_or_fail("no Chromium or chromedriver on this machine: `make browser` installs Debian's chromium and "
                     "chromium-driver (as root), or apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# The checks that need a Python in which TensorFlow has not started yet share one such interpreter (each costs a
# TensorFlow import of several CPU-seconds): two logical CPUs must be declared before TensorFlow starts (the
# MirroredStrategy fit of tests/test_segmentation.py), and a model saved with the weighted loss must load where
# only helpers.models was imported (tests/test_classifier.py). Each part reports on its own line, so one failing
# part does not hide the other.
FRESH_SCRIPT = """
import sys, traceback
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
try:
    from helpers import models
    loaded = models.load_classifier(sys.argv[1], ["a", "b", "c"])
    print("LOADED", type(loaded.loss).__name__)
except Exception:
    print("LOAD FAILED", traceback.format_exc().replace(chr(10), " | "))
try:
    import keras
    from helpers import losses, models
    assert models.strategy().num_replicas_in_sync == 1  # no GPU here: the default strategy
    strategy = models.strategy(devices=[d.name for d in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        model = models.unet(base_filters=4, depth=2, dropout_rate=0.1)
        model.compile(keras.optimizers.Adam(1e-3), losses.DiceBCELoss())
    x = np.random.default_rng(0).random((8, 16, 16, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    history = model.fit(x, y, batch_size=8, epochs=1, steps_per_epoch=1, verbose=0)
    print("REPLICAS", strategy.num_replicas_in_sync, type(strategy).__name__, "LOSS", history.history["loss"][0])
except Exception:
    print("MIRRORED FAILED", traceback.format_exc().replace(chr(10), " | "))
"""


@pytest.fixture(scope="session")
def fresh_interpreter(tmp_path_factory):
    """The completed run of FRESH_SCRIPT in a new Python: its stdout holds a LOADED and a REPLICAS line."""
    import subprocess
    import sys
    from pathlib import Path

    import keras

    from helpers import losses

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")])
    model.compile("adam", losses.WeightedBinaryCrossentropy([0.9, 0.8, 0.7], [0.1, 0.2, 0.3]))
    path = tmp_path_factory.mktemp("fresh") / "weighted.keras"
    model.save(path)
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, "-c", FRESH_SCRIPT, str(path)], cwd=root, capture_output=True, text=True,
                          timeout=300)
