"""Tests of nucleiseg_lib.data.download against a real local HTTP server (no internet)."""

import hashlib
import http.server
import io
import sys
import threading
import zipfile

import pytest

from nucleiseg_lib.data import download as dl
from nucleiseg_lib.errors import DownloadError

TOP = f"kaggle-dsbowl-2018-dataset-fixes-{dl.GITHUB_COMMIT}"
IDS = [f"{i:02d}" + "ab" * 31 for i in range(3)]


def _png(seed):
    try:
        from PIL import Image
    except ImportError:
        return bytes([seed]) * 64
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (seed, 2 * seed % 256, 0, 255)).save(buf, "PNG")
    return buf.getvalue()


def make_zip(path, ids=IDS, extra=(), top=TOP + "/stage1_train/"):
    """A small archive in the real structure; ``extra``: (name, bytes) members added."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        if top:
            zf.writestr(f"{TOP}/README.md", "fixed stage1_train\n")
        for n, i in enumerate(ids):
            zf.writestr(f"{top}{i}/images/{i}.png", _png(n))
            for k in range(2):
                zf.writestr(f"{top}{i}/masks/m{k}.png", _png(100 + n + k) + bytes(range(256)) * 8)
        for name, data in extra:
            zf.writestr(name, data)
    return path


class Server:
    """Threaded http.server over a folder; modes: 'range', 'norange', 'truncate'."""

    def __init__(self, root):
        self.root, self.mode, self.requests, self.bytes_sent = root, "range", [], 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                f = server.root / self.path.lstrip("/")
                if not f.is_file():
                    self.send_error(404)
                    return
                data, start = f.read_bytes(), 0
                rng = self.headers.get("Range")
                if server.mode == "range" and rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if server.mode != "nolength":  # like GitHub's codeload: no Content-Length, no Range
                    self.send_header("Content-Length", str(len(body)))  # the truth, or a lie when truncating
                self.end_headers()
                if server.mode == "truncate":
                    body = body[: len(body) // 2]
                server.bytes_sent += len(body)  # before the write: the client may read it all and the test look
                self.wfile.write(body)
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    make_zip(root / "archive.zip")
    s = Server(root)
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def _leftovers(dest):
    return sorted(p.name for p in dest.iterdir() if p.name.startswith(".stage1_train"))


def test_download_extracts_kaggle_layout_and_is_idempotent(server, tmp_path, capsys):
    dest = tmp_path / "data"
    out = dl.download(dest=dest, url=server.url + "/archive.zip", progress=False)
    assert out == dest / "stage1_train"
    assert sorted(p.name for p in out.iterdir()) == sorted(IDS)
    for i in IDS:
        assert (out / i / "images" / f"{i}.png").is_file()
        assert len(list((out / i / "masks").glob("*.png"))) == 2
    assert not (out / "README.md").exists() and not (dest / TOP).exists()
    assert dl.verify_layout(out, min_samples=3) == 3
    assert len(server.requests) == 1 and _leftovers(dest) == []
    assert not (dest / "archive.zip").exists() and not (dest / "archive.zip.part").exists()
    capsys.readouterr()
    assert dl.download(dest=dest, url=server.url + "/archive.zip", progress=False) == out
    assert len(server.requests) == 1  # nothing fetched the second time
    assert "already present" in capsys.readouterr().out


def test_truncated_transfer_raises_keeps_part_then_resumes(server, tmp_path):
    dest, size = tmp_path / "data", (server.root / "archive.zip").stat().st_size
    server.mode = "truncate"
    with pytest.raises(DownloadError) as err:
        dl.download(dest=dest, url=server.url + "/archive.zip", progress=False)
    msg = str(err.value)
    assert "/archive.zip" in msg and f"of {size} bytes" in msg and f"got {size // 2}" in msg
    assert not (dest / "stage1_train").exists()
    assert (dest / "archive.zip.part").stat().st_size == size // 2
    server.mode, server.bytes_sent = "range", 0
    out = dl.download(dest=dest, url=server.url + "/archive.zip", progress=False)
    assert server.requests[-1][1] == f"bytes={size // 2}-"
    assert server.bytes_sent == size - size // 2
    assert dl.verify_layout(out) == len(IDS)


def test_resume_part_with_range(server, tmp_path):
    data = (server.root / "archive.zip").read_bytes()
    target = tmp_path / "dl" / "a.zip"
    target.parent.mkdir()
    (tmp_path / "dl" / "a.zip.part").write_bytes(data[:1000])
    dl.download_file(server.url + "/archive.zip", target, progress=False,
                     sha256=hashlib.sha256(data).hexdigest())
    assert target.read_bytes() == data
    assert server.bytes_sent == len(data) - 1000
    assert not (tmp_path / "dl" / "a.zip.part").exists()


def test_server_ignoring_range_starts_over(server, tmp_path):
    data = (server.root / "archive.zip").read_bytes()
    target = tmp_path / "a.zip"
    (tmp_path / "a.zip.part").write_bytes(b"garbage" * 100)
    server.mode = "norange"
    dl.download_file(server.url + "/archive.zip", target, progress=False)
    assert target.read_bytes() == data and server.bytes_sent == len(data)


def test_no_content_length_then_expected_size(server, tmp_path):
    data = (server.root / "archive.zip").read_bytes()
    server.mode = "nolength"
    assert dl.download_file(server.url + "/archive.zip", tmp_path / "a.zip", progress=False).read_bytes() == data
    with pytest.raises(DownloadError, match=f"got {len(data)} of {len(data) + 1} bytes"):
        dl.download_file(server.url + "/archive.zip", tmp_path / "b.zip", progress=False, expected_size=len(data) + 1)


def test_sha256_mismatch_raises_and_deletes_part(server, tmp_path):
    target = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        dl.download_file(server.url + "/archive.zip", target, sha256="0" * 64, progress=False)
    assert not target.exists() and not (tmp_path / "a.zip.part").exists()


def test_network_error_names_url(server, tmp_path):
    with pytest.raises(DownloadError, match="/missing.zip.*404"):
        dl.download_file(server.url + "/missing.zip", tmp_path / "m.zip", progress=False)


def test_corrupt_zip_extracts_nothing(server, tmp_path):
    raw = bytearray((server.root / "archive.zip").read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 16] = bytes(b ^ 0xFF for b in raw[mid:mid + 16])
    (server.root / "archive.zip").write_bytes(bytes(raw))
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="corrupt"):
        dl.download(dest=dest, url=server.url + "/archive.zip", progress=False)
    assert not (dest / "stage1_train").exists() and _leftovers(dest) == []
    assert not (dest / "archive.zip").exists()  # a bad archive is not kept for reuse


def test_truncated_zip_file_extracts_nothing(tmp_path):
    raw = make_zip(tmp_path / "a.zip").read_bytes()
    (tmp_path / "a.zip").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DownloadError, match="corrupt or truncated"):
        dl.extract_stage1_train(tmp_path / "a.zip", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_zip_slip_rejected(tmp_path):
    evil = make_zip(tmp_path / "a.zip", extra=[(f"{TOP}/stage1_train/../../../evil.txt", b"x")])
    with pytest.raises(DownloadError, match="unsafe member"):
        dl.extract_stage1_train(evil, tmp_path / "data" / "inner")
    assert not list(tmp_path.rglob("evil.txt"))
    assert list((tmp_path / "data" / "inner").iterdir()) == []


def test_bad_layout_extracts_nothing(tmp_path):
    bad = make_zip(tmp_path / "a.zip", extra=[(f"{TOP}/stage1_train/zz/masks/m.png", b"x")])  # no image
    with pytest.raises(DownloadError, match="zz: missing images/zz.png"):
        dl.extract_stage1_train(bad, tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("README.md", "no data here")
    with pytest.raises(DownloadError, match="found 1 files.*neither layout"):
        dl.extract_stage1_train(tmp_path / "b.zip", tmp_path / "data")


def test_extract_bare_and_nested_kaggle_layouts(tmp_path):
    bare = make_zip(tmp_path / "stage1_train.zip", top="")  # Kaggle's own stage1_train.zip
    assert dl.verify_layout(dl.extract_stage1_train(bare, tmp_path / "a")) == len(IDS)
    with zipfile.ZipFile(tmp_path / "dataset.zip", "w") as zf:  # a data set holding that zip
        zf.write(bare, "stage1_train.zip")
    assert dl.verify_layout(dl.extract_stage1_train(tmp_path / "dataset.zip", tmp_path / "b")) == len(IDS)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["stage1_train"]


def test_verify_layout_names_problem(tmp_path):
    out = dl.extract_stage1_train(make_zip(tmp_path / "a.zip"), tmp_path / "data")
    with pytest.raises(DownloadError, match="at least 10"):
        dl.verify_layout(out, min_samples=10)
    (out / IDS[1] / "images" / f"{IDS[1]}.png").unlink()
    with pytest.raises(DownloadError, match=f"{IDS[1]}: missing images/{IDS[1]}.png"):
        dl.verify_layout(out)
    with pytest.raises(DownloadError, match="not a folder"):
        dl.verify_layout(tmp_path / "nope")


@pytest.fixture
def no_kaggle_credentials(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / "cfg"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    for name in [m for m in sys.modules if m == "kaggle" or m.startswith("kaggle.")]:
        monkeypatch.delitem(sys.modules, name)
    return home


def test_missing_kaggle_credentials_one_clear_message(no_kaggle_credentials, tmp_path, capsys):
    with pytest.raises(DownloadError) as err:
        dl.download("kaggle", dest=tmp_path / "data", progress=False)
    msg = str(err.value)
    assert "kaggle.json" in msg and "KAGGLE_USERNAME" in msg and "KAGGLE_CONFIG_DIR" in msg and "Colab" in msg
    assert "kaggle" not in sys.modules  # checked before importing kaggle
    from nucleiseg_lib.cli import main  # the command line prints the one message, no traceback
    assert main(["download", "--source", "kaggle", "--dest", str(tmp_path / "data")]) != 0
    stderr = capsys.readouterr().err
    assert "kaggle.json" in stderr and "KAGGLE_USERNAME" in stderr and "Traceback" not in stderr


def test_kaggle_credentials_found(no_kaggle_credentials, monkeypatch):
    cfg = no_kaggle_credentials / "cfg"
    cfg.mkdir()
    (cfg / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert dl.kaggle_credentials().endswith("kaggle.json")
    (cfg / "kaggle.json").unlink()
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert "KAGGLE_USERNAME" in dl.kaggle_credentials()


def test_unknown_source(tmp_path):
    with pytest.raises(DownloadError, match="unknown source"):
        dl.download("ftp", dest=tmp_path)


# ------------------------------------------------- Kaggle layouts and names ---

def _label_png(shape, boxes, mode="L"):
    """A merged mask: each (y0, y1, x0, x1) box is one nucleus, separated from the others."""
    import numpy as np
    from PIL import Image
    m = np.zeros(shape, np.uint8)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = 255
    im = Image.fromarray(m)
    buf = io.BytesIO()
    (im.convert("RGB") if mode == "RGB" else im).save(buf, "PNG")
    return buf.getvalue()


MERGED = {"a1": [(1, 4, 1, 4), (6, 9, 6, 9)], "b2": [(0, 3, 5, 8)], "c3": [(2, 5, 2, 5), (2, 5, 7, 9), (7, 9, 0, 2)]}


def make_merged_zip(path, top="Nuclei Segmentation/", image_dir="images", mask_dir="masks", mask_suffix="",
                    mask_mode="L"):
    """An archive with one merged mask per image, in parallel image and mask folders (Kaggle re-publications)."""
    with zipfile.ZipFile(path, "w") as zf:
        for n, (sid, boxes) in enumerate(MERGED.items()):
            zf.writestr(f"{top}{image_dir}/{sid}.png", _label_png((10, 10), [(0, 10, 0, 10 - n)], "RGB"))
            zf.writestr(f"{top}{mask_dir}/{sid}{mask_suffix}.png", _label_png((10, 10), boxes, mask_mode))
    return path


@pytest.mark.parametrize("layout", [dict(), dict(top="", image_dir="image", mask_dir="mask", mask_suffix="_mask"),
                                    dict(top="data/train/", mask_mode="RGB")])
def test_merged_masks_are_split_into_nuclei(tmp_path, layout):
    from nucleiseg_lib.data import SampleCache, list_samples
    out = dl.extract_stage1_train(make_merged_zip(tmp_path / "k.zip", **layout), tmp_path / "data")
    assert out == tmp_path / "data" / "stage1_train"
    assert sorted(list_samples(out)) == sorted(MERGED)
    for sid, boxes in MERGED.items():
        assert (out / sid / "images" / f"{sid}.png").is_file()
        assert len(list((out / sid / "masks").glob("*.png"))) == len(boxes)
    labels = SampleCache(out, cache_dir=tmp_path / "cache", progress=False).load("c3")[1]
    assert labels.max() == 3 and (labels > 0).sum() == 9 + 6 + 4
    assert _leftovers(tmp_path / "data") == []


def test_per_image_folders_in_a_dataset_archive(tmp_path):
    top = "nuclei/stage1_train/"
    out = dl.extract_stage1_train(make_zip(tmp_path / "k.zip", top=top), tmp_path / "data")
    assert sorted(p.name for p in out.iterdir()) == sorted(IDS)


def test_unreadable_layout_is_named_in_one_line(tmp_path):
    path = tmp_path / "k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(3):
            zf.writestr(f"stuff/pictures/{i}.jpg", _png(i))
        zf.writestr("stuff/labels.csv", "id,rle\n")
    with pytest.raises(DownloadError) as err:
        dl.extract_stage1_train(path, tmp_path / "data")
    msg = str(err.value)
    assert "\n" not in msg and "k.zip" in msg and "4 files" in msg and ".jpg" in msg and "pictures/" in msg
    assert not (tmp_path / "data" / "stage1_train").exists()


@pytest.mark.parametrize("name", list(dl.KAGGLE_DATASETS))
def test_kaggle_sources_by_name(tmp_path, monkeypatch, name):
    """Each name reaches the right Kaggle call (the network call replaced by a local archive), then converts."""
    calls = []

    def fetch(folder, competition, dataset, progress):
        calls.append((competition, dataset))
        if dataset is None:
            return make_zip(folder / "stage1_train.zip", top="")  # the competition's bare layout
        return make_merged_zip(folder / "dataset.zip")
    monkeypatch.setattr(dl, "_kaggle_fetch", fetch)
    out = dl.download("kaggle", dest=tmp_path / "data", progress=False, kaggle_dataset=name)
    if name == "data-science-bowl-2018":
        assert calls == [("data-science-bowl-2018", None)] and sorted(p.name for p in out.iterdir()) == sorted(IDS)
    else:
        assert calls == [("data-science-bowl-2018", name)] and sorted(p.name for p in out.iterdir()) == sorted(MERGED)


def test_unknown_kaggle_name(tmp_path):
    with pytest.raises(DownloadError, match="unknown Kaggle source 'dsb'.*sinjoysaha"):
        dl.download("kaggle", dest=tmp_path, kaggle_dataset="dsb")


def test_merged_mask_of_another_size_is_refused(tmp_path):
    path = tmp_path / "k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("images/a.png", _png(1))  # 8 x 8
        zf.writestr("masks/a.png", _label_png((10, 10), [(1, 3, 1, 3)]))
    with pytest.raises(DownloadError, match="masks/a.png.*10x10.*8x8"):
        dl.extract_stage1_train(path, tmp_path / "data")
