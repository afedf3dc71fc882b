"""Checkpoints: every one loads with weights_only=True; best.pt holds no optimizer; code-carrying pickles are refused."""

import os
import pickletools
import zipfile

import pytest
import torch

from nucleiseg_lib.errors import CheckpointError
from nucleiseg_lib.training import load_checkpoint, save_checkpoint
from nucleiseg_lib.training.checkpoint import model_state, rng_state, set_rng_state

from test_training import fit  # noqa: F401  (the tiny training of test_training)
from test_training import tiny_data  # noqa: F401  (pytest fixture)


class _Payload:
    """Unpickling this calls os.system: what a crafted .pt passed around by students could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_carrying_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_config": {}, "x": _Payload(marker)}, evil)
    # the payload is real: the pickle inside the .pt imports os.system and calls it (read statically, never run)
    with zipfile.ZipFile(evil) as z:
        data_pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data_pkl)]
    assert any(name == "GLOBAL" and arg.endswith(" system") for name, arg in ops)
    assert ("REDUCE", None) in ops
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(evil)
    msg = str(err.value)
    assert str(evil) in msg and "refused" in msg and "system" in msg
    assert not marker.exists()


def test_every_checkpoint_of_a_run_loads_with_weights_only(tmp_path, tiny_data):  # noqa: F811
    fit(tmp_path / "run", tiny_data, 2)
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp_path / "run" / name, weights_only=True)
        assert "model" in state and "model_config" in state


def test_best_holds_model_only_last_holds_everything(tmp_path, tiny_data):  # noqa: F811
    fit(tmp_path / "run", tiny_data, 2)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert last["kind"] == "resume" and best["kind"] == "model"
    assert {"optimizer", "scaler", "rng"} <= set(last)
    assert not {"optimizer", "scaler", "rng"} & set(best)
    assert {"model", "model_config", "config", "split", "postprocess"} <= set(best)
    assert os.path.getsize(tmp_path / "run" / "best.pt") < 0.6 * os.path.getsize(tmp_path / "run" / "last.pt")


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    import random

    import numpy as np
    save_checkpoint({"model": {}, "model_config": {}, "rng": rng_state()}, tmp_path / "r.pt")
    expect = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expect[0], got[0]) and (expect[1] == got[1]).all() and expect[2] == got[2]


def test_checkpoint_of_an_earlier_version_with_numpy_rng_still_loads(tmp_path):
    import random

    import numpy as np
    old = {"model": {}, "model_config": {}, "rng": dict(torch=torch.get_rng_state(), numpy=np.random.get_state(),
                                                         python=random.getstate())}
    torch.save(old, tmp_path / "old.pt")
    set_rng_state(load_checkpoint(tmp_path / "old.pt")["rng"])


def test_model_state_half():
    state = {"model": {"w": torch.ones(2), "n": torch.tensor(3)}, "model_config": {}, "optimizer": {"a": 1}}
    small = model_state(state, half=True)
    assert small["model"]["w"].dtype == torch.float16 and small["model"]["n"].dtype == torch.int64
    assert "optimizer" not in small and small["kind"] == "model"
