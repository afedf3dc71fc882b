"""The U-Net: the original's size, any input size, shapes."""

import pytest
import torch

from nucleiseg_lib.model import UNet, count_parameters, trace_shapes


def test_original_parameter_count():
    assert round(count_parameters(UNet(base=64)) / 1e6, 1) == 31.0


@pytest.mark.parametrize("h,w", [(64, 64), (37, 50), (100, 17)])
def test_any_input_size(h, w):
    out = UNet(base=4, out_channels=2, batch_norm=True)(torch.zeros(2, 3, h, w))
    assert out.shape == (2, 2, h, w)


def test_trace_shapes_follows_the_u():
    shapes = dict(trace_shapes(UNet(base=4), torch.zeros(1, 3, 32, 32)))
    assert shapes["down[0]"] == (1, 4, 32, 32)
    assert shapes["bottleneck"] == (1, 64, 2, 2)
    assert shapes["head"] == (1, 1, 32, 32)
