"""The ``nucleiseg`` command (also ``python -m nucleiseg_lib``).

Subcommands: synth, download, train, evaluate, predict, report.
"""

import argparse
import sys
from pathlib import Path

from .errors import NucleisegError


def cmd_synth(a):
    from .data.synth import make_synthetic_dataset
    ids = make_synthetic_dataset(a.out, n=a.n, size=a.size, seed=a.seed, style=a.style)
    print(f"wrote {len(ids)} synthetic samples to {a.out} (SYNTHETIC data, not microscopy)")


def cmd_download(a):
    from .data.download import download
    from .data.locate import REPO_ROOT
    root = download(a.source, a.dest or REPO_ROOT / "data", kaggle_dataset=a.dataset)
    print(f"DSB2018 stage1_train is in {root}")


def load_data(spec, ids=None, progress=True):
    """Resolve a data folder, cache it, and load it into memory: (root, source, samples, ids)."""
    from .data import SampleCache, list_samples
    from .data.locate import resolve_data
    root, source = resolve_data(spec)
    ids = ids if ids is not None else list_samples(root)
    cache = SampleCache(root, ids=ids, progress=progress)
    return root, source, cache.load_all(), ids


def parse_settings(pairs):
    """``["input=nuclei", "epochs=12", "scale=[0.5, 2]"]`` -> dict; values read as JSON where they parse."""
    import json
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set wants KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def cmd_train(a):
    from .data import data_hash
    from .inference import calibrate
    from .runtime import resolve_profile
    from .training import Trainer, TrainConfig, TrainData, get_recipe, make_model
    profile = resolve_profile(a.profile)
    settings = parse_settings(a.set)
    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise SystemExit(f"--set: unknown setting(s) {unknown}; see nucleiseg_lib.training.TrainConfig")
    flags = dict(epochs=a.epochs, base=a.base, size=a.size, batch_size=a.batch_size, seed=a.seed,
                 num_workers=a.workers, max_images=a.max_images, test_fraction=a.test_fraction)
    clash = sorted(k for k in settings if flags.get(k) is not None and flags[k] != settings[k])
    if clash:
        flag = "--workers" if clash[0] == "num_workers" else "--" + clash[0].replace("_", "-")
        raise SystemExit(f"nucleiseg train: error: {clash[0]} is given twice, as {flag} and as "
                         f"--set {clash[0]}=...; give it once")
    cfg = get_recipe(profile, **{**flags, **settings})
    try:
        cfg.check()
    except ValueError as exc:
        raise SystemExit(f"nucleiseg train: error: {exc}")
    root, source, samples, ids = load_data(a.data, progress=not a.quiet)
    info = dict(root=str(root), source=source, hash=data_hash(root), n_images=len(ids))
    data = TrainData.from_config(samples, cfg, ids, info=info)
    if a.val_list:
        val_ids = read_id_list(a.val_list, ids)
        data = TrainData(samples, [i for i in ids if i not in set(val_ids)], val_ids, method="list", info=info)
    print(f"split: {data}" + (f"; test experiments held out: {', '.join(data.details['test_groups'])}"
                              if data.details.get("test_groups") else ""))
    if cfg.split == "experiments" and cfg.test_fraction == 0:
        print("no experiment held out (--test-fraction 0): every experiment trains this model, so no image here can "
              "measure it on experiments it has not seen; measure the recipe with a held-out run first (README)")
    if source == "synthetic":
        print("WARNING: training on SYNTHETIC data")
    trainer = Trainer(a.run, cfg, progress=not a.quiet)
    history = trainer.fit(make_model(cfg), data)
    if data.val_ids and not a.no_calibrate:
        chosen = calibrate(trainer.best, samples, data.val_ids, progress=not a.quiet,
                           train_ids=trainer.training_ids(data))
        print(f"chosen on the validation split: threshold {chosen['threshold']}, {chosen['method']} "
              f"(val DSB score {chosen['val_dsb_score']:.3f}); stored in {trainer.best}")
    print(f"{len(history)} epochs in {a.run}")


def read_id_list(path, ids):
    """Sample ids listed one per line in `path`; each must be in `ids`."""
    from .errors import DataError
    wanted = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    unknown = sorted(set(wanted) - set(ids))
    if unknown:
        raise DataError(path, f"{len(unknown)} ids are not in the data folder, e.g. {unknown[0]}")
    return sorted(wanted)


def _table(rows, keys):
    lines = ["  ".join(f"{k:>14}" for k in keys)]
    for r in rows:
        lines.append("  ".join(f"{r[k]:>14.4f}" if isinstance(r[k], float) else f"{str(r[k])[:14]:>14}"
                               for k in keys))
    return "\n".join(lines)


def parse_rule(rule):
    """'0.4' -> 0.4; names stay names; None stays None (the checkpoint's choice)."""
    if rule is None:
        return None
    try:
        return float(rule)
    except ValueError:
        return rule


def split_of(state, ids, which):
    """The ids of one part (train/val/test) of the split a checkpoint was trained with.

    Checkpoints that store their split are read as they are; older ones (no ``split``
    entry) get the seeded random split of their config recomputed (no test part).
    """
    from .data import split_ids
    from .errors import DataError
    stored = state.get("split") or {}
    if which in stored:
        part = stored[which]
    elif which == "test":
        part = []
    else:
        cfg = state.get("config", {})
        train, val = split_ids(ids, cfg.get("val_fraction", 0.1), cfg.get("seed", 0))
        part = train if which == "train" else val
    missing = sorted(set(part) - set(ids))
    if missing:
        raise DataError(missing[0], f"is in the checkpoint's {which} split but not in the data folder")
    return sorted(part)


