"""The app's page: ipywidgets around :class:`~nucleiseg_lib.app.session.SegmentSession`."""

import html
from contextlib import contextmanager

from ..errors import DataError
from ..inference.postprocess import RULE_LABELS
from ..viz.pictures import display_factor, overlay_outline, png_bytes, probability_rgb, reduce_blocks, to_uint8
from .download import download_filename, download_link
from .limits import ACCEPT, OUTLINE_COLOUR, WEBSOCKET_LIMIT_MB, uploaded_files
from .markup import (CSS, count_html, foreground_html, message_html, no_model_message, pretrained_message, stats_html,
                     table_html, upload_hint, upload_report)
from .session import RULES, SegmentSession

PANELS = (("image", "image"), ("prob", "probability of nucleus"), ("overlay", "outlines"))


def outline_rgb(image_u8, labels, factor=1, colour=OUTLINE_COLOUR, width=None):
    """The app's outlines: :func:`~nucleiseg_lib.viz.overlay_outline` 1 pixel wide, 2 over 700 pixels a side.

    Parameters
    ----------
    image_u8 : ndarray, shape (h, w, 3), uint8
        The image as shown (reduced by `factor` from the labels' size).
    labels : ndarray, shape (H, W), int
    factor : int
    colour : tuple of 3 floats in [0, 1]
    width : int, optional

    Returns
    -------
    ndarray, shape (h, w, 3), uint8
    """
    return overlay_outline(image_u8, labels, colour, width or (2 if max(labels.shape) > 700 else 1), factor)


def shown_pictures(up, factor):
    """The upload's image and probability map as shown (reduced `factor` times), kept in ``up._shown``."""
    if up._shown.get("factor") != factor:
        shown = to_uint8(reduce_blocks(up.image, factor))
        up._shown.update(factor=factor, size=shown.shape[:2], image_u8=shown, image_png=png_bytes(shown),
                         prob_png=png_bytes(probability_rgb(reduce_blocks(up.prob[0], factor))))
    return up._shown


def apply_zoom(ui, shown_size=None):
    """Fit the three images to the page, or show them one screen pixel per pixel (`shown_size` (h, w))."""
    full = ui["zoom"].value == "full"
    ui["grid"].layout.grid_template_columns = "repeat(3, max-content)" if full else "repeat(3, minmax(0, 1fr))"
    ui["grid"].layout.overflow = "auto" if full else "visible"
    for img, _ in ui["panels"].values():
        img.layout.width, img.layout.max_width = (f"{shown_size[1]}px", "none") if full and shown_size \
            else ("100%", "100%")


def build_ui(threshold):
    """The page's widgets (a dict; ``root`` is the whole page), not yet connected to callbacks."""
    import ipywidgets as W
    ui = dict(style=W.HTML(CSS), model=W.HTML().add_class("nucleiseg-model"), panels={})
    ui["retry"] = W.Button(description="Check again", icon="refresh",
                           tooltip="look for the checkpoint again").add_class("nucleiseg-retry")
    ui["upload"] = W.FileUpload(accept=ACCEPT, multiple=True, description="Upload image(s)",
                                layout=W.Layout(width="240px")).add_class("nucleiseg-upload")
    ui["select"] = W.Dropdown(description="Image", options=[], layout=W.Layout(width="360px"),
                              style={"description_width": "50px"}).add_class("nucleiseg-select")
    ui["rule"] = W.Dropdown(description="Rule", options=[(RULE_LABELS[r], r) for r in RULES], value="validation",
                            layout=W.Layout(width="260px"), style={"description_width": "40px"}
                            ).add_class("nucleiseg-rule")
    ui["slider"] = W.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="Threshold",
                                 readout_format=".2f", continuous_update=False,
                                 layout=W.Layout(width="420px")).add_class("nucleiseg-threshold")
    ui["zoom"] = W.ToggleButtons(options=[("Fit", "fit"), ("100 %", "full")], value="fit",
                                 tooltips=["fit the three images to the page", "one screen pixel per pixel"],
                                 style={"button_width": "60px"}).add_class("nucleiseg-zoom")
    for key in ("message", "count", "foreground", "stats", "download", "table"):
        ui[key] = W.HTML().add_class(f"nucleiseg-{key}")
    boxes = []
    for key, title in PANELS:
        img, cap = W.Image(format="png").add_class(f"nucleiseg-{key}"), W.HTML(f"<b>{title}</b>")
        ui["panels"][key] = (img, cap.add_class("nucleiseg-caption"))
        boxes.append(W.VBox([cap, img], layout=W.Layout(min_width="0")).add_class("nucleiseg-panel"))
    ui["grid"] = W.GridBox(boxes).add_class("nucleiseg-grid")
    controls = W.HBox([ui["select"], ui["rule"], ui["slider"], ui["zoom"]],
                      layout=W.Layout(flex_flow="row wrap", align_items="center"))
    ui["results"] = W.VBox([controls, W.HBox([ui["count"], ui["foreground"]]), ui["stats"], ui["grid"],
                            ui["download"], ui["table"]]).add_class("nucleiseg-results")
    ui["root"] = W.VBox([ui["style"], ui["model"], ui["retry"], ui["upload"], ui["message"], ui["results"]]
                        ).add_class("nucleiseg-app")
    return ui


