"""The upload page (app/upload.py), served as `make app` serves it and driven as a clinician would use it.

One server per module: ``python -m app.upload`` in a subprocess on 127.0.0.1 and a free port, with a tiny
classifier saved here with its thresholds the way notebook 02 saves them (``side_files.save_thresholds``), an 8 MB
upload limit and its own upload folder. The HTTP tests post files with urllib (the size limit, declared and
streamed; the temporary folder, seen while the upload streams and empty after; the messages; no patient name or
ID). The browser tests drive the page in headless Chromium (the system's, through Selenium and the system's
chromedriver): the real DICOM (pydicom-data's RG1_UNCR.dcm, a PA chest CR), then bad files, then the DICOM again.
They skip, saying why, where Chromium, chromedriver or the app extra is missing; MEDXAI_REQUIRE_BROWSER=1 (set
by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # app/ runs from the repository (python -m app.upload): it is not an installed package
    sys.path.append(str(ROOT))
LIMIT_MB = 8  # the test server's --max-mb: RG1_UNCR.dcm (6.9 MB) passes, 9 MB does not
IDENTITY = ("CompressedSamples", "9RG1")  # RG1_UNCR.dcm's PatientName (CompressedSamples^RG1) and PatientID


def _missing(*modules: str) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


_SERVER_MISSING = _missing("starlette", "uvicorn")
if _SERVER_MISSING:
    pytest.skip(f"the app extra is not installed ({', '.join(_SERVER_MISSING)} missing): run `make app-install` "
                "(or pip install -r requirements-app.txt) to test the upload page", allow_module_level=True)

from app import upload  # noqa: E402
from helpers import datasets, dicom, report, side_files  # noqa: E402  (after the skip: the page needs the app extra)

# ---------------------------------------------------------------------------------------------
# The model, the server, the expected report
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """The report tests' tiny classifier (32 px, 14 sigmoids), biased so 2 findings are present; thresholds 0.5."""
    import pandas as pd
    from test_report import _tiny  # tests/ is on sys.path under pytest (no __init__.py): one tiny model for both

    model = _tiny(seed=7)
    kernel, bias = model.get_layer("predictions").get_weights()
    bias[:] = -3.0
    bias[:2] = 3.0  # Atelectasis and Cardiomegaly present, so the figure has heatmaps and boxes
    model.get_layer("predictions").set_weights([np.abs(kernel), bias])
    path = tmp_path_factory.mktemp("model") / "tiny_chest.keras"
    model.save(path)
    side_files.save_thresholds(path, pd.Series(0.5, index=datasets.LABELS), method="0.5 (test model)")
    return path


