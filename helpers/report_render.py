"""Renderers of a report (``report.ChestReport`` or ``report.FundusReport``): JSON, a one-page figure (PNG), an HTML
page.

Nothing here reads the image files or the models; ``helpers.report`` re-exports these functions, so
``report.to_json(result)``, ``report.to_html(result)`` and ``report.to_png(result, path)`` are the names to use.
The patient identity appears only when the report holds it (``keep_identity=True``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import textwrap
from pathlib import Path

import numpy as np

from helpers import model_card as _model_card


def to_dict(result) -> dict:
    """A report as plain JSON-ready values (no image, no heatmaps; boxes in displayed pixels).

    Taught in 07_report.
    """
    findings = result.findings.reset_index()
    records = json.loads(findings.to_json(orient="records", double_precision=15))
    out = {"kind": result.kind, "source": result.source, "model": result.model, "samples": result.samples,
           "refer": bool(result.refer), "refer_reason": result.refer_reason, "findings": records,
           "boxes": {k: [float(v) for v in box] for k, box in result.boxes.items()},
           "image_size": list(np.shape(result.image)[:2]), "notes": list(result.notes), "details": result.details}
    if getattr(result, "identity", None):
        out["identity"] = dict(result.identity)
    out["model_card"] = {**_model_card.as_report(getattr(result, "model_card", None)), "line": _card_line(result)}
    # helpers.familiarity's warning, None: within what it has seen
    out["unfamiliar"] = getattr(result, "unfamiliar", None)
    return out


def _card_line(result) -> str:
    """The report's one line on what the model was trained on (model_card.summary_line, set by the reporter)."""
    return getattr(result, "card_line", None) or _model_card.NO_CARD_LINE


def to_json(result) -> str:
    """The report as a JSON string (findings, decisions, uncertainty, refer flag and reason, boxes).

    Taught in 07_report.
    """
    return json.dumps(to_dict(result), indent=1)


def _figure(result):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    maps = result.heatmaps
    panels = 1 + len(maps)
    cols = min(panels, 4)
    rows = -(-panels // cols)
    fig = Figure(figsize=(3.2 * cols, 3.4 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    shown = result.image if np.ndim(result.image) == 3 else np.stack([result.image] * 3, -1)
    flag = ("REFER to a radiologist" if result.refer and result.kind == "chest"
            else ("REFER" if result.refer else "no referral"))
    if getattr(result, "unfamiliar", None):
        flag += f" ({result.unfamiliar.split(':')[0]})"
    fig.suptitle(f"{result.source}: {flag}", color="firebrick" if result.refer else "darkgreen", fontsize=14,
                 y=1 - 0.08 / fig.get_figheight(), va="top")
    card = textwrap.wrap(_card_line(result), width=int(fig.get_figwidth() * 10))  # ~10 characters an inch at 11 pt
    fig.text(0.5, 1 - 0.32 / fig.get_figheight(), "\n".join(card), ha="center", va="top", fontsize=11,
             color="firebrick" if _model_card.NOT_FOR_CLINICAL_USE in _card_line(result) else "dimgray")
    ax = fig.add_subplot(rows, cols, 1)
    ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
    ax.set_title("image" + (" with boxes" if result.boxes else ""), fontsize=12)
    for label, (x, y, w, h) in result.boxes.items():
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
        ax.text(x, max(y - 3, 8), label, color="yellow", fontsize=10)
    ax.axis("off")
    for k, (label, heat) in enumerate(maps.items(), start=2):
        ax = fig.add_subplot(rows, cols, k)
        ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
        heat_shown = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if label in result.boxes:
            x, y, w, h = result.boxes[label]
            ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="white", linewidth=1.5))
        title = label
        if result.kind == "chest":
            row = result.findings.loc[label]
            title = f"{label}: p={row['probability']:.2f}, MI={row['mutual_information']:.2g}"
        ax.set_title(title, fontsize=11)
        ax.axis("off")
        fig.colorbar(heat_shown, ax=ax, fraction=0.046, pad=0.02)  # the map's scale: 0 to 1
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.4 + 0.2 * len(card)) / fig.get_figheight()))  # room for title and card line
    return fig


def figure_png(result) -> bytes:
    """The one-page figure (image, boxes, a heatmap per present finding) as PNG bytes.

    Taught in 07_report.
    """
    buffer = io.BytesIO()
    _figure(result).savefig(buffer, format="png")
    return buffer.getvalue()


def to_png(result, path) -> Path:
    """Write the one-page figure as a PNG file and return its path.

    Taught in 07_report.
    """
    path = Path(path)
    path.write_bytes(figure_png(result))
    return path


def _table_html(result) -> str:
    table = result.findings.copy()
    formats = {c: "{:.4g}" for c in table.columns if table[c].dtype.kind == "f"}
    for column, fmt in formats.items():
        table[column] = table[column].map(fmt.format)
    if "present" in table:
        table["present"] = table["present"].map({True: "yes", False: "no"})
    return table.to_html(classes="findings", escape=True, border=0)


def _unfamiliar_html(result, tag: str) -> str:
    """The "outside what this model has seen" banner above the findings, or nothing."""
    text = getattr(result, "unfamiliar", None)
    return f"<{tag} style='color:#a11;font-weight:bold'>{html.escape(text)}</{tag.split()[0]}>" if text else ""


def to_html(result, figure: bytes | None = None) -> str:
    """One self-contained HTML page: refer flag and reason, findings table, the figure embedded as base64 PNG.

    ``figure``: the PNG bytes of ``figure_png(result)`` when the caller has drawn them already (drawn here otherwise).

    Taught in 07_report.
    """
    image = base64.b64encode(figure_png(result) if figure is None else figure).decode("ascii")
    flag = "Refer to a radiologist" if result.refer else "No referral"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    identity = ""
    if getattr(result, "identity", None):
        identity = "<p class='identity'>" + ", ".join(f"{html.escape(k)}: {html.escape(str(v))}"
                                                       for k, v in result.identity.items()) + "</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Report: {html.escape(result.source)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:1em auto}} .refer{{color:#a11}} .ok{{color:#161}}
table.findings{{border-collapse:collapse}} table.findings td,table.findings th{{padding:2px 8px;text-align:right}}
table.findings tr:nth-child(even){{background:#f2f2f2}}</style></head>
<body><h1>{html.escape(result.source)}</h1>{identity}
{_unfamiliar_html(result, "p class='unfamiliar'")}<p class="model-card">{html.escape(_card_line(result))}</p>
<h2 class="{'refer' if result.refer else 'ok'}">{flag}</h2><p class="reason">{html.escape(result.refer_reason)}</p>
<img alt="report figure" src="data:image/png;base64,{image}" style="max-width:100%">
{_table_html(result)}
<p>Model {html.escape(result.model)}, T = {result.samples} dropout samples. A research tool trained on a teaching
series, not a medical device.</p><ul>{notes}</ul></body></html>
"""
