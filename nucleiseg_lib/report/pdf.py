"""Export executed notebooks to one PDF report: HTML (nbconvert) printed by headless Chromium.

The document: a cover page (title, date, provenance, a loud banner when the data is
synthetic, wall times), a table of contents with page numbers, one section per notebook
(narrative, styled code, text outputs, tables, embedded figures; LaTeX formulas drawn
with matplotlib's mathtext; ipywidgets shown as a static note plus what they displayed),
and an appendix with the full software list and the slowest cells.

No LaTeX is needed; the only system dependency is a Chromium (or Chrome) binary.
"""

import base64
import copy
import html
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NucleisegError
from .provenance import COVER_PACKAGES

CSS_FILE = Path(__file__).with_name("report.css")

#: Cell tags whose input is not printed (papermill's parameter cells, Jupyter Book's tags).
HIDE_INPUT_TAGS = {"parameters", "injected-parameters", "hide-input", "hide_input", "remove-input",
                   "remove_input"}
#: Cell tags whose whole cell is not printed.
REMOVE_CELL_TAGS = {"remove-cell", "remove_cell", "hide-cell", "papermill-error-cell-tag"}
#: Cell tags whose outputs are not printed.
REMOVE_OUTPUT_TAGS = {"remove-output", "remove_output", "hide-output", "hide_output"}

MAX_CODE_LINES = 60        # longer code cells are cut (the executed notebook has them whole)
MAX_STREAM_LINES = 40      # longer text outputs keep their head and tail
STREAM_HEAD, STREAM_TAIL = 20, 15

WIDGET_NOTE = "interactive widget \u2014 open the notebook to use it"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_HELP = (
    "no Chromium or Chrome browser found to print the PDF. Install one: "
    "`sudo apt-get install chromium` (Debian; or run .ci/install-system.sh), "
    "`python -m playwright install chromium`, or set NUCLEISEG_CHROMIUM to the browser's path")


class ReportError(NucleisegError, RuntimeError):
    """The report cannot be built (no browser, the browser failed, a notebook failed...)."""


# --------------------------------------------------------------------------------------
# Chromium
# --------------------------------------------------------------------------------------

def find_chromium():
    """Path of a Chromium/Chrome binary: $NUCLEISEG_CHROMIUM, then PATH, then Playwright's.

    Raises
    ------
    ReportError
        When none is found; the message names the package to install.
    """
    env = os.environ.get("NUCLEISEG_CHROMIUM")
    if env:
        found = shutil.which(env) or (env if os.path.isfile(env) else None)
        if not found:
            raise ReportError(f"NUCLEISEG_CHROMIUM={env} is not an executable file")
        return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    for pattern in ("chromium-*/chrome-linux*/chrome", "chromium-*/chrome-linux*/headless_shell",
                    "chromium_headless_shell-*/chrome-linux*/headless_shell"):
        base = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH") or Path.home() / ".cache" / "ms-playwright")
        hits = sorted(base.glob(pattern))
        if hits:
            return str(hits[-1])
    raise ReportError(CHROMIUM_HELP)


def have_chromium():
    """True if :func:`find_chromium` finds a browser."""
    try:
        find_chromium()
        return True
    except ReportError:
        return False


def html_to_pdf(html_path, pdf_path, chromium=None, timeout=600):
    """Print an HTML file to PDF with headless Chromium; the PDF appears atomically.

    Parameters
    ----------
    html_path, pdf_path : str or Path
    chromium : str, optional
        The browser binary (default: :func:`find_chromium`).
    timeout : float
        Seconds before the browser is stopped.

    Raises
    ------
    ReportError
        No browser, or it failed or wrote no PDF (the message has its last stderr lines).
    """
    chromium = chromium or find_chromium()
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    # Profile and output next to the result, not in /tmp: a snap-packaged browser cannot see /tmp.
    profile = tempfile.mkdtemp(prefix=".chromium-profile-", dir=pdf_path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".tmp", dir=pdf_path.parent)
    os.close(fd)
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--no-pdf-header-footer",
           "--run-all-compositor-stages-before-draw", f"--print-to-pdf={tmp}", html_path.as_uri()]
    try:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ReportError(f"{chromium} did not finish printing {html_path} within {timeout:.0f} s") from None
        except OSError as exc:
            raise ReportError(f"cannot run {chromium}: {exc}. {CHROMIUM_HELP}") from None
        ok = os.path.getsize(tmp) > 0
        if ok:
            with open(tmp, "rb") as f:
                ok = f.read(5) == b"%PDF-"
        if r.returncode != 0 or not ok:
            tail = "\n".join((r.stderr or r.stdout or "").strip().splitlines()[-12:])
            raise ReportError(f"{chromium} failed to print {html_path} to PDF (exit {r.returncode}):\n{tail}")
        os.replace(tmp, pdf_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
        shutil.rmtree(profile, ignore_errors=True)
    return pdf_path


# --------------------------------------------------------------------------------------
# LaTeX in markdown -> SVG images (matplotlib mathtext; raw TeX in <code> when it cannot)
# --------------------------------------------------------------------------------------

_MATH_CACHE = {}
_CODE_SPANS = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$\w])\$(?![\s$])((?:\\\$|[^$\n])+?)(?<![\s\\])\$(?![\w$])|\\\((.+?)\\\)")


