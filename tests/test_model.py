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


def test_half_instance_norm_by_hand():
    from nucleiseg_lib.model import HalfInstanceNorm
    norm = HalfInstanceNorm(4).train()
    x = torch.zeros(2, 4, 3, 3)
    x[0, :, 0, 0] = 9.0      # image 0: one bright pixel in every channel
    x[1] = 2.0               # image 1: flat
    y = norm(x)
    # the first two channels per image: image 1 (flat) becomes 0, image 0's pixel is 8 / sqrt(8) = 2.83 sd up
    assert torch.allclose(y[1, :2], torch.zeros(2, 3, 3), atol=1e-6)
    assert torch.allclose(y[0, :2, 0, 0], torch.full((2,), 8 / 8 ** 0.5), atol=1e-4)
    # the other two per batch: mean (9 + 9 x 2) / 18 = 1.5, variance 76.5 / 18 = 4.25
    assert torch.allclose(y[1, 2:], torch.full((2, 3, 3), 0.5 / 4.25 ** 0.5), atol=1e-4)
    assert torch.allclose(y[0, 2:, 1, 1], torch.full((2,), -1.5 / 4.25 ** 0.5), atol=1e-4)
    assert norm.instance.running_mean is None and norm.batch.running_mean.abs().sum() > 0


def test_half_instance_norm_forgets_each_images_contrast_in_its_instance_half():
    from nucleiseg_lib.model import HalfInstanceNorm
    norm = HalfInstanceNorm(6).eval()
    x = torch.rand(1, 6, 8, 8, generator=torch.Generator().manual_seed(0))
    a, b = norm(x), norm(3.0 * x + 0.5)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-4)        # instance half: the same map
    assert not torch.allclose(a[:, 3:], b[:, 3:], atol=1e-2)    # batch half (running statistics): not


def test_instance_levels_build_and_check():
    from nucleiseg_lib.model import HalfInstanceNorm
    model = UNet(base=4, batch_norm=True, instance_levels=2)
    assert model.config["instance_levels"] == 2
    kinds = [sum(isinstance(m, HalfInstanceNorm) for m in block) for block in model.down]
    assert kinds == [1, 1, 0, 0]                                 # the first normalisation of levels 0 and 1
    assert not any(isinstance(m, HalfInstanceNorm) for m in model.up.modules())
    assert "instance_levels" not in UNet(base=4, batch_norm=True).config   # older checkpoints' configs unchanged
    with pytest.raises(ValueError, match="batch_norm"):
        UNet(base=4, instance_levels=1)
    with pytest.raises(ValueError, match="between 0 and 4"):
        UNet(base=4, batch_norm=True, instance_levels=5)


def test_instance_levels_survive_fusion_and_a_checkpoint():
    from nucleiseg_lib.model import fuse_batch_norm, fuse_relu
    from nucleiseg_lib.training.checkpoint import build_model
    model = UNet(base=4, out_channels=2, batch_norm=True, instance_levels=3)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.train()(x)                                             # move the batch statistics off their start
    model.eval()
    with torch.no_grad():
        want = model(x)
        assert torch.allclose(fuse_relu(fuse_batch_norm(model))(x), want, atol=1e-5)
        again = build_model(dict(model_config=model.config, model=model.state_dict()))
        assert torch.equal(again(x), want)
