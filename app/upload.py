"""The upload page: a clinician uploads one chest radiograph (PNG, JPEG or DICOM) and sees its report.

``python -m app.upload --model FILE`` (or ``make app``) serves one page on http://127.0.0.1:7860/. The page
shows the image with a Grad-CAM heatmap and a box per finding predicted present, the findings table (probability,
the validation threshold, the decision, the MC-dropout mean, spread and mutual information), the refer flag with
its reason, and a link that downloads the report as JSON; all of it is ``helpers.report`` (notebook 07), drawn
here without change.

A small Starlette app rather than Gradio: Gradio 4 to 6 require pillow < 13, which the series pins at 13.0.0, and
the newest Gradio pip can then resolve (3.36) predates pydantic 2; the page also needs nothing Gradio adds (one
form, one answer), and Starlette with uvicorn is two small packages.

What the page promises, and tests (tests/test_upload_page.py):

- the upload is streamed into a fresh ``tempfile.TemporaryDirectory`` (under ``--upload-dir`` when given) and
  that folder is deleted as soon as the answer is built, whether the report succeeded or not;
- an upload over ``--max-mb`` (default 50 MB) is refused while it streams, before it is read as an image;
- a bad upload (not an image, a CT slice, a truncated DICOM, too large) gets the message of the check that
  refused it, about "the uploaded file", and the server keeps serving;
- nothing identifying the patient is read (``keep_identity`` stays False), shown, logged or put in the JSON, and
  the file's name never leaves the browser (file names of PACS exports often hold the patient's name): the page
  sends only its suffix, and the report names the image by a pseudonym from its bytes (``report.pseudonym``);
- it listens on 127.0.0.1 unless ``--host`` says otherwise (see the README: an SSH tunnel or an authenticating
  reverse proxy, never an open port).
"""

from __future__ import annotations

import argparse
import base64
import html
import ipaddress
import re
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote

from helpers.errors import DataError

MAX_MB = 50  # the default upload limit; a chest radiograph DICOM is 5 to 30 MB
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic")  # and no suffix: PACS exports often have none
DRAIN_BYTES = 64 * 2**20  # an upload over the limit is read on, not stored, this far, so the sender gets the message
NAME_HEADER = "X-File-Name"  # the page sends the file's name here, URL-encoded (never in the URL, so never logged)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")
COLUMNS = {  # the findings table: column of report.ChestReport.findings -> heading on the page
    "probability": "probability", "threshold": "threshold", "present": "decision", "mean": "MC mean",
    "spread": "MC spread (SD)", "mutual_information": "mutual information (nats)",
}


class UploadError(DataError):
    """An upload the page refuses before reading it: too large, empty, or not PNG, JPEG or DICOM by its name.

    Taught in 07_report.
    """

    status = 400


class UploadTooLarge(UploadError):
    """An upload over the page's size limit (HTTP 413). Taught in 07_report."""

    status = 413


UPLOADED = "the uploaded file"  # how every message names the upload: never by its file name


def safe_name(name) -> str:
    """The uploaded file's name without folders or unusual characters, as the page shows it ("upload" when none).

    Taught in 07_report.
    """
    base = unquote(str(name or "")).replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .") or "upload"
    stem, dot, suffix = base.rpartition(".")
    if dot and len(suffix) <= 10:
        return stem[:100] + "." + suffix
    return base[:110]


def check_upload(name, size: int | None, max_bytes: int = MAX_MB * 2**20) -> str:
    """Refuse an upload by its name and size (None: not known yet) before it is read; return its safe name.

    Taught in 07_report.
    """
    shown = safe_name(name)
    suffix = Path(shown).suffix.lower()
    if suffix and suffix not in SUFFIXES:
        raise UploadError(f"{UPLOADED}: a {suffix} file; the page reads one chest radiograph as PNG, JPEG or DICOM "
                          f"({', '.join(SUFFIXES)}, or a DICOM file without a suffix). Export the image in one of "
                          "those formats and upload it again.")
    if size is not None and size > max_bytes:
        raise UploadTooLarge(f"{UPLOADED}: {_megabytes(size)}, over this page's limit of {_megabytes(max_bytes)}. "
                             "Upload one radiograph (a chest DICOM is 5 to 30 MB): not a series, a study or an "
                             "archive; the limit is the server's --max-mb.")
    if size == 0:
        raise UploadError(f"{UPLOADED}: an empty file (0 bytes). Copy it again from its source and upload it again.")
    return shown


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size} bytes"


