"""The notebooks' shape: stored clean, one skeleton, one papermill parameters cell; dependency lists agree."""

import ast
import importlib.util
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
COURSE = ["01_data_exploration", "02_mask_merging", "03_unet_build", "04_training", "05_threshold_and_accuracy"]
BADGE = "https://colab.research.google.com/github/nucleiseg/nucleiseg/blob/main/notebooks/{}.ipynb"
PARAMETERS = {
    "PROFILE": ("NUCLEISEG_PROFILE", "auto"),
    "DATA": ("NUCLEISEG_DATA_SPEC", "auto"),
    "RUN_DIR": ("NUCLEISEG_RUN_DIR", "auto"),
}


def load(name):
    return nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("path", sorted(NB_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_stored_without_outputs_or_execution_counts(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


@pytest.mark.parametrize("name", COURSE)
def test_skeleton(name):
    cells = load(name).cells
    title, badge, setup = cells[0], cells[1], cells[2]
    assert title.cell_type == "markdown" and title.source.startswith(f"# {name[:2]} ")
    assert "**What you will learn**" in title.source and "**Needs:**" in title.source
    assert badge.cell_type == "markdown" and BADGE.format(name) in badge.source
    assert setup.cell_type == "code" and 'if "google.colab" in sys.modules:' in setup.source
    assert "git+https://github.com/nucleiseg/nucleiseg" in setup.source
    code = re.sub(r"#[^\n]*", "", setup.source)  # comments may say "torch"; the code may not, but to pin it:
    code = re.sub(r"def installed\(names=\([^)]*\)\)", "", code)
    assert "torch" not in code and not re.search(r"--upgrade|\"-U\"|--force-reinstall", code), \
        "the setup cell must not (re)install torch or upgrade Colab's packages"

    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    p = tagged[0]
    assert cells[p].cell_type == "code"
    before = "\n".join(c.source for c in cells[:p] if c.cell_type == "code")
    assert re.search(r"^import os$", before, re.M), "`import os` must come before the parameters cell"
    after = [c for c in cells[p + 1:] if c.cell_type == "code"][0]
    assert after.source.strip().startswith("ctx = setup_course(PROFILE, DATA")


@pytest.mark.parametrize("name", COURSE)
def test_parameters_cell_reads_the_environment(name):
    cell = next(c for c in load(name).cells if "parameters" in c.metadata.get("tags", []))
    found = {}
    for node in ast.parse(cell.source).body:
        assert isinstance(node, ast.Assign), "the parameters cell holds assignments only"
        target = node.targets[0].id
        call = node.value
        if target in PARAMETERS:
            assert ast.unparse(call.func) == "os.environ.get"
            found[target] = tuple(a.value for a in call.args)
    assert found == PARAMETERS


@pytest.mark.parametrize("name", COURSE)
def test_code_cells_are_plain_python(name):
    """No IPython magics: the cells also run in papermill, as scripts, and under linters."""
    for i, cell in enumerate(load(name).cells):
        if cell.cell_type == "code":
            try:
                ast.parse(cell.source)
            except SyntaxError as exc:
                pytest.fail(f"{name} cell {i}: {exc}")


def test_notebooks_match_their_generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert list(gen.NOTEBOOKS) == COURSE
    stale = [n for n in COURSE if (NB_DIR / f"{n}.ipynb").read_text(encoding="utf-8") != gen.render(n)]
    assert not stale, f"{stale} differ from tools/make_notebooks.py: edit it and run `python tools/make_notebooks.py`"


def _name(requirement):
    """'torch>=2.0' -> 'torch' (normalised as pip does)."""
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_dependencies_of_pyproject():
    env_path = ROOT / "environment.yml"
    if not env_path.exists():
        pytest.skip("environment.yml does not exist yet (it is written by another part of the project)")
    yaml = pytest.importorskip("yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        wanted |= set(extra)
    env = yaml.safe_load(env_path.read_text())
    pip = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
    conda = [d for d in env["dependencies"] if isinstance(d, str) and _name(d) not in ("python", "pip")]
    listed = [d for d in pip + conda if not d.startswith("-")]  # "-e ." installs the project itself
    assert sorted(map(_name, listed)) == sorted(set(map(_name, listed))), "a dependency is listed twice"
    assert {_name(d) for d in listed} == {_name(d) for d in wanted}
    # same version ranges where environment.yml gives one in pip form
    ranges = {_name(d): d.replace(" ", "") for d in wanted}
    for d in pip:
        if not d.startswith("-"):
            assert d.replace(" ", "") == ranges[_name(d)], f"{d} in environment.yml, {ranges[_name(d)]} in pyproject"
