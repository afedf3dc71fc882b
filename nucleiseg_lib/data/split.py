"""Seeded, deterministic splits: random by image id, or train/validation/test by whole experiments.

A random split of DSB2018 ``stage1_train`` flatters a model: most validation
images come from experiments (lab, microscope, magnification, stain) that the
model also trained on. New images come from new experiments, so the course's
test set holds out *whole experiments*. DSB2018 does not say which image came
from which experiment; :func:`experiment_groups` infers it from what can be
observed: image size and modality first, then clusters of nucleus size,
brightness and colour within each (size, modality) block.
"""

import numpy as np

from .stats import MODALITIES, classify_modality, nucleus_areas


def split_ids(ids, val_fraction=0.1, seed=0):
    """Split sample ids into training and validation ids.

    The split depends only on the set of ids, `val_fraction` and `seed` (ids are
    sorted first), so every notebook and command that uses the same arguments
    sees the same validation images.

    Parameters
    ----------
    ids : sequence of str
    val_fraction : float in [0, 1)
    seed : int

    Returns
    -------
    train_ids, val_ids : list of str, each sorted
    """
    ids = sorted(ids)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) > 1:
        n_val = min(max(n_val, 1), len(ids) - 1)
    order = np.random.default_rng(seed).permutation(len(ids))
    val = sorted(ids[i] for i in order[:n_val])
    val_set = set(val)
    return [i for i in ids if i not in val_set], val


def image_features(image, labels):
    """What an image shows about the experiment it came from.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), float in [0, 1]
    labels : ndarray, shape (H, W), int

    Returns
    -------
    dict
        ``size`` ("WxH"), ``modality`` (see :func:`data.stats.classify_modality`),
        ``log_area`` (log of the median nucleus area in pixels, 0 without nuclei),
        ``background`` and ``foreground`` (median grey level outside / inside nuclei),
        ``colour`` (mean R, G, B).
    """
    x = np.asarray(image, np.float32)
    grey = x.mean(axis=2)
    fg = np.asarray(labels) > 0
    areas = nucleus_areas(labels)
    return dict(size=f"{x.shape[1]}x{x.shape[0]}", modality=classify_modality(x),
                log_area=float(np.log(np.median(areas))) if len(areas) else 0.0,
                background=float(np.median(grey[~fg])) if (~fg).any() else float(np.median(grey)),
                foreground=float(np.median(grey[fg])) if fg.any() else float(np.median(grey)),
                colour=[float(c) for c in x.reshape(-1, 3).mean(axis=0)])


