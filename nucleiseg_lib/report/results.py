"""The benchmark results tables (README, notebook 05, report), rendered from ``benchmarks/results/*.json``.

Each result file is one run of ``benchmarks/recipes.py evaluate``: a recipe step scored on its validation
images (random images of experiments it trained on) and on its test images (whole experiments left out).
"""

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # package copy of benchmarks/results
KINDS = ("fluorescence", "brightfield", "stained")


def load_results(results_dir=None):
    """Result dicts of every ``<name>.json`` with ``sets``, in the order their runs finished training."""
    out = []
    for path in sorted(Path(results_dir or RESULTS_DIR).glob("*.json")):
        res = json.loads(path.read_text())
        if "sets" in res:
            out.append(res)
    return sorted(out, key=lambda r: (r.get("train", {}).get("finished", 0), r["name"]))


def offered_by_calibrate(postprocess):
    """Whether each seed and object choice in `postprocess` is one that today's calibration offers.

    A post-processing step measured on a recipe's weights and not adopted (e.g. a finer seed split offered by
    ``benchmarks/recipes.py calibrate``) can be chosen from values that
    :func:`~nucleiseg_lib.inference.calibrate` does not offer by default: ``nucleiseg train`` would not
    choose it, so it is not the recipe.
    """
    import inspect
    from ..inference.predict import calibrate
    d = {k: v.default for k, v in inspect.signature(calibrate).parameters.items()}
    offers = dict(contour_threshold=d["contour_thresholds"], seed_split=(0.0, *d["seed_splits"]),
                  seed_split_size=(0.0, *d["seed_split_sizes"]), seed_opening=(1, *d["seed_openings"]),
                  min_score=(0.0, *d["min_scores"]), seed_min_fraction=(0.0, *d["seed_min_fractions"]),
                  border_threshold=(0.5, *d["border_thresholds"]))
    return all(any(abs(float(postprocess[k]) - o) < 1e-9 for o in allowed)
               for k, allowed in offers.items() if k in (postprocess or {}))


def is_current_recipe(res):
    """Whether a result's training config is its recipe as the library defines it today (epochs included).

    An ensemble of runs (``benchmarks/recipes.py ensemble``: its training record names its members) is not one run
    of the recipe, whatever its first member's config; nor is a result whose post-processing holds a choice that
    today's calibration does not offer (:func:`offered_by_calibrate`).
    """
    from ..training import TrainConfig, get_recipe
    if (res.get("train") or {}).get("ensemble_of"):
        return False
    if not offered_by_calibrate(res.get("postprocess") or {}):
        return False
    cfg = res.get("config") or {}
    try:
        want = get_recipe(cfg.get("recipe", "")).to_dict()
    except (KeyError, ValueError):
        return False
    have = TrainConfig.from_dict(cfg).to_dict()
    skip = ("num_workers", "extra")
    return all(have[k] == want[k] for k in want if k not in skip)


def on_gpu(res):
    """Whether a result was trained on a GPU machine (``benchmarks/gpu_check.py`` records its ``device``)."""
    return bool(res.get("train", {}).get("device"))


def final_result(results):
    """The result of the final recipe: the last one trained here with today's recipe settings (else the last one).

    Runs trained on a GPU machine (:func:`on_gpu`) have a table of their own and are never the final recipe.
    """
    here = [r for r in results if not on_gpu(r)] or results
    current = [r for r in here if is_current_recipe(r)]
    return (current or here)[-1]


def chosen_variant(res, part):
    """The variant that uses the validation-chosen post-processing without TTA (what ``predict`` does)."""
    method = res["postprocess"].get("method", "cc")
    want = {"watershed": "watershed", "distance": "predicted distance"}.get(method, "connected components")
    for v in res["sets"][part]["variants"]:
        if v["name"].startswith("validation-chosen") and want in v["name"]:
            return v
    return res["sets"][part]["variants"][-1]


def _gib(x):
    return "—" if x is None else f"{x:.2f} GiB"


def _cell(v, kind=None):
    if v is None:
        return "—"
    m = v["overall"] if kind is None else v["by_kind"].get(kind)
    if not m:
        return "—"
    return f"{m['dsb_score']:.3f}" if kind is None else f"{m['dsb_score']:.3f} ({m['n_pred']:.0f}/{m['n_true']:.0f})"


