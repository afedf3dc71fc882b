"""Where a run loses its left-out-experiment score: DSB and objects found / true per test experiment.

    python benchmarks/by_experiment.py --name cpu-area      # -> benchmarks/results/cpu-area_by_experiment.json
    python benchmarks/by_experiment.py --compare amx-tf30-s0 amx-s0-seedmin   # on the test experiments both left out

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


def compare(names, results=RESULTS):
    """Runs side by side on the test experiments they all left out, from their ``<name>_by_experiment.json``.

    Runs with other test fractions leave out other experiments; on the ones they share, a run that trained on more
    experiments can be set beside one that trained on fewer (a learning curve in experiments).

    Parameters
    ----------
    names : list of str
        Runs whose ``benchmarks/results/<name>_by_experiment.json`` exist (this script, ``--name``).

    Returns
    -------
    dict
        ``experiments`` (the shared ones) and ``runs``: name -> kind ("all", "fluorescence", ...) -> n, DSB score
        (mean over images) and objects found / true per image.
    """
    runs = {}
    for n in names:
        path = Path(results) / f"{n}_by_experiment.json"
        if not path.is_file():
            sys.exit(f"{path}: missing; run `python benchmarks/by_experiment.py --name {n}` first")
        runs[n] = {e["experiment"]: e for e in json.loads(path.read_text())["experiments"]}
    shared = sorted(set.intersection(*(set(r) for r in runs.values())))
    if not shared:
        sys.exit(f"runs {', '.join(names)} share no test experiment")
    out = dict(experiments=shared, runs={})
    for n, exps in runs.items():
        out["runs"][n] = {}
        for kind in ("all",) + tuple(sorted({g.split()[0] for g in shared})):
            rows = [exps[g] for g in shared if kind == "all" or g.split()[0] == kind]
            k = sum(r["n"] for r in rows)
            mean = lambda key: round(sum(r["n"] * r[key] for r in rows) / k, 4)  # noqa: E731
            out["runs"][n][kind] = dict(n=k, dsb_score=mean("dsb_score"), n_pred=mean("n_pred"), n_true=mean("n_true"))
        print(f"{n:20s} " + "  ".join(f"{kind} {m['dsb_score']:.3f} ({m['n_pred']:.0f}/{m['n_true']:.0f}, n={m['n']})"
                                      for kind, m in out["runs"][n].items()), flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", default="cpu-split", help="the run folder runs/<name>")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--split", default="test", choices=("val", "test"))
    p.add_argument("--compare", nargs="+", metavar="NAME",
                   help="no scoring: set these runs' per-experiment results side by side on the test experiments "
                        "they share (-> benchmarks/results/compare_<names>.json)")
    a = p.parse_args()
    if a.compare:
        out = compare(a.compare)
        path = RESULTS / f"compare_{'_'.join(a.compare)}.json"
        path.write_text(json.dumps(out, indent=2))
        print(f"shared test experiments: {', '.join(out['experiments'])}\nwrote {path}")
        return
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
