"""Reading evaluation results: tables of summaries, and one sentence on why an image scores low."""


def summary_table(summaries, keys=("threshold", "pixel_accuracy", "iou", "dice", "dsb_score", "n_pred", "n_true"),
                  name="variant"):
    """Rows for :func:`nucleiseg_lib.viz.table` from ``{variant: summary dict}`` (missing values left blank)."""
    return [{name: k, **{key: s.get(key, "") for key in keys}} for k, s in summaries.items()]


def failure_reason(row, modality, train_modalities):
    """One sentence on why an image scores low, made from its numbers.

    Parameters
    ----------
    row : dict
        A row of :func:`nucleiseg_lib.inference.evaluate_predictions` (``n_true``,
        ``n_pred``, ``iou``, ``dsb_score``).
    modality : str
        Of this image (:func:`classify_modality`).
    train_modalities : dict modality -> int
        How many training images of each modality the model saw.

    Returns
    -------
    str
    """
    total = max(sum(train_modalities.values()), 1)
    share = train_modalities.get(modality, 0) / total
    rare = " - rare in training" if share < 0.2 else ""
    parts = [f"{modality} image ({train_modalities.get(modality, 0)} of {total} training images{rare})"]
    n_true, n_pred = row["n_true"], row["n_pred"]
    if n_true == 0:
        parts.append(f"no nucleus in the truth, {n_pred} predicted")
    elif n_pred < 0.7 * n_true:
        parts.append(f"{n_pred} nuclei found for {n_true} true: touching nuclei merged or faint ones missed")
    elif n_pred > 1.3 * n_true:
        parts.append(f"{n_pred} nuclei found for {n_true} true: nuclei split, or background taken for nuclei")
    else:
        parts.append(f"about the right count ({n_pred} found for {n_true} true)")
    if row["iou"] < 0.5:
        parts.append(f"the foreground itself is wrong (pixel IoU {row['iou']:.2f})")
    else:
        parts.append(f"the foreground is largely right (pixel IoU {row['iou']:.2f}), so the loss is in the outlines "
                     f"and the separation of nuclei, which the DSB score checks at IoU 0.5 to 0.95")
    return "; ".join(parts) + "."
