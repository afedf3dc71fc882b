"""Tables as HTML and plain text (no pandas), shown in Jupyter or printed."""

import html

import numpy as np

from ..data.locate import SYNTHETIC_WARNING
from .stamp import _display

def _fmt(value, digits):
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    return str(value)


def format_table(rows, columns=None, digits=3, title=None, synthetic=False, max_rows=40, max_chars=24):
    """Render rows as an HTML table and as plain text (no pandas).

    Parameters
    ----------
    rows : list of dict, or dict key -> value (shown as two columns)
    columns : list of str, optional
        Which keys, in order (default: the keys of the first row); for a dict,
        the names of its two columns (default "name", "value").
    digits : int
        Decimals of floats.
    title : str, optional
    synthetic : bool
        Put the synthetic-data warning above the table.
    max_rows : int
        Rows beyond this are left out (the table says how many).
    max_chars : int
        Longer strings (e.g. 64-character image ids) are shortened with "...".

    Returns
    -------
    html_text, plain_text : str
    """
    if isinstance(rows, dict):
        key, value = columns or ("name", "value")
        rows, columns = [{key: k, value: v} for k, v in rows.items()], [key, value]
    rows = list(rows)
    columns = list(columns or (rows[0].keys() if rows else []))

    def cell(v):
        s = _fmt(v, digits)
        return s if len(s) <= max_chars else s[: max_chars - 3] + "..."

    body = [[cell(r.get(c, "")) for c in columns] for r in rows[:max_rows]]
    more = len(rows) - len(body)
    widths = [max([len(c)] + [len(b[i]) for b in body]) for i, c in enumerate(columns)]
    lines = []
    if synthetic:
        lines.append(f"!!! {SYNTHETIC_WARNING}")
    if title:
        lines.append(title)
    lines.append("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    lines += ["  ".join(s.rjust(w) for s, w in zip(b, widths)) for b in body]
    if more:
        lines.append(f"... {more} more rows")
    parts = []
    if synthetic:
        parts.append(f'<div style="background:#c00000;color:white;font-weight:bold;padding:6px 10px">&#9888; '
                     f'{html.escape(SYNTHETIC_WARNING)}</div>')
    if title:
        parts.append(f"<b>{html.escape(title)}</b>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    trs = "".join("<tr>" + "".join(f'<td style="text-align:right">{html.escape(s)}</td>' for s in b) + "</tr>"
                  for b in body)
    parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    if more:
        parts.append(f"<i>... {more} more rows</i>")
    return "\n".join(parts), "\n".join(lines)


def table(rows, columns=None, digits=3, title=None, synthetic=False, max_rows=40):
    """Display rows as a table: HTML in Jupyter, text elsewhere (and in PDF exports).

    Parameters are those of :func:`format_table`. Returns nothing, so a cell that
    ends with ``viz.table(...)`` shows the table once.
    """
    rich, plain = format_table(rows, columns, digits, title, synthetic, max_rows)
    _display({"text/html": rich, "text/plain": plain}, plain)
