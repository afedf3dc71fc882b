"""The app of notebook 06 in a real browser: Voilà on a loopback port, driven by headless Chromium.

What a user does, checked end to end: open the page, upload a real image (DSB2018 from
``../shared`` when present, a synthetic one otherwise), wait for the result, compare the
nucleus count shown with the library's own answer, move the threshold slider with the
keyboard and check that the mask changes, download the zip, upload bad files and read
the messages, time a 1024x1024 upload. Screenshots and timings go to the test's output
folder (``$NUCLEISEG_TEST_OUTPUT/app_browser`` when that is set, else pytest's tmp folder).

Chromium is Debian's (``/usr/bin/chromium``), never a downloaded one; the server is
stopped at the end whatever happens. Skipped, with the reason, where Voilà, Playwright or
Chromium is missing.
"""

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "06_segment_your_image.ipynb"
CHROMIUM = os.environ.get("NUCLEISEG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHARED = REPO.parent / "shared" / "data" / "dsb2018" / "stage1_train"
SERVER_START_S = 180    # Voilà's first start on a busy 2-core machine
RESULT_S = 180          # page load (the notebook runs) and one segmentation

pytestmark = pytest.mark.slow

try:  # everything this file needs, or one clean skip saying what is missing
    import voila  # noqa: F401
    from playwright.sync_api import expect, sync_playwright
except ImportError as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"the browser test needs voila and playwright ({exc}); pip install -e '.[dev]'",
                allow_module_level=True)
if not os.access(CHROMIUM, os.X_OK):  # pragma: no cover - depends on the machine
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set NUCLEISEG_CHROMIUM)",
                allow_module_level=True)

from nucleiseg_lib.app import SegmentApp  # noqa: E402
from nucleiseg_lib.inference import Predictor  # noqa: E402


# ------------------------------------------------------------------ fixtures ---

def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A smoke-trained model: RUN/best.pt (synthetic data, a minute or two on 2 cores).

    ``NUCLEISEG_TEST_APP_RUN=<run folder with best.pt>`` reuses one instead (for repeated runs).
    """
    reuse = os.environ.get("NUCLEISEG_TEST_APP_RUN")
    if reuse:
        assert (Path(reuse) / "best.pt").is_file(), f"NUCLEISEG_TEST_APP_RUN={reuse} holds no best.pt"
        return Path(reuse)
    base = tmp_path_factory.mktemp("app_model")
    data, run = base / "synth", base / "run"
    for cmd in (["synth", "--out", data, "--n", "16", "--size", "128"],
                ["train", "--data", data, "--run", run, "--profile", "smoke", "--quiet"]):
        proc = subprocess.run([sys.executable, "-m", "nucleiseg_lib", *map(str, cmd)], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"nucleiseg {cmd[0]} failed:\n{proc.stdout}\n{proc.stderr}"
    assert (run / "best.pt").is_file()
    return run


@pytest.fixture(scope="session")
def out_dir(tmp_path_factory):
    root = os.environ.get("NUCLEISEG_TEST_OUTPUT")
    path = Path(root) / "app_browser" if root else tmp_path_factory.mktemp("app_browser")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid):
    """Pids of the direct children of `pid` (the kernels Voilà started, in sessions of their own)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _stop(proc):
    """Stop Voilà's process group and the kernels it started; never raises."""
    kernels = _children(proc.pid) if proc.poll() is None else []
    for pgid, sig in [(proc.pid, signal.SIGTERM)] + [(k, signal.SIGTERM) for k in kernels]:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    for pgid in [proc.pid] + kernels:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


class Voila:
    """``python -m voila notebooks/06_segment_your_image.ipynb`` on 127.0.0.1, as a user starts it."""

    def __init__(self, run_dir, log_path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = log_path
        self.log = open(log_path, "w")
        cmd = [sys.executable, "-m", "voila", str(NOTEBOOK.relative_to(REPO)), "--no-browser",
               f"--port={self.port}", "--Voila.ip=127.0.0.1"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=_env(NUCLEISEG_RUN_DIR=run_dir, NUCLEISEG_PROFILE="smoke"),
                                     start_new_session=True)

    def wait_ready(self, timeout=SERVER_START_S):
        t_end = time.time() + timeout
        while time.time() < t_end:
            if self.proc.poll() is not None:
                raise AssertionError(f"voila exited with {self.proc.returncode}:\n{self.log_text()}")
            try:  # the tree of static files answers without running the notebook
                with urllib.request.urlopen(self.url + "voila/static/", timeout=2):
                    return self
            except urllib.error.HTTPError:
                return self  # the server answers (404 is fine): it is up
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"voila did not answer on {self.url} in {timeout} s:\n{self.log_text()}")

    def log_text(self):
        self.log.flush()
        return Path(self.log_path).read_text()[-4000:]

    def stop(self):
        _stop(self.proc)
        self.log.close()


