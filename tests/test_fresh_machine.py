"""The README's two commands on a fresh machine: a virtual environment when none is active, no apt needed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "MAKEFLAGS", "MAKELEVEL")}
    env.update(extra)
    return env


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_uses_a_venv_unless_one_is_active():
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, env=_env(), capture_output=True, text=True, check=True)
    assert ".venv/bin/python -m pip install -q -e" in dry.stdout and ".venv/bin/python -m pytest" in dry.stdout
    active = subprocess.run(["make", "-n", "test"], cwd=REPO, env=_env(VIRTUAL_ENV="/some/venv"),
                            capture_output=True, text=True, check=True)
    assert "\npython -m pytest --nbval-lax" in active.stdout and ".venv/bin/python -m pytest" not in active.stdout


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_venv_creates_a_clean_virtual_environment(tmp_path):
    venv = tmp_path / "v"
    subprocess.run(["make", "venv", f"VENV={venv}", f"PYTHON={venv}/bin/python"], cwd=REPO, env=_env(),
                   capture_output=True, text=True, check=True)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import sys; print(sys.prefix != sys.base_prefix)"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "True"
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()


def test_install_system_without_apt_exits_0_and_says_how_to_get_a_browser(tmp_path):
    """A machine without apt-get (macOS...): nothing installed, exit 0, one line on the browser."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "bash", "env", "cat"):  # a system with the basics, no apt-get, no browser, no poppler
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    r = subprocess.run(["bash", str(REPO / ".ci" / "install-system.sh")], capture_output=True, text=True,
                       env={"PATH": str(bin_dir), "HOME": str(tmp_path), "PYTHON": "python3"})
    assert r.returncode == 0, r.stderr
    assert "no apt-get" in r.stderr and "playwright install chromium" in r.stderr
