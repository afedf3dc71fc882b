"""The upload-and-segment app of notebook 06 (served with Voilà, or used cell by cell).

The notebook stays two lines::

    app = SegmentApp.from_run_dir(RUN_DIR, PROFILE)
    app.show()

What happens behind them:

1. **Decode** each uploaded file with :func:`~nucleiseg_lib.data.decode.decode_image_bytes`: PNG, JPEG or TIFF,
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

Where things live: :mod:`.session` (the pipeline without widgets), :mod:`.page` (the
widgets), :mod:`.limits` (what is accepted), :mod:`.download`, :mod:`.markup` (HTML);
decoding is :func:`nucleiseg_lib.data.decode.decode_image_bytes`, the measurements
:mod:`nucleiseg_lib.inference.measure`, the pictures :mod:`nucleiseg_lib.viz.pictures`.
The names below are re-exported here for the notebooks and scripts that import them from
``nucleiseg_lib.app``.
"""

from ..data.decode import MAX_UPLOAD_PIXELS, MIN_SIDE, decode_image_bytes
from ..inference.measure import MEASUREMENT_COLUMNS, area_stats, measure_nuclei, table_to_csv
from ..inference.postprocess import RULE_LABELS
from ..viz.pictures import display_factor, png_bytes, probability_rgb, to_uint8
from .download import download_filename, download_link, results_zip
from .limits import (ACCEPT, BYTES_PER_PIXEL_AND_WIDTH, DISPLAY_MAX, KEEP_IMAGES, KEEP_PIXELS, MIN_UPLOAD_PIXELS,
                     OUTLINE_COLOUR, WEBSOCKET_LIMIT_MB, auto_max_pixels, uploaded_files)
from .markup import no_model_message
from .page import SegmentApp, outline_rgb
from .session import RULES, Result, SegmentSession, Upload, resolve_run_dir

__all__ = ["MAX_UPLOAD_PIXELS", "MIN_SIDE", "decode_image_bytes", "MEASUREMENT_COLUMNS", "area_stats",
           "measure_nuclei", "table_to_csv", "RULE_LABELS", "display_factor", "png_bytes", "probability_rgb",
           "to_uint8", "download_filename", "download_link", "results_zip", "ACCEPT", "BYTES_PER_PIXEL_AND_WIDTH",
           "DISPLAY_MAX", "KEEP_IMAGES", "KEEP_PIXELS", "MIN_UPLOAD_PIXELS", "OUTLINE_COLOUR", "WEBSOCKET_LIMIT_MB",
           "auto_max_pixels", "uploaded_files", "no_model_message", "SegmentApp", "outline_rgb", "RULES", "Result",
           "SegmentSession", "Upload", "resolve_run_dir"]
