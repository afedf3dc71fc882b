"""A SIMULATION of a Colab student, as close as this machine allows: 01 to 06, each in a new kernel.

This is not Colab. What it plays:

* a fresh virtual environment with what Colab preinstalls: torch and torchvision, numpy 2.1, ipywidgets 7.7.1,
  ipykernel 6.17, scipy, scikit-image, matplotlib, pillow, tqdm, kaggle; and a ``google.colab`` stand-in
  imported at start-up (as Colab's kernels do) whose ``drive.mount`` "mounts Drive" on a temporary folder;
* each notebook runs in a new kernel of that environment, in a new working folder, after the course library was
  uninstalled again (a new runtime), so the notebook's own setup cell installs it, from a local git URL of this
  repository (``git+file://``: the committed HEAD, not uncommitted edits) with pip's default resolver;
* DSB2018 comes from a local HTTP server that serves a small archive (16 real images of 256 x 256 from
  ``../shared``, else synthetic ones) in the GitHub archive's layout (``NUCLEISEG_DATA_URL`` points the github
  download at it);
* the smoke profile in 01-04 (a student would train cpu or gpu); 05 and 06 keep ``PROFILE="auto"``, which on this
  CPU machine is "cpu", and must still find the smoke run 04 trained (the run folder is named by the recipe);
* 06: an upload in ipywidgets 7's format, through the app's upload callback;
* a second student who skips 04: 05 and 06 then use the pretrained model (one exported here from the first
  student's run into the environment's installed package, standing in for the model the package ships).

It asserts: the data were downloaded once for all notebooks; the setup cell left torch, torchvision, numpy and
ipywidgets as they were; 05 found 04's run; 06 segmented an upload; 05 and 06 work from the pretrained model.

What it cannot check: Colab's own front end (the badge opening the notebook, the Drive authorisation dialog, the
widget manager drawing ipywidgets in the browser, the file picker of the upload button), Colab's real Python 3.13
and torch 2.11 (this machine has torch wheels for Python 3.11 only: torch 2.13 CPU from its disk; a 3.13 torch
would be a multi-GB CUDA download from PyPI), a GPU runtime, Google Drive's speed and the network to GitHub.

Slow (a few minutes; the environment is cached in ``.cache/colab-sim``): runs when ``NUCLEISEG_COLAB_SIM=1``
(``.ci/run`` sets it), and is skipped otherwise.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
NOTEBOOKS = ["01_data_exploration", "02_mask_merging", "03_unet_build", "04_training", "05_threshold_and_accuracy",
             "06_segment_your_image"]
#: What Colab preinstalls, at the nearest versions this machine offers (see the module docstring).
COLAB_PACKAGES = ["torch==2.13.0", "torchvision==0.28.0", "numpy==2.1.3", "ipywidgets==7.7.1", "ipykernel==6.17.1",
                  "scipy", "scikit-image", "matplotlib", "pillow", "tqdm", "kaggle"]
KEEP = ("torch", "torchvision", "numpy", "ipywidgets")

pytestmark = [pytest.mark.slow, pytest.mark.colab,
              pytest.mark.skipif(os.environ.get("NUCLEISEG_COLAB_SIM") != "1",
                                 reason="the Colab simulation runs with NUCLEISEG_COLAB_SIM=1 (.ci/run sets it)")]

STANDIN = {
    "google/colab/__init__.py": '"""Stand-in for Colab\'s google.colab (the Colab simulation test)."""\n'
                                "from . import drive, output  # noqa: F401\n",
    "google/colab/drive.py": textwrap.dedent('''
        import os
        from pathlib import Path

        def mount(mountpoint, force_remount=False):
            """'Mount' the student's Drive (a folder kept across runtimes) at mountpoint/MyDrive."""
            store = Path(os.environ["COLAB_SIM_DRIVE"])
            store.mkdir(parents=True, exist_ok=True)
            Path(mountpoint).mkdir(parents=True, exist_ok=True)
            link = Path(mountpoint) / "MyDrive"
            if not link.exists():
                link.symlink_to(store, target_is_directory=True)
            print(f"Mounted at {mountpoint}")
        '''),
    "google/colab/output.py": "def enable_custom_widget_manager():\n    pass\n",
    "colab_sim_startup.pth": "import google.colab\n",
}

UPLOAD_CELL = '''
# --- added by the Colab simulation: the student uploads one image (ipywidgets 7's upload format)
import ipywidgets
content = open(os.environ["COLAB_SIM_UPLOAD"], "rb").read()
app._on_upload({"new": {"my_cells.png": {"metadata": {"name": "my_cells.png", "type": "image/png",
                                                      "size": len(content)}, "content": content}}})
result = app.segment(app.uploads[-1])
print("SIM-UPLOAD", ipywidgets.__version__, int(result.labels.max()), "nuclei with", app.predictor.path)
'''

