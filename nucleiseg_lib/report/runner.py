"""Run the course notebooks in batch with papermill and export the PDF report.

``nucleiseg report`` calls :func:`run_course`. What lands in ``<out>`` (default ``report/``)::

    executed/NN_name.ipynb     the executed notebooks (a failed one stays, partially executed)
    run/                       RUN_DIR of the notebooks (checkpoints; training resumes from last.pt)
    nucleiseg-report.pdf       the report (written atomically)
    nucleiseg-report.html      the same report as one self-contained HTML file (the PDF is printed from it)
    provenance.json            git commit, versions, device, data, profile, parameters
    timings.json               wall time of the data step, of each notebook (slowest cells) and of the PDF
"""

import contextlib
import importlib.util
import json
import os
import re
import time
from pathlib import Path

from ..fileio import atomic_write
from .chromium import ReportError
from .executed import cell_timings, clean_cells, first_line, locate_failure, source_number
from .provenance import collect, data_info, now_utc, resolve_profile
from .summary import summary_notebook

PDF_NAME = "nucleiseg-report.pdf"
HTML_NAME = "nucleiseg-report.html"
NOTEBOOK_PATTERN = re.compile(r"^\d{2}_.+\.ipynb$")
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


class NotebookFailed(ReportError):
    """A notebook of the course raised; it names the notebook and the cell.

    Attributes
    ----------
    notebook : str
        File name, e.g. ``04_training.ipynb``.
    cell : int or None
        1-based number of the failing cell in the source notebook (markdown cells count).
    execution_count : int or None
        The ``In [n]`` number of the cell in the executed notebook.
    ename, evalue : str
        The exception's class name and message.
    executed : Path
        The partially executed notebook, kept for inspection.
    not_run : list of str
        Notebooks after it, which were not run.
    """

    def __init__(self, message, notebook, cell=None, execution_count=None, ename="", evalue="", executed=None,
                 not_run=()):
        super().__init__(message)
        self.notebook, self.cell, self.execution_count = notebook, cell, execution_count
        self.ename, self.evalue, self.executed, self.not_run = ename, evalue, executed, list(not_run)


def default_notebooks_dir():
    """``$NUCLEISEG_NOTEBOOKS_DIR``, else ``notebooks/`` of this checkout, else of the current folder."""
    if os.environ.get("NUCLEISEG_NOTEBOOKS_DIR"):
        return Path(os.environ["NUCLEISEG_NOTEBOOKS_DIR"]).expanduser().resolve()
    for base in (PACKAGE_PARENT, Path.cwd()):
        if (base / "notebooks").is_dir():
            return base / "notebooks"
    return PACKAGE_PARENT / "notebooks"


def list_notebooks(notebooks_dir=None, select=None):
    """The course notebooks ``NN_*.ipynb`` in order, or the `select`-ed subset (still in course order).

    Parameters
    ----------
    notebooks_dir : str or Path, optional
        Default: :func:`default_notebooks_dir`.
    select : sequence of str, optional
        File names (``04_training.ipynb``), stems (``04_training``), number prefixes (``04``)
        or paths.

    Raises
    ------
    ReportError
        No notebooks, or a selected one that is not there.
    """
    folder = Path(notebooks_dir) if notebooks_dir else default_notebooks_dir()
    found = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_PATTERN.match(p.name)) if folder.is_dir() else []
    if not found:
        raise ReportError(f"no course notebooks NN_name.ipynb in {folder}")
    if not select:
        return found
    chosen = set()
    for item in select:
        name = Path(str(item)).name
        hits = [p for p in found if name in (p.name, p.stem) or p.name.startswith(f"{name}_")]
        if not hits:
            raise ReportError(f"notebook {item!r} not found in {folder}; the course has: "
                              + ", ".join(p.name for p in found))
        chosen.update(hits)
    return [p for p in found if p in chosen]


