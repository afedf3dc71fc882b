"""The merged-mask cache: built once, reused, rebuilt when its source changes."""

import os
import time

import numpy as np
from PIL import Image

from nucleiseg_lib.data import SampleCache, read_sample
from nucleiseg_lib.data.synth import make_synthetic_dataset


def test_cache_matches_pngs_and_is_reused_then_rebuilt(tmp_path):
    root = tmp_path / "d"
    ids = make_synthetic_dataset(root, n=3, size=48, seed=0)
    cache = SampleCache(root, cache_dir=tmp_path / "c", progress=False)
    assert cache.n_built == 3
    image, labels = read_sample(root, ids[0])
    c_image, c_labels = cache.load(ids[0])
    np.testing.assert_array_equal(c_labels, labels)
    np.testing.assert_allclose(c_image, image, atol=1e-3)
    assert SampleCache(root, cache_dir=tmp_path / "c", progress=False).n_built == 0

    mask = sorted((root / ids[1] / "masks").iterdir())[0]
    m = np.asarray(Image.open(mask)).copy()
    m[:] = 0
    m[:2, :2] = 255
    Image.fromarray(m).save(mask)
    os.utime(mask, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = SampleCache(root, cache_dir=tmp_path / "c", progress=False)
    assert again.n_built == 1
    np.testing.assert_array_equal(again.load(ids[1])[1], read_sample(root, ids[1])[1])


def test_cache_entry_corrupt_is_rebuilt(tmp_path):
    root = tmp_path / "d"
    ids = make_synthetic_dataset(root, n=2, size=32, seed=0)
    cache = SampleCache(root, cache_dir=tmp_path / "c", progress=False)
    cache.path(ids[0]).write_bytes(b"broken")
    assert SampleCache(root, cache_dir=tmp_path / "c", progress=False).n_built == 1
