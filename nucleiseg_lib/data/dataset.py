"""PyTorch datasets over a Kaggle-layout folder (cached) or over PNGs re-read each time."""

import numpy as np
import torch

from .cache import SampleCache
from .io import read_sample
from .randconv import mix_random_convolution
from .render import render_stained
from .transforms import (augment_colour, augment_geometry, augment_intensity, image_sample, is_bright_background,
                         make_target, normalize_image, paste_nuclei, random_crop, resize, standardize, touch_weights)

MODES = ("crop", "resize", "full")
NORMS = ("crop", "image")


class PngSamples:
    """Samples read and merged from the PNGs on every access (the original project's way).

    Kept for comparison in ``benchmarks/``; use :class:`SampleCache` for training.
    """

    def __init__(self, root):
        self.root = root

    def __getitem__(self, sample_id):
        image, labels = read_sample(self.root, sample_id)
        return image, labels


class NucleiDataset(torch.utils.data.Dataset):
    """Image/target pairs for training and validation.

    Parameters
    ----------
    samples : mapping id -> (image, labels)
        ``image`` shape (H, W, 3) float in [0, 1]; ``labels`` shape (H, W) int.
        For example ``SampleCache(root).load_all()`` or :class:`PngSamples`.
    ids : list of str
    mode : {"crop", "resize", "full"}
        "crop": a random `size` window at native resolution (with scale jitter when
        augmenting); "resize": the whole image squashed to `size` x `size` (the
        original project); "full": the whole image at native size (batch size 1).
    size : int
    augment : bool
        Colour, contrast, scale, flip and rotation augmentation.
    targets : tuple of {"mask", "contour"}
    contour_width : int or "area"
        Width of the contour target (:func:`~nucleiseg_lib.data.transforms.instance_contours`), drawn after
        the crop is rescaled, so "area" goes by the nucleus size the network sees.
    seed : int
        Crops and augmentation depend only on (seed, epoch, index): training is
        reproducible whatever the number of loader workers, and resumes exactly.
    scale : (float, float)
        Range of the scale jitter in "crop" mode when augmenting.
    warp : float
        Chance that an augmented crop is cut turned by any angle, stretched and sheared
        (:func:`~nucleiseg_lib.data.transforms.warped_crop`); 0: never.
    repeats : int
        Items per image per epoch (each a different random crop).
    input : {"rgb", "grey", "nuclei"}
        What the model sees (:func:`normalize_image`). The one-channel inputs are
        computed once per whole image (modality and percentile range of the whole
        image, not of a crop); crops are cut from that channel and augmented in it
        (:func:`augment_intensity`).
    colour : {"mix", "stain"}
        The colour augmentation of "rgb" inputs (:func:`augment_colour`).
    blur : float
        Chance that an augmented "rgb" crop is blurred (:func:`augment_colour`); 0: never. The one-channel
        inputs have their own blur (:func:`augment_intensity`).
    render : float
        Chance that an augmented "rgb" crop with a dark background (fluorescence) is rendered as stained
        tissue in transmitted light (:func:`~nucleiseg_lib.data.render.render_stained`), before its colour
        augmentation; 0 (the default): never, and nothing is drawn for it. Needs ``norm="crop"``.
    gin : float
        Chance that an augmented, standardised "rgb" crop is mixed with itself seen through a random
        shallow network (:func:`~nucleiseg_lib.data.randconv.mix_random_convolution`); 0 (the default):
        never, and nothing is drawn for it. Needs ``norm="crop"``.
    paste : int
        When augmenting, up to this many nuclei of each crop are copied onto its
        background (:func:`paste_nuclei`); 0: none.
    touch : int
        The contour target also covers pixels within this many pixels of another nucleus
        (:func:`~nucleiseg_lib.data.transforms.touching_band`); 0: not.
    touch_weight : float
        When not 0, `y` has one more channel after the targets: the loss weight of each pixel, 1 + `touch_weight`
        on contour pixels within 2 px of another nucleus (:func:`~nucleiseg_lib.data.transforms.touch_weights`),
        else 1; :func:`~nucleiseg_lib.training.segmentation_loss` reads it. Needs the "contour" target.
    pad_labels : {"background", "reflect", "copies"}
        How a crop larger than its image labels the mirrored part (:func:`random_crop`).
    norm : {"crop", "image"}
        How an "rgb" crop is inverted and standardised. "crop": by the crop itself (its
        median decides the inversion, its mean and deviation standardise it). "image": as
        prediction does it, by its whole image: the whole image's median decides the
        inversion, and a sample of the whole image (:func:`image_sample`), given the crop's
        colour augmentation, standardises it. For a whole image not augmented (mode
        "full"), that is prediction's normalisation, with statistics of the sample.

    Returns (per item)
    ------------------
    x : Tensor, shape (C, H, W), float32, normalised by :func:`normalize_image` (C = 3 or 1)
    y : Tensor, shape (len(targets), H, W), float32 in {0, 1} (one more channel, the loss weight, with
        `touch_weight`)
    """

    def __init__(self, samples, ids, mode="crop", size=256, augment=False, targets=("mask",), seed=0,
                 scale=(0.5, 2.0), repeats=1, input="rgb", contour_width=1, colour="mix", paste=0, norm="crop",
                 touch=0, pad_labels="background", blur=0.0, touch_weight=0.0,
                 warp=0.0, render=0.0, gin=0.0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.samples, self.ids, self.mode, self.size = samples, list(ids), mode, size
        self.augment, self.targets, self.seed, self.scale = augment, tuple(targets), seed, scale
        self.repeats = max(1, int(repeats))
        self.input, self.contour_width, self.colour, self.paste = input, contour_width, colour, paste
        self.norm, self.touch, self.pad_labels, self.blur = norm, touch, pad_labels, float(blur)
        if touch_weight and "contour" not in self.targets:
            raise ValueError("touch_weight weighs the contour target: add 'contour' to targets")
        self.touch_weight = float(touch_weight)
        self.warp = float(warp)
        for name, value in (("render", render), ("gin", gin)):
            if value and (norm != "crop" or input != "rgb"):
                raise ValueError(f"{name} changes rgb crops standardised by themselves: "
                                 "use input='rgb' and norm='crop'")
        self.render, self.gin = float(render), float(gin)
        self.epoch = 0
        self._channels = {}  # id -> scaled one-channel input of the whole image, shape (H, W, 1)
        self._references = {}  # id -> (inverted?, image_sample of the whole image, inverted if so)

    def _reference(self, sid, image):
        """Whether a whole RGB image is inverted, and a sample of it for its statistics (computed once)."""
        if sid not in self._references:
            invert = is_bright_background(image)
            sample = image_sample(image)
            self._references[sid] = invert, (1.0 - sample if invert else sample)
        return self._references[sid]

    def _channel(self, sid, image):
        """The one-channel input of a whole image, computed once (crops are cut from it)."""
        if sid not in self._channels:
            x = normalize_image(image, self.input)  # percentiles of the whole image, not of a crop
            self._channels[sid] = np.ascontiguousarray(x.transpose(1, 2, 0))
        return self._channels[sid]

    def set_epoch(self, epoch):
        """Choose the epoch whose crops and augmentations are drawn."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.ids) * self.repeats

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sid = self.ids[index % len(self.ids)]
        image, labels = self.samples[sid]
        whole = image
        image = self._channel(sid, image) if self.input != "rgb" else np.asarray(image, np.float32)
        if self.mode == "crop":
            scale = self.scale if self.augment else (1.0, 1.0)
            image, labels = random_crop(image, labels, self.size, rng, scale, self.pad_labels,
                                        self.warp if self.augment else 0.0)
        elif self.mode == "resize":
            image, labels = resize(image, labels, (self.size, self.size))
        if self.augment and self.paste:
            image, labels = paste_nuclei(image, labels, rng, self.paste)
        if self.input == "rgb" and self.norm == "image":
            invert, reference = self._reference(sid, whole)
            image = 1.0 - image if invert else image
            if self.augment:
                image, reference = augment_colour(image, rng, self.colour, reference=reference, blur=self.blur)
            x = np.ascontiguousarray(standardize(image, reference).transpose(2, 0, 1))
        elif self.input == "rgb":
            if self.augment and self.render and rng.random() < self.render and not is_bright_background(image):
                image = render_stained(image, labels, rng)
            if self.augment:
                image = augment_colour(image, rng, self.colour, blur=self.blur)
            x = normalize_image(image)
            if self.augment and self.gin and rng.random() < self.gin:
                x = mix_random_convolution(x, rng)
        else:
            x = np.ascontiguousarray(image.transpose(2, 0, 1))
            if self.augment:
                x = augment_intensity(x, rng)
        y = make_target(labels, self.targets, self.contour_width, self.touch)
        if self.touch_weight:
            contour = y[self.targets.index("contour")] > 0
            y = np.concatenate([y, touch_weights(labels, contour, self.touch_weight)[None]])
        if self.augment:
            x, y = augment_geometry(x, y, rng)
        return torch.from_numpy(x), torch.from_numpy(y)


def load_split(root, train_ids, val_ids, cache_dir=None, progress=True):
    """Build (or reuse) the cache for a split and load it into memory.

    Returns
    -------
    dict id -> (image, labels) for ``train_ids + val_ids``
    """
    cache = SampleCache(root, cache_dir=cache_dir, ids=list(train_ids) + list(val_ids), progress=progress)
    return cache.load_all()