@contextlib.contextmanager
def _kernel_environment(params):
    """Environment the kernels inherit: the run's settings, inline figures, this checkout importable."""
    saved = dict(os.environ)
    try:
        os.environ["NUCLEISEG_PROFILE"] = str(params["PROFILE"])
        os.environ["NUCLEISEG_DATA_SPEC"] = str(params["DATA"])
        os.environ["NUCLEISEG_RUN_DIR"] = str(params["RUN_DIR"])
        # A CI's MPLBACKEND=Agg would stop ipykernel from selecting the inline backend: no figures.
        if os.environ.get("MPLBACKEND") and "inline" not in os.environ["MPLBACKEND"]:
            del os.environ["MPLBACKEND"]
        if (PACKAGE_PARENT / "pyproject.toml").is_file():  # a checkout: make it importable from notebooks/
            paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            if str(PACKAGE_PARENT) not in paths:
                os.environ["PYTHONPATH"] = os.pathsep.join(paths + [str(PACKAGE_PARENT)])
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _write_json(path, obj):
    with atomic_write(path, "w") as f:
        f.write(json.dumps(obj, indent=2, default=str) + "\n")


def _rel(path, base):
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def run_notebook(src, dst, parameters, cwd, kernel_name=None, execution_timeout=None, progress=False, not_run=()):
    """Execute one notebook with papermill into `dst`.

    Raises
    ------
    NotebookFailed
        Naming the notebook and the cell; `dst` keeps the partially executed notebook.
    """
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    src, dst = Path(src), Path(dst)
    if kernel_name is None:
        meta = nbformat.read(src, as_version=4).metadata
        kernel_name = None if meta.get("kernelspec", {}).get("name") else "python3"
    try:
        pm.execute_notebook(str(src), str(dst), parameters=parameters, cwd=str(cwd), kernel_name=kernel_name,
                            progress_bar=progress, log_output=False, execution_timeout=execution_timeout,
                            request_save_on_cell_execute=True)
        return
    except PapermillExecutionError as exc:
        error = exc
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # dead kernel, cell timeout, kernel missing...
        error = exc
    nb = nbformat.read(dst, as_version=4) if dst.is_file() else None
    found = locate_failure(nb) if nb is not None else None
    if found is None and isinstance(error, PapermillExecutionError) and nb is not None:
        # Only expected errors (cells tagged raises-exception): a success; drop papermill's markers.
        nb.cells = clean_cells(nb)
        nbformat.write(nb, dst)
        return
    tail = f". The partially executed notebook is {dst}" if dst.is_file() else ""
    if not_run:
        tail += "; not run: " + ", ".join(not_run)
    if found is not None:
        index, cell, ename, evalue = found
        cells = clean_cells(nb)
        ename = ename or getattr(error, "ename", None) or type(error).__name__
        evalue = evalue or getattr(error, "evalue", None) or str(error)
        number, count = source_number(cells, index), cell.get("execution_count")
        where = f"cell {number}" + (f" (In [{count}]" if count else " (") + \
            (", " if count else "") + f"code: {first_line(cell.source)})"
    else:
        number = count = None
        ename, evalue = type(error).__name__, str(error)
        where = "before any cell ran"
    evalue = " ".join(str(evalue).split())
    evalue = evalue if len(evalue) <= 400 else evalue[:400] + "..."
    raise NotebookFailed(f"notebook {src.name} failed in {where}: {ename}: {evalue}{tail}",
                         notebook=src.name, cell=number, execution_count=count, ename=ename, evalue=evalue,
                         executed=dst, not_run=not_run) from None


