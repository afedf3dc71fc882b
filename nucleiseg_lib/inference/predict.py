"""Prediction at native resolution, and choosing post-processing on the validation split."""

import numpy as np
import torch

from ..data.transforms import normalize_image
from ..metrics import dsb_score, evaluate_image, summarize
from ..training.checkpoint import build_model, load_checkpoint, save_checkpoint
from ..training.trainer import pick_device
from .postprocess import find_threshold, label_instances

DEFAULT_POSTPROCESS = dict(threshold=0.5, method="cc", min_size=8, contour_threshold=0.5)


class Predictor:
    """A trained model with its post-processing, ready to segment images.

    Parameters
    ----------
    checkpoint : str or Path
        A ``best.pt`` or ``last.pt`` written by training, or ``"pretrained"``: the course
        model shipped with the package (:mod:`nucleiseg_lib.pretrained`).
    device : str, optional
    tta : bool
        Average over flips (test-time augmentation): slower, slightly better.

    Attributes
    ----------
    postprocess : dict
        ``threshold``, ``method``, ``min_size``, ``contour_threshold``: chosen on the
        validation split after training (see :func:`calibrate`), else defaults.
    """

    def __init__(self, checkpoint, device=None, tta=False):
        from ..pretrained import resolve_checkpoint
        checkpoint = resolve_checkpoint(checkpoint)
        self.path = str(checkpoint)
        self.state = load_checkpoint(checkpoint)
        self.device = pick_device(device)
        # NHWC: faster convolutions on CPU (bf16/fp32) and on tensor-core GPUs
        self.model = build_model(self.state, self.path).to(self.device, memory_format=torch.channels_last)
        self.tta = tta
        pp = dict(DEFAULT_POSTPROCESS)
        if self.model.config["out_channels"] > 1:
            pp["method"] = "watershed"
        pp.update(self.state.get("postprocess") or {})
        self.postprocess = pp

    @torch.no_grad()
    def predict_proba(self, image):
        """Probability maps at the image's own resolution.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), float in [0, 1]

        Returns
        -------
        ndarray, shape (C, H, W), float32 in [0, 1]
            Channel 0 is the nucleus probability; channel 1 (when trained) the contour.
        """
        x = torch.from_numpy(normalize_image(image))[None].to(self.device).contiguous(
            memory_format=torch.channels_last)
        flips = [(), (-1,), (-2,), (-1, -2)] if self.tta else [()]
        out = 0
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                p = torch.sigmoid(self.model(xi).float())
            out = out + (torch.flip(p, dims) if dims else p)
        return (out / len(flips))[0].cpu().numpy()

    def segment(self, image, rule=None, **overrides):
        """Mask and instance labels of one image.

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), float in [0, 1]
        rule : threshold rule or number, optional
            See :func:`find_threshold`; default: the validation-chosen threshold.
        **overrides
            Replace post-processing settings (``method``, ``min_size``, ...).

        Returns
        -------
        dict with ``prob`` (C, H, W), ``threshold`` float, ``mask`` (H, W) bool,
        ``labels`` (H, W) int32
        """
        return self.postprocess_proba(self.predict_proba(image), rule, **overrides)

    def postprocess_proba(self, prob, rule=None, **overrides):
        """Like :meth:`segment`, from probability maps already computed."""
        pp = {**self.postprocess, **overrides}
        t = find_threshold(prob[0], "validation" if rule is None else rule, pp["threshold"])
        contour = prob[1] if prob.shape[0] > 1 else None
        labels = label_instances(prob[0], t, contour, pp["method"], pp["min_size"], pp["contour_threshold"])
        return dict(prob=prob, threshold=t, mask=prob[0] > t, labels=labels)


def evaluate_predictions(predictor, samples, ids, probs=None, rule=None, progress=True, **overrides):
    """Per-image metrics of a predictor on labelled samples.

    Parameters
    ----------
    predictor : Predictor
    samples : mapping id -> (image, labels)
    ids : list of str
    probs : dict id -> ndarray (C, H, W), optional
        Reuse probability maps already computed.
    rule : threshold rule, optional

    Returns
    -------
    per_image : list of dict
        :func:`nucleiseg_lib.metrics.evaluate_image` plus ``id`` and ``threshold``.
    """
    from tqdm.auto import tqdm
    rows = []
    for sid in tqdm(ids, desc="evaluating", disable=not progress):
        image, true = samples[sid]
        prob = probs[sid] if probs is not None else predictor.predict_proba(np.asarray(image, np.float32))
        seg = predictor.postprocess_proba(prob, rule, **overrides)
        row = evaluate_image(seg["mask"], true > 0, seg["labels"], true)
        rows.append(dict(id=sid, threshold=seg["threshold"], **row))
    return rows


def calibrate(checkpoint, samples, val_ids, thresholds=None, methods=None, contour_thresholds=(0.3, 0.5),
              progress=True):
    """Choose threshold and instance method on the validation split; store them in the checkpoint.

    The choice (threshold, instance method and, for watershed, the contour threshold
    that makes its seeds) maximises the mean DSB score over `val_ids`. The result is written
    into the checkpoint (atomically) as ``postprocess`` with the whole sweep, so
    ``predict`` and ``evaluate`` use it by default.

    Returns
    -------
    dict
        The chosen ``postprocess`` settings plus ``sweep`` (list of dict).
    """
    predictor = Predictor(checkpoint)
    if thresholds is None:
        thresholds = [round(t, 2) for t in np.arange(0.2, 0.81, 0.05)]
    if methods is None:
        methods = ["cc", "watershed"]
    probs = {sid: predictor.predict_proba(np.asarray(samples[sid][0], np.float32)) for sid in val_ids}
    has_contour = next(iter(probs.values())).shape[0] > 1 if probs else False
    sweep = []
    for method in methods:
        # watershed seeds are the mask minus predicted contours: how sure must a contour be?
        for ct in (contour_thresholds if method == "watershed" and has_contour else [None]):
            extra = {} if ct is None else {"contour_threshold": float(ct)}
            for t in thresholds:
                scores = [dsb_score(samples[s][1],
                                    predictor.postprocess_proba(probs[s], t, method=method, **extra)["labels"])
                          for s in val_ids]
                sweep.append(dict(method=method, threshold=float(t), **extra, dsb_score=float(np.mean(scores))))
    best = max(sweep, key=lambda r: r["dsb_score"])
    chosen = {**predictor.postprocess, **{k: v for k, v in best.items() if k != "dsb_score"},
              "val_dsb_score": best["dsb_score"], "sweep": sweep}
    state = predictor.state
    state["postprocess"] = chosen
    save_checkpoint(state, checkpoint)
    return chosen


def summarize_rows(rows):
    """Means over per-image rows (drops the ``id`` column)."""
    return summarize([{k: v for k, v in r.items() if k != "id"} for r in rows])
