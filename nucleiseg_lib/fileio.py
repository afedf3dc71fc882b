"""Writing files atomically: a temporary file in the same folder, then a rename.

A crash at any moment leaves either the old file or the new one, never half a file.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, mode="wb", fsync=False, encoding=None):
    """Open a temporary file beside `path`; on success rename it onto `path`.

    Parameters
    ----------
    path : str or Path
        The final file; its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text.
    fsync : bool
        Flush the data to disk before the rename (checkpoints: survive a power cut).
    encoding : str, optional
        Text mode only; default UTF-8.

    Yields
    ------
    file object
        Write to it; on an exception the temporary file is removed and `path` is untouched.

    Examples
    --------
    >>> with atomic_write("out.json", "w") as f:     # doctest: +SKIP
    ...     f.write("{}")
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({"encoding": encoding or "utf-8"} if mode == "w" else {})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_replace_dir(tmp_dir, final_dir):
    """Move a finished folder `tmp_dir` onto `final_dir` (an existing `final_dir` is removed first)."""
    import shutil
    if os.path.exists(final_dir):
        shutil.rmtree(final_dir)
    os.replace(tmp_dir, final_dir)
