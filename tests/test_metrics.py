"""Tests of nucleiseg_lib.metrics on small hand-built arrays (values computed by hand)."""

import json

import numpy as np
import pytest

from nucleiseg_lib.metrics import (
    DSB_THRESHOLDS, average_precision, dice, dsb_score, evaluate_image, iou,
    iou_matrix, match_instances, match_table, pixel_accuracy, precision, recall, summarize, summarize_groups,
)


def two_nuclei():
    """6x6 map: nucleus 1 is a 2x2 square, nucleus 2 a 2x3 block."""
    lab = np.zeros((6, 6), dtype=np.int32)
    lab[0:2, 0:2] = 1
    lab[3:5, 2:5] = 2
    return lab


# ---------------------------------------------------------------- pixel metrics

TRUE = np.array([[1, 1, 0],
                 [0, 1, 0],
                 [0, 0, 0]])
PRED = np.array([[1, 0, 0],
                 [0, 1, 1],
                 [0, 0, 1]])  # TP=2, FP=2, FN=1, TN=4


def test_pixel_metrics_by_hand():
    assert pixel_accuracy(PRED, TRUE) == pytest.approx(6 / 9)
    assert iou(PRED, TRUE) == pytest.approx(2 / 5)
    assert dice(PRED, TRUE) == pytest.approx(4 / 7)
    assert precision(PRED, TRUE) == pytest.approx(2 / 4)
    assert recall(PRED, TRUE) == pytest.approx(2 / 3)


def test_pixel_metrics_bool_and_nonzero_foreground():
    assert iou(PRED.astype(bool), TRUE * 255) == pytest.approx(2 / 5)
    assert dice(PRED * 7, TRUE.astype(bool)) == pytest.approx(4 / 7)


def test_all_background_prediction():
    empty = np.zeros_like(TRUE)
    assert pixel_accuracy(empty, TRUE) == pytest.approx(1 - 3 / 9)
    assert iou(empty, TRUE) == 0.0
    assert dice(empty, TRUE) == 0.0
    assert recall(empty, TRUE) == 0.0
    assert precision(empty, TRUE) == 1.0  # no predicted pixel: 0/0 -> 1


def test_pixel_metrics_both_empty():
    empty = np.zeros((4, 5), dtype=bool)
    for fn in (pixel_accuracy, iou, dice, precision, recall):
        assert fn(empty, empty) == 1.0


def test_perfect_pixels():
    for fn in (pixel_accuracy, iou, dice, precision, recall):
        assert fn(TRUE, TRUE) == 1.0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        iou(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(6, 6\).*\(6, 5\)"):
        iou_matrix(np.zeros((6, 6), int), np.zeros((6, 5), int))


# --------------------------------------------------------------- object metrics

def test_thresholds():
    assert len(DSB_THRESHOLDS) == 10
    np.testing.assert_array_equal(
        DSB_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])


def test_perfect_prediction():
    lab = two_nuclei()
    np.testing.assert_allclose(iou_matrix(lab, lab), np.eye(2))
    assert match_instances(lab, lab) == (2, 0, 0)
    assert average_precision(lab, lab) == 1.0
    assert dsb_score(lab, lab) == pytest.approx(1.0)


def test_non_contiguous_ids():
    true = two_nuclei()
    true = np.where(true == 1, 7, np.where(true == 2, 42, 0))
    pred = np.where(true == 7, 3, np.where(true == 42, 1, 0))  # ids swapped order
    # rows ordered by true id (7, 42), columns by pred id (1, 3)
    np.testing.assert_allclose(iou_matrix(true, pred), [[0, 1], [1, 0]])
    assert match_instances(true, pred) == (2, 0, 0)
    assert dsb_score(true, pred) == pytest.approx(1.0)


def test_large_float_and_bad_ids():
    true = two_nuclei()
    big = np.where(true == 2, 2**40, true.astype(np.int64))   # sorted-unique path
    assert dsb_score(big, true.astype(float)) == pytest.approx(1.0)
    np.testing.assert_allclose(iou_matrix(big, true), np.eye(2))
    np.testing.assert_allclose(iou_matrix(true > 0, true == 2), [[6 / 10]])  # bool maps
    with pytest.raises(ValueError, match="integer labels"):
        iou_matrix(true * 0.5, true)


