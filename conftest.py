"""Shared test settings: the notebooks run in the smoke profile, headless, in one run folder per session.

Set at import time, before any notebook kernel starts (kernels inherit the environment):

- ``NUCLEISEG_PROFILE=smoke`` (unless set): minutes on 2 CPU cores;
- ``NUCLEISEG_RUN_DIR``: one temporary folder for the whole session, so that
  04_training's ``best.pt`` is what 05 reads;
- ``NUCLEISEG_CACHE``: the project's own ``.cache/nucleiseg`` (ignored by git);
- ``MPLBACKEND=Agg``;
- ``PYTHONPATH`` starts with the repository, so kernels import this working tree's library.

Data: ``DATA="auto"`` finds the real DSB2018 in ``../shared`` when present, else
the notebooks fall back to synthetic data (and say so loudly).

Pytest loads this file for ``pytest`` (testpaths) and ``pytest tests/``; for
``pytest --nbval-lax notebooks/`` alone it is not on the notebooks' path, and the
notebooks still run the smoke profile because ``PROFILE="auto"`` resolves to
"smoke" under pytest (``nucleiseg_lib.course.resolve_profile``).
"""

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent

os.environ.setdefault("NUCLEISEG_PROFILE", "smoke")
os.environ.setdefault("NUCLEISEG_CACHE", str(REPO / ".cache" / "nucleiseg"))
os.environ.setdefault("MPLBACKEND", "Agg")
# notebook kernels import the library of this working tree, installed or not
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
if not os.environ.get("NUCLEISEG_RUN_DIR"):
    os.environ["NUCLEISEG_RUN_DIR"] = tempfile.mkdtemp(prefix="nucleiseg-nbval-")
    _CREATED_RUN_DIR = os.environ["NUCLEISEG_RUN_DIR"]
else:
    _CREATED_RUN_DIR = None


def pytest_unconfigure(config):
    """Remove the session run folder made above (a folder given by the caller is left alone)."""
    if _CREATED_RUN_DIR and not config.option.collectonly:
        import shutil
        shutil.rmtree(_CREATED_RUN_DIR, ignore_errors=True)
