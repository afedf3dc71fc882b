"""Progress bars only where someone watches them: a terminal or a notebook, never a log file.

A tqdm bar redraws itself with carriage returns; written to a file (``nucleiseg train ... > train.log``)
that is tens of kilobytes of redraws per epoch. :func:`progress_bar` returns a disabled bar there,
so a log holds the one line per epoch that the caller prints.
"""

import sys


def in_notebook():
    """Whether this runs in a Jupyter kernel (notebook, Voilà, papermill)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell is not None else None
    except Exception:  # pragma: no cover - a broken IPython
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def bars_wanted(progress=True, stream=None):
    """Whether to draw a bar: `progress`, and stderr is a terminal or this is a notebook.

    Parameters
    ----------
    progress : bool
        The caller's wish (False never draws).
    stream : file object, optional
        Where the bar would go (default ``sys.stderr``).

    Returns
    -------
    bool
    """
    if not progress:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError):
        tty = False
    return tty or in_notebook()


def progress_bar(iterable=None, progress=True, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled unless :func:`bars_wanted`."""
    from tqdm.auto import tqdm
    return tqdm(iterable, disable=not bars_wanted(progress), **kwargs)
