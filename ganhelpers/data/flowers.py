"""TensorFlow's flower photos (3,670 images of 5 kinds)."""


from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .downloads import DEFAULT_DATA_DIR, install
from .images import _cache_file, _cached, decode_files, list_images

log = logging.getLogger(__name__)

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
