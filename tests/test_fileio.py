"""Atomic writes, the device choice and progress bars only where someone watches."""

import io
import os

import pytest
import torch

from nucleiseg_lib.device import pick_device, precision_name
from nucleiseg_lib.fileio import atomic_path, atomic_write
from nucleiseg_lib.progress import bars_wanted, progress_bar


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_write(path, "w") as f:
        f.write("first")
    assert path.read_text() == "first"
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("crash")
    assert path.read_text() == "first"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]   # no temporary file left


def test_atomic_write_uses_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.bin", fsync=True) as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "b", "a"):
            pass


def test_atomic_path_folder_replaces_the_old_folder(tmp_path):
    final = tmp_path / "sample"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with atomic_path(final, folder=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (final / "new.txt").exists()
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]


def test_pick_device():
    assert pick_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == pick_device("auto").type == pick_device("").type == want


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_bars_only_on_a_terminal():
    assert not bars_wanted(True, io.StringIO())      # a log file
    assert bars_wanted(True, Tty())
    assert not bars_wanted(False, Tty())
    bar = progress_bar(range(3), progress=True)      # pytest captures stderr: not a terminal
    assert bar.disable and list(bar) == [0, 1, 2]


def test_precision_name_says_what_amp_resolves_to():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert precision_name(cpu, "off") == precision_name(cuda, "off") == "float32"
    assert precision_name(cuda, "auto") == precision_name(cpu, "fp16") == "float16"
    assert precision_name(cpu, "bf16") == "bfloat16"
    assert precision_name(cpu, "auto") in ("bfloat16", "float32")   # bf16 only where this CPU computes it natively
