"""Store the course notebooks clean: the committed .ipynb files are the source that instructors edit in Jupyter.

    python tools/clean_notebooks.py            # strip outputs, execution counts and editor metadata in place
    python tools/clean_notebooks.py --check    # exit 1 if a notebook is not stored clean (what the tests check)

Edit a notebook in Jupyter (or Colab), run it, then run this before committing. Kept: the cells, their ids, and
the cell metadata that means something to the course (see :data:`KEEP_CELL_METADATA`): ``tags`` (``parameters``
for papermill, ``skeleton-*`` for the shared setup cells, ``exercise``/``solution``), ``jupyter.source_hidden``
and Colab's ``cellView`` (solutions hidden until a student opens them). Everything else (outputs, execution
counts, widths, scroll state, execution timings) is dropped.
"""

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOK_METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}
#: Cell metadata keys a clean notebook keeps (``jupyter`` only with ``source_hidden``).
KEEP_CELL_METADATA = ("tags", "jupyter", "cellView")


def clean(nb):
    """The notebook `nb` without outputs, execution counts or editor metadata (modified in place and returned)."""
    nb.metadata = {**{k: v for k, v in nb.metadata.items() if k in ("accelerator", "colab")}, **NOTEBOOK_METADATA}
    if "colab" in nb.metadata:  # keep the GPU type that tools/notebook_skeleton.py sets on the training notebook
        gpu = {"gpuType": nb.metadata["colab"]["gpuType"]} if "gpuType" in nb.metadata["colab"] else {}
        nb.metadata["colab"] = {**gpu, "provenance": [], "toc_visible": True}
    for cell in nb.cells:
        meta = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if "jupyter" in meta:
            meta["jupyter"] = {k: v for k, v in meta["jupyter"].items() if k == "source_hidden"}
            if not meta["jupyter"]:
                del meta["jupyter"]
        cell.metadata = nbformat.NotebookNode(meta)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "attachments" in cell and not cell.attachments:
            del cell["attachments"]
    return nb


def render(path):
    """The text of the notebook at `path`, stored clean."""
    nb = clean(nbformat.read(path, as_version=4))
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report notebooks that are not stored clean; write nothing")
    ap.add_argument("paths", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    a = ap.parse_args(argv)
    stale = []
    for path in a.paths or sorted(NB_DIR.glob("*.ipynb")):
        text = render(path)
        if path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not a.check:
            path.write_text(text, encoding="utf-8")
            print(f"cleaned {path}")
    if a.check and stale:
        print("not stored clean (run python tools/clean_notebooks.py): " + ", ".join(map(str, stale)),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
