"""read_history on histories written by hand."""

from nucleiseg_lib.training.history import read_history


def hist(train, val, iou):
    return [dict(epoch=k + 1, train_loss=t, val_loss=v, val_iou=i) for k, (t, v, i) in enumerate(zip(train, val, iou))]


def test_overfitting():
    h = hist([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], [1.0, 0.7, 0.6, 0.7, 0.8, 0.9], [0.1, 0.5, 0.6, 0.55, 0.5, 0.45])
    r = read_history(h)
    assert (r["best_epoch"], r["min_val_loss_epoch"], r["verdict"]) == (3, 3, "overfitting")
    assert r["best_val_iou"] == 0.6 and r["train_falling"] and r["val_rising"]


def test_underfitting_and_converged():
    falling = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    assert read_history(hist(falling, falling, [0.1] * 6))["verdict"] == "underfitting"
    flat = [0.5] * 6
    assert read_history(hist(flat, flat, [0.3] * 6))["verdict"] == "converged"


def test_short_or_without_validation():
    assert read_history(hist([1.0, 0.9], [1.0, 0.8], [0.1, 0.2]))["verdict"] == "too short"
    r = read_history([dict(epoch=1, train_loss=1.0, val_loss=None, val_iou=None)])
    assert r["best_epoch"] is None and r["verdict"] == "too short"
