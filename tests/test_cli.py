"""The nucleiseg command: argument parsing, errors that name the file, the synth subcommand."""

import pytest

from nucleiseg_lib.cli import _table, build_parser, main, parse_rule, read_id_list
from nucleiseg_lib.errors import DataError


def test_parse_rule():
    assert parse_rule(None) is None
    assert parse_rule("0.35") == 0.35
    assert parse_rule("otsu") == "otsu"


def test_read_id_list_checks_every_id(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("b\n\na\n")
    assert read_id_list(path, ["a", "b", "c"]) == ["a", "b"]
    path.write_text("a\nzzz\n")
    with pytest.raises(DataError, match=r"ids.txt: 1 ids are not in the data folder, e.g. zzz"):
        read_id_list(path, ["a", "b"])


def test_table_aligns_numbers_and_text():
    text = _table([dict(image="mean", iou=0.5)], ["image", "iou"])
    assert text.splitlines() == [f"{'image':>14}  {'iou':>14}", f"{'mean':>14}  {0.5:>14.4f}"]


def test_missing_checkpoint_is_an_error_that_names_it(tmp_path, capsys):
    ckpt = tmp_path / "none.pt"
    assert main(["predict", "--checkpoint", str(ckpt), "--input", str(tmp_path), "--output",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nucleiseg predict: error: ") and "none.pt" in err


def test_unknown_subcommand_exits():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["paint"])


def test_synth_writes_samples(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["synth", "--out", str(out), "--n", "2", "--size", "32"]) == 0
    assert len([p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2
    assert "wrote 2 synthetic samples" in capsys.readouterr().out
