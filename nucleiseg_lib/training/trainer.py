"""The training loop: checkpoint after every epoch, exact resume.

A run folder holds ``last.pt`` (written after every epoch), ``best.pt`` (the
epoch with the best validation IoU) and ``history.json``. Training into a
folder that has a ``last.pt`` continues from it: model, optimizer, scaler, RNG
states and history are restored, and since crops and augmentation depend only
on (seed, epoch, index), the continued run gives the same weights as one that
was never interrupted.
"""

import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import NucleiDataset
from ..device import autocast_for, pick_device, resolve_amp  # noqa: F401  (pick_device: re-exported by training)
from ..errors import CheckpointError
from ..metrics import iou as iou_metric
from ..progress import progress_bar
from .average import WeightAverage
from .checkpoint import load_checkpoint, model_state, rng_state, save_checkpoint, save_json, set_rng_state
from .losses import segmentation_loss
from .mixstyle import add_mixstyle


_autocast = autocast_for   # the old private name (benchmarks of earlier versions)


LR_SCHEDULES = ("constant", "cosine")


def _lr_at(cfg, epoch):
    if cfg.lr_schedule == "cosine":
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / max(cfg.epochs, 1))))
    return cfg.lr


class Trainer:
    """Train a U-Net into a run folder.

    Parameters
    ----------
    run_dir : str or Path
    config : TrainConfig
    device : str, optional
        Default: CUDA when available, else CPU.
    progress : bool
        Show a progress bar per epoch.

    Examples
    --------
    >>> config = get_recipe("smoke")                                        # doctest: +SKIP
    >>> model = make_model(config)                                          # doctest: +SKIP
    >>> data = TrainData.from_config(samples, config)                       # doctest: +SKIP
    >>> history = Trainer("runs/demo", config).fit(model, data)             # doctest: +SKIP
    """

    def __init__(self, run_dir, config, device=None, progress=True, log=print):
        self.run_dir, self.cfg = Path(run_dir), config
        self.device, self.progress, self.log = pick_device(device), progress, log
        self.last, self.best = self.run_dir / "last.pt", self.run_dir / "best.pt"

    def training_ids(self, data):
        """The training images used: all of ``data.train_ids``, or the recipe's seeded ``max_images`` of them."""
        cfg, train_ids = self.cfg, data.train_ids
        if cfg.max_images and cfg.max_images < len(train_ids):
            pick = np.random.default_rng(cfg.seed).choice(len(train_ids), cfg.max_images, replace=False)
            train_ids = sorted(train_ids[i] for i in pick)
        return train_ids

    def datasets(self, data):
        """The training and validation datasets, as the trainer builds them (see :func:`make_datasets`)."""
        return make_datasets(self.cfg, data.samples, self.training_ids(data), data.val_ids)

    def fit(self, model, data):
        """Train `model` for ``config.epochs`` epochs in total, resuming from ``last.pt`` if present.

        Parameters
        ----------
        model : UNet
            E.g. ``make_model(config)``; trained in place (moved to the trainer's
            device). Its inputs and outputs must fit the config (``in_channels``,
            one output per target). When the run folder holds a ``last.pt``, its
            weights replace the model's, so that training continues exactly. With
            ``config.ema`` the model keeps the raw weights; their running average
            (:class:`~nucleiseg_lib.training.average.WeightAverage`) is what is
            validated and written to ``best.pt``.
        data : TrainData
            The samples and their train / validation / test split; the test
            images are only stored in the checkpoint, never looked at.

        Returns
        -------
        list of dict
            The whole history, one entry per epoch (``epoch``, ``train_loss``,
            ``val_loss``, ``val_iou``, ``lr``, ``seconds``).
        """
        cfg, dev = self.cfg.check(), self.device
        check_model(model, self.cfg)
        train_ids, val_ids = self.training_ids(data), data.val_ids
        torch.manual_seed(cfg.seed)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        model = model.to(dev, memory_format=self.memory_format)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        use_scaler = dev.type == "cuda" and resolve_amp(dev, cfg.amp) == torch.float16
        scaler = torch.amp.GradScaler(dev.type, enabled=use_scaler)
        history, start = [], 0
        average = WeightAverage(model, cfg.ema, cfg.ema_warmup) if cfg.ema else None
        if self.last.exists():
            state = load_checkpoint(self.last, map_location=dev)
            model = restore_state(self.last, state, model, opt, scaler, average)
            history, start = state["history"], state["epoch"]
            self.log(f"resuming {self.last} after epoch {start} of {cfg.epochs}")
        if start >= cfg.epochs:
            self.log(f"{self.last} is already trained for {start} epochs; ask for more with a larger --epochs")
            return history
        train_ds, val_ds = self.datasets(data)
        # how often each item is drawn (None: uniformly); the same every epoch
        weights = sample_weights([train_ds.ids[i % len(train_ds.ids)] for i in range(len(train_ds))], data.groups,
                                 cfg.balance)
        # on a CPU, loader workers compete with the training threads for the same cores (benchmarks/speed.py:
        # 30 steps took 1.11x the in-memory time in-process, 1.24x with one worker on 2 cores)
        auto = min(4, os.cpu_count() or 1) if dev.type == "cuda" else 0
        workers = cfg.num_workers if cfg.num_workers >= 0 else auto
        split = {**data.split(), "train": list(train_ids)}
        mixing = add_mixstyle(model, cfg.mixstyle)  # training-time hooks only: nothing of them is saved
        try:
            self._epochs(model, opt, scaler, train_ds, val_ds, data, history, start, workers, weights, average, split)
        finally:
            for handle in mixing:
                handle.remove()
        return history

    def _epochs(self, model, opt, scaler, train_ds, val_ds, data, history, start, workers, weights, average, split):
        cfg, val_ids = self.cfg, data.val_ids
        for epoch in range(start, cfg.epochs):
            t0 = time.time()
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, epoch)
            self.log(f"epoch {epoch + 1}/{cfg.epochs}", flush=True)
            train_loss = self._train_epoch(model, opt, scaler, train_ds, epoch, workers, weights, average)
            kept = average.model if average else model   # what is validated, kept as best.pt and shipped
            val_loss, val_iou = self.validate(kept, val_ds)
            history.append(dict(epoch=epoch + 1, train_loss=train_loss, val_loss=val_loss, val_iou=val_iou,
                                lr=opt.param_groups[0]["lr"], seconds=round(time.time() - t0, 2)))
            state = dict(kind="resume", model=model.state_dict(), optimizer=opt.state_dict(),
                         scaler=scaler.state_dict(), epoch=epoch + 1, history=history, config=cfg.to_dict(),
                         model_config=model.config, rng=rng_state(), split=split, data=dict(data.info),
                         postprocess=None, **(dict(average=average.state_dict()) if average else {}))
            save_checkpoint(state, self.last)
            best_so_far = max((h["val_iou"] for h in history[:-1] if h["val_iou"] is not None), default=-1)
            if not self.best.exists() or (val_iou is not None and val_iou > best_so_far) or not val_ids:
                # no optimizer: what 05, 06, predict read (the averaged weights, when the recipe averages)
                save_checkpoint(model_state({**state, "model": kept.state_dict()}), self.best)
            save_json(history, self.run_dir / "history.json")
            self.log(f"  train_loss {train_loss:.4f}  val_loss {_fmt(val_loss)}  val_iou {_fmt(val_iou)}  "
                     f"({history[-1]['seconds']:.1f} s)", flush=True)

    def _train_epoch(self, model, opt, scaler, ds, epoch, workers, weights=None, average=None):
        cfg, dev = self.cfg, self.device
        ds.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = dict(shuffle=True) if weights is None else dict(sampler=torch.utils.data.WeightedRandomSampler(
            weights, num_samples=len(ds), replacement=True, generator=gen))
        loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, generator=gen, **order,
                                             num_workers=workers, drop_last=len(ds) > cfg.batch_size,
                                             pin_memory=dev.type == "cuda",
                                             persistent_workers=False)
        model.train()
        total, n = 0.0, 0
        # tqdm(total=...) and update(): wrapping the loader itself would start its workers twice
        bar = progress_bar(total=len(loader), progress=self.progress, desc=f"epoch {epoch + 1}", leave=False)
        for x, y in loader:
            x = x.to(dev, non_blocking=True).contiguous(memory_format=self.memory_format)
            loss = self.train_step(model, opt, x, y.to(dev, non_blocking=True), scaler)
            if average is not None:
                average.update(model)
            total, n = total + loss.item(), n + 1
            bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)
            bar.update(1)
        bar.close()
        return total / max(n, 1)  # mean over batches, not the sum

    def train_step(self, model, opt, x, y, scaler=None):
        """One step: forward, loss, zero the gradients, backward, update. Returns the loss (a scalar Tensor)."""
        loss = self.batch_loss(model, x, y)
        opt.zero_grad(set_to_none=True)
        if self.cfg.sam:
            if scaler is not None and scaler.is_enabled():
                raise ValueError(f"sam={self.cfg.sam!r} does not work with fp16's gradient scaler: "
                                 "use amp='bf16' or 'off'")
            loss.backward()
            sharpness_aware_step(model, opt, lambda: self.batch_loss(model, x, y), self.cfg.sam)
        elif scaler is None:  # without a gradient scaler (fp16 on CUDA needs one)
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss

    def batch_loss(self, model, x, y):
        """The loss of one batch: the forward pass in the run's precision, the loss of its logits."""
        with _autocast(self.device, self.cfg.amp):
            out = model(x)
        return segmentation_loss(out, y, self.cfg.loss, self.cfg.targets)

    def validate(self, model, ds):
        """Mean validation loss and mean foreground IoU (threshold 0.5) over the images of `ds`."""
        return validate_model(model, ds, self.device, self.cfg, getattr(self, "memory_format", None))


