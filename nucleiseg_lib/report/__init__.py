"""Batch runner of the course and its PDF report.

``nucleiseg report`` (or :func:`run_course`) executes the notebooks in order with papermill
and prints the executed notebooks into one PDF with headless Chromium; see
:mod:`nucleiseg_lib.report.runner` for what lands in the output folder.
"""

from .chromium import ReportError, find_chromium, have_chromium
from .pdf import export_pdf
from .runner import NotebookFailed, list_notebooks, run_course

__all__ = ["ReportError", "NotebookFailed", "run_course", "list_notebooks", "export_pdf", "find_chromium",
           "have_chromium"]
