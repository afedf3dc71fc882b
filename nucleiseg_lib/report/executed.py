"""What an executed notebook says about its run: the cell that failed, the slowest cells."""

from .printable import cell_tags


def clean_cells(nb):
    """Cells without papermill's error markers: the notebook as it was executed."""
    return [c for c in nb.cells if "papermill-error-cell-tag" not in cell_tags(c)]


def source_number(cells, index):
    """1-based number in the source notebook of executed cell `index` (the injected cell is not there)."""
    injected = next((i for i, c in enumerate(cells) if "injected-parameters" in cell_tags(c)), None)
    return index + 1 - (1 if injected is not None and injected < index else 0)


def first_line(source, width=60):
    """The first line of code of a cell's source (comments skipped), cut to `width` characters."""
    lines = [line.strip() for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
    text = lines[0] if lines else source.strip()
    more = len(lines) > 1 or len(text) > width
    return (text[:width] + ("..." if more else "")) if text else "(empty)"


def locate_failure(nb):
    """The cell that stopped an executed notebook: (index, cell, ename, evalue), or None.

    Errors in cells tagged ``raises-exception`` (expected errors, as nbval has them) do not count.
    """
    cells = clean_cells(nb)
    for i, c in enumerate(cells):
        if c.cell_type != "code" or "raises-exception" in cell_tags(c):
            continue
        for o in c.get("outputs", []):
            clean_exit = o.get("ename") == "SystemExit" and o.get("evalue") in ("", "0")
            if o.get("output_type") == "error" and not clean_exit:
                return i, c, o.get("ename", ""), o.get("evalue", "")
    for i, c in enumerate(cells):
        pm = c.get("metadata", {}).get("papermill", {})
        if c.cell_type == "code" and (pm.get("exception") is True or pm.get("status") == "running"):
            return i, c, "", ""
    return None


def cell_timings(nb, top=5):
    """Papermill's per-cell durations: ``cells`` (count of code cells) and the `top` slowest."""
    cells = clean_cells(nb)
    rows = []
    for i, c in enumerate(cells):
        if c.cell_type != "code" or "injected-parameters" in cell_tags(c):
            continue
        d = c.get("metadata", {}).get("papermill", {}).get("duration")
        if d is not None:
            rows.append(dict(cell=source_number(cells, i), execution_count=c.get("execution_count"),
                             duration_s=round(float(d), 3), code=first_line(c.source)))
    rows.sort(key=lambda r: -r["duration_s"])
    return dict(cells=sum(1 for c in cells if c.cell_type == "code"), slowest_cells=rows[:top])
