"""No input can harm the machine or give wrong pixels: crafted archives, downloads checked by hash,
extractions cut short, crafted FID graphs, deep and rotated images, bad files in a FID folder,
the folder cache."""

import errno
import io
import logging
import stat
import struct
import tarfile
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganhelpers import data, experiment
from ganhelpers.metrics import fid, frechet, inception


def _tgz(path, members, mode="w:gz"):
    """``members``: (TarInfo fields dict, payload bytes or None)."""
    with tarfile.open(path, mode) as tar:
        for fields, payload in members:
            info = tarfile.TarInfo(fields.pop("name"))
            for k, v in fields.items():
                setattr(info, k, v)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# -- archives -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, what", [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                                        (tarfile.FIFOTYPE, "FIFO")])
def test_devices_and_fifos_refuse_the_archive(tmp_path, kind, what):
    archive = _tgz(tmp_path / "a.tgz", [({"name": "ok.txt"}, b"hi"),
                                         ({"name": "dev/null2", "type": kind, "devmajor": 1, "devminor": 3}, None)])
    with pytest.raises(data.ArchiveError, match=f"holds a {what} 'dev/null2'"):
        data.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "dev").exists() and not (tmp_path / "out" / "ok.txt").exists()


def test_permission_bits_are_masked(tmp_path):
    archive = _tgz(tmp_path / "a.tgz", [({"name": "d", "type": tarfile.DIRTYPE, "mode": 0o1777}, None),
                                         ({"name": "d/setuid", "mode": 0o6777}, b"#!/bin/sh\n"),
                                         ({"name": "d/plain", "mode": 0o666}, b"x")])
    out = data.extract(archive, tmp_path / "out")
    assert stat.S_IMODE((out / "d" / "setuid").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "d" / "plain").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "d").stat().st_mode) == 0o755


