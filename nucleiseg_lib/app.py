"""The upload-and-segment app of notebook 06 (served with Voilà, or used cell by cell).

The notebook stays two lines::

    app = SegmentApp.from_run_dir(RUN_DIR, PROFILE)
    app.show()

What happens behind them:

1. **Decode** each uploaded file with :func:`decode_image_bytes`: PNG, JPEG or TIFF,
   8- or 16-bit, grayscale, RGB or RGBA. Anything else (an empty file, a file that is
   not an image, a 3-D stack, an image over :data:`MAX_UPLOAD_PIXELS`) raises
   :class:`~nucleiseg_lib.errors.DataError` with a plain-words message that the page shows.
2. **Predict once** per upload: the U-Net's probability maps at the image's own resolution
   (:meth:`~nucleiseg_lib.inference.Predictor.predict_proba`). This is the slow step.
3. **Threshold and label** with one of the rules of notebook 05 (validation-optimal,
   fixed 0.5, relative max/10, Otsu) or the slider's value. Moving the slider repeats only
   this step and the drawing, never the prediction.
4. **Measure** every nucleus (:func:`measure_nuclei`): area, centroid, bounding box,
   axes, eccentricity, perimeter, mean intensity and probability, border contact.
5. **Show** the image, the probability map and the outlines over the image side by side
   (shown at full resolution up to :data:`DISPLAY_MAX` pixels a side; only the *shown*
   copies of larger images are reduced), the count and the area statistics, and a link
   that downloads ``mask.png``, ``labels.png`` (16-bit), ``nuclei.csv`` and ``settings.json``
   as one zip.

Without a checkpoint the app shows how to get one instead of failing
(:func:`no_model_message`).

Everything but :meth:`SegmentApp.show` and :attr:`SegmentApp.widget` works without a
browser (tests, the benchmark ``benchmarks/app_latency.py``, scripts).
"""

import base64
import csv
import html
import io
import json
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .data.io import to_float_rgb
from .data.transforms import instance_contours
from .errors import CheckpointError, DataError
from .inference.postprocess import THRESHOLD_RULES, find_threshold

ACCEPT = ".png,.jpg,.jpeg,.tif,.tiff"
MAX_UPLOAD_PIXELS = 4096 * 4096   # 16.8 megapixels: any 4096x4096 image, or 2048x8192, ...
MIN_UPLOAD_PIXELS = 2048 * 2048   # never refuse less than this (the course promises 2048x2048)
BYTES_PER_PIXEL_AND_WIDTH = 32    # CPU memory of one U-Net pass, per pixel and per unit of `base` (measured: 31)
WEBSOCKET_LIMIT_MB = 10           # Tornado's default message limit, for uploads through Jupyter/Voila
MIN_SIDE = 8
DISPLAY_MAX = 2048                # longer side of the images *shown*; the prediction is never reduced
KEEP_IMAGES = 10                  # uploads kept in memory (the oldest go first) ...
KEEP_PIXELS = 4 * 4096 * 4096     # ... and no more pixels than this in all (about 1.6 GB)
OUTLINE_COLOUR = (255, 255, 0)    # yellow outlines, visible on dark fluorescence and on stained tissue
RULES = tuple(THRESHOLD_RULES) + ("manual",)
RULE_LABELS = {"validation": "validation-optimal", "fixed": "fixed 0.5", "relative": "max/10 (original project)",
               "otsu": "Otsu", "manual": "manual (slider)"}   # as notebook 05 names them
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TIFF_AXES = {"Z": "z-slices", "T": "time points", "C": "channels", "I": "pages", "Q": "pages", "R": "tiles",
             "L": "exposures", "H": "phases", "A": "angles", "P": "positions", "E": "lambda"}
MEASUREMENT_COLUMNS = ("nucleus", "area_px", "centroid_x", "centroid_y", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1",
                       "equivalent_diameter_px", "major_axis_px", "minor_axis_px", "eccentricity", "perimeter_px",
                       "mean_intensity", "mean_probability", "touches_border")


# ------------------------------------------------------------------ decoding ---

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


def _check_size(name, w, h, max_pixels):
    if w * h > max_pixels:
        raise _too_large(name, w, h, max_pixels)
    if min(w, h) < MIN_SIDE:
        raise DataError(name, f"is only {w}x{h} pixels; at least {MIN_SIDE}x{MIN_SIDE} is needed")


def _decode_tiff(data, name, max_pixels):
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
                raise DataError(name, f"is a stack of {total} images ({what}; shape {shape}), not a single 2-D image; "
                                      "save one plane (e.g. the nuclear stain, or a maximum projection) as its own PNG "
                                      "or TIFF and upload that")
            _check_size(name, shape[axes.index("X")], shape[axes.index("Y")], max_pixels)
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


