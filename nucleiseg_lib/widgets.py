"""The threshold slider: move the threshold, see the mask and the scores change.

>>> app = threshold_slider(predictor, image, true_labels)    # doctest: +SKIP
>>> app                                   # shows the widget in Jupyter   # doctest: +SKIP
>>> app.update(0.3)["dsb_score"]          # the same, without a mouse     # doctest: +SKIP

The probability map is computed once; every move only re-thresholds it, labels
the nuclei and scores them, so the app stays responsive even on a CPU.
"""

import io

import numpy as np

from .inference.postprocess import RULE_LABELS, postprocess_proba, postprocess_settings, rule_threshold
from .metrics import evaluate_image
from .viz import PRED_COLOUR, STAMP, error_map, overlay_outline

#: Dropdown entries: label shown -> threshold rule (see ``find_threshold``); "manual" follows the slider.
RULES = {RULE_LABELS[r]: r for r in ("manual", "fixed", "relative", "otsu", "validation")}


class ThresholdApp:
    """Interactive threshold explorer for one image.

    Parameters
    ----------
    predictor : Predictor or None
        Gives the probability map (unless `prob` is given) and the post-processing
        (instance method, validation-chosen threshold). None: the defaults a model with
        ``prob``'s channels would have (:func:`~nucleiseg_lib.inference.postprocess_settings`).
    image : ndarray, shape (H, W, 3), float in [0, 1]
    true_labels : ndarray, shape (H, W), int, optional
        Ground truth; without it only the nucleus count is reported.
    prob : ndarray, shape (C, H, W) or (H, W), optional
        Probability maps already computed.
    rule : str
        Starting rule: "validation" (default), "fixed", "relative", "otsu" or "manual".
    synthetic : bool
        Stamp the figure as synthetic data.

    Attributes
    ----------
    threshold : float
    rule : str
    mask : ndarray (H, W) bool
    labels : ndarray (H, W) int32
    metrics : dict
        ``threshold``, ``n_pred`` and, with ground truth, ``n_true``, ``iou``,
        ``dice``, ``dsb_score``, ``pixel_accuracy``.
    widget : ipywidgets.VBox
        Built on first use (display, or the ``widget`` attribute).
    """

    def __init__(self, predictor, image, true_labels=None, prob=None, rule="validation", synthetic=False):
        self.predictor, self.image = predictor, np.asarray(image, np.float32)
        self.true_labels = None if true_labels is None else np.asarray(true_labels)
        if prob is None:
            if predictor is None:
                raise ValueError("give a predictor or a probability map")
            prob = predictor.predict_proba(self.image)
        prob = np.asarray(prob, np.float32)
        self.prob = prob[None] if prob.ndim == 2 else prob
        self.postprocess = postprocess_settings(self.prob.shape[0], getattr(predictor, "postprocess", None))
        self.synthetic = synthetic
        self._widget = None
        self._busy = False
        self.rule = rule
        self.update(rule=rule)

    # ---- computing -------------------------------------------------------
    def threshold_for(self, rule):
        """The threshold a rule gives on this image (:func:`~nucleiseg_lib.inference.rule_threshold`)."""
        return rule_threshold(self.prob[0], rule, self.postprocess)

    def update(self, threshold=None, rule=None):
        """Re-threshold, relabel and rescore; refresh the widget if it exists.

        Parameters
        ----------
        threshold : float, optional
            A manual threshold (sets the rule to "manual").
        rule : str, optional
            A rule of :data:`RULES` ("fixed", "relative", "otsu", "validation");
            the threshold is what it gives on this image.

        Returns
        -------
        dict
            :attr:`metrics`.
        """
        if threshold is not None:
            self.rule, self.threshold = "manual", float(threshold)
        elif rule is not None and rule != "manual":
            self.rule, self.threshold = rule, self.threshold_for(rule)
        elif not hasattr(self, "threshold"):
            self.rule, self.threshold = "manual", 0.5
        seg = postprocess_proba(self.prob, self.postprocess, self.threshold)
        self.mask, self.labels = seg["mask"], seg["labels"]
        m = dict(threshold=self.threshold, rule=self.rule, n_pred=int(len(np.unique(self.labels[self.labels > 0]))))
        if self.true_labels is not None:
            r = evaluate_image(self.mask, self.true_labels > 0, self.labels, self.true_labels)
            m.update(n_true=r["n_true"], iou=r["iou"], dice=r["dice"], dsb_score=r["dsb_score"],
                     pixel_accuracy=r["pixel_accuracy"])
        self.metrics = m
        if self._widget is not None:
            self._refresh()
        return m

    def render_png(self, width=10.0):
        """The current figure as PNG bytes (:func:`threshold_figure_png`)."""
        return threshold_figure_png(self, width)

    def metrics_html(self):
        """The scores as a short HTML line."""
        m = self.metrics
        parts = [f"<b>threshold</b> {m['threshold']:.3f} ({m['rule']})", f"<b>nuclei</b> {m['n_pred']}"]
        if "iou" in m:
            parts[-1] += f" predicted / {m['n_true']} true"
            parts += [f"<b>IoU</b> {m['iou']:.3f}", f"<b>Dice</b> {m['dice']:.3f}",
                      f"<b>DSB score</b> {m['dsb_score']:.3f}", f"<b>pixel accuracy</b> {m['pixel_accuracy']:.3f}"]
        warn = '<span style="color:white;background:#c00000;padding:2px 6px"><b>SYNTHETIC DATA</b></span> ' \
            if self.synthetic else ""
        return warn + " &nbsp;|&nbsp; ".join(parts)

    # ---- widget ----------------------------------------------------------
    @property
    def widget(self):
        """The ipywidgets app (slider, rule dropdown, figure, scores)."""
        if self._widget is None:
            import ipywidgets as w
            self.slider = w.FloatSlider(value=self.threshold, min=0.0, max=1.0, step=0.01, readout_format=".2f",
                                        description="threshold", continuous_update=False,
                                        layout=w.Layout(width="420px"))
            self.dropdown = w.Dropdown(options=list(RULES.items()), value=self.rule, description="rule")
            self.picture = w.Image(format="png")
            self.scores = w.HTML()
            self.slider.observe(self._on_slider, names="value")
            self.dropdown.observe(self._on_rule, names="value")
            self._widget = w.VBox([w.HBox([self.slider, self.dropdown]), self.scores, self.picture])
            self._refresh()
        return self._widget

    def _refresh(self):
        self._busy = True
        try:
            self.slider.value = round(min(max(self.threshold, 0.0), 1.0), 4)
            self.dropdown.value = self.rule
        finally:
            self._busy = False
        self.scores.value = self.metrics_html()
        self.picture.value = self.render_png()

    def _on_slider(self, change):
        if not self._busy:
            self.update(threshold=change["new"])

    def _on_rule(self, change):
        if not self._busy and change["new"] != "manual":
            self.update(rule=change["new"])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


