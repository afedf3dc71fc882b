"""Reading the Kaggle DSB2018 layout: images, per-nucleus masks, and merging them.

Layout::

    <root>/<id>/images/<id>.png
    <root>/<id>/masks/<mask_id>.png   (one nucleus per file)
"""

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from .decode import decode_image_bytes, to_float_rgb  # noqa: F401  (to_float_rgb: re-export)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MAX_PIXELS = 8192 * 8192


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    try:  # PIL's own limit is left as it is: a global set here would change what uploads are told
        im = Image.open(path)
        if im.size[0] * im.size[1] > MAX_PIXELS:
            raise Image.DecompressionBombError(f"{im.size[0]}x{im.size[1]}")
        if getattr(im, "n_frames", 1) > 1:
            raise DataError(path, f"is a stack of {im.n_frames} frames; a single 2-D image is expected")
        im.load()
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(path, f"cannot be read as an image ({exc})") from None
    except Image.DecompressionBombError:
        raise DataError(path, f"is too large (more than {MAX_PIXELS} pixels)") from None
    return im


def read_image(path):
    """Read an image file as float RGB (:func:`nucleiseg_lib.data.decode.decode_image_bytes`).

    Parameters
    ----------
    path : str or Path
        PNG, JPEG, TIFF or BMP; 8- or 16-bit; grayscale, RGB or RGBA.

    Returns
    -------
    image : ndarray, shape (H, W, 3), float32 in [0, 1]

    Raises
    ------
    DataError
        The file is missing or empty, or not a single 2-D image of at most :data:`MAX_PIXELS` pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    if path.stat().st_size == 0:
        raise DataError(path, "file is empty")
    return decode_image_bytes(path.read_bytes(), str(path), MAX_PIXELS, min_side=1)


def read_mask(path, shape=None):
    """Read one nucleus mask as a boolean array.

    Accepts 0/255, 0/1 and bool masks (a mask is "on" where the pixel is nonzero);
    colour masks count a pixel as on when any channel is nonzero.

    Parameters
    ----------
    path : str or Path
    shape : tuple of int, optional
        Expected (H, W); a mask of another size raises :class:`DataError`.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    arr = np.asarray(_open(path))
    if arr.ndim == 3:
        arr = arr[..., :3].max(axis=2) if arr.shape[2] != 2 else arr[..., 0]
    if arr.ndim != 2:
        raise DataError(path, f"mask has shape {arr.shape}; expected a 2-D image")
    if shape is not None and arr.shape != tuple(shape):
        raise DataError(path, f"mask size {arr.shape[1]}x{arr.shape[0]} differs from its image's "
                              f"{shape[1]}x{shape[0]} (width x height)")
    return arr > 0


def merge_masks(masks, shape=None):
    """Merge per-nucleus masks into one instance label map.

    Parameters
    ----------
    masks : sequence of ndarray, each shape (H, W), bool or 0/1 or 0/255
        One mask per nucleus.
    shape : tuple of int, optional
        (H, W) of the result; needed when `masks` is empty.

    Returns
    -------
    labels : ndarray, shape (H, W), int32
        0 is background, nucleus ``i`` (0-based in `masks`) has label ``i + 1``.
        Where masks overlap, the later mask wins; use :func:`count_overlaps` to check.
    """
    if shape is None:
        if not len(masks):
            raise ValueError("merge_masks needs `shape` when there are no masks")
        shape = np.asarray(masks[0]).shape
    labels = np.zeros(shape, dtype=np.int32)
    for i, m in enumerate(masks):
        m = np.asarray(m)
        if m.shape != tuple(shape):
            raise ValueError(f"mask {i} has shape {m.shape}, expected {tuple(shape)}")
        labels[m > 0] = i + 1
    return labels


def count_overlaps(masks):
    """Number of pixels claimed by more than one mask.

    Parameters
    ----------
    masks : sequence of ndarray, each shape (H, W)

    Returns
    -------
    int
    """
    if not len(masks):
        return 0
    counts = np.zeros(np.asarray(masks[0]).shape, dtype=np.int32)
    for m in masks:
        counts += np.asarray(m) > 0
    return int((counts > 1).sum())


def binary_target(labels):
    """The training target: union of all nuclei.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int

    Returns
    -------
    ndarray, shape (1, H, W), float32 in {0, 1}
        One channel, never an extra axis (the original project's ``[B, 1, 1, H, W]`` bug).
    """
    return (np.asarray(labels) > 0).astype(np.float32)[None]


def sample_paths(root, sample_id, need_masks=True):
    """Paths of one sample: (image path, sorted list of mask paths).

    Raises
    ------
    DataError
        When ``images/`` or the image is missing, or ``masks/`` is missing or empty
        and `need_masks` is true.
    """
    folder = Path(root) / sample_id
    img_dir = folder / "images"
    if not img_dir.is_dir():
        raise DataError(folder, "sample folder has no images/ subfolder (Kaggle layout: <id>/images/<id>.png)")
    image = img_dir / f"{sample_id}.png"
    if not image.is_file():
        found = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(found) != 1:
            raise DataError(img_dir, f"expected one image named {sample_id}.png, found {len(found)} images")
        image = found[0]
    mask_dir = folder / "masks"
    if not mask_dir.is_dir():
        if need_masks:
            raise DataError(folder, "sample folder has no masks/ subfolder")
        return image, []
    masks = sorted(p for p in mask_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if need_masks and not masks:
        raise DataError(mask_dir, "masks/ folder holds no mask images")
    return image, masks


def list_samples(root):
    """Sorted ids of the samples under a Kaggle-layout folder.

    Raises
    ------
    DataError
        When `root` is missing or holds no sample folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "data folder not found")
    ids = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not ids:
        raise DataError(root, "data folder is empty: no <id>/images/<id>.png sample folders")
    return ids


def read_sample(root, sample_id):
    """Read one sample: its image and its merged instance labels.

    Returns
    -------
    image : ndarray, shape (H, W, 3), float32 in [0, 1]
    labels : ndarray, shape (H, W), int32, 0 = background, one id per mask file
    """
    image_path, mask_paths = sample_paths(root, sample_id)
    image = read_image(image_path)
    masks = [read_mask(p, image.shape[:2]) for p in mask_paths]
    return image, merge_masks(masks, image.shape[:2])