BALANCE = ("none", "experiments")


def sharpness_aware_step(model, opt, closure, rho):
    """Sharpness-aware minimisation (SAM; Foret et al., 2021): step with the gradient at the worst nearby weights.

    Call after ``loss.backward()``. The weights move by `rho` along their gradient (its L2 norm over all
    parameters scaled to `rho`), where the loss is highest nearby; the gradient there is taken, the weights
    moved back, and `opt` steps with it. A minimum whose neighbourhood is also low is reported to generalise
    to new domains better than a sharp one. Batch-norm running statistics are updated by the first pass only.

    Parameters
    ----------
    model : torch.nn.Module, in train mode, its gradients from the first pass
    opt : torch.optim.Optimizer
    closure : callable
        Returns the loss of the same batch (a scalar Tensor), computed again as the first pass did.
    rho : float
        Radius of the neighbourhood; 0 gives the plain step.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    with torch.no_grad():
        moves = [p.grad * (rho / (norm + 1e-12)) for p in params]
        for p, e in zip(params, moves):
            p.add_(e)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    try:
        for m in norms:
            m.momentum = 0.0  # running = running * (1 - 0) + batch * 0: unchanged
        opt.zero_grad(set_to_none=True)
        closure().backward()
    finally:
        for m, (momentum, count) in zip(norms, saved):
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)
        with torch.no_grad():
            for p, e in zip(params, moves):
                p.sub_(e)
    opt.step()


def sample_weights(ids, groups, balance="none"):
    """How often each training item is drawn: None (uniformly, shuffled) or one weight per item.

    ``balance="experiments"`` weighs an image by ``1 / sqrt(n)``, `n` the images of its experiment: an
    experiment of 100 images is drawn 10x as often as one of a single image, not 100x (fully balanced
    sampling would repeat a 15-image experiment's crops until the network learns them by heart).

    Parameters
    ----------
    ids : list of str
        The image of each dataset item (repeats included).
    groups : dict id -> str
        Experiment of each image (:func:`nucleiseg_lib.data.split.experiment_groups`); images without one form
        their own experiment.
    balance : {"none", "experiments"}

    Returns
    -------
    None or torch.Tensor, shape (len(ids),), float64, summing to 1
    """
    if balance not in BALANCE:
        raise ValueError(f"unknown balance {balance!r}; use one of {BALANCE}")
    if balance == "none" or not ids:
        return None
    from collections import Counter
    counts = Counter(groups.get(i, i) for i in set(ids))   # images per experiment (each image once)
    w = torch.tensor([counts[groups.get(i, i)] ** -0.5 for i in ids], dtype=torch.float64)
    return w / w.sum()


def make_datasets(cfg, samples, train_ids, val_ids):
    """The training and validation datasets of a config.

    Parameters
    ----------
    cfg : TrainConfig
    samples : mapping id -> (image, labels)
    train_ids, val_ids : list of str

    Returns
    -------
    train_ds, val_ds : NucleiDataset
        ``train_ds[i]`` is an augmented crop ``x`` (C, size, size) with its
        targets ``y`` (len(targets), size, size; one more channel, the loss weight, with ``touch_weight``);
        ``val_ds`` holds whole images.
    """
    train_ds = NucleiDataset(samples, train_ids, mode=cfg.mode, size=cfg.size, augment=cfg.augment,
                             targets=cfg.targets, seed=cfg.seed, scale=cfg.scale, repeats=cfg.repeats,
                             input=cfg.input, contour_width=cfg.contour_width, colour=cfg.colour,
                             paste=cfg.paste, norm=cfg.norm, touch=cfg.touch, pad_labels=cfg.pad_labels,
                             blur=cfg.blur, touch_weight=cfg.touch_weight, warp=cfg.warp,
                             render=cfg.render, gin=cfg.gin)
    val_mode = "full" if cfg.mode == "crop" else cfg.mode
    val_ds = NucleiDataset(samples, val_ids, mode=val_mode, size=cfg.size, targets=cfg.targets, seed=cfg.seed,
                           input=cfg.input, contour_width=cfg.contour_width, touch=cfg.touch,
                           touch_weight=cfg.touch_weight)
    return train_ds, val_ds


def check_model(model, cfg):
    """Refuse a model whose input/output channels do not fit the config (``ValueError``)."""
    want = dict(in_channels=cfg.in_channels, out_channels=len(cfg.targets))
    have = {k: getattr(model, "config", {}).get(k) for k in want}
    if have != want:
        raise ValueError(f"the model takes {have['in_channels']} input and gives {have['out_channels']} output "
                         f"channels, but the config trains {want['in_channels']} -> {want['out_channels']} "
                         f"(targets {list(cfg.targets)}); build it with make_model(config)")


def restore_state(path, state, model, opt, scaler, average=None):
    """Load a resume checkpoint's weights, optimizer, scaler, weight average and RNG states; errors name `path`."""
    try:
        if state["model_config"] != model.config:
            raise CheckpointError(path, f"was trained as U-Net {state['model_config']}, but this run asks "
                                        f"for {model.config}; use another run folder")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state.get("scaler", {}))
        if average is not None:
            if "average" not in state:
                raise CheckpointError(path, "holds no weight average, but this run's config averages the weights "
                                            "(ema); use another run folder")
            average.load_state_dict(state["average"])
    except (KeyError, RuntimeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(path, f"cannot resume from it: {exc}") from None
    set_rng_state(state.get("rng"))
    return model


@torch.no_grad()
def validate_model(model, ds, device, cfg, memory_format=None):
    """Mean loss and mean foreground IoU (threshold 0.5) of `model` over the whole images of `ds`.

    Returns
    -------
    (float, float), or (None, None) for an empty dataset
    """
    if len(ds) == 0:
        return None, None
    model.eval()
    losses, ious = [], []
    for i in range(len(ds)):
        x, y = ds[i]
        with _autocast(device, cfg.amp):
            out = model(x[None].to(device).contiguous(memory_format=memory_format or torch.contiguous_format))
        losses.append(segmentation_loss(out, y[None].to(device), cfg.loss, cfg.targets).item())
        ious.append(iou_metric(out[0, 0].float().cpu().numpy() > 0, y[0].numpy() > 0))
    return float(np.mean(losses)), float(np.mean(ious))


def _fmt(v):
    return "n/a" if v is None else f"{v:.4f}"
