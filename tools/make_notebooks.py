"""Write the course notebooks (notebooks/0*.ipynb) from this one file, so that they share one skeleton.

    python tools/make_notebooks.py            # (re)write the notebooks
    python tools/make_notebooks.py --check    # exit 1 if a notebook differs from what this file makes

Every notebook: title, what you will learn and what it needs; an "Open in Colab"
badge; a setup cell that installs the library in Colab only; imports; ONE cell
tagged ``parameters`` (papermill); ``ctx = setup_course(PROFILE, DATA, RUN_DIR)``;
then the lesson. Notebooks are written without outputs and execution counts,
with stable cell ids, so that a regeneration changes only what was edited here.
"""

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
NB_DIR = ROOT / "notebooks"
REPO_URL = "https://github.com/nucleiseg/nucleiseg"
COLAB_URL = "https://colab.research.google.com/github/nucleiseg/nucleiseg/blob/main/notebooks/{name}.ipynb"

SETUP = f'''# In Google Colab only: install the course library (Colab's own torch is kept). Elsewhere: nothing.
import sys
import subprocess

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+{REPO_URL}"], check=True)
    from google.colab import output
    output.enable_custom_widget_manager()  # ipywidgets 8 (progress bars, the threshold slider)'''

PARAMETERS = '''PROFILE = os.environ.get("NUCLEISEG_PROFILE", "auto")    # smoke (CI, minutes on 2 CPU cores) | cpu | gpu | auto
DATA = os.environ.get("NUCLEISEG_DATA_SPEC", "auto")     # auto | download | synthetic | a folder
RUN_DIR = os.environ.get("NUCLEISEG_RUN_DIR", "auto")    # auto: runs/<profile> (Google Drive in Colab)'''

SETUP_COURSE = "ctx = setup_course(PROFILE, DATA, RUN_DIR)"


def md(text):
    return ("markdown", text.strip("\n"))


def code(text):
    return ("code", text.strip("\n"))


def header(name, title, learn, needs):
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"({COLAB_URL.format(name=name)})\n\n"
             "In Colab, pick a GPU first: *Runtime > Change runtime type > T4 GPU*. "
             "Runs are kept on your Google Drive.")
    learn_md = "\n".join(f"- {item}" for item in learn)
    return [md(f"# {title}\n\n**What you will learn**\n\n{learn_md}\n\n**Needs:** {needs}"), md(badge)]


def skeleton(imports, extra_parameters=""):
    params = PARAMETERS + ("\n" + extra_parameters.strip("\n") if extra_parameters else "")
    return [
        code(SETUP),
        code("import os\n\n" + imports.strip("\n")),
        md("**Parameters.** The defaults suit a student; CI sets `NUCLEISEG_PROFILE=smoke`, "
           "and papermill may override this cell."),
        ("parameters", params),
        code(SETUP_COURSE),
    ]


