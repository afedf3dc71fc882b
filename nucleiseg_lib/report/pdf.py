"""Export executed notebooks to one PDF report: HTML (nbconvert) printed by headless Chromium.

The document: a cover page (title, date, provenance, a loud banner when the data is
synthetic, wall times), a table of contents with page numbers, one section per notebook
(narrative, styled code, text outputs, tables, embedded figures; LaTeX formulas drawn
with matplotlib's mathtext; ipywidgets shown as a static note plus what they displayed),
and an appendix with the full software list and the slowest cells.

No LaTeX is needed; the only system dependency is a Chromium (or Chrome) binary.

Modules: :mod:`.chromium` (printing), :mod:`.mathtext`, :mod:`.printable` (a notebook made
printable), :mod:`.document` (the HTML). Their public names are re-exported here.
"""

import time
from pathlib import Path

from ..fileio import atomic_write
from .chromium import CHROMIUM_HELP, CHROMIUM_NAMES, ReportError, find_chromium, have_chromium, html_to_pdf
from .document import (CSS_FILE, Section, appendix_html, build_html, cover_html, fmt_duration, notebook_section,
                       section_html, toc_html)
from .mathtext import math_img, render_math
from .printable import (HIDE_INPUT_TAGS, REMOVE_CELL_TAGS, REMOVE_OUTPUT_TAGS, collapse_carriage_returns,
                        printable_notebook, widget_outputs)

__all__ = ["CHROMIUM_HELP", "CHROMIUM_NAMES", "ReportError", "find_chromium", "have_chromium", "html_to_pdf",
           "CSS_FILE", "Section", "appendix_html", "build_html", "cover_html", "fmt_duration", "notebook_section",
           "section_html", "toc_html", "math_img", "render_math", "HIDE_INPUT_TAGS", "REMOVE_CELL_TAGS",
           "REMOVE_OUTPUT_TAGS", "collapse_carriage_returns", "printable_notebook", "widget_outputs",
           "toc_pages", "export_pdf", "pdf_stats"]


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
        with atomic_write(html_path, "w") as f:
            f.write(build_html(sections, provenance, timings, title, subtitle, pages))

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