def decode_image_bytes(data, name="upload", max_pixels=MAX_UPLOAD_PIXELS):
    """Decode an uploaded file into a float RGB image, with a clear error for bad input.

    Parameters
    ----------
    data : bytes or memoryview
        The file's content.
    name : str
        The file name (named in errors).
    max_pixels : int
        Larger images are refused (before their pixels are decoded).

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
        image = _decode_tiff(data, name, max_pixels)
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
        raise DataError(name, f"is a stack of {frames} images (a 3-D stack, a time series or an animation), not a "
                              "single 2-D image; save one plane (e.g. a maximum projection) as PNG or TIFF and upload "
                              "that")
    _check_size(name, *im.size, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
            if im.format == "JPEG":
                im = ImageOps.exif_transpose(im)  # phone and camera pictures keep their orientation
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(name, f"is a damaged or truncated {im.format or 'image'} file ({exc})") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(im, dtype=np.uint16)
    elif im.mode in ("I", "F", "1", "L", "LA", "RGB", "RGBA"):
        arr = np.asarray(im)
    else:  # palette, CMYK, YCbCr, LAB, ...
        arr = np.asarray(im.convert("RGBA" if "A" in im.getbands() or im.mode == "P" else "RGB"))
    return to_float_rgb(arr, name)


def uploaded_files(value):
    """(name, bytes) pairs from a ``FileUpload.value`` of ipywidgets 8 (tuple of dicts) or 7 (dict)."""
    if not value:
        return []
    if isinstance(value, dict):  # ipywidgets 7: {name: {"metadata": ..., "content": ...}}
        return [(name, bytes(v.get("content", b""))) for name, v in value.items()]
    return [(f.get("name", "upload"), bytes(f.get("content", b""))) for f in value]


def _available_memory():
    """Bytes of memory available now (Linux /proc/meminfo; elsewhere 8 GB is assumed)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 8 * 2 ** 30


def auto_max_pixels(predictor, available=None):
    """The largest upload (in pixels) that `predictor` can segment here without running out of memory.

    On a GPU, :data:`MAX_UPLOAD_PIXELS`. On the CPU one U-Net pass needs about
    :data:`BYTES_PER_PIXEL_AND_WIDTH` x ``base`` bytes per pixel; half of the available
    memory may go to it, within [:data:`MIN_UPLOAD_PIXELS`, :data:`MAX_UPLOAD_PIXELS`].
    A kernel killed for memory would leave a dead page; a refusal leaves a message.
    """
    if predictor is None or getattr(getattr(predictor, "device", None), "type", "cpu") != "cpu":
        return MAX_UPLOAD_PIXELS
    config = getattr(getattr(predictor, "model", None), "config", None) or {}
    base = int(config.get("base", 16))
    available = _available_memory() if available is None else available
    fits = int(available / 2 / (BYTES_PER_PIXEL_AND_WIDTH * base))
    return max(MIN_UPLOAD_PIXELS, min(MAX_UPLOAD_PIXELS, fits))


# -------------------------------------------------------- the run directory ---

def resolve_run_dir(run_dir="auto", profile="auto", log=print):
    """The course's run folder, as notebooks 04 and 05 resolve it (:func:`nucleiseg_lib.course.resolve_run_dir`).

    Parameters
    ----------
    run_dir : str or Path
        "auto" (``runs/<profile>`` in the course folder; on Google Drive in Colab) or a folder.
    profile : str
        "auto" means "gpu" when CUDA is available, else "cpu" ("smoke" under pytest).

    Returns
    -------
    Path
    """
    from .course import resolve_run_dir as course_run_dir
    return course_run_dir(run_dir, profile, log=log)


