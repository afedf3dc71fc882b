"""The gpu recipe on a GPU: epoch time, GPU memory and left-out-experiment DSB (one script).

    python benchmarks/gpu_check.py [--minutes M] [--data ../shared/data/dsb2018/stage1_train] [--name gpu-check]
                                   [--set KEY=VALUE ...]
        -> runs/<name>/ and benchmarks/results/<name>_gpu_check.json (and <name>.json, <name>_train.json)

What a session with a GPU machine runs once. It times the second of two probe epochs of the ``gpu`` recipe (in a
folder of its own, thrown away: the first also pays for CUDA's start). It trains ``runs/<name>`` for the recipe's
own epochs, or, with ``--minutes``, for as many as fit that time (the cosine schedule then ends where it should).
It chooses the post-processing on validation, and scores validation and the left-out test experiments as
``benchmarks/recipes.py evaluate --chosen-only`` does. It reports the device, the seconds per epoch, the peak GPU
memory (``torch.cuda.max_memory_allocated``), the training minutes and the DSB scores; ``recipes.py table`` shows
them in a table of their own. Without CUDA it refuses, unless ``--allow-cpu`` (a dry run of the script itself,
e.g. ``--recipe smoke --minutes 0.5 --allow-cpu``: its numbers say nothing about a GPU).
A GPU machine that cannot read ``../shared`` gets the data from ``benchmarks/device_data.py``.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
RESULTS = REPO / "benchmarks" / "results"


def epochs_for(minutes, probe_seconds, at_least=1):
    """How many epochs of `probe_seconds` each fit in `minutes` (at least `at_least`)."""
    return max(at_least, int(minutes * 60 // max(probe_seconds, 1e-6)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None,
                   help="training time to fill (the probe epochs aside); default: the recipe's own epochs")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--name", default="gpu-check", help="the run folder runs/<name> and the result files")
    p.add_argument("--recipe", default="gpu")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a TrainConfig setting (repeatable), e.g. num_workers=12 on a machine of many cores")
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (a dry run of this script)")
    a = p.parse_args(argv)
    if not torch.cuda.is_available() and not a.allow_cpu:
        sys.exit("gpu_check: no CUDA device here; this script measures the gpu recipe on a GPU "
                 "(--allow-cpu for a dry run of the script)")
    from nucleiseg_lib.data import SampleCache, data_hash, list_samples
    from nucleiseg_lib.inference import calibrate, settings_only
    from nucleiseg_lib.cli import parse_settings
    from nucleiseg_lib.training import Trainer, TrainData, get_recipe, make_model
    import recipes

    settings = parse_settings(a.set)

    cuda = torch.cuda.is_available()
    ids = list_samples(a.data)
    samples = SampleCache(a.data, ids=ids, progress=False).load_all()
    info = dict(root=str(a.data), source="folder", hash=data_hash(a.data), n_images=len(ids))
    probe_cfg = get_recipe(a.recipe, **{**settings, "epochs": 2}).check()
    data = TrainData.from_config(samples, probe_cfg, ids, info=info)
    quiet = dict(progress=False, log=lambda *x, **k: None)
    with tempfile.TemporaryDirectory() as tmp:
        # two epochs, the second timed: the first also pays for CUDA's start and cuDNN's autotuning
        probe = Trainer(Path(tmp) / "probe", probe_cfg, **quiet).fit(make_model(probe_cfg), data)[-1]["seconds"]
    epochs = epochs_for(a.minutes, probe) if a.minutes else get_recipe(a.recipe, **settings).epochs
    cfg = get_recipe(a.recipe, **{**settings, "epochs": epochs})
    run = REPO / "runs" / a.name
    if run.exists():
        shutil.rmtree(run)  # a fixed-time run starts from nothing: a resumed one would have another schedule
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    trainer = Trainer(run, cfg, progress=False)
    history = trainer.fit(make_model(cfg), data)
    train_seconds = time.time() - t
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None
    chosen = calibrate(trainer.best, samples, data.val_ids, progress=False, train_ids=trainer.training_ids(data))
    RESULTS.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name() if cuda else "CPU (dry run)"
    seconds = sorted(h["seconds"] for h in history)
    train_info = dict(name=a.name, recipe=a.recipe,
                      settings=[*(a.set or []), f"epochs={epochs}"
                                + (f" (fills {a.minutes:g} min)" if a.minutes else "")],
                      step=f"the `{a.recipe}` recipe, {epochs} epochs"
                           + (f" (as many as fit {a.minutes:g} minutes)" if a.minutes else ""),
                      device=device, median_epoch_seconds=seconds[len(seconds) // 2],
                      peak_gpu_memory_gib=None if peak is None else round(peak, 2),
                      finished=time.time(), wall_seconds_this_call=round(train_seconds, 1),
                      train_seconds_total=round(sum(h["seconds"] for h in history), 1), epochs=len(history))
    (RESULTS / f"{a.name}_train.json").write_text(json.dumps(train_info, indent=2))
    recipes.evaluate(argparse.Namespace(name=a.name, data=a.data, chosen_only=True))
    res = json.loads((RESULTS / f"{a.name}.json").read_text())
    scores = {part: dict(dsb_score=v["variants"][0]["overall"]["dsb_score"],
                         by_kind={k: m["dsb_score"] for k, m in v["variants"][0]["by_kind"].items()})
              for part, v in res["sets"].items()}
    out = dict(device=device if cuda else "cpu (dry run: not a GPU measurement)",
               torch=torch.__version__, recipe=a.recipe, settings=a.set or [], minutes=a.minutes,
               probe_epoch_seconds=round(probe, 1),
               epochs=epochs, epoch_seconds=[h["seconds"] for h in history],
               train_minutes=round(train_seconds / 60, 2),
               peak_gpu_memory_gib=None if peak is None else round(peak, 2),
               postprocess=settings_only(chosen), scores=scores)
    (RESULTS / f"{a.name}_gpu_check.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
