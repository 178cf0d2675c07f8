"""DCGAN training: label noise reaches the loss, checkpoints round-trip and resume, NaN guard, GIF."""

import base64
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ganhelpers import callbacks, data, dcgan, images, summaries
from ganhelpers.dcgan import dcgan_config
from ganhelpers.experiment import open_run
from ganhelpers.run import train


@pytest.fixture(scope="module")
def digits32():
    return data.digits(32)["images"][:256]


def _model(seed=0):
    return dcgan.build_dcgan(dcgan_config("smoke", seed=seed))


def test_label_noise_targets_statistics():
    model = _model()
    callbacks.LabelNoise(real_range=(0.8, 1.0), fake_range=(0.0, 0.2), flip_prob=0.1).apply(model)
    t = model.targets(200_000, model.real_target_range, flip=False).numpy()
    assert t.min() >= 0.8 and t.max() <= 1.0
    assert t.mean() == pytest.approx(0.9, abs=2e-3) and t.var() == pytest.approx(0.2 ** 2 / 12, rel=0.02)
    flipped = model.targets(200_000, model.real_target_range, flip=True).numpy()
    assert (flipped <= 0.2).mean() == pytest.approx(0.1, abs=3e-3)  # flipped real targets land in [0, 0.2]
    f = model.targets(200_000, model.fake_target_range, flip=False).numpy()
    assert f.min() >= 0.0 and f.max() <= 0.2 and f.mean() == pytest.approx(0.1, abs=2e-3)
    noise = callbacks.LabelNoise(flip_prob=0.2, flip_decay=0.5)
    assert [noise.flip_prob_at(e) for e in range(3)] == [0.2, 0.1, 0.05]
    with pytest.raises(ValueError):
        callbacks.LabelNoise(real_range=(0.9, 0.8))


def test_train_step_uses_the_label_noise_targets(digits32):
    """With every real target fixed at 0.7, the first step's d_loss_real is BCE(0.7, D(real))."""
    model = _model()
    model.real_target_range.assign([0.7, 0.7])
    real = data.to_float(digits32[:64]).astype("float32")
    logits = model.discriminator(real, training=True).numpy()
    expected = np.mean(np.maximum(logits, 0) - logits * 0.7 + np.log1p(np.exp(-np.abs(logits))))
    logs = model.train_on_batch(real, return_dict=True)
    assert logs["d_loss_real"] == pytest.approx(expected, rel=1e-4)
    assert int(model.step.numpy()) == 1


def _weights(model):
    return [v.numpy() for v in model.generator.variables + model.discriminator.variables]


