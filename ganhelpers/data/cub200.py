"""CUB-200-2011 (Wah et al. 2011): 11,788 bird photos of 200 species with one bounding box each."""


from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .downloads import DEFAULT_DATA_DIR, install
from .images import _cache_file, _cached, decode_files

log = logging.getLogger(__name__)

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