def test_shifted_prediction_iou_06():
    true = np.zeros((6, 6), dtype=int)
    true[1:3, 0:4] = 1          # 8 pixels
    pred = np.zeros_like(true)
    pred[1:3, 1:5] = 5          # shifted one column: inter 6, union 10
    np.testing.assert_allclose(iou_matrix(true, pred), [[0.6]])
    assert average_precision(true, pred, 0.5) == 1.0
    assert average_precision(true, pred, 0.55) == 1.0
    assert average_precision(true, pred, 0.6) == 0.0   # strictly greater
    assert match_instances(true, pred, 0.6) == (0, 1, 1)
    assert dsb_score(true, pred) == pytest.approx(0.2)  # TP at 0.50, 0.55 only


def test_merged_prediction():
    true = np.zeros((6, 6), dtype=int)
    true[2:4, 0:3] = 1          # 6 pixels
    true[2:4, 3:4] = 2          # 2 pixels, touching nucleus 1
    pred = (true > 0).astype(int)   # one object covering both: 8 pixels
    np.testing.assert_allclose(iou_matrix(true, pred), [[6 / 8], [2 / 8]])
    assert match_instances(true, pred, 0.5) == (1, 0, 1)
    assert average_precision(true, pred, 0.5) == pytest.approx(1 / 2)
    assert match_instances(true, pred, 0.8) == (0, 1, 2)
    # AP 1/2 at 0.50..0.70 (5 thresholds below 0.75), 0 above
    assert dsb_score(true, pred) == pytest.approx(0.25)
    # below 0.5 both pairs pass, but one prediction matches only one truth
    assert match_instances(true, pred, 0.2) == (1, 0, 1)


def test_low_threshold_matching_is_one_to_one_and_maximal():
    # 1-D layout: A=[0,4) B=[4,8) true; Q=[0,1) P=[1,6) pred.
    # IoU(A,P)=3/6, IoU(A,Q)=1/4, IoU(B,P)=2/7, IoU(B,Q)=0.
    # Greedy on the best IoU pairs A-P and leaves B, Q; the best matching is A-Q, B-P.
    true = np.array([[1, 1, 1, 1, 2, 2, 2, 2]] * 2)
    pred = np.array([[9, 4, 4, 4, 4, 4, 0, 0]] * 2)
    np.testing.assert_allclose(iou_matrix(true, pred), [[3 / 6, 1 / 4], [2 / 7, 0]])
    assert match_instances(true, pred, 0.2) == (2, 0, 0)
    assert average_precision(true, pred, 0.2) == 1.0
    assert match_instances(true, pred, 0.3) == (1, 1, 1)


def test_empty_cases():
    empty = np.zeros((6, 6), dtype=int)
    lab = two_nuclei()
    assert iou_matrix(empty, empty).shape == (0, 0)
    assert match_instances(empty, empty) == (0, 0, 0)
    assert average_precision(empty, empty) == 1.0
    assert dsb_score(empty, empty) == 1.0
    # empty truth, one prediction
    pred = np.zeros_like(empty)
    pred[0, 0] = 3
    assert iou_matrix(empty, pred).shape == (0, 1)
    assert match_instances(empty, pred) == (0, 1, 0)
    assert average_precision(empty, pred) == 0.0
    assert dsb_score(empty, pred) == 0.0
    # truth, empty prediction
    assert match_instances(lab, empty) == (0, 0, 2)
    assert dsb_score(lab, empty) == 0.0


# ------------------------------------------------------------ evaluate/summarize

