"""Figures and tables of the course (matplotlib; works headless).

Every figure function returns its :class:`matplotlib.figure.Figure` and takes
``synthetic=False``; with ``synthetic=True`` the figure is stamped with a large
red "SYNTHETIC DATA" watermark and the warning
:data:`nucleiseg_lib.data.locate.SYNTHETIC_WARNING`, so a figure made from
generated images can never be mistaken for a result on microscopy.

In a notebook write ``fig = viz.show_samples(...)``: the figure is shown once,
and ``fig`` can be saved with ``fig.savefig(...)``.

Modules: :mod:`.stamp` (synthetic stamp, banners), :mod:`.tables`, :mod:`.pictures`
(arrays: outlines, label colours, PNG bytes), :mod:`.figures` (image figures),
:mod:`.charts` (plots).
"""

from .charts import (METHOD_LABELS, bar_counts, histogram, plot_history, plot_metric_comparison,
                     plot_threshold_sweep, scatter_sizes)
from .figures import show_panels, show_prediction, show_samples
from .pictures import (PRED_COLOUR, TRUE_COLOUR, display_factor, error_map, label_rgb, outline_mask,
                       overlay_outline, png_bytes, probability_rgb, reduce_blocks, to_rgb, to_uint8)
from .stamp import STAMP, banner, is_stamped, stamp_synthetic, synthetic_banner
from .tables import format_table, table

__all__ = ["METHOD_LABELS", "bar_counts", "histogram", "plot_history", "plot_metric_comparison",
           "plot_threshold_sweep", "scatter_sizes", "show_panels", "show_prediction", "show_samples",
           "PRED_COLOUR", "TRUE_COLOUR", "display_factor", "error_map", "label_rgb", "outline_mask",
           "overlay_outline", "png_bytes", "probability_rgb", "reduce_blocks", "to_rgb", "to_uint8", "STAMP",
           "banner", "is_stamped", "stamp_synthetic", "synthetic_banner", "format_table", "table"]
