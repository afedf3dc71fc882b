"""Train and evaluate the recipes on real DSB2018; write JSON; render the ablation table from it.

    python benchmarks/recipes.py train --recipe cpu [--epochs N] [--data DIR]    # -> runs/<recipe>, wall time
    python benchmarks/recipes.py evaluate --recipe cpu                           # -> benchmarks/results/<recipe>.json
    python benchmarks/recipes.py table          # -> results table in README.md, copies in nucleiseg_lib/results

`evaluate` scores the run's best.pt on its validation split (images it never trained on) under each
post-processing variant: the original max/10 rule, a fixed 0.5, Otsu, the validation-chosen threshold, with
connected components or watershed on the predicted contours, and with flip test-time augmentation.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
RESULTS = REPO / "benchmarks" / "results"
METRICS = ("dsb_score", "ap50", "iou", "dice", "pixel_accuracy")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def holdout_ids(data, sizes):
    """Ids of the images whose WxH is in `sizes`: whole experiments held out of training."""
    from PIL import Image
    from nucleiseg_lib.data import list_samples, sample_paths
    keep = []
    for sid in list_samples(data):
        w, h = Image.open(sample_paths(data, sid)[0]).size
        if f"{w}x{h}" in sizes:
            keep.append(sid)
    return keep


def run_name(a):
    return a.recipe + ("-heldout-sizes" if getattr(a, "holdout_sizes", None) else "")


def train(a):
    run = REPO / "runs" / run_name(a)
    cmd = [sys.executable, "-m", "nucleiseg_lib", "train", "--data", a.data, "--run", str(run), "--profile",
           a.recipe, "--quiet"] + (["--epochs", str(a.epochs)] if a.epochs else [])
    if a.holdout_sizes:
        ids = holdout_ids(a.data, a.holdout_sizes.split(","))
        run.mkdir(parents=True, exist_ok=True)
        (run / "val_ids.txt").write_text("\n".join(ids) + "\n")
        cmd += ["--val-list", str(run / "val_ids.txt")]
        print(f"validating on {len(ids)} images of sizes {a.holdout_sizes}, never trained on")
    t = time.time()
    subprocess.run(cmd, check=True, cwd=REPO)
    seconds = time.time() - t
    hist = json.loads((run / "history.json").read_text())
    info = dict(recipe=run_name(a), wall_seconds_this_call=round(seconds, 1),
                train_seconds_total=round(sum(h["seconds"] for h in hist), 1), epochs=len(hist))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{run_name(a)}_train.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


def variants(pp):
    """(name, rule, overrides, tta) rows: baseline post-processing -> each change -> final."""
    rows = [("max/10 threshold, connected components (original)", "relative", dict(method="cc"), False),
            ("0.5 threshold, connected components", 0.5, dict(method="cc"), False),
            ("Otsu threshold, connected components", "otsu", dict(method="cc"), False),
            ("validation-chosen threshold, connected components", None, dict(method="cc"), False)]
    if pp.get("method") == "watershed" or pp.get("sweep"):
        rows.append(("validation-chosen threshold, watershed on contours", None, dict(method="watershed"), False))
    rows.append(("chosen post-processing + flip TTA (final)", None, {}, True))
    return rows


def evaluate(a):
    import numpy as np
    from nucleiseg_lib.data import SampleCache
    from nucleiseg_lib.inference import Predictor, evaluate_predictions, summarize_rows
    from nucleiseg_lib.data.cache import data_hash
    run = REPO / "runs" / run_name(a)
    pred = Predictor(run / "best.pt")
    val_ids = pred.state["split"]["val"]
    samples = SampleCache(a.data, ids=val_ids, progress=False).load_all()
    probs = {False: {s: pred.predict_proba(np.asarray(samples[s][0], np.float32)) for s in val_ids}}
    pred.tta = True
    probs[True] = {s: pred.predict_proba(np.asarray(samples[s][0], np.float32)) for s in val_ids}
    out = dict(recipe=run_name(a), checkpoint=str(run / "best.pt"), data=a.data, data_hash=data_hash(a.data),
               n_val=len(val_ids), epochs=pred.state["epoch"],
               split=("whole experiments held out: image sizes " + a.holdout_sizes) if a.holdout_sizes
               else "seeded random split by image id",
               postprocess={k: v for k, v in pred.postprocess.items() if k != "sweep"}, variants=[])
    for name, rule, over, tta in variants(pred.postprocess):
        rows = evaluate_predictions(pred, samples, val_ids, probs=probs[tta], rule=rule, progress=False, **over)
        mean = summarize_rows(rows)
        bg = [1 - float((samples[s][1] > 0).mean()) for s in val_ids]
        out["variants"].append(dict(name=name, **{k: round(mean[k], 4) for k in METRICS},
                                    n_pred=round(mean["n_pred"], 1), n_true=round(mean["n_true"], 1)))
        print(f"{name:55s} " + "  ".join(f"{k} {mean[k]:.3f}" for k in METRICS), flush=True)
    out["all_background_pixel_accuracy"] = round(float(np.mean(bg)), 4)
    train_info = RESULTS / f"{run_name(a)}_train.json"
    if train_info.exists():
        out["train"] = json.loads(train_info.read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{run_name(a)}.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / f'{run_name(a)}.json'}")


def table(a):
    from nucleiseg_lib.report.results import render_ablation
    md = render_ablation(RESULTS)
    (RESULTS / "ablation.md").write_text(md + "\n")
    from nucleiseg_lib.results import sync  # the copy the installed package (Colab) shows in notebook 05
    print("package results:", ", ".join(sync(RESULTS)))
    readme = REPO / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + START + "\n" + md + "\n" + END + rest.split(END, 1)[1]
        readme.write_text(text)
    print(md)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("train", train), ("evaluate", evaluate), ("table", table)):
        s = sub.add_parser(name)
        s.set_defaults(func=fn)
        if name != "table":
            s.add_argument("--recipe", default="cpu")
            s.add_argument("--data", default=str(DEFAULT_DATA))
            s.add_argument("--holdout-sizes", help="validate on whole experiments: image sizes WxH, comma-separated")
        if name == "train":
            s.add_argument("--epochs", type=int)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
