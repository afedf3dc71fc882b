"""Train and evaluate recipes on real DSB2018, on images of seen and of left-out experiments; the ablation table.

    python benchmarks/recipes.py train --name cpu [--recipe cpu] [--epochs N] [--set KEY=VALUE ...] [--no-calibrate]
    python benchmarks/recipes.py calibrate --name cpu --out cpu-pp   # a run's best.pt, post-processing chosen anew
        [--seed-splits H ...] [--contour-thresholds C ...]          # what validation may choose from
        [--seed-split-sizes F ...] [--seed-min-fractions F ...]
    python benchmarks/recipes.py ensemble --name a --with b c --out abc   # one checkpoint of 3 runs' weights
    python benchmarks/recipes.py evaluate --name cpu        # -> benchmarks/results/cpu.json
    python benchmarks/recipes.py table                      # -> benchmarks/results/ablation.md and README.md

`train` runs ``nucleiseg train`` into ``runs/<name>`` (split by experiments: train / validation / test, stored
in the checkpoint) and records the training time. `calibrate` copies ``runs/<name>/best.pt`` to ``runs/<out>/``
(or, with ``--out`` the same as ``--name``, after ``train --no-calibrate``, works in place)
and chooses its post-processing again on its validation images with today's
:func:`nucleiseg_lib.inference.calibrate` (a post-processing step of the ablation, on the same weights).
`evaluate` scores the run's best.pt on

* **validation**: random images of experiments the model trained on (what a random split would report; these
  images also chose the best epoch, the threshold and the instance method), and
* **test**: whole experiments left out of training (they chose nothing): the estimate of how the model does
  on images from a new lab, microscope or stain,

each overall and per image kind, under several post-processing variants. `table` renders every result file
into one ablation table (one row per recipe step) plus the post-processing table of the final recipe.
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
METRICS = ("dsb_score", "ap50", "iou", "pixel_accuracy")
KINDS = ("fluorescence", "brightfield", "stained")
START, END = "<!-- results:start -->", "<!-- results:end -->"


def train(a):
    run = REPO / "runs" / a.name
    cmd = [sys.executable, "-m", "nucleiseg_lib", "train", "--data", a.data, "--run", str(run), "--profile",
           a.recipe, "--quiet"] + (["--epochs", str(a.epochs)] if a.epochs else []) + (
               ["--no-calibrate"] if a.no_calibrate else [])
    for kv in a.set or []:
        cmd += ["--set", kv]
    t = time.time()
    subprocess.run(cmd, check=True, cwd=REPO)
    seconds = time.time() - t
    hist = json.loads((run / "history.json").read_text())
    info = dict(name=a.name, recipe=a.recipe, settings=a.set or [], step=a.step or a.name, finished=time.time(),
                wall_seconds_this_call=round(seconds, 1),
                train_seconds_total=round(sum(h["seconds"] for h in hist), 1), epochs=len(hist),
                machine=training_machine(run))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}_train.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


def training_machine(run):
    """What trained a run: cores, the device, the CPU's vector capability and the precision ``amp`` resolved to there
    (``amp=auto`` trains in bf16 only on a CPU that computes it natively), so that minutes compare like with like."""
    import os

    import torch
    from nucleiseg_lib.device import pick_device, precision_name
    from nucleiseg_lib.training.checkpoint import load_checkpoint
    amp = load_checkpoint(run / "last.pt")["config"].get("amp", "auto")
    device = pick_device()
    return dict(cores=os.cpu_count(), device=device.type, capability=torch.backends.cpu.get_cpu_capability(),
                precision=precision_name(device, amp))


def recalibrate(a, state=None, info_extra=None):
    import shutil
    from nucleiseg_lib.data import SampleCache
    from nucleiseg_lib.inference import calibrate, settings_only
    from nucleiseg_lib.training import load_checkpoint, save_checkpoint
    src, out = REPO / "runs" / a.name, REPO / "runs" / a.out
    same = out == src          # a run trained with --no-calibrate gets its post-processing in place
    out.mkdir(parents=True, exist_ok=True)
    if state is not None:
        save_checkpoint(state, out / "best.pt")
    elif not same:
        shutil.copy2(src / "best.pt", out / "best.pt")
    if not same and (src / "history.json").exists():   # a shipped model copied into runs/ has none
        shutil.copy2(src / "history.json", out / "history.json")
    split = load_checkpoint(out / "best.pt")["split"]
    samples = SampleCache(a.data, ids=sorted(set(split["train"]) | set(split["val"])), progress=False).load_all()
    t = time.time()
    extra = {} if a.seed_splits is None else dict(seed_splits=tuple(a.seed_splits))
    if a.contour_thresholds is not None:
        extra["contour_thresholds"] = tuple(a.contour_thresholds)
    if a.seed_split_sizes is not None:
        extra["seed_split_sizes"] = tuple(a.seed_split_sizes)
    if a.seed_min_fractions is not None:
        extra["seed_min_fractions"] = tuple(a.seed_min_fractions)
    chosen = calibrate(out / "best.pt", samples, split["val"], progress=False, train_ids=split["train"], **extra)
    train_info = RESULTS / f"{a.name}_train.json"
    info = json.loads(train_info.read_text()) if train_info.exists() else {}
    info.update(calibrate_seconds=round(time.time() - t, 1), finished=time.time())  # a step after its source
    if not same:
        info.update(name=a.out, step=a.step or f"{a.name}, post-processing chosen again", calibrated_from=a.name)
    elif a.step:
        info["step"] = a.step
    info.update(info_extra or {})
    (RESULTS / f"{a.out}_train.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(settings_only(chosen)))


def variants(pp, everything=True):
    """(name, rule, overrides, predictor options) rows: the original rule -> each change -> final.

    With ``everything=False`` only the validation-chosen post-processing (an ablation step's row).
    """
    names = {"cc": "validation-chosen threshold, connected components",
             "watershed": "validation-chosen threshold, watershed on contours",
             "distance": "validation-chosen threshold, watershed from the predicted distance"}
    if not everything:
        method = pp.get("method", "cc")
        return [(names[method], None, dict(method=method), {})]
    rows = [("max/10 threshold, connected components (original)", "relative", dict(method="cc", min_score=0.0), {}),
            ("validation-chosen threshold, connected components", None, dict(method="cc"), {})]
    if pp.get("method") in ("watershed", "distance") or pp.get("sweep"):
        rows.append((names["watershed"], None, dict(method="watershed"), {}))
    if pp.get("method") == "distance":
        rows.append((names["distance"], None, dict(method="distance"), {}))
    if pp.get("seed_split", 0.0) or pp.get("seed_split_size", 0.0):
        rows.append(("validation-chosen post-processing without the seed split", None,
                     dict(seed_split=0.0, seed_split_size=0.0), {}))
    if pp.get("method") == "watershed" and "border" in (pp.get("channels") or ()):
        # above any probability: the border map no longer cuts seeds (it still lowers the watershed surface)
        rows.append(("validation-chosen post-processing without the border's seed cut", None,
                     dict(border_threshold=1.01), {}))
    if pp.get("seed_min_fraction", 0.0):
        rows.append(("validation-chosen post-processing without the small-seed drop", None,
                     dict(seed_min_fraction=0.0), {}))
    if pp.get("seed_opening", 1) != 1 or pp.get("min_score", 0.0):
        method = pp.get("method", "cc")
        short = {"cc": "connected components", "watershed": "watershed", "distance": "distance watershed"}[method]
        rows.append((f"validation-chosen threshold, {short}, without the seed opening and faint-object choice", None,
                     dict(method=method, seed_opening=1, min_score=0.0), {}))
    rows.append(("chosen post-processing + flip TTA", None, {}, dict(tta=True)))
    if pp.get("train_median_area"):
        rows.append(("chosen post-processing + small nuclei magnified to the training median size", None, {},
                     dict(target_area=pp["train_median_area"])))
    return rows


def score(pred, samples, ids, kinds, rule, over, probs=None):
    """Mean metrics overall and per image kind, plus objects found / true."""
    import numpy as np
    from nucleiseg_lib.inference import evaluate_predictions, summarize_rows
    rows = evaluate_predictions(pred, samples, ids, probs=probs, rule=rule, progress=False, **over)

    def agg(rs):
        if not rs:
            return None
        m = summarize_rows(rs)
        return dict(n=len(rs), **{k: round(float(m[k]), 4) for k in METRICS},
                    n_pred=round(float(np.mean([r["n_pred"] for r in rs])), 1),
                    n_true=round(float(np.mean([r["n_true"] for r in rs])), 1))
    by_kind = {k: agg([r for r in rows if kinds[r["id"]] == k]) for k in KINDS}
    return dict(overall=agg(rows), by_kind={k: v for k, v in by_kind.items() if v})


def evaluate(a):
    import numpy as np
    from nucleiseg_lib.data import SampleCache
    from nucleiseg_lib.data.cache import data_hash
    from nucleiseg_lib.data.stats import classify_modality
    from nucleiseg_lib.inference import Predictor, settings_only
    run = REPO / "runs" / a.name
    pred = Predictor(run / "best.pt")
    split = pred.state["split"]
    ids = sorted(set(split["val"]) | set(split.get("test", [])))
    samples = SampleCache(a.data, ids=ids, progress=False).load_all()
    kinds = {s: classify_modality(np.asarray(samples[s][0], np.float32)) for s in ids}
    out = dict(name=a.name, checkpoint=str(run / "best.pt"), data=a.data, data_hash=data_hash(a.data),
               epochs=pred.state["epoch"], config=pred.state["config"],
               postprocess=settings_only(pred.postprocess),
               test_groups=split.get("test_groups", []), not_held_out=split.get("not_held_out", {}), sets={})
    t0 = time.time()
    chosen_pp = dict(pred.postprocess)  # each variant below starts from the checkpoint's own settings
    for part in ("val", "test"):
        part_ids = sorted(split.get(part, []))
        if not part_ids:
            continue
        res = dict(n=len(part_ids), n_by_kind={k: sum(kinds[s] == k for s in part_ids) for k in KINDS},
                   all_background_pixel_accuracy=round(float(np.mean(
                       [1 - float((samples[s][1] > 0).mean()) for s in part_ids])), 4), variants=[])
        cache = {}  # probability maps per (TTA, zoom target): the threshold variants reuse them
        for name, rule, over, opts in variants(chosen_pp, not a.chosen_only):
            pred.tta = opts.get("tta", False)
            pred.postprocess = {**chosen_pp, "target_area": opts.get("target_area", chosen_pp.get("target_area"))}
            key = (pred.tta, pred.postprocess["target_area"])
            if key not in cache:
                cache[key] = {s: pred.predict_proba(np.asarray(samples[s][0], np.float32)) for s in part_ids}
            r = score(pred, samples, part_ids, kinds, rule, over, probs=cache[key])
            res["variants"].append(dict(name=name, **r))
            o = r["overall"]
            print(f"{part:5s} {name:55s} DSB {o['dsb_score']:.3f}  AP50 {o['ap50']:.3f}  "
                  + "  ".join(f"{k} {v['dsb_score']:.3f} ({v['n_pred']:.0f}/{v['n_true']:.0f})"
                              for k, v in r["by_kind"].items()), flush=True)
        out["sets"][part] = res
    pred.tta, pred.postprocess = False, chosen_pp
    out["evaluate_seconds"] = round(time.time() - t0, 1)
    train_info = RESULTS / f"{a.name}_train.json"
    if train_info.exists():
        out["train"] = json.loads(train_info.read_text())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {RESULTS / f'{a.name}.json'}")


def ensemble(a):
    """runs/<out>/best.pt: the weights of runs/<name> and of each --with run in one checkpoint (their probability
    maps averaged: training.checkpoint.ensemble_state), its post-processing chosen on validation as `calibrate` does.
    Its training minutes are the members' together."""
    from nucleiseg_lib.training import load_checkpoint
    from nucleiseg_lib.training.checkpoint import ensemble_state
    names = [a.name, *a.members]
    paths = [REPO / "runs" / n / "best.pt" for n in names]
    state = ensemble_state([load_checkpoint(p) for p in paths], paths)
    infos = [json.loads((RESULTS / f"{n}_train.json").read_text()) for n in names]
    seconds = round(sum(i["train_seconds_total"] for i in infos), 1)
    recalibrate(a, state, dict(ensemble_of=names, train_seconds_total=seconds, wall_seconds_this_call=None,
                               step=a.step or f"the maps of {', '.join(names)} averaged"))


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
    for name, fn in (("train", train), ("calibrate", recalibrate), ("ensemble", ensemble), ("evaluate", evaluate),
                     ("table", table)):
        s = sub.add_parser(name)
        s.set_defaults(func=fn)
        if name != "table":
            s.add_argument("--name", default="cpu", help="run folder runs/<name> and result file name")
            s.add_argument("--data", default=str(DEFAULT_DATA))
        if name == "evaluate":
            s.add_argument("--chosen-only", action="store_true",
                           help="only the validation-chosen post-processing (no TTA, zoom or threshold variants)")
        if name in ("calibrate", "ensemble"):
            s.add_argument("--out", required=True, help="the new run folder runs/<out>")
            s.add_argument("--step", help="what this changes, for the ablation table")
        if name == "ensemble":
            s.add_argument("--with", dest="members", nargs="+", required=True, metavar="NAME",
                           help="the other runs whose weights join runs/<name>'s")
            s.set_defaults(seed_splits=None, contour_thresholds=None, seed_split_sizes=None, seed_min_fractions=None)
        if name == "calibrate":
            s.add_argument("--seed-splits", type=float, nargs="+", metavar="H",
                           help="seed splits to choose from (default: inference.calibrate's, 0 and 1; 0 = none)")
            s.add_argument("--contour-thresholds", type=float, nargs="+", metavar="C",
                           help="contour thresholds of the watershed seeds to choose from (default: "
                                "inference.calibrate's)")
            s.add_argument("--seed-split-sizes", type=float, nargs="*", metavar="F",
                           help="seed splits at F x each image's median seed radius, also offered (default: "
                                "inference.calibrate's, 0.1 and 0.15; none: --seed-split-sizes with no value)")
            s.add_argument("--seed-min-fractions", type=float, nargs="+", metavar="F",
                           help="seeds under F x each image's median seed area dropped, to choose from with the "
                                "seed opening and faint-object minimum (default: inference.calibrate's, 0-0.3)")
        if name == "train":
            s.add_argument("--recipe", default="cpu")
            s.add_argument("--epochs", type=int)
            s.add_argument("--set", action="append", metavar="KEY=VALUE", help="a TrainConfig setting (repeatable)")
            s.add_argument("--step", help="what this run changes, for the ablation table")
            s.add_argument("--no-calibrate", action="store_true",
                           help="leave the post-processing to a later `calibrate --name N --out N`")
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
