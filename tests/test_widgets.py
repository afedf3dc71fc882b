"""The threshold slider and the app of notebook 06 share one post-processing path."""

import numpy as np
import pytest

from nucleiseg_lib.app import SegmentSession, Upload
from nucleiseg_lib.inference import DEFAULT_POSTPROCESS, RULE_LABELS, postprocess_proba, postprocess_settings
from nucleiseg_lib.widgets import RULES, ThresholdApp


def blobs():
    """A probability map with a strong square (0.9), a weak square (0.4) and a 2-pixel speck (0.9)."""
    prob = np.zeros((30, 30), np.float32)
    prob[3:10, 3:10] = 0.9
    prob[15:25, 15:25] = 0.4
    prob[27, 1:3] = 0.9
    return prob


class Stub:
    """Stands for a Predictor: only its post-processing settings and method."""

    def __init__(self, threshold):
        self.postprocess = postprocess_settings(1, dict(threshold=threshold))
        self.path = "stub.pt"

    def postprocess_proba(self, prob, rule=None, **overrides):
        return postprocess_proba(prob, {**self.postprocess, **overrides}, rule)


def test_slider_counts_what_the_threshold_keeps():
    prob = blobs()
    image = np.repeat(prob[..., None], 3, axis=2)
    app = ThresholdApp(None, image, prob=prob, rule="fixed")
    assert app.threshold == 0.5 and app.metrics["n_pred"] == 1      # the weak square and the speck are out
    assert app.update(0.3)["n_pred"] == 2                            # the weak square is in; the speck < min_size
    assert app.update(0.95)["n_pred"] == 0
    assert app.update(rule="relative")["threshold"] == pytest.approx(0.09)


def test_slider_and_app_give_the_same_labels():
    prob = blobs()
    image = np.repeat(prob[..., None], 3, axis=2)
    stub = Stub(threshold=0.35)
    slider = ThresholdApp(stub, image, prob=prob, rule="validation")
    session = SegmentSession(stub)
    result = session.segment(Upload("blobs", image, prob[None]), "validation")
    assert slider.threshold == result.threshold == 0.35
    np.testing.assert_array_equal(slider.labels, result.labels)
    np.testing.assert_array_equal(slider.labels, stub.postprocess_proba(prob[None])["labels"])
    for rule in ("fixed", "relative", "otsu"):
        assert slider.threshold_for(rule) == session.threshold_for(Upload("b", image, prob[None]), rule)


def test_one_set_of_defaults_and_rule_names():
    assert postprocess_settings(1) == DEFAULT_POSTPROCESS
    assert postprocess_settings(2)["method"] == "watershed"
    assert postprocess_settings(2, {"method": "cc"})["method"] == "cc"
    assert set(RULES.values()) == set(RULE_LABELS)
    assert all(RULES[label] == rule for rule, label in RULE_LABELS.items())
    slider = ThresholdApp(None, np.zeros((8, 8, 3), np.float32), prob=np.zeros((2, 8, 8), np.float32))
    assert slider.postprocess["method"] == "watershed"                # two channels: contours split nuclei
