"""The course model shipped with the package: the cpu recipe trained on DSB2018 stage1_train, fp16 weights only.

``Predictor("pretrained")``, ``nucleiseg predict --checkpoint pretrained`` and notebooks 05 and 06 (when the student
has not trained) use it. Its card, ``MODEL_CARD.md`` (for people) and ``card.json`` (for the test that re-evaluates
the model), says how it was made: the command, the data hash, the commit, its validation and test scores.

The files are written by ``python benchmarks/pretrained.py export --run RUN`` from a trained run; a checkout
without them simply has no pretrained model (:func:`available` is False), and everything that would use it says so.
"""

from pathlib import Path

from ..errors import CheckpointError

FOLDER = Path(__file__).resolve().parent
#: The weights (a model checkpoint: see :func:`nucleiseg_lib.training.checkpoint.model_state`).
MODEL = FOLDER / "cpu.pt"
#: The model card, for people.
CARD_MD = FOLDER / "MODEL_CARD.md"
#: The model card's numbers, for programs and the test.
CARD_JSON = FOLDER / "card.json"
#: What users type to ask for it.
NAME = "pretrained"


def available():
    """Whether this installation ships the pretrained model."""
    return MODEL.is_file()


def card():
    """The model card's numbers (dict), or None when no model is shipped."""
    import json
    return json.loads(CARD_JSON.read_text()) if CARD_JSON.is_file() else None


def resolve_checkpoint(checkpoint):
    """A checkpoint path; ``"pretrained"`` stands for the shipped model.

    Raises
    ------
    CheckpointError
        "pretrained" asked for, and this installation has none.
    """
    if str(checkpoint) != NAME:
        return Path(checkpoint)
    if not available():
        raise CheckpointError(MODEL, "no pretrained model in this installation (it is written by "
                                     "`python benchmarks/pretrained.py export --run RUN`); train one with "
                                     "notebook 04 or `nucleiseg train`")
    return MODEL


def fallback(best, log=print):
    """`best` when it exists; else the pretrained model (saying so) when shipped; else `best` (the caller explains)."""
    best = Path(best)
    if best.is_file() or not available():
        return best
    recipe = (card() or {}).get("recipe", "cpu")
    log(f"No trained model at {best}: using the pretrained course model shipped with nucleiseg_lib "
        f"({MODEL}, the {recipe} recipe; see {CARD_MD.name}). Train your own with notebook 04.")
    return MODEL


#: The scores a card stores, and that the test recomputes.
SCORES = ("dsb_score", "ap50", "iou", "dice", "pixel_accuracy")


def score(checkpoint, root, ids, cache_dir=None, progress=False):
    """Mean scores of a model checkpoint on labelled images, with its chosen post-processing (no TTA).

    Parameters
    ----------
    checkpoint : str or Path
    root : str or Path
        A Kaggle-layout data folder holding `ids`.
    ids : list of str

    Returns
    -------
    dict
        ``n_images`` and the means of :data:`SCORES`, rounded to 4 decimals.
    """
    import torch

    from ..data import SampleCache
    from ..inference import Predictor, evaluate_predictions, summarize_rows
    torch.manual_seed(0)
    samples = SampleCache(root, cache_dir=cache_dir, ids=ids, progress=progress).load_all()
    rows = evaluate_predictions(Predictor(checkpoint, device="cpu"), samples, ids, progress=progress)
    means = summarize_rows(rows)
    return dict(n_images=len(ids), **{k: round(float(means[k]), 4) for k in SCORES})