def run_course(profile=None, data=None, out="report", notebooks=None, *, run_dir=None, notebooks_dir=None, pdf=True,
               kernel_name=None, execution_timeout=None, title=None, show_code=True, progress=True, log=print):
    """Run the course notebooks in order with papermill and export one PDF report.

    Parameters
    ----------
    profile : str, optional
        smoke | cpu | gpu | auto; default ``$NUCLEISEG_PROFILE`` or "auto". Resolved once, here, as the
        notebooks would ("auto": gpu with CUDA, else cpu), and injected resolved as ``PROFILE``.
    data : str or Path, optional
        auto | download | synthetic | a Kaggle-layout folder; default ``$NUCLEISEG_DATA_SPEC`` or "auto".
        Resolved once, here (so "auto" may download), and the notebooks get the resolved
        folder as ``DATA``: the report's data provenance is what they used.
    out : str or Path
        Output folder (see the module docstring).
    run_dir : str or Path, optional
        ``RUN_DIR`` of the notebooks; default ``<out>/run``. An existing run folder is
        continued (04 resumes from its ``last.pt``; a finished run is not trained again).
    notebooks : sequence of str, optional
        Run only these (see :func:`list_notebooks`); default all ``NN_*.ipynb``.
    notebooks_dir : str or Path, optional
        Where the notebooks are (default: ``$NUCLEISEG_NOTEBOOKS_DIR``, else the checkout's
        ``notebooks/``); kernels run there.
    pdf : bool
        Export the PDF (needs Chromium, checked before any notebook runs).
    kernel_name : str, optional
        Default: each notebook's kernelspec ("python3" when it has none).
    execution_timeout : float, optional
        Seconds one cell may run (default: no limit).
    title : str, optional
        Title of the report.
    show_code : bool
        Print code cells (parameter cells and cells tagged hide-input never are).
    progress : bool
        Papermill's per-cell progress bar.
    log : callable
        Receives progress lines (default ``print``).

    Returns
    -------
    dict
        ``out``, ``pdf`` (None if not exported), ``html``, ``executed`` (paths), ``provenance``,
        ``timings`` (paths of the JSON files), ``pages``, ``images``, ``data_source``.

    Raises
    ------
    NotebookFailed
        A notebook failed: the run stops there; the message names the notebook and the cell.
    ReportError
        No notebooks, no Chromium, or the PDF could not be printed.
    """
    t_start = time.perf_counter()
    started = now_utc()
    missing = [m for m in ("papermill", "nbformat", "nbconvert", "ipykernel", "bs4")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ReportError(f"nucleiseg report needs {', '.join(missing)}: "
                          "pip install papermill nbconvert nbformat ipykernel pypdf")
    profile = profile or os.environ.get("NUCLEISEG_PROFILE") or "auto"
    data = data or os.environ.get("NUCLEISEG_DATA_SPEC") or "auto"
    try:
        resolved_profile = resolve_profile(profile)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    folder = Path(notebooks_dir).resolve() if notebooks_dir else default_notebooks_dir()
    paths = list_notebooks(folder, notebooks)
    chromium = None
    if pdf:
        from .chromium import find_chromium
        chromium = find_chromium()  # fail now, not after hours of training

    out = Path(out).resolve()
    executed_dir, run_dir = out / "executed", Path(run_dir).resolve() if run_dir else out / "run"
    executed_dir.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*executed_dir.glob("*.ipynb"), out / PDF_NAME, out / HTML_NAME]:
        stale.unlink(missing_ok=True)  # out/ describes this run only (run/ is kept: training resumes)
    if data not in ("auto", "download", "synthetic"):
        data = str(Path(data).expanduser().resolve())

    log(f"nucleiseg report: {len(paths)} notebook(s) from {folder}, profile {profile}"
        f"{f' ({resolved_profile})' if resolved_profile != profile else ''}, data {data}, output {out}")
    t0 = time.perf_counter()
    dinfo = data_info(data, log=log)
    data_s = time.perf_counter() - t0
    params = dict(PROFILE=resolved_profile, DATA=dinfo["root"], RUN_DIR=str(run_dir))
    log(f"data: {dinfo['source']} {dinfo['root']} ({dinfo['n_images']} images, hash {dinfo['hash']})")
    if dinfo["source"] == "synthetic":
        log("WARNING: the report will be built on SYNTHETIC data (not microscopy)")

    provenance = collect(dict(requested=profile, resolved=resolved_profile), dinfo,
                         folders=(folder, Path.cwd(), PACKAGE_PARENT), parameters=params)
    provenance.update(status="running", notebooks_dir=str(folder),
                      notebooks=[dict(name=p.name, executed=_rel(executed_dir / p.name, out)) for p in paths])
    timings = dict(started=started, finished=None, status="running", data_s=round(data_s, 2), notebooks_s=0.0,
                   pdf_s=None, total_s=None, notebooks=[])
    prov_path, tim_path = out / "provenance.json", out / "timings.json"
    _write_json(prov_path, provenance)

    def finish(status, **extra):
        timings.update(status=status, finished=now_utc(), total_s=round(time.perf_counter() - t_start, 2))
        provenance.update(status=status, **extra)
        _write_json(tim_path, timings)
        _write_json(prov_path, provenance)

    import nbformat
    executed = []
    try:
        with _kernel_environment(params):
            for k, src in enumerate(paths, 1):
                dst = executed_dir / src.name
                log(f"[{k}/{len(paths)}] {src.name} ...")
                t0 = time.perf_counter()
                entry = dict(name=src.name, status="running", wall_s=None)
                timings["notebooks"].append(entry)
                try:
                    run_notebook(src, dst, params, cwd=folder, kernel_name=kernel_name,
                                 execution_timeout=execution_timeout, progress=progress,
                                 not_run=[p.name for p in paths[k:]])
                finally:
                    entry["wall_s"] = round(time.perf_counter() - t0, 2)
                    timings["notebooks_s"] = round(sum(n["wall_s"] or 0 for n in timings["notebooks"]), 2)
                    if dst.is_file():
                        entry.update(cell_timings(nbformat.read(dst, as_version=4)))
                entry["status"] = "ok"
                executed.append(dst)
                log(f"[{k}/{len(paths)}] {src.name} done in {entry['wall_s']:.1f} s")
    except NotebookFailed as exc:
        timings["notebooks"][-1]["status"] = "failed"
        finish("failed", failure=dict(notebook=exc.notebook, cell=exc.cell, execution_count=exc.execution_count,
                                      ename=exc.ename, evalue=exc.evalue, executed=_rel(exc.executed, out),
                                      not_run=exc.not_run))
        raise
    except BaseException:
        if timings["notebooks"] and timings["notebooks"][-1]["status"] == "running":
            timings["notebooks"][-1]["status"] = "interrupted"
        finish("interrupted")
        raise

    page = summary_notebook(run_dir)  # the results page (written by notebook 05) comes first, after the cover
    if page is not None:
        nbformat.write(page, executed_dir / "00_results_summary.ipynb")
        executed.insert(0, executed_dir / "00_results_summary.ipynb")
    result = dict(out=str(out), pdf=None, html=None, executed=[str(p) for p in executed],
                  provenance=str(prov_path), timings=str(tim_path), pages=None, images=None,
                  data_source=dinfo["source"])
    if pdf:
        from .pdf import export_pdf
        log("exporting the PDF ...")
        t0 = time.perf_counter()
        timings["total_s"] = round(time.perf_counter() - t_start, 2)
        try:
            info = export_pdf(executed, out / PDF_NAME, provenance, timings, resources_dir=folder, title=title,
                              html_path=out / HTML_NAME, chromium=chromium, show_code=show_code, log=log)
        except BaseException:
            timings["pdf_s"] = round(time.perf_counter() - t0, 2)
            finish("pdf-failed")
            raise
        timings["pdf_s"] = round(time.perf_counter() - t0, 2)
        provenance["pdf"] = dict(chromium=info["chromium"], pages=info["pages"], images=info["images"],
                                 file=PDF_NAME)
        result.update(pdf=info["pdf"], html=info["html"], pages=info["pages"], images=info["images"])
        log(f"wrote {info['pdf']} ({info['pages'] or '?'} pages) in {timings['pdf_s']:.1f} s")
    finish("complete")
    log(f"total {timings['total_s']:.1f} s; provenance.json and timings.json in {out}")
    if dinfo["source"] == "synthetic":
        log("WARNING: this report is built on SYNTHETIC data (not microscopy)")
    return result