RUNNER = '''
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
if sys.argv[3]:
    nb.cells.append(nbformat.v4.new_code_cell(open(sys.argv[3]).read()))
client = NotebookClient(nb, kernel_name="colab-sim", timeout=900, resources={"metadata": {"path": sys.argv[4]}})
try:
    client.execute()
finally:
    nbformat.write(nb, sys.argv[2])
'''


def _clean_env():
    """This process's environment without what points Python at this checkout (conftest's PYTHONPATH...)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("NUCLEISEG_", "PYTEST_", "JUPYTER", "VIRTUAL_ENV")) and k != "PYTHONPATH"}


def _run(cmd, **kw):
    kw.setdefault("env", _clean_env())
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def _base_python():
    for name in ("python3.11", "python3"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no python3")


def colab_venv():
    """The environment with Colab's preinstalled packages (cached by its package list)."""
    key = hashlib.sha1(json.dumps([COLAB_PACKAGES, STANDIN]).encode()).hexdigest()[:10]
    venv = REPO / ".cache" / "colab-sim" / f"venv-{key}"
    py = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        _run([_base_python(), "-m", "venv", str(venv)])
        _run([str(py), "-m", "pip", "install", "-q", *COLAB_PACKAGES])
        site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
        for rel, text in STANDIN.items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(text)
        (venv / ".complete").write_text("ok\n")
    return py


def _versions(py):
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in %r}))" % (KEEP,))
    return json.loads(_run([str(py), "-c", code]))


def _archive(path, tmp):
    top = "kaggle-dsbowl-2018-dataset-fixes-sim/stage1_train"
    if REAL.is_dir():
        from PIL import Image
        ids = [i for i in sorted(os.listdir(REAL)) if Image.open(REAL / i / "images" / f"{i}.png").size == (256, 256)]
        root, ids = REAL, ids[:16]
    else:
        from nucleiseg_lib.data.synth import make_synthetic_dataset
        root = tmp / "synth"
        ids = make_synthetic_dataset(root, n=16, size=128, seed=0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for sid in ids:
            for f in sorted((root / sid).rglob("*.png")):
                zf.write(f, f"{top}/{f.relative_to(root)}")
    return root, ids


def _kernel_spec(folder, py):
    spec = folder / "kernels" / "colab-sim"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab simulation", "language": "python"}))


def _outputs(nb_path):
    nb = json.loads(Path(nb_path).read_text())
    text = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "".join(out["text"]))
            data = out.get("data", {})
            text.append("".join(data.get("text/plain", "")) + "".join(data.get("text/html", "")))
            if out.get("output_type") == "error":
                text.append(out["ename"] + ": " + out["evalue"])
    return "\n".join(text)


class Student:
    """One student: a Drive folder kept across runtimes; each notebook a new runtime."""

    def __init__(self, tmp, name, py, url, server_url, upload):
        self.tmp, self.py, self.drive = tmp, py, tmp / f"drive-{name}"
        self.env = _clean_env()
        self.env.update(COLAB_SIM_DRIVE=str(self.drive), COLAB_SIM_UPLOAD=str(upload), MPLBACKEND="Agg",
                        NUCLEISEG_INSTALL_URL=url, NUCLEISEG_DATA_URL=server_url, OMP_NUM_THREADS="1",
                        JUPYTER_PATH=str(tmp / "jupyter"), PYTHONPATH="")
        self.log = {}

    def run(self, name, profile="auto", extra=None, notebook=None):
        runtime = self.tmp / f"runtime-{len(self.log)}-{name[:2]}"  # a new /content
        runtime.mkdir()
        _run([str(self.py), "-m", "pip", "uninstall", "-q", "-y", "nucleiseg-lib"], cwd=runtime)  # a new runtime has no course
        env = dict(self.env, NUCLEISEG_COLAB_CONTENT=str(runtime))
        if profile != "auto":
            env["NUCLEISEG_PROFILE"] = profile
        out = runtime / f"{name}.out.ipynb"
        cmd = [sys.executable, "-c", RUNNER, str(notebook or REPO / "notebooks" / f"{name}.ipynb"), str(out)]
        if extra:
            (runtime / "extra.py").write_text(extra)
            cmd.append(str(runtime / "extra.py"))
        else:
            cmd.append("")
        cmd.append(str(runtime))
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=runtime)
        text = _outputs(out) if out.is_file() else ""
        self.log[name] = dict(seconds=round(time.time() - t, 1), text=text)
        assert r.returncode == 0, f"{name} failed in the simulated Colab:\n{r.stderr[-4000:]}\n{text[-4000:]}"
        # cwd: the runtime, not this checkout (whose nucleiseg_lib.egg-info, from `pip install -e .`, would be found)
        installed = json.loads(_run([str(self.py), "-c", "from importlib.metadata import distribution as d; "
                                     "print(d('nucleiseg-lib').read_text('direct_url.json'))"], cwd=runtime))
        assert self.env["NUCLEISEG_INSTALL_URL"].endswith("@" + installed["vcs_info"]["commit_id"]), installed
        return text


