"""Datasets as ``tf.data`` pipelines of float32 images in [-1, 1], NHWC.

Image files are decoded once with Pillow (which reads JPEG, PNG, BMP, GIF and TIFF, and converts
grayscale, palette, RGBA and CMYK files to RGB), optionally cropped (a bounding box, or the centre
square), resized with antialiasing, and kept as one uint8 array. That array is the cache: it is
saved as ``.npy`` beside the data so a second run skips decoding. Files that cannot be decoded
(truncated, corrupt, not an image) are skipped with one warning that names them.

Loaders keep their real download code (``keras.utils.get_file`` with an integrity hash) so the
same functions run on Colab; tests drive them on small archives built in the real layout.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_DATA_DIR = Path(os.environ.get("GANHELPERS_DATA", Path.home() / ".keras" / "datasets"))


# -- decoding ---------------------------------------------------------------------------------

def load_image(path, image_size: int, channels: int = 3, box: Sequence[float] | None = None,
               crop: str = "center") -> np.ndarray:
    """Decode one file to uint8 (image_size, image_size, channels).

    ``box`` (x, y, width, height in pixels) crops to the square of side max(width, height) centred on
    the box, clamped to the image, so the object is not stretched. Without a box, ``crop="center"``
    takes the largest centred square and ``crop="none"`` resizes the whole image (changing its aspect).
    Raises ``OSError``/``ValueError`` for an unreadable file.
    """
    from PIL import Image

    with Image.open(path) as im:
        if box is None and crop == "center" and im.format == "JPEG":
            im.draft("RGB", (image_size * 2, image_size * 2))  # fast DCT-domain downscale
        im.load()  # raises OSError on truncated data
        im = _to_mode(im, channels)
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
    if bad:
        shown = "; ".join(bad[:20]) + (f"; ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        log.warning("skipped %d unreadable image file(s) of %d: %s", len(bad), len(paths), shown)
    kept = [i for i, arr, _ in results if arr is not None]
    if not kept:
        raise ValueError(f"none of the {len(paths)} image files could be decoded (first: {bad[0]})")
    return np.stack([arr for _, arr, _ in results if arr is not None]), kept


def list_images(folder) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted); clear errors for a missing or empty folder."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not paths:
        raise ValueError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return paths


def _cached(cache_path: Path | None, build):
    """Load ``cache_path`` (.npz) if present, else build and save it atomically."""
    if cache_path is not None and cache_path.exists():
        with np.load(cache_path) as z:
            return {k: z[k] for k in z.files}
    arrays = build()
    if cache_path is not None:
        import io

        from .experiment import atomic_write

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write(cache_path, buf.getvalue())
    return arrays


def load_folder(folder, image_size: int = 64, channels: int = 3, crop: str = "center",
                cache: bool | str | os.PathLike = False) -> np.ndarray:
    """All images under ``folder`` as uint8 (N, image_size, image_size, channels)."""
    paths = list_images(folder)
    cache_path = None
    if cache:
        cache_path = Path(cache) if not isinstance(cache, bool) else \
            Path(folder) / f".ganhelpers_{image_size}px_{channels}ch_{crop}_{len(paths)}.npz"
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


def fetch(url: str, data_dir, fname: str, md5: str | None = None) -> Path:
    """Fetch ``url`` into ``data_dir/fname`` with ``keras.utils.get_file`` (resumable cache; the
    hash is checked after the download, and a cached file with a wrong hash is fetched again)."""
    import keras

    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / fname
    if target.exists() and md5 and file_hash(target) != md5:
        log.warning("%s has the wrong md5; downloading it again", target)
        target.unlink()
    path = keras.utils.get_file(fname=fname, origin=url, file_hash=md5, hash_algorithm="md5",
                                cache_dir=str(data_dir), cache_subdir="")
    if md5 and file_hash(path) != md5:
        raise OSError(f"{path} does not match md5 {md5}: the download is corrupt; delete it and retry")
    return Path(path)


def extract(archive, dest) -> Path:
    """Extract a .tar/.tgz safely (no absolute paths or '..' escapes)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        root = dest.resolve()
        for member in tar.getmembers():
            target = (dest / member.name).resolve()
            if root != target and root not in target.parents:
                raise OSError(f"{archive} holds an unsafe path {member.name!r}; refusing to extract")
            if member.issym() or member.islnk():
                raise OSError(f"{archive} holds a link {member.name!r}; refusing to extract")
        tar.extractall(dest)
    return dest


