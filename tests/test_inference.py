"""Threshold rules, instances (connected components and watershed), native-resolution prediction, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from nucleiseg_lib.inference import Predictor, find_threshold, label_instances, otsu_threshold
from nucleiseg_lib.inference.postprocess import DEFAULT_POSTPROCESS, postprocess_proba
from nucleiseg_lib.cli import main

from test_training import REPO, tiny_data, fit  # noqa: F401  (fixture reuse)


def two_touching_discs(h=40, w=60):
    yy, xx = np.mgrid[:h, :w]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    b = (yy - 20) ** 2 + (xx - 38) ** 2 < 100
    labels = np.zeros((h, w), np.int32)
    labels[a], labels[b] = 1, 2
    return labels


def test_threshold_rules():
    prob = np.array([[0.0, 0.2], [0.6, 0.8]])
    assert find_threshold(prob, "fixed") == 0.5
    assert find_threshold(prob, "relative") == pytest.approx(0.08)
    assert find_threshold(prob, 0.3) == 0.3
    assert find_threshold(prob, "validation", 0.42) == 0.42
    bimodal = np.r_[np.full(500, 0.1), np.full(500, 0.9)]
    assert 0.1 <= otsu_threshold(bimodal) < 0.9
    with pytest.raises(ValueError, match="unknown threshold rule"):
        find_threshold(prob, "median")


def test_watershed_splits_touching_nuclei_that_cc_merges():
    truth = two_touching_discs()
    prob = (truth > 0).astype(float)
    assert label_instances(prob, 0.5, method="cc").max() == 1
    assert label_instances(prob, 0.5, method="watershed").max() == 2
    from nucleiseg_lib.data import instance_contours
    contour = instance_contours(truth).astype(float)
    split = label_instances(prob, 0.5, contour=contour, method="watershed")
    assert split.max() == 2 and (split > 0).sum() == (truth > 0).sum()


def test_min_size_drops_specks():
    prob = np.zeros((20, 20)); prob[1, 1] = 1; prob[5:12, 5:12] = 1
    assert label_instances(prob, 0.5, method="cc", min_size=4).max() == 1


def test_remove_unsure_drops_faint_instances_and_renumbers():
    from nucleiseg_lib.inference import remove_unsure
    labels = np.zeros((10, 20), np.int32)
    labels[1:5, 1:5], labels[1:5, 8:12], labels[6:9, 14:18] = 1, 2, 3
    prob = np.where(labels == 2, 0.55, 0.9)                 # nucleus 2 is faint: background texture, say
    out = remove_unsure(labels, prob, 0.7)
    assert out.max() == 2 and (out[1:5, 8:12] == 0).all() and out[7, 15] == 2
    assert remove_unsure(labels, prob, 0.0) is not None and remove_unsure(labels, prob, 0.0).max() == 3
    assert label_instances(prob * (labels > 0), 0.5, method="cc", min_score=0.7).max() == 2


def test_seed_opening_cuts_a_bridge_between_seeds():
    prob = np.zeros((20, 40))
    prob[4:16, 4:16] = prob[4:16, 22:34] = 1.0
    prob[8:11, 16:22] = 1.0                                  # a 3-pixel-wide bridge joins the two nuclei
    contour = np.zeros_like(prob)                            # no contour predicted: the seeds are the whole mask
    one = label_instances(prob, 0.5, contour=contour, method="watershed", seed_opening=1)
    two = label_instances(prob, 0.5, contour=contour, method="watershed", seed_opening=2)
    assert one.max() == 1 and two.max() == 2                  # one opening keeps a 3-px bridge, two cut it
    assert (two > 0).sum() == (prob > 0.5).sum()             # the seeds grow back over the whole mask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_data):  # noqa: F811
    run = tmp_path_factory.mktemp("run")
    fit(run, tiny_data, 1)
    return run / "best.pt"


def test_prediction_is_native_resolution(checkpoint):
    pred = Predictor(checkpoint)
    image = np.random.default_rng(0).random((37, 83, 3)).astype(np.float32)
    prob = pred.predict_proba(image)
    assert prob.shape == (2, 37, 83) and 0 <= prob.min() and prob.max() <= 1
    seg = pred.segment(image, "otsu")
    assert seg["mask"].shape == (37, 83) and seg["labels"].shape == (37, 83)


def test_an_ensemble_checkpoint_averages_its_models_maps(tmp_path, checkpoint):
    import torch
    from nucleiseg_lib.errors import CheckpointError
    from nucleiseg_lib.training import load_checkpoint, save_checkpoint
    from nucleiseg_lib.training.checkpoint import ensemble_state
    first = load_checkpoint(checkpoint)
    other = {**first, "model": {k: v * 0.9 if v.is_floating_point() else v for k, v in first["model"].items()}}
    save_checkpoint(other, tmp_path / "other.pt")
    save_checkpoint(ensemble_state([first, load_checkpoint(tmp_path / "other.pt")]), tmp_path / "both.pt")
    both = load_checkpoint(tmp_path / "both.pt")                      # weights_only: tensors and plain data
    assert len(both["members"]) == 1 and both["split"] == first["split"]
    image = np.random.default_rng(1).random((40, 52, 3)).astype(np.float32)
    a, b = Predictor(checkpoint).predict_proba(image), Predictor(tmp_path / "other.pt").predict_proba(image)
    ens = Predictor(tmp_path / "both.pt")
    assert len(ens.models) == 2
    np.testing.assert_allclose(ens.predict_proba(image), (a + b) / 2, atol=1e-6)
    assert not np.allclose(a, b)                                      # the two members differ
    with pytest.raises(CheckpointError, match="another split"):
        ensemble_state([first, {**first, "split": {**first["split"], "val": []}}], ["a.pt", "b.pt"])
    with pytest.raises(CheckpointError, match="another architecture"):
        ensemble_state([first, {**first, "model_config": {**first["model_config"], "base": first["model_config"]["base"] * 2}}])
    with pytest.raises(ValueError, match="two or more"):
        ensemble_state([first])
    with pytest.raises(CheckpointError, match="an ensemble already"):
        ensemble_state([both, first], ["both.pt", "first.pt"])
    save_checkpoint({**first, "members": {"not": "a list"}}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="odd.pt.*'members' entry is not a list"):
        Predictor(tmp_path / "odd.pt")
    half = torch.load(tmp_path / "both.pt", weights_only=True)
    from nucleiseg_lib.training.checkpoint import model_state
    assert all(v.dtype == torch.float16 for m in model_state(half, half=True)["members"] for v in m.values()
               if v.is_floating_point())


def test_cli_evaluate_and_predict(tmp_path, checkpoint, tiny_data):  # noqa: F811
    root = tiny_data[0]
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(root), "--json", str(out),
                 "--threshold", "0.5", "--quiet"]) == 0
    res = json.loads(out.read_text())
    for k in ("pixel_accuracy", "iou", "dice", "dsb_score", "ap50"):
        assert 0 <= res["mean"][k] <= 1
    assert len(res["per_image"]) == 12 and res["source"] == "synthetic"

    img = np.zeros((50, 70, 4), np.uint8); img[..., 3] = 255
    Image.fromarray(img).save(tmp_path / "one.png")
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "one.png"),
                 "--output", str(tmp_path / "pred")]) == 0
    mask = np.asarray(Image.open(tmp_path / "pred" / "one_mask.png"))
    labels = Image.open(tmp_path / "pred" / "one_labels.png")
    assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 255}
    assert labels.size == (70, 50) and labels.mode.startswith("I")
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(root),
                 "--output", str(tmp_path / "pred2")]) == 0
    assert len(list((tmp_path / "pred2").glob("*_labels.png"))) == 12


def test_cli_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "evaluate", "--checkpoint", str(tmp_path / "x.pt"),
                        "--data", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "x.pt: checkpoint file not found" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", str(tmp_path / "none"),
                        "--run", str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "none: data folder not found" in r.stderr


def test_zoom_factor_magnifies_only_small_nuclei(checkpoint):
    pred = Predictor(checkpoint)
    prob = np.zeros((2, 60, 60), np.float32)
    for k in range(4):                       # four 3x3 "nuclei": median area 9
        prob[0, 5 + 12 * k:8 + 12 * k, 5:8] = 1
    assert pred.zoom_factor(prob) == 1.0     # no target_area: never
    pred.postprocess = {**pred.postprocess, "method": "cc", "min_size": 1, "target_area": 144.0}
    assert pred.zoom_factor(prob) == pytest.approx(2.5)          # sqrt(144 / 9) = 4, capped at max_zoom 2.5
    pred.postprocess["max_zoom"] = 10
    assert pred.zoom_factor(prob) == pytest.approx(4.0)
    pred.postprocess["target_area"] = 16.0    # 9 >= 16 / 2: big enough already
    assert pred.zoom_factor(prob) == 1.0
    image = np.random.default_rng(1).random((30, 41, 3)).astype(np.float32)
    pred.postprocess["target_area"] = 1e6     # whatever it finds is small: predicted again, magnified, same shape out
    assert pred.predict_proba(image).shape == (2, 30, 41)


def test_cli_evaluate_split_test_and_train_settings(tmp_path, checkpoint, tiny_data):  # noqa: F811
    from nucleiseg_lib.cli import parse_settings, split_of
    from nucleiseg_lib.errors import DataError
    assert parse_settings(["input=grey", "epochs=3", "scale=[0.5, 2]"]) == dict(input="grey", epochs=3,
                                                                                 scale=(0.5, 2))
    state = dict(split=dict(train=["a"], val=["b"], test=["c", "d"]))
    assert split_of(state, ["a", "b", "c", "d"], "test") == ["c", "d"]
    assert split_of(dict(split=dict(train=["a"], val=["b"])), ["a", "b"], "test") == []
    with pytest.raises(DataError, match="is in the checkpoint's test split but not in the data folder"):
        split_of(state, ["a", "b", "c"], "test")
    # the tiny synthetic data hold one experiment per kind: nothing can be held out, and evaluate says so
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "evaluate", "--checkpoint", str(checkpoint),
                        "--data", str(tiny_data[0]), "--split", "test", "--quiet"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode == 2 and "has no test images" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", str(tiny_data[0]), "--run",
                        str(tmp_path / "r"), "--set", "hue=blue"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and "unknown setting" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", "no/such/folder", "--run",
                        str(tmp_path / "r"), "--set", "colour=blue"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and "colour='blue' is not one of ['mix', 'stain']" in r.stderr   # before the data
    # a setting that also has its own flag: --set alone is taken, both at once must agree
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", "no/such/folder", "--run",
                        str(tmp_path / "r"), "--base", "16", "--set", "base=8"], capture_output=True, text=True,
                       cwd=REPO)
    assert r.returncode != 0 and "base is given twice, as --base and as --set base=..." in r.stderr
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", "no/such/folder", "--run",
                        str(tmp_path / "r"), "--test-fraction", "1"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and "test_fraction=1.0 is not a share in [0, 1)" in r.stderr   # before the data
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", "no/such/folder", "--run",
                        str(tmp_path / "r"), "--test-fraction", "0", "--set", "test_fraction=0.3"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode != 0 and "test_fraction is given twice, as --test-fraction" in r.stderr
    r = subprocess.run([sys.executable, "-m", "nucleiseg_lib", "train", "--data", "no/such/folder", "--run",
                        str(tmp_path / "r"), "--set", "base=8", "--set", "num_workers=0"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode != 0 and "no/such/folder" in r.stderr and "Traceback" not in r.stderr


def test_calibrate_refines_seeds_and_scores_on_validation_only(tmp_path, checkpoint, tiny_data):  # noqa: F811
    import shutil
    import torch
    from nucleiseg_lib.inference import calibrate
    from nucleiseg_lib.training import save_checkpoint
    ck = tmp_path / "best.pt"
    shutil.copy(checkpoint, ck)
    state = torch.load(ck, weights_only=True)
    state["postprocess"] = {**(state.get("postprocess") or {}), "min_score": 0.99, "seed_opening": 3}
    save_checkpoint(state, ck)                                # an earlier choice must not leak into the first sweep
    _, samples, _, val = tiny_data
    chosen = calibrate(ck, samples, val, progress=False, seed_min_fractions=(0.0,))
    refine = chosen["refine"]
    assert [(r["seed_opening"], r["min_score"]) for r in refine][:4] == [(1, 0.0), (1, 0.6), (1, 0.7), (1, 0.8)]
    assert all(r["seed_min_fraction"] == 0.0 for r in refine) and chosen["seed_min_fraction"] == 0.0   # not offered
    first = max(chosen["sweep"], key=lambda r: r["dsb_score"])
    assert len(refine) == (12 if first["method"] == "watershed" else 4)   # openings only matter to watershed seeds
    assert refine[0]["dsb_score"] == pytest.approx(first["dsb_score"])   # the same settings, the same score
    best = max(refine, key=lambda r: r["dsb_score"])
    if best["dsb_score"] > first["dsb_score"]:
        assert (chosen["seed_opening"], chosen["min_score"]) == (best["seed_opening"], best["min_score"])
    else:
        assert (chosen["seed_opening"], chosen["min_score"]) == (1, 0.0)
    assert chosen["val_dsb_score"] == pytest.approx(max(first["dsb_score"], best["dsb_score"]))
    stored = Predictor(ck).postprocess
    assert stored["min_score"] == chosen["min_score"] and "refine" in stored
    offered = calibrate(ck, samples, val, progress=False, thresholds=[0.5], seed_openings=(1,), min_scores=(0.0,),
                        seed_min_fractions=(0.0, 0.2))
    if offered["method"] == "watershed":                      # a fraction per opening and minimum score
        assert [r["seed_min_fraction"] for r in offered["refine"]] == [0.0, 0.2]
        top = max(offered["refine"], key=lambda r: r["dsb_score"])
        assert offered["seed_min_fraction"] == (top["seed_min_fraction"] if top["dsb_score"] > max(
            r["dsb_score"] for r in offered["sweep"]) else 0.0)


def _discs(centres, r, shape=(30, 60)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.any([(yy - cy) ** 2 + (xx - cx) ** 2 < r * r for cy, cx in centres], axis=0)


def test_split_seeds_cuts_a_dumbbell_and_keeps_single_nuclei_whole():
    from nucleiseg_lib.inference.postprocess import split_seeds
    joined = _discs([(15, 15), (15, 32)], 10)              # two nuclei whose seeds touch: one region
    alone = _discs([(15, 48)], 6)
    seeds = joined | alone
    assert split_seeds(seeds, 0).max() == 2                  # h = 0: the connected regions as they are
    cut = split_seeds(seeds, 1.0)
    assert cut.max() == 3 and ((cut > 0) == seeds).all()      # every seed pixel keeps a label
    assert cut[15, 12] != cut[15, 35] and len(np.unique(cut[alone])) == 1
    yy, xx = np.mgrid[:30, :60]
    ellipse = ((yy - 15) / 6.0) ** 2 + ((xx - 30) / 20.0) ** 2 < 1   # long, but one maximum: not cut
    assert split_seeds(ellipse, 1.0).max() == 1
    assert split_seeds(np.zeros((5, 5), bool), 1.0).max() == 0


def test_split_height_follows_the_median_seed_and_label_instances_uses_it():
    from nucleiseg_lib.inference.postprocess import split_height
    seeds = np.zeros((40, 80), bool)
    seeds[2:12, 2:12] = True                                   # areas 100, 400 and 900: the median is 400
    seeds[2:22, 20:40] = True
    seeds[5:35, 45:75] = True
    assert split_height(seeds, 0.1) == pytest.approx(0.1 * np.sqrt(400 / np.pi))
    assert split_height(np.zeros((5, 5), bool), 0.1) == 0.0
    small = _discs([(15, 15), (15, 24)], 5) | _discs([(15, 45)], 5)   # the seeds are the mask: no contour, no opening
    prob, contour = small.astype(np.float32), np.zeros(small.shape, np.float32)
    kw = dict(method="watershed", min_size=1, seed_opening=0, contour=contour)
    by_size = label_instances(prob, 0.5, seed_split_size=0.12, **kw)
    h = split_height(small, 0.12)
    assert 0 < h < 1
    assert np.array_equal(by_size, label_instances(prob, 0.5, seed_split=h, **kw))
    assert np.array_equal(label_instances(prob, 0.5, seed_split=1.0, seed_split_size=0.0, **kw),
                          label_instances(prob, 0.5, seed_split=1.0, **kw))    # 0: the fixed height as before


def test_split_seeds_asks_for_h_maxima_only_where_there_can_be_two():
    """The fast count bounds the h-maxima regions from above on ragged, touching, random blobs."""
    from scipy import ndimage
    from skimage.morphology import h_maxima
    from nucleiseg_lib.inference.postprocess import _maxima_regions
    rng = np.random.default_rng(0)
    checked = several = 0
    for _ in range(60):
        centres = rng.uniform(0, 60, size=(rng.integers(2, 9), 2))
        blobs = _discs(centres, rng.uniform(2.5, 9), shape=(60, 60)) & (rng.random((60, 60)) > 0.03)
        comps, n = ndimage.label(blobs)
        for i in range(1, n + 1):
            own = np.pad(comps == i, 2)
            smooth = ndimage.gaussian_filter(ndimage.distance_transform_edt(own), 1.0)
            for h in (0.5, 1.0):
                k = ndimage.label(h_maxima(smooth, h).astype(bool) & own)[1]
                assert _maxima_regions(smooth, own, h) >= k
                checked, several = checked + 1, several + (k > 1)
    assert checked > 300 and several > 10


def test_label_instances_seed_split_separates_touching_nuclei_without_a_contour():
    prob = _discs([(15, 15), (15, 32)], 10).astype(float)
    contour = np.zeros_like(prob)                            # the model saw no contour between them
    assert label_instances(prob, 0.5, contour=contour, method="watershed").max() == 1
    two = label_instances(prob, 0.5, contour=contour, method="watershed", seed_split=1.0)
    assert two.max() == 2 and ((two > 0) == (prob > 0.5)).all()
    assert postprocess_proba(np.stack([prob, contour]), dict(DEFAULT_POSTPROCESS, method="watershed",
                                                            seed_split=1.0))["labels"].max() == 2


def test_drop_small_seeds_merges_a_fragment_into_its_nucleus_and_keeps_a_small_nucleus_alone():
    from nucleiseg_lib.inference.postprocess import drop_small_seeds
    markers = np.zeros((1, 40), int)
    markers[0, :10], markers[0, 12:22], markers[0, 24:34], markers[0, 36:38] = 1, 2, 3, 4
    np.testing.assert_array_equal(drop_small_seeds(markers, 0.0), markers)
    kept = drop_small_seeds(markers, 0.3)                          # median area 10: seeds under 3 px go
    assert kept.max() == 3 and (kept[0, 36:38] == 0).all() and (kept[0, :34] == markers[0, :34]).all()
    assert drop_small_seeds(np.zeros((3, 3), int), 0.5).max() == 0
    # three nuclei, the first cut by a contour drawn through it (a cap as a seed of its own), and one small nucleus
    prob = _discs([(15, 15), (15, 40), (15, 65), (15, 100)], 10, shape=(30, 120)).astype(float)
    prob[_discs([(15, 100)], 10, shape=(30, 120)) & ~_discs([(15, 100)], 4, shape=(30, 120))] = 0
    contour = np.zeros_like(prob)
    contour[:, 20:22] = 1
    opts = dict(contour=contour, method="watershed", contour_threshold=0.5, seed_opening=0)
    assert label_instances(prob, 0.5, **opts).max() == 5             # the cap is an object
    four = label_instances(prob, 0.5, **opts, seed_min_fraction=0.3)
    assert four.max() == 4 and ((four > 0) == (prob > 0.5)).all()     # nothing of the mask is lost
    assert len(np.unique(four[_discs([(15, 15)], 10, shape=(30, 120))])) == 1   # the cap went to its nucleus
    assert len(np.unique(four[_discs([(15, 100)], 4, shape=(30, 120))])) == 1   # the small nucleus stays itself
    pp = dict(DEFAULT_POSTPROCESS, method="watershed", contour_threshold=0.5, seed_opening=0, seed_min_fraction=0.3)
    np.testing.assert_array_equal(postprocess_proba(np.stack([prob, contour]), pp)["labels"], four)


def test_calibrate_chooses_the_seed_split_on_validation(tmp_path, checkpoint, tiny_data):  # noqa: F811
    import shutil
    from nucleiseg_lib.inference import calibrate
    ck = tmp_path / "best.pt"
    shutil.copy(checkpoint, ck)
    _, samples, _, val = tiny_data
    chosen = calibrate(ck, samples, val, thresholds=[0.4, 0.5], progress=False, seed_openings=(1,), min_scores=(0.0,),
                       seed_splits=(0.0, 1.0))
    ws = [r for r in chosen["sweep"] if r["method"] == "watershed"]
    # the smoke model has a contour channel: 3 contour thresholds x (2 fixed splits + 2 by size) x 2 thresholds
    fixed = [r for r in ws if r["seed_split_size"] == 0.0]
    by_size = [r for r in ws if r["seed_split_size"] > 0.0]
    assert sorted({r["seed_split"] for r in fixed}) == [0.0, 1.0] and len(fixed) == 3 * 2 * 2
    assert sorted({r["seed_split_size"] for r in by_size}) == [0.1, 0.15] and len(by_size) == 3 * 2 * 2
    assert all(r["seed_split"] == 0.0 for r in by_size)
    assert sorted({r["contour_threshold"] for r in ws}) == [0.3, 0.5, 0.7]
    assert all(r["seed_split"] == 0.0 and r["seed_split_size"] == 0.0 for r in chosen["sweep"] if r["method"] == "cc")
    best = max(chosen["sweep"], key=lambda r: r["dsb_score"])
    for key in ("seed_split", "seed_split_size"):
        assert chosen[key] == best[key] and Predictor(ck).postprocess[key] == best[key]
    none = calibrate(ck, samples, val, thresholds=[0.5], progress=False, seed_openings=(1,), min_scores=(0.0,),
                     seed_split_sizes=())                     # not offered: the sweep of before
    assert all(r.get("seed_split_size", 0.0) == 0.0 for r in none["sweep"])


def test_evaluate_predictions_can_say_what_happened_to_each_nucleus(checkpoint, tiny_data):  # noqa: F811
    from nucleiseg_lib.inference import evaluate_predictions
    _, samples, _, val = tiny_data
    plain = evaluate_predictions(Predictor(checkpoint), samples, val, progress=False)
    rows = evaluate_predictions(Predictor(checkpoint), samples, val, progress=False, outcomes=True)
    assert "merged" not in plain[0]
    for p, r in zip(plain, rows):
        assert {k: r[k] for k in p} == p                      # the same metrics, plus the outcomes
        assert r["matched"] + r["missed"] + r["merged"] + r["other"] == r["n_true"]


def test_describe_postprocess_names_only_what_was_chosen():
    from nucleiseg_lib.inference import describe_postprocess
    assert describe_postprocess(dict(threshold=0.5, method="cc")) == "threshold 0.5, cc"
    assert describe_postprocess(dict(threshold=0.4, method="watershed", seed_opening=2, min_score=0.7,
                                     seed_split=1.0)) == ("threshold 0.4, watershed, seeds opened 2x, objects of mean "
                                                          "probability under 0.7 dropped, seeds split at distance "
                                                          "maxima 1 px high")
    assert "split" not in describe_postprocess(dict(threshold=0.4, method="watershed", seed_split=0.0))
    assert describe_postprocess(dict(threshold=0.4, method="watershed", seed_split=0.0, seed_split_size=0.1)) == (
        "threshold 0.4, watershed, seeds split at distance maxima 0.1 x the median seed radius high")
    assert describe_postprocess(dict(threshold=0.6, method="watershed", contour_threshold=0.7)) == (
        "threshold 0.6, watershed from seeds where the contour probability is under 0.7")
    assert "contour" not in describe_postprocess(dict(threshold=0.6, method="cc", contour_threshold=0.7))
    assert describe_postprocess(dict(threshold=0.5, method="watershed", seed_min_fraction=0.2)) == (
        "threshold 0.5, watershed, seeds under 0.2 x the median seed area dropped")
    assert "area" not in describe_postprocess(dict(threshold=0.5, method="watershed", seed_min_fraction=0.0))


def test_distance_watershed_splits_touching_nuclei_from_the_distance_map():
    from nucleiseg_lib.data.transforms import instance_distance
    truth = two_touching_discs()
    prob = (truth > 0).astype(float)
    dist = instance_distance(truth)
    assert label_instances(prob, 0.5, method="cc").max() == 1
    two = label_instances(prob, 0.5, method="distance", distance=dist, distance_threshold=0.5)
    assert two.max() == 2 and ((two > 0) == (truth > 0)).all()
    assert len({(two[truth == i]).min() for i in (1, 2)}) == 2 and all(
        len(np.unique(two[truth == i])) == 1 for i in (1, 2))             # each disc is one whole instance
    zero = np.zeros_like(prob)                                             # no contour, as a 3-channel model gives
    seg = postprocess_proba(np.stack([prob, zero, dist]), dict(DEFAULT_POSTPROCESS, method="distance"))
    np.testing.assert_array_equal(seg["labels"], two)
    with pytest.raises(ValueError, match="needs a distance map"):
        label_instances(prob, 0.5, method="distance")
    with pytest.raises(ValueError, match="unknown instance method 'peaks'"):
        label_instances(prob, 0.5, method="peaks")


def test_border_channel_cuts_the_seeds_of_touching_nuclei_that_the_contour_leaves_joined():
    from nucleiseg_lib.data.transforms import touching_border
    from nucleiseg_lib.inference.postprocess import channel_names, postprocess_settings
    truth = two_touching_discs()
    prob = (truth > 0).astype(float)
    contour = np.zeros_like(prob)                        # a contour channel that draws no line between them
    border = touching_border(truth).astype(float)
    assert label_instances(prob, 0.5, contour, "watershed", contour_threshold=0.5).max() == 1
    two = label_instances(prob, 0.5, contour, "watershed", contour_threshold=0.5, border=border, border_threshold=0.5)
    assert two.max() == 2 and ((two > 0) == (truth > 0)).all()
    assert label_instances(prob, 0.5, contour, "watershed", border=border * 0.4, border_threshold=0.5).max() == 1
    # post-processing reads each map by the name the model's config gives it: a border is not a distance map
    pp = postprocess_settings(3, None, ("mask", "contour", "border"))
    assert pp["method"] == "watershed" and channel_names(pp, 3) == ["mask", "contour", "border"]
    np.testing.assert_array_equal(postprocess_proba(np.stack([prob, contour, border]), pp)["labels"], two)
    assert channel_names(postprocess_settings(3), 3) == ["mask", "contour", "distance"]   # older checkpoints
    with pytest.raises(ValueError, match="names 3 channels"):
        postprocess_proba(np.stack([prob, contour]), pp)


def fit_tiny(tmp_path, tiny_data, targets):  # noqa: F811
    """best.pt of a tiny model trained for one epoch on `targets`."""
    from nucleiseg_lib.training import TrainData, Trainer, make_model
    from test_training import tiny_config
    _, samples, train, val = tiny_data
    cfg = tiny_config(epochs=1, targets=targets)
    Trainer(tmp_path / "run", cfg, device="cpu", progress=False, log=lambda *a, **k: None).fit(
        make_model(cfg), TrainData(samples, train, val))
    return tmp_path / "run" / "best.pt"


def test_calibrate_offers_the_distance_watershed_to_a_model_with_a_distance_channel(tmp_path, tiny_data):  # noqa: F811
    from nucleiseg_lib.inference import calibrate
    _, samples, train, val = tiny_data
    ck = fit_tiny(tmp_path, tiny_data, ("mask", "contour", "distance"))
    assert Predictor(ck).predict_proba(samples[val[0]][0]).shape[0] == 3
    chosen = calibrate(ck, samples, val, thresholds=[0.4, 0.5], progress=False, seed_openings=(1,), min_scores=(0.0,),
                       seed_splits=(0.0,), distance_thresholds=(0.4, 0.6))
    dist = [r for r in chosen["sweep"] if r["method"] == "distance"]
    assert sorted({r["distance_threshold"] for r in dist}) == [0.4, 0.6] and len(dist) == 2 * 2
    best = max(chosen["sweep"], key=lambda r: r["dsb_score"])
    assert chosen["method"] == best["method"] and Predictor(ck).postprocess["method"] == best["method"]


def test_calibrate_offers_border_thresholds_to_a_model_with_a_border_channel(tmp_path, tiny_data):  # noqa: F811
    from nucleiseg_lib.inference import calibrate, describe_postprocess
    _, samples, train, val = tiny_data
    ck = fit_tiny(tmp_path, tiny_data, ("mask", "contour", "border"))
    assert Predictor(ck).postprocess["channels"] == ["mask", "contour", "border"]
    chosen = calibrate(ck, samples, val, thresholds=[0.5], progress=False, seed_openings=(1,), min_scores=(0.0,),
                       contour_thresholds=(0.5,), seed_splits=(0.0,), seed_split_sizes=(), border_thresholds=(0.3, 0.7))
    assert {r["method"] for r in chosen["sweep"]} == {"cc", "watershed"}        # no distance method
    ws = [r for r in chosen["sweep"] if r["method"] == "watershed"]
    assert sorted(r["border_threshold"] for r in ws) == [0.3, 0.7]
    if chosen["method"] == "watershed":
        assert "border probability is" in describe_postprocess(chosen)
