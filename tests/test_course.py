"""Tests of the notebook setup helpers (nucleiseg_lib.course) and the exploration statistics."""

import numpy as np
import pytest

from nucleiseg_lib import course, runtime
from nucleiseg_lib.data import SampleCache, read_sample, split_ids
from nucleiseg_lib.data.stats import (all_areas, all_background_scores, check_masks, classify_modality, colour_spread,
                                      count_by, dataset_stats, examples_by, image_stats, nucleus_areas, size_counts,
                                      summary_by)
from nucleiseg_lib.data.synth import make_synthetic_dataset, make_synthetic_sample


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("course") / "synth"
    make_synthetic_dataset(root, n=10, size=64, seed=3)
    return root


@pytest.fixture
def ctx(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    return course.setup_course("smoke", str(synth), str(tmp_path / "run"), smoke_images=6, progress=False,
                               log=lambda *a, **k: None)


# ------------------------------------------------------------------ setup ---

def test_resolve_profile():
    assert course.resolve_profile("smoke") == "smoke"
    assert course.resolve_profile("GPU") == "gpu"
    assert course.resolve_profile("auto") == "smoke"  # under pytest, auto never trains for real
    with pytest.raises(ValueError, match="unknown PROFILE"):
        course.resolve_profile("fast")


def test_resolve_profile_auto_outside_pytest(monkeypatch):
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(runtime, "_cuda_available", lambda: False)
    assert course.resolve_profile("auto") == "cpu"
    monkeypatch.setattr(runtime, "_cuda_available", lambda: True)
    assert course.resolve_profile("auto") == "gpu"


def test_resolve_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_HOME", str(tmp_path))
    auto = course.resolve_run_dir("auto", "cpu", log=lambda *a: None)
    assert auto == (tmp_path / "runs" / "cpu").resolve() and auto.is_dir()
    given = course.resolve_run_dir(tmp_path / "mine", "gpu")
    assert given == (tmp_path / "mine").resolve() and given.is_dir()


def _fake_run(folder, recipe):
    from nucleiseg_lib.model import UNet
    from nucleiseg_lib.training import save_checkpoint
    model = UNet(base=4)
    save_checkpoint(dict(kind="model", model=model.state_dict(), model_config=model.config,
                         config=dict(recipe=recipe), split=dict(train=[], val=[])), folder / "best.pt")


def test_run_folder_is_named_by_the_recipe_and_found_on_other_hardware(tmp_path, monkeypatch):
    """04 on a GPU runtime trains into runs/gpu; 05 on a CPU runtime (auto) finds that run, not runs/cpu."""
    monkeypatch.setenv("NUCLEISEG_HOME", str(tmp_path))
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setattr(runtime, "_cuda_available", lambda: True)
    trained = runtime.train_run_dir("auto", "auto", log=lambda *a: None)
    assert trained == (tmp_path / "runs" / "gpu").resolve()
    assert runtime.find_run("auto", "auto") is None
    _fake_run(trained, "gpu")
    monkeypatch.setattr(runtime, "_cuda_available", lambda: False)
    assert runtime.resolve_profile("auto") == "cpu"
    assert runtime.find_run("auto", "auto") == trained
    assert runtime.find_run("auto", "cpu") is None  # an explicit recipe means that recipe's run


def test_setup_course_uses_model_follows_the_run_and_says_so(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_HOME", str(tmp_path))
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "runs" / "original").mkdir(parents=True)
    _fake_run(tmp_path / "runs" / "original", "original")
    lines = []
    ctx = course.setup_course("auto", str(synth), "auto", progress=False, log=lines.append, uses="model")
    assert ctx.profile == "original" and ctx.run_dir == (tmp_path / "runs" / "original").resolve()
    assert any("model" in line and "original" in line and "best.pt" in line for line in lines)


def test_setup_course_for_data_only_makes_no_run_folder(synth, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_HOME", str(tmp_path))
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    ctx = course.setup_course("smoke", str(synth), progress=False, log=lambda *a, **k: None, uses="data")
    assert ctx.run_dir is None and not (tmp_path / "runs").exists()


def test_colab_home_data_and_cache_on_drive(tmp_path, monkeypatch):
    """In Colab (a stand-in google.colab module), Drive is mounted once and holds data, cache and runs."""
    import sys
    import types
    mounted = []
    colab = types.ModuleType("google.colab")
    drive = types.ModuleType("google.colab.drive")

    def mount(path):
        mounted.append(path)
        (tmp_path / "content" / "drive" / "MyDrive").mkdir(parents=True)
    drive.mount = mount
    colab.drive = drive
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.drive", drive)
    monkeypatch.setenv("NUCLEISEG_COLAB_CONTENT", str(tmp_path / "content"))
    monkeypatch.delenv("NUCLEISEG_HOME", raising=False)
    monkeypatch.delenv("NUCLEISEG_CACHE", raising=False)
    monkeypatch.setattr(runtime, "_HOME", {})
    home = tmp_path / "content" / "drive" / "MyDrive" / "nucleiseg"
    assert runtime.course_home() == home
    assert runtime.data_dir() == home / "data" and runtime.cache_dir() == home / "cache"
    assert runtime.train_run_dir("auto", "gpu") == (home / "runs" / "gpu").resolve()
    assert mounted == [str(tmp_path / "content" / "drive")]


def test_gpu_line_names_profile_without_gpu(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert course.gpu_line("smoke") == "no GPU: SMOKE profile on the CPU"


def test_setup_course_on_synthetic_data(ctx, synth, tmp_path, capsys):
    assert ctx.profile == "smoke" and ctx.recipe.recipe == "smoke"
    assert ctx.source == "synthetic" and ctx.synthetic
    assert ctx.root == synth.resolve()
    assert ctx.run_dir == (tmp_path / "run").resolve() and ctx.run_dir.is_dir()
    assert ctx.device in ("cpu", "cuda")
    assert len(ctx.all_ids) == 10 and len(ctx.ids) == 6 and set(ctx.ids) <= set(ctx.all_ids)
    assert ctx.split() == split_ids(ctx.ids, ctx.recipe.val_fraction, ctx.recipe.seed)


def test_setup_course_warns_loudly_on_synthetic_data(synth, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    course.setup_course("smoke", str(synth), str(tmp_path / "run"), progress=False)
    out = capsys.readouterr().out
    assert "SYNTHETIC DATA" in out and "!!!" in out
    assert "no GPU" in out or "GPU:" in out


def test_samples_are_cached_and_memoised(ctx, synth):
    samples = ctx.samples()
    assert sorted(samples) == ctx.ids
    assert ctx.samples() is samples
    image, labels = samples[ctx.ids[0]]
    ref_image, ref_labels = read_sample(synth, ctx.ids[0])
    assert image.dtype == np.float16 and np.array_equal(labels, ref_labels)
    some = ctx.samples(ctx.ids[:2])
    assert list(some) == ctx.ids[:2] and some[ctx.ids[0]] is samples[ctx.ids[0]]
    assert SampleCache(synth, ids=ctx.ids, progress=False).n_built == 0  # built once, reused


def test_samples_loads_only_what_is_asked(ctx):
    part = ctx.samples(ctx.ids[1:3])
    assert sorted(part) == ctx.ids[1:3] and len(ctx._samples) == 2
    assert len(ctx.samples()) == len(ctx.ids)


def test_data_info(ctx):
    info = ctx.data_info()
    assert info["source"] == "synthetic" and info["n_images"] == 6 and len(info["hash"]) == 16


def test_requires(ctx):
    with pytest.raises(FileNotFoundError, match="run 04_training first"):
        ctx.requires("04_training", ctx.run_dir / "best.pt")
    (ctx.run_dir / "best.pt").write_bytes(b"x")
    assert ctx.requires("04_training", ctx.run_dir / "best.pt") == ctx.run_dir / "best.pt"


def test_resume_note(ctx):
    assert "from scratch" in ctx.resume_note()
    (ctx.run_dir / "last.pt").write_bytes(b"x")
    (ctx.run_dir / "history.json").write_text("[{}, {}]")
    assert "after epoch 2" in ctx.resume_note()


def test_validation_ids(ctx):
    _, val = ctx.split()
    assert ctx.validation_ids({"split": {"val": val}}) == val
    assert ctx.validation_ids({"split": {"val": ctx.ids}}, limit=2) == ctx.ids[:2]
    with pytest.raises(ValueError, match="trained on other images"):
        ctx.validation_ids({"split": {"val": ["not-an-id"]}})
    with pytest.raises(ValueError, match="no validation split"):
        ctx.validation_ids({"split": None})


def test_smoke_subset_is_deterministic_and_respects_the_size_cap(synth, tmp_path):
    ids = [f"id{i:03d}" for i in range(50)]
    a, b = course.smoke_subset(ids, 10), course.smoke_subset(ids, 10)
    assert a == b == sorted(a) and len(a) == 10 and set(a) <= set(ids)
    assert course.smoke_subset(ids[:5], 10) == ids[:5]
    big = tmp_path / "big"
    make_synthetic_dataset(big, n=4, size=(64, 96), seed=1)
    make_synthetic_dataset(big, n=8, size=32, seed=2)
    small = [i for i in course.list_samples(big) if course.image_pixels(big, i) == 32 * 32]
    assert len(small) == 8
    assert set(course.smoke_subset(course.list_samples(big), 5, root=big, max_pixels=32 * 32)) <= set(small)


# ------------------------------------------------------------ statistics ---

@pytest.mark.parametrize("style", ["fluorescence", "brightfield", "stained"])
def test_classify_modality_on_synthetic_styles(style):
    for seed in range(3):
        image, _ = make_synthetic_sample(np.random.default_rng(seed), (64, 64), style)
        assert classify_modality(image / 255.0) == style


def test_colour_spread():
    grey = np.full((4, 4, 3), 0.3, np.float32)
    assert colour_spread(grey) == 0
    colour = grey.copy()
    colour[..., 0] = 0.9
    assert colour_spread(colour) == pytest.approx(0.6)


def test_image_stats():
    labels = np.zeros((10, 10), np.int32)
    labels[0:2, 0:2] = 1
    labels[5:8, 5:8] = 3  # label 2 unused: skipped
    image = np.zeros((10, 10, 3), np.float32)
    s = image_stats(image, labels)
    assert s["height"] == 10 and s["width"] == 10 and s["modality"] == "fluorescence"
    assert s["n_nuclei"] == 2 and sorted(s["areas"].tolist()) == [4, 9]
    assert s["foreground_fraction"] == pytest.approx(0.13)
    assert s["median_area"] == 6.5
    assert image_stats(image, np.zeros((10, 10), int))["n_nuclei"] == 0
    assert nucleus_areas(np.zeros((3, 3), int)).size == 0


def test_dataset_stats_from_folder_and_memory_agree(synth):
    ids = course.list_samples(synth)[:4]
    from_disk = dataset_stats(synth, ids)
    in_memory = dataset_stats({i: read_sample(synth, i) for i in ids})
    assert [r["id"] for r in from_disk] == ids
    for a, b in zip(from_disk, in_memory):
        assert a["n_nuclei"] == b["n_nuclei"] > 0 and a["modality"] == b["modality"]
        assert np.array_equal(a["areas"], b["areas"])
    rows = from_disk
    assert sum(count_by(rows, "modality").values()) == 4
    assert sum(size_counts(rows).values()) == 4 and list(size_counts(rows)) == ["64x64"]
    assert len(all_areas(rows)) == sum(r["n_nuclei"] for r in rows)
    groups = summary_by(rows)
    assert sum(g["images"] for g in groups) == 4
    picked = examples_by(rows, per_group=1)
    assert len(picked) == len(groups)


def test_all_background_scores(synth):
    ids = course.list_samples(synth)[:3]
    samples = {i: read_sample(synth, i) for i in ids}
    rows = all_background_scores(samples, ids)
    for r in rows:
        fg = np.mean(samples[r["id"]][1] > 0)
        assert r["pixel_accuracy"] == pytest.approx(1 - fg)
        assert r["iou"] == 0 and r["dice"] == 0 and r["dsb_score"] == 0


def test_check_masks(synth, tmp_path):
    import shutil

    from PIL import Image
    rows = check_masks(synth)
    assert len(rows) == 10
    assert all(r["problem"] == "" and r["overlap_pixels"] == 0 and r["empty_masks"] == 0 for r in rows)
    bad = tmp_path / "bad"
    shutil.copytree(synth, bad)
    sid = rows[0]["id"]
    masks = sorted((bad / sid / "masks").iterdir())
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(masks[0])              # overlaps every other mask
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(bad / rows[1]["id"] / "masks" / "wrong.png")  # wrong size
    got = {r["id"]: r for r in check_masks(bad, [sid, rows[1]["id"]])}
    assert got[sid]["overlap_pixels"] > 0
    assert "differs" in got[rows[1]["id"]]["problem"]


# ---------------------------------------------------------- lesson helpers ---

def test_coarse_mask():
    mask = np.zeros((40, 37), bool)
    mask[:20, :20] = True
    coarse = course.coarse_mask(mask, 8)
    assert coarse.shape == mask.shape and coarse.dtype == bool
    assert coarse[:16, :16].all() and not coarse[30:, 30:].any()
    assert np.array_equal(course.coarse_mask(mask, 1), mask)
    tiny = np.zeros((32, 32), bool)
    tiny[3:6, 3:6] = True  # a nucleus smaller than half a block disappears
    assert not course.coarse_mask(tiny, 16).any()


def test_fit_pixel_classifier_learns_black_from_a_target_divided_twice():
    image, labels = make_synthetic_sample(np.random.default_rng(0), (64, 64), "fluorescence")
    image = image / 255.0
    target = (labels > 0).astype(np.float32)
    right = course.fit_pixel_classifier(image, target, steps=150)
    wrong = course.fit_pixel_classifier(image, target / 255.0, steps=150)
    assert right.shape == target.shape
    assert (right > 0.5).mean() > 0.5 * target.mean()
    assert not (wrong > 0.5).any()


def test_failure_reason():
    kinds = {"fluorescence": 9, "stained": 1}
    row = dict(n_true=40, n_pred=10, iou=0.3, dsb_score=0.05)
    text = course.failure_reason(row, "stained", kinds)
    assert "stained image (1 of 10 training images - rare in training)" in text
    assert "10 nuclei found for 40 true" in text and "foreground itself is wrong" in text
    text = course.failure_reason(dict(n_true=10, n_pred=30, iou=0.8, dsb_score=0.2), "fluorescence", kinds)
    assert "split" in text and "largely right" in text and "rare" not in text
    assert "about the right count" in course.failure_reason(dict(n_true=10, n_pred=10, iou=0.8), "x", {})


def test_summary_table():
    rows = course.summary_table({"a": {"iou": 0.5, "dsb_score": 0.1}, "b": {"iou": 0.2}}, keys=("iou", "dsb_score"),
                                name="rule")
    assert rows == [dict(rule="a", iou=0.5, dsb_score=0.1), dict(rule="b", iou=0.2, dsb_score="")]


# ------------------------------------------------------ notebook skeleton ---

def _skeleton():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "tools" / "notebook_skeleton.py"
    spec = importlib.util.spec_from_file_location("notebook_skeleton", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_skeleton_cells_come_from_the_package_metadata():
    """Badges, setup cells and the README all carry pyproject's [project.urls] Repository, and are in sync."""
    sk = _skeleton()
    url = sk.repo_url()
    assert url.startswith("https://")
    assert sk.sync(check=True) == [], "run: python tools/notebook_skeleton.py sync"
    import json
    for path in sorted(sk.NB_DIR.glob("0*.ipynb")):
        nb = json.loads(path.read_text())
        text = "".join("".join(c["source"]) for c in nb["cells"])
        assert f"git+{url}" in text and sk.colab_url(path.stem) in text
        trains = path.stem in sk.TRAINS
        assert ("accelerator" in nb["metadata"]) == trains, path.name
        assert ("gpuType" in nb["metadata"].get("colab", {})) == trains, path.name
    assert url in sk.README.read_text()


def test_setup_cell_pins_colab_packages_and_fails_in_one_sentence():
    src = _skeleton().setup_cell_source()
    compile(src, "setup", "exec")
    for name in ("torch", "torchvision", "numpy", "ipywidgets"):
        assert f'"{name}"' in src
    assert '"-c", pins.name' in src and "raise SystemExit" in src and "Restart session" in src