@pytest.fixture(scope="module")
def expected(model_path):
    """The report of RG1_UNCR.dcm made in this process, to compare with what the page shows."""
    return report.ChestReporter.load(model_path, samples=8).report(dicom.example_path("RG1_UNCR.dcm"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, url: str, uploads: Path, log: Path, process: subprocess.Popen):
        self.url, self.uploads, self.log, self.process = url, uploads, log, process

    def leftovers(self) -> list[str]:
        return sorted(str(p.relative_to(self.uploads)) for p in self.uploads.rglob("*"))

    def alive(self) -> bool:
        with urllib.request.urlopen(self.url + "health", timeout=10) as answer:
            return answer.status == 200 and answer.read() == b"ok"


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    uploads, log = folder / "uploads", folder / "server.log"
    uploads.mkdir()
    port = _free_port()
    command = [sys.executable, "-m", "app.upload", "--model", str(model_path), "--port", str(port),
               "--max-mb", str(LIMIT_MB), "--samples", "8", "--upload-dir", str(uploads)]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            pytest.fail(f"the upload page exited with status {process.returncode} before serving:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "health", timeout=2):
                break
        except OSError:
            if time.perf_counter() - started > 600:  # a guard against a hang, not a speed budget
                process.kill()
                pytest.fail(f"the upload page did not answer within 600 s:\n{log.read_text()}")
            time.sleep(0.2)
    try:
        yield Server(url, uploads, log, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _post(server: Server, name: str, body, *, chunked: bool = False) -> tuple[int, dict]:
    """POST a file as the page does (the body, its name URL-encoded in X-File-Name); chunked: no Content-Length."""
    from urllib.parse import quote

    headers = {"Content-Type": "application/octet-stream", upload.NAME_HEADER: quote(name)}
    data = iter([body]) if chunked and isinstance(body, bytes) else body
    request = urllib.request.Request(server.url + "report", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _report_json(fragment: str) -> dict:
    found = re.search(r"href='data:application/json;base64,([A-Za-z0-9+/=]+)'", fragment)
    assert found, "the answer has no JSON download link"
    return json.loads(base64.b64decode(found.group(1)))


# ---------------------------------------------------------------------------------------------
# Over HTTP: what the server answers, where the upload lives, what it refuses
# ---------------------------------------------------------------------------------------------


def test_dicom_upload_lives_only_in_a_temporary_folder_and_gets_the_report(server, expected):
    data = dicom.example_path("RG1_UNCR.dcm").read_bytes()
    seen: list[str] = []

    def slowly():  # the first half, then wait until the server has the temporary folder open, then the rest
        yield data[: len(data) // 2]
        until = time.perf_counter() + 600  # a guard against a hang, not a speed budget
        while not any(p.endswith("upload.dcm") for p in seen) and time.perf_counter() < until:
            seen[:] = server.leftovers()
            time.sleep(0.05)
        yield data[len(data) // 2:]

    status, answer = _post(server, "RG1_UNCR.dcm", slowly())
    assert status == 200 and answer["ok"], answer
    assert any(re.fullmatch(r"medxai-upload-[^/]+/upload\.dcm", p) for p in seen), (
        f"while the file streamed, the upload folder held {seen}, not medxai-upload-*/upload.dcm")
    assert server.leftovers() == [], f"left behind after the answer: {server.leftovers()}"
    fragment = answer["html"]
    rows = re.findall(r"<tr(?: class='present')?><th scope='row'>([^<]+)</th>((?:<td[^>]*>[^<]*</td>)+)</tr>", fragment)
    assert [label for label, _ in rows] == list(datasets.LABELS)
    shown = np.array([float(re.search(r"<td>([0-9.]+)</td>", cells).group(1)) for _, cells in rows])
    np.testing.assert_allclose(shown, expected.findings["probability"], atol=5e-5)  # 4 decimals on the page
    saved = _report_json(fragment)
    np.testing.assert_allclose([f["probability"] for f in saved["findings"]], expected.findings["probability"],
                               atol=1e-5)
    assert ([f["finding"] for f in saved["findings"] if f["present"]]
            == expected.present == ["Atelectasis", "Cardiomegaly"])
    assert (saved["refer"] == expected.refer and "RG1" not in json.dumps(saved)
            and re.fullmatch(r"image-[0-9a-f]{12}", saved["source"]))
    for secret in IDENTITY:
        assert (secret not in re.sub(r"data:[^\"')]+", "", fragment)
                and secret not in json.dumps(saved)), f"{secret!r} (patient identity) in the answer"


_CT = dicom.example_path("CT_small.dcm")
_DCM = dicom.example_path("RG1_UNCR.dcm")
MARK = "QZX"  # in every bad file's name: the message must not repeat the name
BAD = [  # name, body (bytes, or a callable of nothing), chunked, HTTP status, words of the message
    ("notes_QZX1.png", b"patient notes, not an image\n" * 40, False, 422,
     ("the uploaded file", "cannot decode the image")),
    ("CT_QZX2.dcm", lambda: _CT.read_bytes(), False, 422, ("the uploaded file", "Modality CT", "accepted: CR, DX, RG")),
    ("cut_QZX3.dcm", lambda: _DCM.read_bytes()[:3_000_000], False, 422, ("the uploaded file", "truncated")),
    ("huge_QZX4.dcm", bytes(9 * 2**20), False, 413,
     ("the uploaded file", "9.0 MB", f"limit of {LIMIT_MB:.1f} MB", "--max-mb")),
    ("streamed_QZX5.dcm", bytes(9 * 2**20), True, 413, ("the uploaded file", f"limit of {LIMIT_MB:.1f} MB")),
    ("scan_QZX6.pdf", b"%PDF-1.7\n", False, 400, ("the uploaded file", "a .pdf file", "PNG, JPEG or DICOM")),
    ("empty_QZX7.png", b"", False, 400, ("the uploaded file", "an empty file")),
    ("../../etc/QZX8.png", b"GIF89a", False, 422, ("the uploaded file", "cannot decode")),
]


@pytest.mark.parametrize("name, body, chunked, status, words", BAD, ids=[b[0] for b in BAD])
def test_bad_upload_is_refused_with_a_message_and_the_server_keeps_serving(server, name, body, chunked, status, words):
    got, answer = _post(server, name, body() if callable(body) else body, chunked=chunked)
    assert (got, answer["ok"]) == (status, False), answer
    for word in words:
        assert word.lower() in answer["error"].lower(), f"{word!r} missing from: {answer['error']}"
    assert "medxai-upload-" not in answer["error"] and str(server.uploads) not in answer["error"], answer["error"]
    assert MARK not in answer["error"], f"the uploaded file's name {name!r} in the message: {answer['error']}"
    assert server.leftovers() == [], f"left behind after a refused upload: {server.leftovers()}"
    assert server.alive()



def test_real_extremity_cr_is_refused_naming_the_header_field(server):
    # pydicom-data's RG3_UNCR.dcm: a CR of a tibia (BodyPartExamined EXTREMITY), a valid DICOM the page must not report.
    status, answer = _post(server, "RG3_UNCR.dcm", dicom.example_path("RG3_UNCR.dcm").read_bytes())
    assert (status, answer["ok"]) == (422, False), answer
    error = answer["error"]
    for word in ("the uploaded file", "BodyPartExamined (0018,0015) is 'EXTREMITY'", "not a chest", "allow-non-chest"):
        assert word in error, f"{word!r} missing from: {error}"
    assert "medxai-upload-" not in error and "upload.dcm" not in error and "RG3" not in error, error
    assert server.leftovers() == [] and server.alive()

def test_page_is_served_with_its_limit_and_a_strict_policy(server):
    with urllib.request.urlopen(server.url, timeout=10) as answer:
        page, policy = answer.read().decode(), answer.headers["Content-Security-Policy"]
    assert f"up to {LIMIT_MB:.1f} MB" in page and f'data-max-bytes="{LIMIT_MB * 2**20}"' in page
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


# ---------------------------------------------------------------------------------------------
# In the browser: headless Chromium from the system packages, driven by Selenium
# ---------------------------------------------------------------------------------------------


# (the `browser` fixture, headless Chromium that skips or fails saying why, is in tests/conftest.py)


def _upload(driver, path: Path) -> tuple[float, str]:
    """Choose the file, press Report, wait for the page to render the answer; (seconds, state: report or error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = driver.find_element(By.TAG_NAME, "body")
    answers = int(body.get_attribute("data-answers"))
    chooser = driver.find_element(By.ID, "file")
    chooser.clear()
    chooser.send_keys(str(path))
    started = time.perf_counter()
    driver.find_element(By.ID, "send").click()
    WebDriverWait(driver, 600, poll_frequency=0.02).until(
        lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-answers")) > answers)
    return time.perf_counter() - started, body.get_attribute("data-state")


def _assert_report_shown(driver, expected):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#findings tbody tr")
    assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == list(datasets.LABELS)
    shown = [float(r.find_elements(By.TAG_NAME, "td")[0].text) for r in rows]
    np.testing.assert_allclose(shown, expected.findings["probability"], atol=5e-5)
    decisions = [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows]
    assert decisions == ["present" if p else "absent" for p in expected.findings["present"]]
    refer = driver.find_element(By.ID, "refer").text
    assert refer == ("Refer to a radiologist" if expected.refer else "No referral")
    masked = [re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
              for text in (driver.find_element(By.ID, "reason").text, expected.refer_reason)]
    assert masked[0] == masked[1], "the refer reason differs beyond its numbers (MC draws differ between processes)"
    width = driver.execute_script("const f = document.getElementById('figure'); "
                                  "return f.complete ? f.naturalWidth : 0;")
    assert width > 300, f"the figure did not render (natural width {width})"
    href = driver.find_element(By.ID, "download").get_attribute("href")
    saved = json.loads(base64.b64decode(href.split(",", 1)[1]))
    assert len(saved["findings"]) == 14 and saved["refer"] == expected.refer
    assert not driver.find_element(By.ID, "error").is_displayed()
    source = driver.page_source
    for secret in IDENTITY:
        assert secret not in source, f"{secret!r} (patient identity) shown in the page"


def test_browser_uploads_the_dicom_then_bad_files_and_the_page_keeps_serving(browser, server, expected, tmp_path,
                                                                             capsys):
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    assert browser.find_element(By.ID, "send").text == "Report"
    seconds, state = _upload(browser, dicom.example_path("RG1_UNCR.dcm"))
    assert state == "report", browser.find_element(By.ID, "error").text
    _assert_report_shown(browser, expected)
    first, page_says = seconds, browser.find_element(By.ID, "status").text

    text = tmp_path / "notes.png"
    text.write_text("patient notes, not an image\n" * 40)
    big = tmp_path / "big.dcm"
    with open(big, "wb") as handle:
        handle.truncate(9 * 2**20)  # sparse: 9 MB to the browser, nothing written
    for path, words in [(text, ("the uploaded file", "cannot decode the image")),
                        (dicom.example_path("CT_small.dcm"), ("the uploaded file", "Modality CT")),
                        (dicom.example_path("RG3_UNCR.dcm"), ("the uploaded file", "BodyPartExamined", "not a chest")),
                        (big, ("The chosen file", "9.0 MB", f"limit of {LIMIT_MB:.1f} MB"))]:
        _, state = _upload(browser, path)
        error = browser.find_element(By.ID, "error")
        assert state == "error" and error.is_displayed(), f"{path.name}: no error shown (state {state})"
        for word in words:
            assert word in error.text, f"{word!r} missing from the page's message: {error.text}"
        assert browser.find_elements(By.CSS_SELECTOR, "#findings") == [], "a report is still shown beside the error"
        assert server.leftovers() == [], f"{path.name}: left behind: {server.leftovers()}"

    # a PACS export named after the patient: reported, and the name is nowhere on the page
    named = tmp_path / "DOE_JOHN_MRN0012345.dcm"
    named.write_bytes(dicom.example_path("RG1_UNCR.dcm").read_bytes())
    again, state = _upload(browser, named)
    assert state == "report", browser.find_element(By.ID, "error").text
    _assert_report_shown(browser, expected)
    shown = re.sub(r"data:[^'\"]+", "", browser.page_source)  # an embedded figure's base64 may spell anything
    for secret in ("DOE", "JOHN", "MRN0012345"):
        assert secret not in shown, f"{secret!r} (from the file's name) shown on the page"
    assert report.pseudonym(named) in shown, "the page names the image by its pseudonym"
    assert "DOE" not in server.log.read_text(errors="replace")
    assert server.leftovers() == []
    with capsys.disabled():
        print(f"\nupload page: RG1_UNCR.dcm (6.9 MB) upload to rendered page {first:.2f} s first, {again:.2f} s after "
              f"four refused uploads (the page said: {page_says})")


def test_server_log_names_no_patient(server):
    log = server.log.read_text(errors="replace")
    for secret in IDENTITY:
        assert secret not in log, f"{secret!r} (patient identity) in the server's output"
    assert "Traceback" not in log, f"the server hit an internal error:\n{log}"
