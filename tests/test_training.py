"""Training: checkpoints, exact resume (also after kill -9), losses, bad checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from nucleiseg_lib.data import SampleCache, list_samples, split_ids
from nucleiseg_lib.data.synth import make_synthetic_dataset
from nucleiseg_lib.errors import CheckpointError
from nucleiseg_lib.training import (Trainer, TrainData, build_model, get_recipe, load_checkpoint, make_model,
                                    save_checkpoint, segmentation_loss)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    make_synthetic_dataset(root, n=12, size=64, seed=1)
    cache = SampleCache(root, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    train, val = split_ids(list_samples(root), 0.25, 0)
    return root, cache.load_all(), train, val


def tiny_config(**kw):
    return get_recipe("smoke", **{**dict(base=4, size=32, batch_size=2, num_workers=0, max_images=0, repeats=1), **kw})


def fit(run, data, epochs):
    _, samples, train, val = data
    cfg = tiny_config(epochs=epochs)
    return Trainer(run, cfg, device="cpu", progress=False, log=lambda *a, **k: None).fit(
        make_model(cfg), TrainData(samples, train, val))


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def assert_same_weights(a, b):
    sa, sb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_checkpoint_contents_and_history_json(tmp_path, tiny_data):
    history = fit(tmp_path / "run", tiny_data, 2)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    for key in ("model", "optimizer", "epoch", "history", "config", "model_config", "rng", "split"):
        assert key in state
    assert state["epoch"] == 2 and len(state["history"]) == 2
    saved = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["epoch"] for h in saved] == [1, 2]
    assert set(saved[0]) >= {"epoch", "train_loss", "val_loss", "val_iou"}
    assert strip_time(saved) == strip_time(history)
    assert (tmp_path / "run" / "best.pt").is_file()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_resume_is_exact(tmp_path, tiny_data):
    straight = fit(tmp_path / "straight", tiny_data, 4)
    fit(tmp_path / "resumed", tiny_data, 2)
    resumed = fit(tmp_path / "resumed", tiny_data, 4)
    assert strip_time(resumed) == strip_time(straight)
    assert_same_weights(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt")


def test_resume_refuses_other_architecture(tmp_path, tiny_data):
    fit(tmp_path / "run", tiny_data, 1)
    _, samples, train, val = tiny_data
    cfg = tiny_config(epochs=2, base=8)
    trainer = Trainer(tmp_path / "run", cfg, device="cpu", progress=False, log=lambda *a, **k: None)
    with pytest.raises(CheckpointError, match="last.pt.*base"):
        trainer.fit(make_model(cfg), TrainData(samples, train, val))


def test_fit_trains_the_model_it_is_given(tmp_path, tiny_data):
    _, samples, train, val = tiny_data
    cfg = tiny_config(epochs=1)
    model = make_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = TrainData(samples, train[:-2], val, test_ids=train[-2:], info={"source": "synthetic"})
    Trainer(tmp_path / "run", cfg, device="cpu", progress=False, log=lambda *a, **k: None).fit(model, data)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model was not trained"
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert state["split"]["test"] == sorted(train[-2:]) and state["split"]["method"] == "random"
    assert state["data"] == {"source": "synthetic"}


def test_fit_refuses_a_model_that_does_not_fit_the_config(tmp_path, tiny_data):
    _, samples, train, val = tiny_data
    cfg = tiny_config(epochs=1)
    with pytest.raises(ValueError, match="make_model"):
        Trainer(tmp_path / "run", cfg, device="cpu", progress=False).fit(
            make_model(tiny_config(targets=("mask",))), TrainData(samples, train, val))


def test_train_data_split():
    samples = {f"id{i}": None for i in range(10)}
    data = TrainData.from_config(samples, tiny_config(val_fraction=0.2, split="random"))
    assert (len(data.train_ids), len(data.val_ids), data.test_ids) == (8, 2, [])
    assert data.split() == dict(train=data.train_ids, val=data.val_ids, test=[], method="random", groups={})
    assert TrainData.from_split(samples, {"train": ["id0"], "val": ["id1"]}).test_ids == []
    with pytest.raises(ValueError, match="two of"):
        TrainData(samples, ["id0", "id1"], ["id1"])
    with pytest.raises(ValueError, match="no sample"):
        TrainData(samples, ["id0"], ["nope"])


def test_build_model_checks_architecture(tmp_path, tiny_data):
    fit(tmp_path / "run", tiny_data, 1)
    state = load_checkpoint(tmp_path / "run" / "best.pt")
    assert build_model(state).config["base"] == 4
    with pytest.raises(CheckpointError, match="base=4 in the checkpoint but 16 requested"):
        build_model(state, "best.pt", expect={"base": 16})
    state["model_config"] = {**state["model_config"], "base": 8}
    with pytest.raises(CheckpointError, match="do not fit"):
        build_model(state, "best.pt")


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt: cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a nucleiseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_loss_refuses_extra_dimension():
    logits = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\(2, 1, 1, 8, 8\)"):
        segmentation_loss(logits, torch.zeros(2, 1, 1, 8, 8))
    assert segmentation_loss(logits, torch.zeros(2, 1, 8, 8)).item() == pytest.approx(np.log(2), rel=1e-5)


def test_loss_dice_on_every_channel_by_hand():
    # p = 0.5 everywhere. Mask: 2 of 4 pixels, Dice (2 * 1 + 1) / (2 + 2 + 1) = 0.6; contour: 1 of 4, (1 + 1) / (2 + 1 + 1)
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]]])
    assert segmentation_loss(logits, target, "bce+dice").item() == pytest.approx(np.log(2) + 0.4, rel=1e-5)
    assert segmentation_loss(logits, target, "bce+dice-all").item() == pytest.approx(np.log(2) + 0.4 + 0.5, rel=1e-5)
    with pytest.raises(ValueError, match="dice-mask"):
        segmentation_loss(logits, target, "dice-mask")


def test_loss_dice_on_mask_and_border_by_hand():
    # p = 0.5 everywhere. Mask 2 of 4 pixels: 1 - 0.6; contour 1 of 4 (no Dice term); border 0 of 4:
    # Dice (0 + 1) / (2 + 0 + 1), loss 2/3. BCE is log 2 on every pixel of every channel.
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    names = ["mask", "contour", "border"]
    assert segmentation_loss(logits, target, "bce+dice-border", names).item() == pytest.approx(
        np.log(2) + 0.4 + 2 / 3, rel=1e-5)
    # the border found by name, not by place
    swapped = target[:, [0, 2, 1]]
    assert segmentation_loss(logits, swapped, "bce+dice-border", ["mask", "border", "contour"]).item() == pytest.approx(
        np.log(2) + 0.4 + 2 / 3, rel=1e-5)
    for bad in (None, ["mask", "contour", "distance"], ["mask", "border"]):
        with pytest.raises(ValueError, match="needs a 'border' channel"):
            segmentation_loss(logits, target, "bce+dice-border", bad)


def test_loss_reads_a_weight_channel_by_hand():
    # p = 0.5 everywhere: every pixel's BCE is log 2; weights 1, 1, 1, 5 in both channels: mean (3 + 5) / 4 = 2
    logits = torch.zeros(1, 2, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 5.0]]]])
    assert segmentation_loss(logits, target).item() == pytest.approx(2 * np.log(2), rel=1e-5)
    # the Dice term reads the mask channel only, unweighted
    assert segmentation_loss(logits, target, "bce+dice").item() == pytest.approx(2 * np.log(2) + 0.4, rel=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        segmentation_loss(logits, torch.zeros(1, 4, 2, 2))


def _train_cmd(data, run, epochs):
    return [sys.executable, "-m", "nucleiseg_lib", "train", "--data", str(data), "--run", str(run),
            "--profile", "smoke", "--epochs", str(epochs), "--workers", "0", "--no-calibrate", "--quiet",
            "--base", "4", "--size", "64", "--batch-size", "2"]


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_matches_straight_run(tmp_path):
    data = tmp_path / "data"
    make_synthetic_dataset(data, n=40, size=96, seed=2)
    env = {**os.environ, "NUCLEISEG_CACHE": str(tmp_path / "cache"), "PYTHONPATH": REPO}
    subprocess.run(_train_cmd(data, tmp_path / "straight", 4), check=True, env=env, capture_output=True)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(data, run, 4), env=env, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        for line in proc.stdout:
            if line.startswith("epoch 3/4"):
                break
        time.sleep(0.3)  # well inside epoch 3
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(run / "last.pt")["epoch"] == 2, "the kill must land mid-epoch 3"
    subprocess.run(_train_cmd(data, run, 4), check=True, env=env, capture_output=True)

    assert_same_weights(tmp_path / "straight" / "last.pt", run / "last.pt")
    a = json.loads((tmp_path / "straight" / "history.json").read_text())
    b = json.loads((run / "history.json").read_text())
    assert strip_time(a) == strip_time(b)


def test_sample_weights_balance_experiments_by_square_root():
    from nucleiseg_lib.training.trainer import sample_weights
    ids = ["a1", "a2", "a3", "a4", "b1", "c1", "c1"]           # c1 twice: repeats do not count as images
    groups = {"a1": "A", "a2": "A", "a3": "A", "a4": "A", "b1": "B"}
    assert sample_weights(ids, groups) is None
    w = sample_weights(ids, groups, "experiments")
    assert w.shape == (7,) and abs(float(w.sum()) - 1) < 1e-12
    assert torch.allclose(w[0] / w[4], torch.tensor(0.5, dtype=torch.float64))   # 1/sqrt(4) against 1/sqrt(1)
    assert torch.allclose(w[:4].sum() / w[4], torch.tensor(2.0, dtype=torch.float64))  # experiment A: 2x, not 4x
    assert w[5] == w[6] == w[4]                                 # no experiment: an experiment of its own
    with pytest.raises(ValueError, match="balance"):
        sample_weights(ids, groups, "kinds")


def test_balanced_training_draws_small_experiments_more_and_resumes_exactly(tmp_path, tiny_data):
    _, samples, train, val = tiny_data
    groups = {i: ("big" if k < len(train) - 1 else "small") for k, i in enumerate(train)}
    cfg = tiny_config(epochs=2, balance="experiments", repeats=4)
    data = TrainData(samples, train, val, groups=groups)
    seen = []

    class Spy(Trainer):
        def datasets(self, d):
            tr, va = super().datasets(d)
            return SpyDataset(tr, seen), va

    class SpyDataset(torch.utils.data.Dataset):
        def __init__(self, ds, log):
            self.ds, self.log, self.ids = ds, log, ds.ids

        def set_epoch(self, epoch):
            self.ds.set_epoch(epoch)

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            self.log.append(self.ds.ids[i % len(self.ds.ids)])
            return self.ds[i]

    quiet = dict(device="cpu", progress=False, log=lambda *a, **k: None)
    straight = Spy(tmp_path / "straight", cfg, **quiet).fit(make_model(cfg), data)
    share = seen.count(train[-1]) / len(seen)     # sqrt weights: 1 / (1 + sqrt(n - 1)); uniform: 1 / n
    assert share > 2 / len(train), (share, len(train))
    Trainer(tmp_path / "resumed", tiny_config(epochs=1, balance="experiments", repeats=4), **quiet).fit(
        make_model(cfg), data)
    resumed = Trainer(tmp_path / "resumed", cfg, **quiet).fit(make_model(cfg), data)
    assert strip_time(resumed) == strip_time(straight)


def test_config_check_names_a_bad_setting():
    from nucleiseg_lib.training import RECIPES
    for cfg in RECIPES.values():
        assert cfg.check() is cfg
    for key, bad in (("colour", "blue"), ("contour_width", 4), ("balance", "classes"), ("input", "hsv"),
                     ("norm", "tile")):
        with pytest.raises(ValueError, match=f"{key}={bad!r} is not one of"):
            get_recipe("cpu", **{key: bad}).check()
    for bad in (-1, 2.5, True):
        for key in ("paste", "touch"):
            with pytest.raises(ValueError, match=f"{key}={bad!r} is not a whole number"):
                get_recipe("cpu", **{key: bad}).check()
    assert get_recipe("cpu", paste=8).check().paste == 8
    for bad in (-1, "10"):
        with pytest.raises(ValueError, match=f"touch_weight={bad!r} is not a number >= 0"):
            get_recipe("cpu", touch_weight=bad).check()
    with pytest.raises(ValueError, match="add 'contour' to targets"):
        get_recipe("cpu", touch_weight=10.0, targets=("mask",)).check()
    assert get_recipe("cpu", touch_weight=10.0).check().touch_weight == 10.0
    with pytest.raises(ValueError, match="add 'border' to targets"):
        get_recipe("cpu", loss="bce+dice-border").check()
    assert get_recipe("cpu", loss="bce+dice-border", targets=("mask", "contour", "border")).check().loss == "bce+dice-border"
    for key in ("test_fraction", "val_fraction"):
        for bad in (-0.1, 1.0, "0.2"):
            with pytest.raises(ValueError, match=rf"{key}={bad!r} is not a share in \[0, 1\)"):
                get_recipe("cpu", **{key: bad}).check()
    assert get_recipe("cpu", test_fraction=0).check().test_fraction == 0
    for bad in (-1, 5, 1.5, True):
        with pytest.raises(ValueError, match=f"instance_levels={bad!r} is not a whole number from 0 to 4"):
            get_recipe("cpu", instance_levels=bad).check()
    with pytest.raises(ValueError, match="needs batch_norm=True"):
        get_recipe("gpu", instance_levels=2).check()
    assert make_model(get_recipe("cpu", instance_levels=3).check()).config["instance_levels"] == 3


def test_weight_average_follows_the_formula_and_copies_counters():
    from nucleiseg_lib.training.average import WeightAverage
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    average = WeightAverage(model, 0.9)
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    model[1].num_batches_tracked.fill_(5)
    average.update(model)                      # warm-up: d = min(0.9, 2/11)
    d = 2 / 11
    assert torch.allclose(average.model[0].weight, torch.full((1, 2), d * 1 + (1 - d) * 3))
    assert int(average.model[1].num_batches_tracked) == 5
    for _ in range(200):
        average.update(model)
    assert average.decay == 0.9 and average.updates == 201
    assert torch.allclose(average.model[0].weight, torch.full((1, 2), 3.0))
    assert not any(p.requires_grad for p in average.model.parameters())
    again = WeightAverage(model, 0.9)
    again.load_state_dict(average.state_dict())
    assert again.updates == 201 and torch.equal(again.model[0].weight, average.model[0].weight)
    with pytest.raises(ValueError, match="decay=1.0"):
        WeightAverage(model, 1.0)
    with pytest.raises(ValueError, match="ema=1"):
        get_recipe("cpu", ema=1).check()
    # a shorter warm-up: d = min(0.9, 2/3) for the first update; kept through a resume
    short = WeightAverage(model, 0.9, warmup=2)
    with torch.no_grad():
        model[0].weight.fill_(6.0)
    short.update(model)
    assert torch.allclose(short.model[0].weight, torch.full((1, 2), 2 / 3 * 3 + 1 / 3 * 6))
    again = WeightAverage(model, 0.9)
    again.load_state_dict(short.state_dict())
    assert again.warmup == 2.0
    old = {k: v for k, v in short.state_dict().items() if k != "warmup"}   # saved before the setting existed
    again.load_state_dict(old)
    assert again.warmup == 10.0
    with pytest.raises(ValueError, match="warmup=1"):
        WeightAverage(model, 0.9, warmup=1)
    with pytest.raises(ValueError, match="ema_warmup=1"):
        get_recipe("cpu", ema_warmup=1).check()
    with pytest.raises(ValueError, match="blur=1.5"):
        get_recipe("cpu", blur=1.5).check()
    with pytest.raises(ValueError, match="warp=-0.1"):
        get_recipe("cpu", warp=-0.1).check()


def test_averaged_run_keeps_the_average_as_best_and_resumes_exactly(tmp_path, tiny_data):
    _, samples, train, val = tiny_data
    quiet = dict(device="cpu", progress=False, log=lambda *a, **k: None)
    cfg = tiny_config(epochs=3, ema=0.9)
    straight = Trainer(tmp_path / "straight", cfg, **quiet).fit(make_model(cfg), TrainData(samples, train, val))
    Trainer(tmp_path / "resumed", tiny_config(epochs=1, ema=0.9), **quiet).fit(make_model(cfg),
                                                                               TrainData(samples, train, val))
    resumed = Trainer(tmp_path / "resumed", cfg, **quiet).fit(make_model(cfg), TrainData(samples, train, val))
    assert strip_time(resumed) == strip_time(straight)
    for name in ("last.pt", "best.pt"):
        assert_same_weights(tmp_path / "straight" / name, tmp_path / "resumed" / name)
    last = load_checkpoint(tmp_path / "straight" / "last.pt")
    assert last["average"]["updates"] > 0
    assert any(not torch.equal(last["model"][k], v) for k, v in last["average"]["model"].items())
    # best.pt holds the averaged weights, not the raw ones (without validation images every epoch is the best)
    Trainer(tmp_path / "noval", tiny_config(epochs=2, ema=0.9), **quiet).fit(make_model(cfg),
                                                                             TrainData(samples, train, []))
    last, best = (load_checkpoint(tmp_path / "noval" / name) for name in ("last.pt", "best.pt"))
    assert best["epoch"] == 2 and best["model"].keys() == last["average"]["model"].keys()
    for k, v in last["average"]["model"].items():
        assert torch.equal(best["model"][k], v), k
    # a run folder trained without the average cannot be continued with it
    fit(tmp_path / "plain", tiny_data, 1)
    with pytest.raises(CheckpointError, match="no weight average"):
        Trainer(tmp_path / "plain", tiny_config(epochs=2, ema=0.9), **quiet).fit(make_model(cfg),
                                                                                TrainData(samples, train, val))


def test_step_shares_follow_the_capped_decay():
    from nucleiseg_lib.training.average import step_shares
    shares = step_shares(0.5, 3)             # updates 1, 2, 3: decays min(0.5, (1 + n) / (10 + n)) = 2/11, 3/12, 4/13
    d = np.array([2 / 11, 3 / 12, 4 / 13])
    np.testing.assert_allclose(shares, [(1 - d[0]) * d[1] * d[2], (1 - d[1]) * d[2], 1 - d[2]])
    assert shares.sum() + d.prod() == pytest.approx(1.0)
    # the warm-up stays below 0.989 for 805 updates: 0.995 and 0.998 average alike (cpu-ema, cpu-ema998)
    np.testing.assert_array_equal(step_shares(0.995, 805), step_shares(0.998, 805))
    assert not np.array_equal(step_shares(0.995, 3000), step_shares(0.998, 3000))
    assert step_shares(0.9, 100)[-1] == pytest.approx(0.1)
    # a warm-up of 2 lets 0.998 act after 498 updates: the average reaches further back
    np.testing.assert_allclose(step_shares(0.5, 3, warmup=2), [(1 - 0.5) * 0.5 * 0.5, 0.5 * 0.5, 0.5])
    assert step_shares(0.998, 805, warmup=2)[-200:].sum() < 0.5 < step_shares(0.998, 805)[-200:].sum()


def test_mix_styles_mixes_statistics_between_items_and_keeps_the_content():
    from nucleiseg_lib.training.mixstyle import mix_styles
    torch.manual_seed(0)
    base = torch.randn(1, 3, 8, 8)
    x = torch.cat([base * s + m for s, m in ((1, 0), (2, 5), (0.5, -3), (3, 1))])   # one content, four styles
    out = mix_styles(x, alpha=0.5)
    assert out.shape == x.shape and out.dtype == x.dtype
    means, outs = x.mean(dim=(2, 3)), out.mean(dim=(2, 3))
    assert torch.all(outs >= means.min(0).values - 1e-4) and torch.all(outs <= means.max(0).values + 1e-4)
    assert not torch.allclose(outs, means, atol=1e-3)                 # some item took another's style
    z = (out - out.mean(dim=(2, 3), keepdim=True)) / out.std(dim=(2, 3), keepdim=True)
    zb = (base - base.mean(dim=(2, 3), keepdim=True)) / base.std(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(z, zb.expand_as(z), rtol=1e-3, atol=1e-3)  # the content is untouched
    assert torch.equal(mix_styles(x[:1]), x[:1])                       # one item: nothing to mix with
    assert mix_styles(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_mixstyle_hooks_act_in_training_only_and_come_off():
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training.mixstyle import add_mixstyle
    torch.manual_seed(0)
    model = UNet(base=4)
    x = torch.randn(4, 3, 32, 32)
    model.train()
    plain = model(x).detach()
    assert add_mixstyle(model, 0.0) == []
    handles = add_mixstyle(model, 1.0)
    assert len(handles) == 2
    assert not torch.allclose(model(x).detach(), plain)
    model.eval()
    with torch.no_grad():
        evaluated = model(x)
    for h in handles:
        h.remove()
    with torch.no_grad():
        assert torch.equal(model(x), evaluated)                        # eval mode: the hooks did nothing
    model.train()
    assert torch.equal(model(x).detach(), plain)
    with pytest.raises(ValueError, match="mixstyle=2"):
        get_recipe("cpu", mixstyle=2).check()


def test_run_with_mixstyle_resumes_exactly_and_saves_no_hooks(tmp_path, tiny_data):
    _, samples, train, val = tiny_data
    quiet = dict(device="cpu", progress=False, log=lambda *a, **k: None)
    cfg = tiny_config(epochs=2, mixstyle=1.0)
    straight = Trainer(tmp_path / "straight", cfg, **quiet).fit(model := make_model(cfg),
                                                                  TrainData(samples, train, val))
    assert not model.down[0]._forward_hooks                            # taken off after training
    Trainer(tmp_path / "resumed", tiny_config(epochs=1, mixstyle=1.0), **quiet).fit(make_model(cfg),
                                                                                    TrainData(samples, train, val))
    resumed = Trainer(tmp_path / "resumed", cfg, **quiet).fit(make_model(cfg), TrainData(samples, train, val))
    assert strip_time(resumed) == strip_time(straight)
    assert_same_weights(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt")
    plain = Trainer(tmp_path / "plain", tiny_config(epochs=2), **quiet).fit(make_model(cfg),
                                                                            TrainData(samples, train, val))
    assert strip_time(plain) != strip_time(straight)                   # the mixing changed training


def _sam_case(rho, seed=0):
    """A small U-Net after one Adam step on a fixed batch: plain (rho None) or sharpness-aware."""
    from nucleiseg_lib.training.trainer import sharpness_aware_step
    torch.manual_seed(seed)
    model = make_model(get_recipe("smoke")).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    y = (torch.rand(2, 2, 32, 32, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    loss_of = lambda: segmentation_loss(model(x), y, "bce+dice", ("mask", "contour"))
    loss_of().backward()
    if rho is None:
        opt.step()
    else:
        sharpness_aware_step(model, opt, loss_of, rho)
    return model


def test_sharpness_aware_step_is_the_plain_step_at_radius_0_and_updates_batch_norm_once():
    plain, flat, sam = _sam_case(None), _sam_case(0.0), _sam_case(0.5)
    for (name, a), b, c in zip(plain.state_dict().items(), flat.state_dict().values(), sam.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
        if "running" in name or "num_batches" in name:
            assert torch.equal(a, c), name          # the second pass leaves the batch statistics alone
    moved = [n for (n, a), c in zip(plain.named_parameters(), sam.parameters()) if not torch.allclose(a, c)]
    assert moved                                    # the gradient at the moved weights is another one


def test_sam_is_checked_and_refuses_the_fp16_scaler():
    with pytest.raises(ValueError, match="sam=-0.1 is not a number >= 0"):
        get_recipe("cpu", sam=-0.1).check()
    cfg = get_recipe("smoke", sam=0.05).check()
    trainer = Trainer.__new__(Trainer)
    trainer.cfg, trainer.device = cfg, torch.device("cpu")
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    model = make_model(cfg).train()
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.rand(2, 3, 32, 32), torch.zeros(2, 2, 32, 32)
    with pytest.raises(ValueError, match="gradient scaler"):
        trainer.train_step(model, opt, x, y, scaler)
    trainer.train_step(model, opt, x, y, torch.amp.GradScaler("cpu", enabled=False))   # bf16 / fp32: fine


def test_lovasz_hinge_by_hand():
    from nucleiseg_lib.training.losses import lovasz_hinge_loss
    # Every error 1: the IoU steps telescope to the last one, 1 - 0 / (2 + 2) = 1, whatever the sort does with ties
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert lovasz_hinge_loss(torch.zeros(1, 1, 2, 2), target).item() == pytest.approx(1.0)
    # Sure and right: every hinge error negative, no loss
    assert lovasz_hinge_loss(2 * (2 * target - 1), target).item() == 0.0
    # Logits of +-1 with one pixel missed and one added: errors 2 there, 0 elsewhere; the surrogate is exactly
    # 2 x (1 - IoU), IoU 1/3
    z = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]])
    assert lovasz_hinge_loss(z, target).item() == pytest.approx(2 * (1 - 1 / 3))
    # Two pixels, target [1, 0], logits [0, 1]: errors 1 and 2; sorted [2 (outside), 1 (inside)], IoU steps
    # 1 - 1/2 and 1 - 0/2: 2 x 0.5 + 1 x 0.5
    assert lovasz_hinge_loss(torch.tensor([[[[0.0, 1.0]]]]), torch.tensor([[[[1.0, 0.0]]]])).item() == pytest.approx(1.5)
    # Per image, averaged over the batch; BCE is added on every channel
    both = torch.cat([torch.zeros(1, 1, 2, 2), 2 * (2 * target - 1)])
    assert lovasz_hinge_loss(both, torch.cat([target, target])).item() == pytest.approx(0.5)
    logits = torch.zeros(1, 2, 2, 2)
    two = torch.cat([target, 1 - target], 1)
    assert segmentation_loss(logits, two, "bce+lovasz").item() == pytest.approx(np.log(2) + 1.0, rel=1e-5)
