"""The skeleton cells of the course notebooks, rendered from the package metadata, and kept in sync.

    python tools/notebook_skeleton.py sync            # rewrite the skeleton cells of notebooks/*.ipynb and README.md
    python tools/notebook_skeleton.py sync --check    # exit 1 when one of them differs (CI, tests)

The repository's public address lives in one place, ``[project.urls] Repository`` in pyproject.toml; from it:

* the **badge cell** (markdown holding ``colab-badge.svg``): the "Open in Colab" badge and one line on the
  runtime the notebook needs (a GPU only for the notebooks that train);
* the **setup cell** (code starting with ``# Colab only``): installs the library from the repository beside
  Colab's own torch, torchvision, numpy and ipywidgets (pinned by a constraint file, checked afterwards), and says
  in one sentence what to do when the install fails;
* the **setup_course cell** (code starting with ``ctx = setup_course(``): what the notebook needs,
  ``uses="data"`` (01-03), ``"train"`` (04) or ``"model"`` (05);
* the **notebook metadata**: the GPU runtime (``accelerator`` and Colab's ``gpuType``) only on the notebooks
  that train (:data:`TRAINS`);
* the README block between ``<!-- repo:start -->`` and ``<!-- repo:end -->``.

Lesson cells are never touched.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
#: Notebooks that train, and so ask Colab for a GPU runtime.
TRAINS = {"04_training"}
#: What each notebook's setup_course needs (06 has no setup_course: its app finds the model itself).
USES = {"01_data_exploration": "data", "02_mask_merging": "data", "03_unet_build": "data", "04_training": "train",
        "05_threshold_and_accuracy": "model"}
BADGE_MARK = "colab-badge.svg"
SETUP_MARK = "# Colab only"
OLD_SETUP_MARK = "# In Google Colab only"
COURSE_MARK = "ctx = setup_course("
README_START, README_END = "<!-- repo:start -->", "<!-- repo:end -->"


def repo_url():
    """``[project.urls] Repository`` of pyproject.toml, without a trailing slash or ``.git``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
        url = tomllib.loads(text)["project"]["urls"]["Repository"]
    except ImportError:  # Python 3.10
        url = re.search(r'Repository\s*=\s*"([^"]+)"', text).group(1)
    return url.rstrip("/").removesuffix(".git")


def colab_url(name, branch="main"):
    """Colab's address of a notebook of this repository (GitHub only)."""
    path = repo_url().split("github.com/", 1)[-1]
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{name}.ipynb"


def badge_markdown(name):
    """The badge cell of notebook `name`."""
    if name in TRAINS:
        runtime = ("In Colab, pick a GPU first: *Runtime > Change runtime type > T4 GPU*. The run is kept on your "
                   "Google Drive (`MyDrive/nucleiseg/runs/<recipe>`), so a disconnect loses at most one epoch.")
    else:
        runtime = ("No GPU needed: the default CPU runtime will do. In Colab the data and the mask cache are kept on "
                   "your Google Drive (`MyDrive/nucleiseg`), downloaded once for every notebook.")
    return f"[![Open In Colab](https://colab.research.google.com/assets/{BADGE_MARK})]({colab_url(name)})\n\n{runtime}"


def setup_cell_source():
    """The setup cell: the same in every notebook."""
    return f'''{SETUP_MARK}: install the course library beside Colab's own torch, torchvision, numpy and ipywidgets
# (a constraint file keeps them as they are; checked afterwards). Elsewhere this cell does nothing.
import os
import sys

if "google.colab" in sys.modules:
    import importlib
    import subprocess
    import tempfile
    from importlib.metadata import PackageNotFoundError, version

    URL = os.environ.get("NUCLEISEG_INSTALL_URL", "git+{repo_url()}")

    def installed(names=("torch", "torchvision", "numpy", "ipywidgets")):
        found = {{}}
        for name in names:
            try:
                found[name] = version(name)
            except PackageNotFoundError:
                pass
        return found

    before = installed()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write("".join(f"{{name}}=={{v}}\\n" for name, v in before.items()))
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", pins.name, URL],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        print(pip.stdout[-2000:], pip.stderr[-2000:], sep="\\n")
        raise SystemExit(f"Installing the course library from {{URL}} failed (pip's message is above): check that "
                         f"this runtime is online and that {repo_url()} opens in your browser, then choose "
                         f"Runtime > Restart session and run this cell again.")
    replaced = {{name: (v, installed().get(name)) for name, v in before.items() if installed().get(name) != v}}
    if replaced:
        raise SystemExit(f"pip replaced Colab's own {{replaced}}; choose Runtime > Disconnect and delete runtime, "
                         f"then run this notebook again from the top.")
    importlib.invalidate_caches()
    from google.colab import output
    output.enable_custom_widget_manager()  # progress bars, the slider and the upload button'''


