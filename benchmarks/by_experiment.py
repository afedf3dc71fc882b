"""Where a run loses its left-out-experiment score: DSB and objects found / true per test experiment.

    python benchmarks/by_experiment.py --name cpu-area      # -> benchmarks/results/cpu-area_by_experiment.json

Scores ``runs/<name>/best.pt`` (its validation-chosen post-processing, no TTA) on each experiment of its test split
(the groups :mod:`nucleiseg_lib.data.split` inferred and stored in the checkpoint), with the median nucleus area of
the experiment's images, so that an ablation can aim at the experiments that lose the most. For each experiment it
also says what happened to its true nuclei (:func:`nucleiseg_lib.metrics.nucleus_outcomes`: the share matched,
missed, merged with a neighbour, or other) and how many spurious objects an image gets.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
RESULTS = REPO / "benchmarks" / "results"
OUTCOMES = ("matched", "missed", "merged", "other")  # nucleiseg_lib.metrics.nucleus_outcomes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="cpu-split", help="the run folder runs/<name>")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--split", default="test", choices=("val", "test"))
    a = p.parse_args()
    from nucleiseg_lib.data import SampleCache
    from nucleiseg_lib.data.stats import nucleus_areas
    from nucleiseg_lib.inference import Predictor, evaluate_predictions, settings_only, summarize_rows
    pred = Predictor(REPO / "runs" / a.name / "best.pt")
    split = pred.state["split"]
    ids, groups = sorted(split.get(a.split) or []), split.get("groups") or {}
    if not ids:
        sys.exit(f"runs/{a.name}/best.pt has no {a.split} images")
    samples = SampleCache(a.data, ids=ids, progress=False).load_all()
    rows = evaluate_predictions(pred, samples, ids, progress=False, outcomes=True)
    by = {}
    for r in rows:
        by.setdefault(groups.get(r["id"], "?"), []).append(r)
    out = dict(name=a.name, split=a.split, postprocess=settings_only(pred.postprocess),
               experiments=[])
    for g, rs in sorted(by.items()):
        m = summarize_rows(rs)
        area = float(np.median([np.median(nucleus_areas(samples[r["id"]][1])) for r in rs]))
        row = dict(experiment=g, n=len(rs), dsb_score=round(float(m["dsb_score"]), 4),
                   n_pred=round(float(np.mean([r["n_pred"] for r in rs])), 1),
                   n_true=round(float(np.mean([r["n_true"] for r in rs])), 1), median_area=round(area))
        total = sum(r["n_true"] for r in rs)
        row["of_true_nuclei"] = {k: round(sum(r[k] for r in rs) / max(total, 1), 3) for k in OUTCOMES}
        row["spurious_per_image"] = round(float(np.mean([r["spurious"] for r in rs])), 1)
        out["experiments"].append(row)
        print(f"{g:28s} n={row['n']:3d}  DSB {row['dsb_score']:.3f}  found/true {row['n_pred']:.1f}/{row['n_true']:.1f}"
              f"  median nucleus area {row['median_area']} px  "
              + "  ".join(f"{k} {v:.2f}" for k, v in row["of_true_nuclei"].items())
              + f"  spurious/image {row['spurious_per_image']}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{a.name}_by_experiment.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
