"""Setup of every course notebook, in one call; the teaching helpers live in their layers and are re-exported here.

>>> ctx = setup_course(PROFILE, DATA, uses="data")            # 01-03: data only   # doctest: +SKIP
>>> ctx = setup_course(PROFILE, DATA, RUN_DIR, uses="train")  # 04: trains a run   # doctest: +SKIP
>>> ctx = setup_course(PROFILE, DATA, RUN_DIR, uses="model")  # 05: uses a model   # doctest: +SKIP

``setup_course`` decides the profile (:func:`nucleiseg_lib.runtime.resolve_profile`, the one place where "auto"
is decided), finds the data (local DSB2018, else the one download of this student, kept in the course folder,
on Google Drive in Colab, else synthetic data with a loud warning) and, for the notebooks that need one, the run
folder: 04 trains into ``<home>/runs/<recipe>``; 05 uses the run trained last (of any recipe, so a gpu run
trained on a GPU runtime is found on a CPU runtime), else the pretrained course model shipped with the package,
and says which. Where things live: :mod:`nucleiseg_lib.runtime`.

Profiles are the training recipes of :mod:`nucleiseg_lib.training.recipes`:

========  ===============================================================================
smoke     CI: a tiny U-Net, a few epochs, a fixed subset of 120 images up to 696 x 520 (minutes)
cpu       a laptop or a CPU-only machine
gpu       the original U-Net width (base 64) on a GPU, e.g. Colab
original  the original project's settings (base 32, 256 x 256 resize, BCE)
========  ===============================================================================
"""

from dataclasses import dataclass, field
from pathlib import Path

from . import runtime
from .data import SampleCache, data_hash, list_samples, split_ids
from .data.locate import (SMOKE_IMAGES, SMOKE_MAX_PIXELS, SYNTHETIC_WARNING, image_pixels,  # noqa: F401
                          resolve_data, smoke_subset)
from .data.split import split_seed
from .data.stats import (all_areas, all_background_scores, check_masks, classify_modality, count_by,  # noqa: F401
                         dataset_stats, examples_by, size_counts, summary_by)
from .inference.analysis import failure_reason, summary_table  # noqa: F401
from .model import coarse_mask  # noqa: F401
from .runtime import (PROFILES, course_home, find_run, gpu_line, in_colab, mount_drive, resolve_profile,  # noqa: F401
                      resolve_run_dir, train_run_dir)
from .training import get_recipe
from .training.baseline import fit_pixel_classifier  # noqa: F401

__all__ = ["PROFILES", "SMOKE_IMAGES", "Course", "setup_course", "in_colab", "resolve_profile", "gpu_line",
           "resolve_run_dir", "course_home", "smoke_subset", "image_pixels", "dataset_stats", "count_by", "size_counts",
           "summary_by", "all_areas", "all_background_scores", "check_masks", "classify_modality", "examples_by",
           "summary_table", "failure_reason", "coarse_mask", "fit_pixel_classifier", "SYNTHETIC_WARNING"]

