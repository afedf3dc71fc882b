"""Training recipes: named bundles of settings (the notebooks' profiles use them).

=========  =====================================================================
smoke      CI: a tiny U-Net for a few epochs on a few images; minutes on 2 cores
original   the original project: base 32, 256x256 resize, BCE, no augmentation
cpu        a laptop or this 2-core machine: native-resolution crops, augmentation with nuclei
           copy-pasted, a contour channel 1-3 px wide by nucleus area + watershed, BCE + Dice, a running
           average of the weights kept; 7 epochs: about 19 minutes in fp32 on a 2-core AVX2 CPU
           (benchmarks/results/cpu-ema_train.json), 4.7-7 in bf16 on 2-core AVX512-BF16 ones (cpu-bf16*_train.json,
           ens-s*_train.json), 5.1-5.4 on 2-core AMX-BF16 ones (amx-s*_train.json)
gpu        the original architecture at base 64 with the same ideas, for a GPU; 32 epochs, 1.1 minutes of training
           on an H200 (benchmarks/results/gpu-check-e32_gpu_check.json)
=========  =====================================================================
"""

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass
class TrainConfig:
    """Every setting of a training run (stored in the checkpoint)."""

    recipe: str = "custom"
    input: str = "rgb"            # "rgb" (3 channels) or "nuclei" (one channel, nuclei bright: see data.transforms)
    base: int = 32
    batch_norm: bool = False
    instance_levels: int = 0      # encoder levels whose first normalisation is half instance norm (model.HalfInstanceNorm)
    targets: tuple = ("mask",)    # ("mask",), ("mask", "contour"), + "distance" or + "border": data.transforms.TARGETS
    contour_width: object = 1     # 1, 2, 3 or "area" (1/2/3 px by nucleus area): see data.transforms.instance_contours
    mode: str = "resize"          # "resize" (whole image to size x size) or "crop" (native resolution)
    size: int = 256
    batch_size: int = 4
    epochs: int = 10
    lr: float = 1e-4
    lr_schedule: str = "constant"  # or "cosine"
    weight_decay: float = 0.0
    loss: str = "bce"             # training.losses.LOSSES
    augment: bool = False
    colour: str = "mix"           # "mix" or "stain" (also new hues and saturations): data.transforms.augment_colour
    blur: float = 0.0             # chance of a Gaussian blur of an augmented rgb crop (data.transforms.augment_colour)
    render: float = 0.0           # chance that a fluorescence crop is drawn as stained tissue (data.render.render_stained)
    gin: float = 0.0              # chance that a crop is mixed with a random network's view of it (data.randconv)
    paste: int = 0                # copy-paste: up to this many nuclei pasted per crop (data.transforms.paste_nuclei)
    pad_labels: str = "background"  # how a crop larger than its image labels the mirrored part (data.transforms)
    touch: int = 0                # contour target widened where nuclei touch, this many px (data.transforms.touching_band)
    touch_weight: float = 0.0     # extra loss weight of contour pixels where nuclei touch (data.transforms.touch_weights)
    norm: str = "crop"            # "rgb" crops inverted and standardised by the "crop" or by its whole "image" (data.dataset)
    scale: tuple = (0.5, 2.0)
    warp: float = 0.0             # chance of a crop turned by any angle, stretched and sheared (data.transforms.warped_crop)
    mixstyle: float = 0.0         # chance that a batch's feature statistics are mixed in 2 encoder blocks (training.mixstyle)
    seed: int = 0
    split_seed: int = -1          # seed of the split; -1: the same as seed (data.split.split_seed)
    val_fraction: float = 0.1
    split: str = "random"         # "random" (train/val by image id) or "experiments" (train/val/test, see data.split)
    test_fraction: float = 0.15   # share of images in the held-out test experiments ("experiments" split only)
    max_images: int = 0           # 0 = all training images
    repeats: int = 1              # crops drawn per training image per epoch
    balance: str = "none"         # "none" or "experiments": draw images of small experiments more often (trainer)
    num_workers: int = -1         # -1 = pick for this machine
    amp: str = "auto"             # "auto" (fp16 on CUDA, bf16 on a CPU that has it natively), "bf16", "fp16", "off"
    channels_last: bool = False   # NHWC memory format (1.5x faster bf16 steps on this CPU: benchmarks/speed.py)
    ema: float = 0.0              # decay of a running average of the weights, kept and shipped (training.average); 0: off
    sam: float = 0.0              # radius of sharpness-aware minimisation (training.trainer.sharpness_aware_step); 0: off
    ema_warmup: float = 10.0      # the average's warm-up caps its decay at (1 + n) / (ema_warmup + n) after n steps
    extra: dict = field(default_factory=dict)

    def check(self):
        """Raise ``ValueError`` naming the first setting whose value is not one of its choices.

        Called before any data is loaded, so that ``--set colour=blue`` fails at once and says so.
        """
        from ..data.dataset import MODES, NORMS
        from ..data.transforms import COLOUR_AUGMENTATIONS, CONTOUR_WIDTHS, INPUTS, PAD_LABELS, TARGETS
        from .data import SPLITS
        from .losses import LOSSES
        from .trainer import BALANCE, LR_SCHEDULES
        choices = dict(input=INPUTS, mode=MODES, norm=NORMS, contour_width=CONTOUR_WIDTHS, colour=COLOUR_AUGMENTATIONS,
                       balance=BALANCE, split=SPLITS, lr_schedule=LR_SCHEDULES, loss=LOSSES, pad_labels=PAD_LABELS)
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {list(allowed)}")
        if tuple(self.targets) not in TARGETS:
            raise ValueError(f"targets={list(self.targets)!r} is not one of {[list(t) for t in TARGETS]}")
        numbers = dict(ema=(lambda v: 0 <= v < 1, "a number in [0, 1)"),
                       ema_warmup=(lambda v: v > 1, "a number greater than 1"),
                       blur=(lambda v: 0 <= v <= 1, "a chance in [0, 1]"),
                       warp=(lambda v: 0 <= v <= 1, "a chance in [0, 1]"),
                       render=(lambda v: 0 <= v <= 1, "a chance in [0, 1]"),
                       gin=(lambda v: 0 <= v <= 1, "a chance in [0, 1]"),
                       sam=(lambda v: v >= 0, "a number >= 0"),
                       mixstyle=(lambda v: 0 <= v <= 1, "a chance in [0, 1]"),
                       touch_weight=(lambda v: v >= 0, "a number >= 0"),
                       test_fraction=(lambda v: 0 <= v < 1, "a share in [0, 1)"),
                       val_fraction=(lambda v: 0 <= v < 1, "a share in [0, 1)"))
        for name, (ok, words) in numbers.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not ok(value):
                raise ValueError(f"{name}={value!r} is not {words}")
        if self.touch_weight and "contour" not in self.targets:
            raise ValueError(f"touch_weight={self.touch_weight!r} weighs the contour target: add 'contour' to targets")
        for name in ("render", "gin"):  # both change rgb crops after they are standardised by themselves
            value = getattr(self, name)
            if value and (self.input != "rgb" or self.norm != "crop"):
                raise ValueError(f"{name}={value!r} changes rgb crops standardised by themselves: "
                                 "needs input='rgb' and norm='crop'")
        if self.loss == "bce+dice-border" and "border" not in self.targets:
            raise ValueError("loss='bce+dice-border' needs the border target: add 'border' to targets")
        from ..model import UNet
        levels = self.instance_levels
        if not isinstance(levels, int) or isinstance(levels, bool) or not 0 <= levels <= UNet.depth:
            raise ValueError(f"instance_levels={levels!r} is not a whole number from 0 to {UNet.depth}")
        if levels and not self.batch_norm:
            raise ValueError(f"instance_levels={levels!r} replaces batch normalisations: needs batch_norm=True")
        for name in ("paste", "touch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}={value!r} is not a whole number >= 0")
        return self

    @property
    def in_channels(self):
        """Input channels of the model this config trains (3 for "rgb", 1 for "nuclei" and "grey")."""
        return 3 if self.input == "rgb" else 1

    def to_dict(self):
        d = asdict(self)
        d["targets"], d["scale"] = list(self.targets), list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("targets", "scale"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


RECIPES = {
    "smoke": TrainConfig(recipe="smoke", base=8, batch_norm=True, targets=("mask", "contour"), mode="crop",
                         size=128, batch_size=4, epochs=4, lr=2e-3, loss="bce+dice", augment=True,
                         max_images=32, repeats=2, scale=(0.7, 1.4), split="experiments"),
    "original": TrainConfig(recipe="original", base=32, mode="resize", size=256, batch_size=4, epochs=14, lr=1e-4),
    "cpu": TrainConfig(recipe="cpu", base=16, batch_norm=True, targets=("mask", "contour"), contour_width="area",
                       mode="crop", size=256, batch_size=4, epochs=7, lr=1e-3, lr_schedule="cosine", weight_decay=1e-5, loss="bce+dice",
                       augment=True, paste=8, amp="auto", split="experiments", ema=0.995),
    "gpu": TrainConfig(recipe="gpu", base=64, batch_norm=False, targets=("mask", "contour"), contour_width="area",
                       mode="crop", size=256, batch_size=8, epochs=32, lr=3e-4, lr_schedule="cosine", weight_decay=1e-5, loss="bce+dice",
                       augment=True, paste=8, channels_last=True, split="experiments"),
}


def make_model(config):
    """A new, randomly initialised U-Net for a :class:`TrainConfig` (seeded by ``config.seed``).

    The one place where a config becomes a model: notebook 03 builds it, the trainer trains it.
    """
    import torch

    from ..model import UNet
    torch.manual_seed(config.seed)
    return UNet(in_channels=config.in_channels, out_channels=len(config.targets), base=config.base,
                batch_norm=config.batch_norm, instance_levels=config.instance_levels)


def get_recipe(name, **overrides):
    """A recipe's :class:`TrainConfig`, with some settings replaced.

    Parameters
    ----------
    name : {"smoke", "original", "cpu", "gpu"}
    **overrides
        Any :class:`TrainConfig` field; ``None`` values are ignored.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
