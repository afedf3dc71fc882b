"""The pretrained course model: the export mechanism (on a tiny model trained here), its use by name, its card.

The shipped model itself (``nucleiseg_lib/pretrained/cpu.pt``) is re-evaluated on the real DSB2018 when both the
model and ``../shared/data/dsb2018/stage1_train`` are present, and its card's scores must come out again.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from nucleiseg_lib import pretrained
from nucleiseg_lib.data import SampleCache, data_hash, list_samples, split_ids
from nucleiseg_lib.data.synth import make_synthetic_dataset
from nucleiseg_lib.errors import CheckpointError
from nucleiseg_lib.inference import Predictor, calibrate
from nucleiseg_lib.training import Trainer, TrainData, get_recipe, load_checkpoint, make_model, save_checkpoint  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"


def _tool():
    spec = importlib.util.spec_from_file_location("pretrained_tool", REPO / "benchmarks" / "pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A smoke-trained tiny model with a train/val/test split, exported as the pretrained model into a tmp folder."""
    tmp = tmp_path_factory.mktemp("pre")
    data = tmp / "data"
    make_synthetic_dataset(data, n=12, size=64, seed=4)
    ids = list_samples(data)
    train, rest = split_ids(ids, 0.5, 0)
    val, test = rest[:3], rest[3:]
    samples = SampleCache(data, cache_dir=tmp / "cache", progress=False).load_all()
    cfg = get_recipe("smoke", base=4, size=32, batch_size=2, num_workers=0, max_images=0, repeats=1, epochs=2)
    data_ = TrainData(samples, train, val, test, method="test",
                      info=dict(hash=data_hash(data), n_images=len(ids)))
    Trainer(tmp / "run", cfg, device="cpu", progress=False, log=lambda *a, **k: None).fit(make_model(cfg), data_)
    calibrate(tmp / "run" / "best.pt", samples, val, progress=False)
    out = tmp / "pkg"
    args = _tool().main.__globals__["argparse"].Namespace(run=str(tmp / "run"), data=str(data), out=str(out),
                                                          allow_other_data=False, quiet=True)
    card = _tool().export(args)
    return dict(tmp=tmp, data=data, out=out, card=card, val=val, test=test)


def test_export_writes_fp16_weights_only_and_a_card(exported):
    out, card = exported["out"], exported["card"]
    model = out / "cpu.pt"
    state = torch.load(model, weights_only=True)
    assert state["kind"] == "model" and "optimizer" not in state and "rng" not in state
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float16}
    assert state["postprocess"]["threshold"] is not None and "sweep" in state["postprocess"]
    saved = json.loads((out / "card.json").read_text())
    assert saved == json.loads(json.dumps(card))
    assert card["size_bytes"] == model.stat().st_size
    assert card["scores"]["validation"]["n_images"] == 3 and card["scores"]["test"]["n_images"] == 3
    assert len(card["commit"]) >= 40 and card["data_hash"] and card["command"].startswith("nucleiseg train")
    md = (out / "MODEL_CARD.md").read_text()
    assert card["command"] in md and card["data_hash"] in md and f"{card['scores']['test']['dsb_score']:.3f}" in md


def test_card_scores_are_measured_again(exported):
    for name, ids in (("validation", exported["val"]), ("test", exported["test"])):
        got = pretrained.score(exported["out"] / "cpu.pt", exported["data"], ids)
        assert got == exported["card"]["scores"][name]


def test_pretrained_by_name(exported, monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "MODEL", exported["out"] / "cpu.pt")
    p = Predictor("pretrained")
    assert p.path == str(exported["out"] / "cpu.pt") and next(p.model.parameters()).dtype == torch.float32
    from nucleiseg_lib.cli import main
    img = next((exported["data"]).glob("*/images/*.png"))
    assert main(["predict", "--checkpoint", "pretrained", "--input", str(img), "--output", str(tmp_path / "o")]) == 0
    assert any((tmp_path / "o").iterdir())
    # 05 and 06 without a trained run: the fallback says so
    lines = []
    assert pretrained.fallback(tmp_path / "runs" / "cpu" / "best.pt", log=lines.append) == exported["out"] / "cpu.pt"
    assert "pretrained" in lines[0] and "best.pt" in lines[0]


def test_no_pretrained_model_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "MODEL", tmp_path / "cpu.pt")
    with pytest.raises(CheckpointError, match="no pretrained model in this installation.*benchmarks/pretrained.py"):
        Predictor("pretrained")
    assert pretrained.fallback(tmp_path / "best.pt") == tmp_path / "best.pt"


def test_export_refuses_other_data(exported, tmp_path):
    other = tmp_path / "other"
    make_synthetic_dataset(other, n=12, size=64, seed=4)
    (next(other.glob("*/masks/*.png"))).write_bytes(b"x" * 10)  # the same ids, other content
    tool = _tool()
    args = tool.argparse.Namespace(run=str(exported["tmp"] / "run"), data=str(other), out=str(tmp_path / "o"),
                                   allow_other_data=False, quiet=True)
    with pytest.raises(SystemExit, match="data hash"):
        tool.export(args)