def test_links_and_escapes_are_still_refused(tmp_path):
    for name, fields in [("link", {"name": "x", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
                         ("hard", {"name": "x", "type": tarfile.LNKTYPE, "linkname": "y"}),
                         ("dots", {"name": "../escape.txt"}), ("abs", {"name": "/tmp/abs.txt"})]:
        payload = b"x" if fields.get("type") is None else None
        archive = _tgz(tmp_path / f"{name}.tgz", [(fields, payload)])
        with pytest.raises(data.ArchiveError, match="link|unsafe path"):
            data.extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_a_size_cap_stops_a_decompression_bomb(tmp_path):
    zeros = bytes(2 << 20)
    archive = _tgz(tmp_path / "bomb.tgz", [({"name": "zeros.bin"}, zeros)])
    assert archive.stat().st_size < 10_000
    with pytest.raises(data.ArchiveError, match="over the 1,048,576-byte cap"):
        data.extract(archive, tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out" / "zeros.bin").exists()
    # Default cap: 100 x the archive's size, at least 64 MiB.
    with tarfile.open(tmp_path / "big.tgz", "w:gz", compresslevel=1) as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 65 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    with pytest.raises(data.ArchiveError, match="cap"):
        data.extract(tmp_path / "big.tgz", tmp_path / "out2")


def test_a_symlinked_dataset_folder_is_accepted(tmp_path):
    other_disk = tmp_path / "other_disk" / "flower_photos"
    other_disk.mkdir(parents=True)
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "flower_photos").symlink_to(other_disk)
    archive = _tgz(tmp_path / "f.tgz", [({"name": "flower_photos/daisy/a.png"}, _png(np.zeros((4, 4, 3), np.uint8)))])
    data.extract(archive, dest)
    assert (other_disk / "daisy" / "a.png").is_file()
    assert data.list_images(dest / "flower_photos") == [dest / "flower_photos" / "daisy" / "a.png"]
    # A class folder that is itself a link (moved to another disk) is listed too.
    (tmp_path / "roses").mkdir()
    (tmp_path / "roses" / "b.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    (other_disk / "roses").symlink_to(tmp_path / "roses")
    assert [p.name for p in data.list_images(dest / "flower_photos")] == ["a.png", "b.png"]


@pytest.fixture
def flowers_archive(tmp_path):
    rng = np.random.default_rng(0)
    members = [({"name": f"flower_photos/{c}/{i}.png"}, _png(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)))
               for c in ("daisy", "roses") for i in range(3)]
    (tmp_path / "src").mkdir()
    return _tgz(tmp_path / "src" / "flower_photos.tgz", members)


def test_an_extraction_cut_short_is_done_again(tmp_path, flowers_archive, monkeypatch):
    real_copy, calls = data.archives.shutil.copyfileobj, []

    def disk_full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(data.archives.shutil, "copyfileobj", disk_full)
    with pytest.raises(OSError, match="No space"):
        data.flowers(tmp_path / "d", 8, download=True, url=flowers_archive.as_uri(), sha256=None, size=None)
    assert (tmp_path / "d" / "flower_photos").is_dir() and not data.is_extracted("flower_photos.tgz", tmp_path / "d")
    monkeypatch.setattr(data.archives.shutil, "copyfileobj", real_copy)
    out = data.flowers(tmp_path / "d", 8, download=True, url=flowers_archive.as_uri(), sha256=None, size=None)
    assert out["images"].shape == (6, 8, 8, 3) and data.is_extracted("flower_photos.tgz", tmp_path / "d")


def test_a_damaged_archive_is_deleted_with_a_message(tmp_path, flowers_archive):
    truncated = tmp_path / "cut" / "flower_photos.tgz"
    truncated.parent.mkdir()
    truncated.write_bytes(flowers_archive.read_bytes()[:-200])
    with pytest.raises(data.DamagedArchive, match="is damaged.*deleted it; download it again"):
        data.flowers(tmp_path / "d", 8, download=True, url=truncated.as_uri(), sha256=None, size=None)
    assert not (tmp_path / "d" / "flower_photos.tgz").exists()
    assert not (tmp_path / "d" / ".flower_photos.tgz.sha256").exists()


def test_without_a_published_hash_the_first_download_is_recorded_and_checked(tmp_path, flowers_archive, caplog):
    d = tmp_path / "d"
    path = data.fetch(flowers_archive.as_uri(), d, "flower_photos.tgz")
    record = d / ".flower_photos.tgz.sha256"
    assert record.read_text().split()[0] == data.file_hash(flowers_archive, "sha256")
    path.write_bytes(path.read_bytes()[:100])  # truncated on disk later
    with caplog.at_level(logging.WARNING):
        again = data.fetch(flowers_archive.as_uri(), d, "flower_photos.tgz")
    assert "recorded at its first download" in caplog.text and again.read_bytes() == flowers_archive.read_bytes()
    # The loaders pin what is known: flowers' size and sha256 as TFDS lists them.
    assert data.FLOWERS_SIZE == 228_813_984 and len(data.FLOWERS_SHA256) == 64
    with pytest.raises(OSError, match="sha256"):
        data.flowers(tmp_path / "pinned", 8, download=True, url=flowers_archive.as_uri())


# -- the FID graph ------------------------------------------------------------------------------

def test_a_graph_with_file_ops_is_refused_before_it_runs(tmp_path):
    target = tmp_path / "written.txt"
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, None, 3], name="Cast")
        x = tf.expand_dims(image, 0, name="ExpandDims")
        secret = tf.io.read_file("/etc/hostname")
        with tf.control_dependencies([tf.io.write_file(str(target), secret)]):
            x = tf.identity(x)
        pool = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        tf.identity(pool, name="pool_3")
    pb = tmp_path / "evil.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(inception.UnsafeGraph, match="ReadFile.*WriteFile|allow-list: .*ReadFile"):
        inception.Inception2015Graph(pb)
    assert not target.exists()
    assert inception.INCEPTION_2015_URL.startswith("https://")


# -- images -------------------------------------------------------------------------------------

