"""How many training crops are padded, and how many nuclei the padding shows that its labels call background.

    python benchmarks/padded_crops.py [--run runs/cpu-ema] [--epochs 1]   -> benchmarks/results/padded_crops.json

A crop's window is ``size / s`` pixels (``s`` the scale drawn for it); where the window is larger than its
image, :func:`nucleiseg_lib.data.transforms.random_crop` pads the image by reflection. Until this fix the label
map is padded with background (``pad_labels="background"``, the recipes' choice: it measured better than
labelling them, see the README), so the mirrored nuclei the crop shows are labelled "not a nucleus". This
script draws the training crops of a run's recipe as training does (its split, seed and settings, stored in the
checkpoint) and counts, per padded crop, the nucleus pixels of the padded window (labels padded by reflection)
and how many of them the background padding calls background.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nucleiseg_lib.data import SampleCache, transforms  # noqa: E402
from nucleiseg_lib.data.dataset import NucleiDataset  # noqa: E402
from nucleiseg_lib.training import TrainConfig, load_checkpoint  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
OUT = REPO / "benchmarks" / "results" / "padded_crops.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(REPO / "runs" / "cpu-ema"), help="a run folder with best.pt")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args(argv)
    state = load_checkpoint(Path(a.run) / "best.pt")
    cfg = TrainConfig.from_dict(state["config"])
    train = sorted(state["split"]["train"])
    samples = SampleCache(a.data, ids=train, progress=False).load_all()
    ds = NucleiDataset(samples, train, mode=cfg.mode, size=cfg.size, augment=True, targets=cfg.targets,
                       seed=cfg.seed, scale=cfg.scale, repeats=cfg.repeats, input=cfg.input,
                       contour_width=cfg.contour_width, colour=cfg.colour, paste=0, norm=cfg.norm,
                       pad_labels="reflect")
    padded = []
    reflect = transforms.reflect_labels

    def counting(labels, pad, copies=False):  # what random_crop pads, labelled by reflection and with background
        new = reflect(labels, pad, copies)
        old = np.pad(np.asarray(labels), pad, mode="constant")
        padded.append(dict(nucleus_pixels=int((new > 0).sum()), unlabelled=int(((new > 0) & (old == 0)).sum())))
        return new

    transforms.reflect_labels = counting
    try:
        crops = 0
        for epoch in range(a.epochs):
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                ds[i]
                crops += 1
    finally:
        transforms.reflect_labels = reflect
    shown = sum(p["nucleus_pixels"] for p in padded)
    lost = sum(p["unlabelled"] for p in padded)
    out = dict(run=a.run, epochs=a.epochs, scale=list(cfg.scale), size=cfg.size, crops=crops, padded_crops=len(padded),
               share_padded=round(len(padded) / max(crops, 1), 3),
               nucleus_pixels_of_padded_windows_labelled_background=round(lost / max(shown, 1), 3),
               median_share_per_padded_crop=round(float(np.median(
                   [p["unlabelled"] / max(p["nucleus_pixels"], 1) for p in padded])) if padded else 0.0, 3))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