def test_a_colab_student_gets_through_01_to_06(tmp_path):
    t0 = time.time()
    sys.path.insert(0, str(Path(__file__).parent))
    from test_download import Server
    py = colab_venv()
    before = _versions(py)
    (tmp_path / "www").mkdir()
    root, ids = _archive(tmp_path / "www" / "dsb.zip", tmp_path)
    server = Server(tmp_path / "www")
    _kernel_spec(tmp_path / "jupyter", py)
    # the repository as Colab sees GitHub: a git URL, here pinned to the committed HEAD that is under test
    head = _run(["git", "rev-parse", "HEAD"], cwd=REPO).strip()
    url = f"git+file://{REPO}@{head}"
    upload = root / ids[-1] / "images" / f"{ids[-1]}.png"
    try:
        alice = Student(tmp_path, "alice", py, url, f"{server.url}/dsb.zip", upload)
        for name in NOTEBOOKS[:4]:
            alice.run(name, profile="smoke")
        out05 = alice.run("05_threshold_and_accuracy")      # PROFILE auto: "cpu" here, but 04 trained "smoke"
        out06 = alice.run("06_segment_your_image", extra=UPLOAD_CELL)
        downloads = [p for p, _ in server.requests if p.endswith("dsb.zip")]
        assert len(downloads) == 1, f"the data were downloaded {len(downloads)} times: {server.requests}"
        home = alice.drive / "nucleiseg"
        assert (home / "data" / "stage1_train").is_dir() and any((home / "cache").rglob("*.npz"))
        assert (home / "runs" / "smoke" / "best.pt").is_file() and not (home / "runs" / "cpu").exists()
        assert f"{home / 'runs' / 'smoke' / 'best.pt'}" in out05 and "recipe 'smoke'" in out05
        assert "SIM-UPLOAD 7.7.1" in out06 and str(home / "runs" / "smoke" / "best.pt") in out06
        n_nuclei = int(out06.split("SIM-UPLOAD 7.7.1 ", 1)[1].split()[0])
        assert n_nuclei >= 0
        assert _versions(py) == before, "the setup cell replaced a package Colab preinstalls"

        # a second student skips 04: the package ships a pretrained model (exported here from alice's run)
        site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
        shipped = tmp_path / "shipped"
        _run([sys.executable, str(REPO / "benchmarks" / "pretrained.py"), "export", "--run",
              str(home / "runs" / "smoke"), "--data", str(home / "data" / "stage1_train"), "--out", str(shipped),
              "--quiet"], env={**os.environ, "NUCLEISEG_CACHE": str(tmp_path / "export-cache")})  # this checkout
        bob = Student(tmp_path, "bob", py, url, f"{server.url}/dsb.zip", upload)
        install_with_model = textwrap.dedent(f'''
            import shutil, importlib.util, pathlib
            folder = pathlib.Path(importlib.util.find_spec("nucleiseg_lib").origin).parent / "pretrained"
            for f in pathlib.Path({str(shipped)!r}).iterdir():
                shutil.copy(f, folder / f.name)
            ''')
        # the setup cell installs the library; then the shipped model is put where a release would have it
        bob_notebook = json.loads((REPO / "notebooks" / "05_threshold_and_accuracy.ipynb").read_text())
        setup_index = next(i for i, c in enumerate(bob_notebook["cells"])
                           if "".join(c["source"]).startswith("# Colab only"))
        bob_notebook["cells"].insert(setup_index + 1, dict(cell_type="code", metadata={}, outputs=[],
                                                           execution_count=None, source=install_with_model,
                                                           id="sim-shipped-model"))
        patched = tmp_path / "notebooks"
        patched.mkdir()
        (patched / "05_threshold_and_accuracy.ipynb").write_text(json.dumps(bob_notebook))
        nb06 = json.loads((REPO / "notebooks" / "06_segment_your_image.ipynb").read_text())
        i06 = next(i for i, c in enumerate(nb06["cells"]) if "".join(c["source"]).startswith("# Colab only"))
        nb06["cells"].insert(i06 + 1, dict(cell_type="code", metadata={}, outputs=[], execution_count=None,
                                           source=install_with_model, id="sim-shipped-model"))
        (patched / "06_segment_your_image.ipynb").write_text(json.dumps(nb06))
        bob_out05 = bob.run("05_threshold_and_accuracy", notebook=patched / "05_threshold_and_accuracy.ipynb")
        bob_out06 = bob.run("06_segment_your_image", extra=UPLOAD_CELL,
                            notebook=patched / "06_segment_your_image.ipynb")
        assert "pretrained course model" in bob_out05 and "cpu.pt" in bob_out05
        assert "SIM-UPLOAD 7.7.1" in bob_out06 and "cpu.pt" in bob_out06 and "pretrained" in bob_out06
        assert not (bob.drive / "nucleiseg" / "runs" / "smoke").exists()
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
    times = {**{k: v["seconds"] for k, v in alice.log.items()}, **{f"bob {k}": v["seconds"] for k, v in bob.log.items()}}
    print(f"Colab simulation: {time.time() - t0:.0f} s in all; per notebook {times}")