def test_16_bit_png_and_deep_tiffs_are_scaled_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    Image.fromarray(gradient).save(tmp_path / "g16.png")
    got = data.read_image(tmp_path / "g16.png", 1)[..., 0]
    np.testing.assert_allclose(got, np.rint(gradient / 257.0), atol=1)
    Image.fromarray((gradient / 65535.0).astype(np.float32)).save(tmp_path / "f32.tif")
    np.testing.assert_allclose(data.read_image(tmp_path / "f32.tif", 1)[..., 0], np.rint(gradient / 257.0), atol=1)
    Image.fromarray(gradient.astype(np.int32) * 1000).save(tmp_path / "i32.tif")  # beyond 16 bits: min..max
    np.testing.assert_allclose(data.read_image(tmp_path / "i32.tif", 1)[..., 0], np.rint(gradient / 257.0), atol=1)
    rgb = data.load_image(tmp_path / "g16.png", 8, 3, crop="none")
    assert rgb[..., 0].min() < 20 and rgb[..., 0].max() > 235  # a gradient, not almost all white


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)  # wide, red on the left
    img[:, :10] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display by turning 90 degrees clockwise
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif, quality=95)
    shown = data.read_image(tmp_path / "r.jpg")
    assert shown.shape == (40, 20, 3) and data.image_size_of(tmp_path / "r.jpg") == (20, 40)
    assert shown[:8, :, 0].mean() > 200 and shown[-8:, :, 0].mean() < 50  # red is now on top


def _bomb_png(path, side=20000):
    """A PNG header declaring side x side pixels (Pillow refuses it before decoding)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_fid_folder_skips_bad_files_with_one_warning(tmp_path, caplog):
    folder = tmp_path / "fake"
    folder.mkdir()
    for i in range(2):
        (folder / f"ok{i}.png").write_bytes(_png(np.full((16, 16, 3), 40 * i, np.uint8)))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    _bomb_png(folder / "bomb.png")
    with caplog.at_level(logging.WARNING):
        ds, count = fid.image_batches(str(folder), batch_size=8)
        batches = [b.numpy() for b in ds]
    assert count == 2 and batches[0].shape == (2, 16, 16, 3)
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 3 unreadable image file(s) of 5" in warnings[0]
    assert all(name in warnings[0] for name in ("empty.png", "notes.jpg", "bomb.png"))
    for good in folder.glob("ok*"):
        good.unlink()
    with pytest.raises(ValueError, match="none of the 3 image files under .* could be read"):
        fid.image_batches(str(folder))


def test_identical_statistics_give_zero_not_a_negative_error():
    # sqrtm's round-off on identical statistics (issue: "came out negative (-1.6e-13)")
    assert frechet._combined(np.zeros(4), 1e-9, 1e-9, 1e-9 + 8e-14) == 0.0
    with pytest.raises(ValueError, match="negative"):
        frechet._combined(np.zeros(4), 1.0, 1.0, 1.5)


# -- the folder cache ---------------------------------------------------------------------------

def test_replacing_images_invalidates_the_folder_cache(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(_png(np.full((8, 8, 3), 10, np.uint8)))
    first = data.load_folder(folder, 8, cache=True)
    (folder / "1.png").write_bytes(_png(np.full((8, 8, 3), 200, np.uint8)))  # same size, same count
    second = data.load_folder(folder, 8, cache=True)
    assert first[1].mean() == 10 and second[1].mean() == 200
    assert len(list(folder.glob(".ganhelpers_*.npz"))) == 1  # the stale cache is gone


def test_a_read_only_folder_warns_and_goes_on(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "a.png").write_bytes(_png(np.full((8, 8, 3), 10, np.uint8)))

    def read_only(path, payload):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(experiment, "atomic_write", read_only)
    with caplog.at_level(logging.WARNING):
        images = data.load_folder(folder, 8, cache=True)
    assert images.shape == (1, 8, 8, 3) and "cannot write the cache" in caplog.text
