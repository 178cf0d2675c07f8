"""MNIST (LeCun et al. 1998): Keras' download and its md5, or a local ``mnist.npz`` judged by its arrays."""


from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np

from .downloads import DEFAULT_DATA_DIR, fetch, file_hash

log = logging.getLogger(__name__)

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