# --------------------------------------------------------------------------- 01 ---
NB01 = header(
    "01_data_exploration", "01 · Data exploration: the nuclei of DSB2018",
    ["how the 2018 Data Science Bowl data (BBBC038) are laid out: one image, one mask file per nucleus",
     "which kinds of microscopy it mixes, and what sizes its images have",
     "how many nuclei an image holds and how large they are",
     "why pixel accuracy flatters any model on these images"],
    "nothing; this is the first notebook. The data are found (or downloaded) by the setup cell.",
) + skeleton('''
import numpy as np

from nucleiseg_lib import course, viz
from nucleiseg_lib.course import setup_course
from nucleiseg_lib.data import sample_paths
''') + [
    md('''
## The dataset

The 2018 Data Science Bowl asked for one thing: find every nucleus in a microscope image. Its training set
(BBBC038, "stage 1") stores each image in its own folder, with **one mask file per nucleus**:

```
stage1_train/<id>/images/<id>.png
stage1_train/<id>/masks/<mask-id>.png     one nucleus per file
```
'''),
    code('''
image_path, mask_paths = sample_paths(ctx.root, ctx.ids[0])
print(image_path.relative_to(ctx.root))
print(f"{len(mask_paths)} mask files, e.g. {mask_paths[0].relative_to(ctx.root)}")
'''),
    md('''
`ctx.samples()` merges the masks of every image once into a label map (0 = background, 1..N = nuclei; notebook 02
shows how), keeps the result in a cache on disk, and loads it. `dataset_stats` then measures each image.
'''),
    code('''
samples = ctx.samples()
rows = course.dataset_stats(samples, ctx.ids)
by_id = {r["id"]: r for r in rows}
print(f"{len(rows)} images, {sum(r['n_nuclei'] for r in rows)} nuclei")
'''),
    md('''
## A first look

Two images of each kind, with the outline of every annotated nucleus.
'''),
    code('''
pick = course.examples_by(rows, "modality", per_group=2)
fig = viz.show_samples([samples[i][0] for i in pick], [samples[i][1] for i in pick],
                       titles=[f"{by_id[i]['modality']}, {by_id[i]['n_nuclei']} nuclei" for i in pick],
                       ncols=3, synthetic=ctx.synthetic)
'''),
    md('''
## Modalities

The images come from different microscopes and stains. We sort them with a two-feature rule
(`nucleiseg_lib.data.stats.classify_modality`):

- **stained**: the image is coloured (mean of max channel minus min channel above 0.035): H&E tissue, purple nuclei;
- **brightfield**: grey and bright (median brightness above 0.5): dark nuclei on a light background;
- **fluorescence**: grey and dark: bright nuclei on black.

A model sees mostly one kind; the rare kinds are where it will fail (notebook 05 checks).
'''),
    code('''
ctx.table(course.summary_by(rows, "modality"), title="images per modality")
fig = viz.bar_counts(course.count_by(rows, "modality"), title="images per modality", synthetic=ctx.synthetic)
'''),
    md('''
## Image sizes

The original project resized every image to 256 x 256. Sizes differ, and so do aspect ratios: squashing
changes the shape and the size of the nuclei. The U-Net also halves the image four times, so it needs sides that
are multiples of 16; the library pads inputs and crops outputs instead of resizing.
'''),
    code('''
ctx.table(course.size_counts(rows), columns=["width x height", "images"], title="images per size")
not16 = sum(1 for r in rows if r["height"] % 16 or r["width"] % 16)
print(f"{not16} of {len(rows)} images have a side that is not a multiple of 16")
fig = viz.scatter_sizes([r["width"] for r in rows], [r["height"] for r in rows], [r["modality"] for r in rows],
                        synthetic=ctx.synthetic)
'''),
    md('''
## Nuclei per image

Some images hold a handful of nuclei, some hundreds, often touching. Telling touching nuclei apart is what
the competition's score rewards.
'''),
    code('''
counts = np.array([r["n_nuclei"] for r in rows])
print(f"nuclei per image: min {counts.min()}, median {np.median(counts):.0f}, mean {counts.mean():.1f}, "
      f"max {counts.max()}")
fig = viz.histogram(counts, "nuclei per image", groups=[r["modality"] for r in rows],
                    vline=(counts.mean(), "mean"), synthetic=ctx.synthetic)
'''),
    md('''
## Nucleus areas

Areas span two orders of magnitude, so the axis is logarithmic. Resizing every image to 256 x 256, as the
original did, shrinks the nuclei of large images a lot:
'''),
    code('''
areas = course.all_areas(rows)
resized = np.concatenate([r["areas"] * 256 ** 2 / (r["height"] * r["width"]) for r in rows])
print(f"nucleus area (pixels): 5th percentile {np.percentile(areas, 5):.0f}, median {np.median(areas):.0f}, "
      f"95th percentile {np.percentile(areas, 95):.0f}")
print(f"after resizing to 256 x 256: 5th percentile {np.percentile(resized, 5):.0f}, "
      f"median {np.median(resized):.0f}")
fig = viz.histogram(areas, "nucleus area (pixels)", logx=True, synthetic=ctx.synthetic)
'''),
    md('''
## Foreground fraction, and why pixel accuracy flatters any model

Most pixels are background. A "model" that answers *background* everywhere is right on all of them:
'''),
    code('''
fg = np.array([r["foreground_fraction"] for r in rows])
baseline = course.all_background_scores(samples, ctx.ids)
mean = {k: np.mean([b[k] for b in baseline]) for k in ("pixel_accuracy", "iou", "dice", "dsb_score")}
print(f"nuclei cover {fg.mean():.1%} of the pixels on average (median {np.median(fg):.1%})")
ctx.table(mean, columns=["metric", "all background"], title="scores of a prediction of background everywhere")
fig = viz.histogram(fg, "fraction of the pixels inside a nucleus", synthetic=ctx.synthetic)
'''),
    md('''
A prediction with **no nucleus at all** gets a high pixel accuracy, and an IoU, a Dice and a DSB score of 0.
So we judge models by IoU / Dice (overlap of the foreground) and by the DSB score (are the *nuclei* found, one
by one?) and always quote pixel accuracy beside this all-background baseline.

**Next:** 02_mask_merging turns the mask files into training targets, and shows two bugs to avoid.
'''),
]

