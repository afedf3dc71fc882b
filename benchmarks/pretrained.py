"""Make, and check, the pretrained course model shipped in ``nucleiseg_lib/pretrained``.

    python benchmarks/pretrained.py export --run runs/cpu [--data DIR]   # -> cpu.pt, card.json, MODEL_CARD.md
    python benchmarks/pretrained.py check [--data DIR]                   # re-evaluate, compare with the card

`export` reads the run's ``best.pt`` (trained with ``nucleiseg train --profile cpu``), keeps its weights as fp16
with its config, split and chosen post-processing (no optimizer), re-scores that fp16 model on the run's
validation and test images (the checkpoint's ``split``; images it never trained on), and writes the model card:
the command that reproduces the run, the data hash, the commit, the scores. Every number is measured here.

A run trained on every experiment (``--test-fraction 0``: the model to use on new images) has no test images;
``--left-out NAME`` then puts the left-out-experiment scores of the same recipe's held-out run
(``benchmarks/results/NAME.json``, written by ``benchmarks/recipes.py evaluate``) on its card, and refuses a run whose
settings differ from the exported one's in anything but the split and the seeds.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"


def _commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _markdown(card):
    from nucleiseg_lib.inference import describe_postprocess
    lines = [f"# nucleiseg course model (`{card['file']}`)", "",
             f"The `{card['recipe']}` recipe of nucleiseg_lib (U-Net base {card['model_config'].get('base')}, "
             f"{card['model_config'].get('out_channels')} output channels), trained on DSB2018 stage1_train; "
             f"weights only, float16, {card['size_bytes'] / 2 ** 20:.1f} MiB. Post-processing chosen on the "
             f"validation split: {describe_postprocess(card['postprocess'])}.", "",
             "| | value |", "|---|---|",
             f"| reproduce | `{card['command']}` |",
             f"| data | {card['data_images']} images, hash `{card['data_hash']}` (`nucleiseg_lib.data.data_hash`) |",
             f"| commit | `{card['commit']}` |",
             f"| epoch of best.pt | {card['epoch']} |", "",
             "| split | images | DSB score | AP50 | IoU | Dice | pixel acc. |", "|---|---|---|---|---|---|---|"]
    for name in ("validation", "test"):
        s = card["scores"].get(name)
        if s:
            lines.append(f"| {name} | {s['n_images']} | {s['dsb_score']:.3f} | {s['ap50']:.3f} | {s['iou']:.3f} | "
                         f"{s['dice']:.3f} | {s['pixel_accuracy']:.3f} |")
        else:
            lines.append(f"| {name} | 0 | (the run has no {name} split) | | | | |")
    lo = card.get("left_out_recipe")
    if lo:
        kinds = ", ".join(f"{k} {m['dsb_score']:.3f} ({m['n_pred']:.0f} objects found per {m['n_true']:.0f} true)"
                          for k, m in lo["by_kind"].items())
        lines += ["", f"This model was trained on every experiment of stage1_train, so none of its images can measure it "
                      f"on experiments it has not seen. The same recipe with whole experiments left out "
                      f"(`{lo['run']}`, `{lo['source']}`) scored DSB {lo['dsb_score']:.3f} on its {lo['n_images']} "
                      f"left-out images: {kinds}. That is the estimate for new experiments."]
    lines += ["", "Scores: mean over images, the fp16 model as shipped, its chosen post-processing, no TTA, "
              "measured by `python benchmarks/pretrained.py export`; `tests/test_pretrained.py` re-measures them."]
    return "\n".join(lines) + "\n"


def train_command(run_name, cfg):
    """The ``nucleiseg train`` command of a run: its recipe, epochs, and every setting that differs from the recipe's."""
    from nucleiseg_lib.training import get_recipe
    recipe = cfg.get("recipe", "cpu")
    command = f"nucleiseg train --data DSB2018/stage1_train --run {run_name} --profile {recipe}"
    if cfg.get("epochs"):
        command += f" --epochs {cfg['epochs']}"
    try:
        defaults = get_recipe(recipe).to_dict()
    except ValueError:   # a recipe this library does not know: nothing to compare with
        return command
    skip = {"epochs", "num_workers", "extra", "recipe"}
    for key in sorted(k for k in cfg if k in defaults and k not in skip and cfg[k] != defaults[k]):
        value = json.dumps(cfg[key], separators=(',', ':'))
        command += f" --test-fraction {value}" if key == "test_fraction" else f" --set {key}={value}"
    return command


