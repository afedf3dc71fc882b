"""Writing files atomically: a temporary file in the same folder, then a rename.

A crash at any moment leaves either the old file or the new one, never half a file.
:func:`atomic_path` is the idiom itself (for writers that want a path: a browser printing
a PDF, a folder filled file by file); :func:`atomic_write` opens the temporary file for you.
"""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path, folder=False):
    """A temporary path beside `path` that replaces `path` when the block ends without error.

    Parameters
    ----------
    path : str or Path
        The final file or folder; its parent folder is created when missing.
    folder : bool
        Yield an (empty, existing) temporary folder instead of a file path; an existing
        folder at `path` is removed just before the rename.

    Yields
    ------
    Path
        Write there. On an exception it is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
    os.chmod(tmp, (0o777 if folder else 0o666) & ~_umask())  # as open()/mkdir() would make it, not 0600
    try:
        yield tmp
        if folder and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path, mode="wb", fsync=False, encoding="utf-8"):
    """Open a temporary file beside `path`; on success rename it onto `path`.

    Parameters
    ----------
    path : str or Path
        The final file; its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text.
    fsync : bool
        Flush the data to disk before the rename (checkpoints: survive a power cut).
    encoding : str
        Text mode only.

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
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({"encoding": encoding} if mode == "w" else {})) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
