"""The U-Net: the original's size, any input size, shapes."""

import pytest
import torch

from nucleiseg_lib.model import UNet, count_parameters, input_span, receptive_field, trace_shapes


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


def unet_of_depth(depth, **kw):
    cls = type(f"UNet{depth}", (UNet,), {"depth": depth})
    return cls(**kw)


def test_input_span_of_a_one_level_unet_by_hand():
    # output 0: decoder block [-2, 2]; transposed conv [-1, 1]; bottleneck [-3, 3]; pool [-6, 7]; block [-8, 9]
    model = unet_of_depth(1, base=2)
    assert input_span(model, 0) == (-8, 9)
    assert input_span(model, 2) == (-6, 11)   # [0, 4] -> [0, 2] -> [-2, 4] -> [-4, 9] -> [-6, 11]
    assert receptive_field(model) == 18


def test_receptive_field_does_not_depend_on_width():
    assert receptive_field(UNet(base=4)) == receptive_field(UNet(base=64, batch_norm=True)) == 204


def test_input_span_matches_what_changes_the_output():
    """A bright pixel changes output pixel c exactly when it lies inside the computed span."""
    torch.manual_seed(0)
    model = unet_of_depth(2, base=2).eval()
    for p in model.parameters():  # positive weights: no cancellation, every ReLU open
        p.data = p.data.abs() + 0.01
    for off in range(4):
        c, ds = 64 + off, torch.arange(-40, 41)
        base = torch.rand(len(ds), 3, 8, 160) * 0.1
        x = base.clone()
        x[torch.arange(len(ds)), :, 4, c + ds] = 100.0
        with torch.no_grad():
            changed = ds[(model(x)[:, 0, 4, c] - model(base)[:, 0, 4, c]).abs() > 1e-4]
        lo, hi = input_span(model, off)
        assert (int(changed.min()), int(changed.max())) == (lo - off, hi - off)


def test_fingerprint_follows_the_weights():
    from nucleiseg_lib.model import fingerprint
    torch.manual_seed(0)
    a = UNet(base=4)
    torch.manual_seed(0)
    b = UNet(base=4).to(memory_format=torch.channels_last)
    assert fingerprint(a) == fingerprint(b) and len(fingerprint(a)) == 12
    with torch.no_grad():
        b.head.bias += 1e-3
    assert fingerprint(a) != fingerprint(b)


def test_fuse_batch_norm_keeps_the_outputs_and_leaves_the_model_alone():
    from torch import nn

    from nucleiseg_lib.model import fuse_batch_norm
    torch.manual_seed(0)
    model = UNet(base=4, out_channels=2, batch_norm=True)
    for m in model.modules():                           # running statistics far from the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1); m.running_var.uniform_(0.2, 3); m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-0.5, 0.5)
    model.eval()
    fused = fuse_batch_norm(model)
    x = torch.randn(2, 3, 37, 50)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules()) and not fused.training
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 18          # the original keeps its 18
    plain = UNet(base=4)
    assert [n for n, _ in fuse_batch_norm(plain).named_parameters()] == [n for n, _ in plain.named_parameters()]


def test_fuse_relu_gives_the_same_maps_in_fp32_and_bf16_to_their_rounding():
    from torch import nn

    from nucleiseg_lib.model import ConvReLU, _conv_relu_op, fuse_batch_norm, fuse_relu
    if _conv_relu_op() is None:
        pytest.skip("this PyTorch has no oneDNN convolution with a fused ReLU (fuse_relu then changes nothing)")
    torch.manual_seed(0)
    model = UNet(base=4, out_channels=2).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 37, 50).contiguous(memory_format=torch.channels_last)
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()  # oneDNN refuses bf16 convolutions on an AVX2-only CPU
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        fused = fuse_relu(model, dtype)
        if dtype == torch.bfloat16 and not bf16:
            assert fused is model  # the fused operation fails on its test input: the model is used unfused
            continue
        assert sum(isinstance(m, ConvReLU) for m in fused.modules()) == 18           # every conv + ReLU pair
        assert not any(isinstance(m, ConvReLU) for m in model.modules())           # the original is left alone
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            torch.testing.assert_close(fused(x).float(), model(x).float(), rtol=tol, atol=tol)
    fused = fuse_relu(model, torch.bfloat16 if bf16 else torch.float32)
    assert isinstance(fused.down[0][0], ConvReLU) and isinstance(fused.down[0][1], nn.Identity)
    bn = fuse_batch_norm(UNet(base=4, out_channels=2, batch_norm=True).eval())   # conv, identity, ReLU: fused too
    assert sum(isinstance(m, ConvReLU) for m in fuse_relu(bn).modules()) == 18


def test_fuse_relu_leaves_the_model_unchanged_where_the_operation_is_missing(monkeypatch):
    import nucleiseg_lib.model as model_module
    model = UNet(base=4).eval()
    monkeypatch.setattr(model_module, "_conv_relu_op", lambda: None)
    assert model_module.fuse_relu(model) is model
