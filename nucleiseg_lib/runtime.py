"""Where the course runs: Colab or not, Google Drive, the course folder, the profile, the run folders.

One student, one course folder (:func:`course_home`), found again by every notebook on every runtime:

==========  ====================================================  ===========================================
            in Colab                                              elsewhere
==========  ====================================================  ===========================================
home        ``MyDrive/nucleiseg`` on Google Drive (mounted once;   ``$NUCLEISEG_HOME``, else the repository
            ``/content/nucleiseg`` with a warning without Drive)   (a checkout), else the current folder
data        ``<home>/data/stage1_train`` (downloaded once)         the same, or a local DSB2018 copy
mask cache  ``<home>/cache``                                       ``$NUCLEISEG_CACHE``, else ``~/.cache/nucleiseg``
runs        ``<home>/runs/<recipe>``                               the same
==========  ====================================================  ===========================================

The run folder is named by the recipe a model was trained with, never by the hardware of the runtime that opens
it: notebook 05 on a CPU runtime finds the ``gpu`` run that 04 trained on a GPU runtime (:func:`find_run`).
"""

import os
import sys
from pathlib import Path

from .data.locate import REPO_ROOT

PROFILES = ("smoke", "cpu", "gpu", "original")


def colab_content():
    """Colab's working folder, ``/content`` (``$NUCLEISEG_COLAB_CONTENT`` in the Colab simulation test)."""
    return Path(os.environ.get("NUCLEISEG_COLAB_CONTENT") or "/content")


def drive_mount():
    """Where Google Drive is mounted in Colab: ``/content/drive``."""
    return colab_content() / "drive"


def in_colab():
    """True when running in Google Colab."""
    return "google.colab" in sys.modules


def _under_pytest():
    # nbval starts each notebook's kernel from inside a running test, which sets this variable
    return bool(os.environ.get("PYTEST_CURRENT_TEST"))


def _cuda_available():
    import torch
    return torch.cuda.is_available()


def resolve_profile(profile="auto"):
    """The profile to use: the one place where "auto" becomes a recipe name.

    Parameters
    ----------
    profile : {"auto", "smoke", "cpu", "gpu", "original"}
        "auto": "gpu" when CUDA is available, else "cpu"; but "smoke" when the
        notebook runs under pytest (nbval), so that CI never trains for real even
        when ``NUCLEISEG_PROFILE`` was not set.

    Returns
    -------
    str
    """
    profile = (profile or "auto").strip().lower()
    if profile == "auto":
        if _under_pytest():
            return "smoke"
        return "gpu" if _cuda_available() else "cpu"
    if profile not in PROFILES:
        raise ValueError(f"unknown PROFILE {profile!r}; use one of {PROFILES} or 'auto'")
    return profile


def gpu_line(profile):
    """One line saying which GPU this runtime has, or that it has none."""
    import torch
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return f"GPU: {p.name} ({p.total_memory / 2 ** 30:.1f} GiB), torch {torch.__version__}"
    hint = " (in Colab: Runtime > Change runtime type > T4 GPU)" if in_colab() and profile == "gpu" else ""
    return f"no GPU: {profile.upper()} profile on the CPU{hint}"


def mount_drive(log=print):
    """Mount Google Drive in Colab; return ``MyDrive``, or None when that is not possible (or not in Colab)."""
    if not in_colab():
        return None
    my_drive = drive_mount() / "MyDrive"
    try:
        if not my_drive.is_dir():
            from google.colab import drive
            drive.mount(str(drive_mount()))
        return my_drive if my_drive.is_dir() else None
    except Exception as exc:  # refused authorisation, no Drive, papermill without a browser...
        log(f"Google Drive not mounted ({type(exc).__name__}: {exc})")
        return None


_HOME = {}


def course_home(log=print):
    """The student's course folder (see the module's table); in Colab it mounts Drive on first use."""
    env = os.environ.get("NUCLEISEG_HOME")
    if env:
        return Path(env).expanduser()
    if not in_colab():
        return REPO_ROOT
    if "colab" not in _HOME:
        drive = mount_drive(log)
        if drive is None:
            _HOME["colab"] = colab_content() / "nucleiseg"
            log(f"WARNING: data, mask cache and runs go to {_HOME['colab']}, which the end of this runtime erases. "
                f"Mount Google Drive to keep them (and to download the data only once).")
        else:
            _HOME["colab"] = drive / "nucleiseg"
    return _HOME["colab"]


def data_dir(log=print):
    """Where ``DATA="auto"``/``"download"`` downloads DSB2018 (``<home>/data``)."""
    return course_home(log) / "data"


def cache_dir(log=print):
    """The mask cache: ``$NUCLEISEG_CACHE``; in Colab ``<home>/cache`` (on Drive); else ``~/.cache/nucleiseg``."""
    env = os.environ.get("NUCLEISEG_CACHE")
    if env:
        return Path(env)
    if in_colab():
        return course_home(log) / "cache"
    from .data.cache import default_cache_dir
    return default_cache_dir()


def runs_dir(log=print):
    """``<home>/runs``: one folder per recipe."""
    return course_home(log) / "runs"


def train_run_dir(run_dir, profile, log=print):
    """The folder training writes into (created): `run_dir`, or for "auto" ``<home>/runs/<recipe>``."""
    profile = resolve_profile(profile)
    path = Path(run_dir).expanduser() if str(run_dir or "auto") != "auto" else runs_dir(log) / profile
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def trained_runs(log=print):
    """Run folders of ``<home>/runs`` holding a ``best.pt``, newest first."""
    root = runs_dir(log)
    found = [p.parent for p in root.glob("*/best.pt")] if root.is_dir() else []
    return sorted(found, key=lambda p: (p / "best.pt").stat().st_mtime, reverse=True)


def find_run(run_dir="auto", profile="auto", log=print):
    """The run folder a notebook that *uses* a model reads (05, 06), whatever hardware this runtime has.

    Parameters
    ----------
    run_dir : str or Path
        A folder (used as given), or "auto".
    profile : str
        With "auto" run_dir: a recipe name picks ``<home>/runs/<recipe>``; "auto" picks
        the run trained last, of any recipe (the gpu run of 04 is found on a CPU runtime).

    Returns
    -------
    Path or None
        None when no trained run exists (the caller falls back to the pretrained model).
    """
    if str(run_dir or "auto") != "auto":
        return Path(run_dir).expanduser().resolve()
    if (profile or "auto").strip().lower() != "auto":
        path = runs_dir(log) / resolve_profile(profile)
        return path.resolve() if (path / "best.pt").is_file() else None
    runs = trained_runs(log)
    return runs[0].resolve() if runs else None


def resolve_run_dir(run_dir="auto", profile="auto", log=print):
    """The run folder of a model to use: :func:`find_run`, else ``<home>/runs/<profile>`` (created, empty).

    Kept for the app and the benchmarks; a folder given explicitly is created when missing.
    """
    found = find_run(run_dir, profile, log)
    if found is not None:
        found.mkdir(parents=True, exist_ok=True)
        return found
    return train_run_dir("auto", profile, log)