def render_ablation(results_dir=None):
    """Markdown: the ablation table (one row per recipe step) and the final recipe's post-processing table.

    The final recipe is :func:`final_result`: steps trained after it and not adopted stay rows of the table.

    Returns
    -------
    str
        Markdown; a one-line note when there are no results.
    """
    from ..inference.postprocess import describe_postprocess
    results = load_results(results_dir)
    if not results:
        return "(no benchmark results yet: run `python benchmarks/recipes.py`)"
    lines = ["DSB score (mean over images); in brackets objects found / true per image. **validation**: random "
             "images of experiments the model trained on (they also chose epoch, threshold and instance method); "
             "**test**: whole experiments left out of training, which chose nothing.", "",
             "| recipe step | training | validation DSB | test DSB | test fluorescence | test stained "
             "| validation brightfield |", "|---|---|---|---|---|---|---|"]
    final = final_result(results)
    gpu = [r for r in results if on_gpu(r) and r is not final]
    for res in results:
        if any(res is g for g in gpu):
            continue
        t = res.get("train", {})
        val, test = (chosen_variant(res, p) if p in res["sets"] else None for p in ("val", "test"))
        mark = " **= the recipe**" if res is final else ""
        lines.append(f"| {t.get('step', res['name'])} (`{res['name']}`){mark} | best epoch {res['epochs']}"
                     + (f" of {t['epochs']}, {t['train_seconds_total'] / 60:.1f} min" if t else "")
                     + f" | {_cell(val)} | {_cell(test)} | {_cell(test, 'fluorescence')} | {_cell(test, 'stained')} "
                     f"| {_cell(val, 'brightfield')} |")
    sets = final["sets"]
    lines += ["", f"Post-processing of the final recipe (`{final['name']}`): "
              f"{describe_postprocess(final['postprocess'])} (chosen on validation); "
              + ", ".join(f"{p} {sets[p]['n']} images ({', '.join(f'{n} {k}' for k, n in sets[p]['n_by_kind'].items() if n)}, "
                          f"all-background pixel accuracy {sets[p]['all_background_pixel_accuracy']:.3f})" for p in sets)
              + (f"; test experiments: {', '.join(final['test_groups'])}" if final.get("test_groups") else "")
              + ("; not held out: " + "; ".join(f"{k}: {v}" for k, v in final["not_held_out"].items())
                 if final.get("not_held_out") else "") + ".", "",
              "| post-processing | " + " | ".join(f"{p} DSB | {p} AP50 | {p} pixel acc." for p in sets) + " |",
              "|---|" + "---|---|---|" * len(sets)]
    for i, v in enumerate(sets[next(iter(sets))]["variants"]):
        cells = []
        for p in sets:
            m = sets[p]["variants"][i]["overall"]
            cells += [f"{m['dsb_score']:.3f}", f"{m['ap50']:.3f}", f"{m['pixel_accuracy']:.3f}"]
        lines.append(f"| {v['name']} | " + " | ".join(cells) + " |")
    if gpu:
        lines += ["", "On a GPU machine (`python benchmarks/gpu_check.py`: the same split, data and scoring; training "
                  "minutes on that machine, not comparable with the rows above):", "",
                  "| run | device | epochs | seconds per epoch (median) | training | peak GPU memory | validation DSB "
                  "| test DSB | test fluorescence | test stained |", "|---|---|---|---|---|---|---|---|---|---|"]
        for res in gpu:
            t = res["train"]
            val, test = (chosen_variant(res, p) if p in res["sets"] else None for p in ("val", "test"))
            mark = " **= the `gpu` recipe**" if is_current_recipe(res) else ""
            lines.append(f"| {t.get('step', res['name'])} (`{res['name']}`){mark} | {t['device']} | best epoch "
                         f"{res['epochs']} of {t['epochs']} | {t['median_epoch_seconds']:.1f} s | "
                         f"{t['train_seconds_total'] / 60:.1f} min | {_gib(t.get('peak_gpu_memory_gib'))} "
                         f"| {_cell(val)} | {_cell(test)} | {_cell(test, 'fluorescence')} | {_cell(test, 'stained')} |")
    return "\n".join(lines)
