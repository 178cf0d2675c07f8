"""Data: the CUB-200-2011 loader on a small archive in the real layout, bad image files, digits."""

import io
import logging
import tarfile

import numpy as np
import pytest
from PIL import Image

from ganhelpers import data


def _jpeg(array, mode=None, **save):
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, format="JPEG", quality=95, **save)
    return buf.getvalue()


def _bird_image(rng, w=120, h=80, box=(30, 20, 40, 30)):
    """Gray background with a red bird filling ``box`` (x, y, width, height)."""
    img = np.full((h, w, 3), 128, np.uint8)
    x, y, bw, bh = box
    img[y:y + bh, x:x + bw] = (230, 20, 20)
    return img


@pytest.fixture
def cub_archive(tmp_path):
    return bird_archive(tmp_path)


def bird_archive(tmp_path):
    """CUB_200_2011.tgz with the real files: images.txt, bounding_boxes.txt, image_class_labels.txt,
    classes.txt and images/<class>/<file>.jpg."""
    rng = np.random.default_rng(0)
    entries, boxes = [], []
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    files = {}
    for i in range(6):
        cls = classes[i % 2]
        name = f"{cls}/{cls.split('.')[1]}_{i:04d}_{100 + i}.jpg"
        box = (30 + i, 20, 40, 30)
        files[f"CUB_200_2011/images/{name}"] = _jpeg(_bird_image(rng, box=box))
        entries.append(name)
        boxes.append(box)
    files["CUB_200_2011/images.txt"] = "".join(f"{i + 1} {n}\n" for i, n in enumerate(entries)).encode()
    files["CUB_200_2011/bounding_boxes.txt"] = "".join(
        f"{i + 1} {float(x)} {float(y)} {float(w)} {float(h)}\n" for i, (x, y, w, h) in enumerate(boxes)).encode()
    files["CUB_200_2011/image_class_labels.txt"] = "".join(f"{i + 1} {i % 2 + 1}\n" for i in range(6)).encode()
    files["CUB_200_2011/classes.txt"] = "".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)).encode()
    path = tmp_path / "CUB_200_2011.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_cub200_downloads_checks_extracts_and_crops_to_the_bird(tmp_path, cub_archive):
    md5 = data.file_hash(cub_archive)
    out = data.cub200(tmp_path / "cub", image_size=32, crop="bbox", download=True,
                      url=cub_archive.as_uri(), md5=md5)
    assert out["images"].shape == (6, 32, 32, 3) and out["images"].dtype == np.uint8
    assert out["labels"].tolist() == [0, 1, 0, 1, 0, 1]
    # The box is 40x30: its 40x40 square crop is at least 3/4 bird (red), the centre all bird.
    centre = out["images"][:, 12:20, 12:20].astype(int)
    assert (centre[..., 0] > 180).all() and (centre[..., 1] < 80).all()
    full = data.cub200(tmp_path / "cub", image_size=32, crop="center", cache=False)
    red = (full["images"][..., 0] > 180) & (full["images"][..., 1] < 80)
    assert 0.05 < red.mean() < 0.35  # the bird is small in the full frame: the reason for the crop
    # A second call is served from the .npz cache without the images.
    assert len(list((tmp_path / "cub").glob("cub200_32px_bbox_6_*.npz"))) == 1


def test_cub200_wrong_md5_and_missing_folder(tmp_path, cub_archive):
    with pytest.raises(Exception, match="(?i)hash|md5|corrupt"):
        data.cub200(tmp_path / "cub", download=True, url=cub_archive.as_uri(), md5="0" * 32)
    with pytest.raises(FileNotFoundError, match="images.txt not found under DATA_DIR=.*download=True"):
        data.cub200(tmp_path / "nowhere")


def test_bad_files_are_skipped_with_one_warning_naming_them(tmp_path, caplog):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 255
    good = _jpeg(rgb)
    (folder / "a_rgb.jpg").write_bytes(good)
    (folder / "b_truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "c_not_an_image.png").write_bytes(b"this is text, not a PNG")
    Image.fromarray(np.full((20, 20), 200, np.uint8), "L").save(folder / "d_gray.png")
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[:10, :, 3] = 0  # top half transparent: composited on white
    Image.fromarray(rgba, "RGBA").save(folder / "e_rgba.png")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "f_cmyk.jpg")  # pure red in CMYK
    with caplog.at_level(logging.WARNING, logger="ganhelpers.data"):
        images = data.load_folder(folder, image_size=16, channels=3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "b_truncated.jpg" in warnings[0] and "c_not_an_image.png" in warnings[0]
    assert "skipped 2 unreadable image file(s) of 6" in warnings[0]
    assert images.shape == (4, 16, 16, 3)
    a, gray, rgba_img, cmyk = images.astype(int)
    assert (gray == 200).all()
    assert (rgba_img[:4] > 250).all() and (rgba_img[-4:, :, 0] > 250).all() and (rgba_img[-4:, :, 1] < 5).all()
    assert cmyk[..., 0].min() > 240 and cmyk[..., 1:].max() < 15
    assert a[:, 5].min() > 200 and a[:, 12].max() < 50  # centre-cropped 40x40: white left, black right


def test_empty_missing_and_all_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        data.load_folder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match="none of the 1 image files could be decoded"):
        data.load_folder(tmp_path / "bad")


def test_pipeline_scales_batches_and_drops_the_remainder():
    d = data.digits(32)
    assert d["images"].shape == (1797, 32, 32, 1) and d["labels"].max() == 9
    ds = data.make_dataset(d["images"], 100, seed=1)
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 17 and all(b.shape == (100, 32, 32, 1) for b in batches)
    allx = np.concatenate(batches)
    assert allx.dtype == np.float32 and allx.min() == -1.0 and allx.max() == 1.0
    assert len({b.tobytes() for b in batches}) == 17  # shuffled batches are distinct
    with pytest.raises(ValueError, match="lower the batch size"):
        data.make_dataset(d["images"][:10], 64)


def test_datasets_are_one_registry_whose_unknown_names_are_a_clear_error(monkeypatch):
    assert set(data.DATASETS) == {"digits", "mnist", "cub200", "stanford_dogs", "folder", "flowers"}
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar': use 'digits', 'mnist', 'cub200', "
                                         r"'stanford_dogs', 'folder', 'flowers'"):
        data.load({"name": "cifar", "image_size": 32})
    # a new dataset is one loader and one registry line
    monkeypatch.setitem(data.DATASETS, "ones", lambda c, data_dir, download: {
        "images": np.full((4, c["image_size"], c["image_size"], 1), 255, np.uint8)})
    assert data.load({"name": "ones", "image_size": 8})["images"].shape == (4, 8, 8, 1)
    assert data.load({"name": "digits", "image_size": 16, "channels": 1})["images"].shape == (1797, 16, 16, 1)
