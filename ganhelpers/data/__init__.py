"""Datasets as ``tf.data`` pipelines of float32 images in [-1, 1], NHWC.

One module an idea: :mod:`.images` (decoding, the one image reader, the array cache),
:mod:`.pipeline` (``tf.data``), :mod:`.downloads` (checked downloads, where data lives),
:mod:`.archives` (safe extraction), and one module per dataset (:mod:`.digits`, :mod:`.mnist`,
:mod:`.cub200`, :mod:`.stanford_dogs`, :mod:`.flowers`), each behind one line of
:data:`DATASETS`, the registry :func:`load` reads a config's ``data.name`` from.

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

from .archives import (  # noqa: F401
    ArchiveError,
    DamagedArchive,
    extract,
    is_extracted,
    marker_path,
)
from .cub200 import (  # noqa: F401
    CUB_ARCHIVE,
    CUB_MAX_BYTES,
    CUB_MD5,
    CUB_URL,
    cub200,
    cub200_files,
)
from .digits import (  # noqa: F401
    digits,
)
from .downloads import (  # noqa: F401
    DEFAULT_DATA_DIR,
    DownloadError,
    fetch,
    file_hash,
    install,
    networks_dir,
)
from .flowers import (  # noqa: F401
    FLOWERS_ARCHIVE,
    FLOWERS_MAX_BYTES,
    FLOWERS_SHA256,
    FLOWERS_SIZE,
    FLOWERS_URL,
    flowers,
)
from .images import (  # noqa: F401
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    _cached,
    _open_checked,
    decode_files,
    fingerprint,
    image_header,
    image_size_of,
    list_images,
    load_folder,
    load_image,
    read_image,
    warn_skipped,
)
from .mnist import (  # noqa: F401
    MNIST_ARRAYS,
    MNIST_CLASS_COUNTS,
    MNIST_MD5,
    MNIST_SHAPES,
    MNIST_URL,
    check_mnist_arrays,
    mnist,
    mnist_padded,
)
from .pipeline import (  # noqa: F401
    image_folder,
    make_dataset,
    to_float,
)
from .stanford_dogs import (  # noqa: F401
    DOGS_ARCHIVES,
    DOGS_URL,
    dog_box,
    parse_annotation,
    stanford_dogs,
    stanford_dogs_files,
)


def _digits(data_config, data_dir, download):
    return digits(data_config["image_size"], data_config.get("channels", 3))


def _cub200(data_config, data_dir, download):
    source = {k: data_config[k] for k in ("url", "md5") if k in data_config}  # a mirror, or a test's file://
    return cub200(data_dir or data_config.get("data_dir"), data_config["image_size"], data_config.get("crop", "bbox"),
                  download=download, **source)


def _folder(data_config, data_dir, download):
    return {"images": load_folder(data_config["path"], data_config["image_size"], data_config.get("channels", 3),
                                  data_config.get("crop", "center"), cache=True)}


def _mnist(data_config, data_dir, download):
    # the training set (60,000); the test set is the judge's (ganhelpers.evaluate)
    d = mnist_padded(data_dir or data_config.get("data_dir"), data_config["image_size"], data_config.get("channels", 3),
                     download=download)
    return {"images": d["x_train"], "labels": d["y_train"]}


def _stanford_dogs(data_config, data_dir, download):
    return stanford_dogs(data_dir or data_config.get("data_dir"), data_config["image_size"],
                         data_config.get("crop", "bbox"), data_config.get("box", "largest"), download=download)


def _flowers(data_config, data_dir, download):
    return flowers(data_dir or data_config.get("data_dir"), data_config["image_size"], download=download)


# name -> loader(data_config, data_dir, download) -> {"images": uint8 (N, H, W, C), "labels"?}: a new
# dataset is one module and one line here
DATASETS = {"digits": _digits, "mnist": _mnist, "cub200": _cub200, "stanford_dogs": _stanford_dogs, "folder": _folder,
            "flowers": _flowers}


def load(data_config: dict, data_dir=None, download: bool = False) -> dict:
    """uint8 images (and labels where the dataset has them) for a config's ``data`` section: ``name``
    is one of :data:`DATASETS` (``digits`` offline; ``mnist``: :func:`mnist_padded`'s training set;
    ``cub200``; ``stanford_dogs``; ``folder`` with ``path``; ``flowers``)."""
    name = data_config["name"]
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: use {', '.join(repr(n) for n in DATASETS)}")
    return DATASETS[name](data_config, data_dir, download)
