"""The seed split (:func:`nucleiseg_lib.inference.postprocess.split_seeds`): as measured, and today's, on real maps.

    OMP_NUM_THREADS=1 python benchmarks/split_speed.py [--checkpoint pretrained] [--limit N]
        -> benchmarks/results/split_speed.json

For each real DSB2018 image (sorted ids; all 664 unless ``--limit``) the model's probability maps are computed
once; then the model's own post-processing (:meth:`Predictor.postprocess_proba`, the seed split included)
labels them twice: with :func:`split_seeds_reference` (the split as it was when its DSB scores were measured,
kept here unchanged) and with the library's :func:`split_seeds`. The label maps must be identical on every
image (the script exits 1 otherwise), so a faster split needs no new measurement of its scores. It reports the
post-processing seconds of both, summed over all images and per megapixel.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nucleiseg_lib.data import list_samples, read_image, sample_paths  # noqa: E402
from nucleiseg_lib.inference import Predictor  # noqa: E402
from nucleiseg_lib.inference import postprocess  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
OUT = REPO / "benchmarks" / "results" / "split_speed.json"


def split_seeds_reference(seeds, h, sigma=1.0, size_fraction=0.0):
    """:func:`split_seeds` as of commit efe8133, whose DSB scores the ablation table reports (do not edit).

    `size_fraction`, added to the library later, only sets `h` from the seeds' median radius, as the library does.
    """
    comps, n = ndimage.label(seeds)
    comps = comps.astype(np.int32, copy=False)
    if size_fraction > 0 and n:
        h = postprocess._median_radius(np.bincount(comps.ravel())[1:]) * size_fraction
    if h <= 0 or n == 0:
        return comps
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed
    out, next_label = np.zeros_like(comps), 1
    for i, box in enumerate(ndimage.find_objects(comps), start=1):
        own = np.pad(comps[box] == i, 2)
        dist = ndimage.distance_transform_edt(own)
        parts = None
        if own.sum() > 1.2 * np.pi * dist.max() ** 2:
            smooth = ndimage.gaussian_filter(dist, sigma) if sigma else dist
            peaks, k = ndimage.label(h_maxima(smooth, h).astype(bool) & own)
            if k > 1:
                parts = watershed(-smooth, peaks, mask=own)[2:-2, 2:-2]
        if parts is None:
            out[box][own[2:-2, 2:-2]] = next_label
            next_label += 1
        else:
            inside = parts > 0
            out[box][inside] = parts[inside] + next_label - 1
            next_label += int(parts.max())
    return out


def timed_labels(predictor, prob, split):
    """(labels, seconds) of the predictor's post-processing with `split` as the seed split."""
    library = postprocess.split_seeds
    postprocess.split_seeds = split
    try:
        t = time.perf_counter()
        labels = predictor.postprocess_proba(prob)["labels"]
        return labels, time.perf_counter() - t
    finally:
        postprocess.split_seeds = library


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--checkpoint", default="pretrained")
    ap.add_argument("--limit", type=int, default=0, help="the first N sorted images only (0: all)")
    ap.add_argument("--json", default=str(OUT))
    a = ap.parse_args(argv)
    predictor = Predictor(a.checkpoint)
    settings = {k: v for k, v in predictor.postprocess.items() if k not in postprocess.SWEEP_KEYS}
    ids = list_samples(a.data)[:a.limit or None]
    seconds = {"reference": 0.0, "library": 0.0}
    megapixels, differ, objects = 0.0, [], 0
    for n, sid in enumerate(ids, 1):
        prob = predictor.predict_proba(read_image(sample_paths(a.data, sid, need_masks=False)[0]))
        ref, t_ref = timed_labels(predictor, prob, split_seeds_reference)
        new, t_new = timed_labels(predictor, prob, postprocess.split_seeds)
        seconds["reference"] += t_ref
        seconds["library"] += t_new
        megapixels += prob.shape[1] * prob.shape[2] / 1e6
        objects += int(ref.max())
        if not np.array_equal(ref, new):
            differ.append(sid)
        if n % 50 == 0:
            print(f"{n}/{len(ids)} images, {len(differ)} differ", flush=True)
    result = dict(checkpoint=a.checkpoint, postprocess=settings, images=len(ids), megapixels=round(megapixels, 2),
                  objects=objects, identical=len(ids) - len(differ), differ=differ,
                  postprocess_seconds={k: round(v, 2) for k, v in seconds.items()},
                  postprocess_seconds_per_megapixel={k: round(v / megapixels, 3) for k, v in seconds.items()})
    Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
