"""Inference: native-resolution prediction, threshold rules, instances, calibration."""

from .postprocess import THRESHOLD_RULES, find_threshold, label_instances, otsu_threshold, remove_small
from .predict import DEFAULT_POSTPROCESS, Predictor, calibrate, evaluate_predictions, summarize_rows

__all__ = ["THRESHOLD_RULES", "find_threshold", "label_instances", "otsu_threshold", "remove_small",
           "DEFAULT_POSTPROCESS", "Predictor", "calibrate", "evaluate_predictions", "summarize_rows"]
