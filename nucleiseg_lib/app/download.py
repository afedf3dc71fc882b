"""The download of one result: a zip of the mask, the labels, the measurements and the settings."""

import base64
import html
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ..inference.measure import table_to_csv
from ..viz.pictures import png_bytes


def results_zip(result, checkpoint=None):
    """The download: ``mask.png`` (0/255), ``labels.png`` (16-bit instance ids), ``nuclei.csv``, ``settings.json``."""
    labels = result.labels
    if labels.max() > 65535:
        raise ValueError("more than 65535 nuclei do not fit a 16-bit labels PNG")
    settings = dict(image=result.upload.name, width=int(labels.shape[1]), height=int(labels.shape[0]),
                    rule=result.rule, threshold=round(float(result.threshold), 6), min_size=int(result.min_size),
                    min_score=float(result.min_score), checkpoint=checkpoint,
                    **{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in result.stats.items()})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mask.png", png_bytes((result.mask * 255).astype(np.uint8)), zipfile.ZIP_STORED)
        z.writestr("labels.png", png_bytes(labels.astype(np.uint16)), zipfile.ZIP_STORED)
        z.writestr("nuclei.csv", table_to_csv(result.table), zipfile.ZIP_DEFLATED)
        z.writestr("settings.json", json.dumps(settings, indent=2), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def download_filename(name):
    """``cells.tif`` -> ``cells_nucleiseg.zip``."""
    stem = Path(name).stem or "image"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"{stem}_nucleiseg.zip"


def download_link(payload, filename, text="Download mask, labels (PNG) and measurements (CSV)"):
    """An HTML anchor styled as a button that saves `payload` (a zip) under `filename`."""
    b64 = base64.b64encode(payload).decode("ascii")
    return (f'<a class="nucleiseg-download-link jupyter-button mod-primary" download="{html.escape(filename)}" '
            f'href="data:application/zip;base64,{b64}" style="display:inline-block;padding:4px 14px;'
            f'text-decoration:none;border-radius:3px;line-height:28px;height:auto">&#11015; {html.escape(text)}'
            f'</a> <small>{html.escape(filename)}, {len(payload) / 1e6:.2f} MB</small>')
