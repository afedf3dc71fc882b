"""Provenance of a report run: code version, software, hardware, data and profile.

Everything here is plain data (dicts of str/int/float/bool/None), written to
``<out>/provenance.json`` by the runner and printed on the cover of the PDF.
"""

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: Distributions whose versions are recorded (import name -> distribution name).
PACKAGES = {
    "nucleiseg_lib": "nucleiseg-lib",
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "scipy": "scipy",
    "scikit-image": "scikit-image",
    "matplotlib": "matplotlib",
    "ipywidgets": "ipywidgets",
    "papermill": "papermill",
    "nbconvert": "nbconvert",
    "nbformat": "nbformat",
    "ipykernel": "ipykernel",
    "pypdf": "pypdf",
}
#: The ones printed on the cover (all of them are in the appendix and provenance.json).
COVER_PACKAGES = ("python", "nucleiseg_lib", "torch", "torchvision", "numpy", "papermill")

PROFILES = ("auto", "smoke", "original", "cpu", "gpu")


def now_utc():
    """The current time, UTC, as an ISO 8601 string with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _git(args, cwd):
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(*folders):
    """The git state of the first of `folders` that is inside a git work tree.

    Returns
    -------
    dict
        ``commit`` (full hash), ``short``, ``dirty`` (tracked files changed; untracked
        files do not count, as in ``git describe --dirty``), ``changed_files``, ``branch``,
        ``root``; all None (``commit`` None) when no folder is in a repository or git is missing.
    """
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        root = _git(["rev-parse", "--show-toplevel"], folder)
        commit = root and _git(["rev-parse", "HEAD"], folder)
        if not commit:
            continue
        status = _git(["status", "--porcelain", "--untracked-files=no"], folder)
        changed = [line for line in (status or "").splitlines() if line.strip()]
        branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], folder)
        return dict(commit=commit, short=commit[:10], dirty=bool(changed), changed_files=len(changed),
                    branch=None if branch == "HEAD" else branch, root=root)
    return dict(commit=None, short=None, dirty=None, changed_files=None, branch=None, root=None)


def package_versions(packages=None):
    """Versions of python and of the installed `packages` (None when not installed)."""
    versions = {"python": platform.python_version()}
    for name, dist in (packages or PACKAGES).items():
        try:
            versions[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("nucleiseg_lib") is None:  # running from a checkout that is not pip-installed
        try:
            from .. import __version__
            versions["nucleiseg_lib"] = __version__ + " (not installed)"
        except ImportError:
            pass
    return versions


def cpu_model():
    """The CPU's marketing name, as well as the OS tells it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gb():
    """Physical memory in GiB (None if unknown)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def device_info():
    """CPU, memory and the accelerator torch sees (``gpu`` None when there is none)."""
    info = dict(cpu=cpu_model(), cpu_count=os.cpu_count(), memory_gb=memory_gb(), gpu=None, gpu_count=0,
                gpu_memory_gb=None, cuda=None, cudnn=None, torch_device="cpu", platform=platform.platform())
    try:
        import torch
    except ImportError:
        return info
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version(), torch_device="cuda")
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        info.update(gpu="Apple MPS", gpu_count=1, torch_device="mps")
    return info


def resolve_profile(profile):
    """The profile a name stands for, decided as the notebooks decide it (:func:`nucleiseg_lib.course.resolve_profile`)."""
    from ..course import resolve_profile as course_resolve
    return course_resolve(profile)


def data_info(spec="auto", log=print):
    """Resolve the data a run uses and describe it.

    Parameters
    ----------
    spec : str or Path
        "auto", "download", "synthetic" or a Kaggle-layout folder (see
        :func:`nucleiseg_lib.data.locate.resolve_data`). "auto" may download the data.

    Returns
    -------
    dict
        ``spec``, ``root`` (absolute path), ``source`` ("local", "download" or
        "synthetic"), ``hash`` (16 hex digits), ``n_images``.
    """
    from ..data import data_hash
    from ..data.locate import resolve_data
    root, source = resolve_data(spec, log=log)
    root = Path(root).resolve()
    try:
        n_images = sum(1 for p in root.iterdir() if (p / "images").is_dir())
    except OSError:
        n_images = None
    return dict(spec=str(spec), root=str(root), source=source, hash=data_hash(root), n_images=n_images)


def chromium_version(binary):
    """``chromium --version`` of the browser that prints the PDF (None if it cannot say)."""
    if not binary:
        return None
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    return lines[-1].split(" built on ")[0].strip() if lines else None


def collect(profile, data, folders=(), parameters=None):
    """The provenance of a run, as one JSON-ready dict.

    Parameters
    ----------
    profile : dict
        ``{"requested": ..., "resolved": ...}``.
    data : dict
        From :func:`data_info`.
    folders : sequence of Path
        Where to look for the git repository, first match wins.
    parameters : dict, optional
        The parameters injected into the notebooks.
    """
    return dict(
        generated=now_utc(),
        profile=profile,
        data=data,
        git=git_info(*folders),
        versions=package_versions(),
        device=device_info(),
        parameters=dict(parameters or {}),
        command=" ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        host=platform.node() or None,
    )