def math_img(tex, display=False, size=10.5):
    """An ``<img>`` tag with `tex` drawn as inline SVG, or a ``<code>`` fallback."""
    key = (tex, display, size)
    if key in _MATH_CACHE:
        return _MATH_CACHE[key]
    body = " ".join(tex.strip().split())
    candidates = [body]
    if display:  # display style: full-size fractions, as TeX sets them
        candidates.insert(0, re.sub(r"\\frac(?![a-zA-Z])", r"\\dfrac", body))
    tag = f'<code class="tex">{html.escape(tex.strip())}</code>'  # what mathtext cannot draw stays TeX
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.mathtext import MathTextParser, math_to_image
    prop = FontProperties(size=size * (1.1 if display else 1.0), math_fontfamily="cm")
    for candidate in dict.fromkeys(candidates):
        try:
            with matplotlib.rc_context({"svg.fonttype": "path"}):
                parsed = MathTextParser("path").parse(f"${candidate}$", dpi=72, prop=prop)
                buf = io.BytesIO()
                math_to_image(f"${candidate}$", buf, prop=prop, dpi=72, format="svg")
        except Exception:
            continue
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        cls = "math math-display" if display else "math"
        style = f"height:{parsed.height:.1f}pt;" + ("" if display else f"vertical-align:-{parsed.depth:.1f}pt;")
        tag = f'<img class="{cls}" style="{style}" alt="formula" src="data:image/svg+xml;base64,{data}"/>'
        break
    _MATH_CACHE[key] = tag
    return tag


def render_math(markdown):
    """Replace ``$$...$$``, ``\\[...\\]``, ``$...$`` and ``\\(...\\)`` (outside code) by images."""
    parts = _CODE_SPANS.split(markdown)
    for i in range(0, len(parts), 2):  # even parts are outside code
        text = _DISPLAY_MATH.sub(lambda m: "\n\n" + math_img(m.group(1) or m.group(2), True) + "\n\n", parts[i])
        parts[i] = _INLINE_MATH.sub(lambda m: math_img(m.group(1) or m.group(2)), text)
    return "".join(parts)


# --------------------------------------------------------------------------------------
# Notebook -> printable notebook
# --------------------------------------------------------------------------------------

def collapse_carriage_returns(text):
    """Keep what a terminal would show of progress lines rewritten with ``\\r``."""
    out = []
    for line in text.split("\n"):
        if "\r" in line:
            pieces = [p for p in line.split("\r") if p]
            line = pieces[-1] if pieces else ""
        while "\b" in line:
            line = re.sub(r"[^\b]\b", "", line, count=1) if re.search(r"[^\b]\b", line) else line.replace("\b", "")
        out.append(line)
    return "\n".join(out)


def _truncate_lines(text, where):
    lines = text.split("\n")
    trailing = text.endswith("\n")
    if trailing:
        lines = lines[:-1]
    if len(lines) <= MAX_STREAM_LINES:
        return text
    cut = len(lines) - STREAM_HEAD - STREAM_TAIL
    lines = lines[:STREAM_HEAD] + [f"[... {cut} lines omitted here; the full output is in {where} ...]"] + \
        lines[-STREAM_TAIL:]
    return "\n".join(lines) + ("\n" if trailing else "")


def _ref(value):
    return value[len("IPY_MODEL_"):] if isinstance(value, str) and value.startswith("IPY_MODEL_") else value


_BOXES = {"VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"}
_SELECTIONS = ("Dropdown", "RadioButtons", "Select", "ToggleButtons", "SelectionSlider", "Combobox")


def _control_text(name, s):
    label = s.get("description") or name.replace("Model", "")
    if name == "ButtonModel":
        return f"[{label}]"
    labels = s.get("_options_labels")
    if labels is not None and "index" in s:
        idx = s["index"]
        if isinstance(idx, (list, tuple)):
            value = ", ".join(str(labels[i]) for i in idx if 0 <= i < len(labels))
        else:
            value = labels[idx] if isinstance(idx, int) and 0 <= idx < len(labels) else None
    else:
        value = s.get("value")
    if isinstance(value, list):
        value = tuple(value)
    return f"{label} = {value!r}" if not isinstance(value, str) else f"{label} = {value}"


