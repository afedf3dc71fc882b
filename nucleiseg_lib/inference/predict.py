"""Prediction at native resolution, and choosing post-processing on the validation split."""

import numpy as np
import torch
import torch.nn.functional as F

from ..data.stats import nucleus_areas
from ..data.transforms import normalize_image
from ..device import autocast_for, pick_device, resolve_amp
from ..metrics import dsb_score, evaluate_image, nucleus_outcomes, summarize
from ..model import fuse_batch_norm, fuse_relu
from ..progress import progress_bar
from ..training.checkpoint import all_weights, build_model, load_checkpoint, save_checkpoint
from .postprocess import DEFAULT_POSTPROCESS, channel_names, postprocess_proba, postprocess_settings


def _autocast(device):
    """Half precision where it is fast: fp16 on CUDA, bf16 on a CPU that computes it natively, else none."""
    return autocast_for(device, "auto")


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
    models : list of UNet
        The checkpoint's model, and the members of an ensemble checkpoint
        (:func:`~nucleiseg_lib.training.checkpoint.ensemble_state`): their maps are averaged.
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
        # batch normalisation folded into the convolutions: the same maps, a fifth less CPU time
        # an ensemble checkpoint (training.checkpoint.ensemble_state) holds more weights: their maps are averaged
        self.models = [fuse_batch_norm(build_model({**self.state, "model": weights}, self.path)).to(
            self.device, memory_format=torch.channels_last)
            for weights in all_weights(self.state, self.path)]
        if self.device.type == "cpu":  # each ReLU applied inside its convolution: the same maps, faster
            dtype = resolve_amp(self.device, "auto") or torch.float32
            self.models = [fuse_relu(model, dtype) for model in self.models]
        self.model = self.models[0]
        self.tta = tta
        self.input = (self.state.get("config") or {}).get("input", "rgb")
        self.postprocess = postprocess_settings(self.model.config["out_channels"], self.state.get("postprocess"),
                                                (self.state.get("config") or {}).get("targets"))

    @torch.no_grad()
    def predict_proba(self, image):
        """Probability maps at the image's own resolution.

        When the post-processing settings hold a ``target_area`` (pixels), an image
        whose nuclei come out smaller than half of it is predicted a second time,
        magnified so that its median nucleus has about that area (at most
        ``max_zoom`` times), and the maps are scaled back: the model then sees
        small, crowded nuclei at the size it learnt best (as Cellpose rescales by
        an estimated diameter).

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), float in [0, 1]

        Returns
        -------
        ndarray, shape (C, H, W), float32 in [0, 1]
            Channel 0 is the nucleus probability; channel 1 (when trained) the contour.
        """
        x = torch.from_numpy(normalize_image(image, self.input))[None].to(self.device)
        prob = self._forward(x)
        zoom = self.zoom_factor(prob)
        if zoom > 1:
            h, w = x.shape[-2:]
            big = F.interpolate(x, size=(round(h * zoom), round(w * zoom)), mode="bilinear", align_corners=False)
            prob = F.interpolate(torch.from_numpy(self._forward(big))[None], size=(h, w), mode="bilinear",
                                 align_corners=False, antialias=True)[0].numpy()
        return prob

    def zoom_factor(self, prob):
        """How much to magnify an image before predicting it again (1: not at all).

        Parameters
        ----------
        prob : ndarray, shape (C, H, W)
            A first prediction at native size.
        """
        target = float(self.postprocess.get("target_area") or 0)
        if target <= 0:
            return 1.0
        areas = nucleus_areas(self.postprocess_proba(prob)["labels"])
        if len(areas) < 3 or np.median(areas) >= target / 2:
            return 1.0
        return float(min(self.postprocess.get("max_zoom", 2.5), np.sqrt(target / np.median(areas))))

    def _forward(self, x):
        """Sigmoid of the model's logits (averaged over flips with TTA, and over an ensemble's models) for a
        normalised batch of one."""
        x = x.contiguous(memory_format=torch.channels_last)
        flips = [(), (-1,), (-2,), (-1, -2)] if self.tta else [()]
        out = 0
        for dims in flips:
            xi = torch.flip(x, dims) if dims else x
            for model in self.models:
                with _autocast(self.device):
                    p = torch.sigmoid(model(xi).float())
                out = out + (torch.flip(p, dims) if dims else p)
        return (out / (len(flips) * len(self.models)))[0].cpu().numpy()

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
        return postprocess_proba(prob, {**self.postprocess, **overrides}, rule)


def evaluate_predictions(predictor, samples, ids, probs=None, rule=None, progress=True, outcomes=False,
                         **overrides):
    """Per-image metrics of a predictor on labelled samples.

    Parameters
    ----------
    predictor : Predictor
    samples : mapping id -> (image, labels)
    ids : list of str
    probs : dict id -> ndarray (C, H, W), optional
        Reuse probability maps already computed.
    rule : threshold rule, optional
    outcomes : bool
        Add what happened to each true nucleus (:func:`nucleiseg_lib.metrics.nucleus_outcomes`).

    Returns
    -------
    per_image : list of dict
        :func:`nucleiseg_lib.metrics.evaluate_image` plus ``id`` and ``threshold`` (and the outcome counts).
    """
    rows = []
    for sid in progress_bar(ids, progress, desc="evaluating"):
        image, true = samples[sid]
        prob = probs[sid] if probs is not None else predictor.predict_proba(np.asarray(image, np.float32))
        seg = predictor.postprocess_proba(prob, rule, **overrides)
        row = evaluate_image(seg["mask"], true > 0, seg["labels"], true)
        if outcomes:
            row.update(nucleus_outcomes(true, seg["labels"]))
        rows.append(dict(id=sid, threshold=seg["threshold"], **row))
    return rows


