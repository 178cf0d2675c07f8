"""MNIST from a local mnist.npz (``ganhelpers.data.mnist``): Keras' bytes are trusted by their md5,
other bytes by their arrays; every other file is refused with a message naming what is wrong.
The real file lives at ``../shared/datasets/mnist.npz`` on the project's offline machines."""

import copy
import logging
from pathlib import Path

import numpy as np
import pytest

from ganhelpers import data, sgan
from ganhelpers.run import set_value

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist.npz"
needs_real_mnist = pytest.mark.skipif(
    not SHARED_MNIST.is_file(),
    reason=f"the real MNIST is not at {SHARED_MNIST}: put Keras' mnist.npz there (python -c \"import keras; "
           "keras.datasets.mnist.load_data()\" saves it in ~/.keras/datasets/) to run this test")


def fake_mnist() -> dict:
    """Arrays with MNIST's keys, shapes, dtypes, value range and class counts (but blank images)."""
    arrays = {}
    for split, n in (("train", 60000), ("test", 10000)):
        counts = data.MNIST_CLASS_COUNTS[f"y_{split}"]
        arrays[f"y_{split}"] = np.repeat(np.arange(10, dtype=np.uint8), counts)
        x = np.zeros((n, 28, 28), np.uint8)
        x[:, 14, 14] = 255
        arrays[f"x_{split}"] = x
    return arrays


def write(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def test_a_re_saved_mnist_is_accepted_with_one_log_line(tmp_path, caplog):
    path = write(tmp_path / "mnist.npz", fake_mnist())
    assert data.file_hash(path) != data.MNIST_MD5  # not Keras' bytes: judged by its arrays
    with caplog.at_level(logging.INFO, logger="ganhelpers.data"):
        d = data.mnist(tmp_path)  # data_dir holding mnist.npz: no download is tried
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("ganhelpers.data")]
    assert len(lines) == 1 and "differs from Keras'" in lines[0] and "using it" in lines[0]
    assert d["x_train"].shape == (60000, 28, 28, 1) and d["x_test"].shape == (10000, 28, 28, 1)
    assert np.bincount(d["y_test"]).tolist() == list(data.MNIST_CLASS_COUNTS["y_test"])
    # the same file named by a path (data.path in a config, or --set data.path=...)
    config = set_value(sgan.sgan_config("full"), f"data.path={path}")
    assert sgan.load_data(config, data_dir=tmp_path / "empty")["x_test"].shape == (10000, 28, 28, 1)


def _renamed(a):
    a["images"] = a.pop("x_train")


def _small_test_images(a):
    a["x_test"] = np.zeros((10000, 32, 32), np.uint8)


def _int64_labels(a):
    a["y_train"] = a["y_train"].astype(np.int64)


def _one_label_moved(a):
    a["y_train"][0] = 1  # a 0 relabelled 1: 5922 zeros, 6743 ones


