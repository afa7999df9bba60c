"""Shared fixtures: headless Chromium for the browser tests of the upload page and of the course site."""

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
