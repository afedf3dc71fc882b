"""The benchmark results table (README and report), rendered from ``benchmarks/results/*.json``."""

import json
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"  # package copy of benchmarks/results


def render_ablation(results_dir=None):
    """Markdown tables of every ``<recipe>.json`` written by ``benchmarks/recipes.py evaluate``.

    Parameters
    ----------
    results_dir : str or Path, optional
        Default: the repository's ``benchmarks/results``.

    Returns
    -------
    str
        Markdown; a one-line note when there are no results.
    """
    lines = []
    for path in sorted(Path(results_dir or RESULTS_DIR).glob("*.json")):
        res = json.loads(path.read_text())
        if "variants" not in res:
            continue
        t = res.get("train", {})
        lines += [f"**recipe `{res['recipe']}`** — best.pt from epoch {res['epochs']}"
                  + (f" of {t['epochs']}, {t['train_seconds_total'] / 60:.1f} min of training" if t else "")
                  + f"; validation split: {res['n_val']} images it never trained on "
                  f"({res.get('split', 'seeded random split by image id')}); an all-background prediction "
                  f"scores pixel accuracy {res['all_background_pixel_accuracy']:.3f}.",
                  "", "| post-processing | DSB score | AP50 | IoU | Dice | pixel acc. | objects found / true |",
                  "|---|---|---|---|---|---|---|"]
        for v in res["variants"]:
            lines.append(f"| {v['name']} | {v['dsb_score']:.3f} | {v['ap50']:.3f} | {v['iou']:.3f} | {v['dice']:.3f} "
                         f"| {v['pixel_accuracy']:.3f} | {v['n_pred']:.1f} / {v['n_true']:.1f} |")
        lines.append("")
    return "\n".join(lines) or "(no benchmark results yet: run `python benchmarks/recipes.py`)"
