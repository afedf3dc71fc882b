"""Decoding image files (bytes) into float RGB arrays: the one reader for files and uploads.

PNG, JPEG, TIFF (with tifffile: 16-bit RGB, ImageJ stacks' shape) or BMP; 8- or 16-bit;
grayscale, RGB or RGBA. Anything else (an empty file, a file that is not an image, a 3-D
stack, an image over the pixel limit) raises :class:`~nucleiseg_lib.errors.DataError` with
a plain-words message naming the file.
"""

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError

MAX_UPLOAD_PIXELS = 4096 * 4096   # 16.8 megapixels: any 4096x4096 image, or 2048x8192, ...
MIN_SIDE = 8
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TIFF_AXES = {"Z": "z-slices", "T": "time points", "C": "channels", "I": "pages", "Q": "pages", "R": "tiles",
             "L": "exposures", "H": "phases", "A": "angles", "P": "positions", "E": "lambda"}


def to_float_rgb(arr, path="<array>"):
    """Convert an image array to float32 RGB in [0, 1].

    Parameters
    ----------
    arr : ndarray, shape (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4)
        Grayscale, gray+alpha, RGB or RGBA; bool, uint8, uint16, int or float.
    path : str
        Named in the error message.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # drop alpha
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(path, f"has shape {arr.shape}; expected a 2-D grayscale, RGB or RGBA image")
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    arr = arr.astype(np.float32)
    if np.issubdtype(np.asarray(arr).dtype, np.floating) and arr.size and arr.min() >= 0 and arr.max() <= 1:
        return arr
    lo, hi = float(arr.min()), float(arr.max())  # 32-bit ints or unscaled floats: stretch
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _sniff(data):
    """A guess at what a non-image file is, for the error message."""
    head = data[:512]
    kinds = [(b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive (e.g. .zip, .docx, .xlsx)"),
             (b"\x93NUMPY", "a NumPy .npy array"), (b"\x89HDF", "an HDF5 file"), (b"\x1f\x8b", "a gzip archive"),
             (b"GIF8", "a GIF animation")]
    for magic, what in kinds:
        if head.startswith(magic):
            return what
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return None


def _too_large(name, w, h, max_pixels):
    side = int(max_pixels ** 0.5)
    return DataError(name, f"is {w}x{h} pixels ({w * h / 1e6:.1f} megapixels), more than this app handles "
                           f"({max_pixels / 1e6:.1f} megapixels, e.g. {side}x{side}); crop it into tiles or "
                           f"downscale it, or segment it from a terminal with `nucleiseg predict`")


def _check_size(name, w, h, max_pixels, min_side=MIN_SIDE):
    if w * h > max_pixels:
        raise _too_large(name, w, h, max_pixels)
    if min(w, h) < min_side:
        raise DataError(name, f"is only {w}x{h} pixels; at least {min_side}x{min_side} is needed")


def _decode_tiff(data, name, max_pixels, min_side):
    """A 2-D TIFF with tifffile (keeps 16-bit RGB, reads ImageJ stacks' shape); None to let PIL try."""
    try:
        import tifffile
    except ImportError:  # pragma: no cover - scikit-image installs it
        return None
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            extra = [(a, n) for a, n in zip(axes, shape) if a not in "YXS" and n > 1]
            others = [s for s in tif.series[1:] if not getattr(s, "is_reduced", False)
                      and "thumbnail" not in str(getattr(s, "kind", "")).lower()]
            if not extra and others:
                extra = [("I", 1 + len(others))]
            if extra:
                what = ", ".join(f"{n} {TIFF_AXES.get(a, 'planes')}" for a, n in extra)
                total = int(np.prod([n for _, n in extra]))
                raise DataError(name, f"is a stack of {total} images ({what}: a stack of {total} frames, shape "
                                      f"{shape}), not a single 2-D image; save one plane (e.g. the nuclear stain, "
                                      "or a maximum projection) as its own PNG or TIFF and upload that")
            _check_size(name, shape[axes.index("X")], shape[axes.index("Y")], max_pixels, min_side)
            arr = series.asarray()
    except DataError:
        raise
    except Exception:  # a compression tifffile cannot decode without imagecodecs, ...: PIL may
        return None
    keep = [(a, n) for a, n in zip(axes, shape) if a in "YXS"]
    arr = arr.reshape([n for _, n in keep])
    kept = "".join(a for a, _ in keep)
    if "S" in kept:
        arr = np.moveaxis(arr, kept.index("S"), -1)
        if arr.shape[-1] > 4:
            raise DataError(name, f"has {arr.shape[-1]} samples per pixel; expected grayscale, RGB or RGBA")
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float32))
    return to_float_rgb(arr, name)


def decode_image_bytes(data, name="upload", max_pixels=MAX_UPLOAD_PIXELS, min_side=MIN_SIDE):
    """Decode an image file's bytes into a float RGB image, with a clear error for bad input.

    The one image reader of the package: uploads (the app of notebook 06) and files
    (:func:`nucleiseg_lib.data.io.read_image`) both go through it.

    Parameters
    ----------
    data : bytes or memoryview
        The file's content.
    name : str
        The file name (named in errors).
    max_pixels : int
        Larger images are refused (before their pixels are decoded).
    min_side : int
        Smaller images are refused.

    Returns
    -------
    ndarray, shape (H, W, 3), float32 in [0, 1]

    Raises
    ------
    DataError
        Empty file, not an image, a stack of several planes (multi-page TIFF, ImageJ
        hyperstack, animation), an image over `max_pixels` or under 8x8 pixels, a
        damaged file.
    """
    data = bytes(data)
    if not data:
        raise DataError(name, "is empty (0 bytes); upload a PNG, JPEG or TIFF image")
    if data[:4] in TIFF_MAGIC:
        image = _decode_tiff(data, name, max_pixels, min_side)
        if image is not None:
            return image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb size (checked below), corrupt EXIF, ...: the errors say enough
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DataError(name, f"is too large to open safely ({exc}); crop or downscale it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        what = _sniff(data)
        seems = f"; it looks like {what}" if what else ""
        raise DataError(name, f"is not an image this app can read{seems}; upload a PNG, JPEG or TIFF "
                              "(8- or 16-bit, grayscale, RGB or RGBA)") from None
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        raise DataError(name, f"is a stack of {frames} images (a 3-D stack of {frames} frames, a time series or an "
                              "animation), not a single 2-D image; save one plane (e.g. a maximum projection) as PNG "
                              "or TIFF and upload that")
    _check_size(name, *im.size, max_pixels, min_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
            if im.format == "JPEG":
                im = ImageOps.exif_transpose(im)  # phone and camera pictures keep their orientation
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(name, f"is a damaged or truncated {im.format or 'image'} file ({exc})") from None
    return to_float_rgb(pil_array(im), name)


def pil_array(im):
    """The pixels of a PIL image as an array: 16-bit kept, palette/CMYK/YCbCr/LAB converted to RGB(A)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if im.mode in ("I", "F", "1", "L", "LA", "RGB", "RGBA"):
        return np.asarray(im)
    return np.asarray(im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB"))
