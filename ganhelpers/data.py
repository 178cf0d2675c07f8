"""Datasets as ``tf.data`` pipelines of float32 images in [-1, 1], NHWC.

Image files are decoded once with Pillow (which reads JPEG, PNG, BMP, GIF and TIFF, and converts
grayscale, palette, RGBA and CMYK files to RGB), optionally cropped (a bounding box, or the centre
square), resized with antialiasing, and kept as one uint8 array. That array is the cache: it is
saved as ``.npy`` beside the data so a second run skips decoding. Files that cannot be decoded
(truncated, corrupt, not an image, or a decompression bomb over :data:`MAX_PIXELS`) are skipped
with one warning that names them. 16-bit, 32-bit integer and float images are scaled to 8 bits (not
clipped) and EXIF orientation is applied (except when a bounding box is given: the datasets' boxes
are in stored-pixel coordinates). The cache's file name holds a fingerprint of the files' names,
sizes and modification times, so replacing images rebuilds it; a cache that cannot be written
(read-only folder) is skipped with a warning.

Loaders keep their real download code (``keras.utils.get_file`` with an integrity hash) so the
same functions run on Colab; tests drive them on small archives built in the real layout. Every
download is checked against a hash: the pinned one, or (when none is known) the sha256 recorded at
the first download (trust on first use). :func:`extract` unpacks only regular files and folders,
masks permission bits, refuses links, absolute paths and ``..``, caps the total size, and writes a
completion marker last, so an extraction cut short is done again; a damaged archive is deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import shutil
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_DATA_DIR = Path(os.environ.get("GANHELPERS_DATA", Path.home() / ".keras" / "datasets"))
# Pillow's own decompression-bomb warning threshold (~9459 x 9459 pixels): larger files are skipped.
MAX_PIXELS = 89_478_485


def networks_dir(data_dir=None) -> Path:
    """``<data_dir>/models``: where the trained helper networks (the digit classifiers behind the
    ``digits`` features, the MNIST judge) are cached, beside the datasets (``data_dir`` default:
    :data:`DEFAULT_DATA_DIR`, i.e. ``$GANHELPERS_DATA`` or ``~/.keras/datasets``). A notebook's
    ``DATA_DIR`` is on Google Drive on Colab, so they are trained once, not in every session."""
    return Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR) / "models"


# -- decoding ---------------------------------------------------------------------------------

def _open_checked(path):
    """``Image.open`` (header only) refusing more than :data:`MAX_PIXELS` pixels; the caller closes it."""
    from PIL import Image

    im = Image.open(path)
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise ValueError(f"{w}x{h} pixels is over the {MAX_PIXELS}-pixel limit (a decompression bomb?)")
    return im


_EXIF_ORIENTATION = 0x0112


def image_size_of(path) -> tuple[int, int]:
    """(width, height) as displayed (EXIF orientation applied), from the header only; raises for a
    file that is not an image or is too large (see :data:`MAX_PIXELS`)."""
    w, h, _ = image_header(path)
    return w, h


def image_header(path) -> tuple[int, int, str]:
    """(width, height, mode) as displayed, from the header only, with the checks of
    :func:`image_size_of` (not an image, or over :data:`MAX_PIXELS`, raises)."""
    with _open_checked(path) as im:
        w, h = im.size
        turned = im.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
        return (h, w, im.mode) if turned else (w, h, im.mode)


def _to_8bit(im):
    """Deep single-channel modes scaled (not clipped) to 8-bit "L": 16-bit by 65535 -> 255; 32-bit
    integer within 0..65535 likewise (how 16-bit files may open), otherwise its min..max; float
    within [0, 1] by 255, otherwise its min..max. Other modes are returned unchanged."""
    from PIL import Image

    if not (im.mode.startswith("I;16") or im.mode in ("I", "F")):
        return im
    a = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16"):
        a = a / 65535.0
    elif im.mode == "I" and a.size and a.min() >= 0 and a.max() <= 65535:
        a = a / 65535.0
    elif im.mode == "F" and a.size and a.min() >= 0.0 and a.max() <= 1.0:
        pass
    else:
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8), "L")


def _decoded(im, channels: int, orient: bool = True):
    """A loaded Pillow image -> EXIF-oriented (when ``orient``), 8-bit, RGB or L."""
    from PIL import ImageOps

    if orient:
        im = ImageOps.exif_transpose(im)
    return _to_mode(_to_8bit(im), channels)


def read_image(path, channels: int = 3) -> np.ndarray:
    """Decode one file at its own size to uint8 (H, W, channels), EXIF-oriented, deep images scaled
    to 8 bits. Raises ``OSError``/``ValueError`` for an unreadable file or a decompression bomb."""
    with _open_checked(path) as im:
        im.load()
        arr = np.asarray(_decoded(im, channels), dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def load_image(path, image_size: int, channels: int = 3, box: Sequence[float] | None = None,
               crop: str = "center") -> np.ndarray:
    """Decode one file to uint8 (image_size, image_size, channels).

    ``box`` (x, y, width, height in pixels) crops to the square of side max(width, height) centred on
    the box, clamped to the image, so the object is not stretched. Without a box, ``crop="center"``
    takes the largest centred square and ``crop="none"`` resizes the whole image (changing its aspect).
    EXIF orientation is applied when there is no box (boxes refer to the stored pixels).
    Raises ``OSError``/``ValueError`` for an unreadable file or a decompression bomb.
    """
    from PIL import Image

    with _open_checked(path) as im:
        if box is None and crop == "center" and im.format == "JPEG":
            im.draft("RGB", (image_size * 2, image_size * 2))  # fast DCT-domain downscale
        im.load()  # raises OSError on truncated data
        im = _decoded(im, channels, orient=box is None)
        w, h = im.size
        if box is not None:
            x, y, bw, bh = (float(v) for v in box)
            side = min(max(bw, bh), w, h)
            cx, cy = x + bw / 2, y + bh / 2
            left = min(max(cx - side / 2, 0), w - side)
            top = min(max(cy - side / 2, 0), h - side)
            im = im.crop((round(left), round(top), round(left + side), round(top + side)))
        elif crop == "center":
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
        elif crop != "none":
            raise ValueError(f"crop must be 'center' or 'none', got {crop!r}")
        im = im.resize((image_size, image_size), Image.Resampling.LANCZOS)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _to_mode(im, channels: int):
    """Any Pillow mode to RGB (channels=3) or L (channels=1); transparency is composited on white."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        from PIL import Image

        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    target = "RGB" if channels == 3 else "L"
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return im.convert(target) if im.mode != target else im


