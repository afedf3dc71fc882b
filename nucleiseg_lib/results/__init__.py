"""The benchmark results the course shows (notebook 05's last table, the report), shipped with the package.

Copies of ``benchmarks/results/<recipe>.json`` (scores of each recipe's best.pt on its validation split) and
``ablation.md``, written by ``python benchmarks/recipes.py table``; a test checks that they match the originals.
An installed package (Colab) has no ``benchmarks/`` folder, so the course reads these.
"""

from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def sync(source, dest=FOLDER):
    """Copy the result files of `source` (``benchmarks/results``) that the course shows into `dest`; return their names.

    Evaluation results (``*.json`` with ``sets``) and ``ablation.md``; training logs stay in the repository.
    Written atomically; stale copies are removed.
    """
    import json
    import os
    import tempfile
    source, dest = Path(source), Path(dest)
    wanted = {}
    for path in sorted(source.glob("*.json")):
        if "sets" in json.loads(path.read_text()):
            wanted[path.name] = path.read_bytes()
    if (source / "ablation.md").is_file():
        wanted["ablation.md"] = (source / "ablation.md").read_bytes()
    for old in list(dest.glob("*.json")) + list(dest.glob("*.md")):
        if old.name not in wanted:
            old.unlink()
    for name, data in wanted.items():
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest / name)
    return sorted(wanted)