# --------------------------------------------------------------------------- 02 ---
NB02 = header(
    "02_mask_merging", "02 · From mask files to training targets",
    ["how one-mask-per-nucleus files become an instance label map, then a binary target",
     "pitfall 1: a target with an extra axis, `[B, 1, 1, H, W]`, and the guard against it",
     "pitfall 2: masks read as 0/255 or 0/1, and a double `/255` that teaches the model to see black",
     "checks before merging (overlaps, sizes), and the cache that merges only once"],
    "nothing (01_data_exploration helps to know the data).",
) + skeleton('''
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nucleiseg_lib import course, viz
from nucleiseg_lib.course import setup_course
from nucleiseg_lib.data import (SampleCache, binary_target, count_overlaps, merge_masks, read_image, read_mask,
                                sample_paths)
from nucleiseg_lib.training import segmentation_loss
''') + [
    md('''
## One image, many masks

We take a fluorescence image (plain enough for the experiment further down) and read its mask files.
`read_mask` gives a boolean array whatever the file stores (0/255, 0/1, colour).
'''),
    code('''
is_fluo = lambda i: course.classify_modality(read_image(sample_paths(ctx.root, i)[0])) == "fluorescence"
sid = next((i for i in ctx.ids if is_fluo(i)), ctx.ids[0])
image_path, mask_paths = sample_paths(ctx.root, sid)
image = read_image(image_path)
masks = [read_mask(p, image.shape[:2]) for p in mask_paths]
print(f"image {image.shape} {image.dtype}; {len(masks)} masks, each {masks[0].shape} {masks[0].dtype}")
'''),
    md('''
`merge_masks` paints nucleus *i* with label *i + 1*: an **instance label map**. The U-Net learns the
**binary target** (nucleus or not), with exactly one channel axis: shape `(1, H, W)`.
'''),
    code('''
labels = merge_masks(masks, image.shape[:2])
target = binary_target(labels)
print(f"labels {labels.shape} {labels.dtype}, {labels.max()} nuclei; target {target.shape} {target.dtype}, "
      f"values {np.unique(target)}")
fig = viz.show_panels([image, masks[0], masks[1 % len(masks)], labels, target[0]],
                      ["image", "mask file 1", "mask file 2", "instance labels", "binary target"],
                      synthetic=ctx.synthetic)
'''),
    md('''
## Pitfall 1: the target with an extra axis

In the original project the targets came out as `[B, 1, 1, H, W]`: a channel axis was added to a mask that
already had one (e.g. `unsqueeze(0)` after a transform that returns `(1, H, W)`), and the batch stacking added
`B`. The model outputs `[B, 1, H, W]`.
'''),
    code('''
t = torch.from_numpy(target)              # (1, H, W): it already has its channel axis
right = torch.stack([t, t])               # a batch of 2: (B, 1, H, W)
wrong = torch.stack([t.unsqueeze(0)] * 2) # one unsqueeze too many: (B, 1, 1, H, W)
logits = torch.zeros(2, 1, *t.shape[-2:]) # what the U-Net outputs for 2 images
print("right", tuple(right.shape), "  wrong", tuple(wrong.shape), "  output", tuple(logits.shape))
print("output x wrong target broadcasts to", tuple((logits * wrong).shape), "- no error, the images of the batch mix")
'''),
    md('''
A hand-written loss (a Dice, say) multiplies output and target: with the wrong shape it *broadcasts* to
`(B, B, 1, H, W)`, compares each output with every target of the batch, and never complains. The library's
loss refuses any shape mismatch:
'''),
    code('''
try:
    segmentation_loss(logits, wrong)
except ValueError as err:
    print("segmentation_loss refuses it:", err)
print(f"with the right target: loss {segmentation_loss(logits, right).item():.4f}")
'''),
    md('''
## Pitfall 2: 0/255 or 0/1?

Mask files store nuclei as 255 (here) or as 1 (other datasets). `ToTensor` divides by 255; a second division
somewhere (a custom transform written for 0/255 input) leaves a target whose maximum is 1/255.
'''),
    code('''
raw = np.asarray(Image.open(mask_paths[0]))   # as stored on disk
once = raw / 255.0                            # ToTensor: 0/1
twice = once / 255.0                          # a second /255: at most 0.0039
print(f"on disk: max {raw.max()}   after /255: max {once.max():.0f}   after /255 twice: max {twice.max():.4f}")
'''),
    md('''
What does a model learn from such a target? We fit the smallest model there is, `sigmoid(a * brightness + b)`,
with the U-Net's loss, once on the right target and once on the target divided by 255 twice:
'''),
    code('''
prob_right = course.fit_pixel_classifier(image, target)
prob_wrong = course.fit_pixel_classifier(image, target / 255.0)
print(f"right target: {np.mean(prob_right > 0.5):.1%} of pixels predicted nucleus (truth {target.mean():.1%})")
print(f"target /255 twice: {np.mean(prob_wrong > 0.5):.1%} predicted nucleus, "
      f"highest probability {prob_wrong.max():.4f}")
fig = viz.show_panels([image, prob_right, prob_wrong],
                      ["image", "learnt from the right target", "learnt from target /255 twice"],
                      synthetic=ctx.synthetic)
'''),
    md('''
It learns **black**: with targets near 0 everywhere, "background everywhere" is the best answer. The library
avoids both misreadings at the source: `read_mask` returns booleans whether the file stores 0/255 or 0/1, and
`binary_target` returns exactly 0.0 and 1.0.
'''),
    code('''
folder = Path(tempfile.mkdtemp())
Image.fromarray(masks[0].astype(np.uint8) * 255).save(folder / "mask_0_255.png")
Image.fromarray(masks[0].astype(np.uint8)).save(folder / "mask_0_1.png")
a, b = read_mask(folder / "mask_0_255.png"), read_mask(folder / "mask_0_1.png")
print(f"0/255 file -> {a.dtype}, {a.sum()} pixels on; 0/1 file -> {b.dtype}, {b.sum()} pixels on; "
      f"identical: {np.array_equal(a, b)}")
'''),
    md('''
## Checks before merging: overlaps and sizes

Merging assumes that masks do not overlap (where they do, the later mask wins and a nucleus loses pixels) and
that every mask has its image's size. `check_masks` verifies both for every image:
'''),
    code('''
checks = course.check_masks(ctx.root, ctx.ids)
bad = [c for c in checks if c["overlap_pixels"] or c["problem"] or c["empty_masks"]]
print(f"{len(checks)} images, {sum(c['n_masks'] for c in checks)} masks; this image: "
      f"{count_overlaps(masks)} overlapping pixels")
print(f"images with overlaps, empty masks or size problems: {len(bad)}")
if bad:
    ctx.table(bad, title="images to look at")
'''),
    md('''
## The cache: merge once, reuse

Reading dozens of PNGs per image at every epoch is slow. `SampleCache` merges each image once into one `.npz`
file, with a fingerprint of its source files; later runs only rebuild what changed. Shown on 8 images in a fresh
folder:
'''),
    code('''
demo_ids, demo_folder = sorted({sid, *ctx.ids[:7]}), tempfile.mkdtemp()
t0 = time.time(); cache = SampleCache(ctx.root, cache_dir=demo_folder, ids=demo_ids); first = time.time() - t0
t0 = time.time(); again = SampleCache(ctx.root, cache_dir=demo_folder, ids=demo_ids); second = time.time() - t0
print(f"first:  built {cache.n_built} of {len(cache)} entries in {first:.2f} s")
print(f"second: built {again.n_built} of {len(again)} entries in {second:.2f} s")
cached_image, cached_labels = again.load(sid)
print(f"cached labels equal the labels merged above: {np.array_equal(cached_labels, labels)}")
'''),
    md('''
The course's own cache holds every image of this profile; `ctx.samples()` builds it on first use (notebook 01
may have done so already) and loads it into memory:
'''),
    code('''
course_cache = ctx.cache()
print(f"{len(course_cache)} images, {course_cache.n_built} built just now, in {course_cache.folder}")
'''),
    md('''
**Next:** 03_unet_build builds the network that learns these targets.
'''),
]

