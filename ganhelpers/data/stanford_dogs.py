"""Stanford Dogs (Khosla et al. 2011): 20,580 photos of 120 breeds with PASCAL VOC boxes, downloaded
and checked (sha256, size), extracted safely, optionally cropped to each dog's box; the dog experiment
(:mod:`ganhelpers.dogs`) trains on it."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .downloads import DEFAULT_DATA_DIR, fetch, install
from .images import IMAGE_EXTENSIONS, _cached, decode_files

log = logging.getLogger(__name__)

# Khosla et al. 2011, "Novel Dataset for Fine-Grained Image Categorization": 20,580 ImageNet images
# of 120 breeds, each with PASCAL VOC-style XML boxes. Sizes and sha256 as listed in TensorFlow
# Datasets' url_checksums/stanford_dogs.txt (the site publishes no hash of its own).
DOGS_URL = "http://vision.stanford.edu/aditya86/ImageNetDogs/"
DOGS_ARCHIVES = {
    "images.tar": (793_579_520, "a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58"),
    "annotation.tar": (21_852_160, "662ed36f707be6b195c2fda392d8e153e83af28cedc8e2134a649f198def30fd"),
}


def fetch_verified(url: str, data_dir, fname: str, size: int | None = None, sha256: str | None = None) -> Path:
    """``data.fetch`` with a sha256 and a byte size: a cached file that fails either check is fetched
    again; a fresh download that fails raises ``OSError`` and is deleted. With neither, the first
    download's sha256 is recorded and later uses are checked against it."""
    return fetch(url, data_dir, fname, sha256=sha256, size=size)


def parse_annotation(path) -> dict:
    """One Stanford Dogs annotation (PASCAL VOC XML, a file without extension) ->
    ``{"width", "height", "names": [...], "boxes": float (K, 4) as xmin, ymin, xmax, ymax}``."""
    try:
        root = ET.parse(path).getroot()
        size = root.find("size")
        width, height = (int(float(size.findtext(k))) for k in ("width", "height"))
        names, boxes = [], []
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            boxes.append([float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
            names.append(obj.findtext("name", ""))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is not a Stanford Dogs annotation (<annotation><size><width>, <height> and "
                         f"<object><bndbox><xmin>...): {type(err).__name__}: {err}") from err
    if not boxes:
        raise ValueError(f"{path} has no <object><bndbox>: nothing to crop to")
    return {"width": width, "height": height, "names": names, "boxes": np.array(boxes, dtype=np.float64)}


def dog_box(annotation: dict, mode: str = "largest") -> tuple[float, float, float, float]:
    """The crop box (x, y, width, height) of an annotation with one or more dogs.

    ``"largest"`` (default) keeps the biggest dog: with two dogs far apart their union is mostly
    background, the very thing the crop is meant to remove. ``"union"`` keeps every dog in frame.
    Boxes are clamped to the image.
    """
    b = annotation["boxes"]
    if mode == "largest":
        xmin, ymin, xmax, ymax = b[np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))]
    elif mode == "union":
        xmin, ymin = b[:, 0].min(), b[:, 1].min()
        xmax, ymax = b[:, 2].max(), b[:, 3].max()
    else:
        raise ValueError(f"box mode must be 'largest' or 'union', got {mode!r}")
    xmin, xmax = np.clip([xmin, xmax], 0, annotation["width"])
    ymin, ymax = np.clip([ymin, ymax], 0, annotation["height"])
    return float(xmin), float(ymin), float(xmax - xmin), float(ymax - ymin)


