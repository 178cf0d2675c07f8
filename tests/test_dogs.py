"""Stanford Dogs loader (on small archives built here in the real layout), the DCGAN variants,
the comparison table ranked by any metric (notebook 05: tests/test_notebooks.py)."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ganhelpers import dogs, experiment, images, layers, run
from ganhelpers.metrics import inception
from ganhelpers.metrics.inception import to_unit_range

BREEDS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]


def _annotation(width, height, boxes, name="Chihuahua"):
    objects = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes)
    return (f"<annotation>\n\t<folder>02085620</folder>\n\t<source><database>ImageNet database</database></source>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"<segment>0</segment>{objects}</annotation>").encode()


def _photo(width, height, box):
    """A blue frame with a red 'dog' filling ``box`` (xmin, ymin, xmax, ymax)."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 2] = 200
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = (220, 30, 30)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


@pytest.fixture
def dog_archives(tmp_path):
    """images.tar and annotation.tar as the site ships them: Images/<wnid>-<breed>/<stem>.jpg and
    Annotation/<wnid>-<breed>/<stem> (XML, no extension). 2 breeds x 3 photos; the dog is a small
    red box in the lower right of a 200x120 blue frame; the last photo has no annotation."""
    src = tmp_path / "server"
    src.mkdir()
    box = (130, 60, 170, 100)  # 40x40, far from the centre
    with tarfile.open(src / "images.tar", "w") as img_tar, tarfile.open(src / "annotation.tar", "w") as ann_tar:
        for b, breed in enumerate(BREEDS):
            for i in range(3):
                stem = f"{breed.split('-')[0]}_{100 + i}"
                _add(img_tar, f"Images/{breed}/{stem}.jpg", _photo(200, 120, box))
                if not (b == 1 and i == 2):
                    _add(ann_tar, f"Annotation/{breed}/{stem}", _annotation(200, 120, [box]))
    archives = {}
    for name in ("images.tar", "annotation.tar"):
        payload = (src / name).read_bytes()
        archives[name] = (len(payload), hashlib.sha256(payload).hexdigest())
    return src, archives


