"""Prediction speed of a trained model on this machine, in process, post-processing included.

    python benchmarks/predict_speed.py [--checkpoint pretrained] [--repeats 3]
        -> benchmarks/results/predict_speed.json

Segments real DSB2018 images of several sizes with :meth:`Predictor.segment` (probability maps, threshold,
instances with the validation-chosen method) and reports seconds per megapixel, the median over images of
(median over repeats), with flip TTA off (what ``predict`` does by default) and on, and with the small-nuclei zoom.
It also says what a class of 10 students waits on one 2-core Voila server when all upload a 1-megapixel image at
once: the kernels share the cores, so the last result comes after about 10 x the single time (an estimate from the
measured time, not a load test).

It also says how far the target of 0.5 s/MP is from what the model costs: the network's floating-point operations
per megapixel (counted by :class:`torch.utils.flop_counter.FlopCounterMode`), the rate this CPU reaches on a
large matrix product in the precision the predictor computes in (a practical ceiling for convolutions), and the
time those two give as a floor, for the model and for thinner ones (``base``: the channels of the first level),
and the forward time of the model as trained, with its batch normalisations folded into the convolutions, and as
:class:`Predictor` runs it (also each ReLU inside its convolution), in the predictor's precision.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nucleiseg_lib.data import list_samples, read_image, sample_paths  # noqa: E402
from nucleiseg_lib.inference import Predictor  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"


def pick_images(data, sizes=((1388, 1040), (1024, 1024), (696, 520), (256, 256))):
    """One image of each size (the first id of that size, sorted), as float RGB arrays."""
    want, found = set(sizes), {}
    from PIL import Image
    for sid in list_samples(data):
        path = sample_paths(data, sid, need_masks=False)[0]
        size = Image.open(path).size
        if size in want and size not in found:
            found[size] = (sid, read_image(path))
        if len(found) == len(want):
            break
    return [found[s] for s in sizes if s in found]


def prediction_precision():
    """The precision :class:`Predictor` computes in on this CPU: bf16 where the CPU computes it natively, else fp32."""
    from nucleiseg_lib.device import precision_name
    return precision_name(torch.device("cpu"), "auto")


def time_segment(pred, image, repeats):
    pred.segment(image)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        pred.segment(image)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def model_flops_per_megapixel(base, in_channels=3, out_channels=2, side=256):
    """Floating-point operations of one forward pass of the cpu recipe's U-Net, per megapixel of input."""
    from torch.utils.flop_counter import FlopCounterMode
    from nucleiseg_lib.training import get_recipe, make_model
    model = make_model(get_recipe("cpu", base=base)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, in_channels, side, side))
    return counter.get_total_flops() / (side * side) * 1e6


