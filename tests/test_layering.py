"""The README's library table is the layering: a module imports only modules of its own layer or below it."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nucleiseg_lib"


def readme_layers(text):
    """{module: layer index, 0 = lowest} from the README's table under "The library ... low to high"."""
    section = text.split("## The library (`nucleiseg_lib`), low to high", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    return {name: i for i, row in enumerate(rows) for name in re.findall(r"`([a-z_.]+)`", row.split("|")[2])}


def layer_of(module, layers):
    """The layer of a module: its own entry or its nearest listed parent's; for a package listed only through its
    modules (``data``: ``data.io``, ...), the highest of theirs (its ``__init__`` re-exports them)."""
    parts = module.split(".")
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in layers:
            return layers[".".join(parts[:k])]
    inside = [v for k, v in layers.items() if k.startswith(module + ".")]
    return max(inside) if inside else None


def relative_imports(path, module):
    """(target module, line) of each ``from .x import y`` in a file, at any depth (lazy imports included)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            for name in names:
                yield ".".join(base + [name]), node.lineno


def module_name(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports(layers):
    bad, unlisted = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        if module in ("", "__main__"):
            continue
        own = layer_of(module, layers)
        if own is None:
            unlisted.append(module)
            continue
        for target, line in relative_imports(path, module):
            if target == "__version__":  # the package's own version, from its root
                continue
            theirs = layer_of(target, layers)
            if theirs is None:
                unlisted.append(target)
            elif theirs > own:
                bad.append(f"{path.relative_to(REPO)}:{line} ({module}) imports {target}, a higher layer")
    return bad, unlisted


def test_every_module_is_in_the_readme_table_and_imports_only_downwards():
    bad, unlisted = upward_imports(readme_layers((REPO / "README.md").read_text()))
    assert not unlisted, f"modules missing from the README's library table: {sorted(set(unlisted))}"
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_upward_import(tmp_path):
    layers = readme_layers((REPO / "README.md").read_text())
    assert layers["metrics"] < layers["model"] < layers["inference.predict"] < layers["course"]
    # a lazy import inside a function counts: metrics importing the model would be caught
    path = tmp_path / "metrics.py"
    path.write_text("def f():\n    from .model import UNet\n")
    targets = list(relative_imports(path, "metrics"))
    assert targets == [("model", 2)]
    assert layer_of("model", layers) > layer_of("metrics", layers)


@pytest.mark.parametrize("module,expected", [("data", "data.io"), ("inference.predict", "inference.predict"),
                                             ("viz.charts", "viz"), ("report.pdf", "report")])
def test_layer_of_packages_and_their_modules(module, expected):
    layers = readme_layers((REPO / "README.md").read_text())
    assert layer_of(module, layers) == layers[expected]
