"""Speed benchmarks on this machine (issues 2 and 4). Prints a table and writes JSON.

    python benchmarks/speed.py [--data ../shared/data/dsb2018/stage1_train] [--json benchmarks/results/speed.json]

1. Parameter count and seconds per training step (batch 4, 256x256) at base 16, 32, 64 (fp32, and bf16 autocast).
2. One data epoch over the real stage1_train (batch 4, 256x256 resize as the original) with the mask cache versus
   re-reading and merging the PNGs in every __getitem__ (as the original did), as a ratio.
3. Optimizer steps fed by the cached data pipeline versus the same steps on tensors already in memory (cpu recipe).
4. Prediction of one 1024x1024 image with the cpu recipe's model.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nucleiseg_lib.data import SampleCache, list_samples, split_ids  # noqa: E402
from nucleiseg_lib.data.dataset import NucleiDataset, PngSamples  # noqa: E402
from nucleiseg_lib.model import UNet, count_parameters  # noqa: E402
from nucleiseg_lib.training import get_recipe, segmentation_loss  # noqa: E402
from nucleiseg_lib.device import autocast_for as _autocast  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "stage1_train"


def time_steps(model, batches, amp="off", warmup=2, channels_last=False):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    times = []
    for i, (x, y) in enumerate(batches):
        t = time.perf_counter()
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(torch.device("cpu"), amp):
            out = model(x)
        loss = segmentation_loss(out, y, "bce+dice")
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def step_benchmark(steps=6):
    rows = []
    x, y = torch.randn(4, 3, 256, 256), (torch.rand(4, 1, 256, 256) > 0.8).float()
    for base in (16, 32, 64):
        for amp in ("off", "bf16"):
            torch.manual_seed(0)
            model = UNet(base=base)
            s = time_steps(model, [(x, y)] * steps, amp)
            rows.append(dict(base=base, params=count_parameters(model), amp=amp, seconds_per_step=round(s, 3)))
            print(f"base {base:3d}  {rows[-1]['params'] / 1e6:5.2f}M params  {amp:4s}  {s:.3f} s/step", flush=True)
    return rows


def options_benchmark(steps=8):
    """The cpu recipe's model under each speed option: precision, memory format, compile, threads."""
    cfg = get_recipe("cpu")
    x, y = torch.randn(cfg.batch_size, 3, cfg.size, cfg.size), (torch.rand(cfg.batch_size, 2, cfg.size, cfg.size) > 0.8).float()
    rows = []
    threads = torch.get_num_threads()
    for name, amp, cl, comp, nthreads in (("fp32", "off", False, False, threads),
                                          ("bf16 autocast", "bf16", False, False, threads),
                                          ("bf16 + channels_last", "bf16", True, False, threads),
                                          ("bf16 + torch.compile", "bf16", False, True, threads),
                                          ("bf16, 1 thread", "bf16", False, False, 1)):
        torch.set_num_threads(nthreads)
        torch.manual_seed(0)
        model = UNet(out_channels=2, base=cfg.base, batch_norm=True)
        if comp:
            model = torch.compile(model)
        s = time_steps(model, [(x, y)] * steps, amp, warmup=3, channels_last=cl)
        rows.append(dict(option=name, seconds_per_step=round(s, 3)))
        print(f"cpu recipe model, {name:24s} {s:.3f} s/step", flush=True)
    torch.set_num_threads(threads)
    return rows


def data_epoch(samples, ids, size=256, batch_size=4, workers=0):
    ds = NucleiDataset(samples, ids, mode="resize", size=size, targets=("mask",))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    t = time.perf_counter()
    n = sum(1 for _ in loader)
    return time.perf_counter() - t, n