def test_evaluate_image_and_summarize():
    true = np.zeros((6, 6), dtype=int)
    true[1:3, 0:4] = 1
    pred = np.zeros_like(true)
    pred[1:3, 1:5] = 1
    r = evaluate_image(pred > 0, true > 0, pred, true)
    assert set(r) == {"pixel_accuracy", "iou", "dice", "precision", "recall",
                      "dsb_score", "ap50", "n_true", "n_pred"}
    assert r["pixel_accuracy"] == pytest.approx(32 / 36)
    assert r["iou"] == pytest.approx(0.6)
    assert r["dice"] == pytest.approx(12 / 16)
    assert r["precision"] == pytest.approx(6 / 8)
    assert r["recall"] == pytest.approx(6 / 8)
    assert r["dsb_score"] == pytest.approx(0.2)
    assert r["ap50"] == 1.0
    assert (r["n_true"], r["n_pred"]) == (1, 1)
    assert type(r["n_true"]) is int and type(r["dsb_score"]) is float
    json.dumps(r)

    lab = two_nuclei()
    r2 = evaluate_image(lab > 0, lab > 0, lab, lab)
    s = summarize([r, r2])
    assert s["n_images"] == 2
    assert s["dsb_score"] == pytest.approx((0.2 + 1.0) / 2)
    assert s["iou"] == pytest.approx((0.6 + 1.0) / 2)
    assert s["n_true"] == pytest.approx(1.5)
    assert type(s["n_true"]) is float
    json.dumps(s)
    assert summarize([]) == {"n_images": 0}


def test_match_table_by_hand():
    # true: two nuclei of 4 pixels; pred: the first with 3 of its pixels (IoU 3/4), the second shifted (IoU 2/6)
    true = np.array([[1, 1, 0, 2, 2, 0],
                     [1, 1, 0, 2, 2, 0]])
    pred = np.array([[1, 1, 0, 0, 5, 5],
                     [1, 0, 0, 0, 5, 5]])
    rows = {round(r["threshold"], 2): r for r in match_table(true, pred)}
    assert [rows[t]["tp"] for t in (0.5, 0.7, 0.75, 0.9)] == [1, 1, 0, 0]   # IoU 0.75 is not > 0.75
    assert (rows[0.5]["fp"], rows[0.5]["fn"], rows[0.5]["ap"]) == (1, 1, pytest.approx(1 / 3))
    assert (rows[0.8]["fp"], rows[0.8]["fn"], rows[0.8]["ap"]) == (2, 2, 0.0)
    assert np.mean([r["ap"] for r in rows.values()]) == pytest.approx(dsb_score(true, pred))


def test_match_table_of_empty_maps():
    empty, one = np.zeros((3, 3), int), np.eye(3, dtype=int)
    assert match_table(empty, empty, [0.5]) == [dict(threshold=0.5, tp=0, fp=0, fn=0, ap=1.0)]
    assert match_table(one, empty, [0.5]) == [dict(threshold=0.5, tp=0, fp=0, fn=1, ap=0.0)]
    assert match_table(empty, one, [0.5]) == [dict(threshold=0.5, tp=0, fp=1, fn=0, ap=0.0)]


def test_summarize_groups():
    rows = [dict(id="a", iou=0.2), dict(id="b", iou=0.4), dict(id="c", iou=1.0)]
    out = summarize_groups(rows, {"a": "fluorescence", "b": "fluorescence", "c": "stained"})
    assert list(out) == ["fluorescence", "stained"]
    assert out["fluorescence"] == dict(iou=pytest.approx(0.3), n_images=2)
    assert out["stained"] == dict(iou=1.0, n_images=1)


def test_nucleus_outcomes_by_hand():
    from nucleiseg_lib.metrics import nucleus_outcomes
    true = np.zeros((6, 12), int)
    true[0:2, 0:2] = 1                 # found as it is
    true[0:2, 3:5], true[0:2, 5:7] = 2, 3   # two touching nuclei, found as one object
    true[4:6, 0:4] = 4                 # cut into two halves
    true[4:6, 6:8] = 5                 # a quarter of it found: missed
    pred = np.zeros_like(true)
    pred[0:2, 0:2] = 7
    pred[0:2, 3:7] = 8
    pred[4:6, 0:2], pred[4:6, 2:4] = 9, 10
    pred[4, 6] = 11
    pred[3, 9:12] = 12                 # on background: spurious
    got = nucleus_outcomes(true, pred)
    assert got == dict(matched=1, missed=1, merged=2, other=1, spurious=1)
    assert sum(v for k, v in got.items() if k != "spurious") == 5   # each true nucleus in exactly one class
    assert nucleus_outcomes(true, np.zeros_like(true))["missed"] == 5
    assert nucleus_outcomes(np.zeros_like(true), pred)["spurious"] == 6
