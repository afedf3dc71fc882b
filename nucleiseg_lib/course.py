"""Setup of every course notebook, in one call.

>>> ctx = setup_course(PROFILE, DATA, RUN_DIR)       # doctest: +SKIP
>>> train_ids, val_ids = ctx.split()                   # doctest: +SKIP
>>> samples = ctx.samples()                            # doctest: +SKIP

``setup_course`` decides the profile (``auto``: ``gpu`` when CUDA is available,
else ``cpu``), finds the data (local DSB2018, else the download, else synthetic
data, with a loud warning), and picks the run folder where notebook 04 writes
its checkpoints and notebook 05 reads them (``auto``: ``runs/<profile>`` in the
repository, or on Google Drive in Colab so that a disconnect loses at most one
epoch).

Profiles are the training recipes of :mod:`nucleiseg_lib.training.recipes`:

========  ===============================================================================
smoke     CI: a tiny U-Net, a few epochs, a fixed subset of 120 images up to 696 x 520 (minutes)
cpu       a laptop or a CPU-only machine
gpu       the original U-Net width (base 64) on a GPU, e.g. Colab
original  the original project's settings (base 32, 256 x 256 resize, BCE)
========  ===============================================================================
"""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import SampleCache, data_hash, list_samples, split_ids
from .data.locate import REPO_ROOT, SYNTHETIC_WARNING, resolve_data
from .data.stats import (all_areas, all_background_scores, check_masks, classify_modality, count_by,
                         dataset_stats, examples_by, size_counts, summary_by)
from .training import get_recipe

__all__ = ["PROFILES", "SMOKE_IMAGES", "Course", "setup_course", "in_colab", "resolve_profile", "gpu_line",
           "resolve_run_dir", "course_home", "smoke_subset", "image_pixels", "dataset_stats", "count_by", "size_counts",
           "summary_by", "all_areas", "all_background_scores", "check_masks", "classify_modality", "examples_by",
           "summary_table", "failure_reason", "coarse_mask", "fit_pixel_classifier", "SYNTHETIC_WARNING"]

PROFILES = ("smoke", "cpu", "gpu", "original")
#: Images used by the smoke profile: enough for 12 validation images, few enough to explore in seconds.
SMOKE_IMAGES = 120
#: Validation images that notebook 05 evaluates in the smoke profile.
SMOKE_VAL_IMAGES = 12
#: Largest image (in pixels) the smoke profile draws: 696 x 520, the commonest large size. The 23 larger images of
#: DSB2018 (1024 x 1024 up to 1388 x 1040) would slow every full-resolution validation pass in CI.
SMOKE_MAX_PIXELS = 696 * 520
DRIVE_MOUNT = Path("/content/drive")
DRIVE_RUNS = DRIVE_MOUNT / "MyDrive" / "nucleiseg" / "runs"


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
    """The profile to use.

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
    hint = " (in Colab: Runtime > Change runtime type > T4 GPU)" if in_colab() else ""
    return f"no GPU: {profile.upper()} profile on the CPU{hint}"


def course_home():
    """Where the course keeps ``runs/`` and ``data/``: the repository when it is a checkout, else the current folder.

    (A ``pip install`` from git puts the library in site-packages, where no run
    folder belongs; in Colab the current folder is ``/content``.)
    """
    return REPO_ROOT  # nucleiseg_lib.data.locate already falls back to the current folder


def mount_drive(log=print):
    """Mount Google Drive in Colab; return the runs folder on it, or None when that is not possible."""
    if not in_colab():
        return None
    try:
        if not (DRIVE_MOUNT / "MyDrive").is_dir():
            from google.colab import drive
            drive.mount(str(DRIVE_MOUNT))
        return DRIVE_RUNS if (DRIVE_MOUNT / "MyDrive").is_dir() else None
    except Exception as exc:  # refused authorisation, no Drive, papermill without a browser...
        log(f"Google Drive not mounted ({type(exc).__name__}: {exc})")
        return None


def resolve_run_dir(run_dir, profile, log=print):
    """The run folder (created).

    Parameters
    ----------
    run_dir : str or Path
        A folder, or "auto": in Colab ``/content/drive/MyDrive/nucleiseg/runs/<profile>``
        (falling back to ``/content/runs/<profile>`` with a warning when Drive cannot
        be mounted); elsewhere ``runs/<profile>`` in the repository.
    profile : str
        A profile, or "auto" (see :func:`resolve_profile`).

    Returns
    -------
    Path
    """
    profile = resolve_profile(profile)
    if str(run_dir or "auto") != "auto":
        path = Path(run_dir).expanduser()
    elif in_colab():
        drive = mount_drive(log)
        if drive is None:
            path = Path("/content/runs") / profile
            log(f"WARNING: runs go to {path}, which a Colab disconnect erases. Mount Google Drive to keep them.")
        else:
            path = drive / profile
    else:
        path = course_home() / "runs" / profile
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def image_pixels(root, sample_id):
    """Width x height of a sample's image, read from the file header only (fast)."""
    from PIL import Image

    from .data import sample_paths
    path = Path(root) / sample_id / "images" / f"{sample_id}.png"
    if not path.is_file():
        path = sample_paths(root, sample_id, need_masks=False)[0]
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def smoke_subset(ids, n=SMOKE_IMAGES, seed=0, root=None, max_pixels=SMOKE_MAX_PIXELS):
    """A deterministic subset of `n` ids, sorted.

    Parameters
    ----------
    ids : list of str
    n : int
        All ids are kept when there are no more than `n`.
    seed : int
    root : str or Path, optional
        With it, only images of at most `max_pixels` pixels are drawn (unless that
        leaves fewer than `n`).
    max_pixels : int
    """
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    if root is not None:
        small = [i for i in ids if image_pixels(root, i) <= max_pixels]
        ids = small if len(small) >= n else ids
    pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return sorted(ids[i] for i in pick)


