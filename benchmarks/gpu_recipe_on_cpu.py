"""CPU evidence for the gpu recipe when no GPU is at hand.

    python benchmarks/gpu_recipe_on_cpu.py [--steps 12] [--data ../shared/data/dsb2018/stage1_train]

Trains the gpu recipe (the original U-Net at base 64, real-data crops with augmentation) for a few steps on
this CPU and prints the loss per step, so the recipe is seen to learn; counts the FLOPs of one training step
(torch's FlopCounterMode) and turns them into an expected GPU time per epoch and per run, for an assumed
sustained throughput (default: 25 TFLOP/s, a conservative figure for fp16 mixed precision on an A100-class
GPU; a Colab T4 sustains roughly a quarter of that). The expected times are estimates, not measurements.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nucleiseg_lib.data import SampleCache, list_samples, split_ids  # noqa: E402
from nucleiseg_lib.data.dataset import NucleiDataset  # noqa: E402
from nucleiseg_lib.model import UNet, count_parameters  # noqa: E402
from nucleiseg_lib.training import get_recipe, segmentation_loss  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018" / "stage1_train"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--tflops", type=float, default=25.0, help="assumed sustained GPU throughput")
    p.add_argument("--json", default="benchmarks/results/gpu_recipe_on_cpu.json")
    a = p.parse_args()
    cfg = get_recipe("gpu")
    ids = list_samples(a.data)
    train_ids, _ = split_ids(ids, cfg.val_fraction, cfg.seed)
    subset = train_ids[: cfg.batch_size * 4]
    samples = SampleCache(a.data, ids=subset, progress=False).load_all()
    ds = NucleiDataset(samples, subset, mode=cfg.mode, size=cfg.size, augment=False, targets=cfg.targets,
                       seed=cfg.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=False)
    batches = list(loader)
    torch.manual_seed(cfg.seed)
    model = UNet(out_channels=len(cfg.targets), base=cfg.base, batch_norm=cfg.batch_norm)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x0, y0 = batches[0]
    with FlopCounterMode(display=False) as fc:
        segmentation_loss(model(x0), y0, cfg.loss).backward()
    opt.zero_grad()
    flops_step = fc.get_total_flops()
    losses, t0 = [], time.perf_counter()
    for step in range(a.steps):  # one batch seen repeatedly: the loss must fall (a recipe that cannot fit
        x, y = batches[0]          # one batch will not fit the data set)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        loss = segmentation_loss(out, y, cfg.loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 4))
        print(f"step {step + 1:3d}  loss {loss.item():.4f}", flush=True)
    cpu_s = (time.perf_counter() - t0) / a.steps
    steps_per_epoch = len(train_ids) * cfg.repeats // cfg.batch_size
    gpu_step_s = flops_step / (a.tflops * 1e12)
    res = dict(params=count_parameters(model), batch_size=cfg.batch_size, crop=cfg.size, losses=losses,
               cpu_seconds_per_step_bf16=round(cpu_s, 2), flops_per_step=flops_step,
               steps_per_epoch=steps_per_epoch, epochs=cfg.epochs, assumed_tflops=a.tflops,
               expected_gpu_seconds_per_epoch=round(gpu_step_s * steps_per_epoch, 1),
               expected_gpu_minutes_per_run=round(gpu_step_s * steps_per_epoch * cfg.epochs / 60, 1))
    print(json.dumps(res, indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
