"""What post-processing and test-time scaling can still win from a run's probability maps (same weights, paired).

    python benchmarks/inference_probe.py --name amx-s0-size   # -> benchmarks/results/amx-s0-size_inference_probe.json

Scores ``runs/<name>/best.pt`` on its validation images (seen experiments) and its test images (left-out
experiments), overall and per image kind, under its validation-chosen post-processing and under variants that
the library does not use, each computed from the same probability maps:

* **how confident the contour channel is**: per experiment, the 90th and 99th percentile of the contour
  probability inside the predicted mask. Where it never reaches the chosen contour threshold, the watershed
  seeds are the mask itself, cut only by the seed opening and the seed split;
* **contour relative to its image**: the contour map divided by its own 99th (or 95th) percentile inside the
  mask before the seeds are cut at ``contour_threshold`` (a dim image's weak rings then cut seeds too);
* **seeds from a higher mask threshold**: seeds only where the nucleus probability is above ``ts`` (each nucleus's
  core), the objects still grown over the chosen threshold's mask;
* **test-time scales**: the maps of the image resized by 0.7, 1.4 or 2, scaled back and averaged with the
  native-size map (the 2018 winners predicted at 3 scales);
* **the true touching border given**: the border of the image's true nuclei
  (:func:`nucleiseg_lib.data.transforms.touching_border`) as the model's border channel, or in place of its own:
  the most that a border channel that the model learnt perfectly could add to these maps (an upper bound that
  uses the answer, not a method);
* **tighter outlines**: each object of the chosen post-processing cut back to where the nucleus probability is
  above 0.6 or 0.7 (its instances as they were, only their outlines moved inwards);
* **outlines moved by a pixel**: each object grown by 1 px into the background around it, or shrunk by 1 px
  (:func:`shift_outlines`): whether the model's outlines sit systematically inside or outside the annotators';
* **the true outline of each found nucleus given**: every predicted object that matches a true nucleus (IoU over
  0.5) replaced by that nucleus's true pixels, the rest left as predicted (:func:`true_outlines`): what exact
  outlines would add to the nuclei the model already finds, beside what the border would add by finding more
  (an upper bound too);
* **batch-norm statistics from the image itself** (``--bn-alphas``): each batch normalisation normalises with
  ``(1 - a)`` of its training statistics and ``a`` of the image's own feature statistics (AdaBN, Li et al. 2016;
  a < 1 as in alpha-BN for a single test image): a test-time adaptation to a new stain or microscope that needs
  no labels. These variants run the network again, unfused.

None of these is offered to ``calibrate``: this script says whether one should be. For a model with a border
channel (``targets`` mask, contour, border), its confidence is reported beside the contour's.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
RESULTS = REPO / "benchmarks" / "results"
KINDS = ("fluorescence", "stained")
SCALES = (0.7, 1.4, 2.0)
SCALE_SETS = ((1.4,), (2.0,), (0.7,), (1.0, 1.4), (1.0, 2.0), (0.7, 1.0, 1.4), (1.0, 1.4, 2.0), (0.7, 1.0, 1.4, 2.0))


def relative_contour(prob, threshold, q):
    """The contour map over its q-th percentile inside the mask, clipped to [0, 1]."""
    mask = prob[0] > threshold
    ref = np.percentile(prob[1][mask], q) if mask.sum() > 20 else 1.0
    return np.clip(prob[1] / max(ref, 1e-3), 0, 1)


def core_seeds_contour(prob, seed_threshold):
    """A contour map that is 1 wherever the nucleus probability is at most `seed_threshold`: the library's
    watershed then takes its seeds only from the cores of the nuclei (its surface is unchanged inside them)."""
    return np.where(prob[0] > seed_threshold, prob[1], 1.0)


def scaled_maps(pred, image, scales):
    """{scale: (C, H, W) maps} of the image resized by each scale, scaled back to its own size."""
    import torch
    import torch.nn.functional as F

    from nucleiseg_lib.inference.predict import normalize_image
    x = torch.from_numpy(normalize_image(image, pred.input))[None]
    h, w = x.shape[-2:]
    out = {}
    with torch.no_grad():
        for s in scales:
            xs = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False,
                               antialias=s < 1)
            p = torch.from_numpy(pred._forward(xs))[None]
            out[s] = F.interpolate(p, size=(h, w), mode="bilinear", align_corners=False, antialias=s > 1)[0].numpy()
    return out


def true_outlines(labels, true):
    """Predicted labels whose objects that match a true nucleus (IoU > 0.5) take that nucleus's true pixels.

    Parameters
    ----------
    labels, true : ndarray, shape (H, W), int (0 = background)

    Returns
    -------
    ndarray, shape (H, W), int32: unmatched objects as predicted, matched ones as their true nucleus
    """
    from nucleiseg_lib.metrics import iou_matrix
    labels, true = np.asarray(labels), np.asarray(true)
    t_ids, p_ids = (np.unique(x) for x in (true, labels))
    t_ids, p_ids = t_ids[t_ids != 0], p_ids[p_ids != 0]
    rows, cols = np.nonzero(iou_matrix(true, labels) > 0.5)    # IoU > 0.5: one-to-one
    out = labels.astype(np.int32, copy=True)
    out[np.isin(labels, p_ids[cols])] = 0
    for t, p in zip(t_ids[rows], p_ids[cols]):
        out[(true == t) & (out == 0)] = p
    return out


def shift_outlines(labels, step):
    """Each object grown (`step` = 1) by one pixel into the background next to it (a pixel touching two objects
    goes to the larger label), or shrunk (`step` = -1) by its pixels that have a 4-neighbour outside it.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int (0 = background)
    step : {1, -1}

    Returns
    -------
    ndarray, shape (H, W), int32
    """
    from scipy import ndimage as ndi
    labels = np.asarray(labels, np.int32)
    if step == 1:
        return np.where(labels == 0, ndi.grey_dilation(labels, size=3), labels).astype(np.int32)
    padded = np.pad(labels, 1, mode="edge")
    same = np.ones(labels.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        same &= padded[dy:dy + labels.shape[0], dx:dx + labels.shape[1]] == labels
    return np.where(same, labels, 0).astype(np.int32)


def blend_batch_norm(model, alpha):
    """`model` (unfused, eval mode) with each BatchNorm2d normalising by a blend of its running statistics and
    the batch's own: mean ``(1 - a) m_run + a m_x`` and the variance of that mixture (AdaBN for a = 1)."""
    import torch
    from torch import nn

    class Blend(nn.Module):
        def __init__(self, bn):
            super().__init__()
            self.bn = bn

        def forward(self, x):
            bn, xf = self.bn, x.float()
            m, v = xf.mean((0, 2, 3)), xf.var((0, 2, 3), unbiased=False)
            mu = (1 - alpha) * bn.running_mean + alpha * m
            var = (1 - alpha) * (bn.running_var + (bn.running_mean - mu) ** 2) + alpha * (v + (m - mu) ** 2)
            y = (xf - mu[:, None, None]) * torch.rsqrt(var[:, None, None] + bn.eps)
            return (y * bn.weight[:, None, None] + bn.bias[:, None, None]).to(x.dtype)

    todo = [(mod, name, child) for mod in model.modules() for name, child in mod.named_children()
            if isinstance(child, nn.BatchNorm2d)]
    for mod, name, child in todo:
        setattr(mod, name, Blend(child))
    return model.eval()


