"""The batch runner and its PDF report (nucleiseg_lib.report).

The PDF tests need a Chromium binary (``.ci/install-system.sh`` installs it) and are
skipped without one. Everything is written under pytest's tmp paths.
"""

import json
import subprocess
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("papermill")
pytest.importorskip("nbconvert")
pypdf = pytest.importorskip("pypdf")

from nucleiseg_lib.report import NotebookFailed, ReportError, have_chromium, list_notebooks, run_course  # noqa: E402
from nucleiseg_lib.report.pdf import (collapse_carriage_returns, fmt_duration, printable_notebook,  # noqa: E402
                                      render_math, widget_outputs)

REPO = Path(__file__).resolve().parents[1]
COURSE = REPO / "notebooks"
needs_chromium = pytest.mark.skipif(not have_chromium(), reason="no Chromium/Chrome to print the PDF "
                                    "(run .ci/install-system.sh)")

PARAMS = ('import os\nPROFILE = os.environ.get("NUCLEISEG_PROFILE", "auto")\n'
          'DATA = os.environ.get("NUCLEISEG_DATA_SPEC", "auto")\nRUN_DIR = "runs/auto"')


def _nb(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = cells
    return nb


def _params():
    return nbformat.v4.new_code_cell(PARAMS, metadata={"tags": ["parameters"]})


def _md(text):
    return nbformat.v4.new_markdown_cell(text)


def _code(text, **meta):
    return nbformat.v4.new_code_cell(text, metadata=meta)


def write_small_course(folder):
    """Two quick notebooks: narrative, math, a figure, a text table, a widget; a second figure."""
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(_nb([
        _md("# Looking at the data\n\nThe Dice score is $D = \\frac{2|A\\cap B|}{|A|+|B|}$.\n\n"
            "## A figure\n\nA random image and a curve."),
        _params(),
        _code("import matplotlib.pyplot as plt\nimport numpy as np\nprint('profile', PROFILE, 'data', DATA)"),
        _code("fig, ax = plt.subplots(1, 2, figsize=(6, 2.5))\n"
              "ax[0].imshow(np.random.default_rng(0).random((16, 16)))\nax[1].plot([0, 1, 4, 9])\nplt.show()"),
        _md("## A table"),
        _code("print(f\"{'image':>8}{'iou':>8}{'dice':>8}\")\nprint(f\"{'a':>8}{0.71:>8.2f}{0.83:>8.2f}\")"),
        _code("import ipywidgets as w\nw.IntSlider(value=3, description='k')"),
    ]), folder / "01_look.ipynb")
    nbformat.write(_nb([
        _md("# Training\n\n## Loss"),
        _params(),
        _code("import matplotlib.pyplot as plt\nplt.figure(figsize=(4, 2.5))\nplt.plot([3, 2, 1.5, 1.2])\nplt.show()\n"
              "from pathlib import Path\nPath(RUN_DIR).mkdir(parents=True, exist_ok=True)\nprint('run dir', RUN_DIR)"),
    ]), folder / "02_train.ipynb")
    return folder


def pdf_text(path):
    return "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages)


def check_pdf(result, profile, source, min_pages=3):
    pdf = Path(result["pdf"])
    assert pdf.is_file() and pdf.read_bytes()[:5] == b"%PDF-"
    assert result["pages"] >= min_pages and len(pypdf.PdfReader(str(pdf)).pages) == result["pages"]
    assert result["images"] >= 1, "no figure embedded"
    text = pdf_text(pdf)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    if commit:
        assert commit[:10] in text
    for needle in ("torch", profile, source, "Contents"):
        assert needle in text, f"{needle!r} not in the PDF text"
    if source == "synthetic":
        assert "SYNTHETIC DATA" in text
    return text


# ------------------------------------------------------------------ fast unit tests

def test_list_notebooks_order_and_selection(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "10_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in list_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    assert [p.name for p in list_notebooks(tmp_path, ["10", "01_a.ipynb"])] == ["01_a.ipynb", "10_c.ipynb"]
    with pytest.raises(ReportError, match="99_x"):
        list_notebooks(tmp_path, ["99_x"])
    with pytest.raises(ReportError, match="no course notebooks"):
        list_notebooks(tmp_path / "empty")


def test_printable_notebook_streams_widgets_and_tags():
    nb = _nb([_params(), _code("x", tags=["remove-cell"]), _code("print(1)")])
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="epoch 1\r"),
                           nbformat.v4.new_output("stream", name="stdout", text="epoch 2\ndone\n"),
                           nbformat.v4.new_output("display_data", data={
                               "application/vnd.jupyter.widget-view+json": {"model_id": "m"},
                               "text/plain": "IntSlider(value=3)"})]
    out, _ = printable_notebook(nb)
    assert len(out.cells) == 1  # the parameters cell has no output, remove-cell is gone
    outputs = out.cells[0].outputs
    assert outputs[0].text == "epoch 2\ndone\n"
    assert "open the notebook to use it" in outputs[1].data["text/html"]
    assert collapse_carriage_returns("10%\r50%\r100%\nok") == "100%\nok"