def decode_files(paths: Sequence, image_size: int, channels: int = 3, boxes: Sequence | None = None,
                 crop: str = "center", workers: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Decode many files in a thread pool (Pillow releases the GIL while decoding).

    Returns the uint8 array of the readable images, in order, and the indices of ``paths`` that
    were kept; unreadable files are skipped with one warning naming them.
    """
    def one(i):
        try:
            return i, load_image(paths[i], image_size, channels, None if boxes is None else boxes[i], crop), None
        except Exception as err:  # noqa: BLE001 - any decoder error means "skip this file"
            return i, None, f"{paths[i]} ({type(err).__name__}: {err})"

    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(len(paths))))
    bad = [msg for _, _, msg in results if msg]
    warn_skipped(bad, len(paths))
    kept = [i for i, arr, _ in results if arr is not None]
    if not kept:
        raise ValueError(f"none of the {len(paths)} image files could be decoded (first: {bad[0]})")
    return np.stack([arr for _, arr, _ in results if arr is not None]), kept


def warn_skipped(bad: Sequence[str], total: int) -> None:
    """One warning naming the unreadable files (``"path (Error: why)"`` strings), at most 20 shown."""
    if bad:
        shown = "; ".join(bad[:20]) + (f"; ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        log.warning("skipped %d unreadable image file(s) of %d: %s", len(bad), total, shown)


def _walk_files(folder: Path):
    """Files under ``folder``, following symlinked sub-folders (data moved to another disk) once each."""
    seen = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            yield Path(top) / name


def list_images(folder) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted); clear errors for a missing or empty folder."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder of images")
    paths = sorted(p for p in _walk_files(folder) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return paths


def fingerprint(paths: Sequence) -> str:
    """12 hex digits over the files' names, sizes and modification times: replacing, adding or
    touching an image changes it (cheap: one ``stat`` per file)."""
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:12]


def _cached(cache_path: Path | None, build):
    """Load ``cache_path`` (.npz, no pickles) if present, else build and save it atomically. An
    unreadable cache is rebuilt; one that cannot be written (read-only folder) is skipped with a warning."""
    if cache_path is not None and cache_path.exists():
        try:
            with np.load(cache_path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zlib.error) as err:
            log.warning("cache %s is unreadable (%s); decoding the images again", cache_path, err)
    arrays = build()
    if cache_path is not None:
        import io

        from . import experiment

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        try:
            experiment.atomic_write(cache_path, buf.getvalue())
        except OSError as err:
            log.warning("cannot write the cache %s (%s: %s); going on without it (the images are decoded "
                        "again next time)", cache_path, type(err).__name__, err)
    return arrays


def _cache_file(folder: Path, prefix: str, paths: Sequence) -> Path:
    """``folder/<prefix>_<count>_<fingerprint>.npz``. When it does not exist yet, stale caches of the
    same prefix (other files) are removed, so replaced images do not pile up old caches."""
    path = folder / f"{prefix}_{len(paths)}_{fingerprint(paths)}.npz"
    if not path.exists():
        for old in folder.glob(f"{prefix}_*_*.npz"):
            try:
                old.unlink()
            except OSError:
                pass
    return path


def load_folder(folder, image_size: int = 64, channels: int = 3, crop: str = "center",
                cache: bool | str | os.PathLike = False) -> np.ndarray:
    """All images under ``folder`` as uint8 (N, image_size, image_size, channels)."""
    paths = list_images(folder)
    cache_path = None
    if cache:
        cache_path = Path(cache) if not isinstance(cache, bool) else \
            _cache_file(Path(folder), f".ganhelpers_{image_size}px_{channels}ch_{crop}", paths)
    arrays = _cached(cache_path, lambda: {"images": decode_files(paths, image_size, channels, crop=crop)[0]})
    return arrays["images"]


# -- tf.data ------------------------------------------------------------------------------------

def to_float(images_uint8):
    """uint8 [0, 255] -> float32 [-1, 1] (works on numpy and on tensors)."""
    return images_uint8 / 127.5 - 1.0 if isinstance(images_uint8, np.ndarray) else \
        _tf().cast(images_uint8, _tf().float32) / 127.5 - 1.0


def _tf():
    import tensorflow as tf

    return tf


def make_dataset(images, batch_size: int, labels=None, shuffle: bool = True, seed: int = 0,
                 repeat: bool = False, drop_remainder: bool = True):
    """uint8 or float images (N, H, W, C) -> ``tf.data.Dataset`` of float32 batches in [-1, 1].

    uint8 stays uint8 in memory (4x smaller) and is scaled per batch. Shuffling reshuffles every
    epoch; ``drop_remainder`` keeps every batch the same size (no retracing, fair BatchNorm).
    """
    tf = _tf()
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    if len(images) < batch_size and drop_remainder:
        raise ValueError(f"only {len(images)} images for batch_size={batch_size}: lower the batch size")
    items = images if labels is None else (images, np.asarray(labels))
    ds = tf.data.Dataset.from_tensor_slices(items)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)

    def scale(x, *rest):
        x = to_float(x) if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
        return (x, *rest) if rest else x

    return ds.map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def image_folder(folder, image_size: int = 64, batch_size: int = 64, channels: int = 3, crop: str = "center",
                 shuffle: bool = True, seed: int = 0, cache: bool | str = True):
    """A folder of image files -> batched ``tf.data.Dataset`` in [-1, 1] (see :func:`load_folder`)."""
    return make_dataset(load_folder(folder, image_size, channels, crop, cache), batch_size,
                        shuffle=shuffle, seed=seed)


# -- downloads ----------------------------------------------------------------------------------

def file_hash(path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _record_path(data_dir: Path, fname: str) -> Path:
    return data_dir / f".{fname}.sha256"


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
        from .experiment import atomic_write

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


class ArchiveError(OSError):
    """An archive that is refused (unsafe member, over the size cap) or damaged."""


class DamagedArchive(ArchiveError):
    """An archive that cannot be read to its end (truncated or corrupt)."""


def marker_path(archive_name: str, dest) -> Path:
    """The completion marker :func:`extract` writes last: ``dest/.extracted-<archive name>``."""
    return Path(dest) / f".extracted-{archive_name}"


def is_extracted(archive_name: str, dest) -> bool:
    """Whether ``archive_name`` was extracted into ``dest`` to the end (its marker exists)."""
    return marker_path(archive_name, dest).is_file()


def _member_parts(member: tarfile.TarInfo, archive) -> tuple[str, ...]:
    """The member's path components, refusing absolute paths, '..' and anything but files and folders."""
    name = member.name
    if "\0" in name or name.startswith("/") or os.path.isabs(name) or ".." in Path(name).parts:
        raise ArchiveError(f"{archive} holds an unsafe path {name!r}; refusing to extract")
    if member.issym() or member.islnk():
        raise ArchiveError(f"{archive} holds a link {name!r}; refusing to extract")
    if not (member.isdir() or (member.isreg() and not member.issparse())):
        kind = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device",
                tarfile.FIFOTYPE: "FIFO"}.get(member.type, f"special member (type {member.type!r})")
        raise ArchiveError(f"{archive} holds a {kind} {name!r}: only regular files and folders are extracted; "
                           "refusing to extract")
    return tuple(part for part in Path(name).parts if part not in ("", "."))


