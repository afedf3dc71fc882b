"""benchmarks/by_experiment.py --compare: runs set side by side on the test experiments they share."""

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("by_experiment", REPO / "benchmarks" / "by_experiment.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(folder, name, rows):
    exps = [dict(experiment=g, n=n, dsb_score=d, n_pred=p, n_true=t) for g, n, d, p, t in rows]
    (folder / f"{name}_by_experiment.json").write_text(json.dumps(dict(name=name, experiments=exps)))


def test_compare_weighs_images_and_keeps_the_shared_experiments(tmp_path):
    # "few" left out one more experiment (fluorescence B): it is not compared
    _write(tmp_path, "few", [("fluorescence A", 3, 0.4, 10, 12), ("fluorescence B", 5, 0.9, 1, 1),
                             ("stained C", 1, 0.2, 4, 2)])
    _write(tmp_path, "many", [("fluorescence A", 3, 0.5, 11, 12), ("stained C", 1, 0.6, 2, 2)])
    out = _tool().compare(["few", "many"], results=tmp_path)
    assert out["experiments"] == ["fluorescence A", "stained C"]
    few, many = out["runs"]["few"], out["runs"]["many"]
    assert few["all"] == dict(n=4, dsb_score=pytest.approx((3 * 0.4 + 0.2) / 4), n_pred=pytest.approx(8.5),
                              n_true=pytest.approx(9.5))
    assert many["fluorescence"] == dict(n=3, dsb_score=0.5, n_pred=11.0, n_true=12.0)
    assert many["stained"]["dsb_score"] == 0.6 and set(many) == {"all", "fluorescence", "stained"}
    _write(tmp_path, "other", [("fluorescence Z", 1, 0.1, 1, 1)])
    with pytest.raises(SystemExit, match="share no test experiment"):
        _tool().compare(["few", "other"], results=tmp_path)
    with pytest.raises(SystemExit, match="missing_by_experiment.json: missing"):
        _tool().compare(["few", "missing"], results=tmp_path)