def matmul_gflops(n=2048, repeats=5, dtype=torch.float32):
    """GFLOP/s of an n x n matrix product in `dtype` on this CPU (best of `repeats`)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def compute_floor(pred, forward_seconds_per_mp):
    """The model's cost against this CPU's matrix-product rate: why the s/MP cannot drop much by tuning."""
    precision = prediction_precision()
    rate = matmul_gflops(dtype=getattr(torch, precision))
    base = int(pred.model.config.get("base", 16))
    rows = []
    for b in sorted({base, 8, 12}):
        flops = model_flops_per_megapixel(b)
        rows.append(dict(base=b, gflop_per_megapixel=round(flops / 1e9, 1),
                         floor_seconds_per_megapixel=round(flops / 1e9 / rate, 3)))
    flops = next(r for r in rows if r["base"] == base)["gflop_per_megapixel"]
    return dict(matmul_gflops=round(rate, 1), matmul_precision=precision, model_base=base,
                forward_gflops_reached=round(flops / forward_seconds_per_mp, 1), by_base=rows)


def fusion_gain(pred, repeats, side=1024):
    """Forward seconds per megapixel of the checkpoint's model as trained, with its batch normalisations folded
    into the convolutions (:func:`nucleiseg_lib.model.fuse_batch_norm`), and as the predictor runs it (also each
    ReLU applied inside its convolution, :func:`nucleiseg_lib.model.fuse_relu`, where this PyTorch can), on one
    side x side input in the predictor's precision, timed alternately (median of `repeats` each), and the largest
    change of a probability that each fusion makes."""
    from nucleiseg_lib.device import autocast_for
    from nucleiseg_lib.model import fuse_batch_norm
    from nucleiseg_lib.training.checkpoint import build_model
    x = torch.randn(1, pred.model.config["in_channels"], side, side).contiguous(memory_format=torch.channels_last)
    trained = build_model(pred.state).to(memory_format=torch.channels_last)
    models = {"as trained": trained, "batch norm folded": fuse_batch_norm(trained), "as predicted": pred.model}
    times = {name: [] for name in models}
    with torch.no_grad(), autocast_for(torch.device("cpu"), "auto"):
        maps = {name: torch.sigmoid(model(x).float()) for name, model in models.items()}
        for _ in range(repeats):  # alternately, so that a slow spell of a shared machine hits both
            for name, model in models.items():
                times[name].append(_timed(lambda: model(x)))
    out = {name: round(float(np.median(t)) / (side * side / 1e6), 3) for name, t in times.items()}
    # what each fusion changes: the largest change of a probability, against the form before it
    names = list(models)
    out["max_probability_change"] = {b: float((maps[b] - maps[a]).abs().max()) for a, b in zip(names, names[1:])}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="pretrained", help="a best.pt, or pretrained (the shipped model)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "predict_speed.json"))
    a = p.parse_args()
    pred = Predictor(a.checkpoint, device="cpu")
    images = pick_images(a.data)
    rows = []
    area = pred.postprocess.get("train_median_area")
    for mode in ("tta off", "tta on", "zoom small nuclei"):
        pred.tta = mode == "tta on"
        pred.postprocess = {**pred.postprocess, "target_area": area if mode == "zoom small nuclei" else None}
        for sid, image in images:
            mp = image.shape[0] * image.shape[1] / 1e6
            s = time_segment(pred, image, a.repeats)
            rows.append(dict(mode=mode, id=sid, size=f"{image.shape[1]}x{image.shape[0]}", seconds=round(s, 3),
                             seconds_per_megapixel=round(s / mp, 3)))
            print(f"{mode:18s} {rows[-1]['size']:>10s}  {s:7.3f} s  {s / mp:6.3f} s/MP", flush=True)
    summary = {m: round(float(np.median([r["seconds_per_megapixel"] for r in rows if r["mode"] == m])), 3)
               for m in ("tta off", "tta on", "zoom small nuclei")}
    one_mp = [r for r in rows if r["mode"] == "tta off" and r["size"] == "1024x1024"]
    out = dict(checkpoint=a.checkpoint, machine=dict(cpu_count=os.cpu_count(), processor=platform.processor(),
                                                     torch=torch.__version__, threads=torch.get_num_threads(),
                                                     capability=torch.backends.cpu.get_cpu_capability(),
                                                     precision=prediction_precision()),
               median_seconds_per_megapixel=summary, rows=rows)
    if one_mp:
        out["class_of_10_last_result_seconds_estimate"] = round(10 * one_mp[0]["seconds"], 1)
    # forward alone: TTA on runs 4 forward passes and one post-processing, TTA off one of each
    forward = (summary["tta on"] - summary["tta off"]) / 3
    out["forward_seconds_per_megapixel"] = round(forward, 3)
    out["compute_floor"] = compute_floor(pred, forward)
    out["forward_seconds_per_megapixel_fusion"] = fusion_gain(pred, max(3, a.repeats))
    print(json.dumps(out["forward_seconds_per_megapixel_fusion"]))
    print(json.dumps(out["compute_floor"]))
    Path(a.json).write_text(json.dumps(out, indent=2))
    print(json.dumps(dict(median_seconds_per_megapixel=summary,
                          class_of_10=out.get("class_of_10_last_result_seconds_estimate"))))


if __name__ == "__main__":
    main()