def _check_tree(archive, members, parts, marker_name: str) -> None:
    """Refuse, before anything is written, an archive whose members cannot form one tree (a file
    ``a`` and then ``a/b``, or a file twice as file and folder) or that carries a completion marker
    of its own (which would make an extraction cut short look finished)."""
    files, folders = set(), set()
    for member, names in zip(members, parts, strict=True):
        if names and names[0].startswith(".extracted-") or (names and names[-1] == marker_name):
            raise ArchiveError(f"{archive} holds {member.name!r}, a name ganhelpers keeps for its completion "
                               "markers; refusing to extract")
        for i in range(1, len(names)):
            if names[:i] in files:
                raise ArchiveError(f"{archive} holds {'/'.join(names[:i])!r} as a file and also {member.name!r} "
                                   "inside it; refusing to extract")
            folders.add(names[:i])
        if member.isdir():
            if names in files:
                raise ArchiveError(f"{archive} holds {member.name!r} as a file and as a folder; refusing to extract")
            folders.add(names)
        elif names in folders:
            raise ArchiveError(f"{archive} holds {member.name!r} as a folder and as a file; refusing to extract")
        else:
            files.add(names)


def _file_mode(mode: int) -> int:
    """Like Python's tarfile 'data' filter: no setuid/setgid/sticky, no group/other write, owner rw,
    exec for group/other only when the owner has it."""
    mode = (mode & 0o755) | 0o600
    return mode if mode & 0o100 else mode & ~0o111