def widget_outputs(model_id, state):
    """Static stand-ins for one ipywidgets view: an HTML note/summary and the Output widgets' outputs.

    Parameters
    ----------
    model_id : str
        The model id of the widget-view output.
    state : dict or None
        The notebook's saved widget state (``metadata.widgets[...]["state"]``).

    Returns
    -------
    list of dict
        nbformat outputs: a ``text/html`` display_data first (unless the widget was only
        output holders), then what the widget's Output areas displayed (figures, text).
    """
    import nbformat
    note = f'<div class="widget-note">{html.escape(WIDGET_NOTE)}</div>'
    if not state or model_id not in state:
        return [nbformat.v4.new_output("display_data", data={"text/html": f'<div class="widget-static">{note}</div>'})]
    outputs, interactive, seen = [], [False], set()

    def render(mid):
        m = state.get(mid)
        if m is None or mid in seen:
            return ""
        seen.add(mid)
        name, s = m.get("model_name", ""), m.get("state", {}) or {}
        if name.endswith(("LayoutModel", "StyleModel")):
            return ""
        if name in _BOXES:
            kids = [render(_ref(c)) for c in s.get("children", [])]
            kids = [k for k in kids if k]
            is_bar = any(state.get(_ref(c), {}).get("model_name", "").endswith("ProgressModel")
                         for c in s.get("children", []))
            if is_bar:
                return f'<div class="widget-progress">{"".join(kids)}</div>'
            return "".join(f"<div>{k}</div>" for k in kids) if name != "HBoxModel" else \
                '<div class="widget-controls">' + "".join(kids) + "</div>"
        if name == "OutputModel":
            outputs.extend(copy.deepcopy(s.get("outputs", [])))
            return ""
        if name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
            value = s.get("value", "")
            value = value if name != "LabelModel" else html.escape(value)
            desc = html.escape(s.get("description") or "")
            return f"<span>{desc + ' ' if desc else ''}{value}</span>" if (value or desc) else ""
        if name.endswith("ProgressModel"):
            lo, hi, v = float(s.get("min", 0) or 0), float(s.get("max", 100) or 100), float(s.get("value", 0) or 0)
            pct = 0 if hi <= lo else max(0.0, min(100.0, 100 * (v - lo) / (hi - lo)))
            style = html.escape(s.get("bar_style") or "")
            return f'<span class="bar {style}"><span style="width:{pct:.0f}%"></span></span>'
        if name == "ImageModel":  # its picture is a binary buffer of the saved state
            fmt = html.escape(s.get("format") or "png")
            for buf in m.get("buffers", []) or []:
                if buf.get("path") == ["value"] and buf.get("encoding", "base64") == "base64" and buf.get("data"):
                    return (f'<div class="widget-image"><img src="data:image/{"svg+xml" if fmt == "svg" else fmt};'
                            f'base64,{buf["data"]}"/></div>')
            return ""
        if name in ("PlayModel", "ControllerModel", "ValidModel"):
            interactive[0] = interactive[0] or name == "PlayModel"
            return ""
        interactive[0] = True
        return f"<span>{html.escape(_control_text(name, s))}</span>"

    body = render(model_id)
    parts = ([note] if interactive[0] else []) + ([body] if body else [])
    result = []
    if parts:
        result.append(nbformat.v4.new_output(
            "display_data", data={"text/html": '<div class="widget-static">' + "".join(parts) + "</div>"}))
    return result + [nbformat.from_dict(o) for o in outputs]


def _tags(cell):
    return set(cell.get("metadata", {}).get("tags", []) or [])


