"""Inference: native-resolution prediction, threshold rules, instances, measurements, calibration."""

from .measure import MEASUREMENT_COLUMNS, area_stats, measure_nuclei, table_to_csv
from .postprocess import (DEFAULT_POSTPROCESS, RULE_LABELS, THRESHOLD_RULES, describe_postprocess, find_threshold, label_instances,
                          otsu_threshold, postprocess_proba, postprocess_settings, remove_small, remove_unsure,
                          rule_threshold, settings_only)
from .predict import Predictor, calibrate, evaluate_predictions, summarize_rows

__all__ = ["MEASUREMENT_COLUMNS", "area_stats", "measure_nuclei", "table_to_csv", "DEFAULT_POSTPROCESS",
           "RULE_LABELS", "THRESHOLD_RULES", "describe_postprocess", "find_threshold", "label_instances", "otsu_threshold",
           "postprocess_proba", "postprocess_settings", "remove_small", "remove_unsure", "rule_threshold",
           "settings_only", "Predictor", "calibrate",
           "evaluate_predictions", "summarize_rows"]