def extract(archive, dest, max_bytes: int | None = None, delete_damaged: bool = False) -> Path:
    """Extract a .tar/.tgz/.tar.bz2/.tar.xz into ``dest`` safely; returns ``dest``.

    Only regular files and folders are written (links, devices, FIFOs refuse the whole archive, as
    do absolute paths and '..'); permission bits are masked as by Python's 'data' filter and no
    owner is set. Folders that already exist under ``dest`` (also symlinks the user made, e.g. to
    another disk) are used as they are. The members' total size must stay under ``max_bytes``
    (default: 100 times the archive's size, at least 64 MiB; loaders pass about twice their
    dataset's size). The marker :func:`marker_path` is written last: without it the extraction did
    not finish (see :func:`is_extracted`). A truncated or corrupt archive raises
    :class:`DamagedArchive`, after deleting the archive (and its recorded hash) if ``delete_damaged``.
    """
    archive, dest = Path(archive), Path(dest)
    cap = max_bytes if max_bytes is not None else max(100 * archive.stat().st_size, 64 << 20)
    marker = marker_path(archive.name, dest)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the archive to its end: a damaged one fails here
            parts = [_member_parts(m, archive) for m in members]
            _check_tree(archive, members, parts, marker.name)
            total = sum(m.size for m in members if m.isreg())
            if total > cap:
                raise ArchiveError(f"{archive} would extract to {total:,} bytes, over the {cap:,}-byte cap for it "
                                   "(a decompression bomb, or the wrong file); refusing to extract")
            dest.mkdir(parents=True, exist_ok=True)
            marker.unlink(missing_ok=True)
            folders = []
            for member, names in zip(members, parts, strict=True):
                target = dest.joinpath(*names) if names else dest
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    folders.append((target, (member.mode & 0o755) | 0o700))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.chmod(target, _file_mode(member.mode))
                os.utime(target, (member.mtime, member.mtime))
            for folder, mode in reversed(folders):  # last, so a read-only folder did not block its files
                os.chmod(folder, mode)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        msg = f"{archive} is damaged ({type(err).__name__}: {err})"
        if delete_damaged:
            archive.unlink(missing_ok=True)
            _record_path(archive.parent, archive.name).unlink(missing_ok=True)
            raise DamagedArchive(f"{msg}: deleted it; download it again (call with download=True)") from err
        raise DamagedArchive(f"{msg}: delete it and download it again") from err
    from .experiment import atomic_write

    atomic_write(marker, json.dumps({"archive": archive.name, "archive_bytes": archive.stat().st_size,
                                     "extracted_bytes": total, "members": len(members)}) + "\n")
    return dest


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