# --------------------------------------------------------------------------- 03 ---
NB03 = header(
    "03_unet_build", "03 · Building the U-Net",
    ["the U-Net block by block: encoder, bottleneck, decoder, skip connections",
     "the shape of the tensor after every block",
     "how many parameters it has (at the original width and at this profile's)",
     "why skip connections matter, and why any image size works"],
    "nothing (02_mask_merging explains the targets).",
) + skeleton('''
import numpy as np
import torch

from nucleiseg_lib import course, viz
from nucleiseg_lib.course import setup_course
from nucleiseg_lib.data import normalize_image
from nucleiseg_lib.metrics import iou
from nucleiseg_lib.model import UNet, count_parameters, double_conv, trace_shapes
''') + [
    md('''
## The basic block

Every level of the U-Net applies the same block twice: a 3 x 3 convolution (padding 1 keeps the size) and a ReLU.
'''),
    code('''
print(double_conv(3, 64))
'''),
    md('''
## The whole network

The **encoder** applies a block, then halves the image (max-pooling), four times, doubling the channels each
time: 64, 128, 256, 512, then 1024 in the **bottleneck**. The **decoder** doubles the size back four times
(transposed convolution), concatenates the encoder's output of the same size (the **skip connection**) and
applies a block. A 1 x 1 convolution gives one logit per pixel and output channel.
'''),
    code('''
original = UNet(in_channels=3, out_channels=1, base=64)
print(f"U-Net at base 64 (Ronneberger et al. 2015): {count_parameters(original):,} parameters "
      f"({count_parameters(original) / 1e6:.1f}M)")
ctx.table([dict(base=b, parameters=count_parameters(UNet(base=b))) for b in (8, 16, 32, 64)],
          title="parameters against the width of the first level")
'''),
    md('''
Parameters grow with the square of the width: halving `base` divides them by about 4. This profile trains:
'''),
    code('''
r = ctx.recipe
model = UNet(in_channels=3, out_channels=len(r.targets), base=r.base, batch_norm=r.batch_norm)
print(f"profile {ctx.profile}: base {r.base}, batch norm {r.batch_norm}, outputs {r.targets}: "
      f"{count_parameters(model):,} parameters")
'''),
    md('''
## Shapes, block by block

A 256 x 256 RGB image through the base-64 U-Net (`trace_shapes` records the output of every block):
'''),
    code('''
shapes = trace_shapes(original, torch.zeros(1, 3, 256, 256))
ctx.table([dict(block=name, shape=str(shape)) for name, shape in shapes], title="output shape of every block")
bottleneck = dict(shapes)["bottleneck"]
print(f"the bottleneck sees a {bottleneck[2]} x {bottleneck[3]} grid: each of its cells stands for "
      f"{256 // bottleneck[2]} x {256 // bottleneck[3]} pixels")
'''),
    md('''
## Why skip connections

The bottleneck knows *what* is in each 16 x 16 block, not *where* the outline runs. What could a decoder redraw
from it alone? At best a mask at 1/16 resolution:
'''),
    code('''
samples = ctx.samples(ctx.ids[:40])   # a few images are enough here
counts = {i: int(labels.max()) for i, (_, labels) in samples.items()}
sid = sorted(counts, key=counts.get)[len(counts) // 2]   # an image with the median number of nuclei
image, labels = np.asarray(samples[sid][0], np.float32), samples[sid][1]
coarse = course.coarse_mask(labels, 16)
print(f"IoU of the true mask with its 1/16-resolution version: {iou(coarse, labels > 0):.3f}")
fig = viz.show_panels([image, labels > 0, coarse], ["image", "true mask", "at the bottleneck's resolution"],
                      synthetic=ctx.synthetic)
'''),
    md('''
The skip connections hand the decoder the encoder's full-resolution features at every level, so outlines come
back sharp: this is what made the U-Net good at segmentation with little data.

## Any image size

Sizes that are not multiples of 16 would not survive four halvings and doublings. The library's U-Net pads the
input (by reflection) and crops the output, so the output always has the input's size:
'''),
    code('''
odd = [i for i in samples if any(s % 16 for s in samples[i][0].shape[:2])]
image = np.asarray(samples[odd[0]][0] if odd else samples[sid][0][:250, :203], np.float32)
x = torch.from_numpy(normalize_image(image))[None]
with torch.no_grad():
    out = model.eval()(x)
prob = torch.sigmoid(out[0, 0]).numpy()
print(f"input {tuple(x.shape)} -> output {tuple(out.shape)}; untrained probabilities from {prob.min():.3f} "
      f"to {prob.max():.3f}")
fig = viz.show_panels([image, prob], ["input", "untrained output (probability)"], synthetic=ctx.synthetic)
'''),
    md('''
Untrained, the output means nothing yet: random filters only echo the image's brightness and edges.
**Next:** 04_training teaches it.
'''),
]

