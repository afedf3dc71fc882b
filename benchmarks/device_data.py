"""Carry stage1_train to a GPU machine that cannot read ../shared: pack it small here, unpack it there.

    python benchmarks/device_data.py pack   [--data ../shared/data/dsb2018/stage1_train] [--out .device_data]
    python benchmarks/device_data.py unpack [--src .device_data] --out /tmp/stage1_train [--workers 16]
    python benchmarks/device_data.py check  [--data ../shared/...] --unpacked /tmp/stage1_train

The Kaggle folder is 187 MB (RGBA PNGs, one PNG per nucleus); the device tool carries at most 64 MiB. ``pack``
writes each image once, as a grey PNG where its three channels are equal (else RGB, the alpha channel dropped),
and its merged label map as one 16-bit PNG. ``unpack`` writes the Kaggle layout back (one mask per label value,
empty where a label was fully covered by a later mask, so that :func:`merge_masks` gives the same label map) and
fills the sample cache with several processes. ``check`` proves the round trip: every unpacked sample's
image and labels, as :class:`SampleCache` reads them, equal the original's.

The packed folder is a copy of the data: it is git-ignored (``.device_data/``); never commit it.
"""

import argparse
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"

from nucleiseg_lib.data import SampleCache, list_samples, merge_masks, read_image, read_mask, sample_paths  # noqa: E402


def _pack_one(job):
    root, out, sid = job
    image_path, mask_paths = sample_paths(root, sid)
    rgb = np.round(read_image(image_path) * 255).astype(np.uint8)  # as the library reads it (alpha dropped)
    labels = merge_masks([read_mask(p) for p in mask_paths], rgb.shape[:2])
    if labels.max() >= 2 ** 16:
        raise ValueError(f"{image_path}: {labels.max()} nuclei do not fit a 16-bit label PNG")
    grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    Image.fromarray(rgb[..., 0] if grey else rgb).save(out / f"{sid}.png", optimize=True)
    Image.fromarray(labels.astype(np.uint16)).save(out / f"{sid}_labels.png", optimize=True)
    return sid


def pack(data, out, workers=2):
    """Write ``<out>/<id>.png`` and ``<out>/<id>_labels.png`` for every sample of `data`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = list_samples(data)
    with Pool(workers) as pool:
        done = pool.map(_pack_one, [(Path(data), out, sid) for sid in ids], chunksize=8)
    return done


def _unpack_one(job):
    src, out, sid = job
    image = Image.open(src / f"{sid}.png")
    labels = np.asarray(Image.open(src / f"{sid}_labels.png")).astype(np.int64)
    (out / sid / "images").mkdir(parents=True, exist_ok=True)
    (out / sid / "masks").mkdir(parents=True, exist_ok=True)
    image.save(out / sid / "images" / f"{sid}.png")
    for k in range(1, int(labels.max()) + 1):
        Image.fromarray(((labels == k) * 255).astype(np.uint8)).save(out / sid / "masks" / f"{k:05d}.png")
    return sid


def _cache_chunk(job):
    root, ids = job
    return SampleCache(root, ids=ids, progress=False).n_built


def unpack(src, out, workers=16):
    """Write the Kaggle layout of a packed folder into `out` and build its sample cache."""
    src, out = Path(src), Path(out)
    ids = sorted(p.name[:-len("_labels.png")] for p in src.glob("*_labels.png"))
    if not ids:
        raise SystemExit(f"{src}: no packed samples (<id>_labels.png) here")
    with Pool(workers) as pool:
        pool.map(_unpack_one, [(src, out, sid) for sid in ids], chunksize=4)
        built = sum(pool.map(_cache_chunk, [(out, ids[i::workers]) for i in range(workers)]))
    return ids, built


def check(data, unpacked):
    """Count the samples whose cached image or labels differ between `data` and `unpacked` (0 is a pass)."""
    ids = list_samples(data)
    if list_samples(unpacked) != ids:
        raise SystemExit(f"{unpacked}: its sample ids differ from {data}'s")
    a, b = SampleCache(data, ids=ids, progress=False), SampleCache(unpacked, ids=ids, progress=False)
    bad = []
    for sid in ids:
        (ia, la), (ib, lb) = a.load(sid), b.load(sid)
        if ia.shape != ib.shape or not np.array_equal(ia, ib) or not np.array_equal(la, lb):
            bad.append(sid)
    return ids, bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("pack")
    s.add_argument("--data", default=str(DEFAULT_DATA))
    s.add_argument("--out", default=str(REPO / ".device_data"))
    s.add_argument("--workers", type=int, default=2)
    s = sub.add_parser("unpack")
    s.add_argument("--src", default=str(REPO / ".device_data"))
    s.add_argument("--out", required=True)
    s.add_argument("--workers", type=int, default=16)
    s = sub.add_parser("check")
    s.add_argument("--data", default=str(DEFAULT_DATA))
    s.add_argument("--unpacked", required=True)
    a = p.parse_args(argv)
    if a.cmd == "pack":
        ids = pack(a.data, a.out, a.workers)
        size = sum(f.stat().st_size for f in Path(a.out).iterdir())
        print(f"packed {len(ids)} samples into {a.out}: {size / 2 ** 20:.1f} MiB")
    elif a.cmd == "unpack":
        ids, built = unpack(a.src, a.out, a.workers)
        print(f"unpacked {len(ids)} samples into {a.out}; {built} cache entries built")
    else:
        ids, bad = check(a.data, a.unpacked)
        print(f"{len(ids) - len(bad)} of {len(ids)} samples identical" + (f"; differ: {bad[:5]}" if bad else ""))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