def threshold_slider(predictor, image, true_labels=None, prob=None, rule="validation", synthetic=False):
    """An interactive threshold explorer for one image (see :class:`ThresholdApp`).

    Returns
    -------
    ThresholdApp
        Display it (last line of a cell) for the widget; call ``.update(threshold)``
        or ``.update(rule="otsu")`` to drive it from code; read ``.metrics``.
    """
    return ThresholdApp(predictor, image, true_labels, prob, rule, synthetic)


def threshold_figure_png(app, width=10.0):
    """A :class:`ThresholdApp`'s figure as PNG bytes (made without pyplot, so nothing piles up).

    Probability map with the threshold's contour; predicted outlines; with ground truth,
    the pixel errors. `width` in inches.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    panels = 3 if app.true_labels is not None else 2
    fig = Figure(figsize=(width, width / panels + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    im = axes[0].imshow(app.prob[0], cmap="magma", vmin=0, vmax=1)
    axes[0].contour(app.prob[0], levels=[app.threshold], colors="cyan", linewidths=0.8)
    axes[0].set_title(f"probability, threshold {app.threshold:.3f}", fontsize=9)
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    axes[1].imshow(overlay_outline(app.image, app.labels, PRED_COLOUR))
    axes[1].set_title(f"prediction: {app.metrics['n_pred']} nuclei", fontsize=9)
    if app.true_labels is not None:
        axes[2].imshow(error_map(app.mask, app.true_labels > 0))
        axes[2].set_title(f"errors vs truth ({app.metrics['n_true']} nuclei): FP red, FN blue", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if app.synthetic:
        fig.text(0.5, 0.5, STAMP, ha="center", va="center", rotation=15, fontsize=40, color="red", alpha=0.4,
                 fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