# --------------------------------------------------------------------------- 04 ---
NB04 = header(
    "04_training", "04 · Training the U-Net",
    ["training in one line, with a checkpoint after every epoch",
     "what a checkpoint holds, and the loss and validation curves it keeps",
     "resuming: a run interrupted after any epoch continues where it stopped",
     "choosing the threshold on the validation images (used by 05 and the app)"],
    "nothing to run first (01 to 03 explain the data and the model). Writes `best.pt` and `last.pt` into "
    "RUN_DIR, which 05_threshold_and_accuracy needs.",
) + skeleton('''
import dataclasses
import shutil

import numpy as np
import torch

from nucleiseg_lib import viz
from nucleiseg_lib.course import setup_course
from nucleiseg_lib.inference import calibrate
from nucleiseg_lib.training import Trainer, load_checkpoint
''') + [
    md('''
## Data and settings

Training images and validation images are split by a fixed seed, so every notebook sees the same validation
images; the model never trains on them.
'''),
    code('''
samples = ctx.samples()
train_ids, val_ids = ctx.split()
print(f"{len(train_ids)} training images (the recipe uses {ctx.recipe.max_images or 'all'}), "
      f"{len(val_ids)} validation images")
ctx.table(ctx.recipe.to_dict(), columns=["setting", "value"], title=f"recipe '{ctx.recipe.recipe}'")
print(ctx.resume_note())
'''),
    md('''
## Train

One line. After every epoch the trainer writes `last.pt` (everything needed to continue), `best.pt` (the epoch
with the best validation IoU) and `history.json` into the run folder. If the folder already holds a `last.pt`,
training **continues** from it.
'''),
    code('''
history = Trainer(ctx.run_dir, ctx.recipe).fit(samples, train_ids, val_ids, data_info=ctx.data_info())
'''),
    md('''
## What a checkpoint holds
'''),
    code('''
state = load_checkpoint(ctx.last_checkpoint)
print("keys:", ", ".join(sorted(state)))
print(f"epoch {state['epoch']}, model {state['model_config']}, data {state['data'].get('source')}")
print(f"split: {len(state['split']['train'])} training and {len(state['split']['val'])} validation ids")
'''),
    md('''
The curves come from the checkpoint's own history, so a run that was resumed shows all its epochs:
'''),
    code('''
fig = viz.plot_history(state["history"], title=f"profile {ctx.profile}", synthetic=ctx.synthetic)
'''),
    md('''
## Resuming, shown

Colab disconnects; laptops sleep. Here is a small demo run (4 images, 2 validation images) stopped after
epoch 1, then asked for 2 epochs: it continues from epoch 1. A third run trains 2 epochs without a stop, and we
compare the weights.
'''),
    code('''
demo_dir = ctx.run_dir / "resume-demo"
shutil.rmtree(demo_dir, ignore_errors=True)
demo = dataclasses.replace(ctx.recipe, epochs=1, max_images=4, repeats=1)
Trainer(demo_dir / "stopped", demo, progress=False).fit(samples, train_ids, val_ids[:2])
print("stopped after epoch", load_checkpoint(demo_dir / "stopped" / "last.pt")["epoch"])
'''),
    code('''
demo = dataclasses.replace(demo, epochs=2)
resumed = Trainer(demo_dir / "stopped", demo, progress=False).fit(samples, train_ids, val_ids[:2])
straight = Trainer(demo_dir / "straight", demo, progress=False).fit(samples, train_ids, val_ids[:2])
a = load_checkpoint(demo_dir / "stopped" / "last.pt")["model"]
b = load_checkpoint(demo_dir / "straight" / "last.pt")["model"]
diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
print(f"resumed run: epochs {[h['epoch'] for h in resumed]}; largest weight difference from the run "
      f"without a stop: {diff:.2g}")
fig = viz.plot_history(resumed, resumed_at=[1], title="demo: stopped after epoch 1, resumed",
                       synthetic=ctx.synthetic)
'''),
    md('''
(On a GPU, non-deterministic convolution kernels can leave differences of the order of 1e-6.)

## Choosing the threshold on the validation images

The network outputs a probability per pixel. Which threshold, and which way of splitting the mask into nuclei
(connected components, or watershed seeded by the predicted contours), gives the best DSB score? We try them on
the validation images and store the choice in `best.pt`, where notebook 05, the command line and the app find it.
'''),
    code('''
chosen = calibrate(ctx.best_checkpoint, samples, val_ids)
print(f"chosen: {chosen['method']} at threshold {chosen['threshold']:.2f}, "
      f"mean validation DSB score {chosen['val_dsb_score']:.3f} (stored in {ctx.best_checkpoint.name})")
fig = viz.plot_threshold_sweep(chosen["sweep"], chosen, synthetic=ctx.synthetic)
'''),
    md('''
## In Colab

With `RUN_DIR="auto"` the run folder is on your Google Drive (`MyDrive/nucleiseg/runs/<profile>`). If the
runtime disconnects, reconnect, run the notebook again from the top: training continues from the last finished
epoch. To train longer, raise the recipe's epochs (e.g. `ctx.recipe.epochs = 150`) and run the training cell
again.

**Next:** 05_threshold_and_accuracy measures the model on the validation images.
'''),
]