# -- CUB-200-2011 -------------------------------------------------------------------------------

# Wah et al. 2011, "The Caltech-UCSD Birds-200-2011 Dataset": 11,788 images of 200 species, each
# with one bounding box (x, y, width, height) in bounding_boxes.txt.
CUB_URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz"
CUB_MD5 = "97eceeb196236b17998738112f37df78"
CUB_ARCHIVE = "CUB_200_2011.tgz"


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
    extracted into ``data_dir``. Decoded arrays are cached as ``.npz`` in ``data_dir``.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "cub200"
    if crop not in ("bbox", "center"):
        raise ValueError(f"crop must be 'bbox' or 'center', got {crop!r}")
    if download and not _cub_present(data_dir):
        archive = fetch(url, data_dir, CUB_ARCHIVE, md5)
        extract(archive, data_dir)
    paths, boxes, labels = cub200_files(data_dir)
    cache_path = data_dir / f"cub200_{image_size}px_{crop}_{len(paths)}.npz" if cache else None

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

    ``name`` is ``digits`` (offline), ``cub200`` or ``folder`` (with ``path``).
    """
    name, size = data_config["name"], data_config["image_size"]
    channels = data_config.get("channels", 3)
    if name == "digits":
        return digits(size, channels)
    if name == "cub200":
        return cub200(data_dir or data_config.get("data_dir"), size, data_config.get("crop", "bbox"),
                      download=download)
    if name == "folder":
        return {"images": load_folder(data_config["path"], size, channels, data_config.get("crop", "center"),
                                      cache=True)}
    raise ValueError(f"unknown dataset {name!r}: use 'digits', 'cub200' or 'folder'")


# -- MNIST --------------------------------------------------------------------------------------

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_MD5 = "8a61469f7ea1b51cbae51d4f78837e45"


def mnist(data_dir=None, image_size: int = 28, channels: int = 1, url: str = MNIST_URL,
          md5: str | None = MNIST_MD5) -> dict:
    """MNIST (LeCun et al. 1998) from the ``mnist.npz`` that ``keras.datasets.mnist`` downloads.

    Returns uint8 ``{"x_train": (60000, S, S, C), "y_train", "x_test": (10000, S, S, C), "y_test"}``,
    resized when ``image_size != 28``. The file is fetched with its md5 checked, into ``data_dir``.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    path = fetch(url, data_dir, "mnist.npz", md5)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{path} is not a valid mnist.npz ({err}); delete it and download again") from err
    for key in ("x_train", "x_test"):
        arrays[key] = _resize_gray(arrays[key], image_size, channels)
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


def flowers(data_dir=None, image_size: int = 64, download: bool = False, url: str = FLOWERS_URL,
            md5: str | None = None, cache: bool = True) -> dict:
    """The TF flowers photos, centre-cropped and resized: ``{"images": uint8 (N, S, S, 3), "labels"}``.

    With ``download=True`` ``flower_photos.tgz`` (218 MB) is fetched and extracted into ``data_dir``;
    pass ``md5`` to check it. Labels index the sorted class folders.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "flowers"
    root = data_dir / "flower_photos"
    if download and not root.is_dir():
        extract(fetch(url, data_dir, FLOWERS_ARCHIVE, md5), data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"flower_photos/ not found under DATA_DIR={data_dir}; download with "
                                "ganhelpers.data.flowers(data_dir, download=True)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths = list_images(root)
    labels = np.array([classes.index(p.relative_to(root).parts[0]) if len(p.relative_to(root).parts) > 1
                       else -1 for p in paths])
    cache_path = data_dir / f"flowers_{image_size}px_{len(paths)}.npz" if cache else None

    def build():
        arr, kept = decode_files(paths, image_size, 3, crop="center")
        return {"images": arr, "labels": labels[kept]}

    return _cached(cache_path, build)