class SegmentApp(SegmentSession):
    """Upload microscope images, see their nuclei; the app of notebook 06.

    Parameters are those of :class:`~nucleiseg_lib.app.session.SegmentSession`; everything but
    :meth:`show` and :attr:`widget` works without a browser.

    Examples
    --------
    >>> app = SegmentApp.from_run_dir("runs/cpu")          # doctest: +SKIP
    >>> app.show()                                          # doctest: +SKIP
    >>> up = app.add_image(open("cells.png", "rb").read(), "cells.png")   # doctest: +SKIP
    >>> app.segment(up, "otsu").stats["count"]              # doctest: +SKIP
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages, self._ui, self._quiet = [], None, False

    @property
    def widget(self):
        """The app's ipywidgets box (built on first use)."""
        if self._ui is None:
            self._ui = ui = build_ui(self.validation_threshold)
            for key, callback in (("upload", self._on_upload), ("select", self._on_select), ("rule", self._on_rule),
                                  ("slider", self._on_slider), ("zoom", lambda ch: self._apply_zoom())):
                ui[key].observe(callback, names="value")
            ui["retry"].on_click(lambda b: self.retry())
            self._refresh_model_box()
            self._apply_zoom()
            ui["results"].layout.display = "none"
        return self._ui["root"]

    def show(self):
        """Display the app (in Jupyter, Colab or Voilà)."""
        from IPython.display import display
        display(self.widget)

    def retry(self):
        """Look for ``<run_dir>/best.pt`` again (after training in another notebook); True when a model is loaded."""
        before = self.predictor
        found = super().retry()
        if self._ui is not None:
            if self.predictor is not before:
                self._ui["results"].layout.display = "none"   # the uploads went with the other model
                with self._quietly():
                    self._ui["select"].options = []
            self._refresh_model_box()
        return found

    @contextmanager
    def _quietly(self):
        """Set widget values without their callbacks reacting."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _refresh_model_box(self):
        ui = self._ui
        ui["retry"].layout.display = "none" if self.ready and not self.using_pretrained else None
        ui["upload"].disabled = not self.ready
        if self.ready:
            ui["model"].value = (pretrained_message(self.run_dir or "runs/cpu", self.model_summary())
                                 if self.using_pretrained else
                                 f'<div class="nucleiseg-modelinfo">Model: {html.escape(self.model_summary())}</div>')
            with self._quietly():
                ui["slider"].value = round(self.validation_threshold, 2)
            self._message(html.escape(upload_hint(self.max_pixels, WEBSOCKET_LIMIT_MB)), "info")
        else:
            ui["model"].value = no_model_message(self.run_dir or "runs/cpu", self.problem)
            self._message("", "info")

    def _message(self, body_html, kind="info"):
        self.messages = self.messages[-49:] + [(kind, html.unescape(body_html))]
        if self._ui is not None:
            self._ui["message"].value = message_html(body_html, kind)

    def _apply_zoom(self):
        apply_zoom(self._ui, self.result.upload._shown.get("size") if self.result is not None else None)

    # ---- callbacks (never raise: a problem becomes a message in the page)
    def _on_upload(self, change):
        files = uploaded_files(change["new"])
        if not files:
            return
        errors, done = [], []
        for i, (name, content) in enumerate(files):
            self._message(html.escape(f"Segmenting {name} ({i + 1} of {len(files)}, "
                                      f"{len(content) / 1e6:.1f} MB)..."), "busy")
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
        self._message(*upload_report(done, errors))

    def _refresh_select(self, current):
        ui = self._ui
        with self._quietly():
            ui["select"].options = [(f"{i + 1}. {up.name} ({up.shape[1]}x{up.shape[0]})", i)
                                    for i, up in enumerate(self.uploads)]
            ui["select"].value = self.uploads.index(current)
        ui["select"].layout.display = None if len(self.uploads) > 1 else "none"
        self._update()

    def _on_select(self, change):
        if not self._quiet and change["new"] is not None:
            self._update()

    def _on_rule(self, change):
        if not self._quiet and change["new"] != "manual":
            self._update()

    def _on_slider(self, change):
        if self._quiet or (self.result is not None and abs(change["new"] - self.result.threshold) < 0.005):
            return  # the slider only rounded a rule's threshold to its step
        with self._quietly():
            self._ui["rule"].value = "manual"
        self._update()

    def _update(self):
        try:
            self._render()
        except Exception as exc:  # keep the page alive whatever happens
            self._message(html.escape(f"could not update the view ({type(exc).__name__}: {exc})"), "error")

    def _render(self):
        ui = self._ui
        if not self.uploads or ui["select"].value is None:
            return
        up = self.uploads[ui["select"].value]
        self.result = res = self.segment(up, ui["rule"].value, ui["slider"].value)
        with self._quietly():
            ui["slider"].value = round(res.threshold, 2)
        factor = display_factor(up.shape, self.display_max)
        shown = shown_pictures(up, factor)
        for im, _ in ui["panels"].values():   # shown enlarged: keep the pixels sharp; larger: smooth reduction
            (im.add_class if max(shown["size"]) <= 600 else im.remove_class)("nucleiseg-pixelated")
        note = "" if factor == 1 else f" (shown reduced {factor}x)"
        for key, png, caption in (
                ("image", shown["image_png"], f"<b>image</b> {up.shape[1]}x{up.shape[0]}{note}"),
                ("prob", shown["prob_png"], "<b>probability of nucleus</b> (dark 0, bright 1)"),
                ("overlay", png_bytes(outline_rgb(shown["image_u8"], res.labels, factor)),
                 f"<b>outlines</b> at threshold {res.threshold:.3f}")):
            ui["panels"][key][0].value, ui["panels"][key][1].value = png, caption
        self._apply_zoom()
        ui["count"].value, ui["foreground"].value = count_html(up.name, res.stats), foreground_html(res.stats)
        ui["stats"].value, ui["table"].value = stats_html(res), table_html(res.table)
        ui["download"].value = download_link(self.download_bytes(res), download_filename(up.name))
        ui["results"].layout.display = None