@dataclass
class Course:
    """What a notebook needs: profile, recipe, data, run folder, device. Made by :func:`setup_course`.

    Attributes
    ----------
    profile : {"smoke", "cpu", "gpu"}
    recipe : TrainConfig
        The training settings of the profile.
    root : Path
        The data folder (Kaggle layout).
    source : {"local", "download", "synthetic"}
    synthetic : bool
        True when the data are generated, not microscopy: every figure and table
        must then carry the warning (pass ``synthetic=ctx.synthetic``).
    run_dir : Path
        Where notebook 04 writes ``last.pt``, ``best.pt``, ``history.json``.
    device : str
        "cuda" or "cpu".
    ids : list of str
        The images this profile uses (a deterministic subset in smoke).
    all_ids : list of str
        Every image of the data folder.
    """

    profile: str
    recipe: object
    root: Path
    source: str
    run_dir: Path
    device: str
    ids: list = field(repr=False)
    all_ids: list = field(repr=False)
    progress: bool = True
    _samples: dict = field(default=None, repr=False)
    _cache: object = field(default=None, repr=False)

    @property
    def synthetic(self):
        return self.source == "synthetic"

    @property
    def best_checkpoint(self):
        """``run_dir / "best.pt"``."""
        return self.run_dir / "best.pt"

    @property
    def last_checkpoint(self):
        """``run_dir / "last.pt"``."""
        return self.run_dir / "last.pt"

    def split(self):
        """(train_ids, val_ids) of :attr:`ids`, with the recipe's ``val_fraction`` and ``seed``."""
        return split_ids(self.ids, self.recipe.val_fraction, self.recipe.seed)

    def cache(self):
        """The :class:`SampleCache` of :attr:`ids` (built on first use, then reused)."""
        if self._cache is None:
            self._cache = SampleCache(self.root, ids=self.ids, progress=self.progress)
        return self._cache

    def samples(self, ids=None):
        """Samples in memory: dict id -> (float16 image, uint16 labels).

        The per-nucleus masks are merged once into the on-disk cache
        (``$NUCLEISEG_CACHE``, else ``~/.cache/nucleiseg``), then loaded; what was
        loaded once is kept, so a second call returns at once.

        Parameters
        ----------
        ids : list of str, optional
            Load only these (of :attr:`ids`); default: every image of the profile,
            returned as the same dict on every call.
        """
        if self._samples is None:
            self._samples = {}
        cache = self.cache()
        todo = self.ids if ids is None else ids
        for sid in todo:
            if sid not in self._samples:
                self._samples[sid] = cache.load(sid)
        return self._samples if ids is None else {sid: self._samples[sid] for sid in ids}

    def data_info(self):
        """Provenance to store with a trained model: folder, source, hash, number of images."""
        return dict(root=str(self.root), source=self.source, hash=data_hash(self.root), n_images=len(self.ids),
                    profile=self.profile)

    def requires(self, notebook, path):
        """Check that an earlier notebook left `path` behind.

        Parameters
        ----------
        notebook : str
            E.g. "04_training".
        path : str or Path

        Returns
        -------
        Path

        Raises
        ------
        FileNotFoundError
            Saying which notebook to run first, with which settings.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run {notebook} first (with the same PROFILE={self.profile!r} and "
                f"RUN_DIR={str(self.run_dir)!r}), then run this notebook again.")
        return path

    def resume_note(self):
        """A sentence on what training into :attr:`run_dir` will do (start, resume, or nothing left)."""
        import json
        hist = self.run_dir / "history.json"
        if not self.last_checkpoint.exists():
            return f"{self.run_dir} holds no checkpoint: training starts from scratch."
        done = len(json.loads(hist.read_text())) if hist.exists() else "?"
        if done != "?" and done >= self.recipe.epochs:
            return (f"{self.run_dir} already holds a model trained for {done} epochs: training returns at once "
                    f"(raise recipe.epochs to train further, or use another RUN_DIR to start afresh).")
        return f"{self.run_dir} holds a checkpoint after epoch {done}: training resumes from it."

    def validation_ids(self, state, limit=None):
        """The validation images of a checkpoint: images its model never trained on.

        Parameters
        ----------
        state : dict
            From :func:`nucleiseg_lib.training.load_checkpoint` (or ``Predictor.state``).
        limit : int, optional
            Keep the first `limit`; default: all, but :data:`SMOKE_VAL_IMAGES` in smoke.

        Raises
        ------
        ValueError
            When the checkpoint's images are not this course's images (another
            profile or data folder): the numbers would be meaningless.
        """
        val = list((state.get("split") or {}).get("val") or [])
        if not val:
            raise ValueError("the checkpoint holds no validation split: train it with 04_training")
        known = set(self.ids)
        missing = [i for i in val if i not in known]
        if missing:
            raise ValueError(
                f"the model in {self.run_dir} was trained on other images: {len(missing)} of its {len(val)} "
                f"validation images are not among this notebook's {len(self.ids)} images of {self.root} "
                f"(profile {self.profile}). Run 04_training with the same PROFILE and DATA as this notebook.")
        if limit is None and self.profile == "smoke":
            limit = SMOKE_VAL_IMAGES
        return val[:limit] if limit else val

    def table(self, rows, **kwargs):
        """:func:`nucleiseg_lib.viz.table` with this course's synthetic flag."""
        from .viz import table
        table(rows, synthetic=self.synthetic, **kwargs)