def _scaled_to_0_1(a):
    a["x_train"] = (a["x_train"] // 255).astype(np.uint8)


@pytest.mark.parametrize("change,message", [
    (_renamed, r"has keys \['images', 'x_test', 'y_test', 'y_train'\], expected exactly .*missing \['x_train'\]"),
    (_small_test_images, r"x_test has shape \(10000, 32, 32\), expected \(10000, 28, 28\)"),
    (_int64_labels, "y_train has dtype int64, expected uint8"),
    (_one_label_moved, r"y_train has class counts \[5922, 6743, 5958.*expected MNIST's \[5923, 6742"),
    (_scaled_to_0_1, r"x_train spans 0\.\.1, expected MNIST's 0\.\.255"),
])
def test_a_file_that_is_not_mnist_is_refused_and_kept(tmp_path, change, message):
    arrays = fake_mnist()
    change(arrays)
    path = write(tmp_path / "mnist.npz", arrays)
    with pytest.raises(ValueError, match=message) as err:
        data.mnist(tmp_path)
    assert str(path) in str(err.value) and "replace it with the real mnist.npz" in str(err.value)
    assert path.is_file()  # a user's file is never deleted


def test_files_that_are_not_npz_archives_are_refused(tmp_path):
    text = tmp_path / "text" / "mnist.npz"
    text.parent.mkdir()
    text.write_text("x_train,y_train\n")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        data.mnist(text.parent)
    single = tmp_path / "single" / "mnist.npz"
    single.parent.mkdir()
    with open(single, "wb") as f:
        np.save(f, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="single .npy array, not an .npz archive"):
        data.mnist(single.parent)
    pickled = fake_mnist()
    pickled["y_test"] = np.array([object()] * 3, dtype=object)
    path = tmp_path / "pickled" / "mnist.npz"
    path.parent.mkdir()
    np.savez(path, **pickled)  # np.savez pickles object arrays; loading them could run code
    with pytest.raises(ValueError, match="'y_test' is a pickled object array, refused"):
        data.mnist(path.parent)
    with pytest.raises(FileNotFoundError, match="data.path"):
        data.mnist(path=tmp_path / "nowhere.npz")


def test_the_labelled_subset_follows_the_seed_and_stays_out_of_validation():
    """``--set seed=3`` draws another 100 labels; with ``data.validation`` they come from the first
    50,000 images and the last 10,000 are the evaluation split."""
    y = np.repeat(np.arange(10, dtype=np.uint8), 600)[np.random.default_rng(0).permutation(6000)]
    x = np.arange(6000, dtype=np.int64)[:, None, None, None] % 251  # image i is recognisable by its pixel
    raw = {"x_train": x.astype(np.uint8), "y_train": y, "x_test": x[:100].astype(np.uint8), "y_test": y[:100]}
    config = sgan.sgan_config("full", data={"validation": 1000})
    seed0 = sgan.prepare_data(config, raw)
    seed3 = sgan.prepare_data(set_value(copy.deepcopy(config), "seed=3"), raw)  # what --set seed=3 does
    for d in (seed0, seed3):
        assert np.bincount(d["y_labelled"], minlength=10).tolist() == [10] * 10
        assert d["labelled"].max() < 5000 and len(d["x_unlabelled"]) == 5000  # disjoint=False, as the code
        np.testing.assert_array_equal(d["y_test"], y[5000:])  # the validation split, not the test set
    assert len(np.intersect1d(seed0["labelled"], seed3["labelled"])) < 10
    np.testing.assert_array_equal(sgan.prepare_data(config, raw)["labelled"], seed0["labelled"])
    assert sgan.evaluation_split(config) == "validation"
    assert sgan.evaluation_split(sgan.sgan_config("full")) == "test"


@needs_real_mnist
def test_the_shared_real_mnist_is_accepted_and_its_counts_are_mnists(caplog):
    with caplog.at_level(logging.INFO, logger="ganhelpers.data"):
        d = data.mnist(SHARED_MNIST.parent)
    assert any("arrays are MNIST's" in r.getMessage() for r in caplog.records)
    assert np.bincount(d["y_train"]).tolist() == list(data.MNIST_CLASS_COUNTS["y_train"])
    assert d["x_train"].dtype == np.uint8 and d["x_train"].shape == (60000, 28, 28, 1)


@needs_real_mnist
def test_the_full_preset_learns_real_mnist_in_a_hundred_steps(model_data):
    """The reproduction's recipe on the real file, 100 steps (a sixth of an epoch) with the validation
    split: D's weight-normalised hidden units keep their lengths, so the losses stay bounded."""
    config = sgan.sgan_config("full", data={"validation": 10000, "path": str(SHARED_MNIST)})
    config["training"].update(epochs=1)
    config["baseline"].update(epochs=1)
    r = sgan.run_experiment(config, root=model_data, steps_per_epoch=100, tensorboard=False)
    assert r["evaluated_on"] == "validation" and r["num_labels"] == 100 and r["num_unlabelled"] == 50000
    # D's own weights (the preset reports its weight average, which after 100 steps still remembers the start)
    assert r["sgan_validation_accuracy_own_weights"] > 0.6, r
    assert "sgan_validation_accuracy_averaged" in r and "sgan_test_accuracy" not in r  # the test set unseen
    losses = r["final_losses"]
    assert np.isfinite([losses["g_loss"], losses["d_loss_unsup"]]).all() and losses["g_loss"] < 100, losses
    assert 0.01 < losses["d_fake"] < 0.99, losses