def calibrate(checkpoint, samples, val_ids, thresholds=None, methods=None, contour_thresholds=(0.3, 0.5, 0.7),
              progress=True, train_ids=None, seed_openings=(1, 2, 3), min_scores=(0.0, 0.6, 0.7, 0.8),
              seed_splits=(0.0, 1.0), distance_thresholds=(0.3, 0.4, 0.5, 0.6),
              seed_split_sizes=(0.1, 0.15), border_thresholds=(0.3, 0.5, 0.7),
              seed_min_fractions=(0.0, 0.1, 0.2, 0.3)):
    """Choose threshold and instance method on the validation split; store them in the checkpoint.

    The choice (threshold, instance method and, for watershed, the contour threshold
    that makes its seeds (`contour_thresholds`: a seed is where the contour probability is below it; 0.7 keeps
    more of each nucleus in its seed: README, "contour threshold 0.7") and whether seeds are split at their distance maxima, `seed_splits`:
    see :func:`~nucleiseg_lib.inference.postprocess.split_seeds`, or at a height relative to each image's median
    seed radius, `seed_split_sizes`: :func:`~nucleiseg_lib.inference.postprocess.split_height`; README, "seeds
    split at a height relative to their size";
    for a model with a distance channel,
    also the "distance" method at each of `distance_thresholds`; for a model with a touching-border channel, each
    watershed choice at each of `border_thresholds`) maximises the mean DSB score
    over `val_ids`. A second, smaller sweep then tries, at that choice, each opening of the
    watershed seeds (`seed_openings`), each minimum mean probability of an instance
    (`min_scores`) and each minimum seed size relative to the image's median seed
    (`seed_min_fractions`, :func:`~nucleiseg_lib.inference.postprocess.drop_small_seeds`; README, "seeds under
    a fraction of the image's median seed dropped");
    a combination is taken only if it beats the first choice on validation. The result is written
    into the checkpoint (atomically) as ``postprocess`` with both sweeps (``sweep``,
    ``refine``), so ``predict`` and ``evaluate`` use it by default.

    With `train_ids`, the median over training images of their median nucleus area
    is stored too (``train_median_area``): the size :meth:`Predictor.zoom_factor`
    magnifies small nuclei to when ``target_area`` is set.

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
    channels = next(iter(probs.values())).shape[0] if probs else 1
    names = channel_names(predictor.postprocess, channels)
    has_contour = "contour" in names
    if "distance" in names and "distance" not in methods:
        methods = list(methods) + ["distance"]

    def mean_dsb(t, **settings):
        return float(np.mean([dsb_score(samples[s][1], predictor.postprocess_proba(probs[s], t, **settings)["labels"])
                              for s in val_ids]))

    # the refinable settings at their defaults, not at what an earlier calibration chose
    plain = {k: DEFAULT_POSTPROCESS[k] for k in ("seed_opening", "min_score", "seed_min_fraction")}
    sweep = []
    for method in methods:
        seeded = method == "watershed" and has_contour
        # watershed seeds are the mask minus predicted contours: how sure must a contour be? split them further?
        if method == "distance":
            choices = [dict(distance_threshold=float(d), seed_split=0.0, seed_split_size=0.0)
                       for d in distance_thresholds]
        elif seeded:
            choices = [dict(contour_threshold=float(c), seed_split=float(p), seed_split_size=0.0)
                       for c in contour_thresholds for p in seed_splits]
            choices += [dict(contour_threshold=float(c), seed_split=0.0, seed_split_size=float(f))
                        for c in contour_thresholds for f in seed_split_sizes]
            if "border" in names:
                choices = [dict(c, border_threshold=float(b)) for c in choices for b in border_thresholds]
        else:
            choices = [dict(seed_split=0.0, seed_split_size=0.0)]
        for extra in choices:
            for t in thresholds:
                sweep.append(dict(method=method, threshold=float(t), **extra,
                                  dsb_score=mean_dsb(t, method=method, **extra, **plain)))
    best = max(sweep, key=lambda r: r["dsb_score"])
    settings = {k: v for k, v in best.items() if k not in ("dsb_score", "threshold")}
    refine = []  # the first row is the default (opening 1, no minimum score, no seed dropped): ties keep it
    seeded = best["method"] == "distance" or (best["method"] == "watershed" and has_contour)
    for so in (seed_openings if seeded else [1]):
        for ms in min_scores:
            for mf in (seed_min_fractions if seeded else [0.0]):
                refine.append(dict(seed_opening=int(so), min_score=float(ms), seed_min_fraction=float(mf),
                                   dsb_score=mean_dsb(best["threshold"], **settings, seed_opening=so, min_score=ms,
                                                      seed_min_fraction=mf)))
    top = max(refine, key=lambda r: r["dsb_score"]) if refine else dict(dsb_score=-1.0)
    extra = {k: v for k, v in top.items() if k != "dsb_score"} if top["dsb_score"] > best["dsb_score"] else plain
    chosen = {**predictor.postprocess, **{k: v for k, v in best.items() if k != "dsb_score"}, **extra,
              "val_dsb_score": max(best["dsb_score"], top["dsb_score"]), "sweep": sweep, "refine": refine}
    if train_ids:
        areas = [nucleus_areas(samples[s][1]) for s in train_ids]
        medians = [float(np.median(a)) for a in areas if len(a)]
        chosen["train_median_area"] = float(np.median(medians)) if medians else None
    state = predictor.state
    state["postprocess"] = chosen
    save_checkpoint(state, checkpoint)
    return chosen


def summarize_rows(rows):
    """Means over per-image rows (drops the ``id`` column)."""
    return summarize([{k: v for k, v in r.items() if k != "id"} for r in rows])