def test_checkpoint_round_trip_restores_weights_optimizer_state_step_and_rng(model_data, digits32):
    run = open_run("ckpt", "a", root=model_data)
    model = _model(seed=0)
    model.fit(data.make_dataset(digits32, 64), epochs=1, verbose=0, shuffle=False,
              callbacks=[callbacks.Checkpoint(run, every_n_epochs=1)])
    assert int(model.step.numpy()) == 4 and int(model.epoch.numpy()) == 1
    other = _model(seed=5)  # different init, different RNG, different fixed noise
    ck = callbacks.Checkpoint(run)
    assert ck.restore_before_fit(other).endswith("ckpt-4")
    for a, b in zip(_weights(model), _weights(other), strict=True):
        np.testing.assert_array_equal(a, b)
    for opt in ("d_optimizer", "g_optimizer"):
        va, vb = getattr(model, opt).variables, getattr(other, opt).variables
        assert len(va) == len(vb) > 2
        for a, b in zip(va, vb, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(other.step.numpy()) == 4 and int(other.epoch.numpy()) == 1
    np.testing.assert_array_equal(model.fixed_noise.numpy(), other.fixed_noise.numpy())
    np.testing.assert_array_equal(model.rng.normal((5,)).numpy(), other.rng.normal((5,)).numpy())


class Disconnected(Exception):
    """A Colab runtime going away: nothing of the process runs after it (unlike Ctrl-C, which saves)."""


class _Interrupt(keras.callbacks.Callback):
    """Stands in for Colab disconnecting: raises after ``at`` steps."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.step.numpy()) == self.at:
            raise Disconnected(f"disconnected at step {self.at}")


def test_interrupted_run_resumes_at_the_checkpointed_step_with_the_same_fixed_noise(model_data, digits32):
    config = dcgan_config("smoke")
    config["training"].update(checkpoint_every_steps=6, snapshot_every=3, epochs=3)
    with pytest.raises(Disconnected):
        train(config, "r", root=model_data, data={"images": digits32}, verbose=0, callbacks=[_Interrupt(8)],
              tensorboard=False)
    run_dir = model_data / config["experiment"] / "r"
    saved = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    fixed = saved.get_tensor("fixed_noise/.ATTRIBUTES/VARIABLE_VALUE")
    assert saved.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6

    resumed_at = {}

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            resumed_at["step"] = int(self.model.step.numpy())
            resumed_at["noise"] = self.model.fixed_noise.numpy()

    model, run, results = train(config, "r", root=model_data, data={"images": digits32}, verbose=0,
                                callbacks=[Probe()], tensorboard=False)
    assert resumed_at["step"] == 6  # not 0
    np.testing.assert_array_equal(resumed_at["noise"], fixed)
    # the budget is 3 epochs of 4 steps = 12 steps: the 6 restored ones and exactly 6 more
    assert int(model.step.numpy()) == 12 and int(model.epoch.numpy()) == 3
    assert results["step"] == 12 and results["resumed_from"].endswith("ckpt-6") and results["model"] == "dcgan"
    frames = sorted(p.name for p in run.tmp.glob("step_*.png"))
    assert frames[:3] == ["step_00000000.png", "step_00000003.png", "step_00000006.png"]
    assert frames[-1] == "step_00000012.png"
    # The GIF at the end has one frame per snapshot.
    assert images.gif_frame_count(run.gifs / "dcgan_smoke-r.gif") == len(frames)
    assert (run.samples / "losses.png").exists()
    header = (run.samples / "losses.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "d_loss_real", "d_loss_fake", "g_loss", "d_acc_real", "d_acc_fake"]


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(model_data, digits32, caplog):
    run = open_run("ckpt", "b", root=model_data)
    model = _model()
    model.fit(data.make_dataset(digits32, 64), epochs=2, verbose=0, shuffle=False,
              callbacks=[callbacks.Checkpoint(run, every_n_epochs=1)])
    newest = sorted(run.checkpoints.glob("ckpt-8.data-*"))[0]
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated data file
    other = _model(seed=3)
    path = callbacks.Checkpoint(run).restore_before_fit(other)
    assert path.endswith("ckpt-4") and int(other.step.numpy()) == 4
    assert "ckpt-8 is unreadable" in caplog.text


def test_non_finite_loss_stops_without_saving(model_data, digits32):
    run = open_run("nan", "a", root=model_data)
    model = _model()
    poisoned = digits32.astype("float32")
    poisoned[64:] = np.nan  # the second batch onwards is NaN: its losses are NaN
    ds = tf.data.Dataset.from_tensor_slices(poisoned).batch(64)
    with pytest.raises(FloatingPointError, match=r"non-finite loss .* at step 2.*ckpt-1"):
        model.fit(ds, epochs=1, verbose=0, callbacks=[callbacks.Checkpoint(run, every_n_steps=1)])
    reader = tf.train.load_checkpoint(str(run.checkpoints))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 1
    dtypes = reader.get_variable_to_dtype_map()
    floats = [k for k, dt in dtypes.items() if dt.is_floating]
    assert len(floats) > 50 and all(np.isfinite(reader.get_tensor(k)).all() for k in floats)


def test_a_long_run_gif_is_thinned_evenly_and_bounded_in_size(tmp_path):
    assert images.thin(list(range(10)), 4) == [0, 3, 6, 9]
    assert images.thin(list(range(700)), 100)[0] == 0 and images.thin(list(range(700)), 100)[-1] == 699
    assert len(images.thin(list(range(700)), 100)) == 100 and images.thin([1, 2], 100) == [1, 2]
    frames = [np.full((600, 900, 3), i, np.uint8) for i in range(250)]
    gif = images.assemble_gif(frames, tmp_path / "long.gif", max_frames=100)
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 100 and max(im.size) == images.MAX_GIF_SIDE and im.size == (512, 341)
    assert images.gif_frame_count(images.assemble_gif(frames[:5], tmp_path / "all.gif", max_frames=None)) == 5


def test_latent_walk_gif_loops_through_typical_noise(tmp_path):
    model = _model()
    gif = callbacks.latent_walk(model, tmp_path / "walk.gif", frames=12, seed=1, num_images=4)
    assert images.gif_frame_count(gif) == 12
    from PIL import Image

    with Image.open(gif) as im:
        first = np.asarray(im.convert("L"))
        im.seek(6)
        half = np.asarray(im.convert("L"))
    assert first.shape == (2 * 34 + 2, 2 * 34 + 2) and not np.array_equal(first, half)


def test_grid_and_gif_helpers(tmp_path):
    x = np.linspace(-1, 1, 10 * 8 * 8).reshape(10, 8, 8, 1)
    grid = images.make_grid(x, ncols=4)
    assert grid.shape == (3 * 10 + 2, 4 * 10 + 2, 1) and grid.dtype == np.uint8
    assert images.to_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    frames = [images.save_png(tmp_path / f"f{i}.png", images.make_grid(x * (i / 3))) for i in range(4)]
    gif = images.assemble_gif(frames, tmp_path / "a.gif", fps=4)
    assert images.gif_frame_count(gif) == 4
    assert math.isclose(len(images.read_png(frames[0]).shape), 2)
    # the GIF as an <img> holding its bytes: what a notebook displays so an HTML export shows it too
    shown = images.gif_html(gif, width=200)
    tag = shown._repr_html_()  # what a notebook's display(shown) puts in its text/html output
    assert str(shown) == tag and repr(shown) == "<GIF a.gif: 4 frames>"
    assert tag.startswith('<img src="data:image/gif;base64,') and tag.endswith('" width="200" alt="a.gif">')
    assert base64.b64decode(tag.split("base64,")[1].split('"')[0]) == gif.read_bytes()
    with pytest.raises(ValueError, match="is not a GIF"):
        images.gif_html(frames[0])


def test_tensorboard_writes_every_point_and_continues_steps_after_resume(model_data, digits32):
    """Grouped tags at the model's step across a resume, the same points as losses.csv, no epoch/*
    copies, everything in logs/ itself (one TensorBoard run), the HParams session and the layout once."""
    run = open_run("tb", "a", root=model_data)
    ds = data.make_dataset(digits32, 64)  # 4 steps an epoch: no epoch ends on a multiple of log_every=3

    def cbs():
        return [callbacks.Checkpoint(run), callbacks.LossHistory(run, every_n_steps=3),
                summaries.TensorBoard(run, log_every=3, config=dict(dcgan_config("smoke"), model="dcgan"))]

    _model().fit(ds, epochs=2, verbose=0, shuffle=False, callbacks=cbs())
    _model().fit(ds, epochs=3, verbose=0, shuffle=False, callbacks=cbs())
    summaries.close(run)
    tags = summaries.read_scalars(run.logs)
    rows = (run.samples / "losses.csv").read_text().splitlines()[1:]
    for name in ("losses/d_loss_real", "losses/d_loss_fake", "losses/g_loss", "accuracy/d_acc_real"):
        assert [s for s, _ in tags[name]] == [3, 6, 9, 12]  # steps 9 and 12 come after the resume at step 8
        assert len(tags[name]) == len(rows)
    assert not [t for t in tags if t.startswith("epoch/")]
    g = [float(r.split(",")[3]) for r in rows]
    np.testing.assert_allclose([v for _, v in tags["losses/g_loss"]], g, rtol=1e-6)
    assert [s for s, _ in tags["learning_rate/discriminator"]] == [3, 6, 9, 12]
    assert tags["learning_rate/generator"][0][1] == pytest.approx(2e-4)
    assert [p for p in run.logs.iterdir() if p.is_dir()] == []
    assert len(list(summaries._tagged(run, summaries.HPARAMS_TAG))) == 1  # the resume kept the first session
    assert len(summaries.read_layout(run.logs)) == 1


def test_the_loss_plot_is_redrawn_at_most_every_plot_every_seconds_and_at_the_end(tmp_path):
    """A drawing costs ~0.2 s, so an epoch end redraws only once ``plot_every_seconds`` have passed
    since the last one (the first epoch end always draws); the end of training always draws."""
    from types import SimpleNamespace

    run = SimpleNamespace(samples=tmp_path)
    callbacks.append_csv_rows(tmp_path / "losses.csv", [{"step": i, "d_loss": 1.0 / i, "g_loss": 0.5} for i in
                                                         range(1, 6)])
    png = tmp_path / "losses.png"
    slow = callbacks.LossHistory(run, plot_every_seconds=3600.0)
    slow.on_epoch_end(0)
    assert png.is_file()
    png.unlink()
    slow.on_epoch_end(1)
    slow.on_epoch_end(2)
    assert not png.exists()  # within the hour: not redrawn
    slow.on_train_end()
    assert png.is_file()  # the end of training shows every logged step
    png.unlink()
    every = callbacks.LossHistory(run, plot_every_seconds=0.0)
    for epoch in range(2):
        every.on_epoch_end(epoch)
        assert png.is_file()
        png.unlink()
