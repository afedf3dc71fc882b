"""The app's pipeline without widgets: decode and predict an upload once, then threshold, label, measure.

Used by :class:`~nucleiseg_lib.app.page.SegmentApp` (the page), the tests and
``benchmarks/app_latency.py``.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.decode import decode_image_bytes
from ..errors import CheckpointError
from ..inference.measure import area_stats, measure_nuclei
from ..inference.postprocess import THRESHOLD_RULES, rule_threshold
from ..runtime import resolve_run_dir  # also the app package's: the run folder, as notebooks 04 and 05 find it
from .download import results_zip
from .limits import DISPLAY_MAX, KEEP_IMAGES, KEEP_PIXELS, auto_max_pixels
from .markup import describe_model

RULES = tuple(THRESHOLD_RULES) + ("manual",)


@dataclass(eq=False)
class Upload:
    """One uploaded image, predicted once."""

    name: str
    image: np.ndarray            # (H, W, 3) float32 in [0, 1]
    prob: np.ndarray             # (C, H, W) float32; channel 0 = nucleus probability
    seconds: dict = field(default_factory=dict)   # decode, predict
    _shown: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self):
        return self.image.shape[:2]


@dataclass(eq=False)
class Result:
    """One upload after thresholding: mask, instances, measurements."""

    upload: Upload
    rule: str
    threshold: float
    mask: np.ndarray
    labels: np.ndarray
    table: dict
    stats: dict
    seconds: float
    min_size: int = 0            # instances smaller than this were dropped (the checkpoint's post-processing)
    min_score: float = 0.0       # and those whose mean probability is lower (0: none)


def load_predictor(run_dir, device=None, tta=False, pretrained=True):
    """(Predictor of ``<run_dir>/best.pt``, None), or (None, why there is none).

    Without a ``best.pt`` and with `pretrained`, the predictor is the pretrained course model shipped with the
    package (:func:`nucleiseg_lib.pretrained.fallback`), when this installation has one.
    """
    from ..inference import Predictor
    best = Path(run_dir) / "best.pt"
    try:
        if pretrained:
            from ..pretrained import fallback  # no trained run: the shipped course model, saying so
            best = fallback(best)
        return Predictor(best, device=device, tta=tta), None
    except CheckpointError as exc:
        return None, exc.problem


class SegmentSession:
    """Uploads and their segmentations, without widgets (see :class:`~nucleiseg_lib.app.page.SegmentApp`).

    Parameters
    ----------
    predictor : nucleiseg_lib.inference.Predictor or None
        None: the app only explains how to get a model (`problem` says why).
    run_dir : str or Path, optional
        Shown to the user, and where :meth:`retry` looks for ``best.pt``.
    problem : str, optional
        Why there is no predictor.
    max_pixels : int or "auto"
        Larger uploads are refused with a message; "auto": what the model can segment
        in this machine's memory (:func:`~nucleiseg_lib.app.limits.auto_max_pixels`).
    display_max : int
        Longer side of the shown images; larger images are shown reduced (by an
        integer factor), never predicted reduced.
    keep : int
        Uploads kept in memory; the oldest are dropped.
    pretrained : bool
        Whether :meth:`retry` may fall back to the pretrained course model when ``best.pt`` is missing.
    """

    def __init__(self, predictor=None, run_dir=None, problem=None, max_pixels="auto",
                 display_max=DISPLAY_MAX, keep=KEEP_IMAGES, pretrained=True):
        self.predictor = predictor
        self.pretrained = pretrained
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.problem = problem
        self._max_pixels = max_pixels
        self.display_max = display_max
        self.keep = keep
        self.uploads = []
        self.result = None
        self._device, self._tta = None, False

    @classmethod
    def from_run_dir(cls, run_dir="auto", profile="auto", device=None, tta=False, pretrained=True, **kwargs):
        """The app with the model in ``<run_dir>/best.pt``; without one, the pretrained course model (saying so).

        Without either (or with ``pretrained=False``) the app says how to get a model.

        Parameters
        ----------
        run_dir : str or Path
            "auto" resolves with :func:`resolve_run_dir` (``<repo>/runs/<profile>``).
        profile : str
        device : str, optional
            Default: CUDA when available, else the CPU.
        tta : bool
            Test-time augmentation (4 flips: 4x slower, slightly better).
        pretrained : bool
            Fall back to the pretrained course model shipped with the package.
        **kwargs
            Passed to the class.
        """
        run_dir = resolve_run_dir(run_dir, profile)
        predictor, problem = load_predictor(run_dir, device, tta, pretrained)
        app = cls(predictor, run_dir, problem, pretrained=pretrained, **kwargs)
        app._device, app._tta = device, tta
        return app

    @property
    def max_pixels(self):
        """The largest upload accepted, in pixels."""
        return auto_max_pixels(self.predictor) if self._max_pixels == "auto" else int(self._max_pixels)

    @property
    def ready(self):
        """Whether a model is loaded."""
        return self.predictor is not None

    @property
    def using_pretrained(self):
        """Whether the model in use is the pretrained course model, not one trained in `run_dir`."""
        from ..pretrained import MODEL
        return self.ready and Path(self.predictor.path) == MODEL

    @property
    def validation_threshold(self):
        return float(self.predictor.postprocess["threshold"]) if self.ready else 0.5

    def retry(self):
        """Look for ``<run_dir>/best.pt`` again (after training in another notebook); True when a model is loaded.

        Without a model, or with the pretrained one, a ``best.pt`` that has appeared since replaces it.
        """
        if self.run_dir is not None and (not self.ready or self.using_pretrained):
            predictor, problem = load_predictor(self.run_dir, self._device, self._tta, self.pretrained)
            if predictor is not None and not (self.ready and Path(predictor.path) == Path(self.predictor.path)):
                self.predictor, self.problem = predictor, problem
                self.uploads, self.result = [], None   # their probabilities came from the other model
            elif predictor is None:
                self.predictor, self.problem = None, problem
        return self.ready

    def model_summary(self):
        """One line about the model in use (plain text)."""
        if not self.ready:
            return "no model"
        return describe_model(self.predictor, self.predictor.path)

    def add_image(self, content, name="upload"):
        """Decode and predict one uploaded file; keep it and return its :class:`Upload`.

        Raises
        ------
        DataError
            Bad input (see :func:`~nucleiseg_lib.data.decode.decode_image_bytes`).
        CheckpointError
            When there is no model.
        """
        if not self.ready:
            raise CheckpointError(self.run_dir / "best.pt" if self.run_dir else "best.pt",
                                  self.problem or "no model loaded")
        t0 = time.perf_counter()
        image = decode_image_bytes(content, name, self.max_pixels)
        t1 = time.perf_counter()
        prob = self.predictor.predict_proba(image)
        up = Upload(name, image, prob, dict(decode=t1 - t0, predict=time.perf_counter() - t1))
        self.uploads.append(up)
        del self.uploads[:-self.keep]
        while len(self.uploads) > 1 and sum(np.prod(u.shape) for u in self.uploads) > KEEP_PIXELS:
            del self.uploads[0]   # memory: about 24 bytes per pixel per upload
        return up

    def threshold_for(self, upload, rule, value=None):
        """The threshold a rule gives on one upload ("manual" takes `value`)."""
        return rule_threshold(upload.prob[0], rule, self.predictor.postprocess, value)

    def segment(self, upload, rule="validation", threshold=None):
        """Threshold, label and measure one upload (fast: the prediction is reused).

        Parameters
        ----------
        upload : Upload
        rule : {"validation", "fixed", "relative", "otsu", "manual"}
        threshold : float, optional
            Used with ``rule="manual"``.

        Returns
        -------
        Result
        """
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; use one of {RULES}")
        t0 = time.perf_counter()
        t = self.threshold_for(upload, rule, threshold)
        seg = self.predictor.postprocess_proba(upload.prob, t)
        table = measure_nuclei(seg["labels"], upload.image, upload.prob[0])
        stats = area_stats(table, upload.shape, seg["mask"])
        return Result(upload, rule, float(t), seg["mask"], seg["labels"], table, stats, time.perf_counter() - t0,
                      int(self.predictor.postprocess.get("min_size", 0)),
                      float(self.predictor.postprocess.get("min_score", 0.0)))

    def download_bytes(self, result=None):
        """The zip of the current (or given) result."""
        result = result or self.result
        return results_zip(result, str(self.predictor.path) if self.ready else None)