def _kmeans(z, k, seed, iters=50):
    """Cluster rows of `z` (n, d) into `k` groups: k-means++ seeding, Lloyd iterations; labels 0..k-1."""
    rng = np.random.default_rng(seed)
    centres = [z[rng.integers(len(z))]]
    for _ in range(1, k):
        d = np.min(((z[:, None] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
        centres.append(z[rng.choice(len(z), p=d / d.sum())] if d.sum() > 0 else z[rng.integers(len(z))])
    centres = np.array(centres)
    for _ in range(iters):
        lab = ((z[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        new = np.array([z[lab == j].mean(0) if (lab == j).any() else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    # number the clusters by their first feature, so names do not depend on the seeding
    order = np.argsort(np.argsort(centres[:, 0]))
    return order[lab]


def experiment_groups(features, images_per_group=40, seed=0):
    """Infer experiments: one group per (modality, size), split further by clustering.

    A (modality, size) block of more than `images_per_group` images is divided by
    k-means (``k = round(n / images_per_group)``) on standardised nucleus size,
    background and foreground brightness and colour: in DSB2018 one image size
    holds several magnifications and stains.

    Parameters
    ----------
    features : dict id -> dict
        From :func:`image_features`.
    images_per_group : int
    seed : int

    Returns
    -------
    dict id -> str
        Group names like ``"fluorescence 256x256 #2"``, deterministic for given inputs.
    """
    blocks = {}
    for sid in sorted(features):
        f = features[sid]
        blocks.setdefault((f["modality"], f["size"]), []).append(sid)
    groups = {}
    for (modality, size), ids in sorted(blocks.items()):
        k = int(round(len(ids) / images_per_group))
        if k < 2:
            groups.update({sid: f"{modality} {size}" for sid in ids})
            continue
        z = np.array([[features[s]["log_area"], features[s]["background"], features[s]["foreground"],
                       *features[s]["colour"]] for s in ids], np.float64)
        z = (z - z.mean(0)) / np.maximum(z.std(0), 1e-6)
        lab = _kmeans(z, k, seed)
        groups.update({sid: f"{modality} {size} #{int(j) + 1}" for sid, j in zip(ids, lab)})
    return groups


def split_experiments(groups, modalities, test_fraction=0.15, val_fraction=0.1, seed=0):
    """Train / validation / test split with whole experiments held out for testing.

    For each image kind (modality) that has at least two experiments, whole
    experiments are drawn (seeded) into the test set until it holds about
    `test_fraction` of that kind's images (never all of a kind's experiments, never
    more than half its images); kinds with a single experiment cannot be held out
    without leaving training blind to them, and stay in training. The validation
    set is a seeded random `val_fraction` of the remaining images: it chooses the
    best epoch, threshold and instance method; the test set chooses nothing.

    Parameters
    ----------
    groups : dict id -> str
        Experiment of each image (:func:`experiment_groups`).
    modalities : dict id -> str
        Image kind of each image.
    test_fraction, val_fraction : float in [0, 1)
    seed : int

    Returns
    -------
    dict
        ``train``, ``val``, ``test`` (sorted lists of ids), ``method`` ("experiments"),
        ``groups`` (the input), ``test_groups`` (sorted group names),
        ``not_held_out`` (dict kind -> reason, for kinds with no test experiment).
    """
    rng = np.random.default_rng(seed)
    by_kind = {}
    for sid in sorted(groups):
        by_kind.setdefault(modalities[sid], {}).setdefault(groups[sid], []).append(sid)
    test, test_groups, not_held = [], [], {}
    for kind in sorted(by_kind, key=lambda k: MODALITIES.index(k) if k in MODALITIES else len(MODALITIES)):
        exps = by_kind[kind]
        n_kind = sum(len(v) for v in exps.values())
        if len(exps) < 2:
            not_held[kind] = (f"one experiment only ({n_kind} images): holding it out would leave training "
                              f"without any {kind} image")
            continue
        names = sorted(exps)
        taken = 0
        for i in rng.permutation(len(names)):
            name = names[i]
            if taken >= test_fraction * n_kind:
                break
            if taken + len(exps[name]) > 0.5 * n_kind or sum(g in test_groups for g in names) == len(names) - 1:
                continue
            test_groups.append(name)
            test += exps[name]
            taken += len(exps[name])
        if not taken:
            not_held[kind] = "every experiment holds more than half of this kind's images"
    rest = sorted(set(groups) - set(test))
    train, val = split_ids(rest, val_fraction, seed)
    return dict(train=train, val=val, test=sorted(test), method="experiments", groups=dict(groups),
                test_groups=sorted(test_groups), not_held_out=not_held)


def split_seed(config):
    """The seed of a config's split: its ``split_seed``, or its ``seed`` when that is negative or absent.

    Two runs with other seeds and one ``split_seed`` differ in weights, crops and augmentation
    only: their spread is the noise between runs on the same test experiments.
    """
    s = getattr(config, "split_seed", -1)
    return config.seed if s is None or s < 0 else int(s)


def make_split(samples, ids, config):
    """The split a training config asks for, from samples in memory.

    Parameters
    ----------
    samples : mapping id -> (image, labels)
    ids : list of str
    config : TrainConfig-like
        Uses ``split`` ("random" or "experiments"), ``val_fraction``,
        ``test_fraction`` and ``seed`` (or ``split_seed``: :func:`split_seed`).

    Returns
    -------
    dict with ``train``, ``val``, ``test``, ``method`` (and for "experiments" the
    keys of :func:`split_experiments` plus ``modalities``)
    """
    seed = split_seed(config)
    if getattr(config, "split", "random") == "random":
        train, val = split_ids(ids, config.val_fraction, seed)
        return dict(train=train, val=val, test=[], method="random")
    feats = {sid: image_features(*samples[sid]) for sid in ids}
    groups = experiment_groups(feats, seed=seed)
    modalities = {sid: f["modality"] for sid, f in feats.items()}
    split = split_experiments(groups, modalities, config.test_fraction, config.val_fraction, seed)
    split["modalities"] = modalities
    return split