def summary_table(summaries, keys=("threshold", "pixel_accuracy", "iou", "dice", "dsb_score", "n_pred", "n_true"),
                  name="variant"):
    """Rows for :func:`nucleiseg_lib.viz.table` from ``{variant: summary dict}`` (missing values left blank)."""
    return [{name: k, **{key: s.get(key, "") for key in keys}} for k, s in summaries.items()]


def coarse_mask(mask, factor=16):
    """A mask seen at 1/`factor` resolution, then blown back up.

    Each `factor` x `factor` block becomes foreground when more than half of it is;
    this is the best a decoder could redraw from the U-Net's bottleneck alone,
    without the skip connections.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
    factor : int

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    m = np.asarray(mask) > 0
    h, w = m.shape
    ph, pw = (-h) % factor, (-w) % factor
    p = np.pad(m, ((0, ph), (0, pw)))
    small = p.reshape(p.shape[0] // factor, factor, p.shape[1] // factor, factor).mean(axis=(1, 3)) > 0.5
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)[:h, :w]


def fit_pixel_classifier(image, target, steps=300, lr=0.1, seed=0):
    """Fit the smallest possible "segmentation model" to one image: ``sigmoid(a * brightness + b)``.

    Trained with the same loss as the U-Net (binary cross-entropy), in a second.
    Notebook 02 uses it to show what a target spoilt by a double ``/255`` teaches.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    target : ndarray, shape (H, W) or (1, H, W), float
    steps : int
    lr : float

    Returns
    -------
    ndarray, shape (H, W), float32
        The fitted nucleus probability of every pixel.
    """
    import torch
    import torch.nn.functional as F

    from .data import normalize_image
    torch.manual_seed(seed)
    x = torch.from_numpy(normalize_image(image)).mean(0)
    t = torch.as_tensor(np.asarray(target, np.float32).reshape(x.shape))
    step = max(1, int(np.sqrt(x.numel() / 2 ** 14)))  # two parameters: 16k pixels are plenty to fit them
    xs, ts = x[::step, ::step], t[::step, ::step]
    params = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([params], lr=lr)
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(params[0] * xs + params[1], ts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return torch.sigmoid(params[0] * x + params[1]).numpy()


def failure_reason(row, modality, train_modalities):
    """One sentence on why an image scores low, made from its numbers.

    Parameters
    ----------
    row : dict
        A row of :func:`nucleiseg_lib.inference.evaluate_predictions` (``n_true``,
        ``n_pred``, ``iou``, ``dsb_score``).
    modality : str
        Of this image (:func:`classify_modality`).
    train_modalities : dict modality -> int
        How many training images of each modality the model saw.

    Returns
    -------
    str
    """
    total = max(sum(train_modalities.values()), 1)
    share = train_modalities.get(modality, 0) / total
    rare = " - rare in training" if share < 0.2 else ""
    parts = [f"{modality} image ({train_modalities.get(modality, 0)} of {total} training images{rare})"]
    n_true, n_pred = row["n_true"], row["n_pred"]
    if n_true == 0:
        parts.append(f"no nucleus in the truth, {n_pred} predicted")
    elif n_pred < 0.7 * n_true:
        parts.append(f"{n_pred} nuclei found for {n_true} true: touching nuclei merged or faint ones missed")
    elif n_pred > 1.3 * n_true:
        parts.append(f"{n_pred} nuclei found for {n_true} true: nuclei split, or background taken for nuclei")
    else:
        parts.append(f"about the right count ({n_pred} found for {n_true} true)")
    if row["iou"] < 0.5:
        parts.append(f"the foreground itself is wrong (pixel IoU {row['iou']:.2f})")
    else:
        parts.append(f"the foreground is largely right (pixel IoU {row['iou']:.2f}), so the loss is in the outlines "
                     f"and the separation of nuclei, which the DSB score checks at IoU 0.5 to 0.95")
    return "; ".join(parts) + "."


def setup_course(profile="auto", data="auto", run_dir="auto", smoke_images=SMOKE_IMAGES, progress=True,
                 log=print):
    """Everything a notebook's setup needs, resolved and printed.

    Parameters
    ----------
    profile : {"auto", "smoke", "cpu", "gpu"}
        See :func:`resolve_profile`.
    data : str
        "auto" (local DSB2018, else download, else synthetic), "download",
        "synthetic", or a Kaggle-layout folder.
    run_dir : str or Path
        "auto" or a folder; see :func:`resolve_run_dir`.
    smoke_images : int
        How many images the smoke profile uses.
    progress : bool
        Progress bars while building the cache.
    log : callable

    Returns
    -------
    Course
    """
    profile = resolve_profile(profile)
    log(gpu_line(profile))
    recipe = get_recipe(profile)
    home = course_home()
    root, source = resolve_data(data, download_dir=home / "data", log=log)
    root = Path(root).resolve()
    all_ids = list_samples(root)
    ids = smoke_subset(all_ids, smoke_images, recipe.seed, root) if profile == "smoke" else all_ids
    run_dir = resolve_run_dir(run_dir, profile, log)
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ctx = Course(profile=profile, recipe=recipe, root=root, source=source, run_dir=run_dir, device=device,
                 ids=ids, all_ids=all_ids, progress=progress)
    subset = f" (smoke subset of {len(all_ids)})" if len(ids) < len(all_ids) else ""
    log(f"profile  {profile}: U-Net base {recipe.base}, {recipe.epochs} epochs, {recipe.mode} {recipe.size}, "
        f"batch {recipe.batch_size}, targets {'+'.join(recipe.targets)}")
    log(f"data     {root} ({source}): {len(ids)} images{subset}")
    log(f"run dir  {run_dir}")
    log(f"device   {device}")
    if ctx.synthetic:
        from .viz import synthetic_banner
        synthetic_banner()
    return ctx

