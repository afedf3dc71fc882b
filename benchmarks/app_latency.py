"""Upload-to-mask time of the notebook 06 app for a 1024x1024 image, through the app's own code path.

    python benchmarks/app_latency.py [--checkpoint runs/cpu/best.pt] [--image IMAGE] [--repeats 3] [--json OUT]

What is timed is what the kernel does when a user uploads a file in Voila or Jupyter: the
``FileUpload`` widget's value is set (as the browser sets it) and the app's callback runs to
its end: decoding, the U-Net prediction, thresholding and labelling, the measurements, the
three PNGs shown and the download zip. A slider move (re-threshold only) is timed too.
The browser's share (sending the file, drawing the images) is measured by
``tests/test_app_browser.py``, which writes ``app_timing.json`` beside its screenshots.

Defaults: the course's checkpoint (``runs/<profile>/best.pt``) when there is one, else a U-Net
of the cpu recipe's architecture with untrained weights (the time depends on the
architecture, not on the weights; said in the output); a 1024x1024 DSB2018 image from
``../shared`` when there is one, else a synthetic 1024x1024 image.
"""

import argparse
import datetime
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"


def default_checkpoint():
    """(path, description): the course's best.pt, else an untrained U-Net of the cpu recipe."""
    from nucleiseg_lib.app import resolve_run_dir
    run = resolve_run_dir("auto", "auto", log=lambda *a: None)
    if (run / "best.pt").is_file():
        return run / "best.pt", f"the course's checkpoint {run / 'best.pt'}"
    import torch  # noqa: F401
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training import get_recipe
    from nucleiseg_lib.training.checkpoint import save_checkpoint
    cfg = get_recipe("cpu")
    model = UNet(in_channels=3, out_channels=len(cfg.targets), base=cfg.base, batch_norm=cfg.batch_norm).eval()
    path = Path(tempfile.mkdtemp(prefix="app-latency-")) / "untrained.pt"
    save_checkpoint(dict(model=model.state_dict(), model_config=model.config, config=cfg.to_dict(),
                         postprocess=None), path)
    return path, f"an UNTRAINED U-Net of the cpu recipe (base {cfg.base}; timing only), no {run / 'best.pt'}"


def default_image(size=1024):
    """(png bytes, description): a DSB2018 image of size x size, else a synthetic one."""
    from PIL import Image
    if SHARED.is_dir():
        for sample in sorted(SHARED.iterdir()):
            for p in (sample / "images").glob("*.png"):
                with Image.open(p) as im:
                    if im.size == (size, size):
                        return p.read_bytes(), f"DSB2018 {p.name} ({size}x{size})"
    from nucleiseg_lib.data.synth import make_synthetic_sample
    image, _ = make_synthetic_sample(np.random.default_rng(0), size=(size, size), style="fluorescence")
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG")
    return buf.getvalue(), f"synthetic {size}x{size} (no DSB2018 image of that size in {SHARED})"


def upload_value(name, content):
    """A ``FileUpload.value`` as ipywidgets 8 receives it from the browser."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (dict(name=name, type="image/png", size=len(content), content=memoryview(content), last_modified=now),)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="default: runs/<profile>/best.pt, else an untrained cpu-recipe U-Net")
    ap.add_argument("--image", help="default: a 1024x1024 DSB2018 image, else a synthetic one")
    ap.add_argument("--size", type=int, default=1024, help="side of the default image (default 1024)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the numbers here")
    a = ap.parse_args(argv)

    import torch
    from nucleiseg_lib.app import SegmentApp
    from nucleiseg_lib.inference import Predictor

    ckpt, ckpt_note = (Path(a.checkpoint), a.checkpoint) if a.checkpoint else default_checkpoint()
    if a.image:
        content, image_note = Path(a.image).read_bytes(), a.image
    else:
        content, image_note = default_image(a.size)
    app = SegmentApp(Predictor(ckpt, device="cpu"))
    ui = app.widget and app._ui
    name = "benchmark.png"

    rows = []
    for i in range(a.repeats):
        t0 = time.perf_counter()
        ui["upload"].value = upload_value(name, content)   # the app's callback runs here, to its end
        total = time.perf_counter() - t0
        res = app.result
        if res is None or res.upload.name != name:
            raise SystemExit(f"the app did not segment the image: {app.messages[-1]}")
        up = res.upload
        t1 = time.perf_counter()
        ui["slider"].value = round(res.threshold + (0.05 if res.threshold < 0.5 else -0.05), 2)
        slider = time.perf_counter() - t1
        ui["rule"].value = "validation"
        rows.append(dict(total=total, decode=up.seconds["decode"], predict=up.seconds["predict"],
                         threshold_measure=res.seconds,
                         show_and_zip=total - up.seconds["decode"] - up.seconds["predict"] - res.seconds,
                         slider=slider, count=res.stats["count"]))

    h, w = app.result.upload.shape
    print(f"app latency, {w}x{h}: {image_note}")
    print(f"model: {ckpt_note}; {app.model_summary()}")
    print(f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    keys = ["total", "decode", "predict", "threshold_measure", "show_and_zip", "slider"]
    print(f"{'run':>5}  " + "  ".join(f"{k:>17}" for k in keys) + "  nuclei")
    for i, r in enumerate(rows):
        print(f"{i + 1:>5}  " + "  ".join(f"{r[k]:>16.3f}s" for k in keys) + f"  {r['count']:>6}")
    med = {k: statistics.median(r[k] for r in rows) for k in keys}
    print(f"{'median':>6} " + "  ".join(f"{med[k]:>16.3f}s" for k in keys))
    print(f"\nupload to mask (kernel side), {w}x{h}: median {med['total']:.2f} s over {len(rows)} uploads "
          f"(first {rows[0]['total']:.2f} s); a slider move: {med['slider']:.3f} s")
    if a.json:
        out = dict(image=image_note, width=w, height=h, checkpoint=str(ckpt), model=ckpt_note,
                   threads=torch.get_num_threads(), runs=rows, median=med)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