# --------------------------------------------------------------------------------------------
# The answer: one HTML fragment, built from helpers.report's figure, table and JSON
# --------------------------------------------------------------------------------------------


def _cell(column: str, value) -> str:
    if column == "present":
        return "<td class='yes'>present</td>" if bool(value) else "<td>absent</td>"
    return f"<td>{float(value):.4f}</td>"


def findings_html(findings) -> str:
    """The findings table as HTML: one row per finding, the decision at its threshold, the MC-dropout uncertainty.

    Taught in 07_report.
    """
    columns = [c for c in COLUMNS if c in findings.columns]
    head = "".join(f"<th>{html.escape(COLUMNS[c])}</th>" for c in columns)
    rows = []
    for label, row in findings.iterrows():
        cells = "".join(_cell(c, row[c]) for c in columns)
        marked = " class='present'" if bool(row.get("present", False)) else ""
        rows.append(f"<tr{marked}><th scope='row'>{html.escape(str(label))}</th>{cells}</tr>")
    return (f"<table id='findings'><thead><tr><th>finding</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def answer_html(result, figure_png: bytes, report_json: str, warned: Sequence[str] = ()) -> str:
    """The page's answer for one report: refer line and reason, figure (image, heatmaps, boxes), table, JSON link.

    Taught in 07_report.
    """
    flag, css = ("Refer to a radiologist", "refer") if result.refer else ("No referral", "ok")
    image = base64.b64encode(figure_png).decode("ascii")
    data = base64.b64encode(report_json.encode("utf-8")).decode("ascii")
    present = ", ".join(result.present) or "none"
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in [*warned, *result.notes])
    download = html.escape(Path(result.source).stem + ".report.json", quote=True)
    return (
        f"<h2 id='refer' class='{css}'>{flag}</h2>"
        + (f"<p id='unfamiliar' class='refer'>{html.escape(result.unfamiliar)}</p>"
           if getattr(result, "unfamiliar", None) else "")
        + f"<p id='reason'>{html.escape(result.refer_reason)}</p>"
        f"<p id='model-card'>{html.escape(str(getattr(result, 'card_line', '')))}</p>"  # what the model was trained on
        f"<p><a id='download' download='{download}' href='data:application/json;base64,{data}'>"
        "Download the report (JSON)</a></p>"
        f"<p id='present'>Findings predicted present: {html.escape(present)} (a Grad-CAM heatmap for each, and a box "
        "where the heatmap has a hot region).</p>"
        f"<img id='figure' alt='the radiograph with a Grad-CAM heatmap and a box per finding predicted present' "
        f"src='data:image/png;base64,{image}'>"
        f"{findings_html(result.findings)}"
        f"<p class='small'>{html.escape(result.source)}; model {html.escape(str(result.model))}, "
        f"T = {int(result.samples)} dropout samples. A research tool of a teaching series, not a medical device.</p>"
        f"<ul id='notes'>{notes}</ul>"
    )


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