@contextlib.contextmanager
def serve(run_dir, log_path):
    """Voilà serving notebook 06 with `run_dir` as NUCLEISEG_RUN_DIR; stopped whatever happens."""
    server = Voila(run_dir, log_path)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def voila_server(request, trained_run, out_dir):
    with serve(trained_run, out_dir / f"voila-{request.node.name}.log") as server:
        yield server


@pytest.fixture
def page(out_dir):
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            pg = context.new_page()
            pg.console_messages = []
            pg.on("console", lambda m: pg.console_messages.append(f"{m.type}: {m.text}"))
            yield pg
        finally:
            browser.close()


# ------------------------------------------------------------------- helpers ---

def real_or_synthetic_image(folder):
    """A DSB2018 image from ../shared when present (the first sample), else a synthetic one."""
    if SHARED.is_dir():
        for sample in sorted(SHARED.iterdir()):
            found = sorted((sample / "images").glob("*.png"))
            if found:
                return found[0], "DSB2018"
    from nucleiseg_lib.data.synth import make_synthetic_sample
    image, _ = make_synthetic_sample(np.random.default_rng(3), size=(256, 320), style="fluorescence")
    path = folder / "synthetic_nuclei.png"
    Image.fromarray(np.asarray(image)).save(path)
    return path, "synthetic"


def image_1024(folder, source):
    """A 1024x1024 image: a real DSB2018 one of that size when there is one, else a real or synthetic one resized."""
    if SHARED.is_dir():
        for sample in sorted(SHARED.iterdir())[:200]:
            for p in (sample / "images").glob("*.png"):
                with Image.open(p) as im:
                    if im.size == (1024, 1024):
                        return p
    im = Image.open(source).convert("RGB").resize((1024, 1024), Image.BILINEAR)
    path = folder / "nuclei_1024.png"
    im.save(path)
    return path


def wait_result(page, name, timeout_s=RESULT_S):
    """Wait until the page shows the result of the upload named `name`; return its count element."""
    loc = page.locator(f'.nucleiseg-count [data-name="{name}"]')
    expect(loc).to_be_attached(timeout=timeout_s * 1000)
    return loc


def shown(page):
    """What the page shows now: count, foreground pixels, threshold, and the outline image's source."""
    def attr(selector, name):
        return page.locator(selector).get_attribute(name)
    return dict(count=int(attr(".nucleiseg-count [data-count]", "data-count")),
                foreground=int(attr(".nucleiseg-foreground [data-foreground]", "data-foreground")),
                threshold=float(attr(".nucleiseg-stats [data-threshold]", "data-threshold")),
                overlay=attr(".nucleiseg-overlay", "src"))


