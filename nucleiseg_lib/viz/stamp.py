"""The synthetic-data stamp and loud banners (figures made from generated images must say so)."""

import html
import textwrap

from ..data.locate import SYNTHETIC_WARNING

STAMP = "SYNTHETIC DATA"

def stamp_synthetic(fig, synthetic=True):
    """Stamp a figure as made from synthetic data (does nothing when `synthetic` is false).

    Adds a large translucent red diagonal "SYNTHETIC DATA" across the figure and a
    red banner with :data:`SYNTHETIC_WARNING` above it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    synthetic : bool

    Returns
    -------
    matplotlib.figure.Figure
        `fig`, for chaining.
    """
    if not synthetic:
        return fig
    width, height = fig.get_size_inches() * 72  # points
    # as large as fits inside the figure once rotated (bold capitals: about 0.65 em per letter)
    size = max(14.0, min(0.85 * width / (0.65 * len(STAMP) * 0.94 + 0.34),
                         0.85 * height / (0.65 * len(STAMP) * 0.34 + 0.94)))
    mark = fig.text(0.5, 0.5, STAMP, transform=fig.transFigure, ha="center", va="center", rotation=20,
                    fontsize=size, color="red", alpha=0.35, fontweight="bold", zorder=1000)
    mark.set_in_layout(False)  # never widens the saved figure
    fig.text(0.5, 1.01, "\n".join(textwrap.wrap(SYNTHETIC_WARNING, int(width / 6.5))), transform=fig.transFigure,
             ha="center", va="bottom", fontsize=11, color="white", fontweight="bold", zorder=1000,
             bbox=dict(facecolor="red", edgecolor="darkred", boxstyle="round,pad=0.4"))
    fig._nucleiseg_synthetic = True
    return fig


def is_stamped(fig):
    """Whether :func:`stamp_synthetic` marked `fig`."""
    return any(t.get_text() == STAMP for t in fig.texts)


def banner(text, colour="#c00000"):
    """Display a loud banner in Jupyter (HTML, with a plain-text fallback), or print it elsewhere.

    Parameters
    ----------
    text : str
    colour : str
        CSS background colour.
    """
    plain = f"\n{'!' * 78}\n!!! {text}\n{'!' * 78}\n"
    rich = (f'<div style="background:{colour};color:white;font-size:1.4em;font-weight:bold;padding:12px 16px;'
            f'border-radius:6px;margin:6px 0">&#9888; {html.escape(text)}</div>')
    _display({"text/html": rich, "text/plain": plain}, plain)


def synthetic_banner():
    """The banner every notebook shows when it runs on synthetic data."""
    banner(SYNTHETIC_WARNING)


def _display(bundle, plain):
    try:
        from IPython import get_ipython
        from IPython.display import display
        if get_ipython() is not None:
            display(bundle, raw=True)
            return
    except ImportError:
        pass
    print(plain)