#: Settings in which a held-out run may differ from the exported run and still be "the same recipe".
SAME_RECIPE_EXCEPT = ("test_fraction", "seed", "split_seed", "num_workers")


def left_out_scores(name, cfg, results=None):
    """The left-out-experiment scores of held-out run `name`, for the card of a model trained like it on every experiment.

    Parameters
    ----------
    name : str
        A run whose ``benchmarks/results/<name>.json`` holds a test set (``recipes.py evaluate``).
    cfg : dict
        The exported run's config: `name`'s must equal it but for :data:`SAME_RECIPE_EXCEPT`.
    results : Path, optional
        The results folder (default ``benchmarks/results``).

    Returns
    -------
    dict
        ``run``, ``n_images``, ``test_groups``, ``dsb_score`` and ``by_kind`` (kind -> n, DSB score,
        objects found and true per image), ``source`` (the results file, relative to the repository).
    """
    from nucleiseg_lib.report.results import chosen_variant
    path = Path(results or REPO / "benchmarks" / "results") / f"{name}.json"
    if not path.is_file():
        sys.exit(f"{path}: no results of run {name!r}; run `python benchmarks/recipes.py evaluate --name {name}` first")
    res = json.loads(path.read_text())
    if "test" not in res.get("sets", {}):
        sys.exit(f"{path}: run {name!r} has no test images, so it cannot say how the recipe does on experiments left out")
    from nucleiseg_lib.training import TrainConfig
    ours, theirs = (TrainConfig.from_dict(c).to_dict() for c in (cfg, res.get("config") or {}))  # defaults filled in
    differ = sorted(k for k in ours if k not in SAME_RECIPE_EXCEPT and ours[k] != theirs[k])
    if differ:
        sys.exit(f"{path}: run {name!r} is not the exported run's recipe: {', '.join(differ)} differ")
    v = chosen_variant(res, "test")
    by_kind = {k: dict(n=m["n"], dsb_score=m["dsb_score"], n_pred=m["n_pred"], n_true=m["n_true"])
               for k, m in v["by_kind"].items()}
    try:
        source = str(path.resolve().relative_to(REPO))
    except ValueError:
        source = str(path)
    return dict(run=name, n_images=v["overall"]["n"], test_groups=res.get("test_groups", []),
                dsb_score=v["overall"]["dsb_score"], by_kind=by_kind, source=source)