PAGE = ("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chest radiograph report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:sans-serif;max-width:1100px;margin:1em auto;padding:0 1em}
#error{background:#fde8e8;border:1px solid #a11;padding:.6em;color:#700}
.refer{color:#a11} .ok{color:#161} .small{font-size:.85em;color:#555}
#figure{max-width:100%;display:block;margin:.5em 0}
table{border-collapse:collapse} td,th{padding:2px 8px;text-align:right} tbody tr:nth-child(even){background:#f2f2f2}
tr.present th,td.yes{font-weight:bold}
</style></head>
<body data-answers="0" data-state="ready">
<h1>Chest radiograph report</h1>
<p>Upload one frontal chest radiograph: PNG, JPEG or DICOM (CR, DX or RG), up to {limit}. The file is kept in a
temporary folder only while its report is made, then deleted. A research tool of a teaching series, not a medical
device: every finding needs a radiologist's reading.</p>
<form id="upload" data-max-bytes="{max_bytes}">
<input type="file" id="file" name="file" """
        """accept=".png,.jpg,.jpeg,.dcm,.dicom,.dic,image/png,image/jpeg,application/dicom">
<button type="submit" id="send">Report</button>
</form>
<p id="status" role="status"></p>
<div id="error" role="alert" hidden></div>
<div id="result"></div>
<script src="upload.js"></script>
</body></html>
""")

SCRIPT = """"use strict";
const form = document.getElementById("upload"), input = document.getElementById("file");
const status = document.getElementById("status"), error = document.getElementById("error");
const result = document.getElementById("result"), maxBytes = Number(form.dataset.maxBytes);

function finish(state, seconds) {
  document.body.dataset.state = state;
  document.body.dataset.answers = String(Number(document.body.dataset.answers) + 1);
  status.textContent = seconds === null ? "" : "Answered in " + seconds.toFixed(2) + " s.";
}
function fail(message, seconds) {
  result.innerHTML = "";
  error.textContent = message;
  error.hidden = false;
  finish("error", seconds);
}

// Only the suffix leaves the browser: file names of PACS exports often hold the patient's name.
function suffixOf(name) { const dot = name.lastIndexOf("."); return dot > 0 ? "upload" + name.slice(dot) : "upload"; }

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = input.files[0];
  error.hidden = true;
  if (!file) { fail("Choose a PNG, JPEG or DICOM file first.", null); return; }
  if (file.size > maxBytes) {
    fail("The chosen file: " + (file.size / 1048576).toFixed(1) + " MB, over this page's limit of " +
         (maxBytes / 1048576).toFixed(1) + " MB. Upload one radiograph, not a series or an archive.", null);
    return;
  }
  const started = performance.now();
  document.body.dataset.state = "busy";
  status.textContent = "Reporting the chosen file ...";
  result.innerHTML = "";
  let answer;
  try {
    const response = await fetch("report", {method: "POST", body: file,
      headers: {"Content-Type": "application/octet-stream", "X-File-Name": encodeURIComponent(suffixOf(file.name))}});
    answer = await response.json();
  } catch (err) {
    fail("The server did not answer (" + err + "). Check that it is still running, then upload again.",
         (performance.now() - started) / 1000);
    return;
  }
  if (!answer.ok) { fail(answer.error, (performance.now() - started) / 1000); return; }
  result.innerHTML = answer.html;
  const figure = document.getElementById("figure");
  if (!figure.complete) { await new Promise((done) => { figure.onload = done; figure.onerror = done; }); }
  finish("report", (performance.now() - started) / 1000);
});
"""

HEADERS = {  # no caching of answers, no framing, no script or image from elsewhere
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
}


def _scrub(message: str, path: Path, name: str) -> str:
    """A message about the temporary copy, said about the uploaded file (no temporary folder in the page)."""
    message = message.replace(str(path), name)
    return message.replace(str(path.parent) + "/", "").replace(str(path.parent), "the upload folder")


def create_app(reporter, *, max_bytes: int = MAX_MB * 2**20, upload_dir=None):
    """The Starlette app: GET / (the page), GET /upload.js, GET /health, POST /report (the file as the request body).

    Taught in 07_report.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from helpers import report

    upload_dir = None if upload_dir is None else str(upload_dir)
    lock = threading.Lock()  # one report at a time: the model is shared and the CPU is the limit anyway
    page = PAGE.replace("{limit}", _megabytes(max_bytes)).replace("{max_bytes}", str(int(max_bytes)))

    def build(path: Path, name: str) -> str:
        with lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = reporter.report(path)  # named by a pseudonym of its bytes, not by the uploaded name
            figure, payload = report.figure_png(result), report.to_json(result)
        said = [_scrub(str(w.message), path, UPLOADED) for w in caught if issubclass(w.category, UserWarning)]
        return answer_html(result, figure, payload, said)

    async def index(request):
        return HTMLResponse(page, headers=HEADERS)

    async def script(request):
        return Response(SCRIPT, media_type="text/javascript", headers=HEADERS)

    async def health(request):
        return PlainTextResponse("ok", headers=HEADERS)

    async def receive(request, path: Path, name: str, declared: int | None) -> int:
        size, storing = 0, True
        with open(path, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if storing and size > max_bytes:  # over the limit: nothing more is stored, what was is dropped
                    storing = False
                    out.seek(0)
                    out.truncate()
                if storing:
                    out.write(chunk)
                elif size > max_bytes + DRAIN_BYTES:  # read on (not stored) only so far, then answer
                    break
        if not storing:
            check_upload(name, declared or size, max_bytes)
        return size

    async def post_report(request):
        started = time.perf_counter()
        name = safe_name(request.headers.get(NAME_HEADER))
        try:
            length = request.headers.get("content-length", "")
            declared = int(length) if length.isdigit() else None
            check_upload(name, None, max_bytes)  # the name first; the size once the body is read (or said too large)
            if declared is not None and declared > max_bytes + DRAIN_BYTES:
                check_upload(name, declared, max_bytes)
            with tempfile.TemporaryDirectory(prefix="medxai-upload-", dir=upload_dir) as folder:
                path = Path(folder) / ("upload" + Path(name).suffix.lower())
                try:
                    check_upload(name, await receive(request, path, name, declared), max_bytes)
                    fragment = await run_in_threadpool(build, path, name)
                except DataError as err:  # said about the uploaded file, not its temporary copy
                    err.args = (_scrub(str(err), path, UPLOADED),)
                    raise
        except DataError as err:
            status = getattr(err, "status", 422)
            return JSONResponse({"ok": False, "error": " ".join(str(err).split())}, status_code=status, headers=HEADERS)
        except Exception as err:  # a fault of ours, not of the file: said, logged, and the server keeps serving
            traceback.print_exc(file=sys.stderr)
            return JSONResponse({"ok": False, "error": f"{UPLOADED}: the report failed with an internal error "
                                 f"({type(err).__name__}). The page keeps serving: try another file, and if a valid "
                                 "radiograph fails, send the server's log to whoever runs it."},
                                status_code=500, headers=HEADERS)
        return JSONResponse({"ok": True, "html": fragment, "seconds": round(time.perf_counter() - started, 3)},
                            headers=HEADERS)

    return Starlette(routes=[Route("/", index), Route("/upload.js", script), Route("/health", health),
                             Route("/report", post_report, methods=["POST"])])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.upload [--model FILE] [--host H] [--port P] [--max-mb N]``: serve the upload page until stopped.

    Taught in 07_report.
    """
    parser = argparse.ArgumentParser(prog="python -m app.upload", description=main.__doc__)
    parser.add_argument("--model", help="the saved classifier (.keras) with its thresholds beside it; default: "
                                        "the profile's models folder (notebook 02 saves it there)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--max-mb", type=float, default=MAX_MB, help=f"largest upload in MB (default {MAX_MB})")
    parser.add_argument("--samples", type=int, default=None,
                        help="T, MC-dropout samples per image (default: the T the referral was calibrated "
                             "with, else 20)")
    parser.add_argument("--upload-dir", help="folder for the per-upload temporary folders (default: the system's)")
    args = parser.parse_args(argv)
    if args.max_mb <= 0:
        parser.error(f"--max-mb must be positive, not {args.max_mb:g}")
    if args.upload_dir is not None and not Path(args.upload_dir).is_dir():
        parser.error(f"--upload-dir {args.upload_dir}: not a folder; create it first")

    import numpy as np
    import uvicorn

    from helpers import report

    try:
        reporter = report.ChestReporter.load(args.model, samples=args.samples)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    reporter.report(np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64), source_name="warm-up")
    app = create_app(reporter, max_bytes=int(args.max_mb * 2**20), upload_dir=args.upload_dir)
    where = f"http://{args.host}:{args.port}/"
    if _is_loopback(args.host):
        print(f"The upload page is at {where} (this machine only; from another machine use an SSH tunnel: "
              f"ssh -L {args.port}:127.0.0.1:{args.port} THIS_HOST). Ctrl-C stops it.", flush=True)
    else:
        print(f"WARNING: listening on {args.host}, reachable from the network, with no login and no TLS. Put it "
              "behind a reverse proxy with authentication and HTTPS, or bind 127.0.0.1 and use an SSH tunnel. "
              f"The page is at {where}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
