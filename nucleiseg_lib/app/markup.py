"""The app's HTML pieces: the no-model notice, the statistics and measurement tables, the style."""

import html
from pathlib import Path

import numpy as np

from ..inference.postprocess import RULE_LABELS


def no_model_message(run_dir, problem=None):
    """HTML telling the user that there is no model yet, and how to get one."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "best.pt"
    profile = run_dir.name if run_dir.name in ("smoke", "cpu", "gpu", "original") else "cpu"
    detail = f"<br><small>{html.escape(str(problem))}</small>" if problem else ""
    return (
        f'<div class="nucleiseg-nomodel" style="border-left:6px solid #d9822b;background:#fff4e5;padding:10px 14px;'
        f'margin:6px 0;color:#222"><b>No trained model yet.</b> This app uses the checkpoint that notebook '
        f"<code>04_training</code> writes, <code>{html.escape(str(ckpt))}</code>, and there is none "
        f"usable there.{detail}<br>To get one, either<ul style='margin:4px 0'>"
        f"<li>run <code>notebooks/04_training.ipynb</code> with the same <code>PROFILE</code> and "
        f"<code>RUN_DIR</code> as here, or</li>"
        f"<li>in a terminal: <code>nucleiseg train --data auto --run {html.escape(str(run_dir))} "
        f"--profile {profile}</code> (a few minutes with <code>--profile smoke</code>, "
        f"about 20 with <code>cpu</code> on 2 cores),</li></ul>"
        f"then press <b>Check again</b> (or run this notebook again).</div>")


def pretrained_message(run_dir, summary):
    """HTML saying that the app uses the pretrained course model, because `run_dir` has no trained model yet."""
    from ..pretrained import CARD_MD, card
    c = card() or {}
    test = (c.get("scores") or {}).get("test", {}).get("dsb_score")
    recipe = (c.get("left_out_recipe") or {}).get("dsb_score")
    how = (f" Its DSB score on whole experiments left out of its training is {test:.2f}" if test is not None else
           f" It was trained on every experiment of DSB2018 stage1_train; its recipe, trained with whole experiments "
           f"left out, scored DSB {recipe:.2f} on them" if recipe is not None else "")
    return (
        f'<div class="nucleiseg-pretrained" style="border-left:6px solid #2b7bd9;background:#e8f1fb;padding:10px 14px;'
        f'margin:6px 0;color:#222"><b>Using the pretrained course model.</b> There is no trained model in '
        f"<code>{html.escape(str(Path(run_dir) / 'best.pt'))}</code> yet, so this app uses the model shipped with "
        f"<code>nucleiseg_lib</code> (the {html.escape(str(c.get('recipe', 'cpu')))} recipe; see "
        f"<code>{CARD_MD.name}</code>).{html.escape(how)}{'.' if how else ''} Train your own with "
        f"<code>notebooks/04_training.ipynb</code> (same <code>PROFILE</code> and <code>RUN_DIR</code>), then press "
        f"<b>Check again</b>.<br><small>Model: {html.escape(summary)}</small></div>")


def nuclei_word(n):
    return "nucleus" if n == 1 else "nuclei"


def _fmt(v, digits=1):
    return "-" if isinstance(v, float) and np.isnan(v) else f"{v:.{digits}f}"


def stats_html(res):
    s = res.stats
    up = res.upload
    rows = [("image", f"{html.escape(up.name)} ({up.shape[1]}x{up.shape[0]} pixels)"),
            ("threshold", f'<span data-threshold="{res.threshold:.4f}">{res.threshold:.3f}</span> '
                          f"({RULE_LABELS[res.rule]})"),
            ("nucleus area (pixels)", f"mean {_fmt(s['area_mean'])}, median {_fmt(s['area_median'])}, "
                                      f"sd {_fmt(s['area_std'])}, min {_fmt(s['area_min'], 0)}, "
                                      f"max {_fmt(s['area_max'], 0)}"),
            ("in nuclei", f"{s['nuclei_px']} pixels (the foreground less specks under {res.min_size} pixels"
                          + (f" and objects of mean probability under {res.min_score:g}" if res.min_score else "")
                          + ")"),
            ("touching the border", f"{s['touching_border']} (their area is cut off)"),
            ("time", f"prediction {up.seconds['predict']:.2f} s (once per upload), threshold + measurements "
                     f"{res.seconds:.2f} s")]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="nucleiseg-stats-table">{body}</table>'


def table_html(table, max_rows=200):
    cols = ("nucleus", "area_px", "centroid_x", "centroid_y", "equivalent_diameter_px", "eccentricity",
            "perimeter_px", "mean_intensity", "mean_probability", "touches_border")
    n = len(table["nucleus"])
    if n == 0:
        return "<i>no nuclei at this threshold</i>"
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for i in range(min(n, max_rows)):
        cells = []
        for c in cols:
            v = table[c][i]
            cells.append(f"<td>{v:.2f}</td>" if isinstance(v, (float, np.floating)) else f"<td>{v}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p><small>first {max_rows} of {n} nuclei; all are in the download</small></p>" if n > max_rows else ""
    return (f"<details><summary>Measurements of the {n} {nuclei_word(n)} (pixels)</summary>"
            f'<div style="max-height:320px;overflow:auto"><table class="nucleiseg-measurements">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}</details>")


CSS = """<style>
.nucleiseg-grid { grid-gap: 8px; width: 100%; }
.nucleiseg-panel img { height: auto; }
.nucleiseg-panel img.nucleiseg-pixelated { image-rendering: pixelated; }
.nucleiseg-msg { padding: 6px 10px; margin: 4px 0; border-radius: 4px; }
.nucleiseg-msg-info { background: #eef3fb; color: #123; }
.nucleiseg-msg-busy { background: #fff8d6; color: #4a3b00; }
.nucleiseg-msg-ok { background: #e8f6ea; color: #0d3d14; }
.nucleiseg-msg-error { background: #fde8e8; color: #7a0b0b; border-left: 5px solid #c62828; }
.nucleiseg-count { font-size: 1.6em; margin-right: 24px; }
.nucleiseg-foreground { font-size: 1.1em; align-self: center; }
.nucleiseg-stats-table th { text-align: left; padding-right: 12px; font-weight: 600; }
.nucleiseg-measurements td, .nucleiseg-measurements th { padding: 1px 8px; text-align: right; }
.nucleiseg-modelinfo { color: #444; font-size: 0.9em; }
</style>"""


def describe_model(predictor, where):
    """One line about the model in use (plain text): architecture, recipe, epoch, post-processing, device."""
    p = predictor
    cfg = getattr(getattr(p, "model", None), "config", None) or {"base": "?", "out_channels": "?"}
    pp = p.postprocess
    state = getattr(p, "state", {})
    recipe = (state.get("config") or {}).get("recipe", "?")
    data = (state.get("data") or {}).get("source")
    text = (f"{where}: U-Net base {cfg['base']}, {cfg['out_channels']} output channel(s), recipe {recipe}, "
            f"epoch {state.get('epoch', '?')}; validation-optimal threshold {pp['threshold']:.2f}, "
            f"{pp['method']} instances; on {getattr(getattr(p, 'device', None), 'type', 'cpu')}")
    if data == "synthetic":
        text += " - TRAINED ON SYNTHETIC DATA: expect poor results on real microscopy"
    return text


def upload_hint(max_pixels, websocket_mb):
    """The invitation to upload, with the size limits (plain text)."""
    side = int(max_pixels ** 0.5)
    return ("Upload one or more microscope images (PNG, JPEG or TIFF; 8- or 16-bit; grayscale, RGB "
            f"or RGBA; up to {max_pixels / 1e6:.1f} megapixels each, e.g. {side}x{side}). Files "
            f"over {websocket_mb} MB need a server that accepts large messages (the course's "
            "voila.json sets one; see 'How it works' below).")


def upload_report(done, errors):
    """(HTML, kind) of the message after an upload: what was segmented, then what failed."""
    lines = [f"{up.name}: {up.shape[1]}x{up.shape[0]} pixels, segmented in "
             f"{up.seconds['decode'] + up.seconds['predict']:.1f} s" for up in done]
    if not errors:
        return html.escape("; ".join(lines)), "ok"
    return "<br>".join(html.escape(s) for s in lines + errors), "error"


def message_html(body_html, kind):
    """A coloured message box (empty for no message)."""
    return f'<div class="nucleiseg-msg nucleiseg-msg-{kind}" data-kind="{kind}">{body_html}</div>' if body_html else ""


def count_html(name, stats):
    """The nucleus count, with data attributes for the browser tests."""
    n = stats["count"]
    return (f'<span class="nucleiseg-count-value" data-count="{n}" data-name="{html.escape(name)}">{n}</span> '
            f"{nuclei_word(n)}")


def foreground_html(stats):
    """The foreground pixels and their share of the image."""
    return (f'foreground pixels: <span data-foreground="{stats["foreground_px"]}">{stats["foreground_px"]}</span> '
            f'({100 * stats["coverage"]:.1f} %)')
