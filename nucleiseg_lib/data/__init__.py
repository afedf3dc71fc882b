"""Data: reading the Kaggle layout, mask merging, cache, split, synthetic data, downloads."""

from .cache import SampleCache, data_hash, default_cache_dir
from .io import (binary_target, count_overlaps, list_samples, merge_masks, read_image, read_mask, read_sample,
                 sample_paths, to_float_rgb)
from .split import split_ids
from .transforms import instance_contours, make_target, normalize_image

__all__ = ["SampleCache", "data_hash", "default_cache_dir", "binary_target", "count_overlaps", "list_samples",
           "merge_masks", "read_image", "read_mask", "read_sample", "sample_paths", "to_float_rgb", "split_ids",
           "instance_contours", "make_target", "normalize_image"]
