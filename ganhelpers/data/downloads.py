"""Downloads checked against a hash (the pinned one, or the sha256 recorded at the first download:
trust on first use), where datasets and helper networks live, and :func:`install` (download, then
:func:`ganhelpers.data.archives.extract` once)."""


from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from .archives import _record_path, extract, is_extracted, marker_path

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(os.environ.get("GANHELPERS_DATA", Path.home() / ".keras" / "datasets"))


def networks_dir(data_dir=None) -> Path:
    """``<data_dir>/models``: where the trained helper networks (the digit classifiers behind the
    ``digits`` features, the MNIST judge) are cached, beside the datasets (``data_dir`` default:
    :data:`DEFAULT_DATA_DIR`, i.e. ``$GANHELPERS_DATA`` or ``~/.keras/datasets``). A notebook's
    ``DATA_DIR`` is on Google Drive on Colab, so they are trained once, not in every session."""
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR) / "models"


def file_hash(path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, data_dir, fname: str, md5: str | None = None, *, sha256: str | None = None,
          size: int | None = None) -> Path:
    """Fetch ``url`` into ``data_dir/fname`` with ``keras.utils.get_file`` and check it: against
    ``md5``/``sha256``/``size`` when given, else against the sha256 recorded beside it
    (``.<fname>.sha256``) at its first download (trust on first use: a file changed later, by a
    truncated copy or a tampered mirror, is caught). A cached file that fails a check is fetched
    again; a fresh download that fails raises ``OSError`` and is deleted."""
    import keras

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / fname
    record = _record_path(data_dir, fname)
    first_use = not (md5 or sha256) and not record.exists()
    if not (md5 or sha256) and record.exists():
        sha256 = record.read_text().split()[0]

    def problem(path: Path) -> str | None:
        if size is not None and path.stat().st_size != size:
            return f"has {path.stat().st_size} bytes, expected {size}"
        if md5 and file_hash(path, "md5") != md5:
            return f"does not match md5 {md5}"
        if sha256 and file_hash(path, "sha256") != sha256:
            return f"does not match sha256 {sha256}" + (f" (recorded at its first download in {record})"
                                                        if record.exists() and not first_use else "")
        return None

    if target.exists() and (why := problem(target)):
        log.warning("%s %s; downloading it again", target, why)
        target.unlink()
    algorithm, expected = ("sha256", sha256) if sha256 else ("md5", md5)
    try:
        path = Path(keras.utils.get_file(fname=fname, origin=url, file_hash=expected, hash_algorithm=algorithm,
                                         cache_dir=str(data_dir), cache_subdir=""))
    except ValueError as err:  # Keras's "Incomplete or corrupted file detected"
        target.unlink(missing_ok=True)
        raise OSError(f"{url} downloaded to {target} does not match {algorithm} {expected}: the download is "
                      "corrupt or the file changed upstream; retry") from err
    except KeyboardInterrupt:
        raise
    except Exception as err:  # noqa: BLE001 - Keras wraps URLError/HTTPError/OSError in a plain Exception
        target.unlink(missing_ok=True)
        raise DownloadError(fname, url, data_dir, err) from None
    if why := problem(path):
        path.unlink()
        raise OSError(f"{url} downloaded to {path} {why}: the download is corrupt; retry")
    if first_use:
        from ..experiment import atomic_write

        atomic_write(record, f"{file_hash(path, 'sha256')}  {fname}\n")
        log.info("%s has no published hash: recorded its sha256 in %s; later uses are checked against it",
                 path, record)
    return path


class DownloadError(OSError):
    """A download that failed (no network, a moved URL, a refused connection): one message naming
    the file, the URL and the ways forward."""

    def __init__(self, fname: str, url: str, data_dir, cause: BaseException):
        why = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        super().__init__(
            f"could not download {fname} from {url} ({why}). Ways forward: put a copy of {fname} in {data_dir} "
            "(CLI: --data-dir DIR, the folder holding it), or train offline on the scikit-learn digits "
            "(--preset cpu or --preset smoke); for FID weights, --weights none (plumbing only) or a local file")
        self.fname, self.url, self.data_dir = fname, url, Path(data_dir)



def install(url: str, data_dir, fname: str, *, md5: str | None = None, sha256: str | None = None,
            size: int | None = None, max_bytes: int | None = None, present: bool = False) -> None:
    """Download (checked, see :func:`fetch`) and extract ``fname`` into ``data_dir`` unless its
    completion marker says it was done. ``present``: the dataset's files are there (a folder
    extracted before markers existed); it is trusted, with a warning, only when the archive is
    gone, since an archive left beside an unmarked folder means an extraction cut short."""
    data_dir = Path(data_dir)
    if is_extracted(fname, data_dir):
        return
    if present and not (data_dir / fname).exists():
        log.warning("%s: no completion marker %s, and no archive to extract again; using the folder as it "
                    "is (delete it and call with download=True if images are missing)", data_dir,
                    marker_path(fname, data_dir).name)
        return
    if present:
        log.warning("%s: extraction of %s did not finish (no marker %s); extracting it again", data_dir, fname,
                    marker_path(fname, data_dir).name)
    archive = fetch(url, data_dir, fname, md5, sha256=sha256, size=size)
    extract(archive, data_dir, max_bytes=max_bytes, delete_damaged=True)