# -- CUB-200-2011 -------------------------------------------------------------------------------

# Wah et al. 2011, "The Caltech-UCSD Birds-200-2011 Dataset": 11,788 images of 200 species, each
# with one bounding box (x, y, width, height) in bounding_boxes.txt.
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_ARCHIVE = "CUB_200_2011.tgz"
# 1,150,585,339 bytes (TensorFlow Datasets' url_checksums/caltech_birds2011.txt); JPEGs do not
# compress, so the extracted tree is about as large: the cap is twice that.
CUB_MAX_BYTES = 2 * 1_150_585_339


def cub200_files(root) -> tuple[list[Path], np.ndarray, np.ndarray]:
    """Parse ``CUB_200_2011/images.txt``, ``bounding_boxes.txt`` and ``image_class_labels.txt``.

    Returns image paths, boxes (N, 4) as x, y, width, height, and class ids (N,) from 0 (or -1
    where the labels file is absent).
    """
    root = Path(root)
    base = root / "CUB_200_2011" if (root / "CUB_200_2011").is_dir() else root
    images_txt = base / "images.txt"
    if not images_txt.exists():
        raise FileNotFoundError(f"CUB_200_2011/images.txt not found under DATA_DIR={root}; download with "
                                "ganhelpers.data.cub200(data_dir, download=True)")

    def table(name):
        path = base / name
        if not path.exists():
            return None
        out = {}
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(f"{path}:{line_no}: expected '<image id> <value>...', got {line!r}")
            out[int(parts[0])] = parts[1:]
        return out

    names, boxes, labels = table("images.txt"), table("bounding_boxes.txt"), table("image_class_labels.txt")
    ids = sorted(names)
    if boxes is not None:
        missing = [i for i in ids if i not in boxes]
        if missing:
            raise ValueError(f"{base / 'bounding_boxes.txt'} has no box for image ids {missing[:10]}")
    paths = [base / "images" / names[i][0] for i in ids]
    box_arr = np.array([[float(v) for v in boxes[i][:4]] for i in ids]) if boxes is not None \
        else np.full((len(ids), 4), np.nan)
    label_arr = np.array([int(labels[i][0]) - 1 for i in ids]) if labels is not None else np.full(len(ids), -1)
    return paths, box_arr, label_arr


def cub200(data_dir=None, image_size: int = 64, crop: str = "bbox", download: bool = False,
           url: str = CUB_URL, md5: str | None = CUB_MD5, cache: bool = True) -> dict:
    """CUB-200-2011 birds as uint8 arrays: ``{"images": (N, S, S, 3), "labels": (N,)}``.

    ``crop="bbox"`` crops each image to the square around its bird (the improvement the bird
    experiment proposed: the birds are small in many frames); ``"center"`` takes the centre square
    of the full image. With ``download=True`` the archive (1.1 GB) is fetched, its md5 checked and
    extracted into ``data_dir`` (once: see :func:`install`). Decoded arrays are cached as ``.npz`` in ``data_dir``.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "cub200"
    if crop not in ("bbox", "center"):
        raise ValueError(f"crop must be 'bbox' or 'center', got {crop!r}")
    if download:
        install(url, data_dir, CUB_ARCHIVE, md5=md5, max_bytes=CUB_MAX_BYTES, present=_cub_present(data_dir))
    paths, boxes, labels = cub200_files(data_dir)
    cache_path = _cache_file(data_dir, f"cub200_{image_size}px_{crop}", paths) if cache else None

    def build():
        arr, kept = decode_files(paths, image_size, 3, boxes if crop == "bbox" else None,
                                 crop="center")
        return {"images": arr, "labels": labels[kept]}

    return _cached(cache_path, build)


def _cub_present(data_dir: Path) -> bool:
    return (data_dir / "CUB_200_2011" / "images.txt").exists() or (data_dir / "images.txt").exists()


# -- scikit-learn digits (offline default) ------------------------------------------------------

def digits(image_size: int = 32, channels: int = 1) -> dict:
    """scikit-learn's 1,797 real 8x8 handwritten digit scans (UCI), upsampled to ``image_size``.

    Ships inside scikit-learn, so it needs no network: the offline default of the demo and every
    smoke preset. Returns ``{"images": uint8 (1797, S, S, channels), "labels": int (1797,)}``;
    white digits on black, like MNIST.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    out = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size), Image.Resampling.BICUBIC))
                    for im in raw])[..., None]
    if channels == 3:
        out = np.repeat(out, 3, axis=-1)
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return {"images": out, "labels": d.target.astype(np.int64)}


