"""What a training run learns from: the images in memory and the part each one plays (train, validation, test)."""

from dataclasses import dataclass, field

from ..data.split import make_split


SPLITS = ("random", "experiments")


@dataclass(frozen=True)
class TrainData:
    """Images in memory and their split into training, validation and test images.

    The trainer trains on `train_ids`, picks its best epoch on `val_ids`, and never
    looks at `test_ids`: they are kept (in the checkpoint) for the final, honest
    measurement.

    Parameters
    ----------
    samples : mapping id -> (image, labels)
        image (H, W, 3) float, labels (H, W) int (0 = background, 1..N = nuclei),
        e.g. ``SampleCache(root).load_all()`` or ``ctx.samples()``.
    train_ids, val_ids : list of str
    test_ids : list of str, optional
        Held out from everything; empty with a random split or tiny data.
    method : str
        How the ids were split: "random" (by image) or "experiments" (whole
        experiments held out, see :mod:`nucleiseg_lib.data.split`), or "list".
    groups : dict id -> str, optional
        The experiment (group) of each image, when the split is by experiments.
    info : dict, optional
        Provenance stored with the model (data folder, source, hash).
    details : dict, optional
        What else the split says (for a split by experiments: ``test_groups``,
        ``not_held_out``, ``modalities``); stored with the split.

    Examples
    --------
    >>> data = TrainData.from_config(samples, get_recipe("smoke"))       # doctest: +SKIP
    >>> history = Trainer("runs/demo", config).fit(make_model(config), data)   # doctest: +SKIP
    """

    samples: object = field(repr=False)
    train_ids: list
    val_ids: list
    test_ids: list = ()
    method: str = "random"
    groups: dict = field(default_factory=dict, repr=False)
    info: dict = field(default_factory=dict, repr=False)
    details: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for name in ("train_ids", "val_ids", "test_ids"):
            object.__setattr__(self, name, list(getattr(self, name)))
        parts = [set(self.train_ids), set(self.val_ids), set(self.test_ids)]
        if parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]:
            raise ValueError("an image is in two of train, validation and test")
        missing = [i for i in self.train_ids + self.val_ids + self.test_ids if i not in self.samples]
        if missing:
            raise ValueError(f"{len(missing)} ids have no sample, e.g. {missing[0]}")

    @classmethod
    def from_config(cls, samples, config, ids=None, info=None):
        """Split `ids` (default: every sample) as `config` says, seeded by ``data.split.split_seed(config)``.

        Parameters
        ----------
        samples : mapping id -> (image, labels)
        config : TrainConfig
            ``split``, ``val_fraction``, ``test_fraction`` and ``seed`` / ``split_seed`` are used.
        ids : list of str, optional
        info : dict, optional

        Returns
        -------
        TrainData
        """
        ids = sorted(samples if ids is None else ids)
        method = getattr(config, "split", "random")
        if method not in SPLITS:
            raise ValueError(f"unknown split {method!r}; use one of {SPLITS}")
        return cls.from_split(samples, make_split(samples, ids, config), info)

    @classmethod
    def from_split(cls, samples, split, info=None):
        """The data of a stored split, e.g. a checkpoint's ``state["split"]`` (``test`` may be absent)."""
        known = ("train", "val", "test", "method", "groups")
        return cls(samples, split.get("train", []), split.get("val", []), split.get("test", []),
                   method=split.get("method", "random"), groups=dict(split.get("groups", {})), info=dict(info or {}),
                   details={k: v for k, v in split.items() if k not in known})

    def split(self):
        """The split as stored in a checkpoint: dict with train, val, test, method and groups."""
        return dict(train=list(self.train_ids), val=list(self.val_ids), test=list(self.test_ids),
                    method=self.method, groups=dict(self.groups), **self.details)

    def __str__(self):
        return (f"{len(self.train_ids)} training, {len(self.val_ids)} validation and {len(self.test_ids)} test "
                f"images ({self.method} split)")