def score(samples, ids, kinds, labels_of):
    """Mean DSB overall and per kind, objects found / true per image."""
    from nucleiseg_lib.metrics import evaluate_image
    rows = []
    for s in ids:
        labels = labels_of(s)
        true = samples[s][1]
        rows.append(dict(kind=kinds[s], **evaluate_image(labels > 0, true > 0, labels, true)))

    def agg(rs):
        return dict(n=len(rs), dsb_score=round(float(np.mean([r["dsb_score"] for r in rs])), 4),
                    n_pred=round(float(np.mean([r["n_pred"] for r in rs])), 1),
                    n_true=round(float(np.mean([r["n_true"] for r in rs])), 1))
    return dict(overall=agg(rows), **{k: agg([r for r in rows if r["kind"] == k]) for k in KINDS
                                      if any(r["kind"] == k for r in rows)})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="amx-s0-size", help="the run folder runs/<name>")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--no-scales", action="store_true", help="skip the test-time scales (the slow part)")
    p.add_argument("--bn-alphas", type=float, nargs="*", default=[0.1, 0.3, 1.0],
                   help="shares of each image's own batch-norm statistics to try (none: skip)")
    a = p.parse_args()
    from nucleiseg_lib.data import SampleCache
    from nucleiseg_lib.data.stats import classify_modality
    from nucleiseg_lib.data.transforms import touching_border
    from nucleiseg_lib.inference import Predictor, settings_only
    from nucleiseg_lib.inference.postprocess import channel_names, remove_small
    pred = Predictor(REPO / "runs" / a.name / "best.pt")
    pp, split = pred.postprocess, pred.state["split"]
    parts = {part: sorted(split.get(part) or []) for part in ("val", "test")}
    ids = sorted(set(parts["val"]) | set(parts["test"]))
    samples = SampleCache(a.data, ids=ids, progress=False).load_all()
    kinds = {s: classify_modality(np.asarray(samples[s][0], np.float32)) for s in ids}
    t0 = time.time()
    probs = {s: pred.predict_proba(np.asarray(samples[s][0], np.float32)) for s in ids}
    t = pp["threshold"]
    groups = split.get("groups") or {}
    names = channel_names(pp, next(iter(probs.values())).shape[0])
    confidence = {}
    sure = [c for c in ("contour", "border") if c in names]
    found = {c: {} for c in sure}
    for part, part_ids in parts.items():
        for s in part_ids:
            mask = probs[s][0] > t
            if mask.sum() >= 50:
                key = f"{part}: {groups.get(s, kinds[s]) if part == 'test' else kinds[s]}"
                for c in sure:
                    found[c].setdefault(key, []).append(np.percentile(probs[s][names.index(c)][mask], (90, 99)))
    for channel in sure:
        cut = pp.get(f"{channel}_threshold")
        for k, v in sorted(found[channel].items()):
            row = confidence.setdefault(k, dict(images=len(v)))
            row.update({f"{channel}_p90": round(float(np.median([x[0] for x in v])), 2),
                        f"{channel}_p99": round(float(np.median([x[1] for x in v])), 2),
                        f"{channel}_p99_min": round(float(min(x[1] for x in v)), 2)})
            print(f"{k:34s} {channel} probability in the mask: p90 {row[f'{channel}_p90']:.2f}  p99 "
                  f"{row[f'{channel}_p99']:.2f}  (lowest p99 {row[f'{channel}_p99_min']:.2f}, chosen {channel} "
                  f"threshold {cut})")

    def chosen(prob, contour=None, border=None, **over):
        """Labels by the predictor's own post-processing, with another contour or border map where given
        (a border map is added as a channel of its own to a model without one)."""
        maps, have = list(prob), list(names)
        for name, new in (("contour", contour), ("border", border)):
            if new is not None:
                if name not in have:
                    maps.append(new), have.append(name)
                maps[have.index(name)] = new
        return pred.postprocess_proba(np.stack(maps), None, **over, channels=have)["labels"]

    chosen_labels = {}

    def chosen_of(s):
        """The chosen post-processing's labels of image `s` (computed once: three variants start from them)."""
        if s not in chosen_labels:
            chosen_labels[s] = chosen(probs[s])
        return chosen_labels[s]

    variants = [("validation-chosen post-processing", lambda pr, s: chosen_of(s))]
    for q in (99, 95):
        for c in (0.5, 0.7, 0.9):
            variants.append((f"contour over its p{q} in the mask, seeds under {c}",
                             lambda pr, s, q=q, c=c: chosen(pr, relative_contour(pr, t, q), contour_threshold=c)))
    for ts in (0.6, 0.7, 0.8, 0.9):
        variants.append((f"seeds where the nucleus probability is above {ts}",
                         lambda pr, s, ts=ts: chosen(pr, core_seeds_contour(pr, ts))))
    variants.append(("the true touching border given (an upper bound)",
                     lambda pr, s: chosen(pr, border=touching_border(samples[s][1]).astype(np.float32),
                                          border_threshold=0.5)))
    variants.append(("the true outline of each found nucleus given (an upper bound)",
                     lambda pr, s: true_outlines(chosen_of(s), samples[s][1])))
    for step, verb in ((1, "grown"), (-1, "shrunk")):
        variants.append((f"each object {verb} by 1 px",
                         lambda pr, s, step=step: remove_small(shift_outlines(chosen_of(s), step), 1)))
    for t2 in (0.6, 0.7):
        variants.append((f"each object cut back to nucleus probability above {t2}",
                         lambda pr, s, t2=t2: remove_small(chosen_of(s) * (pr[0] > t2), pp["min_size"])))
    if a.bn_alphas:
        from nucleiseg_lib.training.checkpoint import all_weights, build_model
        fused = pred.models
        for alpha in a.bn_alphas:
            pred.models = [blend_batch_norm(build_model({**pred.state, "model": w}, pred.path), alpha)
                           for w in all_weights(pred.state, pred.path)]
            adapted = {s: pred.predict_proba(np.asarray(samples[s][0], np.float32)) for s in ids}
            variants.append((f"batch-norm statistics {alpha:g} from the image",
                             lambda pr, s, adapted=adapted: chosen(adapted[s])))
        pred.models = fused
    if not a.no_scales:
        many = {s: scaled_maps(pred, np.asarray(samples[s][0], np.float32), SCALES) for s in ids}
        for scales in SCALE_SETS:
            variants.append((f"maps averaged over scales {', '.join(map(str, scales))}",
                             lambda pr, s, scales=scales: chosen(np.mean(
                                 [pr if k == 1.0 else many[s][k] for k in scales], 0))))
    out = dict(name=a.name, postprocess=settings_only(pp), contour_confidence=confidence, variants=[])
    for name, fn in variants:
        row = dict(name=name)
        for part, part_ids in parts.items():
            row[part] = score(samples, part_ids, kinds, lambda s, fn=fn: fn(probs[s], s))
        out["variants"].append(row)
        print(f"{name:52s} " + " | ".join(
            f"{part} {row[part]['overall']['dsb_score']:.3f} " + " ".join(
                f"{k} {row[part][k]['dsb_score']:.3f} ({row[part][k]['n_pred']:.0f}/{row[part][k]['n_true']:.0f})"
                for k in KINDS if k in row[part]) for part in parts), flush=True)
    out["seconds"] = round(time.time() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{a.name}_inference_probe.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
