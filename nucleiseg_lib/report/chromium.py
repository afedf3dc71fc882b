"""Printing HTML to PDF with a headless Chromium (or Chrome).

Kept by hand rather than nbconvert's ``WebPDFExporter``: that exporter prints one notebook
through Playwright and its own downloaded browser; the report is one document of several
notebooks with a cover and a table of contents whose page numbers come from a first print
(:func:`nucleiseg_lib.report.pdf.toc_pages`), printed by whichever Chromium the machine has
(``apt-get install chromium`` is enough, no Playwright).
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import NucleisegError
from ..fileio import atomic_path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_HELP = (
    "no Chromium or Chrome browser found to print the PDF. Install one: "
    "`sudo apt-get install chromium` (Debian; or run .ci/install-system.sh), "
    "`python -m playwright install chromium`, or set NUCLEISEG_CHROMIUM to the browser's path")


class ReportError(NucleisegError, RuntimeError):
    """The report cannot be built (no browser, the browser failed, a notebook failed...)."""


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
    try:
        with atomic_path(pdf_path) as tmp:
            _print(chromium, html_path, tmp, profile, timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return pdf_path


def _print(chromium, html_path, out, profile, timeout):
    """Run the browser once; raise :class:`ReportError` unless `out` is a PDF afterwards."""
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
           "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
           "--hide-scrollbars", f"--user-data-dir={profile}", "--no-pdf-header-footer",
           "--run-all-compositor-stages-before-draw", f"--print-to-pdf={out}", html_path.as_uri()]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ReportError(f"{chromium} did not finish printing {html_path} within {timeout:.0f} s") from None
    except OSError as exc:
        raise ReportError(f"cannot run {chromium}: {exc}. {CHROMIUM_HELP}") from None
    with open(out, "rb") as f:
        ok = f.read(5) == b"%PDF-"
    if r.returncode != 0 or not ok:
        tail = "\n".join((r.stderr or r.stdout or "").strip().splitlines()[-12:])
        raise ReportError(f"{chromium} failed to print {html_path} to PDF (exit {r.returncode}):\n{tail}")