def load(data_config: dict, data_dir=None, download: bool = False) -> dict:
    """uint8 images (and labels where the dataset has them) for a config's ``data`` section.

    ``name`` is ``digits`` (offline), ``mnist`` (:func:`mnist_padded`: the training set), ``cub200`` or
    ``folder`` (with ``path``).
    """
    name, size = data_config["name"], data_config["image_size"]
    channels = data_config.get("channels", 3)
    if name == "digits":
        return digits(size, channels)
    if name == "cub200":
        source = {k: data_config[k] for k in ("url", "md5") if k in data_config}  # a mirror, or a test's file://
        return cub200(data_dir or data_config.get("data_dir"), size, data_config.get("crop", "bbox"),
                      download=download, **source)
    if name == "folder":
        return {"images": load_folder(data_config["path"], size, channels, data_config.get("crop", "center"),
                                      cache=True)}
    if name == "mnist":  # the training set (60,000); the test set is the judge's (ganhelpers.evaluate)
        d = mnist_padded(data_dir or data_config.get("data_dir"), size, channels, download=download)
        return {"images": d["x_train"], "labels": d["y_train"]}
    raise ValueError(f"unknown dataset {name!r}: use 'digits', 'mnist', 'cub200' or 'folder'")


# -- MNIST --------------------------------------------------------------------------------------

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_MD5 = "8a61469f7ea1b51cbae51d4f78837e45"
# What makes a file MNIST whatever its bytes: its four arrays, their shapes (uint8 all) and the
# exact class counts of LeCun et al.'s training and test sets.
MNIST_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}
MNIST_CLASS_COUNTS = {"y_train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
                      "y_test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)}


def _read_npz(path: Path, keys) -> dict:
    """The arrays ``keys`` of an ``.npz`` (never unpickling); ValueError naming what is wrong."""
    import zipfile

    try:
        z = np.load(path, allow_pickle=False)
    except ValueError as err:  # numpy reads anything that is not .npy/.npz as a pickle, refused here
        raise ValueError(f"{path} is not an .npz archive (numpy would have to unpickle it, which is refused: "
                         f"{err})") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable .npz archive ({err})") from err
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not an .npz archive of {', '.join(keys)}")
    with z:
        if sorted(z.files) != sorted(keys):
            missing, extra = sorted(set(keys) - set(z.files)), sorted(set(z.files) - set(keys))
            raise ValueError(f"{path} has keys {sorted(z.files)}, expected exactly {list(keys)}"
                             + (f" (missing {missing})" if missing else "")
                             + (f" (unexpected {extra})" if extra else ""))
        arrays = {}
        for k in keys:
            try:
                arrays[k] = z[k]
            except ValueError as err:  # an object array: loading it would unpickle
                raise ValueError(f"{path}: array {k!r} is a pickled object array, refused (allow_pickle=False); "
                                 "MNIST's arrays are uint8") from err
            except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as err:
                raise ValueError(f"{path}: array {k!r} cannot be read ({err}); the file is damaged") from err
    return arrays


def check_mnist_arrays(arrays: dict, where="mnist.npz") -> None:
    """Raise ValueError unless ``arrays`` are MNIST's: uint8 ``x_train`` (60000, 28, 28), ``y_train``
    (60000,), ``x_test`` (10000, 28, 28), ``y_test`` (10000,), pixels spanning 0..255, labels 0..9 with
    exactly MNIST's class counts (:data:`MNIST_CLASS_COUNTS`). The message names every problem."""
    problems = []
    for k, shape in MNIST_SHAPES.items():
        a = arrays[k]
        if a.dtype != np.uint8:
            problems.append(f"{k} has dtype {a.dtype}, expected uint8")
        if a.shape != shape:
            problems.append(f"{k} has shape {a.shape}, expected {shape}")
    for k in ("x_train", "x_test"):
        a = arrays[k]
        if a.size and a.dtype == np.uint8 and (int(a.min()) != 0 or int(a.max()) != 255):
            problems.append(f"{k} spans {int(a.min())}..{int(a.max())}, expected MNIST's 0..255")
    for k, expected in MNIST_CLASS_COUNTS.items():
        y = np.asarray(arrays[k])
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9):
            problems.append(f"{k} holds labels outside the integers 0..9")
        elif tuple(np.bincount(y.astype(np.int64), minlength=10).tolist()) != expected:
            problems.append(f"{k} has class counts {np.bincount(y.astype(np.int64), minlength=10).tolist()}, "
                            f"expected MNIST's {list(expected)}")
    if problems:
        raise ValueError(f"{where} is not MNIST: " + "; ".join(problems))