# --------------------------------------------------------------------------- 05 ---
NB05 = header(
    "05_threshold_and_accuracy", "05 · Thresholds, and what accuracy really means",
    ["how the threshold turns probabilities into nuclei: the original max/10 rule, 0.5, Otsu, validation-best",
     "pixel accuracy against IoU, Dice and the DSB score, beside an all-background prediction",
     "connected components against watershed for touching nuclei",
     "an interactive threshold slider, and which images fail, and why"],
    "04_training, run with the same PROFILE, DATA and RUN_DIR (it writes RUN_DIR/best.pt).",
) + skeleton('''
from collections import Counter

import numpy as np

from nucleiseg_lib import course, viz
from nucleiseg_lib.course import setup_course
from nucleiseg_lib.inference import Predictor, evaluate_predictions, summarize_rows
from nucleiseg_lib.widgets import threshold_slider
''') + [
    md('''
## The trained model and its validation images

We measure on the checkpoint's own validation split: images the model never trained on.
'''),
    code('''
predictor = Predictor(ctx.requires("04_training", ctx.best_checkpoint))
val_ids = ctx.validation_ids(predictor.state)
samples = ctx.samples()
print(f"model from epoch {predictor.state['epoch']}; post-processing chosen on validation: "
      f"{predictor.postprocess['method']} at threshold {predictor.postprocess['threshold']:.2f}")
print(f"evaluating on {len(val_ids)} validation images")
'''),
    md('''
## Probability maps

The network gives, for every pixel, the probability that it belongs to a nucleus. We compute them once.
'''),
    code('''
probs = {i: predictor.predict_proba(np.asarray(samples[i][0], np.float32)) for i in val_ids}
sid = val_ids[0]
seg = predictor.postprocess_proba(probs[sid])
fig = viz.show_prediction(samples[sid][0], probs[sid], seg["labels"], samples[sid][1], synthetic=ctx.synthetic)
'''),
    md('''
## Four threshold rules

- **max/10**: the original project's rule, a tenth of the image's highest probability;
- **0.5**: the textbook choice;
- **Otsu**: the threshold that best separates the image's two populations of probabilities;
- **validation-best**: the threshold that gave the best DSB score on the validation images (chosen in 04).

Each is scored on every validation image, beside a prediction of background everywhere.
'''),
    code('''
rules = {"max/10 (original)": "relative", "0.5": 0.5, "Otsu": "otsu", "validation-best": "validation"}
results = {name: evaluate_predictions(predictor, samples, val_ids, probs=probs, rule=rule, progress=False)
           for name, rule in rules.items()}
summary = {name: summarize_rows(rows) for name, rows in results.items()}
summary["all background"] = summarize_rows(course.all_background_scores(samples, val_ids))
ctx.table(course.summary_table(summary, name="rule"), title="mean over the validation images")
'''),
    code('''
bg = summary["all background"]["pixel_accuracy"]
fig = viz.plot_metric_comparison({k: v for k, v in summary.items() if k != "all background"},
                                 baseline=(bg, "all background:"), title="threshold rules on validation images",
                                 synthetic=ctx.synthetic)
'''),
    md('''
Read the pixel accuracy against the dashed line: a prediction with no nucleus at all scores that much. IoU and
Dice measure the overlap of the predicted and true foreground; the **DSB score** asks whether each nucleus is
found as one object, matching at IoU thresholds 0.5 to 0.95. It is the hardest and the most honest.
'''),
    code('''
best_rule = max(summary, key=lambda k: summary[k]["dsb_score"])
print(f"best rule here by DSB score: {best_rule} ({summary[best_rule]['dsb_score']:.3f}); "
      f"max/10 gives {summary['max/10 (original)']['dsb_score']:.3f} "
      f"with a pixel accuracy of {summary['max/10 (original)']['pixel_accuracy']:.3f} "
      f"(all background: {bg:.3f})")
'''),
    md('''
## Connected components or watershed?

Thresholding gives a mask; nuclei are then its pieces. **Connected components** merge nuclei that touch.
**Watershed** grows one region per seed (the mask minus the predicted contours) and so cuts touching nuclei apart.
'''),
    code('''
methods = {m: evaluate_predictions(predictor, samples, val_ids, probs=probs, method=m, progress=False)
           for m in ("cc", "watershed")}
ctx.table(course.summary_table({m: summarize_rows(r) for m, r in methods.items()}, name="method"),
          title="instances: connected components against watershed (validation-chosen threshold)")
'''),
    code('''
n_cc = {r["id"]: r["n_pred"] for r in methods["cc"]}
n_ws = {r["id"]: r["n_pred"] for r in methods["watershed"]}
gap = max(val_ids, key=lambda i: abs(n_ws[i] - n_cc[i]))   # where the two methods disagree most
cc = predictor.postprocess_proba(probs[gap], method="cc")["labels"]
ws = predictor.postprocess_proba(probs[gap], method="watershed")["labels"]
true = samples[gap][1]
fig = viz.show_panels([samples[gap][0], true.astype(np.int32), cc, ws],
                      ["image", f"truth: {len(np.unique(true)) - 1} nuclei", f"connected components: {cc.max()}",
                       f"watershed: {ws.max()}"], synthetic=ctx.synthetic)
'''),
    md('''
## Try it yourself: the threshold slider

Move the threshold, or pick a rule; the mask, the nucleus count and the scores follow. (The slider needs a live
notebook; the cell after it drives the same app from code.)
'''),
    code('''
rows = results["validation-best"]
middle = sorted(rows, key=lambda r: r["dsb_score"])[len(rows) // 2]["id"]
app = threshold_slider(predictor, samples[middle][0], samples[middle][1], prob=probs[middle],
                       synthetic=ctx.synthetic)
app
'''),
    code('''
sweep = [dict(app.update(t)) for t in (0.1, 0.3, 0.5, 0.7, 0.9)]
ctx.table(sweep, columns=["threshold", "n_pred", "n_true", "iou", "dice", "dsb_score", "pixel_accuracy"],
          title="the same image at five thresholds")
app.update(rule="validation");
'''),
    md('''
## Predictions against the truth

The best and the median validation image (by DSB score) at the validation-chosen settings:
'''),
    code('''
ranked = sorted(rows, key=lambda r: r["dsb_score"], reverse=True)
for r in (ranked[0], ranked[len(ranked) // 2]):
    seg = predictor.postprocess_proba(probs[r["id"]])
    fig = viz.show_prediction(samples[r["id"]][0], probs[r["id"]], seg["labels"], samples[r["id"]][1],
                              metrics={"IoU": r["iou"], "DSB": r["dsb_score"]}, synthetic=ctx.synthetic)
'''),
    md('''
## The worst images, and why

The three lowest DSB scores, with their kind of image and counts. The sentence is made from the numbers: how
many training images of that kind the model saw, whether it found too few or too many nuclei, and whether the
foreground itself is wrong.
'''),
    code('''
train_kinds = Counter(course.classify_modality(samples[i][0]) for i in predictor.state["split"]["train"])
worst = ranked[::-1][:3]
for r in worst:
    r["modality"] = course.classify_modality(samples[r["id"]][0])
ctx.table(worst, columns=["id", "modality", "n_true", "n_pred", "iou", "dsb_score"], title="lowest DSB scores")
for r in worst:
    print(f"- {r['id'][:12]}: {course.failure_reason(r, r['modality'], train_kinds)}")
'''),
    code('''
r = worst[0]
seg = predictor.postprocess_proba(probs[r["id"]])
fig = viz.show_prediction(samples[r["id"]][0], probs[r["id"]], seg["labels"], samples[r["id"]][1],
                          title="worst", metrics={"IoU": r["iou"], "DSB": r["dsb_score"]}, synthetic=ctx.synthetic)
'''),
    md('''
**Summary.** Pixel accuracy says little on images that are mostly background; judge a nucleus segmentation by
IoU / Dice and by the DSB score. Pick the threshold on validation images rather than by a fixed rule, and split
touching nuclei (watershed on predicted contours) before counting them.

## The recipes on the full data

What the `cpu` recipe (and any other recipe benchmarked) achieves when trained on all of DSB2018 stage1_train, as
measured by `benchmarks/recipes.py` and stored in `benchmarks/results/` (not by this run of the notebook):
'''),
    code('''
from IPython.display import Markdown
from nucleiseg_lib.report.results import render_ablation

Markdown(render_ablation())
'''),
]

NOTEBOOKS = {
    "01_data_exploration": NB01,
    "02_mask_merging": NB02,
    "03_unet_build": NB03,
    "04_training": NB04,
    "05_threshold_and_accuracy": NB05,
}


def build(name, cells):
    """The notebook object of one notebook (no outputs, no execution counts, stable cell ids)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"provenance": [], "toc_visible": True},
    }
    for k, (kind, text) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text)
        else:
            cell = nbformat.v4.new_code_cell(text)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell["id"] = f"nb{name[:2]}-{k:02d}"
        nb.cells.append(cell)
    from notebook_skeleton import apply  # badge, setup cell, setup_course cell, metadata: from pyproject's URL
    apply(nb, name)
    nbformat.validate(nb)
    return nb


def render(name):
    """The text of one notebook file."""
    return nbformat.writes(build(name, NOTEBOOKS[name])) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report notebooks that differ; write nothing")
    a = ap.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = NB_DIR / f"{name}.ipynb"
        text = render(name)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not a.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if a.check and stale:
        print("out of date: " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