def pixels(locator):
    """The element as the screen shows it, as an array."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def snap(page, path):
    """Screenshot of the whole app (Voilà scrolls inside the page, so a full-page shot would cut it)."""
    app = page.locator(".nucleiseg-app")
    app.scroll_into_view_if_needed()
    app.screenshot(path=str(path))


def open_app(page, server):
    """Open the page; return ``upload(files)``, which clicks the upload button and chooses `files`.

    ipywidgets 8 keeps the button's ``input[type=file]`` out of the page, so the files go
    through the browser's file chooser, as a user's would.
    """
    page.goto(server.url, timeout=RESULT_S * 1000, wait_until="domcontentloaded")
    button = page.locator(".nucleiseg-upload")
    expect(button).to_be_enabled(timeout=RESULT_S * 1000)

    def upload(files):
        with page.expect_file_chooser(timeout=30_000) as chooser:
            button.click()
        chooser.value.set_files(files)

    return upload


# --------------------------------------------------------------------- tests ---

def test_upload_threshold_download_and_bad_input(voila_server, page, trained_run, out_dir, tmp_path):
    upload = open_app(page, voila_server)
    expect(page.locator(".nucleiseg-model")).to_contain_text("U-Net")

    # what the library says about the image, through the app's own code path
    image_path, source = real_or_synthetic_image(tmp_path)
    content = image_path.read_bytes()
    reference = SegmentApp(Predictor(trained_run / "best.pt"))
    up = reference.add_image(content, image_path.name)
    want = reference.segment(up, "validation")

    # 1. upload a real image and wait for the result
    upload(str(image_path))
    wait_result(page, image_path.name)
    got = shown(page)
    assert got["count"] == want.stats["count"], f"count shown {got['count']}, library {want.stats['count']}"
    n = want.stats["count"]
    assert page.locator(".nucleiseg-count").inner_text().strip() == f"{n} {'nucleus' if n == 1 else 'nuclei'}"
    assert got["foreground"] == want.stats["foreground_px"]
    assert got["threshold"] == pytest.approx(want.threshold, abs=1e-4)
    expect(page.locator(".nucleiseg-message")).to_contain_text(image_path.name)
    for cls in ("image", "prob", "overlay"):
        src = page.locator(f".nucleiseg-{cls}").get_attribute("src") or ""
        assert src.startswith(("blob:", "data:image/png")), f"{cls}: {src[:40]}"
    snap(page, out_dir / "app_result.png")
    outlines_before = pixels(page.locator(".nucleiseg-overlay"))

    # 2. the slider, by keyboard: ten steps of 0.01 down (up when near 0); the mask follows, the rule is manual
    start = round(want.threshold, 2)
    key, target = ("ArrowLeft", round(start - 0.1, 2)) if start >= 0.2 else ("ArrowRight", round(start + 0.1, 2))
    want_manual = reference.segment(up, "manual", target)
    page.locator(".nucleiseg-threshold .noUi-handle").focus()
    for _ in range(10):
        page.keyboard.press(key)
    expect(page.locator(".nucleiseg-stats [data-threshold]")).to_have_attribute("data-threshold", f"{target:.4f}",
                                                                                timeout=60_000)
    moved = shown(page)
    assert moved["foreground"] == want_manual.stats["foreground_px"] != got["foreground"]
    assert moved["count"] == want_manual.stats["count"]
    assert moved["overlay"] != got["overlay"], "the outline image was not replaced"
    assert not np.array_equal(pixels(page.locator(".nucleiseg-overlay")), outlines_before), \
        "the outlines on the screen did not change"
    assert page.locator(".nucleiseg-rule select").input_value() == "manual (slider)"
    snap(page, out_dir / "app_threshold_moved.png")

    # 3. the download button: a zip with the mask, the labels and the measurements at the current threshold
    with page.expect_download(timeout=30_000) as info:
        page.locator("a.nucleiseg-download-link").click()
    download = info.value
    saved = out_dir / download.suggested_filename
    download.save_as(saved)
    assert saved.name == f"{image_path.stem}_nucleiseg.zip"
    with zipfile.ZipFile(saved) as z:
        assert sorted(z.namelist()) == ["labels.png", "mask.png", "nuclei.csv", "settings.json"]
        mask = np.asarray(Image.open(io.BytesIO(z.read("mask.png"))))
        labels = np.asarray(Image.open(io.BytesIO(z.read("labels.png"))))
        rows = z.read("nuclei.csv").decode().strip().splitlines()
        settings = json.loads(z.read("settings.json"))
    assert mask.shape == labels.shape == up.shape
    assert int((mask > 0).sum()) == moved["foreground"]
    assert len(np.unique(labels[labels > 0])) == moved["count"] == len(rows) - 1
    assert settings["rule"] == "manual" and settings["threshold"] == pytest.approx(target)

    # 4. a file that is not an image: a message in the page, no traceback, the last result stays
    upload([{"name": "notes.txt", "mimeType": "text/plain",
                                   "buffer": b"cells were counted by hand\n"}])
    err = page.locator(".nucleiseg-msg-error")
    expect(err).to_contain_text("notes.txt", timeout=60_000)
    expect(err).to_contain_text("not an image")
    snap(page, out_dir / "app_not_an_image.png")

    # 5. more bad input in one go: empty, a 3-D stack, too large; each named with its problem
    stack = io.BytesIO()
    Image.new("L", (64, 64)).save(stack, format="TIFF", save_all=True,
                                  append_images=[Image.new("L", (64, 64)) for _ in range(4)])
    huge = io.BytesIO()
    Image.new("L", (6000, 6000)).save(huge, format="PNG")
    upload([
        {"name": "empty.png", "mimeType": "image/png", "buffer": b""},
        {"name": "stack.tif", "mimeType": "image/tiff", "buffer": stack.getvalue()},
        {"name": "huge.png", "mimeType": "image/png", "buffer": huge.getvalue()}])
    expect(err).to_contain_text("huge.png", timeout=60_000)
    for text in ("empty.png: is empty", "stack.tif: is a stack of 5 images", "huge.png: is 6000x6000 pixels"):
        expect(err).to_contain_text(text)
    assert "Traceback" not in page.content()
    assert shown(page)["count"] == moved["count"], "bad uploads must not disturb the shown result"

    # 6. upload-to-mask time of a 1024x1024 image, as a user sees it
    big = image_1024(tmp_path, image_path)
    t0 = time.perf_counter()
    upload(str(big))
    wait_result(page, big.name)
    expect(page.locator(".nucleiseg-overlay")).to_have_attribute("src", re.compile("^(blob|data):"))
    seconds = time.perf_counter() - t0
    snap(page, out_dir / "app_1024.png")
    assert page.locator(".nucleiseg-select select").locator("option").count() == 2, "two images to choose from"
    timing = dict(image=big.name, size="1024x1024", upload_to_mask_s=round(seconds, 2), source=source,
                  in_page=page.locator(".nucleiseg-message").inner_text())
    (out_dir / "app_timing.json").write_text(json.dumps(timing, indent=2))
    print(f"\nscreenshots and timing in {out_dir}: upload to shown mask, 1024x1024: {seconds:.2f} s")
    assert not [m for m in page.console_messages if m.startswith("error") and "nucleiseg" in m]


def test_no_model_says_which_model_it_uses(tmp_path, out_dir, page):
    """Without a trained run the page uses the pretrained course model and says so; without one, how to get one."""
    from nucleiseg_lib import pretrained
    empty = tmp_path / "run_without_model"
    empty.mkdir()
    with serve(empty, out_dir / "voila-no-model.log") as server:
        page.goto(server.url, timeout=RESULT_S * 1000, wait_until="domcontentloaded")
        if pretrained.available():
            box = page.locator(".nucleiseg-pretrained")
            expect(box).to_contain_text("Using the pretrained course model", timeout=RESULT_S * 1000)
            expect(page.locator(".nucleiseg-upload")).to_be_enabled()
        else:
            box = page.locator(".nucleiseg-nomodel")
            expect(box).to_contain_text("No trained model yet", timeout=RESULT_S * 1000)
            expect(box).to_contain_text("nucleiseg train")
            expect(page.locator(".nucleiseg-upload")).to_be_disabled()
        expect(box).to_contain_text(str(empty / "best.pt"))
        expect(box).to_contain_text("04_training")
        expect(page.locator(".nucleiseg-retry")).to_be_visible()
        assert "Traceback" not in page.content()
        snap(page, out_dir / "app_no_model.png")


VOILA_JSON = REPO / "voila.json"


@pytest.mark.skipif("websocket_max_message_size" not in (VOILA_JSON.read_text() if VOILA_JSON.is_file() else ""),
                    reason=f"{VOILA_JSON} does not raise Voila's websocket_max_message_size (uploads over 10 MB "
                           "are dropped by the server before they reach the app)")
def test_upload_over_10_mb(voila_server, page, tmp_path, out_dir):
    """A 16-bit RGB TIFF of 11.8 MB: over Tornado's default 10 MiB websocket message, which would drop it silently.

    The course's ``voila.json`` (read from the folder Voilà starts in) raises the limit.
    """
    import tifffile
    rng = np.random.default_rng(0)
    arr = (rng.random((1400, 1400, 3)) * 4000).astype(np.uint16)   # a dim 16-bit image, as microscopes write
    path = tmp_path / "large_16bit_rgb.tif"
    tifffile.imwrite(path, arr, photometric="rgb")
    assert path.stat().st_size > 10 * 2 ** 20
    upload = open_app(page, voila_server)
    upload(str(path))
    wait_result(page, path.name)
    expect(page.locator(".nucleiseg-stats")).to_contain_text("1400x1400 pixels")
    snap(page, out_dir / "app_large_upload.png")
