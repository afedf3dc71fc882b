"""The layouts a DSB2018 archive can come in, recognised and converted to the course's Kaggle layout.

* per-image folders, one mask per nucleus: ``<id>/images/<id>.png`` + ``<id>/masks/*.png`` (the
  competition's ``stage1_train``), found at any depth (:func:`find_prefix`);
* folders of images beside folders of merged masks, one mask per image, matched by file name
  (:func:`merged_pairs`); their nuclei are separated by connected components (:func:`convert_merged`).

Anything else is described in one phrase (:func:`describe_members`) for the error message.
"""

import pathlib

from nucleiseg_lib.errors import DownloadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_IMAGE_DIRS = {"images", "image", "imgs", "img", "inputs", "input", "x"}
_MASK_DIRS = {"masks", "mask", "labels", "label", "gt", "groundtruth", "ground_truth", "y", "targets"}
_MASK_SUFFIXES = ("_mask", "-mask", "_masks", "_label", "_gt", "mask")


def _stem_key(name):
    stem = pathlib.PurePosixPath(name).stem.lower()
    for suffix in _MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[:-len(suffix)].rstrip("_-")
    return stem


def merged_pairs(members):
    """(image member, mask member) pairs of an ``images/`` + ``masks/`` layout (matched by file name), or []."""
    images, masks = {}, {}
    for m in members:
        parts = pathlib.PurePosixPath(m.filename).parts
        if len(parts) < 2 or not m.filename.lower().endswith(IMAGE_EXTENSIONS):
            continue
        folder = parts[-2].lower().replace(" ", "_")
        base = parts[:-2]
        if folder in _IMAGE_DIRS:
            images[(base, _stem_key(parts[-1]))] = m
        elif folder in _MASK_DIRS:
            masks[(base, _stem_key(parts[-1]))] = m
    return [(images[k], masks[k]) for k in sorted(images) if k in masks]


def convert_merged(zf, pairs, out):
    """Write each (image, merged mask) pair as ``<id>/images/<id>.png`` + one mask per connected component."""
    import io

    import numpy as np
    from PIL import Image
    from scipy import ndimage
    used = set()
    for image_member, mask_member in pairs:
        sid = pathlib.PurePosixPath(image_member.filename).stem.replace(" ", "_")
        if sid in used:  # the same name in two sub-folders (e.g. train/ and test/)
            sid = f"{sid}-{len(used)}"
        used.add(sid)
        with zf.open(image_member) as f:
            image = Image.open(io.BytesIO(f.read()))
            image.load()
        with zf.open(mask_member) as f:
            mask = np.asarray(Image.open(io.BytesIO(f.read())))
        if mask.ndim == 3:
            mask = mask[..., :3].max(axis=2)
        if mask.shape != (image.size[1], image.size[0]):
            raise DownloadError(f"{mask_member.filename}: mask {mask.shape[1]}x{mask.shape[0]} differs from its "
                                f"image {image_member.filename}, {image.size[0]}x{image.size[1]} (width x height)")
        labels, n = ndimage.label(mask > 0)
        if n == 0:
            continue
        (out / sid / "images").mkdir(parents=True)
        (out / sid / "masks").mkdir()
        image.save(out / sid / "images" / f"{sid}.png")
        for k in range(1, n + 1):
            Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(out / sid / "masks" / f"{sid}_{k:04d}.png")


def describe_members(members):
    """One phrase on what an archive holds: how many files of which kinds, in which folders."""
    from collections import Counter
    if not members:
        return "the archive is empty"
    exts = Counter(pathlib.PurePosixPath(m.filename).suffix.lower() or "(none)" for m in members)
    folders = Counter("/".join(pathlib.PurePosixPath(m.filename).parts[:-1][-2:]) or "." for m in members)
    kinds = ", ".join(f"{n} {e}" for e, n in exts.most_common(3))
    where = ", ".join(f"{f}/" for f, _ in folders.most_common(3))
    return f"found {len(members)} files ({kinds}) in folders such as {where}"


def find_prefix(names):
    """Member-path prefix ending in ``stage1_train``, ``()`` for the bare layout, or None."""
    for parts in names:
        if "stage1_train" in parts[:-1]:
            return parts[:parts.index("stage1_train") + 1]
    bare = any(len(p) == 3 and p[1] == "images" and pathlib.PurePosixPath(p[2]).stem == p[0] for p in names)
    return () if bare else None