def stanford_dogs_files(root, box: str = "largest") -> tuple[list[Path], list, np.ndarray, list[str]]:
    """Image paths under ``root/Images/<wnid>-<breed>/``, their crop boxes from
    ``root/Annotation/<wnid>-<breed>/<stem>`` (None where an annotation is missing), breed labels
    from 0 and the sorted breed folder names."""
    root = Path(root)
    images = root / "Images"
    if not images.is_dir():
        raise FileNotFoundError(f"Images/ not found under DATA_DIR={root}; download with "
                                "ganhelpers.dogs.stanford_dogs(data_dir, download=True)")
    breeds = sorted(p.name for p in images.iterdir() if p.is_dir())
    paths, boxes, labels = [], [], []
    for label, breed in enumerate(breeds):
        for path in sorted(p for p in (images / breed).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
            ann = root / "Annotation" / breed / path.stem
            paths.append(path)
            boxes.append(dog_box(parse_annotation(ann), box) if ann.is_file() else None)
            labels.append(label)
    if not paths:
        raise ValueError(f"no images under {images}/<breed>/: is the archive extracted completely?")
    return paths, boxes, np.array(labels, dtype=np.int64), breeds


def stanford_dogs(data_dir=None, image_size: int = 64, crop: str = "bbox", box: str = "largest",
                  download: bool = False, url: str = DOGS_URL, archives: dict | None = None,
                  cache: bool = True) -> dict:
    """Stanford Dogs as ``{"images": uint8 (N, S, S, 3), "labels": (N,), "breeds": [120 folder names]}``.

    ``crop="bbox"`` crops each image to the square around its dog (``box`` picks the largest dog or
    the union of all, see :func:`dog_box`; images without an annotation fall back to the centre
    square, with a warning); ``"center"`` takes the centre square of the whole frame. With
    ``download=True`` the two archives (757 MB + 21 MB) are fetched from ``url``, checked against
    ``archives`` ({file name: (bytes, sha256)}, default :data:`DOGS_ARCHIVES`) and extracted into
    ``data_dir``. Decoded arrays are cached as ``.npz`` in ``data_dir``.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "stanford_dogs"
    if crop not in ("bbox", "center"):
        raise ValueError(f"crop must be 'bbox' or 'center', got {crop!r}")
    archives = DOGS_ARCHIVES if archives is None else archives
    if download:
        for fname, (size, sha256) in archives.items():
            if (data_dir / f".{fname}.extracted").exists():  # earlier versions' marker: extracted to the end
                continue
            # An uncompressed tar holds no more than its own size; twice that allows for a re-pack.
            install(url.rstrip("/") + "/" + fname, data_dir, fname, sha256=sha256, size=size,
                             max_bytes=2 * size if size else None)
    paths, boxes, labels, breeds = stanford_dogs_files(data_dir, box)
    if crop == "bbox":
        missing = sum(b is None for b in boxes)
        if missing == len(boxes):
            raise FileNotFoundError(f"no annotation under {data_dir / 'Annotation'}: download annotation.tar "
                                    "(stanford_dogs(..., download=True)) or use crop='center'")
        if missing:
            log.warning("%d of %d images have no annotation; they are centre-cropped", missing, len(boxes))
    tag = f"bbox-{box}" if crop == "bbox" else crop
    cache_path = data_dir / f"stanford_dogs_{image_size}px_{tag}_{len(paths)}.npz" if cache else None

    def build():
        arr, kept = decode_files(paths, image_size, 3, boxes if crop == "bbox" else None, crop="center")
        return {"images": arr, "labels": labels[kept]}

    out = _cached(cache_path, build)
    out["breeds"] = breeds
    return out


def dog_examples(data_dir=None, n: int = 8, image_size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random dogs twice, uint8: the whole frame's centre square and the bounding-box crop."""
    paths, boxes, _, _ = stanford_dogs_files(DEFAULT_DATA_DIR / "stanford_dogs"
                                             if data_dir is None else data_dir)
    pick = [i for i in np.random.default_rng(seed).permutation(len(paths)) if boxes[i] is not None][:n]
    raw, _ = decode_files([paths[i] for i in pick], image_size, 3, crop="center")
    cropped, _ = decode_files([paths[i] for i in pick], image_size, 3, [boxes[i] for i in pick])
    return raw, cropped
