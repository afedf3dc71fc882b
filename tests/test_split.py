"""Splits: random by id, and train / validation / test by whole experiments."""

from types import SimpleNamespace

import numpy as np
import pytest

from nucleiseg_lib.data.split import (experiment_groups, image_features, make_split, split_experiments,
                                      split_ids)


def test_random_split_is_seeded_and_disjoint():
    ids = [f"id{i:02d}" for i in range(20)]
    train, val = split_ids(ids, 0.25, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == ids
    assert split_ids(list(reversed(ids)), 0.25, seed=3) == (train, val)
    assert split_ids(ids, 0.25, seed=4) != (train, val)


def feature(size="256x256", modality="fluorescence", log_area=5.0, bg=0.05, fg=0.5, colour=(0.3, 0.3, 0.3)):
    return dict(size=size, modality=modality, log_area=log_area, background=bg, foreground=fg, colour=list(colour))


def test_image_features_by_hand():
    image = np.zeros((10, 20, 3), np.float32)
    labels = np.zeros((10, 20), np.int32)
    labels[1:3, 1:3] = 1          # area 4
    labels[5:8, 5:8] = 2          # area 9
    labels[0, 19] = 3             # area 1
    image[labels > 0] = 0.8
    f = image_features(image, labels)
    assert f["size"] == "20x10" and f["modality"] == "fluorescence"
    assert f["log_area"] == pytest.approx(np.log(4))
    assert f["foreground"] == pytest.approx(0.8) and f["background"] == 0


def test_groups_split_one_size_by_nucleus_size():
    feats = {f"s{i:02d}": feature(log_area=3.0 + 0.01 * i) for i in range(40)}
    feats.update({f"b{i:02d}": feature(log_area=7.0 + 0.01 * i) for i in range(40)})
    feats["x"] = feature(size="1024x1024", modality="brightfield")
    groups = experiment_groups(feats, images_per_group=40)
    assert groups["x"] == "brightfield 1024x1024"
    small, big = {groups[k] for k in feats if k[0] == "s"}, {groups[k] for k in feats if k[0] == "b"}
    assert len(small) == 1 and len(big) == 1 and small != big
    assert small == {"fluorescence 256x256 #1"}   # numbered by nucleus size: deterministic names
    assert experiment_groups(dict(reversed(list(feats.items()))), images_per_group=40) == groups


def test_test_set_holds_whole_experiments_and_never_a_whole_kind():
    groups, kinds = {}, {}
    for g, n, kind in (("f1", 30, "fluorescence"), ("f2", 30, "fluorescence"), ("f3", 40, "fluorescence"),
                       ("s1", 20, "stained"), ("s2", 10, "stained"), ("b1", 8, "brightfield")):
        for i in range(n):
            groups[f"{g}-{i}"], kinds[f"{g}-{i}"] = g, kind
    sp = split_experiments(groups, kinds, test_fraction=0.2, val_fraction=0.1, seed=0)
    assert sorted(sp["train"] + sp["val"] + sp["test"]) == sorted(groups)
    assert not (set(sp["train"]) | set(sp["val"])) & set(sp["test"])
    test_groups = {groups[i] for i in sp["test"]}
    assert test_groups == set(sp["test_groups"])
    for g in test_groups:  # whole experiments: none of a test group's images is trained on
        assert all(groups[i] != g for i in sp["train"] + sp["val"])
    assert {kinds[i] for i in sp["test"]} == {"fluorescence", "stained"}
    assert "brightfield" in sp["not_held_out"] and "one experiment" in sp["not_held_out"]["brightfield"]
    for kind in ("fluorescence", "stained"):  # some of every kind stays in training
        assert any(kinds[i] == kind for i in sp["train"])
    assert split_experiments(groups, kinds, 0.2, 0.1, seed=0) == sp
    # test_fraction 0: every experiment trains (the model to use on new images); validation stays random
    every = split_experiments(groups, kinds, test_fraction=0.0, val_fraction=0.1, seed=0)
    assert every["test"] == [] and every["test_groups"] == []
    assert sorted(every["train"] + every["val"]) == sorted(groups) and len(every["val"]) == 14


def test_make_split_random_and_experiments():
    rng = np.random.default_rng(0)
    samples = {}
    for i in range(6):
        labels = np.zeros((16, 16), np.int32)
        labels[4:8, 4:8] = 1
        samples[f"a{i}"] = (np.repeat(rng.random((16, 16, 1)), 3, axis=2).astype(np.float32) * 0.1, labels)
    cfg = SimpleNamespace(split="random", val_fraction=0.34, test_fraction=0.2, seed=0)
    sp = make_split(samples, sorted(samples), cfg)
    assert sp["method"] == "random" and sp["test"] == [] and len(sp["val"]) == 2
    cfg.split = "experiments"
    sp = make_split(samples, sorted(samples), cfg)
    # one experiment only: nothing can be held out, and the split says why
    assert sp["test"] == [] and "fluorescence" in sp["not_held_out"]


def test_split_seed_keeps_the_split_when_the_seed_changes():
    from nucleiseg_lib.data.split import split_seed
    ids = [f"s{i:02d}" for i in range(40)]
    samples = {sid: (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.int32)) for sid in ids}
    base = SimpleNamespace(split="random", val_fraction=0.25, test_fraction=0.0, seed=0)
    other = SimpleNamespace(split="random", val_fraction=0.25, test_fraction=0.0, seed=1)
    pinned = SimpleNamespace(split="random", val_fraction=0.25, test_fraction=0.0, seed=1, split_seed=0)
    assert split_seed(base) == 0 and split_seed(other) == 1 and split_seed(pinned) == 0
    assert split_seed(SimpleNamespace(seed=3, split_seed=-1)) == 3
    assert make_split(samples, ids, pinned)["val"] == make_split(samples, ids, base)["val"]
    assert make_split(samples, ids, other)["val"] != make_split(samples, ids, base)["val"]