def mnist(data_dir=None, image_size: int = 28, channels: int = 1, url: str = MNIST_URL,
          md5: str | None = MNIST_MD5, path=None) -> dict:
    """MNIST (LeCun et al. 1998) from an ``mnist.npz`` like the one ``keras.datasets.mnist`` downloads.

    Returns uint8 ``{"x_train": (60000, S, S, C), "y_train", "x_test": (10000, S, S, C), "y_test"}``,
    resized when ``image_size != 28``. The file is ``path`` if given, else ``data_dir/mnist.npz``,
    fetched from ``url`` with its ``md5`` checked when absent. A local file whose bytes differ from
    ``md5`` (a copy re-saved from the original IDX files, say) is used when its arrays are MNIST's
    (:func:`check_mnist_arrays`: keys, shapes, dtypes, value range, exact class counts), with one
    logged line saying so; anything else is a ValueError that names what is wrong. Never unpickles.
    """
    if path is not None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"MNIST file {source} (data.path) does not exist; give the path of an mnist.npz, "
                                    "or leave data.path out to download Keras' copy")
    else:
        data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
        local = data_dir / "mnist.npz"
        # a local file with other bytes is judged by its arrays below; fetch would replace it
        source = local if local.is_file() and md5 and file_hash(local, "md5") != md5 else \
            fetch(url, data_dir, "mnist.npz", md5)
    digest = file_hash(source, "md5")
    trusted = md5 is not None and digest == md5
    try:
        arrays = _read_npz(source, tuple(MNIST_SHAPES))
        if not trusted:
            check_mnist_arrays(arrays, source)
    except ValueError as err:
        raise ValueError(f"{err}. Its md5 is {digest}" + ("" if trusted else f", not Keras' {md5}")
                         + ": replace it with the real mnist.npz, or delete it to download Keras' copy from "
                         + url) from None
    if not trusted and md5 is not None:
        log.info("%s: md5 %s differs from Keras' %s, but its arrays are MNIST's (keys, shapes, uint8 0..255, "
                 "class counts): using it", source, digest, md5)
    for key in ("x_train", "x_test"):
        arrays[key] = _resize_gray(arrays[key], image_size, channels)
    return arrays