def _results_file(folder, name, config, dsb):
    """A results file as ``recipes.py evaluate`` writes it, cut to what a card reads, built by hand."""
    kind = dict(n=2, dsb_score=dsb, ap50=0.5, iou=0.5, pixel_accuracy=0.9, n_pred=3.0, n_true=4.0)
    variant = dict(name="validation-chosen threshold, watershed on contours", overall=dict(kind),
                   by_kind={"fluorescence": kind})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(dict(
        name=name, config=config, postprocess=dict(method="watershed"), test_groups=["fluorescence 64x64 #1"],
        sets=dict(val=dict(variants=[variant]), test=dict(variants=[variant])))))


def test_export_of_a_model_trained_on_every_experiment_names_its_recipes_left_out_score(exported, tmp_path):
    """No test images: the card says so and carries the held-out run's left-out score, from its results file."""
    tmp, data = exported["tmp"], exported["data"]
    samples = SampleCache(data, cache_dir=tmp / "cache", progress=False).load_all()
    ids = list_samples(data)
    train, val = split_ids(ids, 0.25, 0)
    cfg = get_recipe("smoke", base=4, size=32, batch_size=2, num_workers=0, max_images=0, repeats=1, epochs=1,
                     test_fraction=0.0)
    Trainer(tmp_path / "all", cfg, device="cpu", progress=False, log=lambda *a, **k: None).fit(
        make_model(cfg), TrainData(samples, train, val, info=dict(hash=data_hash(data), n_images=len(ids))))
    calibrate(tmp_path / "all" / "best.pt", samples, val, progress=False)
    held = {**cfg.to_dict(), "test_fraction": 0.15, "seed": 3}
    _results_file(tmp_path / "results", "held", json.loads(json.dumps(held)), 0.321)
    _results_file(tmp_path / "results", "other", json.loads(json.dumps({**held, "base": 8})), 0.4)
    tool = _tool()

    def args(run, left_out):
        return tool.argparse.Namespace(run=str(run), data=str(data), out=str(tmp_path / "pkg"), left_out=left_out,
                                       results=str(tmp_path / "results"), allow_other_data=False, quiet=True)
    card = tool.export(args(tmp_path / "all", "held"))
    assert set(card["scores"]) == {"validation"} and card["command"].endswith("--test-fraction 0.0")
    lo = card["left_out_recipe"]
    assert lo["run"] == "held" and lo["dsb_score"] == 0.321 and lo["by_kind"]["fluorescence"]["n_true"] == 4.0
    md = (tmp_path / "pkg" / "MODEL_CARD.md").read_text()
    assert "| test | 0 | (the run has no test split)" in md and "trained on every experiment" in md and "0.321" in md
    with pytest.raises(SystemExit, match="not the exported run's recipe: base differ"):
        tool.export(args(tmp_path / "all", "other"))
    with pytest.raises(SystemExit, match="no results of run 'nothing'"):
        tool.export(args(tmp_path / "all", "nothing"))
    with pytest.raises(SystemExit, match="has test images of its own"):
        tool.export(args(tmp / "run", "held"))


@pytest.mark.slow
@pytest.mark.skipif(not pretrained.available(), reason="no pretrained model in nucleiseg_lib/pretrained "
                    "(written by `python benchmarks/pretrained.py export --run runs/cpu`)")
@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real DSB2018 is not at {REAL}")
def test_shipped_model_reproduces_its_card(tmp_path):
    card = pretrained.card()
    state = load_checkpoint(pretrained.MODEL)
    assert card["size_bytes"] == pretrained.MODEL.stat().st_size < 20 * 2 ** 20
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float16}
    assert data_hash(REAL) == card["data_hash"]
    for name, key in (("validation", "val"), ("test", "test")):
        if name in card["scores"]:
            got = pretrained.score(pretrained.MODEL, REAL, state["split"][key], cache_dir=tmp_path / "cache")
            for k, v in card["scores"][name].items():
                assert got[k] == pytest.approx(v, abs=1e-3), (name, k)
    if "left_out_recipe" in card:   # trained on every experiment: its recipe's left-out score, as benchmarked
        tool = _tool()
        assert card["left_out_recipe"] == tool.left_out_scores(card["left_out_recipe"]["run"], state["config"])


def test_packaged_results_match_the_benchmarks():
    """What notebook 05 shows in an installed package equals benchmarks/results (`benchmarks/recipes.py table`)."""
    from nucleiseg_lib.results import FOLDER
    src = REPO / "benchmarks" / "results"
    wanted = sorted(p.name for p in src.glob("*.json") if "sets" in json.loads(p.read_text()))
    assert sorted(p.name for p in FOLDER.glob("*.json")) == wanted
    for name in wanted + ["ablation.md"]:
        assert (FOLDER / name).read_bytes() == (src / name).read_bytes(), name
    from nucleiseg_lib.report.results import render_ablation
    md = render_ablation()
    assert ("(`cpu`)" in md and "test DSB" in md) if wanted else "no benchmark results yet" in md
