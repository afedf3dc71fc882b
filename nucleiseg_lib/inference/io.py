"""Predicting files: an image, a folder of images, or a Kaggle-layout folder."""

from pathlib import Path

import numpy as np
from PIL import Image

from ..data.io import IMAGE_SUFFIXES, read_image, sample_paths
from ..errors import DataError
from ..fileio import atomic_write


def find_inputs(path):
    """(id, image path) pairs for an image, a folder of images, or a Kaggle-layout folder.

    Raises
    ------
    DataError
        When `path` does not exist or holds no images.
    """
    path = Path(path)
    if path.is_file():
        return [(path.stem, path)]
    if not path.is_dir():
        raise DataError(path, "input not found")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if files:
        return [(p.stem, p) for p in files]
    pairs = [(d.name, sample_paths(path, d.name, need_masks=False)[0])
             for d in sorted(path.iterdir()) if d.is_dir() and (d / "images").is_dir()]
    if not pairs:
        raise DataError(path, "holds no images (expected image files or <id>/images/<id>.png folders)")
    return pairs


def save_png_atomic(array, path):
    """Write a PNG through a temporary file and a rename."""
    with atomic_write(path) as f:
        Image.fromarray(array).save(f, format="PNG")


def predict_path(predictor, input_path, output_dir, rule=None, log=print):
    """Write ``<id>_mask.png`` (0/255) and ``<id>_labels.png`` (16-bit labels) per input image.

    Returns
    -------
    int
        Number of images written.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = find_inputs(input_path)
    for sid, image_path in pairs:
        seg = predictor.segment(read_image(image_path), rule)
        save_png_atomic((seg["mask"] * 255).astype(np.uint8), out / f"{sid}_mask.png")
        save_png_atomic(seg["labels"].astype(np.uint16), out / f"{sid}_labels.png")
        log(f"{sid}: {int(seg['labels'].max())} nuclei (threshold {seg['threshold']:.3f})")
    return len(pairs)