def no_model_message(run_dir, problem=None):
    """HTML telling the user that there is no model yet, and how to get one."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "best.pt"
    profile = run_dir.name if run_dir.name in ("smoke", "cpu", "gpu", "original") else "cpu"
    detail = f"<br><small>{html.escape(str(problem))}</small>" if problem else ""
    return (
        f'<div class="nucleiseg-nomodel" style="border-left:6px solid #d9822b;background:#fff4e5;padding:10px 14px;'
        f'margin:6px 0;color:#222"><b>No trained model yet.</b> This app uses the checkpoint that notebook '
        f"<code>04_training</code> writes, <code>{html.escape(str(ckpt))}</code>, and there is none "
        f"usable there.{detail}<br>To get one, either<ul style='margin:4px 0'>"
        f"<li>run <code>notebooks/04_training.ipynb</code> with the same <code>PROFILE</code> and "
        f"<code>RUN_DIR</code> as here, or</li>"
        f"<li>in a terminal: <code>nucleiseg train --data auto --run {html.escape(str(run_dir))} "
        f"--profile {profile}</code> (a few minutes with <code>--profile smoke</code>, "
        f"about 40 with <code>cpu</code>),</li></ul>"
        f"then press <b>Check again</b> (or run this notebook again).</div>")


# ------------------------------------------------------------ measurements ---

def measure_nuclei(labels, image=None, prob=None):
    """Per-nucleus measurements, in pixels, vectorised (fast for thousands of nuclei).

    Parameters
    ----------
    labels : ndarray, shape (H, W), int; 0 = background, 1..N nuclei
    image : ndarray, shape (H, W, 3) or (H, W), float in [0, 1], optional
        For ``mean_intensity`` (of the grayscale image).
    prob : ndarray, shape (H, W), optional
        For ``mean_probability``.

    Returns
    -------
    dict of column name -> ndarray of length N, keys :data:`MEASUREMENT_COLUMNS`
        Coordinates are x = column, y = row, 0-based; ``bbox_x1``/``bbox_y1`` are
        exclusive; the axes are those of the ellipse with the same second moments;
        ``perimeter_px`` counts the nucleus's inner boundary pixels.
    """
    labels = np.asarray(labels)
    h, w = labels.shape
    n = int(labels.max()) if labels.size else 0
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    area = np.bincount(lab, minlength=n + 1)[1:].astype(np.float64)
    present = area > 0
    safe = np.where(present, area, 1)

    def mean_of(values):
        return np.bincount(lab, weights=values, minlength=n + 1)[1:] / safe

    cy, cx = mean_of(ys.astype(np.float64)), mean_of(xs.astype(np.float64))
    dy, dx = ys - cy[lab - 1], xs - cx[lab - 1]
    myy = mean_of(dy * dy)  # second central moments, as scikit-image's inertia tensor
    mxx = mean_of(dx * dx)
    mxy = mean_of(dx * dy)
    root = np.sqrt(((myy - mxx) / 2) ** 2 + mxy ** 2)
    l1, l2 = (myy + mxx) / 2 + root, np.maximum((myy + mxx) / 2 - root, 0)
    ecc = np.sqrt(np.clip(1 - l2 / np.maximum(l1, 1e-12), 0, 1))
    y0 = np.full(n, h, np.int64); x0 = np.full(n, w, np.int64)
    y1 = np.zeros(n, np.int64); x1 = np.zeros(n, np.int64)
    np.minimum.at(y0, lab - 1, ys); np.minimum.at(x0, lab - 1, xs)
    np.maximum.at(y1, lab - 1, ys + 1); np.maximum.at(x1, lab - 1, xs + 1)
    edge = instance_contours(labels)
    perimeter = np.bincount(labels[edge], minlength=n + 1)[1:]
    border = np.zeros(n + 1, bool)
    for line in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[line] = True
    if image is not None:
        gray = np.asarray(image, np.float32)
        gray = gray.mean(axis=2) if gray.ndim == 3 else gray
        intensity = mean_of(gray[ys, xs].astype(np.float64))
    else:
        intensity = np.full(n, np.nan)
    mean_prob = mean_of(np.asarray(prob)[ys, xs].astype(np.float64)) if prob is not None else np.full(n, np.nan)
    table = dict(nucleus=np.arange(1, n + 1), area_px=area.astype(np.int64), centroid_x=cx, centroid_y=cy,
                 bbox_x0=x0, bbox_y0=y0, bbox_x1=x1, bbox_y1=y1,
                 equivalent_diameter_px=np.sqrt(4 * area / np.pi), major_axis_px=4 * np.sqrt(l1),
                 minor_axis_px=4 * np.sqrt(l2), eccentricity=ecc, perimeter_px=perimeter.astype(np.int64),
                 mean_intensity=intensity, mean_probability=mean_prob, touches_border=border[1:])
    return {k: v[present] for k, v in table.items()}


def area_stats(table, shape, mask=None):
    """Count and area statistics of a :func:`measure_nuclei` table.

    Parameters
    ----------
    table : dict
    shape : tuple of int
        (H, W) of the image.
    mask : ndarray, shape (H, W), bool, optional
        The thresholded mask; its pixels are ``foreground_px`` (else the nuclei's).

    Returns
    -------
    dict
        ``count``, ``foreground_px`` (pixels of the mask), ``nuclei_px`` (pixels of the
        nuclei: the mask less the specks under ``min_size``), ``coverage`` (foreground
        fraction of the image), ``area_mean``, ``area_median``, ``area_std``,
        ``area_min``, ``area_max`` (pixels; NaN without nuclei), ``touching_border``.
    """
    area = np.asarray(table["area_px"], np.float64)
    total = float(np.prod(shape))
    nuclei_px = int(area.sum())
    foreground = int(np.count_nonzero(mask)) if mask is not None else nuclei_px
    empty = area.size == 0

    def stat(f):
        return float("nan") if empty else float(f(area))

    return dict(count=int(area.size), foreground_px=foreground, nuclei_px=nuclei_px, coverage=foreground / total,
                area_mean=stat(np.mean), area_median=stat(np.median), area_std=stat(np.std),
                area_min=stat(np.min), area_max=stat(np.max),
                touching_border=int(np.sum(table["touches_border"])))


def table_to_csv(table):
    """The measurements as CSV text (one row per nucleus, a header row)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cols = list(table)
    writer.writerow(cols)
    n = len(table[cols[0]]) if cols else 0
    fmt = {k: (lambda v: f"{v:.3f}") if np.asarray(table[k]).dtype.kind == "f" else
           (lambda v: str(bool(v)).lower()) if np.asarray(table[k]).dtype.kind == "b" else str for k in cols}
    for i in range(n):
        writer.writerow([fmt[k](table[k][i]) for k in cols])
    return out.getvalue()


# ------------------------------------------------------------------ pictures ---

def png_bytes(array, compress_level=1):
    """PNG of a uint8/uint16 array (fast compression: these images go straight to the browser)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def display_factor(shape, display_max=DISPLAY_MAX):
    """Integer reduction factor of the *shown* images (1 up to `display_max` pixels a side)."""
    return max(1, int(np.ceil(max(shape[:2]) / display_max)))


def _reduce(array, factor):
    """Block-average an (H, W, ...) array by an integer factor (only for what is shown)."""
    if factor == 1:
        return array
    h, w = array.shape[:2]
    h2, w2 = h // factor * factor, w // factor * factor
    a = array[:h2, :w2].reshape(h2 // factor, factor, w2 // factor, factor, *array.shape[2:])
    return a.mean(axis=(1, 3))


def to_uint8(image):
    """A float [0, 1] image as uint8."""
    return (np.clip(np.asarray(image, np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)


_LUT = None


def probability_rgb(prob):
    """A probability map through the 'magma' colour map, uint8 RGB."""
    global _LUT
    if _LUT is None:
        from matplotlib import colormaps
        _LUT = to_uint8(colormaps["magma"](np.linspace(0, 1, 256))[:, :3])
    return _LUT[to_uint8(prob)]


def outline_rgb(image_u8, labels, factor=1, colour=OUTLINE_COLOUR, width=None):
    """The (shown) image with every nucleus's outline drawn, uint8 RGB at the shown size.

    Parameters
    ----------
    image_u8 : ndarray, shape (h, w, 3), uint8
        The image as shown (reduced by `factor` from the labels' size).
    labels : ndarray, shape (H, W), int
    factor : int
        Reduction of the shown image; any outline pixel in a block marks the shown
        pixel, so thin outlines survive the reduction.
    width : int, optional
        Outline width in image pixels, always inside the nucleus; default 1, and 2
        for images over 700 pixels a side (which are usually seen smaller than 1:1).
    """
    width = width or (2 if max(labels.shape) > 700 else 1)
    edge = instance_contours(labels)
    inner = labels
    for _ in range(width - 1):
        inner = np.where(edge, 0, inner)
        edge = edge | instance_contours(inner)
    if factor > 1:
        h, w = image_u8.shape[:2]
        edge = edge[:h * factor, :w * factor].reshape(h, factor, w, factor).any(axis=(1, 3))
    out = image_u8.copy()
    out[edge] = colour
    return out


# ---------------------------------------------------------------- downloads ---

def results_zip(result, checkpoint=None):
    """The download: ``mask.png`` (0/255), ``labels.png`` (16-bit instance ids), ``nuclei.csv``, ``settings.json``."""
    labels = result.labels
    if labels.max() > 65535:
        raise ValueError("more than 65535 nuclei do not fit a 16-bit labels PNG")
    settings = dict(image=result.upload.name, width=int(labels.shape[1]), height=int(labels.shape[0]),
                    rule=result.rule, threshold=round(float(result.threshold), 6), checkpoint=checkpoint,
                    **{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in result.stats.items()})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("mask.png", png_bytes((result.mask * 255).astype(np.uint8)), zipfile.ZIP_STORED)
        z.writestr("labels.png", png_bytes(labels.astype(np.uint16)), zipfile.ZIP_STORED)
        z.writestr("nuclei.csv", table_to_csv(result.table), zipfile.ZIP_DEFLATED)
        z.writestr("settings.json", json.dumps(settings, indent=2), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def download_filename(name):
    """``cells.tif`` -> ``cells_nucleiseg.zip``."""
    stem = Path(name).stem or "image"
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    return f"{stem}_nucleiseg.zip"


def download_link(payload, filename, text="Download mask, labels (PNG) and measurements (CSV)"):
    """An HTML anchor styled as a button that saves `payload` (a zip) under `filename`."""
    b64 = base64.b64encode(payload).decode("ascii")
    return (f'<a class="nucleiseg-download-link jupyter-button mod-primary" download="{html.escape(filename)}" '
            f'href="data:application/zip;base64,{b64}" style="display:inline-block;padding:4px 14px;'
            f'text-decoration:none;border-radius:3px;line-height:28px;height:auto">&#11015; {html.escape(text)}'
            f'</a> <small>{html.escape(filename)}, {len(payload) / 1e6:.2f} MB</small>')


# ------------------------------------------------------------- the pipeline ---

@dataclass(eq=False)
class Upload:
    """One uploaded image, predicted once."""

    name: str
    image: np.ndarray            # (H, W, 3) float32 in [0, 1]
    prob: np.ndarray             # (C, H, W) float32; channel 0 = nucleus probability
    seconds: dict = field(default_factory=dict)   # decode, predict
    _shown: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self):
        return self.image.shape[:2]


@dataclass(eq=False)
class Result:
    """One upload after thresholding: mask, instances, measurements."""

    upload: Upload
    rule: str
    threshold: float
    mask: np.ndarray
    labels: np.ndarray
    table: dict
    stats: dict
    seconds: float
    min_size: int = 0            # instances smaller than this were dropped (the checkpoint's post-processing)


class SegmentApp:
    """Upload microscope images, see their nuclei; the app of notebook 06.

    Parameters
    ----------
    predictor : nucleiseg_lib.inference.Predictor or None
        None: the app only explains how to get a model (`problem` says why).
    run_dir : str or Path, optional
        Shown to the user, and where :meth:`retry` looks for ``best.pt``.
    problem : str, optional
        Why there is no predictor.
    max_pixels : int or "auto"
        Larger uploads are refused with a message; "auto": what the model can segment
        in this machine's memory (:func:`auto_max_pixels`).
    display_max : int
        Longer side of the shown images; larger images are shown reduced (by an
        integer factor), never predicted reduced.
    keep : int
        Uploads kept in memory; the oldest are dropped.

    Examples
    --------
    >>> app = SegmentApp.from_run_dir("runs/cpu")          # doctest: +SKIP
    >>> app.show()                                          # doctest: +SKIP
    >>> up = app.add_image(open("cells.png", "rb").read(), "cells.png")   # doctest: +SKIP
    >>> app.segment(up, "otsu").stats["count"]              # doctest: +SKIP
    """

    def __init__(self, predictor=None, run_dir=None, problem=None, max_pixels="auto",
                 display_max=DISPLAY_MAX, keep=KEEP_IMAGES):
        self.predictor = predictor
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.problem = problem
        self._max_pixels = max_pixels
        self.display_max = display_max
        self.keep = keep
        self.uploads = []
        self.result = None
        self.messages = []
        self._ui = None
        self._quiet = False
        self._device, self._tta = None, False

    # ---- construction
    @classmethod
    def from_run_dir(cls, run_dir="auto", profile="auto", device=None, tta=False, **kwargs):
        """The app with the model in ``<run_dir>/best.pt``; without one, an app that says how to get it.

        Parameters
        ----------
        run_dir : str or Path
            "auto" resolves with :func:`resolve_run_dir` (``<repo>/runs/<profile>``).
        profile : str
        device : str, optional
            Default: CUDA when available, else the CPU.
        tta : bool
            Test-time augmentation (4 flips: 4x slower, slightly better).
        **kwargs
            Passed to :class:`SegmentApp`.
        """
        run_dir = resolve_run_dir(run_dir, profile)
        predictor, problem = cls._load(run_dir, device, tta)
        app = cls(predictor, run_dir, problem, **kwargs)
        app._device, app._tta = device, tta
        return app

    @staticmethod
    def _load(run_dir, device=None, tta=False):
        from .inference import Predictor
        try:
            from .pretrained import fallback  # no trained run: the shipped course model, saying so
            return Predictor(fallback(Path(run_dir) / "best.pt"), device=device, tta=tta), None
        except CheckpointError as exc:
            return None, exc.problem

    @property
    def max_pixels(self):
        """The largest upload accepted, in pixels."""
        if self._max_pixels == "auto":
            return auto_max_pixels(self.predictor)
        return int(self._max_pixels)

    @property
    def ready(self):
        """Whether a model is loaded."""
        return self.predictor is not None

    @property
    def validation_threshold(self):
        return float(self.predictor.postprocess["threshold"]) if self.ready else 0.5

    def retry(self):
        """Look for the checkpoint again (after training in another notebook); True when found."""
        if self.run_dir is not None and not self.ready:
            self.predictor, self.problem = self._load(self.run_dir, self._device, self._tta)
            if self._ui is not None:
                self._refresh_model_box()
        return self.ready

    def model_summary(self):
        """One line about the model in use (plain text)."""
        if not self.ready:
            return "no model"
        p = self.predictor
        cfg = getattr(getattr(p, "model", None), "config", None) or {"base": "?", "out_channels": "?"}
        pp = p.postprocess
        state = getattr(p, "state", {})
        recipe = (state.get("config") or {}).get("recipe", "?")
        data = (state.get("data") or {}).get("source")
        where = f"{self.run_dir / 'best.pt'}" if self.run_dir else p.path
        text = (f"{where}: U-Net base {cfg['base']}, {cfg['out_channels']} output channel(s), recipe {recipe}, "
                f"epoch {state.get('epoch', '?')}; validation-optimal threshold {pp['threshold']:.2f}, "
                f"{pp['method']} instances; on {getattr(getattr(p, 'device', None), 'type', 'cpu')}")
        if data == "synthetic":
            text += " - TRAINED ON SYNTHETIC DATA: expect poor results on real microscopy"
        return text

    # ---- the pipeline (no widgets)
    def add_image(self, content, name="upload"):
        """Decode and predict one uploaded file; keep it and return its :class:`Upload`.

        Raises
        ------
        DataError
            Bad input (see :func:`decode_image_bytes`).
        CheckpointError
            When there is no model.
        """
        if not self.ready:
            raise CheckpointError(self.run_dir / "best.pt" if self.run_dir else "best.pt",
                                  self.problem or "no model loaded")
        t0 = time.perf_counter()
        image = decode_image_bytes(content, name, self.max_pixels)
        t1 = time.perf_counter()
        prob = self.predictor.predict_proba(image)
        t2 = time.perf_counter()
        up = Upload(name, image, prob, dict(decode=t1 - t0, predict=t2 - t1))
        self.uploads.append(up)
        del self.uploads[:-self.keep]
        while len(self.uploads) > 1 and sum(np.prod(u.shape) for u in self.uploads) > KEEP_PIXELS:
            del self.uploads[0]   # memory: about 24 bytes per pixel per upload
        return up

    def threshold_for(self, upload, rule, value=None):
        """The threshold a rule gives on one upload ("manual" takes `value`)."""
        if rule == "manual":
            return float(value if value is not None else self.validation_threshold)
        return find_threshold(upload.prob[0], rule, 0.5 if rule == "fixed" else self.validation_threshold)

    def segment(self, upload, rule="validation", threshold=None):
        """Threshold, label and measure one upload (fast: the prediction is reused).

        Parameters
        ----------
        upload : Upload
        rule : {"validation", "fixed", "relative", "otsu", "manual"}
        threshold : float, optional
            Used with ``rule="manual"``.

        Returns
        -------
        Result
        """
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; use one of {RULES}")
        t0 = time.perf_counter()
        t = self.threshold_for(upload, rule, threshold)
        seg = self.predictor.postprocess_proba(upload.prob, t)
        table = measure_nuclei(seg["labels"], upload.image, upload.prob[0])
        stats = area_stats(table, upload.shape, seg["mask"])
        return Result(upload, rule, float(t), seg["mask"], seg["labels"], table, stats, time.perf_counter() - t0,
                      int(self.predictor.postprocess.get("min_size", 0)))

    def download_bytes(self, result=None):
        """The zip of the current (or given) result."""
        result = result or self.result
        return results_zip(result, str(self.predictor.path) if self.ready else None)

    # ---- the widgets
    @property
    def widget(self):
        """The app's ipywidgets box (built on first use)."""
        if self._ui is None:
            self._build()
        return self._ui["root"]

    def show(self):
        """Display the app (in Jupyter, Colab or Voilà)."""
        from IPython.display import display
        display(self.widget)
        return None

    def _build(self):
        import ipywidgets as W
        ui = {}
        ui["style"] = W.HTML(_CSS)
        ui["model"] = W.HTML().add_class("nucleiseg-model")
        ui["retry"] = W.Button(description="Check again", icon="refresh",
                               tooltip="look for the checkpoint again").add_class("nucleiseg-retry")
        ui["upload"] = W.FileUpload(accept=ACCEPT, multiple=True, description="Upload image(s)",
                                    layout=W.Layout(width="240px")).add_class("nucleiseg-upload")
        ui["message"] = W.HTML().add_class("nucleiseg-message")
        ui["select"] = W.Dropdown(description="Image", options=[], layout=W.Layout(width="360px"),
                                  style={"description_width": "50px"}).add_class("nucleiseg-select")
        ui["rule"] = W.Dropdown(description="Rule", options=[(RULE_LABELS[r], r) for r in RULES],
                                value="validation", layout=W.Layout(width="260px"),
                                style={"description_width": "40px"}).add_class("nucleiseg-rule")
        ui["slider"] = W.FloatSlider(value=self.validation_threshold, min=0.0, max=1.0, step=0.01,
                                     description="Threshold", readout_format=".2f", continuous_update=False,
                                     layout=W.Layout(width="420px")).add_class("nucleiseg-threshold")
        ui["zoom"] = W.ToggleButtons(options=[("Fit", "fit"), ("100 %", "full")], value="fit",
                                     tooltips=["fit the three images to the page", "one screen pixel per pixel"],
                                     style={"button_width": "60px"}).add_class("nucleiseg-zoom")
        ui["count"] = W.HTML().add_class("nucleiseg-count")
        ui["foreground"] = W.HTML().add_class("nucleiseg-foreground")
        ui["stats"] = W.HTML().add_class("nucleiseg-stats")
        ui["panels"] = {}
        boxes = []
        for key, title in (("image", "image"), ("prob", "probability of nucleus"), ("overlay", "outlines")):
            img = W.Image(format="png").add_class(f"nucleiseg-{key}")
            cap = W.HTML(f"<b>{title}</b>").add_class("nucleiseg-caption")
            ui["panels"][key] = (img, cap)
            boxes.append(W.VBox([cap, img], layout=W.Layout(min_width="0")).add_class("nucleiseg-panel"))
        ui["grid"] = W.GridBox(boxes).add_class("nucleiseg-grid")
        ui["download"] = W.HTML().add_class("nucleiseg-download")
        ui["table"] = W.HTML().add_class("nucleiseg-table")
        controls = W.HBox([ui["select"], ui["rule"], ui["slider"], ui["zoom"]],
                          layout=W.Layout(flex_flow="row wrap", align_items="center"))
        ui["results"] = W.VBox([controls, W.HBox([ui["count"], ui["foreground"]]), ui["stats"], ui["grid"],
                                ui["download"], ui["table"]]).add_class("nucleiseg-results")
        ui["root"] = W.VBox([ui["style"], ui["model"], ui["retry"], ui["upload"], ui["message"], ui["results"]]
                            ).add_class("nucleiseg-app")
        self._ui = ui
        ui["upload"].observe(self._on_upload, names="value")
        ui["select"].observe(self._on_select, names="value")
        ui["rule"].observe(self._on_rule, names="value")
        ui["slider"].observe(self._on_slider, names="value")
        ui["zoom"].observe(lambda ch: self._apply_zoom(), names="value")
        ui["retry"].on_click(lambda b: self.retry())
        self._refresh_model_box()
        self._apply_zoom()
        self._show_results(False)

    def _refresh_model_box(self):
        ui = self._ui
        if self.ready:
            ui["model"].value = f'<div class="nucleiseg-modelinfo">Model: {html.escape(self.model_summary())}</div>'
            ui["retry"].layout.display = "none"
            ui["upload"].disabled = False
            self._quiet = True
            try:
                ui["slider"].value = round(self.validation_threshold, 2)
            finally:
                self._quiet = False
            side = int(self.max_pixels ** 0.5)
            self._message("Upload one or more microscope images (PNG, JPEG or TIFF; 8- or 16-bit; grayscale, RGB "
                          f"or RGBA; up to {self.max_pixels / 1e6:.1f} megapixels each, e.g. {side}x{side}). Files "
                          f"over {WEBSOCKET_LIMIT_MB} MB need a server that accepts large messages (the course's "
                          "voila.json sets one; see 'How it works' below).", "info")
        else:
            ui["model"].value = no_model_message(self.run_dir or "runs/cpu", self.problem)
            ui["retry"].layout.display = None
            ui["upload"].disabled = True
            self._message("", "info")

    def _message(self, text, kind="info", raw_html=False):
        body = text if raw_html else html.escape(text)
        self.messages = self.messages[-49:] + [(kind, text)]
        if self._ui is not None:
            self._ui["message"].value = (f'<div class="nucleiseg-msg nucleiseg-msg-{kind}" data-kind="{kind}">{body}'
                                         "</div>") if text else ""

    def _show_results(self, visible):
        self._ui["results"].layout.display = None if visible else "none"

    def _apply_zoom(self):
        ui = self._ui
        full = ui["zoom"].value == "full"
        ui["grid"].layout.grid_template_columns = "repeat(3, max-content)" if full else "repeat(3, minmax(0, 1fr))"
        ui["grid"].layout.overflow = "auto" if full else "visible"
        shown = self.result.upload._shown.get("size") if self.result is not None else None
        for img, _ in ui["panels"].values():
            if full and shown:
                img.layout.width, img.layout.max_width = f"{shown[1]}px", "none"
            else:
                img.layout.width, img.layout.max_width = "100%", "100%"

    # ---- callbacks (never raise: a problem becomes a message in the page)
    def _on_upload(self, change):
        files = uploaded_files(change["new"])
        if not files:
            return
        errors, done = [], []
        for i, (name, content) in enumerate(files):
            self._message(f"Segmenting {name} ({i + 1} of {len(files)}, {len(content) / 1e6:.1f} MB)...", "busy")
            try:
                done.append(self.add_image(content, name))
            except DataError as exc:
                errors.append(str(exc))
            except Exception as exc:  # out of memory, ...: say so in the page, no traceback
                errors.append(f"{name}: could not be segmented ({type(exc).__name__}: {exc})")
        try:
            self._ui["upload"].value = ()   # so that the same file can be uploaded again
        except Exception:  # pragma: no cover - ipywidgets 7
            pass
        if done:
            self._refresh_select(done[-1])
        lines = [f"{up.name}: {up.shape[1]}x{up.shape[0]} pixels, segmented in "
                 f"{up.seconds['decode'] + up.seconds['predict']:.1f} s" for up in done]
        if errors:
            body = "<br>".join(html.escape(e) for e in errors)
            if lines:
                body = "<br>".join(html.escape(s) for s in lines) + "<br>" + body
            self._message(body, "error", raw_html=True)
        else:
            self._message("; ".join(lines), "ok")

    def _refresh_select(self, current):
        ui = self._ui
        options = [(f"{i + 1}. {up.name} ({up.shape[1]}x{up.shape[0]})", i) for i, up in enumerate(self.uploads)]
        self._quiet = True
        try:
            ui["select"].options = options
            ui["select"].value = self.uploads.index(current)
        finally:
            self._quiet = False
        ui["select"].layout.display = None if len(options) > 1 else "none"
        self._update(new_image=True)

    def _on_select(self, change):
        if not self._quiet and change["new"] is not None:
            self._update(new_image=True)

    def _on_rule(self, change):
        if self._quiet or change["new"] == "manual":
            return
        self._update()

    def _on_slider(self, change):
        if self._quiet:
            return
        if self.result is not None and abs(change["new"] - self.result.threshold) < 0.005:
            return  # the slider only rounded a rule's threshold to its step
        self._quiet = True
        try:
            self._ui["rule"].value = "manual"
        finally:
            self._quiet = False
        self._update()

    def _update(self, new_image=False):
        try:
            self._render(new_image)
        except Exception as exc:  # keep the page alive whatever happens
            self._message(f"could not update the view ({type(exc).__name__}: {exc})", "error")

    def _render(self, new_image):
        ui = self._ui
        if not self.uploads or ui["select"].value is None:
            return
        up = self.uploads[ui["select"].value]
        rule = ui["rule"].value
        res = self.segment(up, rule, ui["slider"].value)
        self.result = res
        self._quiet = True
        try:
            ui["slider"].value = round(res.threshold, 2)
        finally:
            self._quiet = False
        factor = display_factor(up.shape, self.display_max)
        if new_image or up._shown.get("factor") != factor:
            shown = to_uint8(_reduce(up.image, factor))
            up._shown.update(factor=factor, size=shown.shape[:2], image_u8=shown,
                             image_png=png_bytes(shown),
                             prob_png=png_bytes(probability_rgb(_reduce(up.prob[0], factor))))
        small = max(up._shown["size"]) <= 600     # shown enlarged: keep the pixels sharp; larger: smooth reduction
        for im, _ in ui["panels"].values():
            (im.add_class if small else im.remove_class)("nucleiseg-pixelated")
        img, cap = ui["panels"]["image"]
        img.value = up._shown["image_png"]
        note = "" if factor == 1 else f" (shown reduced {factor}x)"
        cap.value = f"<b>image</b> {up.shape[1]}x{up.shape[0]}{note}"
        ui["panels"]["prob"][0].value = up._shown["prob_png"]
        ui["panels"]["prob"][1].value = "<b>probability of nucleus</b> (dark 0, bright 1)"
        ui["panels"]["overlay"][0].value = png_bytes(outline_rgb(up._shown["image_u8"], res.labels, factor))
        ui["panels"]["overlay"][1].value = f"<b>outlines</b> at threshold {res.threshold:.3f}"
        self._apply_zoom()
        s = res.stats
        ui["count"].value = (f'<span class="nucleiseg-count-value" data-count="{s["count"]}" '
                             f'data-name="{html.escape(up.name)}">{s["count"]}</span> {_nuclei(s["count"])}')
        ui["foreground"].value = (f'foreground pixels: <span data-foreground="{s["foreground_px"]}">'
                                  f'{s["foreground_px"]}</span> ({100 * s["coverage"]:.1f} %)')
        ui["stats"].value = _stats_html(res)
        ui["download"].value = download_link(self.download_bytes(res), download_filename(up.name))
        ui["table"].value = _table_html(res.table)
        self._show_results(True)


def _nuclei(n):
    return "nucleus" if n == 1 else "nuclei"


def _fmt(v, digits=1):
    return "-" if isinstance(v, float) and np.isnan(v) else f"{v:.{digits}f}"


def _stats_html(res):
    s = res.stats
    up = res.upload
    rows = [("image", f"{html.escape(up.name)} ({up.shape[1]}x{up.shape[0]} pixels)"),
            ("threshold", f'<span data-threshold="{res.threshold:.4f}">{res.threshold:.3f}</span> '
                          f"({RULE_LABELS[res.rule]})"),
            ("nucleus area (pixels)", f"mean {_fmt(s['area_mean'])}, median {_fmt(s['area_median'])}, "
                                      f"sd {_fmt(s['area_std'])}, min {_fmt(s['area_min'], 0)}, "
                                      f"max {_fmt(s['area_max'], 0)}"),
            ("in nuclei", f"{s['nuclei_px']} pixels (the foreground less specks under "
                          f"{res.min_size} pixels)"),
            ("touching the border", f"{s['touching_border']} (their area is cut off)"),
            ("time", f"prediction {up.seconds['predict']:.2f} s (once per upload), threshold + measurements "
                     f"{res.seconds:.2f} s")]
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="nucleiseg-stats-table">{body}</table>'


def _table_html(table, max_rows=200):
    cols = ("nucleus", "area_px", "centroid_x", "centroid_y", "equivalent_diameter_px", "eccentricity",
            "perimeter_px", "mean_intensity", "mean_probability", "touches_border")
    n = len(table["nucleus"])
    if n == 0:
        return "<i>no nuclei at this threshold</i>"
    head = "".join(f"<th>{c}</th>" for c in cols)
    rows = []
    for i in range(min(n, max_rows)):
        cells = []
        for c in cols:
            v = table[c][i]
            cells.append(f"<td>{v:.2f}</td>" if isinstance(v, (float, np.floating)) else f"<td>{v}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p><small>first {max_rows} of {n} nuclei; all are in the download</small></p>" if n > max_rows else ""
    return (f"<details><summary>Measurements of the {n} {_nuclei(n)} (pixels)</summary>"
            f'<div style="max-height:320px;overflow:auto"><table class="nucleiseg-measurements">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}</details>")


_CSS = """<style>
.nucleiseg-grid { grid-gap: 8px; width: 100%; }
.nucleiseg-panel img { height: auto; }
.nucleiseg-panel img.nucleiseg-pixelated { image-rendering: pixelated; }
.nucleiseg-msg { padding: 6px 10px; margin: 4px 0; border-radius: 4px; }
.nucleiseg-msg-info { background: #eef3fb; color: #123; }
.nucleiseg-msg-busy { background: #fff8d6; color: #4a3b00; }
.nucleiseg-msg-ok { background: #e8f6ea; color: #0d3d14; }
.nucleiseg-msg-error { background: #fde8e8; color: #7a0b0b; border-left: 5px solid #c62828; }
.nucleiseg-count { font-size: 1.6em; margin-right: 24px; }
.nucleiseg-foreground { font-size: 1.1em; align-self: center; }
.nucleiseg-stats-table th { text-align: left; padding-right: 12px; font-weight: 600; }
.nucleiseg-measurements td, .nucleiseg-measurements th { padding: 1px 8px; text-align: right; }
.nucleiseg-modelinfo { color: #444; font-size: 0.9em; }
</style>"""
