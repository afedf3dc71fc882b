"""Speed of the paths issue 9 refactors, before and after (medians of several repeats).

    OMP_NUM_THREADS=1 python benchmarks/refactor_speed.py [--data ../shared/data/dsb2018/stage1_train]
        [--repeats 5] [--cache-images 60] [--json benchmarks/results/refactor_speed.json]

1. ``predict``: :meth:`Predictor.segment` (U-Net + threshold + labels) of the 1388x1040 and of a
   1024x1024 real image, in process, with an untrained cpu-sized U-Net (base 16, batch norm,
   2 outputs; time depends on the architecture, not on the weights); and
   :meth:`Predictor.postprocess_proba` alone on the same probability maps.
2. ``cache``: building the mask cache (:class:`SampleCache`) of the first ``--cache-images``
   real images into a new temporary cache folder each repeat.
3. ``postprocess``: :func:`label_instances` ("cc" and "watershed") on a large label map
   (a 696x520 image with 313 nuclei tiled 2x2: 1392x1040, ~1250 nuclei); the app's
   per-nucleus measurements and outline picture on that label map.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
BIG = "c901794d1a421d52e5734500c0a2a8ca84651fb93b19cec2f411855e70cae339"       # 1388x1040
SQUARE = "08275a5b1c2dfcd739e8c4888a5ee2d29f83eccfa75185404ced1dc0866ea992"    # 1024x1024
CROWDED = "07fb37aafa6626608af90c1e18f6a743f29b6b233d2e427dcd1102df6a916cf5"   # 696x520, 313 nuclei


def median_seconds(fn, repeats, warmup=1):
    """Median wall time of ``fn()`` over `repeats` calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)


def untrained_predictor(folder):
    """A :class:`Predictor` on an untrained cpu-sized U-Net (base 16, batch norm, 2 outputs)."""
    from nucleiseg_lib.inference import Predictor
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training.checkpoint import save_checkpoint
    torch.manual_seed(0)
    model = UNet(in_channels=3, out_channels=2, base=16, batch_norm=True).eval()
    path = Path(folder) / "untrained.pt"
    save_checkpoint(dict(model=model.state_dict(), model_config=model.config, config={}, postprocess=None), path)
    return Predictor(path, device="cpu")


def predict_benchmark(data, repeats):
    from nucleiseg_lib.data import read_image
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        pred = untrained_predictor(tmp)
        for sid in (BIG, SQUARE):
            image = read_image(Path(data) / sid / "images" / f"{sid}.png")
            prob = pred.predict_proba(image)
            key = f"{image.shape[1]}x{image.shape[0]}"
            rows[f"segment_{key}"] = median_seconds(lambda: pred.segment(image), repeats)
            rows[f"postprocess_{key}"] = median_seconds(lambda: pred.postprocess_proba(prob), repeats)
            print(f"predict {key}: segment {rows[f'segment_{key}']:.3f} s, postprocess only "
                  f"{rows[f'postprocess_{key}']:.4f} s", flush=True)
    return rows


def cache_benchmark(data, repeats, n_images):
    from nucleiseg_lib.data import SampleCache, list_samples
    ids = list_samples(data)[:n_images]

    def build():
        with tempfile.TemporaryDirectory() as tmp:
            SampleCache(data, cache_dir=tmp, ids=ids, progress=False)
    s = median_seconds(build, repeats, warmup=0)
    print(f"cache build, {len(ids)} images: {s:.2f} s", flush=True)
    return {f"cache_build_{len(ids)}": s}


def large_label_map(data):
    """(image 1040x1392x3, labels 1040x1392, prob 2x1040x1392) tiled 2x2 from a crowded real sample."""
    from nucleiseg_lib.data import read_sample
    from nucleiseg_lib.data.transforms import instance_contours
    image, labels = read_sample(data, CROWDED)
    n = int(labels.max())
    tiles = [labels.astype(np.int32) + np.where(labels > 0, k * n, 0) for k in range(4)]
    big = np.block([[tiles[0], tiles[1]], [tiles[2], tiles[3]]]).astype(np.int32)
    img = np.block([[image, image], [image, image]]) if image.ndim == 2 else np.concatenate(
        [np.concatenate([image, image], 1), np.concatenate([image, image], 1)], 0)
    contour = instance_contours(big).astype(np.float32)
    fg = (big > 0).astype(np.float32) * 0.9 + 0.05
    return img.astype(np.float32), big, np.stack([fg, contour])


def postprocess_benchmark(data, repeats):
    from nucleiseg_lib.inference import label_instances
    image, labels, prob = large_label_map(data)
    key = f"{labels.shape[1]}x{labels.shape[0]}"
    rows = {}
    rows[f"label_cc_{key}"] = median_seconds(lambda: label_instances(prob[0], 0.5, None, "cc", 8), repeats)
    rows[f"label_watershed_{key}"] = median_seconds(
        lambda: label_instances(prob[0], 0.5, prob[1], "watershed", 8, 0.5), repeats)
    try:
        from nucleiseg_lib.inference import measure_nuclei
    except ImportError:
        from nucleiseg_lib.app import measure_nuclei
    rows[f"measure_{key}"] = median_seconds(lambda: measure_nuclei(labels, image, prob[0]), repeats)
    try:
        from nucleiseg_lib.viz import outline_rgb, to_uint8
    except ImportError:
        from nucleiseg_lib.app import outline_rgb, to_uint8
    u8 = to_uint8(image)
    rows[f"outline_{key}"] = median_seconds(lambda: outline_rgb(u8, labels, 1), repeats)
    print(f"large label map {key} ({int(labels.max())} nuclei): " +
          ", ".join(f"{k} {v:.4f} s" for k, v in rows.items()), flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cache-images", type=int, default=60)
    p.add_argument("--json", default="benchmarks/results/refactor_speed.json")
    p.add_argument("--skip", nargs="*", default=[], choices=["predict", "cache", "postprocess"])
    a = p.parse_args()
    res = dict(threads=torch.get_num_threads(), omp=os.environ.get("OMP_NUM_THREADS"), repeats=a.repeats,
               load=os.getloadavg()[0])
    if "predict" not in a.skip:
        res.update(predict_benchmark(a.data, a.repeats))
    if "postprocess" not in a.skip:
        res.update(postprocess_benchmark(a.data, a.repeats))
    if "cache" not in a.skip:
        res.update(cache_benchmark(a.data, a.repeats, a.cache_images))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
