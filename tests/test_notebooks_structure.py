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
#: Tags of the skeleton cells, in the order they open every course notebook (``parameters`` is papermill's own).
SKELETON_TAGS = ("skeleton-title", "skeleton-badge", "skeleton-setup", "skeleton-imports", "skeleton-parameters-note",
                 "skeleton-parameters", "skeleton-setup-course")
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


def _clean_tool():
    spec = importlib.util.spec_from_file_location("clean_notebooks", ROOT / "tools" / "clean_notebooks.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.mark.parametrize("path", sorted(NB_DIR.glob("*.ipynb")), ids=lambda p: p.name)
def test_stored_clean(path):
    """The committed notebook is the source: stored exactly as tools/clean_notebooks.py writes it."""
    assert path.read_text(encoding="utf-8") == _clean_tool().render(path), \
        f"{path.name} is not stored clean: run `python tools/clean_notebooks.py` before committing"


def test_no_second_source():
    """One source per notebook: the .ipynb itself (the old generator of string literals is gone)."""
    assert not (ROOT / "tools" / "make_notebooks.py").exists()
    assert sorted(p.stem for p in NB_DIR.glob("0[1-5]_*.ipynb")) == COURSE


@pytest.mark.parametrize("name", COURSE)
def test_skeleton_cells_are_tagged_in_order(name):
    """The shared cells carry tags so that tools (tools/notebook_skeleton.py) can find and rewrite them."""
    cells = load(name).cells
    tags = [next((t for t in c.metadata.get("tags", []) if t.startswith("skeleton-")), None) for c in cells]
    assert tags[:len(SKELETON_TAGS)] == list(SKELETON_TAGS), f"{name}: the notebook must open with {SKELETON_TAGS}"
    assert tags.count(None) == len(tags) - len(SKELETON_TAGS), f"{name}: a skeleton tag on a lesson cell"


# the badge (runtime line: GPU only for 04) and setup_course (uses="data"/"train"/"model") differ by design;
# tools/notebook_skeleton.py renders them and `sync --check` (tests/test_course.py) keeps them as rendered
@pytest.mark.parametrize("tag", [t for t in SKELETON_TAGS
                                 if t not in ("skeleton-title", "skeleton-imports", "skeleton-badge",
                                              "skeleton-setup-course")])
def test_skeleton_cells_agree_across_notebooks(tag):
    """The setup and parameters cells are the same in every notebook."""
    texts = {}
    for name in COURSE:
        cell = next(c for c in load(name).cells if tag in c.metadata.get("tags", []))
        texts[name] = cell.source.replace(name, "<name>")
    assert len(set(texts.values())) == 1, f"the {tag!r} cells differ: " + ", ".join(
        n for n, t in texts.items() if t != texts[COURSE[0]])


@pytest.mark.parametrize("name", COURSE)
def test_ends_with_exercises_and_hidden_solutions(name):
    """Two or three exercises at the end; each solution is a code cell (CI runs it) hidden by default."""
    cells = load(name).cells
    heading = max(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises"))
    exercises = [c for c in cells[heading:] if "exercise" in c.metadata.get("tags", [])]
    solutions = [c for c in cells[heading:] if "solution" in c.metadata.get("tags", [])]
    assert 2 <= len(exercises) <= 3 and len(solutions) >= len(exercises)
    for c in solutions:
        assert c.cell_type == "code" and c.metadata.get("jupyter", {}).get("source_hidden") is True
        assert c.metadata.get("cellView") == "form" and c.source.startswith("# @title Solution"), \
            "Colab hides a cell's code only behind a form title"


@pytest.mark.parametrize("name", COURSE)
def test_cells_are_short(name):
    """Readable top to bottom in a browser: no code cell over 15 lines."""
    for i, cell in enumerate(load(name).cells):
        if cell.cell_type == "code" and "skeleton-setup" not in cell.metadata.get("tags", []):
            assert len(cell.source.splitlines()) <= 15, f"{name} cell {i} has {len(cell.source.splitlines())} lines"


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
