"""The U-Net of Ronneberger et al. (2015), as in the original project.

Four levels of (conv3x3 + ReLU) x 2 then max-pool; a bottleneck of 16 x `base`
channels (1024 at base 64); transpose-convolution upsampling with skip
concatenation; a 1x1 convolution to one logit per output channel. Padding keeps
sizes, and any input size works: inputs are padded to a multiple of 16 and the
output is cropped back.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class HalfInstanceNorm(nn.Module):
    """Half the channels normalised per image (instance norm), the other half per batch (IBN-a, Pan et al. 2018).

    Instance normalisation removes each image's own contrast and colour statistics from a feature map, which
    is what changes from one stain or microscope to the next; batch normalisation keeps what tells nuclei
    from background. Both with a learnt scale and shift.

    Shapes
    ------
    (B, C, H, W) -> (B, C, H, W); the first ``C // 2`` channels by instance, the rest by batch.
    """

    def __init__(self, channels):
        super().__init__()
        self.half = channels // 2
        self.instance = nn.InstanceNorm2d(self.half, affine=True)
        self.batch = nn.BatchNorm2d(channels - self.half)

    def forward(self, x):
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.instance(a.contiguous()), self.batch(b.contiguous())], dim=1)


def double_conv(c_in, c_out, batch_norm=False, instance_norm=False):
    """(conv3x3 [+ BN] + ReLU) twice: the U-Net's basic block.

    With `instance_norm` (and `batch_norm`) the first normalisation is a :class:`HalfInstanceNorm`.
    """
    layers = []
    for i, c in enumerate((c_in, c_out)):
        layers.append(nn.Conv2d(c, c_out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(HalfInstanceNorm(c_out) if instance_norm and i == 0 else nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net for nucleus segmentation.

    Parameters
    ----------
    in_channels : int
        3 for RGB input.
    out_channels : int
        1 for the foreground logit (the original); 2 adds a nucleus-contour logit.
    base : int
        Channels of the first level (64 in the original, 31.0M parameters); each
        level doubles it. Use 16 or 32 on a CPU.
    batch_norm : bool
        Batch normalisation after each convolution (not in the original).
    instance_levels : int
        With `batch_norm`: in the first this many encoder levels, the block's first normalisation is
        half instance norm (:class:`HalfInstanceNorm`, IBN-a), for invariance to each image's contrast and
        stain. 0: batch norm only.

    Shapes
    ------
    input (B, in_channels, H, W) -> output (B, out_channels, H, W) logits, any H, W.
    """

    depth = 4

    def __init__(self, in_channels=3, out_channels=1, base=64, batch_norm=False, instance_levels=0):
        super().__init__()
        if instance_levels and not batch_norm:
            raise ValueError(f"instance_levels={instance_levels} replaces batch normalisations: needs batch_norm=True")
        if not 0 <= instance_levels <= self.depth:
            raise ValueError(f"instance_levels={instance_levels} is not between 0 and {self.depth}")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, base=base, batch_norm=batch_norm)
        if instance_levels:  # only where used, so that checkpoints without it keep their config
            self.config["instance_levels"] = instance_levels
        widths = [base * 2 ** i for i in range(self.depth + 1)]  # 64, 128, 256, 512, 1024
        self.down = nn.ModuleList()
        c = in_channels
        for level, w in enumerate(widths[:-1]):
            self.down.append(double_conv(c, w, batch_norm, instance_norm=level < instance_levels))
            c = w
        self.bottleneck = double_conv(widths[-2], widths[-1], batch_norm)
        self.upsample = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                      for i in reversed(range(self.depth)))
        self.up = nn.ModuleList(double_conv(2 * widths[i], widths[i], batch_norm) for i in reversed(range(self.depth)))
        self.head = nn.Conv2d(base, out_channels, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips)):
            x = block(torch.cat([skip, upsample(x)], dim=1))
        return self.head(x)[..., :h, :w]


