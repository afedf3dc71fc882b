"""What the app accepts: file types, upload size (from this machine's memory), how much it keeps."""

from pathlib import Path

from ..data.decode import MAX_UPLOAD_PIXELS

ACCEPT = ".png,.jpg,.jpeg,.tif,.tiff"
MIN_UPLOAD_PIXELS = 2048 * 2048   # never refuse less than this (the course promises 2048x2048)
BYTES_PER_PIXEL_AND_WIDTH = 32    # CPU memory of one U-Net pass, per pixel and per unit of `base` (measured: 31)
WEBSOCKET_LIMIT_MB = 10           # Tornado's default message limit, for uploads through Jupyter/Voila
DISPLAY_MAX = 2048                # longer side of the images *shown*; the prediction is never reduced
KEEP_IMAGES = 10                  # uploads kept in memory (the oldest go first) ...
KEEP_PIXELS = 4 * 4096 * 4096     # ... and no more pixels than this in all (about 1.6 GB)
OUTLINE_COLOUR = (1.0, 1.0, 0.0)  # yellow outlines, visible on dark fluorescence and on stained tissue


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