def export(a, out_dir=None):
    import os

    from nucleiseg_lib import pretrained
    from nucleiseg_lib.data import data_hash, list_samples
    from nucleiseg_lib.training import load_checkpoint, save_checkpoint, save_json
    from nucleiseg_lib.inference import settings_only
    from nucleiseg_lib.training.checkpoint import model_state
    out_dir = Path(out_dir or a.out or pretrained.FOLDER)
    run = Path(a.run)
    state = load_checkpoint(run / "best.pt")
    data = Path(a.data)
    split = state.get("split") or {}
    known = set(list_samples(data))
    for name in ("val", "test"):
        missing = [i for i in split.get(name) or [] if i not in known]
        if missing:
            sys.exit(f"{data}: {len(missing)} {name} images of {run / 'best.pt'} are not there (e.g. {missing[0]})")
    h = data_hash(data)
    trained_on = (state.get("data") or {}).get("hash")
    if trained_on and trained_on != h and not a.allow_other_data:
        sys.exit(f"{data}: data hash {h}, but {run / 'best.pt'} was trained on {trained_on}; pass the same --data")
    small = model_state(state, half=True)
    small["data"] = {**(state.get("data") or {}), "root": "stage1_train"}
    cfg = state.get("config") or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / pretrained.MODEL.name
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / model_path.name
        save_checkpoint(small, staged)
        scores = {}
        for name, key in (("validation", "val"), ("test", "test")):
            ids = list(split.get(key) or [])
            if ids:
                print(f"scoring the fp16 model on its {len(ids)} {name} images ...", flush=True)
                scores[name] = pretrained.score(staged, data, ids, progress=not a.quiet)
        command = train_command(run.name, cfg)
        left_out, estimate = getattr(a, "left_out", None), {}
        if not split.get("test") and left_out:
            estimate["left_out_recipe"] = left_out_scores(left_out, cfg, getattr(a, "results", None))
        elif left_out:
            sys.exit(f"{run / 'best.pt'} has test images of its own: --left-out is for a run trained on every experiment")
        card = dict(file=model_path.name, recipe=cfg.get("recipe"), command=command, data_hash=h,
                    data_images=len(known), commit=_commit(), epoch=state.get("epoch"),
                    model_config=state["model_config"], size_bytes=staged.stat().st_size,
                    postprocess=settings_only(state.get("postprocess")),
                    scores=scores, **estimate)
        save_checkpoint(small, model_path)  # the same state as the staged file just scored
    save_json(card, out_dir / pretrained.CARD_JSON.name)
    md = out_dir / pretrained.CARD_MD.name
    fd, tmpmd = tempfile.mkstemp(dir=out_dir, prefix=".card.")
    with os.fdopen(fd, "w") as f:
        f.write(_markdown(card))
    os.replace(tmpmd, md)
    print(f"wrote {model_path} ({card['size_bytes'] / 2 ** 20:.1f} MiB), {md.name}, card.json")
    print(json.dumps(scores, indent=2))
    return card


def check(a):
    from nucleiseg_lib import pretrained
    card = pretrained.card()
    if card is None:
        sys.exit(f"no pretrained model in {pretrained.FOLDER}")
    state = __import__("nucleiseg_lib.training", fromlist=["load_checkpoint"]).load_checkpoint(pretrained.MODEL)
    bad = []
    for name, key in (("validation", "val"), ("test", "test")):
        if name in card["scores"]:
            got = pretrained.score(pretrained.MODEL, a.data, state["split"][key], progress=not a.quiet)
            for k, v in card["scores"][name].items():
                if abs(got[k] - v) > 1e-3:
                    bad.append(f"{name} {k}: card {v}, measured {got[k]}")
    print("\n".join(bad) or "the card's scores are reproduced")
    return 1 if bad else 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("export", help="write the pretrained model and its card from a trained run")
    s.add_argument("--run", required=True, help="a run folder holding best.pt (e.g. runs/cpu)")
    s.add_argument("--data", default=str(DEFAULT_DATA), help="the DSB2018 stage1_train it was trained on")
    s.add_argument("--out", default=None, help="default: nucleiseg_lib/pretrained")
    s.add_argument("--allow-other-data", action="store_true", help="export although the data hash differs")
    s.add_argument("--left-out", default=None, metavar="NAME",
                   help="for a run trained on every experiment: the held-out run of the same recipe whose "
                        "left-out-experiment scores (benchmarks/results/NAME.json) go on the card")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=export)
    s = sub.add_parser("check", help="re-evaluate the shipped model and compare with its card")
    s.add_argument("--data", default=str(DEFAULT_DATA))
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=check)
    a = p.parse_args(argv)
    r = a.func(a)
    return r if isinstance(r, int) else 0


if __name__ == "__main__":
    sys.exit(main())