def test_download_verify_extract_and_crop_to_the_dog(dog_archives, tmp_path, caplog):
    src, archives = dog_archives
    data_dir = tmp_path / "data"
    out = dogs.stanford_dogs(data_dir, 64, crop="bbox", download=True, url=src.as_uri(), archives=archives)
    assert out["images"].shape == (6, 64, 64, 3) and out["images"].dtype == np.uint8
    assert out["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert out["breeds"] == BREEDS
    assert (data_dir / "Images" / BREEDS[0]).is_dir() and (data_dir / "Annotation" / BREEDS[1]).is_dir()
    assert "1 of 6 images have no annotation" in caplog.text
    red = out["images"][..., 0].astype(float).mean(axis=(1, 2))
    blue = out["images"][..., 2].astype(float).mean(axis=(1, 2))
    assert (red[:5] > 180).all() and (blue[:5] < 60).all()  # cropped: the whole tile is dog
    assert red[5] < 60 and blue[5] > 150  # no annotation: the centre square, mostly background
    raw, cropped = dogs.dog_examples(data_dir, n=3)  # the notebook's "whole photo vs crop" grid
    assert raw.shape == cropped.shape == (3, 64, 64, 3)
    assert raw[..., 2].mean() > 150 and cropped[..., 0].mean() > 180
    centre = dogs.stanford_dogs(data_dir, 32, crop="center", cache=False)["images"]
    assert centre.shape == (6, 32, 32, 3) and (centre[..., 2].mean(axis=(1, 2)) > 150).all()
    # A second call reads the .npz cache, not the JPEGs (here replaced by a dog-less photo).
    assert (data_dir / "stanford_dogs_64px_bbox-largest_6.npz").is_file()
    (data_dir / "Images" / BREEDS[0] / "n02085620_100.jpg").write_bytes(_photo(200, 120, (0, 0, 0, 0)))
    np.testing.assert_array_equal(dogs.stanford_dogs(data_dir, 64, crop="bbox")["images"], out["images"])


def test_a_corrupt_download_is_rejected_and_deleted(dog_archives, tmp_path):
    src, archives = dog_archives
    size, _ = archives["annotation.tar"]
    bad = {"annotation.tar": (size, "0" * 64)}
    with pytest.raises(OSError, match="sha256"):
        dogs.stanford_dogs(tmp_path / "data", download=True, url=src.as_uri(), archives=bad)
    assert not (tmp_path / "data" / "annotation.tar").exists()
    assert not (tmp_path / "data" / "Annotation").exists()


def test_without_images_the_error_says_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        dogs.stanford_dogs(tmp_path)


def test_several_dogs_largest_or_union_box(tmp_path):
    path = tmp_path / "n02085620_7"
    path.write_bytes(_annotation(300, 200, [(10, 20, 60, 50), (100, 40, 290, 190), (250, 10, 320, 30)]))
    ann = dogs.parse_annotation(path)
    assert ann["width"] == 300 and ann["names"] == ["Chihuahua"] * 3
    assert dogs.dog_box(ann, "largest") == (100.0, 40.0, 190.0, 150.0)
    assert dogs.dog_box(ann, "union") == (10.0, 10.0, 290.0, 180.0)  # xmax 320 clamped to the width 300
    (tmp_path / "broken").write_text("<annotation><size><width>3</width></size></annotation>")
    with pytest.raises(ValueError, match="broken"):
        dogs.parse_annotation(tmp_path / "broken")


# -- variants -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(dogs.VARIANTS))
def test_every_variant_builds_and_outputs_64x64x3_in_range(name):
    config = dogs.variant_config(name, "smoke")
    g, d = layers.build_dcgan_networks(config)
    z = np.random.default_rng(0).normal(size=(3, 1, 1, 100)).astype("float32")
    out = g(z, training=False).numpy()
    assert out.shape == (3, 64, 64, 3) and out.min() >= -1 and out.max() <= 1
    assert d(out, training=False).shape == (3, 1)


def test_the_variants_change_only_what_they_claim():
    base = dogs.variant_config("dcgan1", "full")
    assert base["data"]["batch_size"] == 128 and base["generator"]["latent_dim"] == 100
    assert base["generator"]["base_filters"] == base["discriminator"]["base_filters"] == 64
    t = base["training"]
    assert (t["d_lr"], t["g_lr"], t["beta_1"], t["loss"]) == (2e-4, 2e-4, 0.5, "bce_probs")
    for name in dogs.VARIANTS:
        config = dogs.variant_config(name, "full")
        changed = {f"{sec}.{k}" for sec in ("data", "generator", "discriminator", "training")
                   for k in base[sec] if config[sec][k] != base[sec][k]}
        expected = {"dcgan1": set(), "dcgan2": {"generator.start_size", "discriminator.start_size"},
                    "leaky": {"generator.activation_name", "data.batch_size", "training.snapshot_every"}}
        assert changed == expected.get(name, {"training.loss"}), name
    # Every variant's GIF gets a frame per 12,800 images, whatever its batch.
    assert dogs.variant_config("leaky", "full")["training"]["snapshot_every"] == 4 * t["snapshot_every"]
    with pytest.raises(ValueError, match="choose from"):
        dogs.variant_config("dcgan3")


def test_dcgan2_starts_at_2x2_and_leaky_is_leaky_everywhere():
    g, d = layers.build_dcgan_networks(dogs.variant_config("dcgan2", "full"))
    assert g.get_layer("project").output.shape[1:] == (2, 2, 1024)  # (1 - 1) * 1 + 2 = 2
    assert [g.get_layer(f"up{i}").output.shape[1] for i in range(1, 5)] == [4, 8, 16, 32]
    assert d.get_layer("down4").output.shape[1:] == (2, 2, 1024)
    g1, _ = layers.build_dcgan_networks(dogs.variant_config("dcgan1", "full"))
    assert g1.get_layer("project").output.shape[1:] == (4, 4, 512)
    g, _ = layers.build_dcgan_networks(dogs.variant_config("leaky", "smoke"))
    acts = [lyr for lyr in g.layers if lyr.name.endswith("_act")]
    assert len(acts) == 4 and all(type(a).__name__ == "LeakyReLU" for a in acts)


# -- the comparison table -------------------------------------------------------------------------

def test_comparison_table_ranks_results_json_by_fid(tmp_path):
    root = tmp_path / "model_data"
    for variant, value, comparison in (("dcgan1", 41.5, "a"), ("hinge", 12.25, "a"), ("kl", None, "a"),
                                     ("leaky", 5.0, "b")):
        run = experiment.open_run("dog_dcgan_variants", f"{comparison}-{variant}", root=root)
        values = {"variant": variant, "comparison": comparison, "epochs": 6, "train_seconds": 90.0,
                  "fid_extractor": "keras-inceptionv3-random", "fid_num_samples": 16}
        if value is not None:
            values.update(fid=value, fid_history=[[3, value + 10], [6, value]], fid_best=value, fid_best_epoch=6)
        run.update_results(values)
    table = dogs.comparison_table(root / "dog_dcgan_variants", comparison="a")
    assert [r["variant"] for r in table] == ["hinge", "dcgan1", "kl"]
    assert [r["rank"] for r in table] == [1, 2, 3] and table[0]["minutes"] == 1.5
    text = table.markdown()
    lines = text.splitlines()
    assert lines[0].startswith("| rank | variant | FID (last)")
    assert lines[2].startswith("| 1 | hinge | 12.25 |") and lines[4].startswith("| 3 | kl | - |")
    assert "keras-inceptionv3-random on 16 samples" in text
    assert [r["variant"] for r in dogs.comparison_table(root / "dog_dcgan_variants")][0] == "leaky"
    one = dogs.comparison_table([root / "dog_dcgan_variants" / "a-dcgan1"])
    assert json.loads(json.dumps(one))[0]["fid"] == 41.5
    fig = dogs.plot_fid_curves(table, tmp_path / "fid.png")
    assert len(fig.axes[0].lines) == 2 and images.read_png(tmp_path / "fid.png").ndim == 3


def test_metric_curves_read_plain_numbers_without_an_offset(tmp_path):
    """KIDs that differ in the 6th digit (smoke) read as plain numbers, not as "1e-6+2.027e-1"."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    root = tmp_path / "model_data"
    for variant, values in (("dcgan1", (0.2027012, 0.2027018)), ("dcgan2", (0.2027031, 0.2027025))):
        run = experiment.open_run("dog_dcgan_variants", f"s-{variant}", root=root)
        run.update_results({"variant": variant, "rank_by": "kid", "kid": values[1],
                            "kid_history": [[1, values[0]], [2, values[1]]]})
    fig = dogs.plot_metric_curves(dogs.comparison_table(root / "dog_dcgan_variants"))
    FigureCanvasAgg(fig).draw()  # the tick labels as a notebook renders them
    ax = fig.axes[0]
    assert ax.get_ylabel() == "KID" and len(ax.lines) == 2
    assert ax.yaxis.get_offset_text().get_text() == ""
    labels = [t.get_text().replace("\u2212", "-") for t in ax.get_yticklabels() if t.get_text()]
    ticks = [float(t) for t in labels]  # every label a plain decimal number
    assert len(ticks) >= 2 and 0.20269 < min(ticks) < max(ticks) < 0.20271


def test_stretch_maps_a_flat_batch_to_the_full_range_in_one_map():
    flat = np.array([-0.004, 0.0, 0.002, 0.004], np.float32).reshape(1, 2, 2, 1)
    out = images.stretch(flat)
    np.testing.assert_allclose(out.ravel(), [-1.0, 0.0, 0.5, 1.0], atol=1e-6)
    assert images.to_uint8(flat).std() < 1 < 80 < images.to_uint8(out).std()  # flat grey -> black..white
    np.testing.assert_array_equal(images.stretch(np.zeros((2, 2, 2, 1))), np.zeros((2, 2, 2, 1)))


def test_notebook_05_says_what_each_preset_ranks_by():
    """The presets table of notebook 05's introduction names each preset's rank_by metric, its feature
    network and its sample count as the presets have them (the notebook test checks the output too)."""
    import re

    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "05_dog_dcgan_variants.ipynb", 4)
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (\w+) \| ([^|]+) \| (\d+) \|$", nb.cells[0].source, re.M)
    assert [r[0] for r in rows] == ["full", "cpu", "smoke"]
    for preset, metric, network, samples in rows:
        config = dogs.DOGS_PRESETS[preset]
        assert metric == config["rank_by"].upper(), preset
        section = config["fid"] if config["rank_by"] == "fid" else config["metrics"]
        assert int(samples) == section["num_samples"], preset
        name = section["weights"] if config["rank_by"] == "fid" else section["features"]
        if name == "digits":
            size = section.get("digits") or {"image_size": config["data"]["image_size"],
                                              "channels": config["data"]["channels"]}
            assert network.strip() == f"the {size['image_size']}x{size['image_size']}x{size['channels']} digit " \
                                      "classifier", preset
        else:
            assert name == "imagenet" and network.strip() == "ImageNet InceptionV3", preset


def test_comparison_table_without_runs_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="train some variants"):
        dogs.comparison_table(tmp_path)


# -- training through one code path ---------------------------------------------------------------

class PixelExtractor(inception.Extractor):
    """A cheap stand-in for InceptionV3 (8x8 average-pooled pixels, 192-d) so the test runs in seconds."""

    name, note = "test-pixels-8x8", "(test extractor)"

    def preprocess(self, images):
        return tf.image.resize(to_unit_range(images), (8, 8), antialias=True)

    def features(self, batch):
        return np.asarray(batch).reshape(len(batch), -1)


def test_run_comparison_trains_each_variant_and_measures_fid_at_the_last_epoch_too(tmp_path):
    root = tmp_path / "model_data"
    digits = dogs.load_images(dogs.variant_config("dcgan1", "smoke"))
    table = dogs.run_comparison(["dcgan1", "hinge"], "smoke", comparison="t", root=root, images=digits,
                                verbose=0, extractor=PixelExtractor(), training={"epochs": 3},
                                fid={"every_n_epochs": 2}, metrics={"every_n_epochs": 2}, rank_by="fid")
    assert sorted(r["variant"] for r in table) == ["dcgan1", "hinge"]
    assert [r["loss"] for r in sorted(table, key=lambda r: r["variant"])] == ["bce_probs", "hinge"]
    for row in table:
        assert [h[0] for h in row["fid_history"]] == [2, 3]  # every 2 epochs, and after the last one
        assert row["fid"] == row["fid_history"][-1][1] > 0 and row["fid_extractor"] == "test-pixels-8x8"
        assert row["epochs"] == 3 and row["steps"] == 12 and row["images_seen"] == 192
        assert row["fid_best"] == min(h[1] for h in row["fid_history"])
        assert experiment.load_config(root / "dog_dcgan_variants" / f"t-{row['variant']}" / "config.yaml")[
            "variant"] == row["variant"]
    assert table[0]["fid"] <= table[1]["fid"] and table.by == "fid"
    for row in table:  # KID on the digit features beside FID, measured after the last epoch too
        # smoke's metric features: the 32x32x1 digit classifier on the 64x64x3 samples (grey, resized)
        assert [h[0] for h in row["kid_history"]] == [2, 3] and row["metrics_network"].startswith("digit-cnn-32px-1ch")
        low, high = row["final_grid_range"]
        stretched = root / "dog_dcgan_variants" / f"t-{row['variant']}" / "samples" / "final_grid_stretched.png"
        assert -1 <= low < high <= 1 and stretched.is_file() == (high - low < 1.0)
    by_kid = dogs.comparison_table(root / "dog_dcgan_variants", comparison="t", by="kid")
    assert [r["kid"] for r in by_kid] == sorted(r["kid"] for r in table)
    assert "KID (last)" in by_kid.markdown().splitlines()[0]
    assert list((root / "dog_dcgan_variants").glob("fid_stats_digits-center-8_64px_test-pixels-8x8.npz"))
    # Same seed, same fixed noise: both variants' first GIF frame (step 0) comes from the same noise.
    frames = [sorted((root / "dog_dcgan_variants" / f"t-{v}" / "tmp").glob("step_*.png"))
              for v in ("dcgan1", "hinge")]
    assert len(frames[0]) == len(frames[1]) == 7  # steps 0, 2, ..., 12
    np.testing.assert_array_equal(images.read_png(frames[0][0]), images.read_png(frames[1][0]))


def test_fid_and_a_metrics_section_asking_for_the_same_features_share_one_feature_pass(tmp_path, monkeypatch):
    from ganhelpers.metrics import features

    config = dogs.variant_config("dcgan1", "smoke")
    f = config["fid"]
    config["metrics"].update(names=["kid"], num_samples=f["num_samples"], batch_size=f["batch_size"],
                             every_n_epochs=f["every_n_epochs"], real_samples=f["real_samples"])
    assert dogs.metrics_in_fid_pass(config) and not dogs.metrics_in_fid_pass(dogs.variant_config("dcgan1", "smoke"))
    assert dogs.metrics_in_fid_pass(dogs.variant_config("dcgan1", "cpu"))  # the workshop preset does
    config["training"]["epochs"] = 1
    fake_passes, real_extract = [], features.extract

    def counting(images, *args, **kwargs):
        if len(images) == f["num_samples"]:
            fake_passes.append(len(images))
        return real_extract(images, *args, **kwargs)

    monkeypatch.setattr(features, "extract", counting)
    result = run.train(config, "fold", root=tmp_path, verbose=0)
    epochs = config["training"]["epochs"]
    r = result.results
    assert [h[0] for h in r["fid_history"]] == [h[0] for h in r["kid_history"]] == list(range(1, epochs + 1))
    assert len(fake_passes) == epochs  # one extraction of the samples per measurement, for FID and KID
    assert r["metrics_network"] == r["fid_extractor"] and r["metrics_num_fake"] == f["num_samples"]