def setup_course_source(uses):
    """The setup_course cell of a notebook that `uses` data, trains, or uses a model."""
    return {"data": "ctx = setup_course(PROFILE, DATA, uses=\"data\")  # data only: no run folder",
            "train": "ctx = setup_course(PROFILE, DATA, RUN_DIR, uses=\"train\")  # trains into RUN_DIR",
            "model": "ctx = setup_course(PROFILE, DATA, RUN_DIR, uses=\"model\")  # the run trained last, "
                     "else the pretrained model"}[uses]


def notebook_metadata(trains, metadata=None):
    """Notebook metadata: `metadata` (or a fresh one) with the GPU runtime only when the notebook `trains`."""
    meta = dict(metadata or {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                             "language_info": {"name": "python"}})
    colab = dict(meta.get("colab") or {"provenance": [], "toc_visible": True})
    if trains:
        meta["accelerator"] = "GPU"
        colab["gpuType"] = "T4"
    else:
        meta.pop("accelerator", None)
        colab.pop("gpuType", None)
    meta["colab"] = colab
    return meta


def apply(nb, name):
    """Rewrite the skeleton cells and metadata of one notebook (nbformat object or dict) in place; return it."""
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown" and BADGE_MARK in src:
            # the notebook's own paragraphs after the badge stay; the runtime line is rewritten
            keep = [p for p in src.split("\n\n")[1:] if not p.startswith(("No GPU needed", "In Colab, pick a GPU"))]
            new = "\n\n".join([badge_markdown(name), *keep])
        elif cell["cell_type"] == "code" and src.startswith((SETUP_MARK, OLD_SETUP_MARK)):
            new = setup_cell_source()
        elif cell["cell_type"] == "code" and src.startswith(COURSE_MARK) and name in USES:
            new = setup_course_source(USES[name])
        else:
            continue
        cell["source"] = new
    nb["metadata"] = notebook_metadata(name in TRAINS, nb.get("metadata"))
    return nb


def readme_block():
    """The README block that comes from the repository address."""
    url = repo_url()
    return "\n".join([README_START,
                      f"Repository: <{url}>. Install the library alone: `pip install git+{url}`.",
                      "", "Open in Colab: " + " · ".join(f"[{n[:2]}]({colab_url(n)})" for n in
                                                         sorted(list(USES) + ["06_segment_your_image"])),
                      README_END])


def sync(check=False, nb_dir=NB_DIR, readme=README):
    """Rewrite (or with `check`, compare) the skeleton of every notebook and the README block; return stale paths."""
    import nbformat
    stale = []
    for path in sorted(Path(nb_dir).glob("[0-9][0-9]_*.ipynb")):
        text = path.read_text(encoding="utf-8")
        nb = apply(nbformat.reads(text, as_version=4), path.stem)
        new = nbformat.writes(nb) + "\n"
        if new != text:
            stale.append(path)
            if not check:
                _write(path, new)
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if README_START in text and README_END in text:
        head, rest = text.split(README_START, 1)
        new = head + readme_block() + rest.split(README_END, 1)[1]
        if new != text:
            stale.append(readme)
            if not check:
                _write(readme, new)
    else:
        stale.append(readme)
    return stale


def _write(path, text):
    import os
    import tempfile
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["sync"])
    ap.add_argument("--check", action="store_true", help="report what differs; write nothing")
    a = ap.parse_args(argv)
    stale = sync(check=a.check)
    for p in stale:
        print(("out of date: " if a.check else "wrote ") + str(p.relative_to(ROOT)), file=sys.stderr if a.check else
              sys.stdout)
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
