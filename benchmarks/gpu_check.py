"""The gpu recipe on a GPU, for a fixed time: epoch time, GPU memory and left-out-experiment DSB (one script).

    python benchmarks/gpu_check.py --minutes 8 [--data ../shared/data/dsb2018/stage1_train] [--name gpu-check]
        -> runs/<name>/ and benchmarks/results/<name>_gpu_check.json (and <name>.json, <name>_train.json)

What a session with a GPU machine runs once. It times one probe epoch of the ``gpu`` recipe (in a folder of its
own, thrown away), sets the number of epochs so that training fits in ``--minutes`` (the cosine schedule then
ends where it should), trains ``runs/<name>`` with that many epochs, chooses the post-processing on validation,
and scores validation and the left-out test experiments as ``benchmarks/recipes.py evaluate --chosen-only`` does.
It reports the device, the seconds per epoch, the peak GPU memory (``torch.cuda.max_memory_allocated``), the
training minutes and the DSB scores. Without CUDA it refuses, unless ``--allow-cpu`` (a dry run of the script
itself, e.g. ``--recipe smoke --minutes 0.5 --allow-cpu``: its numbers say nothing about a GPU).
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
    p.add_argument("--minutes", type=float, default=8.0, help="training time to fill (the probe epoch aside)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--name", default="gpu-check", help="the run folder runs/<name> and the result files")
    p.add_argument("--recipe", default="gpu")
    p.add_argument("--allow-cpu", action="store_true", help="run without CUDA (a dry run of this script)")
    a = p.parse_args(argv)
    if not torch.cuda.is_available() and not a.allow_cpu:
        sys.exit("gpu_check: no CUDA device here; this script measures the gpu recipe on a GPU "
                 "(--allow-cpu for a dry run of the script)")
    from nucleiseg_lib.data import SampleCache, data_hash, list_samples
    from nucleiseg_lib.inference import calibrate, settings_only
    from nucleiseg_lib.training import Trainer, TrainData, get_recipe, make_model
    import recipes

    cuda = torch.cuda.is_available()
    ids = list_samples(a.data)
    samples = SampleCache(a.data, ids=ids, progress=False).load_all()
    info = dict(root=str(a.data), source="folder", hash=data_hash(a.data), n_images=len(ids))
    probe_cfg = get_recipe(a.recipe, epochs=1)
    data = TrainData.from_config(samples, probe_cfg, ids, info=info)
    quiet = dict(progress=False, log=lambda *x, **k: None)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.time()
        Trainer(Path(tmp) / "probe", probe_cfg, **quiet).fit(make_model(probe_cfg), data)
        probe = time.time() - t
    epochs = epochs_for(a.minutes, probe)
    cfg = get_recipe(a.recipe, epochs=epochs)
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
    train_info = dict(name=a.name, recipe=a.recipe, settings=[f"epochs={epochs} (fills {a.minutes:g} min)"],
                      step=f"`{a.recipe}` recipe on {torch.cuda.get_device_name() if cuda else 'CPU (dry run)'}, "
                           f"{epochs} epochs in {a.minutes:g} minutes",
                      finished=time.time(), wall_seconds_this_call=round(train_seconds, 1),
                      train_seconds_total=round(sum(h["seconds"] for h in history), 1), epochs=len(history))
    (RESULTS / f"{a.name}_train.json").write_text(json.dumps(train_info, indent=2))
    recipes.evaluate(argparse.Namespace(name=a.name, data=a.data, chosen_only=True))
    res = json.loads((RESULTS / f"{a.name}.json").read_text())
    scores = {part: dict(dsb_score=v["variants"][0]["overall"]["dsb_score"],
                         by_kind={k: m["dsb_score"] for k, m in v["variants"][0]["by_kind"].items()})
              for part, v in res["sets"].items()}
    out = dict(device=torch.cuda.get_device_name() if cuda else "cpu (dry run: not a GPU measurement)",
               torch=torch.__version__, recipe=a.recipe, minutes=a.minutes, probe_epoch_seconds=round(probe, 1),
               epochs=epochs, epoch_seconds=[h["seconds"] for h in history],
               train_minutes=round(train_seconds / 60, 2),
               peak_gpu_memory_gib=None if peak is None else round(peak, 2),
               postprocess=settings_only(chosen), scores=scores)
    (RESULTS / f"{a.name}_gpu_check.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