def fuse_batch_norm(model):
    """A copy of a model for inference, each batch normalisation folded into the convolution before it.

    In eval mode a batch normalisation is a fixed per-channel scale and shift, so it
    can be multiplied into the preceding convolution's weights and bias: same
    outputs (to float rounding), one pass over the feature map fewer per layer
    (about a fifth of a base-16 U-Net's CPU time: benchmarks/predict_speed.py).
    The copy is for prediction only: it cannot be trained or saved as a checkpoint
    of the original architecture. A model without batch normalisation is copied unchanged.

    Parameters
    ----------
    model : torch.nn.Module (e.g. :class:`UNet`)

    Returns
    -------
    torch.nn.Module, in eval mode
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval
    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if isinstance(seq, nn.Sequential):
            for i in range(len(seq) - 1):
                if isinstance(seq[i], nn.Conv2d) and isinstance(seq[i + 1], nn.BatchNorm2d):
                    seq[i], seq[i + 1] = fuse_conv_bn_eval(seq[i], seq[i + 1]), nn.Identity()
    return fused


def _conv_relu_op():
    """oneDNN's convolution with its ReLU fused (the operation PyTorch's compiler emits on a CPU), or None."""
    try:
        return torch.ops.mkldnn._convolution_pointwise.default
    except (AttributeError, RuntimeError):
        return None


class ConvReLU(nn.Module):
    """A convolution and the ReLU after it as one pass over the feature map (oneDNN, CPU, inference only).

    Computes in `dtype` (bf16 where the predictor autocasts to it, else fp32): the values of the
    convolution then the ReLU, to the rounding of `dtype` (oneDNN may pick another kernel for the pair).
    """

    def __init__(self, conv, dtype=torch.float32):
        super().__init__()
        self.conv, self.dtype, self.op = conv, dtype, _conv_relu_op()

    def forward(self, x):
        c = self.conv
        return self.op(x.to(self.dtype), c.weight.to(self.dtype), None if c.bias is None else c.bias.to(self.dtype),
                       list(c.padding), list(c.stride), list(c.dilation), c.groups, "relu", [], "")


def fuse_relu(model, dtype=torch.float32):
    """A copy of an inference model whose convolution + ReLU pairs each run as one operation (CPU).

    Where a U-Net's channels are few (16 at base 16) a ReLU is one more pass over a feature map for little
    arithmetic, so oneDNN applies it while the convolution's result is still in cache: the base-16 forward pass
    took 0.161 s per megapixel against 0.224 in bf16 on a 2-core AMX CPU (``benchmarks/predict_speed.py``). Use after
    :func:`fuse_batch_norm`. Where this PyTorch has no such operation, or it fails or disagrees (beyond
    rounding) on a test input, `model` is returned unchanged: the fusion is for speed only.

    Parameters
    ----------
    model : torch.nn.Module, on the CPU, in eval mode
    dtype : torch.dtype
        The precision the model computes in (``torch.bfloat16`` under bf16 autocast).

    Returns
    -------
    torch.nn.Module
    """
    import copy
    if _conv_relu_op() is None:
        return model
    fused = copy.deepcopy(model).eval()
    for seq in fused.modules():
        if isinstance(seq, nn.Sequential):
            for i in range(len(seq) - 1):
                j = i + 1
                while j < len(seq) - 1 and isinstance(seq[j], nn.Identity):  # a batch norm folded away
                    j += 1
                if isinstance(seq[i], nn.Conv2d) and isinstance(seq[j], nn.ReLU):
                    seq[i], seq[j] = ConvReLU(seq[i], dtype), nn.Identity()
    try:
        in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
        x = torch.rand(1, in_channels, 32, 32, generator=torch.Generator().manual_seed(0))
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            same = torch.allclose(model(x).float(), fused(x).float(), rtol=1e-2, atol=1e-2)
    except RuntimeError:
        same = False
    return fused if same else model


def count_parameters(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trace_shapes(model, x):
    """Shapes of the tensors leaving each block, for teaching.

    Parameters
    ----------
    model : UNet
    x : Tensor, shape (B, C, H, W)

    Returns
    -------
    list of (name, tuple) in forward order
    """
    shapes, hooks = [], []
    for name, mod in model.named_children():
        mods = list(mod) if isinstance(mod, nn.ModuleList) else [mod]
        for i, m in enumerate(mods):
            label = f"{name}[{i}]" if isinstance(mod, nn.ModuleList) else name
            hooks.append(m.register_forward_hook(lambda _m, _i, out, label=label: shapes.append((label, tuple(out.shape)))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes



def _back(layer, lo, hi):
    """Input positions [lo', hi'] (1-D) that output positions [lo, hi] of a conv layer depend on."""
    k, s, d, p = layer.kernel_size[0], layer.stride[0], layer.dilation[0], layer.padding[0]
    if isinstance(layer, nn.ConvTranspose2d):
        return -((p + d * (k - 1) - lo) // s), (hi + p) // s  # ceil((lo + p - d(k-1)) / s), floor((hi + p) / s)
    return lo * s - p, hi * s - p + d * (k - 1)


def _back_block(block, lo, hi):
    for layer in reversed(list(block)):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            lo, hi = _back(layer, lo, hi)
    return lo, hi


def input_span(model, position):
    """The input positions that one output position of the U-Net depends on, along one axis.

    Follows the network backwards from the output: the 1x1 head, each decoder
    block, the concatenation (the union of the skip connection's span and the
    upsampled path's), the transposed convolutions, the bottleneck, and every
    encoder block and 2x2 max-pool, as an interval of positions. The image is
    taken as unbounded (no border).

    Parameters
    ----------
    model : UNet
    position : int
        An output position (row or column index).

    Returns
    -------
    (int, int)
        First and last input position, inclusive.
    """
    lo, hi = _back(model.head, position, position)
    skips = {}
    for i in reversed(range(model.depth)):  # decoder block i runs at the resolution of encoder level depth-1-i
        upsample, up = model.upsample[i], model.up[i]
        lo, hi = _back_block(up, lo, hi)
        skips[model.depth - 1 - i] = (lo, hi)  # the skip of encoder level depth-1-i feeds decoder block i
        lo, hi = _back(upsample, lo, hi)
    lo, hi = _back_block(model.bottleneck, lo, hi)
    for level in reversed(range(model.depth)):
        lo, hi = 2 * lo, 2 * hi + 1  # F.max_pool2d(x, 2): output p reads inputs 2p and 2p + 1
        lo, hi = min(lo, skips[level][0]), max(hi, skips[level][1])
        lo, hi = _back_block(model.down[level], lo, hi)
    return lo, hi


def receptive_field(model):
    """Side, in input pixels, of the square that one output pixel of the U-Net depends on.

    Computed from the layers (kernel sizes, strides, poolings; see
    :func:`input_span`), for every alignment of the output pixel with the four
    2x2 poolings, and the largest is returned: the field differs by a few pixels
    with the pixel's position modulo ``2 ** depth``.

    Parameters
    ----------
    model : UNet

    Returns
    -------
    int
        204 for the depth-4 U-Net of this library, at any width: an object
        larger than that is never seen whole by one output pixel.
    """
    spans = [input_span(model, p) for p in range(2 ** model.depth)]
    return max(hi - lo + 1 for lo, hi in spans)


def fingerprint(model):
    """A short hash of the model's weights: equal fingerprints mean equal weights.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    str
        12 hexadecimal digits of the SHA-256 of every tensor of the state dict,
        taken in order, on the CPU, as float32 (so a model moved to another device or
        memory format keeps its fingerprint).
    """
    import hashlib
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def coarse_mask(mask, factor=16):
    """A mask seen at 1/`factor` resolution, then blown back up.

    Each `factor` x `factor` block becomes foreground when more than half of it is;
    this is the best a decoder could redraw from the U-Net's bottleneck alone,
    without the skip connections.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
    factor : int

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    m = np.asarray(mask) > 0
    h, w = m.shape
    ph, pw = (-h) % factor, (-w) % factor
    p = np.pad(m, ((0, ph), (0, pw)))
    small = p.reshape(p.shape[0] // factor, factor, p.shape[1] // factor, factor).mean(axis=(1, 3)) > 0.5
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)[:h, :w]