MNIST_ARRAYS = {"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)}


def mnist_padded(data_dir=None, image_size: int = 32, channels: int = 1, download: bool = True) -> dict:
    """MNIST for the ``mnist`` presets and their judge: uint8 ``{"x_train": (60000, S, S, C),
    "y_train", "x_test": (10000, S, S, C), "y_test"}``, white digits on black.

    28 becomes 32 by zero padding 2 pixels on each side (``image_size=32``, the default): the digit
    keeps its scale and its centring, as in LeCun et al. 1998's LeNet-5, whose 32x32 input is the
    28x28 image with a blank border (section II.B). Any other ``image_size`` is the bicubic resize
    of the 28x28 image. A ``mnist.npz`` already in ``data_dir`` (``keras.datasets.mnist``'s keys,
    shapes and dtypes, e.g. ``../shared/datasets/mnist.npz``) is read as it is; without one,
    :func:`mnist` downloads Keras' file (md5 checked) into ``data_dir`` when ``download`` is true.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    path = data_dir / "mnist.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in MNIST_ARRAYS}
        except (KeyError, ValueError, OSError) as err:
            raise ValueError(f"{path} is not an mnist.npz with keys {list(MNIST_ARRAYS)} ({err})") from err
        for key, shape in MNIST_ARRAYS.items():
            if arrays[key].shape != shape or arrays[key].dtype != np.uint8:
                raise ValueError(f"{path}: {key} is {arrays[key].dtype} {arrays[key].shape}, MNIST's is uint8 {shape}")
    elif download:
        arrays = mnist(data_dir, 28, 1)
        arrays = {k: v[..., 0] if v.ndim == 4 else v for k, v in arrays.items()}
    else:
        raise FileNotFoundError(f"mnist.npz not found in DATA_DIR={data_dir}; download it with "
                                "ganhelpers.data.mnist(data_dir) (11 MB) or pass the folder holding it")
    for key in ("x_train", "x_test"):
        if image_size == 32:
            arrays[key] = _resize_gray(np.pad(arrays[key], ((0, 0), (2, 2), (2, 2))), 32, channels)
        else:
            arrays[key] = _resize_gray(arrays[key], image_size, channels)
    arrays["y_train"], arrays["y_test"] = arrays["y_train"].astype(np.int64), arrays["y_test"].astype(np.int64)
    return arrays


def _resize_gray(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, H, W) uint8 -> (N, S, S, channels) uint8, bicubic when the size changes."""
    from PIL import Image

    if images.shape[1] != image_size:
        images = np.stack([np.asarray(Image.fromarray(im).resize((image_size, image_size),
                                                                 Image.Resampling.BICUBIC)) for im in images])
    images = images[..., None]
    return np.repeat(images, 3, axis=-1) if channels == 3 else images


# -- TensorFlow flowers -------------------------------------------------------------------------

# The 3,670 photos (5 classes, one folder each) used by the TensorFlow tutorials.
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
FLOWERS_ARCHIVE = "flower_photos.tgz"
# Size and sha256 as listed in TensorFlow Datasets' url_checksums/tf_flowers.txt (for the same file at
# http://download.tensorflow.org/example_images/); not re-computed here (no download in development).
FLOWERS_SIZE = 228_813_984
FLOWERS_SHA256 = "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
FLOWERS_MAX_BYTES = 2 * FLOWERS_SIZE


def flowers(data_dir=None, image_size: int = 64, download: bool = False, url: str = FLOWERS_URL,
            md5: str | None = None, cache: bool = True, sha256: str | None = FLOWERS_SHA256,
            size: int | None = FLOWERS_SIZE) -> dict:
    """The TF flowers photos, centre-cropped and resized: ``{"images": uint8 (N, S, S, 3), "labels"}``.

    With ``download=True`` ``flower_photos.tgz`` (218 MB) is fetched, checked against ``sha256`` and
    ``size`` (TFDS's listing; pass ``None`` for both and no ``md5`` to trust the first download and
    check later uses against it) and extracted into ``data_dir`` once. Labels index the sorted class
    folders.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "flowers"
    root = data_dir / "flower_photos"
    if download:
        install(url, data_dir, FLOWERS_ARCHIVE, md5=md5, sha256=sha256, size=size, max_bytes=FLOWERS_MAX_BYTES,
                present=root.is_dir())
    if not root.is_dir():
        raise FileNotFoundError(f"flower_photos/ not found under DATA_DIR={data_dir}; download with "
                                "ganhelpers.data.flowers(data_dir, download=True)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths = list_images(root)
    labels = np.array([classes.index(p.relative_to(root).parts[0]) if len(p.relative_to(root).parts) > 1
                       else -1 for p in paths])
    cache_path = _cache_file(data_dir, f"flowers_{image_size}px", paths) if cache else None

    def build():
        arr, kept = decode_files(paths, image_size, 3, crop="center")
        return {"images": arr, "labels": labels[kept]}

    return _cached(cache_path, build)