def printable_notebook(nb, where="the executed notebook", show_code=True):
    """A copy of an executed notebook prepared for print.

    Drops papermill's error marker cells and cells tagged remove-cell; hides the input of
    parameter cells and cells tagged hide-input; renders LaTeX; collapses ``\\r`` progress
    lines and merges stream chunks; cuts long text outputs and code; replaces ipywidgets by
    static stand-ins (see :func:`widget_outputs`).

    Returns
    -------
    (notebook, parameters)
        ``parameters`` is the source of papermill's injected-parameters cell ("" if none).
    """
    nb = copy.deepcopy(nb)
    state = (nb.metadata.get("widgets", {}) or {}).get(WIDGET_STATE, {}).get("state")
    cells, parameters = [], ""
    for cell in nb.cells:
        tags = _tags(cell)
        if tags & REMOVE_CELL_TAGS:
            continue
        if "injected-parameters" in tags:
            parameters = "\n".join(line for line in cell.source.splitlines() if line.strip()
                                   and not line.lstrip().startswith("#"))
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source)
        elif cell.cell_type == "code":
            if tags & HIDE_INPUT_TAGS or not show_code:
                cell.metadata.setdefault("transient", {})["remove_source"] = True
            else:
                lines = cell.source.rstrip().splitlines()
                if len(lines) > MAX_CODE_LINES:
                    keep = MAX_CODE_LINES - 10
                    cell.source = "\n".join(lines[:keep]) + \
                        f"\n# [... {len(lines) - keep} more lines: see {where} ...]"
            if tags & REMOVE_OUTPUT_TAGS:
                cell.outputs = []
            cell.outputs = _printable_outputs(cell.get("outputs", []), state, where)
            if cell.metadata.get("transient", {}).get("remove_source") and not cell.outputs:
                continue
        cells.append(cell)
    nb.cells = cells
    return nb, parameters


def _printable_outputs(outputs, state, where):
    import nbformat
    result = []
    for out in outputs:
        out = nbformat.from_dict(copy.deepcopy(out))
        if out.output_type == "stream":
            text = out.text if isinstance(out.text, str) else "".join(out.text)
            if result and result[-1].output_type == "stream" and result[-1].name == out.name:
                result[-1].text += text
            else:
                out.text = text
                result.append(out)
            continue
        data = out.get("data", {})
        if WIDGET_VIEW in data:
            result.extend(_printable_outputs(widget_outputs(data[WIDGET_VIEW].get("model_id"), state),
                                             None, where))
            continue
        if out.output_type in ("display_data", "execute_result"):
            if "text/html" in data:
                # Output of IPython.display.HTML/pandas: keep, but without scripts.
                value = data["text/html"]
                value = "".join(value) if isinstance(value, list) else value
                data["text/html"] = re.sub(r"<script\b.*?</script>", "", value, flags=re.S | re.I)
            if "text/plain" in data and len(data) == 1:
                value = data["text/plain"]
                data["text/plain"] = _truncate_lines("".join(value) if isinstance(value, list) else value, where)
        result.append(out)
    for out in result:
        if out.output_type == "stream":
            out.text = _truncate_lines(collapse_carriage_returns(out.text), where)
    return [o for o in result if not (o.output_type == "stream" and not o.text.strip())]


@dataclass
class Section:
    """One notebook of the report, rendered to HTML."""
    index: int
    name: str
    title: str
    anchor: str
    html: str
    headings: list = field(default_factory=list)  # (level, text, id)
    wall_s: float = None
    parameters: str = ""


def _clean_heading(tag):
    for a in tag.find_all("a", class_="anchor-link"):
        a.decompose()
    return " ".join(tag.get_text(" ").split())


