"""benchmarks/device_data.py: stage1_train packed small for a GPU machine, and unpacked there to the same samples."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nucleiseg_lib.data import SampleCache, list_samples
from nucleiseg_lib.data.synth import make_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("device_data", REPO / "benchmarks" / "device_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["device_data"] = mod  # its process pool pickles its functions by module name
    spec.loader.exec_module(mod)
    return mod


def _write(folder, sid, rgba, masks):
    (folder / sid / "images").mkdir(parents=True)
    (folder / sid / "masks").mkdir()
    Image.fromarray(rgba).save(folder / sid / "images" / f"{sid}.png")
    for name, m in masks.items():
        Image.fromarray((m * 255).astype(np.uint8)).save(folder / sid / "masks" / f"{name}.png")


@pytest.fixture
def kaggle(tmp_path):
    """Three samples by hand: grey RGBA with a mask covered by a later one, colour, and one synthetic."""
    root = tmp_path / "data"
    root.mkdir()
    grey = np.zeros((12, 16, 4), np.uint8)
    grey[..., :3] = np.arange(16, dtype=np.uint8)[None, :, None] * 9
    grey[..., 3] = 255
    a = np.zeros((12, 16), bool)
    a[2:5, 2:5] = True
    covered = np.zeros((12, 16), bool)
    covered[3:4, 3:4] = True           # fully inside "c", which comes later: its label disappears in the merge
    c = np.zeros((12, 16), bool)
    c[2:6, 2:6] = True
    d = np.zeros((12, 16), bool)
    d[8:11, 10:14] = True
    _write(root, "g", grey, {"a": a, "b": covered, "c": c, "d": d})
    colour = np.random.default_rng(0).integers(0, 256, (10, 9, 4)).astype(np.uint8)
    colour[..., 3] = 255
    _write(root, "k", colour, {"m": np.eye(10, 9, dtype=bool)})
    make_synthetic_dataset(tmp_path / "synth", n=1, size=32, seed=1)
    sid = list_samples(tmp_path / "synth")[0]
    (tmp_path / "synth" / sid).rename(root / sid)
    return root


def test_pack_unpack_gives_the_same_samples(kaggle, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    tool = _tool()
    tool.pack(kaggle, tmp_path / "packed", workers=1)
    assert Image.open(tmp_path / "packed" / "g.png").mode == "L"       # equal channels: one grey channel
    assert Image.open(tmp_path / "packed" / "k.png").mode == "RGB"     # alpha dropped, colour kept
    labels = np.asarray(Image.open(tmp_path / "packed" / "g_labels.png"))
    assert sorted(np.unique(labels)) == [0, 3, 4]                      # labels 1 and 2 covered by 3
    ids, built = tool.unpack(tmp_path / "packed", tmp_path / "out", workers=2)
    assert ids == list_samples(kaggle) and built == len(ids)
    assert len(list((tmp_path / "out" / "g" / "masks").glob("*.png"))) == 4   # empty masks keep the label numbers
    ids, bad = tool.check(kaggle, tmp_path / "out")
    assert bad == [] and len(ids) == 3
    a, b = SampleCache(kaggle, progress=False), SampleCache(tmp_path / "out", progress=False)
    assert np.array_equal(a.load("g")[1], b.load("g")[1])


def test_check_finds_a_changed_sample(kaggle, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEISEG_CACHE", str(tmp_path / "cache"))
    tool = _tool()
    tool.pack(kaggle, tmp_path / "packed", workers=1)
    tool.unpack(tmp_path / "packed", tmp_path / "out", workers=1)
    Image.fromarray(np.zeros((10, 9), np.uint8)).save(tmp_path / "out" / "k" / "masks" / "00001.png")
    assert tool.check(kaggle, tmp_path / "out")[1] == ["k"]
    with pytest.raises(SystemExit, match="no packed samples"):
        tool.unpack(tmp_path / "nothing", tmp_path / "out2", workers=1)