def test_widget_state_becomes_static_output():
    state = {"box": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_s", "IPY_MODEL_o"]}},
             "s": {"model_name": "FloatSliderModel", "state": {"description": "threshold", "value": 0.5}},
             "o": {"model_name": "OutputModel", "state": {"outputs": [
                 {"output_type": "stream", "name": "stdout", "text": "shown\n"}]}}}
    outs = widget_outputs("box", state)
    assert "threshold = 0.5" in outs[0].data["text/html"] and "open the notebook" in outs[0].data["text/html"]
    assert outs[1].text == "shown\n"


def test_math_and_durations():
    html = render_math("cost $5 and $10; `$code$`; inline $x_i^2$ and $$\\frac{a}{b}$$")
    assert "cost $5 and $10" in html and "`$code$`" in html
    assert html.count('class="math') == 2
    assert "<code class=\"tex\">" in render_math("$\\unknowncommand{x}$")
    assert fmt_duration(5.04) == "5.0 s" and fmt_duration(125) == "2 min 05 s" and fmt_duration(7380) == "2 h 03 min"


# ------------------------------------------------------------------ running notebooks

@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    if not have_chromium():
        pytest.skip("no Chromium/Chrome to print the PDF (run .ci/install-system.sh)")
    base = tmp_path_factory.mktemp("report")
    folder = write_small_course(base / "notebooks")
    out = base / "out"
    result = run_course(profile="smoke", data="synthetic", out=out, notebooks_dir=folder, progress=False,
                        log=lambda *a: None)
    return result, out


@pytest.mark.slow
@needs_chromium
def test_small_report_pdf(small_report):
    result, out = small_report
    text = check_pdf(result, "smoke", "synthetic")
    assert "Looking at the data" in text and "Training" in text
    assert "open the notebook to use it" in text  # the IntSlider
    assert "0.71" in text  # the text table
    assert Path(result["html"]).is_file()


