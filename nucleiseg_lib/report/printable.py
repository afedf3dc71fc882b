"""An executed notebook made printable: tags applied, progress lines collapsed, long outputs cut, widgets static.

Tag filtering is nbconvert's :class:`~nbconvert.preprocessors.TagRemovePreprocessor`; what it
cannot do (LaTeX to images, ``\\r`` progress redraws, cutting long outputs, static stand-ins
for ipywidgets) is here.
"""

import copy
import html
import re

from .mathtext import render_math

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


def cell_tags(cell):
    """The set of a cell's tags."""
    return set(cell.get("metadata", {}).get("tags", []) or [])


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


def printable_notebook(nb, where="the executed notebook", show_code=True):
    """A copy of an executed notebook prepared for print.

    Drops papermill's error marker cells and cells tagged remove-cell; hides the input of
    parameter cells and cells tagged hide-input; drops the outputs of cells tagged
    remove-output (these three: nbconvert's ``TagRemovePreprocessor``); renders LaTeX; collapses ``\\r`` progress
    lines and merges stream chunks; cuts long text outputs and code; replaces ipywidgets by
    static stand-ins (see :func:`widget_outputs`).

    Returns
    -------
    (notebook, parameters)
        ``parameters`` is the source of papermill's injected-parameters cell ("" if none).
    """
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb = copy.deepcopy(nb)
    state = (nb.metadata.get("widgets", {}) or {}).get(WIDGET_STATE, {}).get("state")
    parameters = next(("\n".join(line for line in c.source.splitlines() if line.strip()
                                  and not line.lstrip().startswith("#"))
                       for c in nb.cells if "injected-parameters" in cell_tags(c)), "")
    nb, _ = TagRemovePreprocessor(remove_cell_tags=REMOVE_CELL_TAGS, remove_input_tags=HIDE_INPUT_TAGS,
                                  remove_all_outputs_tags=REMOVE_OUTPUT_TAGS).preprocess(nb, {})
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = render_math(cell.source)
        elif cell.cell_type == "code":
            if not show_code:
                cell.metadata["transient"] = {"remove_source": True}
            elif not cell.metadata.get("transient", {}).get("remove_source"):
                lines = cell.source.rstrip().splitlines()
                if len(lines) > MAX_CODE_LINES:
                    keep = MAX_CODE_LINES - 10
                    cell.source = "\n".join(lines[:keep]) + \
                        f"\n# [... {len(lines) - keep} more lines: see {where} ...]"
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
