"""benchmarks/inference_probe.py: the upper bound of exact outlines, and batch norm blended with an image's own."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("inference_probe", REPO / "benchmarks" / "inference_probe.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["inference_probe"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_true_outlines_replaces_only_matched_objects():
    true = np.zeros((10, 20), np.int32)
    true[1:6, 1:6] = 1          # 25 px, found a pixel too wide below
    true[1:6, 10:13] = 2        # 15 px, found as a 4-px sliver: IoU 0.27, not matched
    pred = np.zeros_like(true)
    pred[1:7, 1:6] = 3          # IoU 25/30 with nucleus 1
    pred[2:4, 10:12] = 5
    pred[8:10, 15:20] = 7       # nothing true there
    out = _tool().true_outlines(pred, true)
    assert (out == 3).sum() == 25 and np.array_equal(out == 3, true == 1)   # its true pixels, its own label
    assert np.array_equal(out == 5, pred == 5)                              # unmatched: as predicted
    assert np.array_equal(out == 7, pred == 7)
    assert out.dtype == np.int32


def test_true_outlines_keeps_pixels_of_another_object():
    """A matched nucleus whose true pixels a second prediction also covers does not take them from it."""
    true = np.zeros((8, 12), np.int32)
    true[1:7, 1:7] = 1
    pred = np.zeros_like(true)
    pred[1:7, 1:6] = 1          # IoU 30/36
    pred[1:7, 6:10] = 2         # covers column 6 of nucleus 1, matches nothing (IoU 6/24 with 1)
    out = _tool().true_outlines(pred, true)
    assert np.array_equal(out == 1, pred == 1)
    assert np.array_equal(out == 2, pred == 2)


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                        nn.BatchNorm2d(2))
    for bn in (net[1], net[4]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def test_blend_batch_norm_ends_are_running_and_own_statistics():
    tool, x = _tool(), torch.randn(1, 3, 9, 7) * 3 + 1
    with torch.no_grad():
        running = _net()(x)
        own = _net().train()(x)                      # training mode: normalised by the batch's own statistics
        zero = tool.blend_batch_norm(_net(), 0.0)(x)
        one = tool.blend_batch_norm(_net(), 1.0)(x)
        half = tool.blend_batch_norm(_net(), 0.5)(x)
    torch.testing.assert_close(zero, running, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one, own, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(half, running, atol=1e-3) and not torch.allclose(half, own, atol=1e-3)


def test_shift_outlines_by_hand():
    labels = np.zeros((7, 9), np.int32)
    labels[1:4, 1:4] = 1        # 3x3
    labels[2:5, 5:8] = 2        # 3x3, one background column between them
    shift = _tool().shift_outlines
    grown = shift(labels, 1)
    # each 3x3 -> 5x5; the column between them (x = 4) goes to the larger label in the rows both reach (1-4)
    assert (grown == 1).sum() == 25 - 4 and grown[1, 4] == 2 and grown[0, 4] == 1
    assert (grown == 2).sum() == 25 and grown[5, 4] == 2 and grown[6, 4] == 0
    shrunk = shift(labels, -1)
    assert (shrunk == 1).sum() == 1 and shrunk[2, 2] == 1 and (shrunk == 2).sum() == 1 and shrunk[3, 6] == 2
    # an object at the image's edge is not shrunk from outside the image
    edge = np.zeros((4, 4), np.int32)
    edge[:3, :3] = 4
    assert (shift(edge, -1) == 4).sum() == 4 and shift(edge, -1).dtype == np.int32