@pytest.mark.slow
@needs_chromium
def test_small_report_files(small_report):
    result, out = small_report
    assert sorted(p.name for p in (out / "executed").glob("*.ipynb")) == ["01_look.ipynb", "02_train.ipynb"]
    executed = nbformat.read(out / "executed" / "01_look.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "PROFILE = \"smoke\"" in injected[0].source
    assert (out / "run").is_dir()  # RUN_DIR = <out>/run
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "complete" and prov["data"]["source"] == "synthetic"
    assert prov["profile"]["resolved"] == "smoke" and prov["versions"]["torch"]
    assert prov["parameters"]["RUN_DIR"] == str(out / "run") and len(prov["data"]["hash"]) == 16
    assert prov["pdf"]["pages"] == result["pages"]
    tim = json.loads((out / "timings.json").read_text())
    assert tim["status"] == "complete" and [n["name"] for n in tim["notebooks"]] == ["01_look.ipynb", "02_train.ipynb"]
    assert all(n["wall_s"] > 0 and n["status"] == "ok" for n in tim["notebooks"])
    assert tim["pdf_s"] > 0 and tim["total_s"] >= tim["notebooks_s"]


@pytest.mark.slow
def test_failing_notebook_stops_the_run(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(_nb([_md("# fine"), _params(), _code("1 / 0", tags=["raises-exception"]),
                        _code("print('an expected error does not stop the run')")]), folder / "01_fine.ipynb")
    nbformat.write(_nb([_md("# broken"), _params(), _code("y = 2"),
                        _code("def train(n):\n    raise ValueError(f'bad epochs {n}')\ntrain(3)"),
                        _code("print('never')")]), folder / "02_broken.ipynb")
    nbformat.write(_nb([_code("print('must not run')")]), folder / "03_after.ipynb")
    out = tmp_path / "out"
    monkeypatch.setenv("NUCLEISEG_NOTEBOOKS_DIR", str(folder))
    from nucleiseg_lib.cli import main
    rc = main(["report", "--profile", "smoke", "--data", "synthetic", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "notebook 02_broken.ipynb failed in cell 4" in err
    assert "ValueError: bad epochs 3" in err and "train(n)" in err and "03_after.ipynb" in err
    assert sorted(p.name for p in (out / "executed").glob("*.ipynb")) == ["01_fine.ipynb", "02_broken.ipynb"]
    assert not (out / "nucleiseg-report.pdf").exists()
    tim = json.loads((out / "timings.json").read_text())
    assert tim["status"] == "failed" and [n["status"] for n in tim["notebooks"]] == ["ok", "failed"]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["failure"]["cell"] == 4 and prov["failure"]["not_run"] == ["03_after.ipynb"]
    with pytest.raises(NotebookFailed) as info:  # the same through the API, with its attributes
        run_course(profile="smoke", data="synthetic", out=out, notebooks=["02"], notebooks_dir=folder, pdf=False,
                   progress=False, log=lambda *a: None)
    assert (info.value.notebook, info.value.cell, info.value.ename) == ("02_broken.ipynb", 4, "ValueError")


@pytest.mark.slow
@needs_chromium
def test_course_smoke_report(tmp_path):
    """The real course notebooks, smoke profile, synthetic data."""
    found = sorted(COURSE.glob("0[1-5]_*.ipynb"))
    if len(found) < 5:
        pytest.skip(f"the 5 course notebooks 01..05 are not all in {COURSE} yet ({len(found)} found)")
    result = run_course(profile="smoke", data="synthetic", out=tmp_path / "out", notebooks_dir=COURSE,
                        progress=False, log=lambda *a: None)
    text = check_pdf(result, "smoke", "synthetic", min_pages=5)
    # the results page (report/summary.py) comes first, then every notebook
    assert len(result["executed"]) == len(list_notebooks(COURSE)) + 1
    assert "Appendix" in text


def test_ablation_table_names_the_final_recipe_not_the_last_run(tmp_path):
    from nucleiseg_lib.report.results import final_result, render_ablation
    from nucleiseg_lib.training import get_recipe

    def result(name, finished, **config):
        variant = dict(name="validation-chosen threshold, connected components",
                       overall=dict(dsb_score=0.5, ap50=0.6, iou=0.7, pixel_accuracy=0.9, n_pred=3, n_true=4),
                       by_kind={})
        return dict(name=name, epochs=2, config={**get_recipe("cpu").to_dict(), **config},
                    postprocess=dict(threshold=0.5, method="cc"), train=dict(step=name, finished=finished, epochs=2,
                                                                            train_seconds_total=60),
                    sets=dict(val=dict(n=1, n_by_kind={}, all_background_pixel_accuracy=0.8, variants=[variant])))
    runs = [result("old", 1, contour_width=1), result("recipe", 2), result("tried", 3, balance="experiments"),
            result("longer", 4, epochs=13)]                    # more epochs than the recipe's: a step, not the recipe
    assert final_result(runs)["name"] == "recipe"
    ensemble = result("ensemble", 5)
    ensemble["train"]["ensemble_of"] = ["recipe", "recipe-seed1"]  # the recipe's config, but three runs' weights
    assert final_result([*runs, ensemble])["name"] == "recipe"
    finer = result("finer", 6)                                 # the recipe's weights, a seed split calibrate
    finer["postprocess"] = dict(threshold=0.5, method="watershed", seed_split_size=0.05)   # does not offer
    assert final_result([*runs, finer])["name"] == "recipe"
    offered = result("offered", 7)
    offered["postprocess"] = dict(threshold=0.5, method="watershed", seed_split_size=0.1, seed_min_fraction=0.3)
    assert final_result([*runs, finer, offered])["name"] == "offered"
    assert final_result(runs[:1])["name"] == "old"           # no current recipe among them: the last one
    for r in runs:
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    md = render_ablation(tmp_path)
    assert "(`recipe`) **= the recipe**" in md and "Post-processing of the final recipe (`recipe`)" in md
    assert md.index("(`recipe`)") < md.index("(`tried`)")     # rows stay in the order they were trained


def test_gpu_runs_get_a_table_of_their_own_and_are_never_the_final_recipe(tmp_path):
    from nucleiseg_lib.report.results import final_result, on_gpu, render_ablation
    from nucleiseg_lib.training import get_recipe
    variant = dict(name="validation-chosen threshold, watershed on contours",
                   overall=dict(dsb_score=0.5, ap50=0.6, iou=0.7, pixel_accuracy=0.9, n_pred=3, n_true=4),
                   by_kind={"stained": dict(dsb_score=0.25, n_pred=5, n_true=4)})
    sets = dict(val=dict(n=1, n_by_kind={}, all_background_pixel_accuracy=0.8, variants=[variant]),
                test=dict(n=1, n_by_kind={}, all_background_pixel_accuracy=0.8, variants=[variant]))

    def result(name, recipe, finished, **train):
        return dict(name=name, epochs=3, config=get_recipe(recipe).to_dict(), sets=sets,
                    postprocess=dict(threshold=0.5, method="watershed"),
                    train=dict(step=name, finished=finished, epochs=4, train_seconds_total=90, **train))
    gpu = dict(device="NVIDIA H200", median_epoch_seconds=2.04, peak_gpu_memory_gib=1.5)
    runs = [result("here", "cpu", 1), result("there", "gpu", 2, **gpu),
            result("longer", "gpu", 3, **{**gpu, "peak_gpu_memory_gib": None})]
    runs[2]["config"]["epochs"] = 100
    assert [on_gpu(r) for r in runs] == [False, True, True]
    assert final_result(runs)["name"] == "here"              # trained later on a GPU, still not the final recipe
    assert final_result(runs[1:])["name"] == "there"         # only GPU runs: the current recipe among them
    for r in runs:
        (tmp_path / f"{r['name']}.json").write_text(json.dumps(r))
    md = render_ablation(tmp_path)
    main, gpu_table = md.split("On a GPU machine")
    assert "(`here`) **= the recipe**" in main and "(`there`)" not in main
    assert ("(`there`) **= the `gpu` recipe** | NVIDIA H200 | best epoch 3 of 4 | 2.0 s | 1.5 min | 1.50 GiB | 0.500 "
            "| 0.500 | — | 0.250 (5/4) |") in gpu_table
    assert "(`longer`) | NVIDIA H200" in gpu_table and "| — |" in gpu_table   # not the recipe; no memory figure