def pipeline_benchmark(samples, ids, steps=30):
    """Training steps fed by the DataLoader vs on tensors already in memory (the cpu recipe)."""
    cfg = get_recipe("cpu")
    ds = NucleiDataset(samples, ids, mode=cfg.mode, size=cfg.size, augment=True, targets=cfg.targets,
                       scale=cfg.scale)
    rows = {}
    for workers in (0, 1):
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                             generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        model = UNet(out_channels=2, base=cfg.base, batch_norm=True).to(memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        it = iter(loader)
        batches = [next(it) for _ in range(steps)]  # materialised: the in-memory reference uses these
        t = time.perf_counter()
        it = iter(loader)
        for _ in range(steps):
            x, y = next(it)
            with _autocast(torch.device("cpu"), cfg.amp):
                out = model(x.contiguous(memory_format=fmt))
            loss = segmentation_loss(out, y, cfg.loss)
            opt.zero_grad(); loss.backward(); opt.step()
        loader_s = time.perf_counter() - t
        t = time.perf_counter()
        for x, y in batches:
            with _autocast(torch.device("cpu"), cfg.amp):
                out = model(x.contiguous(memory_format=fmt))
            loss = segmentation_loss(out, y, cfg.loss)
            opt.zero_grad(); loss.backward(); opt.step()
        memory_s = time.perf_counter() - t
        rows[f"workers={workers}"] = dict(loader_s=round(loader_s, 2), in_memory_s=round(memory_s, 2),
                                          ratio=round(loader_s / memory_s, 3))
        print(f"{steps} steps, num_workers={workers}: loader {loader_s:.1f} s, in-memory tensors {memory_s:.1f} s, "
              f"ratio {loader_s / memory_s:.3f}", flush=True)
    return rows


def predict_benchmark(checkpoint=None, repeats=3):
    from nucleiseg_lib.inference import Predictor
    image = np.random.default_rng(0).random((1024, 1024, 3)).astype(np.float32)
    if checkpoint and Path(checkpoint).is_file():
        pred = Predictor(checkpoint)
        fn = pred.segment
        what = str(checkpoint)
    else:
        model = UNet(out_channels=2, base=get_recipe("cpu").base, batch_norm=True).eval()
        from nucleiseg_lib.data.transforms import normalize_image
        def fn(img):
            with torch.no_grad():
                return model(torch.from_numpy(normalize_image(img))[None])
        what = "untrained cpu-recipe U-Net"
    fn(image)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(image)
        times.append(time.perf_counter() - t)
    s = float(np.median(times))
    print(f"predict 1024x1024 ({what}): {s:.2f} s (median of {repeats})", flush=True)
    return dict(model=what, seconds=round(s, 3))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--json", default="benchmarks/results/speed.json")
    p.add_argument("--checkpoint", default="runs/cpu/best.pt")
    p.add_argument("--skip", nargs="*", default=[], choices=["steps", "options", "epoch", "pipeline", "predict"])
    a = p.parse_args()
    old = json.loads(Path(a.json).read_text()) if Path(a.json).is_file() else {}
    res = old | dict(machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                            torch=torch.__version__, threads=torch.get_num_threads()))  # skipped parts are kept
    if "steps" not in a.skip:
        res["steps"] = step_benchmark()
    if "options" not in a.skip:
        res["options"] = options_benchmark()
    if {"epoch", "pipeline"} - set(a.skip):
        ids = list_samples(a.data)
        train_ids, _ = split_ids(ids, 0.1, 0)
        cached = SampleCache(a.data, progress=False).load_all(train_ids)
        if "epoch" not in a.skip:
            t_cache, n = data_epoch(cached, train_ids)
            print(f"data epoch, cache: {t_cache:.1f} s ({n} batches)", flush=True)
            t_png, _ = data_epoch(PngSamples(a.data), train_ids)
            print(f"data epoch, re-reading PNGs: {t_png:.1f} s -> cache is {t_png / t_cache:.1f}x faster", flush=True)
            res["data_epoch"] = dict(images=len(train_ids), cache_s=round(t_cache, 2), png_s=round(t_png, 2),
                                     ratio=round(t_png / t_cache, 1))
        if "pipeline" not in a.skip:
            res["pipeline"] = pipeline_benchmark(cached, train_ids)
    if "predict" not in a.skip:
        res["predict_1024"] = predict_benchmark(a.checkpoint)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