#: Validation images that notebook 05 evaluates in the smoke profile.
SMOKE_VAL_IMAGES = 12
USES = ("data", "train", "model")


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
    run_dir : Path or None
        Where notebook 04 writes ``last.pt``, ``best.pt``, ``history.json``, and where 05
        reads them; None in 01-03 (no run), and in 05 when it uses the pretrained model.
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
    model_source: str = "run"
    _samples: dict = field(default=None, repr=False)
    _cache: object = field(default=None, repr=False)

    @property
    def synthetic(self):
        return self.source == "synthetic"

    @property
    def best_checkpoint(self):
        """``run_dir / "best.pt"``; the pretrained course model when this notebook uses it (05 without a run)."""
        if self.model_source == "pretrained":
            from .pretrained import MODEL
            return MODEL
        return self.run_dir / "best.pt"

    @property
    def last_checkpoint(self):
        """``run_dir / "last.pt"``."""
        return self.run_dir / "last.pt"

    def split(self):
        """(train_ids, val_ids) of :attr:`ids`, with the recipe's ``val_fraction`` and seed (``data.split.split_seed``)."""
        return split_ids(self.ids, self.recipe.val_fraction, split_seed(self.recipe))

    def cache(self):
        """The :class:`SampleCache` of :attr:`ids` (built on first use, then reused)."""
        if self._cache is None:
            # the course's mask cache: on Drive in Colab, built once per student (runtime.cache_dir)
            self._cache = SampleCache(self.root, cache_dir=runtime.cache_dir(), ids=self.ids, progress=self.progress)
        return self._cache

    def samples(self, ids=None):
        """Samples in memory: dict id -> (float16 image, uint16 labels).

        The per-nucleus masks are merged once into the on-disk cache
        (:func:`nucleiseg_lib.runtime.cache_dir`: on Drive in Colab), then loaded; what was
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
        if missing and self.model_source == "pretrained" and len(missing) < len(val):
            val = [i for i in val if i in known]  # the shipped model: its validation images among this profile's
        elif missing:
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


def _run_recipe(run_dir):
    """The recipe name a run was trained with (from its best.pt), or None."""
    try:
        from .training import load_checkpoint
        return (load_checkpoint(run_dir / "best.pt").get("config") or {}).get("recipe")
    except Exception:  # unreadable: the notebook's own check says what is wrong later
        return None


def setup_course(profile="auto", data="auto", run_dir="auto", smoke_images=SMOKE_IMAGES, progress=True,
                 log=print, uses="train"):
    """Everything a notebook's setup needs, resolved and printed.

    Parameters
    ----------
    profile : {"auto", "smoke", "cpu", "gpu"}
        See :func:`nucleiseg_lib.runtime.resolve_profile`. With ``uses="model"`` and "auto",
        the profile is the recipe of the run found (whatever this runtime's hardware).
    data : str
        "auto" (local DSB2018, else download, else synthetic), "download",
        "synthetic", or a Kaggle-layout folder.
    run_dir : str or Path
        "auto" or a folder.
    smoke_images : int
        How many images the smoke profile uses.
    progress : bool
        Progress bars while building the cache.
    log : callable
    uses : {"data", "train", "model"}
        What the notebook needs: data only (01-03: no run folder); a run folder to train
        into (04: ``<home>/runs/<recipe>``); a trained model (05: the run trained last,
        else the pretrained model).

    Returns
    -------
    Course
    """
    if uses not in USES:
        raise ValueError(f"uses={uses!r}: use one of {USES}")
    found, model_source = None, "run"
    if uses == "model":
        found = runtime.find_run(run_dir, profile, log)
        if found is not None and (found / "best.pt").is_file():
            recipe_name = _run_recipe(found)
            if (profile or "auto").strip().lower() == "auto" and recipe_name in runtime.PROFILES:
                profile = recipe_name
        else:
            from . import pretrained
            if pretrained.available():
                model_source = "pretrained"
                profile = (pretrained.card() or {}).get("recipe", "cpu") if (profile or "auto") == "auto" else profile
                found = None
    profile = resolve_profile(profile)
    log(gpu_line(profile))
    recipe = get_recipe(profile)
    root, source = resolve_data(data, download_dir=runtime.data_dir(log), log=log)
    root = Path(root).resolve()
    all_ids = list_samples(root)
    ids = smoke_subset(all_ids, smoke_images, recipe.seed, root) if profile == "smoke" else all_ids
    if uses == "train":
        run = train_run_dir(run_dir, profile, log)
    elif uses == "model" and model_source == "run":
        run = found if found is not None else runtime.runs_dir(log) / profile
    else:
        run = None
    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ctx = Course(profile=profile, recipe=recipe, root=root, source=source, run_dir=run, device=device,
                 ids=ids, all_ids=all_ids, progress=progress, model_source=model_source)
    subset = f" (smoke subset of {len(all_ids)})" if len(ids) < len(all_ids) else ""
    log(f"profile  {profile}: U-Net base {recipe.base}, {recipe.epochs} epochs, {recipe.mode} {recipe.size}, "
        f"batch {recipe.batch_size}, targets {'+'.join(recipe.targets)}")
    log(f"data     {root} ({source}): {len(ids)} images{subset}")
    if uses == "train":
        log(f"run dir  {run}")
    elif uses == "model":
        if model_source == "pretrained":
            from .pretrained import MODEL
            log(f"model    no trained run found: using the pretrained course model {MODEL} "
                f"(the {profile} recipe, shipped with nucleiseg_lib). Train your own with 04_training.")
        else:
            log(f"model    {run / 'best.pt'} (the run of recipe {profile!r}"
                f"{'' if (run / 'best.pt').is_file() else '; not trained yet'})")
    log(f"device   {device}")
    if ctx.synthetic:
        from .viz import synthetic_banner
        synthetic_banner()
    return ctx
