"""Merge the per-nucleus masks once and keep the result on disk.

An epoch then reads one ``.npz`` per image instead of dozens of mask PNGs. Each
cached file stores a fingerprint (names, sizes and modification times) of the
files it was built from; when they change, the entry is rebuilt.

The cache lives outside the data folder (which may be read-only): in
``$NUCLEISEG_CACHE``, else ``~/.cache/nucleiseg``.
"""

import hashlib
import os
from pathlib import Path

import numpy as np

from ..fileio import atomic_write
from ..progress import progress_bar
from .io import list_samples, read_image, read_mask, merge_masks, sample_paths

CACHE_VERSION = 1


def default_cache_dir():
    """``$NUCLEISEG_CACHE`` if set, else ``~/.cache/nucleiseg``."""
    return Path(os.environ.get("NUCLEISEG_CACHE") or Path.home() / ".cache" / "nucleiseg")


def _fingerprint(paths):
    h = hashlib.sha1(str(CACHE_VERSION).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{Path(p).name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def data_hash(root):
    """A short hash of a data folder's file names and sizes (for provenance).

    Parameters
    ----------
    root : str or Path

    Returns
    -------
    str, 16 hex digits
    """
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        dirnames.sort()
        for f in sorted(filenames):
            p = Path(dirpath) / f
            h.update(f"{p.relative_to(root)}:{p.stat().st_size};".encode())
    return h.hexdigest()[:16]


def atomic_save_npz(path, **arrays):
    """Write an ``.npz`` atomically (:func:`nucleiseg_lib.fileio.atomic_write`)."""
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class SampleCache:
    """Merged images and labels of a Kaggle-layout folder, cached on disk.

    Parameters
    ----------
    root : str or Path
        Kaggle-layout folder (``<root>/<id>/images``, ``<root>/<id>/masks``).
    cache_dir : str or Path, optional
        Defaults to :func:`default_cache_dir`.
    ids : list of str, optional
        Restrict to these samples (default: all, sorted).
    progress : bool
        Show a progress bar while building.

    Attributes
    ----------
    ids : list of str
    folder : Path
        Where this data folder's entries live.
    n_built : int
        How many entries this constructor (re)built.
    """

    def __init__(self, root, cache_dir=None, ids=None, progress=True):
        self.root = Path(root)
        self.ids = sorted(ids) if ids is not None else list_samples(self.root)
        key = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:16]
        self.folder = Path(cache_dir or default_cache_dir()) / key
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_built = 0
        todo = []
        for sid in self.ids:
            image_path, mask_paths = sample_paths(self.root, sid)
            fp = _fingerprint([image_path, *mask_paths])
            if self._stored_fingerprint(sid) != fp:
                todo.append((sid, image_path, mask_paths, fp))
        if todo:
            for sid, image_path, mask_paths, fp in progress_bar(todo, progress, desc="merging masks"):
                image = read_image(image_path)
                labels = merge_masks([read_mask(p, image.shape[:2]) for p in mask_paths], image.shape[:2])
                atomic_save_npz(self.path(sid), image=image.astype(np.float16),
                                labels=labels.astype(np.uint16), fingerprint=np.array(fp))
                self.n_built += 1

    def path(self, sample_id):
        """Path of one sample's cache entry."""
        return self.folder / f"{sample_id}.npz"

    def _stored_fingerprint(self, sample_id):
        try:
            with np.load(self.path(sample_id)) as z:
                return str(z["fingerprint"])
        except (OSError, KeyError, ValueError, EOFError):
            return None

    def load(self, sample_id):
        """One sample from the cache.

        Returns
        -------
        image : ndarray, shape (H, W, 3), float16 in [0, 1]
        labels : ndarray, shape (H, W), uint16
        """
        with np.load(self.path(sample_id)) as z:
            return z["image"], z["labels"]

    def load_all(self, ids=None):
        """Load samples into memory: a dict id -> (image, labels)."""
        return {sid: self.load(sid) for sid in (ids if ids is not None else self.ids)}

    def __len__(self):
        return len(self.ids)
