"""Image files to uint8 arrays: the one reader every loader, ``fid``, ``eval`` and ``sample`` use.

Pillow decodes (JPEG, PNG, BMP, GIF, TIFF, WebP; grayscale, palette, RGBA and CMYK to RGB); a file over
:data:`MAX_PIXELS` pixels (a decompression bomb), truncated, corrupt or not an image is skipped with one
warning naming it; 16/32-bit and float images are scaled to 8 bits; EXIF orientation is applied (not
with a bounding box: the datasets' boxes are in stored pixels); crops, antialiased resizing, and the
``.npy`` cache beside the data whose name holds a fingerprint of the files (see the package docstring).
"""


from __future__ import annotations

import hashlib
import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Pillow's own decompression-bomb warning threshold (~9459 x 9459 pixels): larger files are skipped.
MAX_PIXELS = 89_478_485


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

        from .. import experiment

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