def notebook_section(path, index, resources_dir=None, wall_s=None, show_code=True):
    """Render one executed notebook to a :class:`Section` (ids prefixed so they stay unique)."""
    import nbformat
    from bs4 import BeautifulSoup
    from nbconvert import HTMLExporter
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb, parameters = printable_notebook(nb, where=f"executed/{path.name}", show_code=show_code)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True,
                            embed_images=True)
    resources = {"metadata": {"path": str(resources_dir or path.parent), "name": path.stem}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    soup = BeautifulSoup(body, "html.parser")
    for tag in soup.find_all("script"):
        tag.decompose()
    for img in soup.find_all("img", src=True):  # "Open in Colab"/Binder badges mean nothing on paper
        if img["src"].startswith(("http://", "https://")) and re.search(r"badge|shields\.io", img["src"]):
            (img.parent if img.parent is not None and img.parent.name == "a" else img).decompose()
    prefix = f"nb{index}-"
    for tag in soup.find_all(id=True):
        tag["id"] = prefix + tag["id"]
    for tag in soup.find_all("a", href=True):
        if tag["href"].startswith("#"):
            tag["href"] = "#" + prefix + tag["href"][1:]
    headings = []
    for h in soup.find_all(["h1", "h2", "h3"]):
        text = _clean_heading(h)
        if not text:
            continue
        if not h.get("id"):
            h["id"] = f"{prefix}h{len(headings)}"
        headings.append((int(h.name[1]), text, h["id"]))
    anchor = f"nb{index}"
    h1 = next((h for h in headings if h[0] == 1), None)
    title = h1[1] if h1 else path.stem.split("_", 1)[-1].replace("_", " ").strip().capitalize()
    html_body = str(soup)
    if not h1:  # give the section a title of its own
        html_body = f'<h1 id="{prefix}title">{html.escape(title)}</h1>' + html_body
        headings.insert(0, (1, title, f"{prefix}title"))
    return Section(index=index, name=path.name, title=title, anchor=anchor, html=html_body, headings=headings,
                   wall_s=wall_s, parameters=parameters)


# --------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------

def fmt_duration(seconds):
    """``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds is None:
        return "\u2014"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def _e(value):
    return html.escape("" if value is None else str(value))


SOURCE_TEXT = {
    "local": "DSB2018 stage1_train, a local copy",
    "download": "DSB2018 stage1_train, downloaded during this run",
    "synthetic": "SYNTHETIC images generated by nucleiseg_lib (not microscopy)",
}


def _device_text(dev):
    cpu = f"{_e(dev.get('cpu'))} ({_e(dev.get('cpu_count'))} cores" + \
        (f", {dev['memory_gb']:.0f} GiB RAM)" if dev.get("memory_gb") else ")")
    if dev.get("gpu"):
        gpu = _e(dev["gpu"]) + (f" \u00d7{dev['gpu_count']}" if (dev.get("gpu_count") or 1) > 1 else "")
        extra = [f"{dev['gpu_memory_gb']:.0f} GiB" if dev.get("gpu_memory_gb") else None,
                 f"CUDA {dev['cuda']}" if dev.get("cuda") else None]
        extra = ", ".join(x for x in extra if x)
        return f"<b>GPU: {gpu}</b>{' (' + _e(extra) + ')' if extra else ''}<br/>CPU: {cpu}"
    return f"<b>CPU only</b> (torch sees no GPU)<br/>{cpu}"


def cover_html(provenance, timings, title, subtitle):
    """The cover page."""
    prov, git, data = provenance, provenance.get("git", {}), provenance.get("data", {})
    versions, profile = prov.get("versions", {}), prov.get("profile", {})
    gen = prov.get("generated", "")
    date = gen.replace("T", ", ").replace("Z", " UTC")
    out = ['<section class="cover"><div class="cover-kicker">nucleiseg &middot; course report</div>',
           f'<h1 class="cover-title">{_e(title)}</h1>',
           f'<div class="cover-sub">{_e(subtitle)}</div>', f'<div class="cover-date">{_e(date)}</div>']
    if data.get("source") == "synthetic":
        why = ("as requested (DATA = synthetic, e.g. a quick check of the course)" if data.get("spec") == "synthetic"
               else "because no DSB2018 data was found or could be downloaded")
        out.append('<div class="banner-synthetic"><span class="big">\u26a0 SYNTHETIC DATA \u2014 NOT MICROSCOPY</span>'
                   f'<span class="small">This run used images generated by nucleiseg_lib {why}. Every figure and '
                   'number in this report describes these synthetic images and says nothing about segmenting '
                   'real nuclei. Re-run with the DSB2018 data for real results.</span></div>')
    if git.get("commit"):
        commit = f'<span class="mono">{_e(git["commit"])}</span>'
        if git.get("branch"):
            commit += f' <span class="muted">({_e(git["branch"])})</span>'
        if git.get("dirty"):
            commit += f' <span class="status-bad">dirty</span> <span class="muted">&mdash; {git["changed_files"]} ' \
                      f'tracked file{"s" if git["changed_files"] != 1 else ""} changed since this commit</span>'
    else:
        commit = '<span class="muted">unknown (not run from a git checkout)</span>'
    prof = _e(profile.get("resolved"))
    if profile.get("requested") and profile.get("requested") != profile.get("resolved"):
        prof += f' <span class="muted">(requested: {_e(profile["requested"])})</span>'
    src = data.get("source")
    src_text = SOURCE_TEXT.get(src, src or "unknown")
    src_html = f'<b class="{"status-bad" if src == "synthetic" else ""}">{_e(src)}</b> &mdash; {_e(src_text)}'
    details = []
    if data.get("n_images") is not None:
        details.append(f"{data['n_images']} images")
    if data.get("hash"):
        details.append(f'hash <span class="mono">{_e(data["hash"])}</span>')
    rows = [("Profile", prof),
            ("Data", src_html + f'<br/><span class="mono">{_e(data.get("root"))}</span>'
             + (f'<br/><span class="muted">{", ".join(details)}</span>' if details else "")),
            ("Git commit", commit),
            ("Device", _device_text(prov.get("device", {}))),
            ("Total wall time", f"<b>{fmt_duration(timings.get('total_s'))}</b> "
             f'<span class="muted">(notebooks {fmt_duration(timings.get("notebooks_s"))}, data '
             f'{fmt_duration(timings.get("data_s"))})</span>')]
    out.append('<h2>Run</h2><table class="kv">' +
               "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>")
    nbs = timings.get("notebooks", [])
    trs = "".join(f'<tr><td class="num">{i}</td><td><span class="mono">{_e(n["name"])}</span></td>'
                  f'<td>{_e(n.get("title", ""))}</td><td class="num">{fmt_duration(n.get("wall_s"))}</td></tr>'
                  for i, n in enumerate(nbs, 1))
    trs += (f'<tr class="total"><td></td><td colspan="2">all notebooks</td>'
            f'<td class="num">{fmt_duration(timings.get("notebooks_s"))}</td></tr>')
    out.append('<h2>Notebooks</h2><table class="grid"><tr><th class="num">#</th><th>notebook</th><th>title</th>'
               f'<th class="num">wall time</th></tr>{trs}</table>')
    sw = [(k, versions.get(k)) for k in COVER_PACKAGES]
    sw.append(("chromium", (prov.get("pdf") or {}).get("chromium")))
    half = (len(sw) + 1) // 2
    cols = ["".join(f'<tr><th>{_e(k)}</th><td class="mono">{_e(v or "not installed")}</td></tr>' for k, v in part)
            for part in (sw[:half], sw[half:])]
    out.append('<h2>Software</h2><div class="columns">' +
               "".join(f'<div><table class="kv">{c}</table></div>' for c in cols) + "</div>")
    out.append('<p class="muted" style="margin-top:8pt;font-size:8pt">Produced by <span class="mono">nucleiseg '
               'report</span>: every notebook was executed top to bottom with papermill, with the parameters '
               'shown at the top of each section; the executed notebooks, <span class="mono">provenance.json</span> '
               'and <span class="mono">timings.json</span> are next to this PDF. The full software list and the '
               'slowest cells are in the appendix.</p></section>')
    return "".join(out)


def toc_html(sections, pages=None, appendix_anchor="appendix"):
    """The table of contents; `pages` maps anchor ids to page numbers (blank until known)."""
    pages = pages or {}

    def entry(cls, anchor, text, num=""):
        page = pages.get(anchor, "")
        return (f'<li class="{cls}"><a href="#{anchor}"><span class="toc-text">'
                f'{f"<span class=toc-num>{num}</span>" if num else ""}{_e(text)}</span>'
                f'<span class="toc-fill"></span><span class="toc-page">{page}</span></a></li>')

    items = []
    for s in sections:
        # the course's own number (04 for 04_training.ipynb), also when only some notebooks ran
        m = re.match(r"(\d+)_", s.name)
        num = str(int(m.group(1))) if m else str(s.index)
        title = re.sub(rf"^0*{num}\s*[\u00b7.:\-\u2013\u2014]\s*", "", s.title) or s.title
        items.append(entry("toc-nb", s.anchor, title, num))
        sub = 0
        for level, text, anchor in s.headings:
            if level == 2:
                sub += 1
                items.append(entry("toc-sec", anchor, text, f"{num}.{sub}"))
    items.append(entry("toc-nb", appendix_anchor, "Appendix: software and timings", "A"))
    return f'<nav class="toc"><h1>Contents</h1><ol>{"".join(items)}</ol></nav>'


def section_html(s, total):
    meta = (f'<div class="nb-meta"><span>Notebook {s.index} of {total} &middot; '
            f'<span class="nb-file">{_e(s.name)}</span></span>'
            f'<span>executed in {fmt_duration(s.wall_s)}</span></div>')
    params = f'<div class="nb-params">{_e("; ".join(s.parameters.splitlines()))}</div>' if s.parameters else ""
    # The first h1 of the notebook carries the section anchor for the table of contents.
    return f'<section class="notebook" id="{s.anchor}">{meta}{params}{s.html}</section>'


def appendix_html(provenance, timings, anchor="appendix"):
    versions = provenance.get("versions", {})
    rows = "".join(f'<tr><td>{_e(k)}</td><td class="mono">{_e(v or "not installed")}</td></tr>'
                   for k, v in sorted(versions.items()))
    chromium = (provenance.get("pdf") or {}).get("chromium")
    if chromium:
        rows += f'<tr><td>chromium (PDF)</td><td class="mono">{_e(chromium)}</td></tr>'
    dev = provenance.get("device", {})
    env = [("platform", dev.get("platform")), ("host", provenance.get("host")),
           ("command", provenance.get("command")), ("cuDNN", dev.get("cudnn")),
           ("parameters", "; ".join(f"{k} = {v!r}" for k, v in provenance.get("parameters", {}).items()))]
    env_rows = "".join(f'<tr><th>{_e(k)}</th><td class="mono">{_e(v)}</td></tr>' for k, v in env if v)
    slow = []
    for nb in timings.get("notebooks", []):
        for c in nb.get("slowest_cells", []):
            slow.append((c.get("duration_s") or 0, nb["name"], c))
    slow.sort(key=lambda t: -t[0])
    slow_rows = "".join(f'<tr><td class="mono">{_e(name)}</td><td class="num">{c.get("cell")}</td>'
                        f'<td class="mono">{_e(c.get("code"))}</td><td class="num">{fmt_duration(d)}</td></tr>'
                        for d, name, c in slow[:12])
    return (f'<section class="appendix" id="{anchor}"><h1>Appendix: software and timings</h1>'
            f'<h2>Software</h2><table class="grid"><tr><th>package</th><th>version</th></tr>{rows}</table>'
            f'<h2>Environment</h2><table class="kv">{env_rows}</table>'
            + (f'<h2>Slowest cells</h2><table class="grid"><tr><th>notebook</th><th class="num">cell</th>'
               f'<th>code</th><th class="num">time</th></tr>{slow_rows}</table>' if slow_rows else "")
            + "</section>")


def _page_css(provenance):
    git, data = provenance.get("git", {}), provenance.get("data", {})
    right = []
    if git.get("short"):
        right.append("commit " + git["short"] + (" (dirty)" if git.get("dirty") else ""))
    prof = (provenance.get("profile") or {}).get("resolved")
    if prof:
        right.append(f"profile {prof}")
    right = " \u00b7 ".join(right)

    def q(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    font = 'font: 7.5pt "Liberation Sans", "DejaVu Sans", Arial, sans-serif;'
    synthetic = data.get("source") == "synthetic"
    center = (f'@top-center {{ content: {q("SYNTHETIC DATA")}; {font} font-weight: bold; color: #b00020; }}'
              if synthetic else "")
    left = q("nucleiseg \u2014 course report")
    return ("@page { "
            f'@top-left {{ content: {left}; {font} color: #777; }} {center}'
            f"@top-right {{ content: {q(right)}; {font} color: #777; }} "
            f'@bottom-center {{ content: counter(page) " / " counter(pages); {font} color: #555; }} }}'
            "@page :first { @top-left { content: none; } @top-center { content: none; } "
            "@top-right { content: none; } @bottom-center { content: none; } }")


def build_html(sections, provenance, timings, title, subtitle, pages=None):
    """The whole report as one self-contained HTML string."""
    from pygments.formatters import HtmlFormatter
    css = CSS_FILE.read_text(encoding="utf-8")
    pyg = HtmlFormatter(style="default").get_style_defs(".highlight")
    body = [cover_html(provenance, timings, title, subtitle), toc_html(sections, pages)]
    body += [section_html(s, len(sections)) for s in sections]
    body.append(appendix_html(provenance, timings))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>{_e(title)}</title><style>{css}\n{pyg}\n{_page_css(provenance)}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def _anchor_pages(pdf_path):
    """Map each internal link target of the PDF (the TOC's) to its 1-based page number."""
    from pypdf import PdfReader
    reader = PdfReader(str(pdf_path))
    page_no = {page.indirect_reference.idnum: i + 1 for i, page in enumerate(reader.pages)}
    found = {}
    try:
        for name, dest in reader.named_destinations.items():
            ref = dest.page.idnum if hasattr(dest.page, "idnum") else None
            if ref in page_no:
                found[str(name).lstrip("/")] = page_no[ref]
    except Exception:
        pass
    if found:
        return found
    # No named destinations: read the TOC's link annotations in order.
    return {}


def _link_targets_in_order(pdf_path, first_pages=6):
    """Page numbers of the link annotations on the first pages, in reading order."""
    from pypdf import PdfReader
    reader = PdfReader(str(pdf_path))
    page_no = {page.indirect_reference.idnum: i + 1 for i, page in enumerate(reader.pages)}
    targets = []
    for page in reader.pages[:first_pages]:
        annots = page.get("/Annots") or []
        links = []
        for a in annots:
            a = a.get_object()
            if a.get("/Subtype") != "/Link":
                continue
            dest = a.get("/Dest")
            if dest is None and a.get("/A") is not None:
                dest = a["/A"].get("/D")
            if isinstance(dest, list) and dest and hasattr(dest[0], "idnum"):
                rect = [float(x) for x in a["/Rect"]]
                links.append((-rect[3], rect[0], page_no.get(dest[0].idnum)))
        targets += [p for _, _, p in sorted(links)]
    return targets


def toc_pages(pdf_path, sections):
    """Page of every TOC entry, read back from the links Chromium wrote into a first print."""
    anchors = []
    for s in sections:
        anchors.append(s.anchor)
        anchors += [a for level, _, a in s.headings if level == 2]
    anchors.append("appendix")
    try:
        import pypdf  # noqa: F401
    except ImportError:  # no page numbers in the table of contents, that is all
        return {}
    named = _anchor_pages(pdf_path)
    if all(a in named for a in anchors):
        return {a: named[a] for a in anchors}
    targets = _link_targets_in_order(pdf_path)
    if len(targets) >= len(anchors):
        return dict(zip(anchors, targets[:len(anchors)]))
    return {}


def export_pdf(notebooks, pdf_path, provenance, timings, *, resources_dir=None, title=None, subtitle=None,
               html_path=None, chromium=None, show_code=True, log=print):
    """Render executed notebooks into one PDF report.

    Parameters
    ----------
    notebooks : list of str or Path
        Executed notebooks, in course order.
    pdf_path : str or Path
        The PDF to write (atomically).
    provenance, timings : dict
        As written by the runner (see :func:`nucleiseg_lib.report.provenance.collect`).
        ``timings["notebooks"]`` entries are matched to `notebooks` by ``name``.
    resources_dir : str or Path, optional
        Folder that relative image links in the markdown cells refer to (the source notebooks').
    html_path : str or Path, optional
        Where to keep the HTML the PDF is printed from (default: next to the PDF).

    Returns
    -------
    dict
        ``pdf``, ``html``, ``pages``, ``images``, ``chromium``, ``seconds``.
    """
    t0 = time.perf_counter()
    chromium = chromium or find_chromium()
    from .provenance import chromium_version
    provenance = dict(provenance)
    provenance["pdf"] = dict(provenance.get("pdf") or {}, chromium=chromium_version(chromium) or chromium)
    pdf_path = Path(pdf_path)
    html_path = Path(html_path) if html_path else pdf_path.with_suffix(".html")
    wall = {n.get("name"): n.get("wall_s") for n in timings.get("notebooks", [])}
    sections = [notebook_section(p, i, resources_dir=resources_dir, wall_s=wall.get(Path(p).name),
                                 show_code=show_code)
                for i, p in enumerate(notebooks, 1)]
    titles = {s.name: s.title for s in sections}
    timings = dict(timings, notebooks=[dict(n, title=n.get("title") or titles.get(n.get("name"), ""))
                                       for n in timings.get("notebooks", [])])
    title = title or "Nuclei segmentation with a U-Net on DSB2018"
    subtitle = subtitle or "The nucleiseg course, run end to end in batch"

    def write(pages):
        text = build_html(sections, provenance, timings, title, subtitle, pages)
        fd, tmp = tempfile.mkstemp(prefix=f".{html_path.name}.", suffix=".tmp", dir=html_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, html_path)

    html_path.parent.mkdir(parents=True, exist_ok=True)
    write(None)
    html_to_pdf(html_path, pdf_path, chromium=chromium)
    pages = toc_pages(pdf_path, sections)
    if pages:  # second print, with page numbers in the table of contents
        write(pages)
        html_to_pdf(html_path, pdf_path, chromium=chromium)
    info = pdf_stats(pdf_path)
    info.update(pdf=str(pdf_path), html=str(html_path), chromium=provenance["pdf"]["chromium"],
                seconds=round(time.perf_counter() - t0, 2), toc_page_numbers=bool(pages))
    return info


def pdf_stats(pdf_path):
    """``pages`` and ``images`` (embedded image XObjects, all pages) of a PDF (None without pypdf)."""
    try:
        from pypdf import PdfReader
    except ImportError:
        return dict(pages=None, images=None)
    reader = PdfReader(str(pdf_path))
    images = 0
    for page in reader.pages:
        res = page.get("/Resources")
        xobj = res.get_object().get("/XObject") if res is not None else None
        if xobj is not None:
            for ref in xobj.get_object().values():
                obj = ref.get_object()
                if obj.get("/Subtype") == "/Image":
                    images += 1
                elif obj.get("/Subtype") == "/Form":
                    inner = obj.get("/Resources")
                    inner = inner.get_object().get("/XObject") if inner is not None else None
                    if inner is not None:
                        images += sum(1 for r in inner.get_object().values()
                                      if r.get_object().get("/Subtype") == "/Image")
    return dict(pages=len(reader.pages), images=images)