def cmd_evaluate(a):
    from .inference import Predictor, evaluate_predictions, settings_only, summarize_rows
    pred = Predictor(a.checkpoint, tta=a.tta)
    root, source, samples, ids = load_data(a.data, progress=not a.quiet)
    if a.split != "all":
        ids = split_of(pred.state, ids, a.split)
        if not ids:
            from .errors import CheckpointError
            raise CheckpointError(a.checkpoint, f"has no {a.split} images in its split (trained with "
                                                f"split={pred.state.get('config', {}).get('split', 'random')!r})")
    rows = evaluate_predictions(pred, samples, ids, rule=parse_rule(a.threshold), progress=not a.quiet)
    summary = summarize_rows(rows)
    keys = ["pixel_accuracy", "iou", "dice", "dsb_score", "ap50"]
    print(_table([dict(image="mean", **summary)], ["image"] + keys))
    if source == "synthetic":
        print("WARNING: these numbers come from SYNTHETIC data")
    if a.json:
        from .training import save_json
        save_json(dict(checkpoint=str(a.checkpoint), data=str(root), source=source, split=a.split,
                       threshold_rule=a.threshold or "validation", postprocess=settings_only(pred.postprocess),
                       mean=summary, per_image=rows), a.json)
        print(f"wrote {a.json}")


def cmd_predict(a):
    from .inference import Predictor
    from .inference.io import predict_path
    pred = Predictor(a.checkpoint, tta=a.tta)
    n = predict_path(pred, a.input, a.output, rule=parse_rule(a.threshold), log=print)
    print(f"wrote masks and labels of {n} images to {a.output}")


def cmd_report(a):
    from .report.runner import run_course
    run_course(profile=a.profile, data=a.data, out=a.out, notebooks=a.notebooks, run_dir=a.run_dir)


def build_parser():
    p = argparse.ArgumentParser(prog="nucleiseg", description="Nuclei segmentation with a U-Net on DSB2018.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write synthetic nuclei in the Kaggle layout")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, default=24)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--style", default="mixed", choices=["mixed", "fluorescence", "stained", "brightfield"])
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("download", help="download DSB2018 stage1_train")
    s.add_argument("--source", default="github", choices=["github", "kaggle"])
    s.add_argument("--dataset", default="data-science-bowl-2018",
                   help="with --source kaggle: data-science-bowl-2018 (the competition), "
                        "sinjoysaha/nucleiimagesmasksfromdsb2018 or gangadhar/nuclei-segmentation-in-microscope-cell-images")
    s.add_argument("--dest", default=None, help="default: the repo's data/ folder")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("train", help="train (or resume training) a U-Net into a run folder")
    s.add_argument("--data", default="auto", help="a Kaggle-layout folder, or auto/download/synthetic")
    s.add_argument("--run", required=True)
    s.add_argument("--profile", default="auto", choices=["auto", "smoke", "original", "cpu", "gpu"])
    s.add_argument("--epochs", type=int)
    s.add_argument("--base", type=int)
    s.add_argument("--size", type=int)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--workers", type=int)
    s.add_argument("--max-images", type=int)
    s.add_argument("--test-fraction", type=float,
                   help="share of the images in whole experiments held out as the test split (profile default 0.15); "
                        "0 trains on every experiment: the model to use on new images, measured on none")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any TrainConfig setting, e.g. --set input=nuclei --set split=experiments (repeatable)")
    s.add_argument("--val-list", help="a file of sample ids (one per line) to validate on instead of the seeded split")
    s.add_argument("--no-calibrate", action="store_true", help="skip choosing the threshold on the validation split")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="metrics of a checkpoint on labelled data")
    s.add_argument("--checkpoint", required=True, help="a best.pt, or 'pretrained': the course model shipped with the package")
    s.add_argument("--data", default="auto")
    s.add_argument("--threshold", default=None,
                   help="fixed | relative | otsu | validation | a number (default: the checkpoint's choice)")
    s.add_argument("--split", default="all", choices=["all", "train", "val", "test"],
                   help="all images, or one part of the checkpoint's split (test: whole experiments held out)")
    s.add_argument("--json")
    s.add_argument("--tta", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("predict", help="masks and instance labels for new images")
    s.add_argument("--checkpoint", required=True, help="a best.pt, or 'pretrained': the course model shipped with the package")
    s.add_argument("--input", required=True, help="an image, a folder of images, or a Kaggle-layout folder")
    s.add_argument("--output", required=True)
    s.add_argument("--threshold", default=None)
    s.add_argument("--tta", action="store_true")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("report", help="run all notebooks with papermill and export the PDF report")
    s.add_argument("--profile", default=None, help="smoke | cpu | gpu | auto (default: $NUCLEISEG_PROFILE or auto)")
    s.add_argument("--data", default=None, help="auto | synthetic | a folder (default: $NUCLEISEG_DATA_SPEC or auto)")
    s.add_argument("--out", default="report")
    s.add_argument("--notebooks", nargs="*", default=None, help="run only these notebooks")
    s.add_argument("--run-dir", default=None, help="the notebooks' RUN_DIR (default: OUT/run); a trained run is reused")
    s.set_defaults(func=cmd_report)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except NucleisegError as exc:
        print(f"nucleiseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    return 0
